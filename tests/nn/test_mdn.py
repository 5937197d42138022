"""Mixture density network head: shapes, core oracle, sampling moments, learning a known density."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import stats

import gmmjax
from gmmjax.nn import mdn
from helpers import fast_only, optimized_jit


def _head_params(key, cov_type, n=5, f=3, k=4, d=2, scale=1.0):
  head = mdn.MDNHead(k, d, covariance_type=cov_type)
  h = scale * jax.random.normal(key, (n, f))
  variables = head.init(jax.random.key(1), h)
  return head, variables, h


@pytest.mark.parametrize("cov_type", ["diag", "full"])
@pytest.mark.slow
def test_shapes_and_positive_scales(key, cov_type):
  head, variables, h = _head_params(key, cov_type, scale=1e3)
  p = head.apply(variables, h)
  assert p.logits.shape == (5, 4) and p.means.shape == (5, 4, 2)
  assert p.scales.shape == ((5, 4, 2) if cov_type == "diag" else (5, 4, 2, 2))
  diag = p.scales if cov_type == "diag" else jnp.diagonal(p.scales, axis1=-2, axis2=-1)
  assert bool(jnp.all(diag >= 1e-3))
  if cov_type == "full":
    np.testing.assert_array_equal(np.triu(np.asarray(p.scales), 1), 0)


@pytest.mark.parametrize("cov_type", ["diag", "full"])
@pytest.mark.slow
def test_log_prob_matches_core(key, cov_type):
  head, variables, h = _head_params(key, cov_type)
  p = head.apply(variables, h)
  y = jax.random.normal(jax.random.key(2), (5, 2))
  ours = mdn.log_prob(p, y)
  for i in range(5):
    core = gmmjax.GMMParams.from_covariances(
        jnp.exp(p.log_weights[i]), p.means[i], p.covariances()[i], cov_type
    )
    np.testing.assert_allclose(ours[i], gmmjax.log_prob(core, y[i : i + 1])[0], rtol=1e-10)


def test_log_prob_matches_scipy_full():
  rng = np.random.default_rng(0)
  tril = np.tril(rng.normal(size=(1, 3, 2, 2)))
  tril[..., [0, 1], [0, 1]] = np.abs(tril[..., [0, 1], [0, 1]]) + 0.5
  p = mdn.MDNParams(jnp.asarray(rng.normal(size=(1, 3))), jnp.asarray(rng.normal(size=(1, 3, 2))), jnp.asarray(tril))
  y = rng.normal(size=(1, 2))
  w = np.exp(p.log_weights[0])
  expected = math.log(sum(
      w[k] * stats.multivariate_normal(p.means[0, k], tril[0, k] @ tril[0, k].T).pdf(y[0]) for k in range(3)))
  np.testing.assert_allclose(mdn.log_prob(p, y)[0], expected, rtol=1e-10)


@pytest.mark.slow
def test_full_with_diagonal_factor_equals_diag(key):
  p = mdn.MDNParams(jnp.zeros((4, 3)), jax.random.normal(key, (4, 3, 2)), jnp.full((4, 3, 2), 0.7))
  full = p._replace(scales=p.scales[..., None] * jnp.eye(2)[None, None])
  y = jax.random.normal(jax.random.key(3), (4, 2))
  np.testing.assert_allclose(mdn.log_prob(p, y), mdn.log_prob(full, y), rtol=1e-12)


@pytest.mark.parametrize("cov_type", ["diag", "full"])
@pytest.mark.slow
def test_gradients_finite_on_degenerate_inputs(cov_type):
  head = mdn.MDNHead(3, 2, covariance_type=cov_type)
  h = jnp.array([[1e4, -1e4], [0.0, 0.0], [-1e4, 1e4]])
  variables = head.init(jax.random.key(0), h)
  y = jnp.array([[1e3, 0.0], [0.0, 0.0], [0.0, -1e3]])

  def loss(v):
    return mdn.nll(head.apply(v, h), y)

  value, grads = jax.value_and_grad(loss)(variables)
  assert bool(jnp.isfinite(value))
  assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))


@pytest.mark.parametrize("cov_type", fast_only(["diag", "full"], "full"))
def test_sample_moments_match_mean_and_covariance(key, cov_type):
  head, variables, h = _head_params(key, cov_type, n=1)
  p1 = head.apply(variables, h)
  n = 100_000
  p = jax.tree.map(lambda a: jnp.broadcast_to(a, (n, *a.shape[1:])), p1)
  draws = np.asarray(mdn.sample(jax.random.key(7), p))
  w, mu, cov = np.exp(p1.log_weights[0]), np.asarray(p1.means[0]), np.asarray(p1.covariances()[0])
  if cov_type == "diag":
    cov = np.stack([np.diag(c) for c in cov])
  m = mdn.mean(p1)[0]
  total_cov = sum(w[k] * (cov[k] + np.outer(mu[k] - m, mu[k] - m)) for k in range(len(w)))
  se = np.sqrt(np.diag(total_cov) / n)
  np.testing.assert_array_less(np.abs(draws.mean(0) - m), 5 * se)
  np.testing.assert_allclose(np.cov(draws.T), total_cov, atol=0.05 * np.abs(total_cov).max())


@pytest.mark.slow
def test_mode_picks_heaviest_separated_component():
  p = mdn.MDNParams(
      jnp.log(jnp.array([[0.2, 0.5, 0.3]])),
      jnp.array([[[-5.0], [0.0], [5.0]]]),
      jnp.full((1, 3, 1), 0.5),
  )
  np.testing.assert_allclose(mdn.mode(p), [[0.0]])
  np.testing.assert_allclose(mdn.mean(p), [[0.2 * -5 + 0.3 * 5]])


def test_bad_covariance_type_raises():
  with pytest.raises(ValueError, match="covariance_type"):
    mdn.MDNHead(2, 1, covariance_type="tied").init(jax.random.key(0), jnp.zeros((1, 1)))
  with pytest.raises(ValueError, match="shape"):
    mdn.log_prob(mdn.MDNParams(jnp.zeros((2, 1)), jnp.zeros((2, 1, 1)), jnp.ones((2, 1, 1))), jnp.zeros((3, 1)))


# The inverse of y = x + 0.3 sin(2 pi x) + noise: x given y is multimodal; with
# x ~ N(0.5, 0.25^2) its density is known up to a 1-D integral (quadrature).
NOISE, PRIOR_SD = 0.05, 0.25


def _forward(x):
  return x + 0.3 * np.sin(2 * np.pi * x)


def _toy(seed, n):
  rng = np.random.default_rng(seed)
  x = rng.normal(0.5, PRIOR_SD, n)
  y = _forward(x) + NOISE * rng.normal(size=n)
  return y[:, None], x[:, None]  # features, targets


def _true_log_density(features, targets):
  grid = np.linspace(0.5 - 8 * PRIOR_SD, 0.5 + 8 * PRIOR_SD, 20001)
  dx = grid[1] - grid[0]
  joint_grid = stats.norm.logpdf(grid, 0.5, PRIOR_SD)[None] + stats.norm.logpdf(
      features, _forward(grid)[None], NOISE)
  log_marginal = np.log(np.exp(joint_grid).sum(-1) * dx)
  joint = stats.norm.logpdf(targets[:, 0], 0.5, PRIOR_SD) + stats.norm.logpdf(
      features[:, 0], _forward(targets[:, 0]), NOISE)
  return joint - log_marginal


class _Net(nn.Module):
  @nn.compact
  def __call__(self, h):
    for _ in range(2):
      h = nn.tanh(nn.Dense(64)(h))
    return mdn.MDNHead(5, 1)(h)


@pytest.mark.slow
def test_learns_known_conditional_density():
  """Held-out NLL within 0.08 nats of the true conditional NLL (and far below a unimodal fit)."""
  f_train, t_train = _toy(0, 4000)
  f_test, t_test = _toy(1, 4000)
  true_nll = -_true_log_density(f_test, t_test).mean()
  net = _Net()
  f, t = jnp.asarray(f_train, jnp.float32), jnp.asarray(t_train, jnp.float32)
  variables = net.init(jax.random.key(0), f)
  opt = optax.adam(3e-3)

  def step(carry, _):
    v, s = carry
    loss, g = jax.value_and_grad(lambda v: mdn.nll(net.apply(v, f), t))(v)
    u, s = opt.update(g, s, v)
    return (optax.apply_updates(v, u), s), loss

  (variables, _), _ = optimized_jit(lambda c: jax.lax.scan(step, c, None, length=3000))(
      (variables, opt.init(variables)))
  test_nll = float(mdn.nll(net.apply(variables, jnp.asarray(f_test, jnp.float32)), jnp.asarray(t_test, jnp.float32)))
  gauss_nll = float(-stats.norm.logpdf(t_test[:, 0], t_train.mean(), t_train.std()).mean())
  assert test_nll - true_nll < 0.08, (test_nll, true_nll)
  assert test_nll < gauss_nll - 0.5
