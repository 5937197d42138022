"""k-means against scikit-learn, information criteria, model selection."""

import jax
import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.mixture import GaussianMixture

import gmmjax
from helpers import fast_only, mixture_data, random_params


def test_kmeans_matches_sklearn_inertia():
  truth = random_params(0, 5, 3, "spherical", spread=6.0)
  x, _ = mixture_data(1, truth, 2000)
  ours = gmmjax.kmeans(jax.random.key(0), x, 5)
  theirs = KMeans(5, n_init=10, random_state=0).fit(x)
  assert bool(ours.converged)
  assert float(ours.inertia) <= theirs.inertia_ * 1.01
  # Labels are the nearest centroids, and inertia is their squared distance.
  d2 = ((x[:, None, :] - np.asarray(ours.centroids)[None]) ** 2).sum(-1)
  np.testing.assert_array_equal(ours.labels, d2.argmin(1))
  np.testing.assert_allclose(float(ours.inertia), d2.min(1).sum(), rtol=1e-10)


def test_kmeans_with_weights_equals_repeated_rows():
  x = np.random.default_rng(2).standard_normal((200, 2))
  counts = np.random.default_rng(3).integers(0, 3, 200)
  # The same start (the weighted seeding picks rows the repetition has too) is
  # not guaranteed, so compare the objective at the weighted optimum instead.
  ours = gmmjax.kmeans(jax.random.key(0), x, 3, weights=counts.astype(float))
  rep = np.repeat(x, counts, axis=0)
  d2 = ((rep[:, None, :] - np.asarray(ours.centroids)[None]) ** 2).sum(-1).min(1).sum()
  np.testing.assert_allclose(float(ours.inertia), d2, rtol=1e-10)
  # A Lloyd fixed point: each centroid is the weighted mean of its points.
  for j in range(3):
    m = np.asarray(ours.labels) == j
    np.testing.assert_allclose(ours.centroids[j], np.average(x[m], axis=0, weights=counts[m]), rtol=1e-8)


def test_kmeans_plusplus_picks_distinct_data_points():
  x = np.random.default_rng(4).standard_normal((100, 3))
  centers = np.asarray(gmmjax.kmeans_plusplus(jax.random.key(1), x, 6))
  idx = [np.flatnonzero(np.all(np.isclose(x, c[None, :]), axis=1)) for c in centers]
  assert all(len(i) == 1 for i in idx)
  assert len({int(i[0]) for i in idx}) == 6


@pytest.mark.parametrize("covariance_type", fast_only(gmmjax.COVARIANCE_TYPES, "full"))
def test_bic_aic_match_sklearn(covariance_type):
  truth = random_params(5, 3, 2, covariance_type)
  x, _ = mixture_data(6, truth, 300)
  sk = GaussianMixture(3, covariance_type=covariance_type, random_state=0).fit(x)
  params = gmmjax.GMMParams.from_covariances(sk.weights_, sk.means_, sk.covariances_, covariance_type)
  np.testing.assert_allclose(gmmjax.bic(params, x), sk.bic(x), rtol=1e-10)
  np.testing.assert_allclose(gmmjax.aic(params, x), sk.aic(x), rtol=1e-10)
  assert gmmjax.n_parameters(params) == sk._n_parameters()


@pytest.mark.slow
def test_weighted_bic_equals_repeated_rows():
  truth = random_params(7, 2, 2, "diag")
  x, _ = mixture_data(8, truth, 100)
  counts = np.random.default_rng(9).integers(0, 4, 100)
  np.testing.assert_allclose(
      gmmjax.bic(truth, x, weights=counts.astype(float)), gmmjax.bic(truth, np.repeat(x, counts, axis=0)), rtol=1e-12
  )


@pytest.mark.slow
def test_select_n_components_finds_the_true_k():
  truth = random_params(10, 3, 2, "full", spread=8.0)
  x, _ = mixture_data(11, truth, 1500)
  sel = gmmjax.select_n_components(jax.random.key(0), x, [1, 2, 3, 4, 5], n_init=2)
  assert sel.best_n_components == 3
  assert sel.scores.shape == (5,)
  np.testing.assert_allclose(sel.scores[2], float(gmmjax.bic(sel.fits[2].params, x)))
  with pytest.raises(ValueError, match="criterion"):
    gmmjax.select_n_components(jax.random.key(0), x, [2], criterion="dic")
