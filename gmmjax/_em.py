"""The one EM driver: a loop over a statistics backend, and the fits built on it.

Every fit (`fit`, `fit_masked`, rows sharded over a mesh, `fit_stream`, the
scikit-learn estimator's warm start) is this loop: E-step statistics of one
pass from a backend (`Local` chunks here, `Sharded` rows in `_sharded`),
`merge`d, then the M-step. Only the bookkeeping of one iteration, `advance`,
is shared with the host loop of `fit_stream`, whose passes read the host.

The fit runs in the working coordinates of `_frame`, so data of any finite
size fit as well as data of unit scale.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from . import _checks, _chunking, _init, _padding, _stats
from ._frame import Frame, data_frame, from_frame, to_frame
from ._logprob import component_log_prob_fn, model_mean
from ._options import EMOptions, check_fit_args
from ._types import FitResult, GMMParams


def mask_components(params: GMMParams, active: jax.Array | None) -> GMMParams:
  """Zeroes the weights of inactive components (`active [k]` bool) and
  renormalises the rest; None keeps every component."""
  if active is None:
    return params
  w = jnp.where(active, params.weights, 0)
  return GMMParams(w / jnp.sum(w), params.means, params.precisions_cholesky, params.covariance_type)


@dataclasses.dataclass(frozen=True)
class Local:
  """Statistics backend for rows in one device's memory, in row chunks."""

  def reduce_stats(self, chunk_fn_of, args, x, w, *, frame, chunk_size, merge, psum=None, width=1):
    """Statistics of every row, of any pytree type: `chunk_fn_of(*args)`
    returns `fn(start, xs, ws) -> stats` of a chunk in working coordinates,
    and `merge` combines two (`psum(stats, axis_name)` combines devices in
    `Sharded`; unused here). `width` sizes the default chunk."""
    return _stats.reduce_rows(chunk_fn_of(*args), merge, x, w, shift=frame.shift, scale=frame.scale,
                              chunk_size=chunk_size, width=width)

  def reduce(self, resp_fn_of, args, x, w, centers, *, covariance_type, frame, chunk_size) -> _stats.SuffStats:
    """`SuffStats` of every row, responsibilities from `resp_fn_of(*args)`."""
    return self.reduce_stats(_stats.resp_reduction(resp_fn_of, covariance_type), (args, centers), x, w,
                             frame=frame, chunk_size=chunk_size, merge=_stats.merge, width=centers.size)

  def call(self, fn, *args):
    """`fn(*args)` on whole arrays (global ops: seeding, the data frame)."""
    return fn(*args)


def _e_step_resp(params: GMMParams):
  origin = jax.lax.stop_gradient(model_mean(params))
  log_prob_fn = component_log_prob_fn(params, origin)

  def resp_fn(start, xs):
    lp = log_prob_fn(xs - origin[None, :])
    ll = jax.nn.logsumexp(lp, axis=-1)
    return jnp.exp(lp - ll[:, None]), ll

  return resp_fn


def em_stats(backend, params: GMMParams, x, w, frame: Frame, chunk_size) -> _stats.SuffStats:
  """E-step statistics of one pass, in the working coordinates of `params`."""
  return backend.reduce(
      _e_step_resp, (params,), x, w, jax.lax.stop_gradient(params.means),
      covariance_type=params.covariance_type, frame=frame, chunk_size=chunk_size,
  )


def e_step_stats(params: GMMParams, x, w=None, *, backend=Local(), chunk_size=None) -> _stats.SuffStats:
  """E-step statistics in the data's coordinates, the pass centred on the
  model's mean (traced; no checks)."""
  origin = jax.lax.stop_gradient(model_mean(params))
  frame = Frame(origin, jnp.ones((), x.dtype))
  return _stats.shifted(em_stats(backend, to_frame(params, frame), x, w, frame, chunk_size), origin)


_suff_stats = jax.jit(e_step_stats, static_argnames=("backend", "chunk_size"))


def suff_stats(
    params: GMMParams,
    x: ArrayLike,
    weights: ArrayLike | None = None,
    *,
    chunk_size: int | None = None,
) -> _stats.SuffStats:
  """E-step statistics of `x` under `params`, in one chunked pass.

  Args:
    params: mixture parameters.
    x: `[n, d]` points; rows sharded over a mesh axis are reduced where they
      lie (per device, then `psum_stats`).
    weights: optional `[n]` non-negative sample weights.
    chunk_size: rows per chunk (static); default bounds memory per chunk.

  Returns:
    `SuffStats`; `merge` them across batches, devices or hosts, then call
    `params_from_stats` for the M-step.
  """
  from . import _sharded  # imported here: it builds on this module

  _checks.params(params)
  x = _checks.as_points(x, params)
  w = None if weights is None else _checks.as_weights(weights, x)
  rows = _sharded.row_sharding(x)
  backend = Local() if rows is None else _sharded.Sharded(*rows)
  if rows is not None and w is not None:
    w = _sharded.like_rows(w, x)
  return _suff_stats(params, x, w, backend=backend, chunk_size=chunk_size)


# The loop's state is a `FitResult` in working coordinates.
EMState = FitResult


def init_state(params: GMMParams, max_iter: int, lower_bound=-jnp.inf, ok=True) -> EMState:
  """The state before the first iteration; `ok` False (an ill-defined start)
  leaves it failed, so no iteration runs."""
  dtype = params.means.dtype
  return FitResult(params, jnp.asarray(lower_bound, dtype), jnp.asarray(0), jnp.asarray(False),
                   jnp.full((max_iter,), jnp.nan, dtype), ~jnp.asarray(ok))


def advance(state: EMState, params: GMMParams, ll, ok, tol) -> EMState:
  """One EM iteration's bookkeeping: `params` are the M-step of the pass
  whose mean log-likelihood (of `state.params`) is `ll`. An M-step with an
  ill-defined covariance (`ok` False) stops the loop at the last good
  parameters, flagged `failed`."""
  keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(ok, a, b), new, old)
  return FitResult(
      params=keep(params, state.params),
      log_likelihood=ll,
      n_iter=state.n_iter + 1,
      converged=ok & (jnp.abs(ll - state.log_likelihood) < tol),
      log_likelihood_trace=state.log_likelihood_trace.at[state.n_iter].set(ll),
      failed=~ok,
  )


def _run_em(step, tol, max_iter: int, state: EMState, consts) -> EMState:
  def cond(state):
    return (state.n_iter < max_iter) & ~state.converged & ~state.failed

  def body(state):
    params, ll, ok = step(state.params, *consts)
    return advance(state, params, ll, ok, tol)

  return jax.lax.while_loop(cond, body, state)


def _gmres(matvec, b):
  eps = float(jnp.finfo(jax.tree.leaves(b)[0].dtype).eps)
  x = jax.scipy.sparse.linalg.gmres(matvec, b, tol=eps**0.75, restart=40)[0]
  # GMRES stops at once on a NaN residual and returns its zero start: pass the
  # NaN on rather than a silently zero derivative.
  finite = jnp.all(jnp.stack([jnp.all(jnp.isfinite(v)) for v in jax.tree.leaves(b)]))
  return jax.tree.map(lambda v: jnp.where(finite, v, jnp.nan), x)


@functools.partial(jax.custom_jvp, nondiff_argnums=(0, 2))
def _em_fixed_point(step, tol, max_iter, state, consts):
  return _run_em(step, tol, max_iter, state, consts)


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
    new_params, new_ll, _ = step(params, *consts)
    return jax.tree.map(jnp.subtract, new_params, params), new_ll - ll

  state = (result.params, result.log_likelihood)
  _, rhs = jax.jvp(lambda c: residual(state, c), (consts,), (tangents[2],))
  _, linear = jax.linearize(lambda s: residual(s, consts), state)
  # custom_linear_solve makes the matrix-free solve transposable (reverse mode).
  d_params, d_ll = jax.tree.map(jnp.negative, jax.lax.custom_linear_solve(
      linear, rhs, solve=_gmres, transpose_solve=_gmres))
  float0 = lambda a: np.zeros(a.shape, jax.dtypes.float0)
  return result, result._replace(
      params=d_params, log_likelihood=d_ll, n_iter=float0(result.n_iter), converged=float0(result.converged),
      log_likelihood_trace=jnp.zeros_like(result.log_likelihood_trace), failed=float0(result.failed))


def em_loop(step_fn: Callable, state: EMState, tol, max_iter: int, data: tuple = ()) -> EMState:
  """Iterates `step_fn(params, *data) -> (params, mean_ll, ok)` from `state`
  until the change in mean log-likelihood is below `tol`, an M-step fails or
  `max_iter` steps ran (`lax.while_loop`).

  Derivatives of the fitted `params` and `log_likelihood` with respect to
  `data` (points, sample weights, `reg_covar`, ...) come from the implicit
  function theorem at the EM fixed point, not from unrolling the loop: exact
  at convergence, one matrix-free linear solve per derivative, no memory per
  iteration, and nothing traced unless something is differentiated. Every
  traced value `step_fn` uses must come through `data` (a closed-over tracer
  would leak out of the derivative rule).
  """
  return _em_fixed_point(step_fn, tol, max_iter, state, tuple(data))


def best_of(results):
  """The restart with the highest log-likelihood from a batch of results."""
  ll = jnp.where(jnp.isnan(results.log_likelihood), -jnp.inf, results.log_likelihood)
  best = jnp.argmax(ll)
  return jax.tree.map(lambda a: a[best], results)


def _step(params, x, w, reg, frame, active, *, backend, chunk_size):
  stats = em_stats(backend, params, x, w, frame, chunk_size)
  new, ok = _stats.m_step_checked(stats, reg)
  return mask_components(new, active), stats.log_likelihood / stats.total_weight, ok


def working_frame(backend, x, w, reg_covar) -> tuple[Frame, jax.Array]:
  """The frame of the data and `reg_covar` in its units (traced)."""
  frame = backend.call(data_frame, x, w)
  # reg / scale**2 by the exponent: XLA folds reg / s / s into reg / (s * s), whose
  # s * s overflows (or underflows) for data of size 1e20 (or 1e-20).
  exponent = jnp.frexp(frame.scale)[1] - 1
  return frame, jnp.ldexp(reg_covar, -2 * exponent)


def starting_params(key, x, w, reg, frame, init_params, active, *, backend,
                    options) -> tuple[GMMParams, jax.Array]:
  """`init_params`, or the initialisation `options.init`, in the frame, and
  whether its covariances were well defined (traced)."""
  if init_params is None:
    return _init.initial_params(key, x, w, reg, frame, active, backend=backend, options=options)
  return mask_components(to_frame(init_params, frame), active), jnp.asarray(True)


def _fit_program(key, x, w, init_params, tol, reg_covar, active, lower_bound, *, backend,
                 options: EMOptions) -> FitResult:
  """The whole fit as one program: frame, initialisation, EM loop, restarts."""
  frame, reg = working_frame(backend, x, w, reg_covar)
  log_jacobian = x.shape[1] * jnp.log(frame.scale)
  step = functools.partial(_step, backend=backend, chunk_size=options.chunk_size)

  def single(key):
    params, ok = starting_params(key, x, w, reg, frame, init_params, active, backend=backend, options=options)
    state = init_state(params, options.max_iter, lower_bound + log_jacobian, ok)
    return em_loop(step, state, tol, options.max_iter, (x, w, reg, frame, active))

  if options.n_init == 1:
    state = single(key)
  else:
    state = best_of(jax.vmap(single)(jax.random.split(key, options.n_init)))
  return result_from(state, frame)


_STATIC = ("backend", "options")


def jit_fit(program):
  """`program` jitted twice over its static `backend` and `options`: as is,
  and at LLVM's lowest optimisation level for small fits, which spend their
  time compiling, not computing (at a run-time cost small work does not feel)."""
  return (jax.jit(program, static_argnames=_STATIC),
          jax.jit(program, static_argnames=_STATIC, compiler_options={"xla_backend_optimization_level": 0}))


_fit, _fit_small = jit_fit(_fit_program)
_SMALL_WORK = 1 << 22  # rows * k * d of one pass


def _call_fit(args, x_shape, options: EMOptions, programs=None, **static):
  """The jitted fit (`programs` from `jit_fit`, default the GMM's): the small
  one for small work on CPU when called at top level (compiler options are only
  for a top-level `jit`), else the other."""
  fit, fit_small = (_fit, _fit_small) if programs is None else programs
  work = x_shape[0] * x_shape[1] * options.n_components
  if (work <= _SMALL_WORK and jax.default_backend() == "cpu"
      and all(_checks.is_concrete(a) for a in jax.tree.leaves(args))):
    try:
      return fit_small(*args, options=options, **static)
    except ValueError as err:  # inside a caller's trace after all (closed-over data)
      if "compiler_options" not in str(err):
        raise
  return fit(*args, options=options, **static)


def result_from(state: EMState, frame: Frame, params_from_frame=from_frame) -> FitResult:
  """The fit in the data's own coordinates (log-likelihoods with the frame's
  Jacobian); `params_from_frame(params, frame)` maps the model's parameters."""
  log_jacobian = state.params.means.shape[-1] * jnp.log(frame.scale)
  return FitResult(
      params=params_from_frame(state.params, frame),
      log_likelihood=state.log_likelihood - log_jacobian,
      n_iter=state.n_iter,
      converged=state.converged,
      log_likelihood_trace=state.log_likelihood_trace - log_jacobian,
      failed=state.failed,
  )


def run(key, x, w, init_params, tol, reg_covar, *, options: EMOptions, active=None,
        lower_bound=-np.inf) -> FitResult:
  """Validated inputs -> the fit: rows padded to a size class (one compile
  serves every row count of that class), or sharded rows where they lie.
  Raises a `ValueError` naming `reg_covar` when a concrete fit failed."""
  backend, x, w, options = placed(x, w, options)
  dtype = x.dtype
  args = (key, x, w, init_params, jnp.asarray(tol, dtype), jnp.asarray(reg_covar, dtype), active,
          jnp.asarray(lower_bound, dtype))
  result = _call_fit(args, x.shape, options, backend=backend)
  check_failed(result.failed)
  return result


def placed(x, w, options: EMOptions):
  """The backend for `x` and the rows it reduces: padded to a size class in
  one device's memory, or sharded rows where they lie (with `w` beside them).
  Returns `(backend, x, w, options)`, the options with the chunk size used."""
  from . import _sharded  # imported here: it builds on this module

  rows = _sharded.row_sharding(x)
  if rows is None:
    x, w, options = _padded(x, w, options)
    return Local(), x, w, options
  _sharded.check_rows(x, *rows)
  if w is not None:
    w = _sharded.like_rows(w, x)
  return _sharded.Sharded(*rows), x, w, options


def _padded(x, w, options: EMOptions):
  """Rows padded to their size class, and the options with its chunk size."""
  chunk = options.chunk_size or _chunking.default_chunk_size(x.shape[0], options.n_components * x.shape[1])
  n = x.shape[0]
  if n * options.n_components * x.shape[1] > _SMALL_WORK:
    # Padding rows cost every iteration their share; small work spends its time
    # compiling, so it keeps the fewer, coarser classes.
    rows, chunk = _padding.chunked_size_class(n, chunk)
  else:
    rows = _padding.size_class(n, chunk)
  x, w = _padding.pad_rows(x, w, rows)
  return x, w, dataclasses.replace(options, chunk_size=chunk)


@functools.partial(jax.jit, static_argnames=("options",))
def _initial_params(key, x, w, reg_covar, *, options: EMOptions) -> GMMParams:
  frame, reg = working_frame(Local(), x, w, reg_covar)
  params, _ = starting_params(key, x, w, reg, frame, None, None, backend=Local(), options=options)
  return from_frame(params, frame)


def initial_params(key, x, w, reg_covar, *, options: EMOptions) -> GMMParams:
  """The starting parameters `fit` would use, in the data's coordinates
  (validated inputs; rows padded to their size class)."""
  x, w, options = _padded(x, w, options)
  return _initial_params(key, x, w, jnp.asarray(reg_covar, x.dtype), options=options)


def check_failed(failed) -> None:
  if _checks.is_concrete(failed) and bool(jnp.any(failed)):
    raise ValueError(
        "Fitting the mixture model failed because some components have ill-defined empirical covariance "
        "(for instance caused by singleton or collapsed samples). Try to decrease the number of components, "
        "or increase reg_covar."
    )


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

  Rows are padded with zero-weight rows to a size class (powers of two up to
  the chunk size, whole chunks above it), so fits of 1000 and 1020 rows share
  one compiled program.

  Args:
    key: PRNG key (initialisation).
    x: `[n, d]` data, float32 or float64 (float16/bfloat16 are fitted in
      float32). A `jax.Array` whose rows are sharded over a
      `jax.sharding.Mesh` axis (`NamedSharding(mesh, P("data"))`, on one or
      many hosts) is fitted where it lies: each device reduces its rows and
      the statistics are combined with `psum`.
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
    `lower_bound_`), `n_iter`, `converged`, `log_likelihood_trace [max_iter]`
    and `failed`. `params` and `log_likelihood` are differentiable (`grad`,
    `jvp`) in `x`, `weights` and `reg_covar` by implicit differentiation at
    the EM fixed point: exact for a converged fit (use a small `tol`), one
    matrix-free GMRES solve per derivative, each iteration costing about one
    EM step.

  Raises:
    ValueError: on NaN/inf in `x`, wrong shapes, `n_components > n`, an unknown
      covariance type or init, or negative weights, before anything compiles;
      and, for a fit run eagerly, when a covariance is ill-defined (increase
      `reg_covar`). Under `jit` that is `FitResult.failed` instead.
  """
  options = EMOptions(n_components, covariance_type, max_iter, init, n_init, chunk_size)
  x = _checks.data(x)
  w = None if weights is None else _checks.as_weights(weights, x)
  init_params = check_fit_args(options, x.shape[0], x.shape[1], tol, reg_covar, init_params, x.dtype)
  return run(key, x, w, init_params, tol, reg_covar, options=options)


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
  `jax.vmap(lambda k: fit_masked(key, x, 8, k))(jnp.arange(1, 9))`. The
  inactive slots have weight exactly zero, so their log-density is -inf, their
  responsibilities are zero, and the EM iterates of the active slots are those
  of an `n_active`-component fit.

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
  options = EMOptions(max_components, covariance_type, max_iter, "kmeans++", n_init, chunk_size)
  x = _checks.data(x)
  if _checks.is_concrete(n_active):
    if not np.issubdtype(np.asarray(n_active).dtype, np.integer) or not 1 <= int(n_active) <= max_components:
      raise ValueError(f"n_active must be an integer in [1, {max_components}], got {n_active!r}")
  w = None if weights is None else _checks.as_weights(weights, x)
  init_params = check_fit_args(options, x.shape[0], x.shape[1], tol, reg_covar, init_params, x.dtype)
  active = jnp.arange(max_components) < jnp.asarray(n_active)
  return run(key, x, w, init_params, tol, reg_covar, options=options, active=active)


def _m_step(x, resp, w, reg_covar, covariance_type, chunk_size):
  stats = _stats._stats_from_resp(x, resp, w, covariance_type, chunk_size)
  return _stats.m_step_checked(stats, reg_covar)


_m_step_jit = jax.jit(_m_step, static_argnums=(4, 5))


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

  Raises:
    ValueError: on bad inputs, and (eagerly) on an ill-defined covariance.
  """
  x = _checks.data(x)
  _checks.covariance_type(covariance_type)
  log_resp = _checks.float_array(log_resp, "log_resp", allow_neg_inf=True).astype(x.dtype)
  if log_resp.ndim != 2 or log_resp.shape[0] != x.shape[0]:
    raise ValueError(f"log_resp must have shape [{x.shape[0]}, k], got {log_resp.shape}")
  _checks.positive(reg_covar, "reg_covar", allow_zero=True)
  w = None if weights is None else _checks.as_weights(weights, x)
  params, ok = _m_step_jit(x, jnp.exp(log_resp), w, jnp.asarray(reg_covar, x.dtype), covariance_type, chunk_size)
  check_failed(~ok)
  return params


def em_step_unchecked(params, x, w, reg_covar, chunk_size=None):
  stats = e_step_stats(params, x, w, chunk_size=chunk_size)
  return _stats.params_from_stats(stats, reg_covar), stats.log_likelihood / stats.total_weight


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
