"""gmmjax.metrics against scikit-learn and closed forms."""

import itertools

import numpy as np
import pytest
import sklearn.metrics as skm
from hypothesis import given
from hypothesis import strategies as st

from gmmjax import metrics

labelings = st.integers(1, 40).flatmap(lambda n: st.tuples(
    st.lists(st.integers(0, 4), min_size=n, max_size=n), st.lists(st.integers(0, 6), min_size=n, max_size=n)))


def _brute_force_accuracy(y_true, y_pred):
  classes, clusters = np.unique(y_true), np.unique(y_pred)
  best = 0
  # Every injective map from clusters to classes (padding classes with "unmatched" slots).
  slots = list(classes) + [None] * len(clusters)
  for image in itertools.permutations(slots, len(clusters)):
    mapping = dict(zip(clusters, image))
    best = max(best, sum(mapping[p] == t for t, p in zip(y_true, y_pred)))
  return best / len(y_true)


@given(labelings)
def test_nmi_and_ari_match_scikit_learn(pair):
  y_true, y_pred = pair
  assert metrics.nmi(y_true, y_pred) == pytest.approx(skm.normalized_mutual_info_score(y_true, y_pred),
                                                      abs=1e-12)
  assert metrics.ari(y_true, y_pred) == pytest.approx(skm.adjusted_rand_score(y_true, y_pred), abs=1e-12)


small_labelings = st.integers(1, 9).flatmap(lambda n: st.tuples(
    st.lists(st.integers(0, 3), min_size=n, max_size=n), st.lists(st.integers(0, 3), min_size=n, max_size=n)))


@given(small_labelings)
def test_cluster_accuracy_is_the_best_one_to_one_map(pair):
  y_true, y_pred = pair
  assert metrics.cluster_accuracy(y_true, y_pred) == pytest.approx(_brute_force_accuracy(y_true, y_pred))


def test_cluster_accuracy_invariant_to_relabelling():
  rng = np.random.default_rng(0)
  y = rng.integers(0, 10, 1000)
  perm = rng.permutation(10) + 100
  assert metrics.cluster_accuracy(y, perm[y]) == 1.0
  noisy = np.where(rng.random(1000) < 0.3, rng.integers(0, 10, 1000), y)
  expected = np.mean(noisy == y)  # Noise is uniform, so the identity map stays optimal.
  assert metrics.cluster_accuracy(y, perm[noisy]) == pytest.approx(expected)
  assert metrics.nmi(y, perm[y]) == pytest.approx(1.0) and metrics.ari(y, perm[y]) == pytest.approx(1.0)


@given(st.lists(st.tuples(st.booleans(), st.integers(-3, 3)), min_size=2, max_size=50))
def test_auroc_matches_scikit_learn_with_ties(rows):
  y = np.array([r[0] for r in rows], dtype=int)
  s = np.array([r[1] for r in rows], dtype=float)
  if y.min() == y.max():
    with pytest.raises(ValueError, match="one positive and one negative"):
      metrics.auroc(y, s)
    return
  assert metrics.auroc(y, s) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)


def test_auroc_closed_forms_and_errors():
  assert metrics.auroc([0, 0, 1, 1], [0.1, 0.2, 0.3, 0.4]) == 1.0
  assert metrics.auroc([1, 1, 0, 0], [0.1, 0.2, 0.3, 0.4]) == 0.0
  assert metrics.auroc([0, 1], [5.0, 5.0]) == 0.5
  with pytest.raises(ValueError, match="binary"):
    metrics.auroc([0, 2], [0.0, 1.0])
  with pytest.raises(ValueError, match="finite"):
    metrics.auroc([0, 1], [0.0, np.nan])
  with pytest.raises(ValueError, match="same length"):
    metrics.nmi([0, 1], [0])
