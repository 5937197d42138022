"""`gmmjax.interop`: distrax, TFP-on-JAX and scikit-learn mixtures agree with `GMMParams`."""

import os
import subprocess
import sys
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats
from sklearn import mixture
from sklearn.exceptions import ConvergenceWarning

import gmmjax
from gmmjax import interop
from gmmjax.sklearn import GaussianMixture

from helpers import fast_only, full_covariances, mixture_data, random_params

COV_TYPES = gmmjax.COVARIANCE_TYPES
BACKENDS = {
    "distrax": (interop.to_distrax, interop.from_distrax),
    "tfp": (interop.to_tfp, interop.from_tfp),
}


def third_party():
  """distrax and TFP broadcast by rank promotion inside their methods; the suite
  raises on it, so their own calls run with it allowed (gmmjax's never do)."""
  return jax.numpy_rank_promotion("allow")


def _scipy_log_prob(params, x):
  """Oracle: log sum_k w_k N(x | mu_k, Sigma_k) with scipy."""
  cov = full_covariances(params)
  comps = [
      np.log(float(w)) + stats.multivariate_normal(np.asarray(m), c).logpdf(x)
      for w, m, c in zip(params.weights, params.means, cov)
  ]
  return np.logaddexp.reduce(np.stack(comps, axis=1), axis=1)


def _case(covariance_type, seed=0, k=3, d=4, n=40):
  params = random_params(seed, k, d, covariance_type)
  x, _ = mixture_data(seed + 1, params, n)
  return params, x


@pytest.mark.parametrize(
    "backend, covariance_type",
    fast_only([(b, c) for b in BACKENDS for c in COV_TYPES], ("distrax", "diag"), ("tfp", "diag")),
)
def test_log_prob_agrees_and_round_trip(backend, covariance_type):
  to, frm = BACKENDS[backend]
  params, x = _case(covariance_type)
  dist = to(params)
  oracle = _scipy_log_prob(params, x)
  with third_party():
    np.testing.assert_allclose(np.asarray(dist.log_prob(x)), oracle, rtol=1e-10)
  np.testing.assert_allclose(np.asarray(gmmjax.log_prob(params, x)), oracle, rtol=1e-10)

  back = frm(dist, covariance_type=covariance_type)
  assert back.covariance_type == covariance_type
  np.testing.assert_allclose(back.weights, params.weights, rtol=1e-12)
  np.testing.assert_allclose(back.means, params.means, rtol=1e-12)
  np.testing.assert_allclose(back.covariances, params.covariances, rtol=1e-10)
  np.testing.assert_allclose(np.asarray(gmmjax.log_prob(back, x)), oracle, rtol=1e-10)

  # Without a requested type: diagonal families come back "diag", the others "full".
  inferred = frm(dist)
  assert inferred.covariance_type == ("diag" if covariance_type in ("diag", "spherical") else "full")
  np.testing.assert_allclose(np.asarray(gmmjax.log_prob(inferred, x)), oracle, rtol=1e-10)


@pytest.mark.slow
@pytest.mark.parametrize("backend", list(BACKENDS))
def test_samples_have_the_mixture_moments(backend):
  to, _ = BACKENDS[backend]
  params, _ = _case("full", k=2, d=2)
  with third_party():
    xs = np.asarray(to(params).sample(seed=jax.random.key(0), sample_shape=(40_000,)))
  mean = np.asarray(params.weights) @ np.asarray(params.means)
  np.testing.assert_allclose(xs.mean(0), mean, atol=0.1)


@pytest.mark.slow
def test_from_tfp_of_an_independently_built_mixture():
  """A mixture built with TFP's own parameterisation (logits, scale_tril)."""
  from tensorflow_probability.substrates import jax as tfp

  tfd = tfp.distributions
  rng = np.random.default_rng(7)
  k, d = 3, 3
  a = rng.standard_normal((k, d, d))
  cov = a @ np.swapaxes(a, -1, -2) + 0.3 * np.eye(d)[None]
  logits = rng.standard_normal(k)
  means = rng.standard_normal((k, d)) * 3
  dist = tfd.MixtureSameFamily(
      tfd.Categorical(logits=jnp.asarray(logits)),
      tfd.MultivariateNormalTriL(loc=jnp.asarray(means), scale_tril=jnp.asarray(np.linalg.cholesky(cov))),
  )
  params = interop.from_tfp(dist)
  np.testing.assert_allclose(params.weights, np.exp(logits) / np.exp(logits).sum(), rtol=1e-12)
  np.testing.assert_allclose(params.covariances, cov, rtol=1e-10)
  x = rng.standard_normal((30, d)) * 3
  with third_party():
    expected = np.asarray(dist.log_prob(x))
  np.testing.assert_allclose(np.asarray(gmmjax.log_prob(params, x)), expected, rtol=1e-10)


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_structure_is_checked_when_narrowing(backend):
  to, frm = BACKENDS[backend]
  full, _ = _case("full")
  with pytest.raises(ValueError, match="tied"):
    frm(to(full), covariance_type="tied")
  with pytest.raises(ValueError, match="correlated"):
    frm(to(full), covariance_type="diag")
  diag, x = _case("diag")
  with pytest.raises(ValueError, match="spherical"):
    frm(to(diag), covariance_type="spherical")
  # Widening always works, and narrowing works where the structure holds.
  for wider in ("full", "diag"):
    np.testing.assert_allclose(
        np.asarray(gmmjax.log_prob(frm(to(diag), covariance_type=wider), x)),
        np.asarray(gmmjax.log_prob(diag, x)),
        rtol=1e-10,
    )
  tied, x = _case("tied")
  np.testing.assert_allclose(tied.covariances, frm(to(tied), covariance_type="tied").covariances, rtol=1e-10)
  spherical, x = _case("spherical")
  np.testing.assert_allclose(
      spherical.covariances, frm(to(spherical), covariance_type="spherical").covariances, rtol=1e-10
  )
  with pytest.raises(ValueError, match="covariance_type"):
    frm(to(full), covariance_type="banana")
  with pytest.raises(ValueError, match="MixtureSameFamily"):
    frm(to(full).components_distribution)


def test_conversion_works_under_jit_and_grad():
  params, x = _case("full")

  @jax.jit
  def mean_log_prob(params, x):
    dist = interop.to_distrax(params)  # gmmjax code: traced with rank promotion raising
    with third_party():
      return jnp.mean(dist.log_prob(x))

  np.testing.assert_allclose(mean_log_prob(params, x), jnp.mean(gmmjax.log_prob(params, x)), rtol=1e-12)
  g_ours = jax.grad(lambda m: jnp.mean(gmmjax.log_prob(params.__class__(params.weights, m, params.precisions_cholesky), x)))
  g_theirs = jax.grad(lambda m: mean_log_prob(params.__class__(params.weights, m, params.precisions_cholesky), x))
  np.testing.assert_allclose(g_theirs(params.means), g_ours(params.means), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("covariance_type", fast_only(COV_TYPES, "full"))
def test_to_sklearn_predicts_and_continues_em(covariance_type):
  params, x = _case(covariance_type, n=200)
  gm = interop.to_sklearn(params, max_iter=1)
  np.testing.assert_allclose(gm.score_samples(x), _scipy_log_prob(params, x), rtol=1e-10)
  np.testing.assert_array_equal(gm.predict(x), np.asarray(gmmjax.predict(params, x)))
  np.testing.assert_allclose(gm.bic(x), float(gmmjax.bic(params, x)), rtol=1e-10)
  # fit() starts scikit-learn's EM from `params`: one step equals gmmjax's.
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    gm.fit(x)
  stepped, _ = gmmjax.em_step(params, x, reg_covar=1e-6)
  np.testing.assert_allclose(gm.means_, stepped.means, rtol=1e-9)
  np.testing.assert_allclose(gm.covariances_, stepped.covariances, rtol=1e-9)


@pytest.mark.parametrize("estimator_class", fast_only([mixture.GaussianMixture, GaussianMixture], mixture.GaussianMixture))
def test_from_sklearn_of_fitted_estimators(estimator_class):
  params, x = _case("diag", n=200)
  est = estimator_class(3, covariance_type="diag", random_state=0).fit(x)
  converted = interop.from_sklearn(est)
  assert converted.covariance_type == "diag"
  np.testing.assert_allclose(np.asarray(gmmjax.log_prob(converted, x)), est.score_samples(x), rtol=1e-10)
  with pytest.raises(ValueError, match="fitted"):
    interop.from_sklearn(estimator_class(3))


def test_missing_library_error_says_how_to_install(monkeypatch):
  params, _ = _case("full")
  monkeypatch.setitem(sys.modules, "distrax", None)  # makes `import distrax` fail
  with pytest.raises(ImportError, match=r"pip install 'gmmjax\[interop\]'"):
    interop.to_distrax(params)


def test_importing_interop_imports_no_optional_library():
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  script = (
      "import sys, gmmjax.interop\n"
      "loaded = [m for m in ('distrax', 'tensorflow_probability', 'sklearn') if m in sys.modules]\n"
      "assert not loaded, loaded\n"
  )
  env = {**os.environ, "PYTHONPATH": repo + os.pathsep + os.environ.get("PYTHONPATH", "")}
  out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
  assert out.returncode == 0, out.stderr[-2000:]
