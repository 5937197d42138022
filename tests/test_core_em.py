"""EM against scikit-learn from the same start, and weighted-data identities."""

import os
import subprocess
import sys
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

import gmmjax
from helpers import fast_only, mixture_data, random_params

TYPES = gmmjax.COVARIANCE_TYPES


def _sklearn_from(params, reg_covar, **kwargs):
  return GaussianMixture(
      n_components=params.means.shape[0],
      covariance_type=params.covariance_type,
      weights_init=np.asarray(params.weights),
      means_init=np.asarray(params.means),
      precisions_init=np.asarray(params.precisions),
      reg_covar=reg_covar,
      **kwargs,
  )


def _start(covariance_type, seed=0, k=4, d=3, n=600):
  truth = random_params(seed, k, d, covariance_type, spread=3.0)
  x, _ = mixture_data(seed + 1, truth, n)
  start = random_params(seed + 2, k, d, covariance_type, spread=3.0)
  return x, start


def _assert_params_close(params, sk, rtol):
  np.testing.assert_allclose(params.weights, sk.weights_, rtol=rtol)
  np.testing.assert_allclose(params.means, sk.means_, rtol=rtol, atol=1e-12)
  np.testing.assert_allclose(params.covariances, sk.covariances_, rtol=rtol, atol=1e-12)
  np.testing.assert_allclose(params.precisions_cholesky, sk.precisions_cholesky_, rtol=rtol, atol=1e-10)


@pytest.mark.parametrize("covariance_type", fast_only(TYPES, "full"))
def test_one_em_step_matches_sklearn(covariance_type):
  x, start = _start(covariance_type)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    sk = _sklearn_from(start, 1e-4, max_iter=1).fit(x)
  params, mean_ll = gmmjax.em_step(start, x, reg_covar=1e-4)
  _assert_params_close(params, sk, rtol=1e-6)
  np.testing.assert_allclose(mean_ll, sk.lower_bound_, rtol=1e-12)


@pytest.mark.parametrize(
    "k, d, start_spread",
    fast_only([(4, 8, 3.0), (2, 9, 3.0), (1, 1, 3.0), (16, 32, 1.0), (20, 37, 1.0)], (4, 8, 3.0)),
)
def test_one_full_em_step_matches_sklearn_for_every_scatter_form(k, d, start_spread):
  # d > 2k forms scatter matrices from resp * x in one GEMM; d <= 2k from the
  # distinct products x_i x_j, or on CPU for d >= 32 from the upper block
  # triangle (d = 37: uneven blocks). All must be the same M-step. (Starts
  # spread as widely as the small cases' leave components with counts of
  # ~10 eps, whose covariances scikit-learn takes about its eps-shrunk mean.)
  truth = random_params(3, k, d, "full", spread=3.0)
  x, _ = mixture_data(4, truth, 500)
  start = random_params(5, k, d, "full", spread=start_spread)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    sk = _sklearn_from(start, 1e-4, max_iter=1).fit(x)
  params, mean_ll = gmmjax.em_step(start, x, reg_covar=1e-4)
  np.testing.assert_allclose(params.weights, sk.weights_, rtol=1e-9)
  np.testing.assert_allclose(params.means, sk.means_, rtol=1e-9, atol=1e-12)
  # Seed (4, 8) leaves one component with a count of 1e-9: its near-zero
  # covariance entries agree on the scale of the covariances, not relatively.
  scale = np.abs(sk.covariances_).max()
  np.testing.assert_allclose(params.covariances, sk.covariances_, rtol=1e-6, atol=1e-10 * scale)
  np.testing.assert_allclose(mean_ll, sk.lower_bound_, rtol=1e-12)


@pytest.mark.parametrize("d, k", fast_only([(1, 1), (9, 2), (37, 20), (64, 4)], (9, 2), (37, 20)))
def test_chunk_statistics_equal_the_float64_oracle(d, k):
  """Counts, means and centred moments of one chunk, each component's about
  a centre of its own, whatever that centre (here: off by up to 3)."""
  from gmmjax import _stats

  rng = np.random.default_rng(d * 100 + k)
  xs = rng.standard_normal((70, d)) + 2.0
  resp = rng.dirichlet(np.ones(k), 70)
  centers = rng.standard_normal((k, d)) * 3
  nk = resp.sum(0)
  means = resp.T @ xs / nk[:, None]
  full = np.einsum("ck,cki,ckj->kij", resp, xs[:, None] - means[None], xs[:, None] - means[None])
  oracle = {"full": full, "tied": full.sum(0), "diag": np.diagonal(full, axis1=1, axis2=2)}
  oracle["spherical"] = oracle["diag"]
  for ct in TYPES:
    for dtype, rtol in ((np.float64, 1e-12), (np.float32, 2e-5)):
      out = jax.jit(_stats.chunk_stats, static_argnums=3)(
          *(jnp.asarray(a, dtype) for a in (xs, resp, centers)), ct, jnp.zeros((), dtype), jnp.ones((), dtype))
      np.testing.assert_allclose(out.counts, nk, rtol=rtol)
      np.testing.assert_allclose(out.means, means, rtol=rtol, atol=rtol * 10)
      np.testing.assert_allclose(out.m2, oracle[ct], rtol=rtol, atol=rtol * np.abs(oracle[ct]).max())


@pytest.mark.parametrize("covariance_type", fast_only(TYPES, "diag"))
def test_e_and_m_steps_match_sklearn(covariance_type):
  x, start = _start(covariance_type, seed=10)
  sk = _sklearn_from(start, 1e-6, max_iter=1)
  sk._initialize_parameters(x, np.random.RandomState(0))
  sk_ll, sk_log_resp = sk._e_step(x)
  ll, log_resp = gmmjax.e_step(start, x)
  np.testing.assert_allclose(ll, sk_ll, rtol=1e-12)
  np.testing.assert_allclose(log_resp, sk_log_resp, rtol=1e-9, atol=1e-9)
  sk._m_step(x, sk_log_resp)
  params = gmmjax.m_step(x, log_resp, covariance_type=covariance_type, reg_covar=1e-6)
  _assert_params_close(params, sk, rtol=1e-6)


@pytest.mark.parametrize("covariance_type", fast_only(TYPES, "tied"))
def test_full_fit_matches_sklearn(covariance_type):
  x, start = _start(covariance_type, seed=20, n=1000)
  sk = _sklearn_from(start, 1e-6, max_iter=200, tol=1e-6).fit(x)
  result = gmmjax.fit(
      jax.random.key(0), x, 4, covariance_type=covariance_type, init_params=start, max_iter=200, tol=1e-6
  )
  assert bool(result.converged) and sk.converged_
  assert int(result.n_iter) == sk.n_iter_
  np.testing.assert_allclose(result.log_likelihood, sk.lower_bound_, rtol=1e-8)
  np.testing.assert_allclose(result.log_likelihood_trace[: sk.n_iter_], sk.lower_bounds_, rtol=1e-8)
  assert np.all(np.isnan(result.log_likelihood_trace[sk.n_iter_ :]))
  _assert_params_close(result.params, sk, rtol=1e-6)


@pytest.mark.parametrize("covariance_type", fast_only(TYPES, "spherical"))
def test_integer_weights_equal_repeated_rows(covariance_type):
  x, start = _start(covariance_type, seed=30, n=300)
  counts = np.random.default_rng(0).integers(0, 4, size=len(x))
  weighted, ll_w = gmmjax.em_step(start, x, reg_covar=1e-6, weights=counts.astype(float))
  repeated, ll_r = gmmjax.em_step(start, np.repeat(x, counts, axis=0), reg_covar=1e-6)
  np.testing.assert_allclose(ll_w, ll_r, rtol=1e-12)
  for a, b in zip(jax.tree.leaves(weighted), jax.tree.leaves(repeated)):
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("covariance_type", TYPES)
@pytest.mark.slow
def test_chunk_size_does_not_change_the_fit(covariance_type):
  x, start = _start(covariance_type, seed=40, n=1003)
  one = gmmjax.fit(jax.random.key(0), x, 4, covariance_type=covariance_type, init_params=start, chunk_size=1003)
  many = gmmjax.fit(jax.random.key(0), x, 4, covariance_type=covariance_type, init_params=start, chunk_size=64)
  assert int(one.n_iter) == int(many.n_iter)
  for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(many)):
    np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)


@pytest.mark.slow  # the fast suite has test_sklearn.py::test_every_init_recovers_separated_clusters
@pytest.mark.parametrize("init", ["kmeans++", "kmeans", "random_from_data"])
def test_inits_find_separated_clusters(init):
  truth = random_params(50, 3, 2, "full", spread=10.0)
  x, z = mixture_data(51, truth, 900)
  result = gmmjax.fit(jax.random.key(1), x, 3, init=init, n_init=3)
  assert bool(result.converged)
  # Within a small margin of the likelihood at the true parameters.
  assert float(result.log_likelihood) > float(jnp.mean(gmmjax.log_prob(truth, x))) - 0.02
  from sklearn.metrics import adjusted_rand_score

  oracle = adjusted_rand_score(z, np.asarray(gmmjax.predict(truth, x)))
  assert adjusted_rand_score(z, np.asarray(gmmjax.predict(result.params, x))) > oracle - 0.01


def test_random_init_starts_near_the_data_mean():
  # Uniform random responsibilities (scikit-learn's "random") start every
  # component near the global mean: a valid, if slow, start.
  truth = random_params(52, 3, 2, "full", spread=10.0)
  x, _ = mixture_data(53, truth, 500)
  result = gmmjax.fit(jax.random.key(0), x, 3, init="random", max_iter=5, tol=0.0)
  np.testing.assert_allclose(result.params.means, np.broadcast_to(x.mean(0), (3, 2)), atol=1.0)
  assert np.all(np.diff(np.asarray(result.log_likelihood_trace)) >= -1e-12)


@pytest.mark.slow
def test_n_init_keeps_the_best_restart():
  truth = random_params(60, 5, 2, "full", spread=3.0)
  x, _ = mixture_data(61, truth, 500)
  keys = jax.random.split(jax.random.key(3), 4)
  best = gmmjax.fit(jax.random.key(3), x, 5, n_init=4, init="random")
  singles = [float(gmmjax.fit(k, x, 5, init="random").log_likelihood) for k in keys]
  np.testing.assert_allclose(float(best.log_likelihood), max(singles), rtol=1e-10)


@pytest.mark.parametrize("covariance_type", fast_only(TYPES, "diag"))
def test_float32_fit(covariance_type):
  truth = random_params(70, 3, 4, covariance_type, spread=5.0)
  x, _ = mixture_data(71, truth, 2000)
  r64 = gmmjax.fit(jax.random.key(0), x, 3, covariance_type=covariance_type, init_params=truth)
  r32 = gmmjax.fit(
      jax.random.key(0),
      x.astype(np.float32),
      3,
      covariance_type=covariance_type,
      init_params=jax.tree.map(lambda a: a.astype(jnp.float32), truth),
  )
  assert r32.params.means.dtype == jnp.float32
  np.testing.assert_allclose(r32.log_likelihood, r64.log_likelihood, rtol=1e-5)
  np.testing.assert_allclose(r32.params.means, r64.params.means, rtol=1e-3, atol=1e-3)


@pytest.mark.slow  # a fresh interpreter: ~20 s
def test_fit_with_x64_disabled():
  # The suite runs with x64 enabled; users mostly do not. A fresh process
  # checks the default-precision paths (every full-covariance scatter form),
  # then a float64 fit in scikit-learn's estimator, which turns x64 on for its
  # call only: index constants made before must not clash with 64-bit ones.
  code = """
import jax, numpy as np, gmmjax
from gmmjax.sklearn import GaussianMixture
assert not jax.config.jax_enable_x64
x = np.random.default_rng(0).standard_normal((400, 6))
for k in (1, 4):  # one component, and several
  for cov in gmmjax.COVARIANCE_TYPES:
    r = gmmjax.fit(jax.random.key(0), x.astype(np.float32), k, covariance_type=cov)
    assert r.params.means.dtype == np.float32 and np.isfinite(float(r.log_likelihood)), (k, cov)
r = gmmjax.fit(jax.random.key(0), np.tile(x, (1, 6)).astype(np.float32), 16)  # d = 36: block triangle
assert r.params.means.dtype == np.float32 and np.isfinite(float(r.log_likelihood))
gm = GaussianMixture(n_components=4, random_state=0).fit(x)
assert gm.means_.dtype == np.float64 and np.isfinite(gm.lower_bound_)
print("ok")
"""
  env = {k: v for k, v in os.environ.items() if k != "JAX_ENABLE_X64"}
  out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  assert out.stdout.strip() == "ok"


@pytest.mark.slow  # a fresh interpreter and 24 fits
def test_restarts_on_cpu_do_not_deadlock():
  # fit(..., n_init=2) used to hang for ever on a 2-core CPU, every thread idle:
  # vmap turned the precision Cholesky's retry `cond` into a select, so two
  # batched LAPACK Cholesky calls ran side by side, each holding a thread of
  # XLA's pool while waiting on sub-tasks queued behind the other. Before the
  # fix this loop of 40 fits hung in most runs, usually within its first 20.
  code = """
import jax, numpy as np, gmmjax
rng = np.random.default_rng(0)
x = (rng.standard_normal((2000, 34)) * rng.uniform(0.2, 2, 34)).astype(np.float32)
# Compiled with LLVM's optimisations (the suite turns them off): the fits run several times faster and the
# thread pool sees the same concurrent LAPACK calls.
fit = jax.jit(lambda key, x: gmmjax.fit(key, x, 16, n_init=2, max_iter=10, reg_covar=1e-3),
              compiler_options={"xla_backend_optimization_level": 2})
for i in range(24):
  jax.block_until_ready(fit(jax.random.key(i), x))
print("ok")
"""
  env = {k: v for k, v in os.environ.items() if k != "JAX_ENABLE_X64"}
  try:
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=240)
  except subprocess.TimeoutExpired:
    pytest.fail("24 small fits with n_init=2 did not finish in 240 s: the CPU deadlock is back")
  assert out.returncode == 0, out.stderr[-3000:]
  assert out.stdout.strip() == "ok"
