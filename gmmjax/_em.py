"""EM for Gaussian mixtures: M-step, one EM step, and the whole fit as one program."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from . import _checks, _init, _stats
from ._types import FitResult, GMMParams


def _m_step_unchecked(x, log_resp, w, reg_covar, covariance_type, chunk_size):
  # Any point near the data works as the moment shift; the first rows are free.
  shift = jnp.mean(x[: min(x.shape[0], 1024)], axis=0)

  def resp_fn(start, xs, log_resp_chunk):
    return jnp.exp(log_resp_chunk), jnp.zeros(xs.shape[:1], xs.dtype)

  stats = _stats.accumulate(
      resp_fn,
      x,
      w,
      log_resp,
      n_components=log_resp.shape[1],
      covariance_type=covariance_type,
      shift=shift,
      chunk_size=chunk_size,
  )
  return _stats.params_from_stats(stats, reg_covar)


_m_step_jit = jax.jit(_m_step_unchecked, static_argnums=(4, 5))


def m_step(
    x: ArrayLike,
    log_resp: ArrayLike,
    *,
    covariance_type: str,
    reg_covar: ArrayLike,
    weights: ArrayLike | None = None,
    chunk_size: int | None = None,
) -> GMMParams:
  """Maximisation step: maximum-likelihood parameters given responsibilities.

  Args:
    x: `[n, d]` points.
    log_resp: `[n, k]` log-responsibilities (e.g. from `e_step`).
    covariance_type: "full", "diag", "spherical" or "tied" (static).
    reg_covar: `[]` value added to covariance diagonals (traced).
    weights: optional `[n]` sample weights.
    chunk_size: rows per chunk (static).

  Returns:
    `GMMParams`.
  """
  x = _checks.data(x)
  _checks.covariance_type(covariance_type)
  log_resp = jnp.asarray(log_resp, x.dtype)
  if log_resp.ndim != 2 or log_resp.shape[0] != x.shape[0]:
    raise ValueError(f"log_resp must have shape [{x.shape[0]}, k], got {log_resp.shape}")
  _checks.positive(reg_covar, "reg_covar", allow_zero=True)
  w = None if weights is None else _checks.as_weights(weights, x)
  return _m_step_jit(x, log_resp, w, jnp.asarray(reg_covar, x.dtype), covariance_type, chunk_size)


def em_step_unchecked(params, x, w, reg_covar, chunk_size=None):
  stats = _stats.suff_stats_unchecked(params, x, w, chunk_size)
  return (
      _stats.params_from_stats(stats, reg_covar),
      stats.log_likelihood / stats.total_weight,
  )


_em_step_jit = jax.jit(em_step_unchecked, static_argnums=4)


def em_step(
    params: GMMParams,
    x: ArrayLike,
    *,
    reg_covar: ArrayLike,
    weights: ArrayLike | None = None,
    chunk_size: int | None = None,
) -> tuple[GMMParams, jax.Array]:
  """One EM iteration in a single chunked pass over the data.

  Args:
    params: current parameters.
    x: `[n, d]` points.
    reg_covar: `[]` value added to covariance diagonals (traced).
    weights: optional `[n]` sample weights.
    chunk_size: rows per chunk (static).

  Returns:
    `(new_params, mean_log_likelihood)`, the latter of `params` (before the
    update), as in scikit-learn's EM loop.
  """
  _checks.params(params)
  x = _checks.as_points(x, params)
  _checks.positive(reg_covar, "reg_covar", allow_zero=True)
  w = None if weights is None else _checks.as_weights(weights, x)
  return _em_step_jit(params, x, w, jnp.asarray(reg_covar, x.dtype), chunk_size)


def _gmres(matvec, b):
  eps = float(jnp.finfo(jax.tree.leaves(b)[0].dtype).eps)
  x = jax.scipy.sparse.linalg.gmres(matvec, b, tol=eps**0.75, restart=40)[0]
  # GMRES stops at once on a NaN residual and returns its zero start: pass the
  # NaN on rather than a silently zero derivative.
  finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(v)) for v in jax.tree.leaves(b)]))
  return jax.tree.map(lambda v: jnp.where(finite, v, jnp.nan), x)


def _run_em(step, tol, max_iter: int, params: GMMParams, consts) -> FitResult:
  dtype = params.means.dtype

  def cond(state):
    _, _, n_iter, converged, _ = state
    return (n_iter < max_iter) & ~converged

  def body(state):
    params, ll_prev, n_iter, _, trace = state
    params, ll = step(params, *consts)
    converged = jnp.abs(ll - ll_prev) < tol
    return params, ll, n_iter + 1, converged, trace.at[n_iter].set(ll)

  init = (params, jnp.asarray(-jnp.inf, dtype), jnp.asarray(0), jnp.asarray(False),
          jnp.full((max_iter,), jnp.nan, dtype))
  return FitResult(*jax.lax.while_loop(cond, body, init))


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 2))
def _em_fixed_point(step, tol, max_iter, params, consts):
  return _run_em(step, tol, max_iter, params, consts)


@_em_fixed_point.defjvp
def _em_fixed_point_jvp(step, max_iter, primals, tangents):
  # The fit is the root of r(p, ll) = (T(p) - p, L(p) - ll), T the EM map and L
  # the mean log-likelihood, both functions of the data in `consts`; by the
  # implicit function theorem d(p, ll) = -(dr/d(p, ll))^-1 (dr/dconsts) dconsts.
  # The tangent of the starting point does not matter.
  tol, start, consts = primals
  result = _em_fixed_point(step, tol, max_iter, start, consts)

  def residual(state, consts):
    params, ll = state
    new_params, new_ll = step(params, *consts)
    return jax.tree.map(jnp.subtract, new_params, params), new_ll - ll

  state = (result.params, result.log_likelihood)
  _, rhs = jax.jvp(lambda c: residual(state, c), (consts,), (tangents[2],))
  _, linear = jax.linearize(lambda s: residual(s, consts), state)
  # custom_linear_solve makes the matrix-free solve transposable (reverse mode).
  d_params, d_ll = jax.tree.map(jnp.negative, jax.lax.custom_linear_solve(
      linear, rhs, solve=_gmres, transpose_solve=_gmres))
  float0 = lambda a: np.zeros(a.shape, jax.dtypes.float0)
  return result, FitResult(d_params, d_ll, float0(result.n_iter), float0(result.converged),
                           jnp.zeros_like(result.log_likelihood_trace))


def em_loop(step_fn, params: GMMParams, tol, max_iter: int, data: tuple = ()) -> FitResult:
  """Iterates `step_fn(params, *data) -> (params, mean_ll)` until the change in
  mean log-likelihood is below `tol` or `max_iter` steps ran (`lax.while_loop`).

  Derivatives of the fitted `params` and `log_likelihood` with respect to
  `data` (points, sample weights, `reg_covar`, ...) come from the implicit
  function theorem at the EM fixed point, not from unrolling the loop: exact
  at convergence, one matrix-free linear solve per derivative, no memory per
  iteration, and nothing traced unless something is differentiated. Every
  traced value `step_fn` uses must come through `data` (a closed-over tracer
  would leak out of the derivative rule). `n_iter`, `converged` and the trace
  carry no derivatives.
  """
  return _em_fixed_point(step_fn, tol, max_iter, params, tuple(data))


def best_of(results: FitResult) -> FitResult:
  """The restart with the highest log-likelihood from a batch of results."""
  best = jnp.argmax(jnp.where(jnp.isnan(results.log_likelihood), -jnp.inf, results.log_likelihood))
  return jax.tree.map(lambda a: a[best], results)


@functools.partial(
    jax.jit,
    static_argnames=("n_components", "covariance_type", "max_iter", "init", "n_init", "chunk_size"),
)
def _fit(key, x, w, init_params, tol, reg_covar, *, n_components, covariance_type, max_iter, init, n_init, chunk_size):
  def step(params, x, w, reg_covar):
    return em_step_unchecked(params, x, w, reg_covar, chunk_size)

  def single(key):
    if init_params is None:
      params = _init.initial_params(
          key, x, w, reg_covar,
          n_components=n_components, covariance_type=covariance_type, init=init, chunk_size=chunk_size,
      )
    else:
      params = init_params
    return em_loop(step, params, tol, max_iter, (x, w, reg_covar))

  if n_init == 1:
    return single(key)
  # Restarts run side by side; the best one is kept.
  return best_of(jax.vmap(single)(jax.random.split(key, n_init)))


def fit(
    key,
    x: ArrayLike,
    n_components: int,
    *,
    covariance_type: str = "full",
    max_iter: int = 100,
    tol: float = 1e-3,
    reg_covar: float = 1e-6,
    init: str = "kmeans++",
    n_init: int = 1,
    weights: ArrayLike | None = None,
    init_params: GMMParams | None = None,
    chunk_size: int | None = None,
) -> FitResult:
  """Fits a Gaussian mixture by EM, as one compiled `lax.while_loop`.

  Args:
    key: PRNG key (initialisation).
    x: `[n, d]` data, float32 or float64. A `jax.Array` whose rows are
      sharded over a `jax.sharding.Mesh` axis (`NamedSharding(mesh,
      P("data"))`, on one or many hosts) is fitted where it lies: each device
      reduces its rows and the statistics are combined with `psum`.
    n_components: `k` (static).
    covariance_type: "full", "diag", "spherical" or "tied" (static).
    max_iter: maximum EM iterations (static: sets the trace length).
    tol: stop when the mean log-likelihood changes by less (traced).
    reg_covar: added to covariance diagonals (traced).
    init: "kmeans++", "kmeans", "random" or "random_from_data" (static).
      The centre-based inits assign each point to its nearest centre and
      start from that M-step.
    n_init: restarts, run in parallel with `vmap`; the best is kept (static).
    weights: optional `[n]` non-negative sample weights.
    init_params: explicit starting `GMMParams` (then `init` is unused).
    chunk_size: rows per chunk of the E/M passes (static); default bounds
      memory to a few MiB per chunk on CPU.

  Returns:
    `FitResult` with `params`, `log_likelihood` (scikit-learn's
    `lower_bound_`), `n_iter`, `converged` and `log_likelihood_trace [max_iter]`.
    `params` and `log_likelihood` are differentiable (`grad`, `jvp`) in `x`,
    `weights` and `reg_covar` by implicit differentiation at the EM fixed
    point: exact for a converged fit (use a small `tol`), one matrix-free GMRES
    solve per derivative, each iteration costing about one EM step.

  Raises:
    ValueError: on NaN/inf in `x`, wrong shapes, `n_components > n`, an unknown
      covariance type or init, or negative weights, before anything compiles.
  """
  x = _checks.data(x)
  n_components = _checks.n_components(n_components, x.shape[0])
  _checks.covariance_type(covariance_type)
  if init not in _init.INITS:
    raise ValueError(f"init must be one of {_init.INITS}, got {init!r}")
  for name, value in (("max_iter", max_iter), ("n_init", n_init)):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
      raise ValueError(f"{name} must be a positive integer, got {value!r}")
  if chunk_size is not None and (not isinstance(chunk_size, int) or chunk_size < 1):
    raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
  _checks.positive(tol, "tol", allow_zero=True)
  _checks.positive(reg_covar, "reg_covar", allow_zero=True)
  w = None if weights is None else _checks.as_weights(weights, x)
  if init_params is not None:
    _checks.params(init_params, x.shape[1])
    if init_params.covariance_type != covariance_type or init_params.means.shape[0] != n_components:
      raise ValueError(
          f"init_params are {init_params.covariance_type!r} with {init_params.means.shape[0]} "
          f"components, but fit asked for {covariance_type!r} with {n_components}"
      )
    init_params = jax.tree.map(lambda a: jnp.asarray(a, x.dtype), init_params)
  from . import _sharded  # imported here: it builds on this module

  rows = _sharded.row_sharding(x)
  fit_fn = _fit if rows is None else functools.partial(_sharded.fit_unchecked, mesh=rows[0], axis=rows[1])
  return fit_fn(
      key,
      x,
      w,
      init_params,
      jnp.asarray(tol, x.dtype),
      jnp.asarray(reg_covar, x.dtype),
      n_components=n_components,
      covariance_type=covariance_type,
      max_iter=max_iter,
      init=init,
      n_init=n_init,
      chunk_size=chunk_size,
  )
