"""Mixtures with a traced number of active components, so `vmap` can run many k.

`fit` itself batches over datasets (`jax.vmap(fit, in_axes=(None, 0, None))`)
and over keys; what it cannot batch is `n_components`, a shape. `fit_masked`
keeps `max_components` slots and switches off the slots from `n_active` on:
their weight is exactly zero, so their log-density is -inf, their
responsibilities are zero, and the EM iterates of the active slots are those
of a `n_active`-component fit.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from . import _checks, _em, _init, _stats
from ._types import FitResult, GMMParams


def mask_components(params: GMMParams, active: jax.Array) -> GMMParams:
  """Zeroes the weights of inactive components and renormalises the rest.

  Args:
    params: `GMMParams` with `k` components.
    active: `[k]` bool.
  """
  w = jnp.where(active, params.weights, 0)
  return GMMParams(
      weights=w / jnp.sum(w),
      means=params.means,
      precisions_cholesky=params.precisions_cholesky,
      covariance_type=params.covariance_type,
  )


def _initial_params(key, x, w, active, reg_covar, covariance_type, chunk_size):
  """k-means++ centres; each point goes to its nearest *active* centre."""
  k = active.shape[0]
  centers = _init.kmeans_plusplus_unchecked(key, x, k, w)
  shift = jnp.mean(centers, axis=0)
  centers_s = centers - shift[None, :]

  def resp_fn(start, xs, _):
    d2 = jnp.where(active[None, :], _init._sq_dist(xs, centers_s), jnp.inf)
    return jax.nn.one_hot(jnp.argmin(d2, axis=1), k, dtype=xs.dtype), jnp.zeros(xs.shape[:1], xs.dtype)

  stats = _stats.accumulate(
      resp_fn, x, w, None, n_components=k, covariance_type=covariance_type, shift=shift, chunk_size=chunk_size
  )
  return mask_components(_stats.params_from_stats(stats, reg_covar), active)


@functools.partial(
    jax.jit, static_argnames=("max_components", "covariance_type", "max_iter", "n_init", "chunk_size")
)
def _fit_masked(
    key, x, w, n_active, init_params, tol, reg_covar, *,
    max_components, covariance_type, max_iter, n_init, chunk_size,
):
  active = jnp.arange(max_components) < n_active

  def step(params, x, w, reg_covar, active):
    stats = _stats.suff_stats_unchecked(params, x, w, chunk_size)
    params = mask_components(_stats.params_from_stats(stats, reg_covar), active)
    return params, stats.log_likelihood / stats.total_weight

  def single(key):
    if init_params is None:
      params = _initial_params(key, x, w, active, reg_covar, covariance_type, chunk_size)
    else:
      params = mask_components(init_params, active)
    return _em.em_loop(step, params, tol, max_iter, (x, w, reg_covar, active))

  if n_init == 1:
    return single(key)
  return _em.best_of(jax.vmap(single)(jax.random.split(key, n_init)))


def fit_masked(
    key,
    x: ArrayLike,
    max_components: int,
    n_active: ArrayLike,
    *,
    covariance_type: str = "full",
    max_iter: int = 100,
    tol: float = 1e-3,
    reg_covar: float = 1e-6,
    n_init: int = 1,
    weights: ArrayLike | None = None,
    init_params: GMMParams | None = None,
    chunk_size: int | None = None,
) -> FitResult:
  """EM with only the first `n_active` of `max_components` components in use.

  `n_active` is traced, so one compiled program fits every k:
  `jax.vmap(lambda k: fit_masked(key, x, 8, k))(jnp.arange(1, 9))`.

  Args:
    key: PRNG key (initialisation).
    x: `[n, d]` data.
    max_components: number of component slots `k_max` (static).
    n_active: `[]` int in [1, k_max]: components in use (traced).
    covariance_type: "full", "diag", "spherical" or "tied" (static). With
      "tied", the shared covariance pools the active components only.
    max_iter, tol, reg_covar, n_init, weights, chunk_size: as in `fit`.
    init_params: explicit start with `k_max` components; inactive slots are
      switched off. Without it, EM starts from the first `n_active` of
      `k_max` greedy k-means++ centres, each point assigned to the nearest.

  Returns:
    `FitResult` whose `params` have `k_max` components, the inactive ones
    with weight exactly 0 (log-density -inf, never predicted).
  """
  x = _checks.data(x)
  max_components = _checks.n_components(max_components, x.shape[0])
  _checks.covariance_type(covariance_type)
  for name, value in (("max_iter", max_iter), ("n_init", n_init)):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
      raise ValueError(f"{name} must be a positive integer, got {value!r}")
  if _checks._is_concrete(n_active) and not 1 <= int(n_active) <= max_components:
    raise ValueError(f"n_active must be in [1, {max_components}], got {int(n_active)}")
  _checks.positive(tol, "tol", allow_zero=True)
  _checks.positive(reg_covar, "reg_covar", allow_zero=True)
  w = None if weights is None else _checks.as_weights(weights, x)
  if init_params is not None:
    _checks.params(init_params, x.shape[1])
    if init_params.covariance_type != covariance_type or init_params.means.shape[0] != max_components:
      raise ValueError("init_params must have covariance_type and max_components components")
    init_params = jax.tree.map(lambda a: jnp.asarray(a, x.dtype), init_params)
  return _fit_masked(
      key, x, w, jnp.asarray(n_active), init_params,
      jnp.asarray(tol, x.dtype), jnp.asarray(reg_covar, x.dtype),
      max_components=max_components, covariance_type=covariance_type, max_iter=max_iter, n_init=n_init,
      chunk_size=chunk_size,
  )
