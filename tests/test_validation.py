"""Bad input gets a clear ValueError before anything compiles; nothing returns NaN silently."""

import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest

import gmmjax
from helpers import random_params


def _params(covariance_type="full", **changes):
  p = random_params(0, 2, 3, covariance_type)
  fields = dict(weights=p.weights, means=p.means, precisions_cholesky=p.precisions_cholesky)
  fields.update(changes)
  return gmmjax.GMMParams(**fields, covariance_type=covariance_type)


X = np.random.default_rng(0).normal(size=(20, 3))

BAD_PARAMS = {
    "means": dict(means=jnp.array([[np.nan, 0, 0], [1, 1, 1.0]])),
    "weights": dict(weights=jnp.array([-0.2, 1.2])),
    "sum to one": dict(weights=jnp.array([0.2, 0.2])),
    "positive diagonal": dict(precisions_cholesky=-jnp.broadcast_to(jnp.eye(3), (2, 3, 3))),
    "upper triangular": dict(precisions_cholesky=jnp.broadcast_to(jnp.ones((3, 3)), (2, 3, 3))),
    "precisions_cholesky must have shape": dict(precisions_cholesky=jnp.ones((2, 3))),
}


@pytest.mark.parametrize("name", sorted(BAD_PARAMS))
def test_bad_parameters_are_named(name):
  params = _params(**BAD_PARAMS[name])
  for call in (
      lambda: gmmjax.log_prob(params, X),
      lambda: gmmjax.e_step(params, X),
      lambda: gmmjax.predict(params, X),
      lambda: gmmjax.sample(jax.random.key(0), params, 5),
      lambda: gmmjax.suff_stats(params, X),
      lambda: gmmjax.em_step(params, X, reg_covar=1e-6),
  ):
    with pytest.raises(ValueError, match=name if " " in name else f"params.{name}"):
      call()


def test_mixed_covariance_types_and_shapes():
  full = _params("full")
  with pytest.raises(ValueError, match="diag params.precisions_cholesky must have shape"):
    gmmjax.log_prob(gmmjax.GMMParams(full.weights, full.means, full.precisions_cholesky, "diag"), X)
  with pytest.raises(ValueError, match="features"):
    gmmjax.log_prob(full, X[:, :2])
  a = gmmjax.suff_stats(full, X)
  b = gmmjax.suff_stats(_params("diag"), X)
  with pytest.raises(ValueError, match="cannot merge 'full' statistics with 'diag'"):
    gmmjax.merge(a, b)
  with pytest.raises(ValueError, match="SuffStats"):
    gmmjax.merge(a, full)


@pytest.mark.parametrize("n", [2.5, -1, "3", True])
def test_sample_size_must_be_a_non_negative_integer(n):
  with pytest.raises(ValueError, match="non-negative integer"):
    gmmjax.sample(jax.random.key(0), _params(), n)


def test_sample_sizes_share_a_program_and_a_prefix():
  from gmmjax import _sample

  params = _params()
  x5, c5 = gmmjax.sample(jax.random.key(0), params, 5)
  size = _sample._sample_jit._cache_size()
  x9, c9 = gmmjax.sample(jax.random.key(0), params, 9)
  assert x9.shape == (9, 3) and c9.shape == (9,)
  assert _sample._sample_jit._cache_size() == size
  np.testing.assert_array_equal(x9[:5], x5)
  assert gmmjax.sample(jax.random.key(0), params, 0)[0].shape == (0, 3)


@pytest.mark.parametrize("dtype", [np.float16, ml_dtypes.bfloat16])
def test_half_precision_input_is_fitted_in_float32(dtype):
  x = np.random.default_rng(1).normal(size=(200, 2)).astype(dtype)
  result = gmmjax.fit(jax.random.key(0), x, 2)
  assert result.params.means.dtype == jnp.float32 and np.all(np.isfinite(result.params.means))
  assert gmmjax.log_prob(result.params, x).dtype == jnp.float32


def test_complex_and_non_numeric_input_is_refused():
  with pytest.raises(ValueError, match="real numbers"):
    gmmjax.fit(jax.random.key(0), jnp.asarray(X, jnp.complex64), 2)
  with pytest.raises(ValueError, match="real numbers"):
    gmmjax.fit(jax.random.key(0), np.array([["a", "b"], ["c", "d"]]), 1)
  with pytest.raises(ValueError, match="real"):
    gmmjax.fit(jax.random.key(0), X, 2, reg_covar=1j)


def test_non_integer_candidates_are_refused():
  with pytest.raises(ValueError, match="integers"):
    gmmjax.select_n_components(jax.random.key(0), X, [1.5, 2.7])


def test_responsibilities_and_options_are_checked():
  with pytest.raises(ValueError, match="resp must be non-negative"):
    gmmjax.stats_from_responsibilities(X, -np.ones((20, 2)))
  with pytest.raises(ValueError, match="log_resp contains NaN"):
    gmmjax.m_step(X, np.full((20, 2), np.nan), covariance_type="full", reg_covar=1e-6)
  for kwargs, match in ((dict(max_iter=0), "max_iter"), (dict(n_init=1.5), "n_init"),
                        (dict(init="banana"), "init"), (dict(chunk_size=-3), "chunk_size"),
                        (dict(covariance_type="banana"), "covariance_type"), (dict(tol=-1.0), "tol")):
    with pytest.raises(ValueError, match=match):
      gmmjax.fit(jax.random.key(0), X, 2, **kwargs)


def test_import_needs_no_extras():
  """`pip install gmmjax` alone: no tqdm, scikit-learn, flax or optax."""
  code = (
      "import sys\n"
      "for m in ('tqdm', 'sklearn', 'flax', 'optax', 'orbax'): sys.modules[m] = None\n"
      "import gmmjax, numpy as np, jax\n"
      "r = gmmjax.fit_stream(jax.random.key(0), [np.random.default_rng(0).normal(size=(50, 2))], 2)\n"
      "print(int(r.n_iter) > 0)\n"
  )
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.strip() == "True"
