"""`gmmjax.sklearn.GaussianMixture` against scikit-learn's own class and its estimator checks."""

import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from sklearn import mixture
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_rand_score
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import estimator_checks_generator

import gmmjax
from gmmjax.sklearn import GaussianMixture

from helpers import fast_only, mixture_data, random_params

COV_TYPES = gmmjax.COVARIANCE_TYPES
FITTED = ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_")

# scikit-learn's estimator checks this estimator does not pass, with the reason.
# Every check passes; `check_array_api_input` is skipped by scikit-learn itself
# unless SCIPY_ARRAY_API=1 is set (the estimator takes NumPy-convertible input
# and does not declare array API support).
EXPECTED_FAILED_CHECKS: dict[str, str] = {}
# Checks that fit nothing (construction, parameters, tags, unfitted use, input
# rejected before any compilation) run in the fast suite; the rest fit on data of
# a new shape each, one compilation or more per check, and run with the slow tests.
FAST_CHECKS = {
    "check_estimator_cloneable",
    "check_estimator_tags_renamed",
    "check_valid_tag_types",
    "check_estimator_repr",
    "check_no_attributes_set_in_init",
    "check_estimators_unfitted",
    "check_do_not_raise_errors_in_init_or_set_params",
    "check_mixin_order",
    "check_parameters_default_constructible",
    "check_get_params_invariance",
    "check_set_params",
    "check_fit1d",
    "check_complex_data",
    "check_estimators_empty_data_messages",
    "check_all_zero_sample_weights_error",
}


def estimator_checks(estimator, expected_failed_checks=None):
  """scikit-learn's checks of `estimator` as `parametrize` values, those outside `FAST_CHECKS` slow."""
  params = []
  for item in estimator_checks_generator(
      estimator, expected_failed_checks=expected_failed_checks or {}, mark="xfail", xfail_strict=True
  ):
    values, marks = (item.values, list(item.marks)) if hasattr(item, "values") else (item, [])
    name = getattr(values[1], "func", values[1]).__name__
    keywords = getattr(values[1], "keywords", {})
    suffix = "(" + ",".join(f"{k}={v}" for k, v in keywords.items()) + ")" if keywords else ""
    marks += [] if name in FAST_CHECKS else [pytest.mark.slow]
    params.append(pytest.param(*values, marks=marks, id=f"{name}{suffix}"))
  return params


@pytest.mark.parametrize("estimator, check", estimator_checks(GaussianMixture(), EXPECTED_FAILED_CHECKS))
def test_sklearn_estimator_checks(estimator, check):
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    check(estimator)


def _data(seed=0, n=300, d=3, k=3, spread=1.5):
  """Overlapping clusters, so EM runs for many iterations."""
  params = random_params(seed, k, d, "full", spread=spread)
  x, z = mixture_data(seed + 1, params, n)
  return x, z


def _init(x, k, covariance_type, seed=0):
  """Deliberately poor starting parameters in scikit-learn's shapes."""
  rng = np.random.default_rng(seed)
  d = x.shape[1]
  means = x[rng.choice(x.shape[0], k, replace=False)]
  weights = np.full(k, 1.0 / k)
  precisions = {
      "full": np.broadcast_to(np.eye(d), (k, d, d)).copy(),
      "tied": np.eye(d),
      "diag": np.ones((k, d)),
      "spherical": np.ones(k),
  }[covariance_type] * 0.5
  return dict(weights_init=weights, means_init=means, precisions_init=precisions)


def _assert_same_fit(ours, theirs, x, rtol=1e-7):
  for name in FITTED:
    np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name), rtol=rtol, atol=1e-9, err_msg=name)
  assert ours.n_iter_ == theirs.n_iter_
  assert ours.converged_ == theirs.converged_
  np.testing.assert_allclose(ours.lower_bound_, theirs.lower_bound_, rtol=1e-10)
  np.testing.assert_allclose(ours.lower_bounds_, theirs.lower_bounds_, rtol=1e-10)
  np.testing.assert_allclose(ours.score_samples(x), theirs.score_samples(x), rtol=1e-9)
  np.testing.assert_allclose(ours.predict_proba(x), theirs.predict_proba(x), atol=1e-9)
  np.testing.assert_array_equal(ours.predict(x), theirs.predict(x))
  np.testing.assert_allclose(ours.score(x), theirs.score(x), rtol=1e-10)
  np.testing.assert_allclose(ours.bic(x), theirs.bic(x), rtol=1e-10)
  np.testing.assert_allclose(ours.aic(x), theirs.aic(x), rtol=1e-10)


@pytest.mark.parametrize("covariance_type", fast_only(COV_TYPES, "diag"))
def test_same_fit_as_sklearn_from_same_init(covariance_type):
  x, _ = _data()
  kw = dict(n_components=3, covariance_type=covariance_type, tol=1e-6, max_iter=500, **_init(x, 3, covariance_type))
  theirs = mixture.GaussianMixture(**kw)
  ours = GaussianMixture(**kw)
  labels_theirs = theirs.fit_predict(x)
  labels_ours = ours.fit_predict(x)
  assert ours.n_iter_ > 5  # the comparison covers a real run of EM
  assert ours.converged_
  _assert_same_fit(ours, theirs, x)
  np.testing.assert_array_equal(labels_ours, labels_theirs)


def test_convergence_warning_like_sklearn():
  x, _ = _data()
  kw = dict(n_components=3, tol=0.0, max_iter=2, **_init(x, 3, "full"))
  with pytest.warns(ConvergenceWarning, match="did not converge"):
    theirs = mixture.GaussianMixture(**kw).fit(x)
  with pytest.warns(ConvergenceWarning, match="did not converge"):
    ours = GaussianMixture(**kw).fit(x)
  assert not ours.converged_ and ours.n_iter_ == 2
  _assert_same_fit(ours, theirs, x)
  with warnings.catch_warnings():
    warnings.simplefilter("error", ConvergenceWarning)
    GaussianMixture(**{**kw, "tol": 1e-3, "max_iter": 500}).fit(x)
    GaussianMixture(**{**kw, "max_iter": 0}).fit(x)  # 0 iterations: initialisation only, no warning


@pytest.mark.parametrize("covariance_type", fast_only(["full", "diag"], "diag"))
def test_warm_start_continues_like_sklearn(covariance_type):
  x, _ = _data()
  kw = dict(
      n_components=3, covariance_type=covariance_type, tol=1e-4, max_iter=4, warm_start=True,
      **_init(x, 3, covariance_type),
  )
  theirs, ours = mixture.GaussianMixture(**kw), GaussianMixture(**kw)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    for _ in range(3):
      theirs.fit(x)
      ours.fit(x)
      _assert_same_fit(ours, theirs, x)
    # Later fits continued instead of restarting: the likelihood kept rising.
    assert ours.lower_bound_ > GaussianMixture(**{**kw, "warm_start": False}).fit(x).lower_bound_
  # Run to convergence, then once more: the stopping rule carries over from the
  # previous fit, so the extra fit stops after one iteration.
  for gm in (theirs, ours):
    gm.set_params(max_iter=500).fit(x)
  _assert_same_fit(ours, theirs, x)
  for gm in (theirs, ours):
    gm.fit(x)
  _assert_same_fit(ours, theirs, x)
  assert ours.n_iter_ == 1 and ours.converged_


@pytest.mark.slow  # the fast suite has test_core_em.py::test_integer_weights_equal_repeated_rows
@pytest.mark.parametrize("covariance_type", ["full", "tied", "spherical"])
def test_integer_sample_weights_equal_repeated_rows_in_sklearn(covariance_type):
  x, _ = _data()
  w = np.random.default_rng(3).integers(0, 4, x.shape[0])
  kw = dict(n_components=3, covariance_type=covariance_type, tol=1e-6, max_iter=500, **_init(x, 3, covariance_type))
  theirs = mixture.GaussianMixture(**kw).fit(np.repeat(x, w, axis=0))
  ours = GaussianMixture(**kw).fit(x, sample_weight=w)
  for name in FITTED:
    np.testing.assert_allclose(getattr(ours, name), getattr(theirs, name), rtol=1e-7, atol=1e-9, err_msg=name)
  assert ours.n_iter_ == theirs.n_iter_
  np.testing.assert_allclose(ours.lower_bound_, theirs.lower_bound_, rtol=1e-10)


@pytest.mark.slow
def test_float32_in_float32_out_and_float64_in_float64_out():
  x, _ = _data()
  kw = dict(n_components=3, random_state=0, max_iter=20, tol=1e-3)
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    gm32 = GaussianMixture(**kw).fit(x.astype(np.float32))
    gm64 = GaussianMixture(**kw).fit(x)
  for name in FITTED:
    assert getattr(gm32, name).dtype == np.float32, name
    assert getattr(gm64, name).dtype == np.float64, name
  assert gm32.score_samples(x.astype(np.float32)).dtype == np.float32
  assert gm64.score_samples(x).dtype == np.float64
  assert np.all(np.isfinite(gm32.score_samples(x.astype(np.float32))))
  # Integer input is fitted as float64, as in scikit-learn.
  assert GaussianMixture(n_components=2, random_state=0).fit(np.round(x * 10).astype(int)).means_.dtype == np.float64


@pytest.mark.slow  # a fresh interpreter
def test_float64_without_global_x64_and_config_left_alone():
  """Outside the test suite's x64 setting: float64 precision in a scoped context only."""
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  script = textwrap.dedent(
      """
      import jax, jax.numpy as jnp, numpy as np
      from sklearn import mixture
      from gmmjax.sklearn import GaussianMixture
      assert not jax.config.jax_enable_x64
      rng = np.random.default_rng(0)
      x = np.concatenate([rng.normal(0, 1, (150, 2)), rng.normal(1.5, 0.7, (150, 2))])
      kw = dict(n_components=2, tol=1e-8, max_iter=300, weights_init=[0.5, 0.5],
                means_init=x[:2], precisions_init=np.stack([np.eye(2)] * 2))
      ours, theirs = GaussianMixture(**kw).fit(x), mixture.GaussianMixture(**kw).fit(x)
      assert ours.means_.dtype == np.float64
      assert ours.n_iter_ == theirs.n_iter_ > 10, (ours.n_iter_, theirs.n_iter_)
      np.testing.assert_allclose(ours.means_, theirs.means_, rtol=1e-9)
      np.testing.assert_allclose(ours.score_samples(x), theirs.score_samples(x), rtol=1e-12)
      assert not jax.config.jax_enable_x64 and jnp.ones(1).dtype == jnp.float32
      print("ok")
      """
  )
  env = {**os.environ, "PYTHONPATH": repo + os.pathsep + os.environ.get("PYTHONPATH", "")}
  env.pop("JAX_ENABLE_X64", None)
  out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
  assert out.returncode == 0, out.stderr[-3000:]
  assert out.stdout.strip() == "ok"


@pytest.mark.parametrize("init_params", fast_only(["kmeans", "k-means++", "random", "random_from_data"], "kmeans"))
def test_every_init_recovers_separated_clusters(init_params):
  x, z = mixture_data(5, random_params(4, 3, 3, "full", spread=8.0), 300)
  # Three random rows land one per cluster 2 times in 9: that init needs more restarts.
  n_init = 10 if init_params == "random_from_data" else 3
  gm = GaussianMixture(3, init_params=init_params, n_init=n_init, random_state=0, max_iter=200).fit(x)
  assert gm.converged_
  assert adjusted_rand_score(z, gm.predict(x)) > 0.99
  again = GaussianMixture(3, init_params=init_params, n_init=n_init, random_state=0, max_iter=200).fit(x)
  np.testing.assert_array_equal(again.means_, gm.means_)  # an int random_state is reproducible


@pytest.mark.parametrize("given", fast_only(["weights_init", "means_init", "precisions_init"], "means_init"))
def test_partial_init_is_used(given):
  x, _ = _data()
  init = _init(x, 3, "diag")
  gm = GaussianMixture(3, covariance_type="diag", max_iter=0, random_state=0, **{given: init[given]}).fit(x)
  attr = {"weights_init": "weights_", "means_init": "means_", "precisions_init": "precisions_"}[given]
  np.testing.assert_allclose(getattr(gm, attr), init[given], rtol=1e-12)
  assert gm.n_iter_ == 0 and not gm.converged_
  # With iterations, partial inits and restarts give a finite fit.
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    gm = GaussianMixture(3, covariance_type="diag", n_init=2, random_state=0, **{given: init[given]}).fit(x)
  assert np.isfinite(gm.lower_bound_)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(weights_init=[0.5, 0.2, 0.2]), "normalized"),
        (dict(weights_init=[0.5, 0.5]), "shape"),
        (dict(means_init=np.zeros((3, 2))), "shape"),
        (dict(precisions_init=-np.ones((3, 3, 3))), "symmetric, positive-definite"),
        (dict(covariance_type="diag", precisions_init=np.zeros((3, 3))), "positive"),
    ],
)
def test_bad_init_raises(kwargs, match):
  x, _ = _data()
  with pytest.raises(ValueError, match=match):
    GaussianMixture(3, **kwargs).fit(x)


def test_bad_input_raises():
  x, _ = _data()
  with pytest.raises(ValueError, match="n_samples >= n_components"):
    GaussianMixture(5).fit(x[:4])
  with pytest.raises(ValueError, match="[Nn]egative"):
    GaussianMixture(2).fit(x, sample_weight=-np.ones(x.shape[0]))
  with pytest.raises(ValueError, match="covariance_type"):
    GaussianMixture(2, covariance_type="banana").fit(x)
  with pytest.raises(ValueError, match="init_params"):
    GaussianMixture(2, init_params="kmeans+").fit(x)


@pytest.mark.slow
def test_pipeline_and_grid_search():
  x, _ = mixture_data(5, random_params(4, 3, 3, "full", spread=8.0), 300)
  x = x * np.array([1.0, 100.0, 0.01])[None, :]
  pipe = make_pipeline(StandardScaler(), GaussianMixture(3, random_state=0)).fit(x)
  scaled = StandardScaler().fit_transform(x)
  alone = GaussianMixture(3, random_state=0).fit(scaled)
  np.testing.assert_array_equal(pipe.predict(x), alone.predict(scaled))
  np.testing.assert_allclose(pipe.score(x), alone.score(scaled), rtol=1e-10)

  search = GridSearchCV(
      GaussianMixture(random_state=0), {"n_components": [1, 3], "covariance_type": ["full", "spherical"]}, cv=3
  ).fit(scaled)
  assert search.best_params_["n_components"] == 3
  assert np.isclose(search.best_score_, np.max(search.cv_results_["mean_test_score"]))
  assert isinstance(search.best_estimator_, GaussianMixture) and search.best_estimator_.n_iter_ >= 1


@pytest.mark.slow
def test_sample_and_to_params():
  x, _ = _data()
  gm = GaussianMixture(3, covariance_type="tied", random_state=0, max_iter=300).fit(x)
  xs, ys = gm.sample(20_000)
  assert xs.shape == (20_000, 3) and ys.shape == (20_000,)
  assert np.all(np.diff(ys) >= 0)  # ordered by component, as scikit-learn's
  np.testing.assert_allclose(np.bincount(ys, minlength=3) / 20_000, gm.weights_, atol=0.02)
  for j in range(3):
    np.testing.assert_allclose(xs[ys == j].mean(0), gm.means_[j], atol=0.1)
  np.testing.assert_allclose(np.cov(xs[ys == 0].T), gm.covariances_, atol=0.1)
  np.testing.assert_array_equal(gm.sample(5)[0], gm.sample(5)[0])  # int random_state: same draws
  with pytest.raises(ValueError, match="n_samples"):
    gm.sample(0)
  params = gm.to_params()
  assert isinstance(params, gmmjax.GMMParams)
  np.testing.assert_allclose(np.asarray(gmmjax.log_prob(params, x)), gm.score_samples(x), rtol=1e-12)


@pytest.mark.slow
def test_verbose_prints_progress(capsys):
  x, _ = _data()
  GaussianMixture(3, verbose=2, verbose_interval=1, random_state=0, max_iter=300).fit(x)
  out = capsys.readouterr().out
  assert "Initialization 0" in out and "Iteration 1\t" in out and "converged" in out
