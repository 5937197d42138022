"""Invariants: monotone EM, vmap equals a loop, no recompilation, degenerate data."""

import functools
import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import gmmjax
from helpers import fast_only, mixture_data, random_params

TYPES = gmmjax.COVARIANCE_TYPES


@pytest.mark.parametrize(
    "covariance_type, k, d",
    fast_only([(t, k, d) for t in TYPES for k, d in [(3, 3), (1, 1), (4, 2), (2, 4)]], ("full", 3, 3)),
)
@given(seed=st.integers(0, 10_000), weighted=st.booleans())
def test_em_never_lowers_the_likelihood(covariance_type, k, d, seed, weighted):
  # Values vary inside a fixed grid of shapes: one compiled fit per case. Unweighted
  # rows are weights of one (the weights=None path is checked against scikit-learn).
  rng = np.random.default_rng(seed)
  x = rng.standard_normal((60, d)) * rng.uniform(0.1, 10) + rng.standard_normal(d) * 5
  w = rng.uniform(0, 2, size=60) if weighted else np.ones(60)
  result = gmmjax.fit(
      jax.random.key(seed), x, k, covariance_type=covariance_type, weights=w, max_iter=30, tol=0.0, init="random"
  )
  trace = np.asarray(result.log_likelihood_trace)
  assert np.all(np.isfinite(trace))
  assert np.all(np.diff(trace) >= -1e-9 * np.abs(trace[1:]))


@functools.cache
def _fits(covariance_type):
  """One compiled batched fit and one single fit per covariance type, shared by every example."""
  fit = functools.partial(gmmjax.fit, n_components=3, covariance_type=covariance_type, max_iter=50)
  return jax.jit(jax.vmap(fit)), jax.jit(fit)


@pytest.mark.slow  # the fast suite has tests/test_batched.py::test_vmap_over_datasets_equals_loop
@pytest.mark.parametrize("covariance_type", TYPES)
@given(seed=st.integers(0, 10_000))
def test_vmap_over_datasets_equals_loop(covariance_type, seed):
  truth = random_params(seed, 3, 2, covariance_type)
  xs = np.stack([mixture_data(seed + i, truth, 80)[0] for i in range(3)])
  keys = jax.random.split(jax.random.key(seed), 3)
  batched_fit, single_fit = _fits(covariance_type)
  batched = batched_fit(keys, xs)
  for i in range(3):
    single = single_fit(keys[i], xs[i])
    assert int(batched.n_iter[i]) == int(single.n_iter)
    for a, b in zip(jax.tree.leaves(batched), jax.tree.leaves(single)):
      np.testing.assert_allclose(a[i], b, rtol=1e-8, atol=1e-10)


@pytest.mark.slow  # op-by-op execution; the fast suite has test_core_logprob.py::test_jit_equals_no_jit
@pytest.mark.parametrize("covariance_type", TYPES)
def test_em_step_jit_equals_no_jit(covariance_type):
  truth = random_params(3, 3, 3, covariance_type)
  x, _ = mixture_data(4, truth, 100)
  jitted = gmmjax.em_step(truth, x, reg_covar=1e-6)
  with jax.disable_jit():
    eager = gmmjax.em_step(truth, x, reg_covar=1e-6)
  for a, b in zip(jax.tree.leaves(jitted), jax.tree.leaves(eager)):
    np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)


class _CompileCounter(logging.Handler):
  def __init__(self):
    super().__init__()
    self.messages = []

  def emit(self, record):
    msg = record.getMessage()
    if "Compiling" in msg or "compiling" in msg:
      self.messages.append(msg)


def _count_compiles(fn, name=""):
  handler = _CompileCounter()
  logger = logging.getLogger("jax")
  logger.addHandler(handler)
  old_level = logger.level
  logger.setLevel(logging.DEBUG)
  try:
    with jax.log_compiles(True):
      fn()
  finally:
    logger.removeHandler(handler)
    logger.setLevel(old_level)
  return sum(name in m for m in handler.messages)


def test_no_recompile_for_new_data_tol_or_reg_covar():
  rng = np.random.default_rng(0)
  x1, x2 = rng.standard_normal((2, 200, 3))
  gmmjax.fit(jax.random.key(0), x1, 2, tol=1e-3, reg_covar=1e-6).params.means.block_until_ready()
  gmmjax.em_step(random_params(0, 2, 3, "diag"), x1, reg_covar=1e-6)
  assert _count_compiles(lambda: gmmjax.fit(jax.random.key(1), x2, 2, tol=1e-4, reg_covar=1e-3)) == 0
  assert _count_compiles(lambda: gmmjax.em_step(random_params(1, 2, 3, "diag"), x2, reg_covar=1e-2)) == 0
  # A new static argument is a new program.
  assert _count_compiles(lambda: gmmjax.fit(jax.random.key(1), x2, 3)) > 0


@pytest.mark.slow
def test_gradient_through_a_fixed_number_of_em_steps():
  truth = random_params(5, 2, 2, "full")
  x, _ = mixture_data(6, truth, 50)

  def loss(shift):
    params = truth
    for _ in range(3):
      params, _ = gmmjax.em_step(params, x + shift[None, :], reg_covar=1e-6)
    return jnp.sum(gmmjax.log_prob(params, x))

  g = jax.grad(loss)(jnp.zeros(2))
  assert np.all(np.isfinite(g))


# --- degenerate data: a regularised fit, never NaN ---------------------------------


def _finite(result):
  return all(bool(jnp.all(jnp.isfinite(a))) for a in jax.tree.leaves(result.params)) and np.isfinite(
      float(result.log_likelihood)
  )


@pytest.mark.parametrize("covariance_type", fast_only(TYPES, "full"))
def test_duplicated_points(covariance_type):
  x = np.repeat(np.random.default_rng(0).standard_normal((3, 2)), 50, axis=0)
  result = gmmjax.fit(jax.random.key(0), x, 5, covariance_type=covariance_type)
  assert _finite(result)


@pytest.mark.parametrize("covariance_type", fast_only(TYPES, "diag"))
def test_constant_column(covariance_type):
  x = np.random.default_rng(1).standard_normal((200, 3))
  x[:, 1] = 7.0
  result = gmmjax.fit(jax.random.key(0), x, 3, covariance_type=covariance_type)
  assert _finite(result)
  cov = np.asarray(result.params.covariances)
  assert np.all(cov > 0) if covariance_type in ("diag", "spherical") else True


@pytest.mark.parametrize("covariance_type", fast_only(TYPES, "spherical"))
def test_empty_component(covariance_type):
  truth = random_params(2, 2, 2, covariance_type)
  x, _ = mixture_data(3, truth, 100)
  far = gmmjax.GMMParams(
      jnp.asarray([0.4, 0.3, 0.3]),
      jnp.concatenate([truth.means, jnp.full((1, 2), 1e6)]),
      jnp.concatenate([truth.precisions_cholesky, truth.precisions_cholesky[:1]])
      if covariance_type != "tied"
      else truth.precisions_cholesky,
      covariance_type,
  )
  result = gmmjax.fit(jax.random.key(0), x, 3, covariance_type=covariance_type, init_params=far)
  assert _finite(result)
  assert float(result.params.weights[2]) < 1e-10


@pytest.mark.parametrize("covariance_type", fast_only(TYPES, "tied"))
def test_more_features_than_samples(covariance_type):
  x = np.random.default_rng(4).standard_normal((20, 50))
  result = gmmjax.fit(jax.random.key(0), x, 3, covariance_type=covariance_type)
  assert _finite(result)


@pytest.mark.slow
def test_float32_high_dimensional_images():
  # MNIST-like: D = 784 with many constant-zero pixels and sparse strokes.
  rng = np.random.default_rng(5)
  x = np.zeros((600, 784), np.float32)
  x[:, 200:500] = (rng.uniform(size=(600, 300)) < 0.2) * rng.uniform(0.5, 1, size=(600, 300))
  result = gmmjax.fit(jax.random.key(0), x, 5, max_iter=8)
  assert result.params.means.dtype == jnp.float32
  assert _finite(result)
  assert np.all(np.isfinite(np.asarray(gmmjax.log_prob(result.params, x))))


# --- bad input: a clear ValueError before anything compiles ----------------------


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(x=np.full((10, 2), np.nan)), "NaN"),
        (dict(x=np.array([[0.0, np.inf]] * 10)), "NaN or infinity"),
        (dict(x=np.zeros(10)), "shape"),
        (dict(x=np.zeros((10, 2, 2))), "shape"),
        (dict(n_components=11), "n_components"),
        (dict(n_components=0), "n_components"),
        (dict(covariance_type="banana"), "covariance_type"),
        (dict(weights=-np.ones(10)), "non-negative"),
        (dict(weights=np.ones(9)), "weights must have shape"),
        (dict(init="magic"), "init"),
        (dict(tol=-1.0), "tol"),
        (dict(reg_covar=float("nan")), "reg_covar"),
        (dict(max_iter=0), "max_iter"),
    ],
)
def test_bad_input_raises_before_compiling(kwargs, match):
  args = dict(x=np.random.default_rng(0).standard_normal((10, 2)), n_components=2)
  args.update(kwargs)
  x, k = args.pop("x"), args.pop("n_components")
  def run():
    with pytest.raises(ValueError, match=match):
      gmmjax.fit(jax.random.key(0), x, k, **args)

  assert _count_compiles(run, name="_fit") == 0


def test_bad_params_are_rejected():
  params = random_params(0, 2, 3, "full")
  x = np.zeros((5, 4))
  with pytest.raises(ValueError, match="features"):
    gmmjax.log_prob(params, x)
  bad = gmmjax.GMMParams(params.weights, params.means, params.precisions_cholesky[:, :2], "full")
  with pytest.raises(ValueError, match="precisions_cholesky"):
    gmmjax.em_step(bad, np.zeros((5, 3)), reg_covar=1e-6)
