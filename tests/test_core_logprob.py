"""Densities, responsibilities, sampling and parameter conversions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special
import scipy.stats
from jax.test_util import check_grads

import gmmjax
from helpers import fast_only, full_covariances, mixture_data, random_params

TYPES = gmmjax.COVARIANCE_TYPES


def _scipy_component_log_prob(params, x):
  cov = full_covariances(params)
  return np.stack(
      [scipy.stats.multivariate_normal(np.asarray(m), c).logpdf(x) for m, c in zip(params.means, cov)], axis=1
  )


@pytest.mark.parametrize("covariance_type", TYPES)
def test_densities_match_scipy(covariance_type):
  params = random_params(0, 4, 3, covariance_type)
  x, _ = mixture_data(1, params, 200)
  expected = _scipy_component_log_prob(params, x)
  np.testing.assert_allclose(gmmjax.component_log_prob(params, x), expected, rtol=1e-10)
  mixture = scipy.special.logsumexp(expected + np.log(np.asarray(params.weights))[None, :], axis=1)
  np.testing.assert_allclose(gmmjax.log_prob(params, x), mixture, rtol=1e-10)


@pytest.mark.parametrize("covariance_type", fast_only(TYPES, "diag"))
def test_zero_weight_component_has_its_density_and_no_nan_gradient(covariance_type):
  params = random_params(4, 3, 2, covariance_type)
  params = gmmjax.GMMParams(jnp.asarray([0.4, 0.0, 0.6]), params.means, params.precisions_cholesky, covariance_type)
  x, _ = mixture_data(5, params, 50)
  np.testing.assert_allclose(gmmjax.component_log_prob(params, x), _scipy_component_log_prob(params, x), rtol=1e-10)
  assert np.all(np.asarray(gmmjax.predict_proba(params, x))[:, 1] == 0)
  grads = jax.grad(lambda p: jnp.sum(gmmjax.log_prob(p, x)))(params)
  assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))


@pytest.mark.parametrize("covariance_type", fast_only(TYPES, "tied"))
def test_float32_densities_far_from_origin(covariance_type):
  # Data with a large offset: the shifted quadratic forms keep float32 accurate.
  params = random_params(2, 3, 5, covariance_type)
  offset = 1e4
  shifted = gmmjax.GMMParams(params.weights, params.means + offset, params.precisions_cholesky, covariance_type)
  x, _ = mixture_data(3, params, 100)
  expected = gmmjax.log_prob(params, x)
  p32 = jax.tree.map(lambda a: a.astype(jnp.float32), shifted)
  got = gmmjax.log_prob(p32, (x + offset).astype(np.float32))
  assert got.dtype == jnp.float32
  np.testing.assert_allclose(got, expected, rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize("covariance_type", fast_only(TYPES, "diag"))
def test_responsibilities_and_predictions(covariance_type):
  params = random_params(4, 5, 2, covariance_type)
  x, _ = mixture_data(5, params, 300)
  resp = gmmjax.predict_proba(params, x)
  np.testing.assert_allclose(jnp.sum(resp, axis=1), 1.0, rtol=1e-12)
  lp = _scipy_component_log_prob(params, x) + np.log(np.asarray(params.weights))[None, :]
  np.testing.assert_array_equal(gmmjax.predict(params, x), np.argmax(lp, axis=1))
  mean_ll, log_resp = gmmjax.e_step(params, x)
  np.testing.assert_allclose(mean_ll, np.mean(gmmjax.log_prob(params, x)), rtol=1e-12)
  np.testing.assert_allclose(jnp.exp(log_resp), resp, rtol=1e-12)


@pytest.mark.parametrize("covariance_type", fast_only(TYPES, "spherical"))
def test_jit_equals_no_jit(covariance_type):
  params = random_params(6, 3, 4, covariance_type)
  x, _ = mixture_data(7, params, 50)
  jitted = jax.jit(gmmjax.log_prob)(params, x)
  with jax.disable_jit():
    eager = gmmjax.log_prob(params, x)
  np.testing.assert_allclose(jitted, eager, rtol=1e-12)


@pytest.mark.slow  # second-order check_grads; the fast suite has test_fit_grad.py's finite differences
@pytest.mark.parametrize("covariance_type", TYPES)
def test_log_prob_gradients(covariance_type):
  params = random_params(8, 3, 3, covariance_type)
  x, _ = mixture_data(9, params, 20)
  x = jnp.asarray(x)
  check_grads(lambda xx: gmmjax.log_prob(params, xx), (x,), order=2, modes=("fwd", "rev"))

  # Finite differences step off valid parameters; map them back (log_prob refuses
  # unnormalised weights and a factor that is not upper triangular).
  def total(means, prec_chol, logits):
    if covariance_type in ("full", "tied"):
      prec_chol = jnp.triu(prec_chol)
    p = gmmjax.GMMParams(jax.nn.softmax(logits), means, prec_chol, covariance_type)
    return jnp.sum(gmmjax.log_prob(p, x))

  check_grads(total, (params.means, params.precisions_cholesky, jnp.log(params.weights)), order=1, modes=("rev",))


@pytest.mark.parametrize("covariance_type", TYPES)
def test_covariance_round_trips(covariance_type):
  params = random_params(10, 3, 4, covariance_type)
  again = gmmjax.GMMParams.from_covariances(params.weights, params.means, params.covariances, covariance_type)
  np.testing.assert_allclose(again.precisions_cholesky, params.precisions_cholesky, rtol=1e-10, atol=1e-12)
  from_prec = gmmjax.GMMParams.from_precisions(params.weights, params.means, params.precisions, covariance_type)
  np.testing.assert_allclose(from_prec.precisions_cholesky, params.precisions_cholesky, rtol=1e-10, atol=1e-12)
  if covariance_type in ("full", "tied"):
    u = np.asarray(params.precisions_cholesky)
    np.testing.assert_array_equal(np.tril(u, -1), 0)  # upper triangular, as scikit-learn


@pytest.mark.parametrize("covariance_type", fast_only(TYPES, "full"))
def test_sample_moments(covariance_type):
  params = random_params(11, 2, 2, covariance_type, spread=6.0)
  x, comp = gmmjax.sample(jax.random.key(0), params, 40_000)
  assert x.shape == (40_000, 2) and comp.shape == (40_000,)
  cov = full_covariances(params)
  for j in range(2):
    xj = np.asarray(x)[np.asarray(comp) == j]
    assert abs(len(xj) / 40_000 - float(params.weights[j])) < 0.015
    np.testing.assert_allclose(xj.mean(0), params.means[j], atol=0.06)
    np.testing.assert_allclose(np.cov(xj.T), cov[j], atol=0.08)


@pytest.mark.slow
def test_batched_params_under_vmap():
  params = [random_params(s, 3, 2, "full") for s in range(4)]
  stacked = jax.tree.map(lambda *a: jnp.stack(a), *params)
  x, _ = mixture_data(0, params[0], 30)
  batched = jax.vmap(gmmjax.log_prob, in_axes=(0, None))(stacked, x)
  for i, p in enumerate(params):
    np.testing.assert_allclose(batched[i], gmmjax.log_prob(p, x), rtol=1e-12)
