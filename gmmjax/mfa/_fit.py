"""EM for mixtures of factor analysers, on the core's backends and loop.

One pass gathers, per component, statistics about the component's current
parameters (never a `[d, d]` matrix): with z* = E[z | x, k], z~ = [z*, 1] and
e = x - mu_k - W_k z* the residual under the current parameters,

  counts    N_k = sum r                     [k]
  z_sum     sum r z*                        [k, l]
  zz        sum r E[z z^T]                  [k, l, l]
  cov       sum r M^-1 = N_k M_k^-1         [k, l, l]
  resid2    sum r e^2 (elementwise)         [k, d]
  cross     sum r e z~^T                    [k, d, l + 1]

All are sums under parameters fixed for the pass, so chunks, batches and
devices merge by addition. The M-step is Ghahramani and Hinton's closed form
in the augmented loadings [W, mu - mu_old] (Tipping and Bishop's for
isotropic noise), written on the residuals so that the new noise variances
are sums of positive terms (see `m_step_checked`).
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from jax.scipy.linalg import cho_factor, cho_solve
from jax.typing import ArrayLike

from .. import _checks, _chunking, _em, _init, _linalg, _sharded, _stream
from .._frame import Frame
from .._options import EMOptions, positive_int
from .._stats import safe_div, weighted_resp
from .._types import FitResult
from . import _model
from ._model import MFAParams

INITS = ("kmeans", "kmeans++")


@dataclasses.dataclass(frozen=True)
class MFAStats:
  """Sufficient statistics of one EM pass (see the module docstring), under
  the parameters the pass used.

  Attributes:
    counts: `[k]`; z_sum: `[k, l]`; zz: `[k, l, l]`; cov: `[k, l, l]`;
    resid2: `[k, d]`; cross: `[k, d, l + 1]`; log_likelihood: `[]` weighted
    sum of log p(x_i); total_weight: `[]` sum of sample weights.
  """

  counts: jax.Array
  z_sum: jax.Array
  zz: jax.Array
  cov: jax.Array
  resid2: jax.Array
  cross: jax.Array
  log_likelihood: jax.Array
  total_weight: jax.Array


jax.tree_util.register_dataclass(MFAStats, data_fields=[f.name for f in dataclasses.fields(MFAStats)],
                                 meta_fields=[])


def merge(a: MFAStats, b: MFAStats) -> MFAStats:
  """Statistics of the union of two disjoint sets of rows (same centres)."""
  return jax.tree.map(jnp.add, a, b)


def psum(stats: MFAStats, axis_name) -> MFAStats:
  """The statistics of all devices along `axis_name` (inside `shard_map`)."""
  return jax.tree.map(lambda v: jax.lax.psum(v, axis_name), stats)


def _chunk_fn_of(params: MFAParams):
  """The chunk function of a pass in working coordinates."""
  fac = _model.factorise(params)

  def fn(start, xs, wc):
    lp, ez = _model.chunk_terms(fac, params, xs)
    ll = jax.nn.logsumexp(lp, axis=-1)
    r, ll_sum, total = weighted_resp(jnp.exp(lp - ll[:, None]), ll, wc, xs.shape[0])
    c, k, l = ez.shape
    rez = r[:, :, None] * ez
    counts = jnp.sum(r, axis=0)
    z_sum = jnp.sum(rez, axis=0)
    cov = counts[:, None, None] * fac.m_inv
    zz = jnp.einsum("ckl,ckm->klm", rez, ez, precision=_linalg.PRECISION) + cov
    resid2 = _model.map_residuals(params, xs, ez, lambda e, rk: _linalg.mm(rk, e * e), r.T)
    # sum r (x - mu) [z*, 1]^T as GEMMs with the rows as the shared operand, then
    # sum r e [z*, 1]^T = that - W sum r z* [z*, 1]^T (terms of the size of e: see
    # `m_step_checked`).
    s_yz = jnp.transpose(_linalg.mm(xs.T, rez.reshape(c, k * l)).reshape(-1, k, l), (1, 0, 2))
    s_yz = s_yz - params.means[:, :, None] * z_sum[:, None, :]
    first = _linalg.mm(r.T, xs) - counts[:, None] * params.means
    point = jnp.concatenate([zz - cov, z_sum[:, :, None]], axis=-1)  # sum r z* z~^T
    cross = jnp.concatenate([s_yz, first[:, :, None]], axis=-1) - jnp.matmul(
        params.factors, point, precision=_linalg.PRECISION)
    return MFAStats(counts, z_sum, zz, cov, resid2, cross, ll_sum, total)

  return fn


def em_stats(backend, params: MFAParams, x, w, frame: Frame, chunk_size) -> MFAStats:
  """E-step statistics of one pass, in the working coordinates of `params`."""
  return backend.reduce_stats(_chunk_fn_of, (params,), x, w, frame=frame, chunk_size=chunk_size, merge=merge,
                              psum=psum, width=_model.chunk_width(*params.factors.shape))


def m_step_checked(stats: MFAStats, params: MFAParams, reg) -> tuple[MFAParams, jax.Array]:
  """Closed-form M-step from statistics gathered under `params`, and `[]`
  whether it is well defined (finite, positive noise).

  With y = x - mu_old = e + W~_o z~ (W~_o = [W_old, 0]), S = sum r E[z~ z~^T] =
  P + C (P = sum r z~ z~^T, C = N blockdiag(M^-1, 0)) and S_ez = sum r e z~^T,
  the new loadings are W~ = S_yz S^-1 with S_yz = S_ez + W~_o P, and

    N psi = diag(S_yy - W~ S_yz^T)
          = sum r e^2 + 2 diag(W~_o C S^-1 S_ez^T) - diag(S_ez S^-1 S_ez^T) + diag(W~_o P S^-1 C W~_o^T),

  using P - P S^-1 P = P S^-1 C: no term is of the size of the data's
  variance, so psi keeps its digits where it is far below it (S_yy -
  W~ S_yz^T would cancel them)."""
  dtype = stats.counts.dtype
  k, d, l1 = stats.cross.shape
  l = l1 - 1
  tiny = 10 * jnp.finfo(dtype).eps
  nk = stats.counts + tiny
  cov = jnp.zeros((k, l1, l1), dtype).at[:, :l, :l].set(stats.cov)  # C
  s_zz = jnp.concatenate([
      jnp.concatenate([stats.zz, stats.z_sum[:, :, None]], axis=-1),
      jnp.concatenate([stats.z_sum, stats.counts[:, None]], axis=-1)[:, None, :],
  ], axis=-2)
  s_zz = 0.5 * (s_zz + jnp.swapaxes(s_zz, -1, -2)) + tiny * jnp.eye(l1, dtype=dtype)[None]
  point = s_zz - cov  # P
  # One factorisation and one solve, in sequence (independent LAPACK calls side by side
  # can deadlock XLA's CPU thread pool).
  chol = cho_factor(s_zz, lower=True)[0]
  s_inv = jax.vmap(lambda c: cho_solve((c, True), jnp.eye(l1, dtype=dtype)))(chol)
  s_inv = 0.5 * (s_inv + jnp.swapaxes(s_inv, -1, -2))
  w_old = jnp.concatenate([params.factors, jnp.zeros((k, d, 1), dtype)], axis=-1)
  mm = functools.partial(jnp.matmul, precision=_linalg.PRECISION)
  s_yz = stats.cross + mm(w_old, point)
  w_aug = mm(s_yz, s_inv)  # S_yz S^-1
  g_ez = mm(stats.cross, s_inv)  # S_ez S^-1
  g_c = mm(s_inv, cov)  # S^-1 C
  rowdot = lambda u, v: jnp.sum(u * v, axis=-1)
  resid = (stats.resid2 + 2 * rowdot(mm(w_old, jnp.swapaxes(g_c, -1, -2)), stats.cross)
           - rowdot(g_ez, stats.cross) + rowdot(mm(mm(w_old, point), g_c), w_old))
  resid = jnp.maximum(resid, 0) / nk[:, None]
  if params.isotropic:
    resid = jnp.broadcast_to(jnp.mean(resid, axis=-1, keepdims=True), resid.shape)
  psi = resid + reg
  new = MFAParams(nk / jnp.sum(nk), params.means + w_aug[:, :, l], w_aug[:, :, :l], psi, params.isotropic)
  ok = jnp.all(jnp.isfinite(w_aug)) & jnp.all(psi > 0) & jnp.all(jnp.isfinite(psi))
  return new, ok


def _step(params, x, w, reg, frame, *, backend, chunk_size):
  stats = em_stats(backend, params, x, w, frame, chunk_size)
  new, ok = m_step_checked(stats, params, reg)
  return new, stats.log_likelihood / stats.total_weight, ok


@dataclasses.dataclass(frozen=True)
class MFAOptions:
  """Static options of an MFA fit (each distinct value is a compile)."""

  n_components: int
  n_factors: int
  isotropic: bool = False
  max_iter: int = 100
  init: str = "kmeans"
  n_power_iter: int = 6
  chunk_size: int | None = None

  def __post_init__(self):
    positive_int(self.n_components, "n_components")
    positive_int(self.n_factors, "n_factors")
    positive_int(self.max_iter, "max_iter")
    positive_int(self.n_power_iter, "n_power_iter")
    if self.init not in INITS:
      raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
    if self.chunk_size is not None:
      positive_int(self.chunk_size, "chunk_size")


def _power_chunk_fn_of(centers, q):
  """Chunk function of `(S_k Q_k [k, d, l], N_k [k], trace S_k [k])`, `S_k =
  sum_i h_ik (x_i - c_k) (x_i - c_k)^T` the scatter of the rows assigned
  (`h`, times the weights) to their nearest centre."""
  k, d, l = q.shape
  stacked = jnp.transpose(q, (1, 0, 2)).reshape(d, k * l)
  offsets = jnp.einsum("kd,kdl->kl", centers, q, precision=_linalg.PRECISION)

  def fn(start, xs, wc):
    nearest = jnp.argmin(_init._sq_dist(xs, centers), axis=1)
    h = jax.nn.one_hot(nearest, k, dtype=xs.dtype)
    h = h if wc is None else h * wc[:, None]
    proj = h[:, :, None] * (_linalg.mm(xs, stacked).reshape(-1, k, l) - offsets[None])
    ys = jnp.transpose(_linalg.mm(xs.T, proj.reshape(-1, k * l)).reshape(d, k, l), (1, 0, 2))
    ys = ys - centers[:, :, None] * jnp.sum(proj, axis=0)[:, None, :]
    sq = _linalg.mm(jnp.sum((xs - centers[nearest]) ** 2, axis=1), h)  # no [c, k, d] array
    return ys, jnp.sum(h, axis=0), sq

  return fn


def initial_params(key, x, w, reg, frame: Frame, *, backend, options: MFAOptions) -> tuple[MFAParams, jax.Array]:
  """k-means, then each cluster's principal subspace by subspace iteration
  over hard assignments, set to the probabilistic-PCA maximum-likelihood
  solution of its cluster (Tipping and Bishop): W = U (Lambda - sigma^2)^1/2,
  sigma^2 the mean discarded variance (working coordinates; traced)."""
  k, l = options.n_components, options.n_factors
  d = x.shape[1]
  # Means and per-feature variances of the clusters: the core's start with
  # diagonal covariances (each row assigned to its nearest k-means centre).
  gmm_options = EMOptions(k, "diag", 1, options.init, 1, options.chunk_size)
  start, ok = _init.initial_params(key, x, w, reg, frame, None, backend=backend, options=gmm_options)
  centers = start.means
  q0 = jnp.linalg.qr(jax.random.normal(jax.random.fold_in(key, 1), (k, d, l), x.dtype))[0]

  def scatter_times(q):
    return backend.reduce_stats(_power_chunk_fn_of, (centers, q), x, w, frame=frame,
                                chunk_size=options.chunk_size, merge=lambda a, b: jax.tree.map(jnp.add, a, b),
                                psum=jax.lax.psum, width=_model.chunk_width(d, k, l))

  q = jax.lax.fori_loop(0, options.n_power_iter, lambda i, q: jnp.linalg.qr(scatter_times(q)[0])[0], q0)
  sq, counts, trace = scatter_times(q)
  sq = safe_div(sq, counts[:, None, None])  # S_k Q_k / N_k
  total_var = safe_div(trace, counts)
  b = jnp.einsum("kdl,kdm->klm", q, sq, precision=_linalg.PRECISION)
  lam, vec = jnp.linalg.eigh(0.5 * (b + jnp.swapaxes(b, -1, -2)))
  lam = jnp.maximum(lam, 0)
  sigma2 = jnp.maximum(total_var - jnp.sum(lam, axis=-1), 0) / max(d - l, 1) + reg
  u = jnp.einsum("kdl,klm->kdm", q, vec, precision=_linalg.PRECISION)
  factors = u * jnp.sqrt(jnp.maximum(lam - sigma2[:, None], 0))[:, None, :]
  psi = jnp.broadcast_to(sigma2[:, None], (k, d))
  params = MFAParams(start.weights, centers, factors, psi, options.isotropic)
  return params, ok & jnp.all(jnp.isfinite(factors))


def _fit_program(key, x, w, init_params, tol, reg_covar, *, backend, options: MFAOptions) -> FitResult:
  frame, reg = _em.working_frame(backend, x, w, reg_covar)
  if init_params is None:
    params, ok = initial_params(key, x, w, reg, frame, backend=backend, options=options)
  else:
    params, ok = _model.to_frame(init_params, frame), jnp.asarray(True)
  step = functools.partial(_step, backend=backend, chunk_size=options.chunk_size)
  state = _em.init_state(params, options.max_iter, ok=ok)
  state = _em.em_loop(step, state, tol, options.max_iter, (x, w, reg, frame))
  return _em.result_from(state, frame, _model.from_frame)


_fit = jax.jit(_fit_program, static_argnames=("backend", "options"))


def fit(
    key,
    x: ArrayLike,
    n_components: int,
    n_factors: int,
    *,
    isotropic: bool = False,
    max_iter: int = 100,
    tol: float = 1e-3,
    reg_covar: float = 1e-6,
    init: str = "kmeans",
    n_power_iter: int = 6,
    weights: ArrayLike | None = None,
    init_params: MFAParams | None = None,
    chunk_size: int | None = None,
) -> FitResult:
  """Fits a mixture of factor analysers (MPPCA when `isotropic`) by EM.

  The same compiled `lax.while_loop` as `gmmjax.fit`, in the same working
  coordinates, on the same statistics backends: rows in memory are chunked
  (and padded to a size class with zero-weight rows), rows sharded over a
  mesh axis are reduced where they lie.

  Args:
    key: PRNG key (initialisation).
    x: `[n, d]` data, float32 or float64.
    n_components: `k` (static).
    n_factors: `l`, latent dimensions per component, `1 <= l < d` (static).
    isotropic: noise `sigma_k^2 I` (mixture of probabilistic PCA) instead of
      a diagonal `Psi_k` (static).
    max_iter: maximum EM iterations (static).
    tol: stop when the mean log-likelihood changes by less (traced).
    reg_covar: added to the noise variances (traced).
    init: "kmeans" (Lloyd from k-means++) or "kmeans++" (seeding only) for the
      clusters whose principal subspaces start the factors (static).
    n_power_iter: subspace iterations of the per-cluster PCA (static).
    weights: optional `[n]` non-negative sample weights.
    init_params: explicit starting `MFAParams` (then `init` is unused).
    chunk_size: rows per chunk of a pass (static).

  Returns:
    `FitResult` whose `params` are `MFAParams`; `log_likelihood` is the mean
    log-likelihood of the last E-step, differentiable in `x`, `weights` and
    `reg_covar` (implicitly, at the fixed point).

  Raises:
    ValueError: on invalid data or settings, before anything compiles; on an
      eager fit whose noise variances became ill-defined (increase
      `reg_covar`).
  """
  options = MFAOptions(n_components, n_factors, bool(isotropic), max_iter, init, n_power_iter, chunk_size)
  x = _checks.data(x)
  init_params = _check_fit_args(options, x, tol, reg_covar, init_params)
  w = None if weights is None else _checks.as_weights(weights, x)
  rows = _sharded.row_sharding(x)
  if rows is None:
    backend = _em.Local()
    x, w, options = _padded(x, w, options)
  else:
    backend = _sharded.Sharded(*rows)
    _sharded.check_rows(x, *rows)
    if w is not None:
      w = _sharded.like_rows(w, x)
  dtype = x.dtype
  result = _fit(key, x, w, init_params, jnp.asarray(tol, dtype), jnp.asarray(reg_covar, dtype), backend=backend,
                options=options)
  _em.check_failed(result.failed)
  return result


def _padded(x, w, options: MFAOptions):
  """Rows padded to their size class, and the options with its chunk size
  (`_em._padded` with this model's default chunk)."""
  chunk = options.chunk_size or _chunking.default_chunk_size(
      x.shape[0], _model.chunk_width(x.shape[1], options.n_components, options.n_factors))
  return _em._padded(x, w, dataclasses.replace(options, chunk_size=chunk))


def _check_fit_args(options: MFAOptions, x, tol, reg_covar, init_params) -> MFAParams | None:
  """Checks a fit's arguments against the data `x [n, d]` (or a first batch);
  returns `init_params` in the data's dtype."""
  n, d = x.shape
  if init_params is None:
    _checks.n_components(options.n_components, n)
  if options.n_factors >= d:
    raise ValueError(f"n_factors must be below the number of features {d}, got {options.n_factors}")
  _checks.positive(tol, "tol", allow_zero=True)
  _checks.positive(reg_covar, "reg_covar", allow_zero=True)
  if init_params is None:
    return None
  _model.check_params(init_params, d)
  if (init_params.n_components, init_params.n_factors) != (options.n_components, options.n_factors):
    raise ValueError(f"init_params have {init_params.n_components} components and {init_params.n_factors} "
                     f"factors, but the fit asked for {options.n_components} and {options.n_factors}")
  if init_params.isotropic != options.isotropic:
    raise ValueError(f"init_params.isotropic is {init_params.isotropic}, the fit asked for {options.isotropic}")
  return jax.tree.map(lambda a: jnp.asarray(a, x.dtype), init_params)


@functools.partial(jax.jit, static_argnames=("backend", "options"))
def _stream_start(key, x, w, init_params, reg_covar, *, backend, options):
  frame, reg = _em.working_frame(backend, x, w, reg_covar)
  if init_params is None:
    params, ok = initial_params(key, x, w, reg, frame, backend=backend, options=options)
  else:
    params, ok = _model.to_frame(init_params, frame), jnp.asarray(True)
  return frame, reg, params, ok


@functools.partial(jax.jit, static_argnames=("backend", "chunk_size"))
def _batch_stats(params, x, w, frame, *, backend, chunk_size):
  return em_stats(backend, params, x, w, frame, chunk_size)


_stream_hooks = _stream.Hooks(None, _batch_stats, jax.jit(merge), jax.jit(m_step_checked), _model.from_frame)


def fit_stream(
    key,
    batches,
    n_components: int,
    n_factors: int,
    *,
    isotropic: bool = False,
    max_iter: int = 100,
    tol: float = 1e-3,
    reg_covar: float = 1e-6,
    init: str = "kmeans",
    n_power_iter: int = 6,
    init_params: MFAParams | None = None,
    chunk_size: int | None = None,
    mesh: jax.sharding.Mesh | None = None,
    axis: str | tuple[str, ...] = "data",
    progress: bool = True,
) -> FitResult:
  """EM over a stream of batches, one pass per iteration: `gmmjax.fit_stream`'s
  host loop with this model's statistics. Equals `fit` on the concatenated
  batches from the same start.

  Args:
    batches: as in `gmmjax.fit_stream` (a re-iterable or a callable returning a
      fresh iterator of `[b, d]` arrays or `(x, weights)` pairs).
    mesh, axis, progress: as in `gmmjax.fit_stream`.
    The others as in `fit`; `init` applies to the first batch only.

  Returns:
    `FitResult` with `MFAParams`.
  """
  options = MFAOptions(n_components, n_factors, bool(isotropic), max_iter, init, n_power_iter, chunk_size)
  stream = _stream.open_stream(batches, mesh, axis)
  init_params = _check_fit_args(options, stream.first_x, tol, reg_covar, init_params)
  hooks = _stream_hooks._replace(start=functools.partial(_stream_start, options=options))
  return _stream.host_loop(hooks, stream, key, init_params, reg_covar, tol, max_iter, chunk_size, progress)


@functools.partial(jax.jit, static_argnames=("backend", "chunk_size"))
def _suff_stats(params, x, w, *, backend, chunk_size):
  frame = Frame(jnp.zeros((x.shape[1],), x.dtype), jnp.ones((), x.dtype))
  return em_stats(backend, params, x, w, frame, chunk_size)


def suff_stats(params: MFAParams, x: ArrayLike, weights: ArrayLike | None = None, *,
               chunk_size: int | None = None) -> MFAStats:
  """E-step statistics of `x [n, d]` about `params.means` (one chunked pass;
  sharded rows are reduced where they lie). `merge` them over batches, then
  `params_from_stats` is the M-step: a streamed EM iteration."""
  _model.check_params(params)
  x = _checks.as_points(x, params)
  w = None if weights is None else _checks.as_weights(weights, x)
  rows = _sharded.row_sharding(x)
  backend = _em.Local() if rows is None else _sharded.Sharded(*rows)
  if rows is not None and w is not None:
    w = _sharded.like_rows(w, x)
  return _suff_stats(params, x, w, backend=backend, chunk_size=chunk_size)


_m_step = jax.jit(m_step_checked)


def params_from_stats(stats: MFAStats, params: MFAParams, reg_covar: ArrayLike = 1e-6) -> MFAParams:
  """M-step from the statistics `suff_stats(params, ...)` gathered about
  `params.means`."""
  _checks.positive(reg_covar, "reg_covar", allow_zero=True)
  new, ok = _m_step(stats, params, jnp.asarray(reg_covar, params.means.dtype))
  _em.check_failed(~ok)
  return new
