"""Batched fits: vmap over datasets, over keys, and over n_components via masking."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gmmjax
from gmmjax import _em, fit_masked
from helpers import fast_only, mixture_data, random_params


def _datasets(b, n, k, d, covariance_type="full"):
  xs = []
  for i in range(b):
    truth = random_params(100 + i, k, d, covariance_type, spread=3.0)
    xs.append(mixture_data(200 + i, truth, n)[0])
  return np.stack(xs)


def _assert_fits_equal(a, b, rtol=1e-9):
  assert int(a.n_iter) == int(b.n_iter)
  np.testing.assert_allclose(a.log_likelihood, b.log_likelihood, rtol=rtol)
  for name in ("weights", "means", "precisions_cholesky"):
    np.testing.assert_allclose(getattr(a.params, name), getattr(b.params, name), rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("covariance_type", fast_only(["full", "spherical"], "spherical"))
def test_vmap_over_datasets_equals_loop(covariance_type):
  xs = _datasets(4, 300, 3, 2, covariance_type)
  key = jax.random.key(0)
  kw = dict(covariance_type=covariance_type, max_iter=50)
  batched = jax.vmap(lambda x: gmmjax.fit(key, x, 3, **kw))(xs)
  assert batched.params.means.shape == (4, 3, 2)
  for i in range(4):
    _assert_fits_equal(jax.tree.map(lambda a: a[i], batched), gmmjax.fit(key, xs[i], 3, **kw))


@pytest.mark.slow
def test_vmap_over_keys_equals_loop_and_n_init():
  x = _datasets(1, 400, 4, 2)[0]
  keys = jax.random.split(jax.random.key(5), 6)
  batched = jax.vmap(lambda k: gmmjax.fit(k, x, 4, max_iter=60))(keys)
  for i in range(6):
    _assert_fits_equal(jax.tree.map(lambda a: a[i], batched), gmmjax.fit(keys[i], x, 4, max_iter=60))
  # fit's own restarts are this vmap plus picking the best.
  best = int(jnp.argmax(batched.log_likelihood))
  _assert_fits_equal(gmmjax.fit(jax.random.key(5), x, 4, max_iter=60, n_init=6), jax.tree.map(lambda a: a[best], batched))


@pytest.mark.parametrize("covariance_type", fast_only(gmmjax.COVARIANCE_TYPES, "diag"))
def test_masked_fits_over_k_equal_plain_fits(covariance_type):
  k_max, d = 4, 2
  x = _datasets(1, 500, 3, d, covariance_type)[0]
  start = random_params(7, k_max, d, covariance_type, spread=3.0)
  kw = dict(covariance_type=covariance_type, max_iter=40, reg_covar=1e-4)
  ks = jnp.arange(1, k_max + 1)
  batched = jax.vmap(lambda k: fit_masked(jax.random.key(0), x, k_max, k, init_params=start, **kw))(ks)
  for k in range(1, k_max + 1):
    w = start.weights[:k] / jnp.sum(start.weights[:k])
    prec = start.precisions_cholesky if covariance_type == "tied" else start.precisions_cholesky[:k]
    sub = gmmjax.GMMParams(w, start.means[:k], prec, covariance_type)
    want = gmmjax.fit(jax.random.key(0), x, k, init_params=sub, **kw)
    got = jax.tree.map(lambda a: a[k - 1], batched)
    assert int(got.n_iter) == int(want.n_iter)
    np.testing.assert_allclose(got.log_likelihood, want.log_likelihood, rtol=1e-9)
    np.testing.assert_allclose(got.params.weights[:k], want.params.weights, rtol=1e-9)
    np.testing.assert_array_equal(got.params.weights[k:], 0.0)
    np.testing.assert_allclose(got.params.means[:k], want.params.means, rtol=1e-7, atol=1e-9)
    got_prec = got.params.precisions_cholesky
    np.testing.assert_allclose(
        got_prec if covariance_type == "tied" else got_prec[:k], want.params.precisions_cholesky, rtol=1e-7, atol=1e-9
    )


@pytest.mark.slow
def test_masked_default_init_selects_k_by_bic():
  truth = random_params(3, 3, 2, "full", spread=6.0)
  x, _ = mixture_data(4, truth, 1500)
  k_max = 6
  ks = jnp.arange(1, k_max + 1)
  res = jax.vmap(lambda k: fit_masked(jax.random.key(1), x, k_max, k, n_init=3, max_iter=200))(ks)
  for k in range(1, k_max + 1):
    r = jax.tree.map(lambda a: a[k - 1], res)
    np.testing.assert_array_equal(r.params.weights[k:], 0.0)
    np.testing.assert_allclose(jnp.sum(r.params.weights), 1.0, rtol=1e-12)
    assert int(jnp.max(gmmjax.predict(r.params, x))) < k
    trace = np.asarray(r.log_likelihood_trace)[: int(r.n_iter)]
    assert np.all(np.diff(trace) >= -1e-9)
    # vmap over k equals the loop over k.
    _assert_fits_equal(r, fit_masked(jax.random.key(1), x, k_max, k, n_init=3, max_iter=200))
  n, d = x.shape
  n_params = np.array([k * d * (d + 1) / 2 + k * d + k - 1 for k in range(1, k_max + 1)])
  bic = -2 * n * np.asarray(res.log_likelihood) + n_params * np.log(n)
  assert int(np.argmin(bic)) + 1 == 3


def test_one_compilation_for_every_k():
  x = _datasets(1, 200, 2, 2)[0]
  fit_masked(jax.random.key(0), x, 5, 2, max_iter=5)
  size = (_em._fit._cache_size() + _em._fit_small._cache_size())
  for k in (1, 3, 5):
    fit_masked(jax.random.key(0), x, 5, k, max_iter=5, tol=1e-5)
  assert (_em._fit._cache_size() + _em._fit_small._cache_size()) == size


def test_masked_bad_inputs_raise():
  x = _datasets(1, 50, 2, 2)[0]
  with pytest.raises(ValueError, match="n_active"):
    fit_masked(jax.random.key(0), x, 3, 4)
  with pytest.raises(ValueError, match="n_active"):
    fit_masked(jax.random.key(0), x, 3, 0)
  with pytest.raises(ValueError, match="components"):
    fit_masked(jax.random.key(0), x, 3, 2, init_params=random_params(0, 2, 2, "full"))
