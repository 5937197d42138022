"""`gmmjax.sklearn.BayesianGaussianMixture` against scikit-learn's own class and its estimator checks."""

import warnings

import numpy as np
import pytest
from helpers import fast_only
from sklearn import mixture
from sklearn.exceptions import ConvergenceWarning
from test_sklearn import estimator_checks

from gmmjax import variational
from gmmjax.sklearn import BayesianGaussianMixture

POSTERIOR = ("weight_concentration_", "mean_precision_", "means_", "degrees_of_freedom_", "covariances_",
             "precisions_cholesky_", "weights_", "precisions_")
PRIOR = ("weight_concentration_prior_", "mean_precision_prior_", "mean_prior_", "degrees_of_freedom_prior_",
         "covariance_prior_")


@pytest.mark.parametrize("estimator, check", estimator_checks(BayesianGaussianMixture()))
def test_sklearn_estimator_checks(estimator, check):
  with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    check(estimator)


def _data(seed=0):
  rng = np.random.default_rng(seed)
  return np.concatenate([rng.normal(size=(120, 2)) + 4, rng.normal(size=(100, 2)) * 0.5 - 2,
                         rng.normal(size=(80, 2))])


def _started(ct, wt, x, **kw):
  """scikit-learn's estimator initialised on `x` (its k-means), and ours set to the same posterior."""
  theirs = mixture.BayesianGaussianMixture(n_components=5, covariance_type=ct, weight_concentration_prior_type=wt,
                                           max_iter=0, warm_start=True, random_state=0, **kw).fit(x)
  ours = BayesianGaussianMixture(**theirs.get_params())
  for name in (*POSTERIOR, *PRIOR, "converged_", "lower_bound_", "n_features_in_"):
    setattr(ours, name, getattr(theirs, name))
  return ours, theirs


# Slow: the fast suite checks the same fit through `fit_variational` (test_variational.py).
@pytest.mark.parametrize("ct, wt", fast_only([("full", "dirichlet_process"), ("spherical", "dirichlet_distribution")]))
def test_same_fit_as_sklearn_from_the_same_start(ct, wt):
  x = _data()
  ours, theirs = _started(ct, wt, x, tol=1e-6)
  for est in (ours, theirs):
    est.set_params(max_iter=200)
  labels = ours.fit_predict(x), theirs.fit_predict(x)
  assert ours.n_iter_ == theirs.n_iter_ > 5 and ours.converged_ == theirs.converged_
  np.testing.assert_allclose(ours.lower_bound_, np.squeeze(theirs.lower_bound_), rtol=1e-8)
  np.testing.assert_allclose(np.ravel(ours.lower_bounds_), np.ravel(theirs.lower_bounds_), rtol=1e-8)
  for name in POSTERIOR + PRIOR:
    np.testing.assert_allclose(np.asarray(getattr(ours, name)), np.asarray(getattr(theirs, name)), rtol=1e-7,
                               atol=1e-12, err_msg=name)
  np.testing.assert_allclose(ours.score_samples(x), theirs.score_samples(x), rtol=1e-9)
  np.testing.assert_allclose(ours.predict_proba(x), theirs.predict_proba(x), atol=1e-9)
  np.testing.assert_array_equal(*labels)


def test_integer_sample_weights_equal_repeated_rows():
  x = _data(1)
  w = np.random.default_rng(2).integers(0, 3, len(x))
  ours, _ = _started("full", "dirichlet_process", x, tol=1e-8)
  ours.set_params(max_iter=200)
  start = {name: getattr(ours, name) for name in (*POSTERIOR, "converged_", "lower_bound_", "n_features_in_")}
  weighted = ours.fit(x, sample_weight=w)
  weighted_attrs = {name: np.asarray(getattr(weighted, name)) for name in POSTERIOR + PRIOR}
  for name, value in start.items():
    setattr(ours, name, value)
  repeated = ours.fit(np.repeat(x, w, axis=0))
  for name, value in weighted_attrs.items():
    np.testing.assert_allclose(np.asarray(getattr(repeated, name)), value, rtol=1e-7, atol=1e-12, err_msg=name)


def test_fit_predict_dtypes_posterior_and_sampling():
  x = _data(3)
  est = BayesianGaussianMixture(n_components=4, random_state=0, tol=1e-2).fit(x.astype(np.float32))
  assert est.means_.dtype == np.float32 and est.predict_proba(x).shape == (len(x), 4)
  q = est.to_posterior()
  assert isinstance(q, variational.VariationalPosterior) and q.means.dtype == np.float32
  samples, labels = est.sample(7)
  assert samples.shape == (7, 2) and labels.shape == (7,)
  init_only = BayesianGaussianMixture(n_components=3, max_iter=0, covariance_type="tied").fit(x)
  assert init_only.n_iter_ == 0 and isinstance(init_only.degrees_of_freedom_, float)


def test_bad_prior_raises():
  x = _data()
  with pytest.raises(ValueError, match="degrees_of_freedom_prior must be greater than 1"):
    BayesianGaussianMixture(degrees_of_freedom_prior=0.5).fit(x)
  with pytest.raises(ValueError, match="mean_prior must have shape"):
    BayesianGaussianMixture(mean_prior=np.zeros(3)).fit(x)
