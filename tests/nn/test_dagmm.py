"""DAGMM: reconstruction features, core M-step on memberships, energy, degenerate inputs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gmmjax
from gmmjax.nn import dagmm
from helpers import fast_only


def _finite_tree(tree):
  return all(bool(jnp.all(jnp.isfinite(a))) for a in jax.tree.leaves(tree))


def test_reconstruction_features_match_numpy(key):
  x = jax.random.uniform(key, (6, 4, 4, 1))
  x_hat = jax.random.uniform(jax.random.key(1), (6, 4, 4, 1))
  f = np.asarray(dagmm.reconstruction_features(x, x_hat, eps=0.0))
  a, b = np.asarray(x).reshape(6, -1), np.asarray(x_hat).reshape(6, -1)
  rel = np.linalg.norm(a - b, axis=1) / np.linalg.norm(a, axis=1)
  cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
  np.testing.assert_allclose(f, np.stack([rel, cos], 1), rtol=1e-10)


def test_reconstruction_features_zero_images_finite_gradients():
  x = jnp.zeros((3, 8))
  x_hat = jnp.zeros((3, 8))
  f, vjp = jax.vjp(dagmm.reconstruction_features, x, x_hat)
  assert _finite_tree(f)
  assert _finite_tree(vjp(jnp.ones_like(f)))


@pytest.mark.parametrize("cov_type", fast_only(["full", "diag", "spherical", "tied"], "diag", "spherical", "tied"))
def test_mixture_from_memberships_is_the_core_m_step(key, cov_type):
  z = jax.random.normal(key, (200, 3)) * jnp.array([1.0, 2.0, 0.5])[None, :] + 3.0
  gamma = jax.nn.softmax(jax.random.normal(jax.random.key(1), (200, 4)), axis=-1)
  ours = dagmm.mixture_from_memberships(z, gamma, 1e-3, cov_type)
  core = gmmjax.m_step(z, jnp.log(gamma), covariance_type=cov_type, reg_covar=1e-3)
  for name in ("weights", "means", "precisions_cholesky"):
    np.testing.assert_allclose(getattr(ours, name), getattr(core, name), rtol=1e-9, atol=1e-12)
  np.testing.assert_allclose(dagmm.energy(ours, z), -gmmjax.log_prob(core, z), rtol=1e-10)


def test_mixture_matches_closed_form_phi_mu_sigma(key):
  """The paper's phi = mean(gamma), mu = gamma-weighted mean, Sigma = weighted covariance."""
  z = jax.random.normal(key, (50, 2))
  gamma = jax.nn.softmax(jax.random.normal(jax.random.key(1), (50, 3)), axis=-1)
  p = dagmm.mixture_from_memberships(z, gamma, 0.0)
  g, zz = np.asarray(gamma), np.asarray(z)
  phi = g.mean(0)
  mu = (g.T @ zz) / g.sum(0)[:, None]
  sigma = np.stack([(g[:, k, None] * (zz - mu[k])).T @ (zz - mu[k]) / g[:, k].sum() for k in range(3)])
  np.testing.assert_allclose(p.weights, phi, rtol=1e-9)
  np.testing.assert_allclose(p.means, mu, rtol=1e-9)
  np.testing.assert_allclose(p.covariances, sigma, rtol=1e-8)
  np.testing.assert_allclose(dagmm.covariance_penalty(p), (1 / np.diagonal(sigma, axis1=1, axis2=2)).sum(), rtol=1e-8)


@pytest.mark.parametrize("dtype", fast_only([jnp.float32, jnp.float64], jnp.float32))
def test_collapsed_codes_and_empty_components_finite(dtype):
  """Identical codes (singular scatter), one-hot and empty memberships: finite energy and gradients."""
  z = jnp.ones((16, 3), dtype)
  gamma = jnp.zeros((16, 4), dtype).at[:, 0].set(1.0)

  def loss(z, gamma):
    p = dagmm.mixture_from_memberships(z, gamma, 1e-4)
    return jnp.mean(dagmm.energy(p, z)) + 0.005 * dagmm.covariance_penalty(p)

  value_and_grad = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
  value, grads = value_and_grad(z, gamma)
  assert bool(jnp.isfinite(value))
  assert _finite_tree(grads)
  # Rank-deficient scatter: points on a line in 3-d.
  t = jnp.linspace(0, 1, 16, dtype=dtype)[:, None]
  line = t * jnp.array([[1.0, 2.0, -1.0]], dtype)
  gamma2 = jax.nn.softmax(jnp.stack([t[:, 0], -t[:, 0]], -1) * 5, axis=-1)
  value, grads = value_and_grad(line, gamma2)
  assert bool(jnp.isfinite(value)) and _finite_tree(grads)


@pytest.mark.slow
def test_energy_ranks_outliers_above_inliers(key):
  k1, k2 = jax.random.split(key)
  z = jnp.concatenate([jax.random.normal(k1, (100, 2)) - 4, jax.random.normal(k2, (100, 2)) + 4])
  gamma = jnp.concatenate([jnp.tile(jnp.array([[0.99, 0.01]]), (100, 1)), jnp.tile(jnp.array([[0.01, 0.99]]), (100, 1))])
  p = dagmm.mixture_from_memberships(z, gamma)
  e_in = dagmm.energy(p, jnp.array([[-4.0, -4.0], [4.0, 4.0]]))
  e_out = dagmm.energy(p, jnp.array([[0.0, 0.0], [10.0, -10.0]]))
  assert float(e_out.min()) > float(e_in.max()) + 3


@pytest.mark.parametrize("architecture", ["mlp", "conv"])
@pytest.mark.slow
def test_module_shapes_and_finite_loss_gradients(architecture):
  model = dagmm.DAGMM(latent_dim=2, n_components=3, architecture=architecture)
  x = jnp.concatenate([jnp.zeros((4, 28, 28, 1), jnp.float32),
                       jax.random.uniform(jax.random.key(0), (4, 28, 28, 1), jnp.float32)])
  variables = model.init({"params": jax.random.key(1), "dropout": jax.random.key(2)}, x, train=True)
  out = model.apply(variables, x, train=True, rngs={"dropout": jax.random.key(3)})
  assert out.code.shape == (8, 2) and out.z.shape == (8, 4) and out.gamma.shape == (8, 3)
  assert out.reconstruction.shape == x.shape
  np.testing.assert_allclose(out.gamma.sum(-1), 1.0, rtol=1e-5)

  def loss(v):
    o = model.apply(v, x, train=True, rngs={"dropout": jax.random.key(3)})
    return dagmm.dagmm_loss(o, x)[0].total

  value, grads = jax.jit(jax.value_and_grad(loss))(variables)
  assert bool(jnp.isfinite(value)) and _finite_tree(grads)


def test_bad_inputs_raise_before_compiling():
  with pytest.raises(ValueError, match="same n"):
    dagmm.mixture_from_memberships(jnp.zeros((5, 2)), jnp.ones((4, 2)) / 2)
  with pytest.raises(ValueError, match="covariance_type"):
    dagmm.mixture_from_memberships(jnp.zeros((5, 2)), jnp.ones((5, 2)) / 2, covariance_type="banded")
