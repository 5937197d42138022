"""Online (stepwise) EM, Cappé & Moulines (2009).

The state keeps a running average `s` of per-sample sufficient statistics.
Each mini-batch computes its own normalised statistics `s_b` under the current
parameters and moves `s <- (1 - gamma) s + gamma s_b`; the parameters are the
M-step of `s`. The convex combination of two sets of statistics is exactly
`merge` of the two, scaled to masses `1 - gamma` and `gamma`, so the centred
moments stay centred (no raw-moment cancellation in float32).

With step sizes `gamma_t = (t + 1) ** -alpha`, `0.5 < alpha <= 1`, the iterates
converge to a stationary point of the expected log-likelihood.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from . import _checks, _em, _stats
from ._options import EMOptions, check_fit_args
from ._types import GMMParams


class OnlineState(NamedTuple):
  """State of online EM.

  Attributes:
    params: current `GMMParams` (the M-step of `stats`).
    stats: running average of per-sample `SuffStats` (total weight one).
    n_updates: `[]` mini-batches absorbed since `online_init`.
    log_likelihood: `[]` mean log-likelihood of the last batch under the
      parameters before its update (a free, slightly optimistic progress
      measure).
    reg_covar: `[]` value added to covariance diagonals at each M-step.
  """

  params: GMMParams
  stats: _stats.SuffStats
  n_updates: jax.Array
  log_likelihood: jax.Array
  reg_covar: jax.Array


def _scale(s: _stats.SuffStats, c: jax.Array) -> _stats.SuffStats:
  """Statistics of the same rows with every weight multiplied by `c`."""
  return _stats.SuffStats(
      counts=s.counts * c,
      means=s.means,
      m2=s.m2 * c,
      log_likelihood=s.log_likelihood * c,
      total_weight=s.total_weight * c,
      covariance_type=s.covariance_type,
  )


def default_step_size(n_updates: ArrayLike, alpha: float = 0.6) -> jax.Array:
  """Cappé & Moulines' `gamma_t = (t + 1) ** -alpha` for the `t`-th update."""
  return (jnp.asarray(n_updates) + 1.0) ** -alpha


@functools.partial(jax.jit, static_argnames=("options",))
def _init_state(key, x, w, init_params, reg_covar, *, options):
  chunk_size = options.chunk_size
  if init_params is None:
    params = _em._initial_params(key, x, w, reg_covar, options=options)
  else:
    params = init_params
  stats = _em.e_step_stats(params, x, w, chunk_size=chunk_size)
  stats = _scale(stats, 1 / stats.total_weight)
  return OnlineState(
      params=_stats.params_from_stats(stats, reg_covar),
      stats=stats,
      n_updates=jnp.asarray(0),
      log_likelihood=stats.log_likelihood,
      reg_covar=reg_covar,
  )


def online_init(
    key,
    x: ArrayLike,
    n_components: int,
    *,
    covariance_type: str = "full",
    reg_covar: float = 1e-6,
    init: str = "kmeans++",
    weights: ArrayLike | None = None,
    init_params: GMMParams | None = None,
    chunk_size: int | None = None,
) -> OnlineState:
  """Starts online EM from a first batch.

  Initialises the parameters on `x` (as `fit` does) and takes one E- and
  M-step on it, so the running statistics start from real data.

  Args:
    key: PRNG key (initialisation).
    x: `[b, d]` first batch (at least `n_components` rows).
    n_components: `k` (static).
    covariance_type: "full", "diag", "spherical" or "tied" (static).
    reg_covar: added to covariance diagonals at every M-step.
    init: initialisation method, as in `fit` (static).
    weights: optional `[b]` sample weights.
    init_params: explicit starting `GMMParams` (then `init` is unused).
    chunk_size: rows per chunk (static).

  Returns:
    `OnlineState` with `n_updates == 0`.
  """
  options = EMOptions(n_components, covariance_type, 1, init, 1, chunk_size)
  x = _checks.data(x)
  w = None if weights is None else _checks.as_weights(weights, x)
  init_params = check_fit_args(options, x.shape[0], x.shape[1], 0.0, reg_covar, init_params, x.dtype)
  return _init_state(key, x, w, init_params, jnp.asarray(reg_covar, x.dtype), options=options)


def online_update_unchecked(state: OnlineState, x, w, step_size, chunk_size=None) -> OnlineState:
  batch = _em.e_step_stats(state.params, x, w, chunk_size=chunk_size)
  gamma = default_step_size(state.n_updates + 1) if step_size is None else step_size
  gamma = jnp.asarray(gamma, state.stats.means.dtype)
  stats = _stats.merge(_scale(state.stats, 1 - gamma), _scale(batch, gamma / batch.total_weight))
  return OnlineState(
      params=_stats.params_from_stats(stats, state.reg_covar),
      stats=stats,
      n_updates=state.n_updates + 1,
      log_likelihood=batch.log_likelihood / batch.total_weight,
      reg_covar=state.reg_covar,
  )


_update_jit = jax.jit(online_update_unchecked, static_argnums=4)


def online_update(
    state: OnlineState,
    x_batch: ArrayLike,
    step_size: ArrayLike | None = None,
    *,
    weights: ArrayLike | None = None,
    chunk_size: int | None = None,
) -> OnlineState:
  """One stepwise-EM update from a mini-batch (a `partial_fit`).

  Args:
    state: current `OnlineState`.
    x_batch: `[b, d]` new points.
    step_size: `[]` gamma in (0, 1]: weight of this batch's statistics; None
      uses `default_step_size(state.n_updates + 1)`. A batch of size `b` out
      of `n_seen` points gives plain cumulative averaging with
      `gamma = b / n_seen`.
    weights: optional `[b]` sample weights.
    chunk_size: rows per chunk (static).

  Returns:
    The updated `OnlineState`. Jitted; loop it on the host, or `lax.scan` it
    over a stacked `[steps, b, d]` array with `online_update_unchecked`.
  """
  x = _checks.as_points(x_batch, state.params)
  w = None if weights is None else _checks.as_weights(weights, x)
  if step_size is not None:
    _checks.positive(step_size, "step_size")
    if _checks.is_concrete(step_size) and float(step_size) > 1:
      raise ValueError(f"step_size must be in (0, 1], got {float(step_size)}")
  x = x.astype(state.params.means.dtype)
  return _update_jit(state, x, w, step_size, chunk_size)
