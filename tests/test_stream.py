"""fit_stream: exact EM over batches equals fit on the concatenated data."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gmmjax
from gmmjax import _stream
from gmmjax._stream import fit_stream
from helpers import fast_only, mixture_data, random_params


def _data(covariance_type, n=900, seed=0, k=3, d=3):
  truth = random_params(seed, k, d, covariance_type, spread=3.0)
  x, _ = mixture_data(seed + 1, truth, n)
  start = random_params(seed + 2, k, d, covariance_type, spread=3.0)
  return x, start


def _split(a, sizes):
  return np.split(a, np.cumsum(sizes)[:-1])


def _assert_same_fit(a, b, rtol=1e-9):
  assert int(a.n_iter) == int(b.n_iter)
  assert bool(a.converged) == bool(b.converged)
  np.testing.assert_allclose(a.log_likelihood, b.log_likelihood, rtol=rtol)
  np.testing.assert_allclose(a.log_likelihood_trace, b.log_likelihood_trace, rtol=rtol)
  for name in ("weights", "means", "precisions_cholesky"):
    np.testing.assert_allclose(getattr(a.params, name), getattr(b.params, name), rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("covariance_type", fast_only(gmmjax.COVARIANCE_TYPES, "diag"))
def test_stream_equals_fit_on_concatenation(covariance_type):
  x, start = _data(covariance_type)
  # Uneven batches: the short last one is padded with zero-weight rows.
  batches = _split(x, [300, 300, 200, 100])
  kw = dict(covariance_type=covariance_type, max_iter=15, tol=1e-6, reg_covar=1e-4, init_params=start)
  want = gmmjax.fit(jax.random.key(0), x, 3, **kw)
  got = fit_stream(jax.random.key(0), batches, 3, progress=False, **kw)
  assert int(want.n_iter) > 3
  _assert_same_fit(got, want)


@pytest.mark.slow
def test_weighted_stream_equals_weighted_fit():
  x, start = _data("full", seed=5)
  w = np.random.default_rng(0).uniform(0, 3, x.shape[0])
  batches = list(zip(_split(x, [400, 400, 100]), _split(w, [400, 400, 100])))
  kw = dict(covariance_type="full", max_iter=10, tol=0.0, init_params=start)
  want = gmmjax.fit(jax.random.key(0), x, 3, weights=w, **kw)
  got = fit_stream(jax.random.key(0), batches, 3, progress=False, **kw)
  assert int(got.n_iter) == 10
  _assert_same_fit(got, want)


@pytest.mark.slow
@pytest.mark.parametrize("init", ["kmeans++", "random"])
def test_default_init_uses_first_batch(init):
  # With one batch, the stream sees exactly what fit sees, initialisation included.
  x, _ = _data("diag", seed=7)
  kw = dict(covariance_type="diag", max_iter=20, init=init)
  want = gmmjax.fit(jax.random.key(3), x, 3, **kw)
  got = fit_stream(jax.random.key(3), [x], 3, progress=False, **kw)
  _assert_same_fit(got, want)


def test_memmap_callable_source(tmp_path):
  x, start = _data("tied", seed=11, n=1000)
  mm = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float64, shape=x.shape)
  mm[:] = x
  mm.flush()
  ro = np.load(tmp_path / "x.npy", mmap_mode="r")
  reads = []

  def batches():
    reads.append(1)
    return (ro[i : i + 256] for i in range(0, len(ro), 256))

  kw = dict(covariance_type="tied", max_iter=6, tol=0.0, init_params=start)
  got = fit_stream(jax.random.key(0), batches, 3, progress=False, **kw)
  want = gmmjax.fit(jax.random.key(0), x, 3, **kw)
  _assert_same_fit(got, want)
  assert len(reads) == 6 + 1  # one pass per iteration, plus the peek at the first batch


def test_float32_stream_far_from_origin_keeps_variances():
  # Raw-moment accumulation (sum x^2 - n mean^2) in float32 loses everything here:
  # offset 1e4, spread 1e-1, 200k rows in 100 batches.
  rng = np.random.default_rng(0)
  x = (1e4 + 0.1 * rng.standard_normal((200_000, 2)) * np.array([1.0, 2.0])).astype(np.float32)
  start = gmmjax.GMMParams.from_covariances(
      jnp.ones((1,), jnp.float32), jnp.asarray(x[:1]), jnp.eye(2, dtype=jnp.float32)[None], "full"
  )
  got = fit_stream(
      jax.random.key(0), _split(x, [2000] * 100), 1,
      max_iter=3, tol=0.0, reg_covar=0.0, init_params=start, progress=False,
  )
  assert got.params.means.dtype == jnp.float32
  cov = np.asarray(got.params.covariances[0], np.float64)
  want = np.cov(x.astype(np.float64).T, bias=True)
  np.testing.assert_allclose(np.diag(cov), np.diag(want), rtol=1e-3)
  np.testing.assert_allclose(got.params.means[0], x.astype(np.float64).mean(0), rtol=1e-6)


def test_one_compilation_for_all_passes_and_settings():
  x, start = _data("spherical", seed=3, n=700)
  batches = _split(x, [300, 300, 100])
  kw = dict(covariance_type="spherical", max_iter=4, init_params=start, progress=False)
  fit_stream(jax.random.key(0), batches, 3, tol=0.0, **kw)
  size = _stream._batch_stats._cache_size()
  fit_stream(jax.random.key(1), batches, 3, tol=1e-9, reg_covar=1e-3, **kw)
  assert _stream._batch_stats._cache_size() == size


def test_bad_streams_raise():
  x, _ = _data("full")
  with pytest.raises(ValueError, match="one-shot"):
    fit_stream(jax.random.key(0), (b for b in _split(x, [450, 450])), 3, progress=False)
  with pytest.raises(ValueError, match="no data"):
    fit_stream(jax.random.key(0), [], 3, progress=False)
  with pytest.raises(ValueError, match="features"):
    fit_stream(jax.random.key(0), [x, x[:, :2]], 3, progress=False)
  with pytest.raises(ValueError, match="NaN"):
    fit_stream(jax.random.key(0), [x, np.full_like(x, np.nan)], 3, progress=False)
  with pytest.raises(ValueError, match="covariance_type"):
    fit_stream(jax.random.key(0), [x], 3, covariance_type="banana", progress=False)
