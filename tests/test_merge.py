"""`gmmjax.merge`: the statistics of two disjoint sets of rows merged equal those of their union.

Hypothesis varies the values (seed, scale and offset of the data, the weights) inside fixed shapes,
so each covariance type and dtype compiles once.
"""

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gmmjax
from helpers import random_covariances

TYPES = gmmjax.COVARIANCE_TYPES
N, D, K = 64, 3, 4

_suff_stats = jax.jit(gmmjax.suff_stats)
_merge = jax.jit(gmmjax.merge)
_from_covariances = jax.jit(gmmjax.GMMParams.from_covariances, static_argnums=3)

values = dict(
    seed=st.integers(0, 2**31 - 1),
    scale=st.sampled_from([1e-2, 1.0, 30.0]),
    # Offset of the data in units of their spread: at 1e3, raw second moments minus squared means
    # would cancel 1e6-fold and keep about one digit in float32.
    offset=st.sampled_from([0.0, 10.0, -1e3]),
)


def _problem(seed, scale, offset, covariance_type, dtype):
  """Mixture parameters and weighted rows drawn around them, all of `dtype`: spread `scale`, centred
  `offset * scale` away from the origin."""
  rng = np.random.default_rng(seed)
  weights = rng.dirichlet(np.full(K, 5.0))
  means = (rng.standard_normal((K, D)) * 2.0 + offset) * scale
  cov = random_covariances(rng, K, D, covariance_type) * scale**2
  params = _from_covariances(weights, means, cov, covariance_type)
  x = means[rng.integers(0, K, N)] + rng.standard_normal((N, D)) * scale
  w = rng.uniform(0.1, 3.0, N)
  return jax.tree.map(lambda a: np.asarray(a, dtype), params), x.astype(dtype), w.astype(dtype)


def _assert_stats_close(got, want, rtol, atol_scale):
  """Counts, means, centred second moments, log-likelihood and total weight agree; `atol_scale` is
  the tolerance in units of each statistic's largest magnitude (for entries near zero)."""
  assert got.covariance_type == want.covariance_type
  for name in ("counts", "means", "m2", "log_likelihood", "total_weight"):
    a, b = np.asarray(getattr(got, name), np.float64), np.asarray(getattr(want, name), np.float64)
    assert a.shape == b.shape, name
    assert np.all(np.isfinite(a)), name
    np.testing.assert_allclose(a, b, rtol=rtol, atol=atol_scale * max(np.max(np.abs(b)), 1e-30), err_msg=name)


def _halves(params, x, w):
  half = N // 2
  return _suff_stats(params, x[:half], w[:half]), _suff_stats(params, x[half:], w[half:])


@pytest.mark.parametrize("covariance_type", TYPES)
@given(**values)
@settings(max_examples=10)
def test_merged_halves_equal_the_whole_float64(covariance_type, seed, scale, offset):
  params, x, w = _problem(seed, scale, offset, covariance_type, np.float64)
  whole = _suff_stats(params, x, w)
  first, second = _halves(params, x, w)
  _assert_stats_close(_merge(first, second), whole, rtol=1e-10, atol_scale=1e-12)
  _assert_stats_close(_merge(second, first), whole, rtol=1e-10, atol_scale=1e-12)  # order does not matter


@pytest.mark.parametrize("covariance_type", TYPES)
@given(**values)
@settings(max_examples=10)
def test_merged_halves_equal_the_whole_float32(covariance_type, seed, scale, offset):
  params32, x32, w32 = _problem(seed, scale, offset, covariance_type, np.float32)
  # The oracle: float64 statistics of exactly the same float32 rows, weights and parameters.
  as64 = lambda a: np.asarray(a, np.float64)
  exact = _suff_stats(jax.tree.map(as64, params32), as64(x32), as64(w32))
  whole = _suff_stats(params32, x32, w32)
  merged = _merge(*_halves(params32, x32, w32))
  assert merged.m2.dtype == np.float32 and merged.means.dtype == np.float32
  # Merging loses no more than computing the whole in float32 does: both are within float32
  # rounding of the float64 statistics, whatever the offset of the data.
  _assert_stats_close(merged, exact, rtol=2e-4, atol_scale=2e-5)
  _assert_stats_close(whole, exact, rtol=2e-4, atol_scale=2e-5)
  _assert_stats_close(merged, whole, rtol=2e-4, atol_scale=2e-5)
