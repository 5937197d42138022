"""Sufficient statistics of a mixture as a value: compute, merge, turn into params.

Statistics hold per-component counts, means and *centred* second moments, and
merge with Chan et al.'s pairwise update. Within a chunk each component's
moments are taken about its own nearby centre (the current means in EM), so a
tight component far from the data mean keeps its variance in float32: raw
moments minus squared means is the cancellation that makes variances wrong or
negative (scikit-learn #30382). Every EM pass, exact or streamed, sharded or
online, is `params_from_stats(merge(...suff_stats(chunk)...))`.
"""

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from . import _checks, _chunking, _linalg
from ._types import GMMParams, _pytree_dataclass, check_covariance_type


@_pytree_dataclass
class SuffStats:
  """Weighted sufficient statistics of data under a mixture's responsibilities.

  Attributes:
    counts: `[k]` sum of weight * responsibility per component.
    means: `[k, d]` responsibility-weighted means.
    m2: centred second moments: full `[k, d, d]`, tied `[d, d]` (pooled within
      components), diag and spherical `[k, d]` (diagonals).
    log_likelihood: `[]` weighted sum of log p(x_i) under the parameters that
      produced the responsibilities (0 when they were given).
    total_weight: `[]` sum of sample weights.
    covariance_type: static.
  """

  counts: jax.Array
  means: jax.Array
  m2: jax.Array
  log_likelihood: jax.Array
  total_weight: jax.Array
  covariance_type: str = "full"


def outer_sum(coef: jax.Array, u: jax.Array, v: jax.Array, covariance_type: str) -> jax.Array:
  """sum_k coef_k u_k v_k^T in the layout of `m2` for the type."""
  if covariance_type == "full":
    return coef[:, None, None] * u[:, :, None] * v[:, None, :]
  if covariance_type == "tied":
    return jnp.einsum("k,kd,ke->de", coef, u, v)
  return coef[:, None] * u * v


def safe_div(a: jax.Array, b: jax.Array) -> jax.Array:
  return jnp.where(b > 0, a / jnp.where(b > 0, b, 1), 0)


def _scatter(xs: jax.Array, weighted: jax.Array, centers: jax.Array, b: jax.Array) -> jax.Array:
  """`[k, d, d]` sum_c x_c weighted_ck^T - centers_k b_k^T, the scatter about
  each centre (symmetric in exact arithmetic, though its first term is not).

  One `[d, c] x [c, k*d]` GEMM; on CPU, where d >= 32 and the GEMM is not
  wide (d <= 2k), only the upper block triangle of the result: column block
  `lo:hi` needs rows `:hi`, (n_blocks+1)/(2 n_blocks) of the flops, and the
  strictly lower blocks are the mirror of the upper ones.
  """
  c, d = xs.shape
  k = weighted.shape[1]
  cb = centers[:, :, None] * b[:, None, :]
  if d > 2 * k or d < 32 or jax.default_backend() != "cpu":
    return jnp.transpose(_linalg.mm(xs.T, weighted.reshape(c, k * d)).reshape(d, k, d), (1, 0, 2)) - cb
  n_blocks = min(8, d // 8)
  edges = np.linspace(0, d, n_blocks + 1).astype(int)
  xt = xs.T
  parts = []
  for lo, hi in zip(edges[:-1], edges[1:]):
    block = _linalg.mm(xt[:hi], weighted[:, :, lo:hi].reshape(c, k * (hi - lo))).reshape(hi, k, hi - lo)
    parts.append(jnp.pad(block, ((0, d - hi), (0, 0), (0, 0))))
  block_of = np.searchsorted(edges, np.arange(d), side="right")
  on_or_above = jnp.asarray(block_of[:, None] <= block_of[None, :], xs.dtype)
  strictly_above = jnp.asarray(block_of[:, None] < block_of[None, :], xs.dtype)
  upper = (jnp.transpose(jnp.concatenate(parts, axis=-1), (1, 0, 2)) - cb) * on_or_above[None]
  return upper + jnp.swapaxes(upper * strictly_above[None], -1, -2)


def chunk_stats(
    xs: jax.Array,
    resp: jax.Array,
    centers: jax.Array,
    covariance_type: str,
    log_likelihood: jax.Array,
    total_weight: jax.Array,
) -> SuffStats:
  """Statistics of one chunk, each component's moments about its own centre.

  With v_ik = x_i - c_k and b_k = sum_i r_ik v_ik, the scatter about c_k is
  sum_i r_ik x_i v_ik^T - c_k b_k^T: one `[d, c] x [c, k*d]` GEMM with the
  rows as the shared left operand (as fast as an uncentred scatter), and a
  rounding error of eps |x - 0| |x - c_k| rather than eps |x - 0|^2. The
  rows `xs` are in coordinates centred on the data, so |x| is the distance
  to the data mean. Diagonal types are elementwise and exact.

  Args:
    xs: `[c, d]` rows, in coordinates centred near the data.
    resp: `[c, k]` responsibilities times sample weights.
    centers: `[k, d]` a point near each component's mean (same coordinates).
    covariance_type: static.
    log_likelihood, total_weight: `[]` sums carried into the result.
  """
  counts = jnp.sum(resp, axis=0)
  weighted = resp[:, :, None] * (xs[:, None, :] - centers[None])  # [c, k, d]
  b = jnp.sum(weighted, axis=0)
  if covariance_type == "full":
    # All k scatters in one GEMM, the rows as the shared operand (on CPU, a batched
    # dot per component is slower).
    s2 = _scatter(xs, weighted, centers, b)
    s2 = 0.5 * (s2 + jnp.swapaxes(s2, -1, -2))  # symmetric in exact arithmetic
  elif covariance_type == "tied":
    s2 = _linalg.mm(xs.T, jnp.sum(weighted, axis=1)) - jnp.einsum("kd,ke->de", centers, b)
    s2 = 0.5 * (s2 + s2.T)
  else:
    s2 = jnp.sum(weighted * (xs[:, None, :] - centers[None]), axis=0)
  mean_offset = safe_div(b, counts[:, None])
  return SuffStats(
      counts=counts,
      means=centers + mean_offset,
      m2=s2 - outer_sum(counts, mean_offset, mean_offset, covariance_type),
      log_likelihood=log_likelihood,
      total_weight=total_weight,
      covariance_type=covariance_type,
  )


def merge(a: SuffStats, b: SuffStats) -> SuffStats:
  """Exact statistics of the union of two disjoint sets of rows (Chan et al.)."""
  if not isinstance(a, SuffStats) or not isinstance(b, SuffStats):
    raise ValueError(f"merge takes two SuffStats, got {type(a).__name__} and {type(b).__name__}")
  if a.covariance_type != b.covariance_type:
    raise ValueError(f"cannot merge {a.covariance_type!r} statistics with {b.covariance_type!r} ones")
  for field in ("counts", "means", "m2"):
    if jnp.shape(getattr(a, field)) != jnp.shape(getattr(b, field)):
      raise ValueError(f"cannot merge statistics with {field} of shapes {jnp.shape(getattr(a, field))} "
                       f"and {jnp.shape(getattr(b, field))}")
  counts = a.counts + b.counts
  delta = b.means - a.means
  frac_b = safe_div(b.counts, counts)
  coef = safe_div(a.counts * b.counts, counts)
  return SuffStats(
      counts=counts,
      means=a.means + frac_b[:, None] * delta,
      m2=a.m2 + b.m2 + outer_sum(coef, delta, delta, a.covariance_type),
      log_likelihood=a.log_likelihood + b.log_likelihood,
      total_weight=a.total_weight + b.total_weight,
      covariance_type=a.covariance_type,
  )


RespFn = Callable[[jax.Array, jax.Array], tuple[jax.Array, jax.Array]]


def weighted_resp(resp, ll, wc, n_rows: int):
  """Responsibilities and log-likelihoods of a chunk times its sample weights
  `wc [c]` (None: ones), and `(resp [c, k], sum of ll [], total weight [])`."""
  if wc is None:
    return resp, jnp.sum(ll), jnp.asarray(n_rows, resp.dtype)
  resp = jnp.where(wc[:, None] > 0, resp * wc[:, None], 0)
  ll = jnp.where(wc > 0, ll * wc, 0)  # padding rows may sit where a density underflows
  return resp, jnp.sum(ll), jnp.sum(wc)


def reduce_rows(chunk_fn, merge_fn, x, weights, *, shift=None, scale=None, chunk_size: int | None = None,
                width: int = 1):
  """One chunked pass over `x`: `merge_fn` over `chunk_fn(start, xs, ws)` of
  every chunk, `xs` the rows mapped to `(rows - shift) / scale` (the fit's
  working coordinates) and `ws` their weights (or None). The statistics may
  be any pytree with an associative `merge_fn`; the default chunk size
  bounds `[rows, width]` intermediates."""
  if chunk_size is None:
    chunk_size = _chunking.default_chunk_size(x.shape[0], width)

  def fn(start, rows):
    xc, wc = rows
    xs = xc if shift is None else xc - shift[None, :]
    xs = xs if scale is None else xs / scale
    return chunk_fn(start, xs, wc)

  return _chunking.chunked_reduce(fn, merge_fn, (x, weights), chunk_size)


def resp_chunk_fn(resp_fn: RespFn, centers: jax.Array, covariance_type: str):
  """The chunk function of `SuffStats`: `chunk_stats` of the rows under
  `resp_fn(start, xs) -> (resp [c, k], log_lik [c])`, about `centers`."""

  def fn(start, xs, wc):
    resp, ll, total = weighted_resp(*resp_fn(start, xs), wc, xs.shape[0])
    return chunk_stats(xs, resp, centers, covariance_type, ll, total)

  return fn


def resp_reduction(resp_fn_of, covariance_type: str):
  """A backend's `reduce_stats` chunk function of `SuffStats`, of the
  arguments `(args, centers)`: responsibilities from `resp_fn_of(*args)`."""
  return lambda args, centers: resp_chunk_fn(resp_fn_of(*args), centers, covariance_type)


def accumulate(
    resp_fn: RespFn,
    x: jax.Array,
    weights: jax.Array | None,
    centers: jax.Array,
    *,
    covariance_type: str,
    shift: jax.Array | None = None,
    scale: jax.Array | None = None,
    chunk_size: int | None = None,
) -> SuffStats:
  """One chunked pass over `x`, merging `chunk_stats` of every chunk.

  Each chunk is mapped to `(rows - shift) / scale` (the fit's working
  coordinates) before `resp_fn(start, xs) -> (resp [c, k], log_lik [c])`
  gives its responsibilities; `centers [k, d]` are in those coordinates and
  so is the result.
  """
  return reduce_rows(resp_chunk_fn(resp_fn, centers, covariance_type), merge, x, weights, shift=shift,
                     scale=scale, chunk_size=chunk_size, width=centers.size)


def shifted(stats: SuffStats, shift: jax.Array) -> SuffStats:
  """The same statistics with every row moved by `shift [d]`."""
  return SuffStats(stats.counts, stats.means + shift[None, :], stats.m2, stats.log_likelihood,
                   stats.total_weight, stats.covariance_type)


def _stats_from_resp(x, resp, w, covariance_type, chunk_size):
  # A first, cheap pass finds each component's mean to centre the second one on.
  shift = jax.lax.stop_gradient(jnp.mean(x, axis=0))
  k = resp.shape[1]
  zeros = jnp.zeros((k, x.shape[1]), x.dtype)
  given = lambda start, xs: (jax.lax.dynamic_slice_in_dim(resp, start, xs.shape[0]), jnp.zeros(xs.shape[:1], xs.dtype))
  rough = accumulate(
      given, x, w, zeros, covariance_type="spherical", shift=shift, chunk_size=chunk_size,
  )
  stats = accumulate(
      given, x, w, jax.lax.stop_gradient(rough.means),
      covariance_type=covariance_type, shift=shift, chunk_size=chunk_size,
  )
  return shifted(stats, shift)


_stats_from_resp_jit = jax.jit(_stats_from_resp, static_argnums=(3, 4))


def stats_from_responsibilities(
    x: ArrayLike,
    resp: ArrayLike,
    *,
    covariance_type: str = "full",
    weights: ArrayLike | None = None,
    chunk_size: int | None = None,
) -> SuffStats:
  """Statistics of `x` under given (hard or soft) responsibilities.

  Args:
    x: `[n, d]` points.
    resp: `[n, k]` responsibilities: rows of non-negative numbers (one-hot
      rows for hard assignments). Differentiable in `x` and `resp`.
    covariance_type: "full", "diag", "spherical" or "tied" (static).
    weights: optional `[n]` non-negative sample weights.
    chunk_size: rows per chunk (static).

  Returns:
    `SuffStats` with `log_likelihood` 0; `params_from_stats` is the M-step.
  """
  x = _checks.data(x)
  check_covariance_type(covariance_type)
  resp = jnp.asarray(resp, x.dtype)
  if resp.ndim != 2 or resp.shape[0] != x.shape[0]:
    raise ValueError(f"resp must have shape [{x.shape[0]}, k], got {resp.shape}")
  if _checks.is_concrete(resp) and not bool(jnp.all(resp >= 0)):
    raise ValueError("resp must be non-negative (and finite)")
  w = None if weights is None else _checks.as_weights(weights, x)
  return _stats_from_resp_jit(x, resp, w, covariance_type, chunk_size)


def covariances_from_stats(stats: SuffStats, reg_covar: ArrayLike) -> jax.Array:
  """Regularised covariances of the M-step, scikit-learn's `covariances_` shape."""
  cov_type = stats.covariance_type
  dtype = stats.means.dtype
  reg = jnp.asarray(reg_covar, dtype)
  nk = stats.counts + 10 * jnp.finfo(dtype).eps
  d = stats.means.shape[-1]
  if cov_type == "full":
    cov = stats.m2 / nk[:, None, None]
    return 0.5 * (cov + jnp.swapaxes(cov, -1, -2)) + reg * jnp.eye(d, dtype=dtype)[None]
  if cov_type == "tied":
    cov = stats.m2 / jnp.sum(nk)
    return 0.5 * (cov + cov.T) + reg * jnp.eye(d, dtype=dtype)
  if cov_type == "diag":
    return jnp.maximum(stats.m2 / nk[:, None], 0) + reg
  return jnp.mean(jnp.maximum(stats.m2 / nk[:, None], 0), axis=-1) + reg


def m_step_checked(stats: SuffStats, reg_covar: ArrayLike) -> tuple[GMMParams, jax.Array]:
  """M-step, and `[]` whether every covariance is well defined: positive
  definite as computed, or made so by a positive `reg_covar` (round-off that
  left it indefinite is absorbed by the factorisation's diagonal load)."""
  cov_type = stats.covariance_type
  dtype = stats.means.dtype
  nk = stats.counts + 10 * jnp.finfo(dtype).eps
  cov = covariances_from_stats(stats, reg_covar)
  prec_chol, ok = _linalg.precision_cholesky_checked(cov, cov_type)
  # With reg_covar > 0 a covariance is positive definite in exact arithmetic: a
  # failed factorisation is round-off, which the factorisation's load absorbs.
  ok = ok | (jnp.asarray(reg_covar, dtype) > 0)
  params = GMMParams(
      weights=nk / jnp.sum(nk),
      means=stats.means * (stats.counts / nk)[:, None],
      precisions_cholesky=prec_chol,
      covariance_type=cov_type,
  )
  return params, ok


def params_from_stats(stats: SuffStats, reg_covar: ArrayLike = 1e-6) -> GMMParams:
  """M-step: maximum-likelihood parameters from statistics.

  Matches scikit-learn's M-step, including its `10 * eps` added to the counts
  so an empty component gets a finite mean and a `reg_covar` covariance.

  Args:
    stats: merged `SuffStats`.
    reg_covar: `[]` non-negative value added to covariance diagonals.

  Returns:
    `GMMParams` of the same covariance type.
  """
  check_covariance_type(stats.covariance_type)
  return m_step_checked(stats, reg_covar)[0]
