"""Evaluation metrics for clustering and anomaly detection (numpy in, Python float out).

Clustering accuracy uses the Hungarian matching of clusters to classes; NMI and ARI follow
scikit-learn's definitions (arithmetic-mean normalisation for NMI); AUROC is the Mann-Whitney
statistic with ties counted one half.
"""

import numpy as np
from numpy.typing import ArrayLike
from scipy.optimize import linear_sum_assignment


def _labels_pair(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
  y_true, y_pred = np.asarray(y_true).reshape(-1), np.asarray(y_pred).reshape(-1)
  if y_true.shape != y_pred.shape:
    raise ValueError(f"y_true and y_pred must have the same length, got {y_true.shape} and {y_pred.shape}.")
  if y_true.size == 0:
    raise ValueError("Empty labels.")
  return y_true, y_pred


def contingency_matrix(y_true: ArrayLike, y_pred: ArrayLike) -> np.ndarray:
  """Counts [n_classes, n_clusters] of (class, cluster) pairs, over the distinct values of each."""
  y_true, y_pred = _labels_pair(y_true, y_pred)
  _, t = np.unique(y_true, return_inverse=True)
  _, p = np.unique(y_pred, return_inverse=True)
  counts = np.zeros((t.max() + 1, p.max() + 1), dtype=np.int64)
  np.add.at(counts, (t, p), 1)
  return counts


def cluster_accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
  """Best accuracy over one-to-one maps from clusters to classes (Hungarian algorithm).

  Args:
    y_true: [n] class labels.
    y_pred: [n] cluster labels (any values; the number of clusters may differ from the classes').

  Returns:
    Fraction of points whose cluster maps to their class, in [0, 1].
  """
  counts = contingency_matrix(y_true, y_pred)
  rows, cols = linear_sum_assignment(counts, maximize=True)
  return float(counts[rows, cols].sum() / counts.sum())


def _entropy(counts: np.ndarray) -> float:
  p = counts[counts > 0] / counts.sum()
  return float(-(p * np.log(p)).sum())


def nmi(y_true: ArrayLike, y_pred: ArrayLike) -> float:
  """Normalised mutual information, I(T; P) / mean(H(T), H(P)) (scikit-learn's default).

  Returns 1.0 when both labelings are a single cluster (as scikit-learn does).
  """
  counts = contingency_matrix(y_true, y_pred).astype(np.float64)
  n = counts.sum()
  h_true, h_pred = _entropy(counts.sum(1)), _entropy(counts.sum(0))
  if h_true == 0.0 and h_pred == 0.0:
    return 1.0
  nz = counts > 0
  outer = counts.sum(1)[:, None] * counts.sum(0)[None, :]
  mi = float((counts[nz] / n * (np.log(counts[nz] * n) - np.log(outer[nz]))).sum())
  return float(max(mi, 0.0) / max((h_true + h_pred) / 2.0, np.finfo(np.float64).eps))


def _pairs(x: np.ndarray) -> float:
  return float(np.sum(x * (x - 1.0) / 2.0))


def ari(y_true: ArrayLike, y_pred: ArrayLike) -> float:
  """Adjusted Rand index (Hubert and Arabie): 1 for identical partitions, about 0 for random ones."""
  counts = contingency_matrix(y_true, y_pred).astype(np.float64)
  n = counts.sum()
  sum_cells = _pairs(counts)
  sum_rows, sum_cols = _pairs(counts.sum(1)), _pairs(counts.sum(0))
  expected = sum_rows * sum_cols / _pairs(np.array([n])) if n > 1 else 0.0
  max_index = (sum_rows + sum_cols) / 2.0
  if max_index == expected:  # Both partitions trivial (all-in-one or all singletons): identical.
    return 1.0
  return float((sum_cells - expected) / (max_index - expected))


def auroc(y_true: ArrayLike, scores: ArrayLike) -> float:
  """Area under the ROC curve: P(score of a positive > score of a negative), ties counted 1/2.

  Args:
    y_true: [n] binary labels, 1 (or True) for the positive class (e.g. anomalies).
    scores: [n] scores, larger meaning more positive.

  Returns:
    AUROC in [0, 1].

  Raises:
    ValueError: if a class is missing or labels are not binary, or scores are not finite.
  """
  y_true, scores = _labels_pair(y_true, scores)
  values = np.unique(y_true)
  if not np.all(np.isin(values, [0, 1])):
    raise ValueError(f"y_true must be binary (0/1), got values {values[:5]}.")
  positive = y_true.astype(bool)
  n_pos, n_neg = int(positive.sum()), int((~positive).sum())
  if n_pos == 0 or n_neg == 0:
    raise ValueError("AUROC needs at least one positive and one negative example.")
  scores = scores.astype(np.float64)
  if not np.all(np.isfinite(scores)):
    raise ValueError("scores must be finite.")
  # Average ranks handle ties: the rank-sum form of the Mann-Whitney U statistic.
  order = np.argsort(scores, kind="mergesort")
  sorted_scores = scores[order]
  ranks = np.empty(len(scores), dtype=np.float64)
  _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
  average = first + (counts + 1) / 2.0
  ranks[order] = np.repeat(average, counts)
  u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0
  return float(u / (n_pos * n_neg))
