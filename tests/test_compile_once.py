"""Row counts share compiled programs: padded size classes, for the functions and the estimator."""

import jax
import numpy as np

import gmmjax
from gmmjax import _em, _logprob, _padding, _sample
from gmmjax.sklearn import GaussianMixture

ROWS = (600, 1500, 2900, 4096)  # one size class


def _data(n, seed=0):
  rng = np.random.default_rng(seed)
  return np.concatenate([rng.normal(size=(n - n // 2, 2)), rng.normal(size=(n // 2, 2)) + 5]).astype(np.float32)


def test_size_classes():
  assert [_padding.size_class(n, 1 << 14) for n in (1, 500, 4096, 4097, 16384, 16385, 50_000)] == [
      4096, 4096, 4096, 16384, 16384, 32768, 65536]
  assert _padding.size_class(3000, 1024) == 3072  # whole chunks above the chunk size
  assert _padding.size_class(100, 1024) == 1024
  # A chunked pass pads to eighths of a chunk, not whole chunks: (rows, rows per chunk).
  assert [_padding.chunked_size_class(n, 4096) for n in (3000, 4097, 6000, 8193, 100_000)] == [
      (4096, 4096), (5120, 2560), (6144, 3072), (9216, 3072), (102_400, 4096)]


def test_fits_of_one_size_class_compile_once():
  gmmjax.fit(jax.random.key(0), _data(ROWS[0]), 2, tol=1e-4)
  size = (_em._fit._cache_size() + _em._fit_small._cache_size())
  for n in ROWS[1:]:
    result = gmmjax.fit(jax.random.key(1), _data(n, n), 2, tol=1e-4)
    assert bool(result.converged)
    np.testing.assert_allclose(np.sort(np.asarray(result.params.means[:, 0])), [0, 5], atol=0.3)
  assert (_em._fit._cache_size() + _em._fit_small._cache_size()) == size


def test_padding_does_not_change_the_fit():
  """Zero-weight padding rows leave every statistic unchanged: the padded fit
  equals the fit of data already of a class size (float64, same start)."""
  with jax.enable_x64(True):
    x = _data(4096).astype(np.float64)[:3000]
    start = gmmjax.fit(jax.random.key(0), x, 2, max_iter=1).params
    padded = gmmjax.fit(jax.random.key(0), x, 2, init_params=start, tol=1e-10)
    exact = gmmjax.fit(jax.random.key(0), x, 2, init_params=start, tol=1e-10, chunk_size=3000)
    np.testing.assert_allclose(padded.params.means, exact.params.means, rtol=1e-10)
    np.testing.assert_allclose(padded.log_likelihood, exact.log_likelihood, rtol=1e-12)


def test_scoring_and_sampling_compile_once():
  params = gmmjax.fit(jax.random.key(0), _data(1000), 2).params
  gmmjax.log_prob(params, _data(ROWS[0]))
  gmmjax.e_step(params, _data(ROWS[0]))
  gmmjax.sample(jax.random.key(0), params, ROWS[0])
  sizes = (_logprob._scorers.log_prob._cache_size(), _logprob._scorers.e_step._cache_size(), _sample._sample_jit._cache_size())
  for n in ROWS[1:]:
    x = _data(n)
    assert gmmjax.log_prob(params, x).shape == (n,)
    assert gmmjax.e_step(params, x)[1].shape == (n, 2)
    assert gmmjax.sample(jax.random.key(0), params, n)[0].shape == (n, 2)
  assert sizes == (_logprob._scorers.log_prob._cache_size(), _logprob._scorers.e_step._cache_size(), _sample._sample_jit._cache_size())


def test_the_estimator_compiles_once_per_size_class():
  def run(n):
    x = _data(n)
    gm = GaussianMixture(2, random_state=0).fit(x)
    gm.score_samples(x), gm.predict(x), gm.sample(n)

  run(ROWS[0])
  sizes = ((_em._fit._cache_size() + _em._fit_small._cache_size()), _logprob._scorers.log_prob._cache_size(), _sample._sample_jit._cache_size())
  for n in ROWS[1:]:
    run(n)
  assert sizes == ((_em._fit._cache_size() + _em._fit_small._cache_size()), _logprob._scorers.log_prob._cache_size(), _sample._sample_jit._cache_size())
