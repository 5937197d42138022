"""Information criteria and model selection."""

from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from . import _checks, _em
from ._logprob import log_prob
from ._types import FitResult, GMMParams


def n_parameters(params: GMMParams) -> int:
  """Free parameters: weights (k - 1), means (k d) and covariances."""
  k, d = params.means.shape[-2:]
  cov = {
      "full": k * d * (d + 1) // 2,
      "tied": d * (d + 1) // 2,
      "diag": k * d,
      "spherical": k,
  }[params.covariance_type]
  return cov + k * d + k - 1


def _total_log_likelihood(params, x, weights):
  lp = log_prob(params, x)
  if weights is None:
    return jnp.sum(lp), x.shape[0]
  w = _checks.as_weights(weights, jnp.asarray(x))
  return jnp.sum(w * lp), jnp.sum(w)


def bic(params: GMMParams, x: ArrayLike, weights: ArrayLike | None = None) -> jax.Array:
  """Bayesian information criterion `-2 log L + p log n` (lower is better).

  Args:
    params: mixture parameters.
    x: `[n, d]` points.
    weights: optional `[n]` sample weights (then `n` is their sum).
  """
  ll, n = _total_log_likelihood(params, x, weights)
  return -2 * ll + n_parameters(params) * jnp.log(n)


def aic(params: GMMParams, x: ArrayLike, weights: ArrayLike | None = None) -> jax.Array:
  """Akaike information criterion `-2 log L + 2 p` (lower is better)."""
  ll, _ = _total_log_likelihood(params, x, weights)
  return -2 * ll + 2 * n_parameters(params)


class SelectionResult(NamedTuple):
  """Outcome of `select_n_components`.

  Attributes:
    best_n_components: the candidate with the lowest score.
    candidates: the candidates, in the order given.
    scores: `[len(candidates)]` criterion value of each.
    fits: the `FitResult` of each candidate.
  """

  best_n_components: int
  candidates: tuple[int, ...]
  scores: np.ndarray
  fits: tuple[FitResult, ...]


def select_n_components(
    key,
    x: ArrayLike,
    candidates: Sequence[int],
    criterion: str = "bic",
    *,
    weights: ArrayLike | None = None,
    **fit_kwargs,
) -> SelectionResult:
  """Fits one mixture per candidate `k` and scores each by BIC or AIC.

  Args:
    key: PRNG key, split over candidates.
    x: `[n, d]` data.
    candidates: numbers of components to try.
    criterion: "bic" or "aic".
    weights: optional `[n]` sample weights.
    **fit_kwargs: passed to `gmmjax.fit` (covariance_type, n_init, ...).

  Returns:
    `SelectionResult` with every candidate's score.
  """
  if criterion not in ("bic", "aic"):
    raise ValueError(f"criterion must be 'bic' or 'aic', got {criterion!r}")
  candidates = tuple(candidates)
  for k in candidates:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)):
      raise ValueError(f"candidates must be integers, got {k!r}")
  candidates = tuple(int(k) for k in candidates)
  if not candidates:
    raise ValueError("candidates must not be empty")
  x = _checks.data(x)
  for k in candidates:
    _checks.n_components(k, x.shape[0])
  score_fn = bic if criterion == "bic" else aic
  fits, scores = [], []
  for k, sub in zip(candidates, jax.random.split(key, len(candidates))):
    result = _em.fit(sub, x, k, weights=weights, **fit_kwargs)
    fits.append(result)
    scores.append(float(score_fn(result.params, x, weights)))
  scores = np.asarray(scores)
  return SelectionResult(candidates[int(np.argmin(scores))], candidates, scores, tuple(fits))
