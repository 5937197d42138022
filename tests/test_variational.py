"""Variational Bayesian mixtures against scikit-learn's `BayesianGaussianMixture`, and their invariants."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from helpers import fast_only
from hypothesis import given
from hypothesis import strategies as st
from sklearn.mixture import BayesianGaussianMixture

import gmmjax
from gmmjax import variational as V

COV_TYPES = gmmjax.COVARIANCE_TYPES
WEIGHT_PRIORS = V.WEIGHT_PRIOR_TYPES
K, D = 5, 3


def _data(seed=0, n=150):
  rng = np.random.default_rng(seed)
  sizes = (n * 2 // 5, n // 3, n - n * 2 // 5 - n // 3)
  return np.concatenate([rng.normal(size=(sizes[0], D)) + 5, rng.normal(size=(sizes[1], D)) * 0.5 - 2,
                         rng.normal(size=(sizes[2], D))])


def _resp(seed, n, k=K):
  r = np.random.default_rng(seed).uniform(size=(n, k))
  return r / r.sum(axis=1, keepdims=True)


def _sklearn(ct, wt, x, resp, **kw):
  """scikit-learn's estimator, its parameters checked on `x` and initialised from `resp`."""
  b = BayesianGaussianMixture(n_components=resp.shape[1], covariance_type=ct, weight_concentration_prior_type=wt,
                              **kw)
  b._initialize_parameters = lambda X, random_state, xp=None: b._initialize(X, resp)
  b._check_parameters(x)
  return b


def _start(ct, wt, x, resp, weights=None):
  prior = V.resolve_prior(V.variational_prior(resp.shape[1], x.shape[1], covariance_type=ct,
                                              weight_concentration_prior_type=wt), x, weights)
  return prior, V.variational_m_step(prior, x, resp, weights=weights)


def _fit(x, q0, **kw):
  """The configuration most tests share (one compiled program): full, Dirichlet process, from `q0`."""
  return V.fit_variational(jax.random.key(0), x, K, init_posterior=q0, max_iter=100, **kw)


def _rel(a, b):
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def _sk_posterior(b, wt):
  conc = np.stack(b.weight_concentration_) if wt == "dirichlet_process" else b.weight_concentration_
  return (conc, b.mean_precision_, b.means_, b.degrees_of_freedom_, b.covariances_, b.precisions_cholesky_)


def _posterior(q):
  return (q.weight_concentration, q.mean_precision, q.means, q.degrees_of_freedom, q.covariances,
          q.precisions_cholesky)


@pytest.mark.parametrize("ct, wt", fast_only([(ct, wt) for ct in COV_TYPES for wt in WEIGHT_PRIORS],
                                               ("full", "dirichlet_process"), ("diag", "dirichlet_distribution")))
def test_one_step_matches_sklearn(ct, wt):
  x = _data()
  resp = _resp(1, len(x))
  b = _sklearn(ct, wt, x, resp)
  b._initialize(x, resp)
  prior, q = _start(ct, wt, x, resp)
  assert _rel(prior.mean, b.mean_prior_) < 1e-12 and _rel(prior.covariance, b.covariance_prior_) < 1e-12
  for ours, theirs in zip(_posterior(q), _sk_posterior(b, wt)):
    assert _rel(ours, theirs) < 1e-10
  # The E-step, then the M-step from its responsibilities and the bound.
  log_norm, log_resp = b._estimate_log_prob_resp(x)
  our_norm, our_log_resp = V.variational_log_resp(q, x)
  assert _rel(our_log_resp, log_resp) < 1e-10 and _rel(our_norm, log_norm) < 1e-10
  b._m_step(x, log_resp)
  q = V.variational_m_step(prior, x, np.exp(np.asarray(our_log_resp)))
  for ours, theirs in zip(_posterior(q), _sk_posterior(b, wt)):
    assert _rel(ours, theirs) < 1e-10
  assert _rel(V.lower_bound(q, our_log_resp), b._compute_lower_bound(log_resp, log_norm)) < 1e-10


@pytest.mark.parametrize("ct, wt", fast_only([("full", "dirichlet_process"), ("tied", "dirichlet_distribution"),
                                              ("diag", "dirichlet_process"), ("spherical", "dirichlet_distribution")],
                                             ("full", "dirichlet_process"), ("diag", "dirichlet_process")))
def test_fit_matches_sklearn_from_the_same_start(ct, wt):
  x = _data()
  resp = _resp(2, len(x))
  b = _sklearn(ct, wt, x, resp, max_iter=100, tol=1e-6).fit(x)
  _, q0 = _start(ct, wt, x, resp)
  fit = _fit(x, q0, covariance_type=ct, weight_concentration_prior_type=wt, tol=1e-6)
  assert int(fit.n_iter) == b.n_iter_ and bool(fit.converged) == b.converged_
  assert abs(float(fit.lower_bound) - float(np.squeeze(b.lower_bound_))) < 1e-8 * abs(float(np.squeeze(b.lower_bound_)))
  trace = np.asarray(fit.lower_bound_trace)[: b.n_iter_]
  np.testing.assert_allclose(trace, np.ravel(b.lower_bounds_), rtol=1e-9)
  for ours, theirs in zip(_posterior(fit.posterior), _sk_posterior(b, wt)):
    assert _rel(ours, theirs) < 1e-6
  np.testing.assert_allclose(np.asarray(V.expected_weights(fit.posterior)), b.weights_, rtol=1e-6, atol=1e-12)


@given(seed=st.integers(0, 10_000), scale=st.floats(1e-3, 1e3), offset=st.floats(-1e3, 1e3))
def test_bound_never_decreases(seed, scale, offset):
  x = _data(seed % 7) * scale + offset
  _, q0 = _start("full", "dirichlet_process", x, _resp(seed, len(x)))
  fit = _fit(x, q0, tol=0.0)
  trace = np.asarray(fit.lower_bound_trace)[: int(fit.n_iter)]
  assert np.all(np.isfinite(trace))
  assert np.all(np.diff(trace) >= -1e-9 * np.abs(trace[1:]))


def test_float32_reaches_the_float64_bound_far_from_the_origin_with_duplicates():
  x = _data(3)
  x = np.concatenate([x, x[:40]]) * 1e3 + 1e6  # duplicated rows, far from the origin, large scale
  resp = _resp(4, len(x))
  _, q0 = _start("full", "dirichlet_process", x, resp)
  f64 = _fit(x, q0, tol=0.0)
  f32 = _fit(x.astype(np.float32), q0, tol=0.0)
  assert f32.lower_bound.dtype == jnp.float32
  assert abs(float(f32.lower_bound) - float(f64.lower_bound)) < 1e-5 * abs(float(f64.lower_bound))
  np.testing.assert_allclose(np.asarray(f32.posterior.means), np.asarray(f64.posterior.means), rtol=1e-5)
  np.testing.assert_allclose(np.asarray(V.expected_weights(f32.posterior)),
                             np.asarray(V.expected_weights(f64.posterior)), atol=1e-5)


def test_weights_equal_repeated_rows():
  x = _data(5)
  w = np.random.default_rng(6).integers(0, 4, len(x)).astype(np.float64)
  repeated = np.repeat(x, w.astype(int), axis=0)
  resp = _resp(7, len(x))
  _, q_weighted = _start("full", "dirichlet_process", x, resp, weights=w)
  _, q_repeated = _start("full", "dirichlet_process", repeated, np.repeat(resp, w.astype(int), axis=0))
  for a, b in zip(_posterior(q_weighted), _posterior(q_repeated)):
    assert _rel(a, b) < 1e-10
  weighted = _fit(x, q_weighted, weights=w, tol=1e-8)
  rows = _fit(repeated, q_weighted, tol=1e-8)
  assert int(weighted.n_iter) == int(rows.n_iter)
  assert _rel(weighted.lower_bound, rows.lower_bound) < 1e-10
  for a, b in zip(_posterior(weighted.posterior), _posterior(rows.posterior)):
    assert _rel(a, b) < 1e-8


@pytest.mark.slow
def test_vmap_of_fits_equals_a_loop():
  x = _data(8)
  keys = jax.random.split(jax.random.key(1), 3)
  fit = lambda key: V.fit_variational(key, x, K, covariance_type="spherical", max_iter=30, init="kmeans++")
  batched = jax.vmap(fit)(keys)
  for i, key in enumerate(keys):
    single = fit(key)
    assert int(batched.n_iter[i]) == int(single.n_iter)
    np.testing.assert_allclose(float(batched.lower_bound[i]), float(single.lower_bound), rtol=1e-10)
    np.testing.assert_allclose(np.asarray(batched.posterior.means[i]), np.asarray(single.posterior.means),
                               rtol=1e-8, atol=1e-10)


def test_dirichlet_process_switches_off_unneeded_components():
  x = _data(9)
  # The three clusters (rows in order), the first two each split over two components.
  split = np.repeat([0, 1, 0, 1, 2, 3, 2, 3, 4, 4], 15)
  _, q0 = _start("full", "dirichlet_process", x, np.eye(K)[split])
  fit = _fit(x, q0, weight_concentration_prior=1e-3)
  weights = np.asarray(V.expected_weights(fit.posterior))
  assert np.sum(weights > 0.01) == 3
  assert bool(fit.converged)


def test_point_estimate_and_posterior_predictive():
  x = _data(10)
  _, q0 = _start("full", "dirichlet_process", x, _resp(10, len(x)))
  q = _fit(x, q0).posterior
  params = V.point_estimate(q)
  assert np.isfinite(np.asarray(gmmjax.log_prob(params, x))).all()
  samples, _ = gmmjax.sample(jax.random.key(1), params, 10)
  assert samples.shape == (10, D)
  # Full: a mixture of multivariate Student-t's (Bishop 10.81).
  pts = x[:20]
  w = np.asarray(V.expected_weights(q))
  nu, beta = np.asarray(q.degrees_of_freedom), np.asarray(q.mean_precision)
  df = nu + 1 - D
  precision = np.asarray(q.precisions)
  dens = sum(w[j] * scipy.stats.multivariate_t(
      np.asarray(q.means[j]), np.linalg.inv(df[j] * beta[j] / ((1 + beta[j]) * nu[j]) * precision[j]), df=df[j]
  ).pdf(pts) for j in range(K))
  np.testing.assert_allclose(np.asarray(V.predictive_log_prob(q, pts)), np.log(dens), rtol=1e-10)


@pytest.mark.parametrize("ct, wt", fast_only([("diag", "dirichlet_process"), ("spherical", "dirichlet_distribution")],
                                             ("diag", "dirichlet_process")))
def test_posterior_predictive_of_gamma_variances(ct, wt):
  x = _data(11)
  _, q0 = _start(ct, wt, x, _resp(11, len(x)))
  q = _fit(x, q0, covariance_type=ct, weight_concentration_prior_type=wt).posterior
  pts = x[:20]
  w = np.asarray(V.expected_weights(q))
  nu, beta = np.asarray(q.degrees_of_freedom), np.asarray(q.mean_precision)
  var = np.broadcast_to(np.asarray(q.covariances).reshape(K, -1), (K, D))
  dens = sum(w[j] * np.prod(scipy.stats.t(df=nu[j], loc=np.asarray(q.means[j]),
                                          scale=np.sqrt(var[j] * (1 + beta[j]) / beta[j])).pdf(pts), axis=1)
             for j in range(K))
  np.testing.assert_allclose(np.asarray(V.predictive_log_prob(q, pts)), np.log(dens), rtol=1e-10)


def _separated(n=2000):
  rng = np.random.default_rng(13)
  return rng.normal(size=(n, D)) + 8 * np.repeat(np.eye(D), [700, 700, n - 1400], axis=0)


def test_svi_with_unit_steps_on_all_the_data_is_the_batch_iteration():
  x = _separated()
  prior = V.resolve_prior(V.variational_prior(K, D, covariance_type="diag"), x)
  state = V.svi_init(jax.random.key(0), x, K, len(x), prior=prior)
  fit = _fit(x, V.svi_posterior(state), covariance_type="diag", tol=0.0)
  for _ in range(100):
    state = V.svi_update(state, x, 1.0)
  for a, b in zip(_posterior(V.svi_posterior(state)), _posterior(fit.posterior)):
    assert _rel(a, b) < 1e-10


@pytest.mark.slow
def test_svi_on_a_long_stream_approaches_the_batch_bound():
  x = _separated()
  rng = np.random.default_rng(14)
  k = 3
  prior = V.resolve_prior(V.variational_prior(k, D, covariance_type="diag"), x)
  batch = V.fit_variational(jax.random.key(0), x, k, covariance_type="diag", max_iter=100, tol=1e-6)
  state = V.svi_init(jax.random.key(0), x[rng.choice(len(x), 200)], k, len(x), prior=prior)
  # 2000 mini-batches of 50 rows (50 passes' worth), scanned.
  state, _ = jax.lax.scan(lambda s, xb: (V.svi_update_unchecked(s, xb, None, None), None), state,
                          x[rng.choice(len(x), (2000, 50))])
  q = V.svi_posterior(state)
  # The bound of the SVI posterior on all the data, after one more coordinate step.
  log_resp = V.variational_log_resp(q, x)[1]
  bound = V.lower_bound(V.variational_m_step(prior, x, np.exp(np.asarray(log_resp))), log_resp)
  assert abs(float(bound) - float(batch.lower_bound)) < 1e-3 * abs(float(batch.lower_bound))
  order = lambda p: np.argsort(np.asarray(p.means[:, 0]) + 2 * np.asarray(p.means[:, 1]))
  np.testing.assert_allclose(np.asarray(q.means)[order(q)], np.asarray(batch.posterior.means)[order(batch.posterior)],
                             atol=0.1)


@pytest.mark.parametrize("kwargs, message", [
    (dict(weight_concentration_prior_type="dirichlet"), "weight_concentration_prior_type"),
    (dict(degrees_of_freedom_prior=1.5), "degrees_of_freedom_prior must be greater than 2"),
    (dict(weight_concentration_prior=0.0), "weight_concentration_prior must be positive"),
    (dict(mean_precision_prior=-1.0), "mean_precision_prior must be positive"),
    (dict(mean_prior=np.zeros(2)), "mean_prior must have shape"),
    (dict(covariance_prior=-np.eye(3)), "symmetric, positive-definite"),
    (dict(covariance_type="diag", covariance_prior=np.zeros(3)), "covariance_prior must be positive"),
    (dict(weights=np.full(150, 0.005)), "total weight above 1"),
    (dict(n_components=200), "n_components=200 must be <= n_samples=150"),
])
def test_bad_input_is_refused_before_compiling(kwargs, message):
  kwargs = {"n_components": K, **kwargs}
  k = kwargs.pop("n_components")
  with pytest.raises(ValueError, match=message):
    V.fit_variational(jax.random.key(0), _data(), k, **kwargs)


def test_nan_data_is_refused():
  x = _data()
  x[3, 1] = np.nan
  with pytest.raises(ValueError, match="NaN"):
    V.fit_variational(jax.random.key(0), x, K)


def test_streamed_equals_in_memory():
  x = _data(15)
  w = np.random.default_rng(16).uniform(0.5, 2.0, len(x))
  _, q0 = _start("full", "dirichlet_process", x, _resp(15, len(x)), weights=w)
  in_memory = _fit(x, q0, weights=w, tol=1e-8)
  batches = [(x[:70], w[:70]), (x[70:130], w[70:130]), (x[130:], w[130:])]
  streamed = V.fit_variational_stream(jax.random.key(0), batches, K, init_posterior=q0, max_iter=100, tol=1e-8,
                                      progress=False)
  assert int(streamed.n_iter) == int(in_memory.n_iter) > 5
  assert _rel(streamed.lower_bound, in_memory.lower_bound) < 1e-10
  for a, b in zip(_posterior(streamed.posterior), _posterior(in_memory.posterior)):
    assert _rel(a, b) < 1e-8
  for a, b in zip(jax.tree.leaves(streamed.prior), jax.tree.leaves(in_memory.prior)):
    assert _rel(a, b) < 1e-10
