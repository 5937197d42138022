"""Sufficient statistics of a mixture as a value: compute, merge, turn into params.

Statistics hold per-component counts, means and *centred* second moments, and
merge with Chan et al.'s pairwise update, so float32 sums over millions of rows
stay accurate (raw second moments minus squared means is the cancellation that
makes variances negative, scikit-learn #30382). Within a chunk the moments are
taken about a shift near the data mean, which bounds that cancellation to the
chunk's own spread. Every EM pass, exact or streamed, sharded or online, is
`params_from_stats(merge(...suff_stats(chunk)...))`.
"""

import functools
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from . import _checks, _chunking, _linalg
from ._logprob import component_log_prob_fn, model_mean
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


def _outer_sum(coef: jax.Array, u: jax.Array, covariance_type: str) -> jax.Array:
  """sum_k coef_k u_k u_k^T in the layout of `m2` for the type."""
  if covariance_type == "full":
    return coef[:, None, None] * u[:, :, None] * u[:, None, :]
  if covariance_type == "tied":
    return jnp.einsum("k,kd,ke->de", coef, u, u)
  return coef[:, None] * u * u


@functools.cache
def _pair_indices(d: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Index pairs (i, j) covering each unordered pair once, and `[d, d]` unpacking.

  Pairs are taken cyclically, (i, i + s mod d) for s < d/2 plus the antipodal
  half, so both index vectors run over contiguous blocks of columns.
  """
  half = d // 2
  shifts = np.arange((d + 1) // 2)
  rows = np.tile(np.arange(d), len(shifts))
  cols = (rows + np.repeat(shifts, d)) % d
  if d % 2 == 0 and d > 0:
    rows = np.concatenate([rows, np.arange(half)])
    cols = np.concatenate([cols, np.arange(half) + half])
  unpack = np.empty((d, d), np.int32)
  unpack[rows, cols] = np.arange(len(rows))
  unpack[cols, rows] = np.arange(len(rows))
  # int32: int64 indices clash with int32 index constants when x64 is switched
  # on for one call (the scikit-learn estimator's scoped x64).
  return rows.astype(np.int32), cols.astype(np.int32), unpack


def _safe_div(a: jax.Array, b: jax.Array) -> jax.Array:
  return jnp.where(b > 0, a / jnp.where(b > 0, b, 1), 0)


def _pair_scatter(xs: jax.Array, resp: jax.Array) -> jax.Array:
  """Scatter matrices from one `[p, c] x [c, k]` GEMM over the p = d(d+1)/2
  distinct products x_i x_j: half the flops of the full GEMM, plus a gather."""
  rows, cols, unpack = _pair_indices(xs.shape[1])
  xt = xs.T
  packed = _linalg.mm(xt[rows] * xt[cols], resp)
  # The barrier keeps XLA from folding the transpose into the GEMM, which
  # turns it into a transposed-operand product several times slower on CPU.
  return jax.lax.optimization_barrier(packed).T[:, unpack]


def _block_scatter(xs: jax.Array, resp: jax.Array, n_blocks: int) -> jax.Array:
  """Scatter matrices from their upper block triangle: column block `lo:hi` of
  every component needs only rows `:hi`, one `[hi, c] x [c, k*(hi-lo)]` GEMM;
  the blocks below the diagonal are transposes. (n_blocks+1)/(2 n_blocks) of
  the full GEMM's flops, and no gather."""
  c, d = xs.shape
  k = resp.shape[1]
  edges = np.linspace(0, d, n_blocks + 1).astype(int)
  xt = xs.T
  parts = []
  for lo, hi in zip(edges[:-1], edges[1:]):
    weighted = (resp[:, :, None] * xs[:, None, lo:hi]).reshape(c, k * (hi - lo))
    block = _linalg.mm(xt[:hi], weighted).reshape(hi, k, hi - lo)
    parts.append(jnp.pad(block, ((0, d - hi), (0, 0), (0, 0))))
  upper = jnp.transpose(jnp.concatenate(parts, axis=-1), (1, 0, 2))  # zero below the diagonal blocks
  block_of = np.searchsorted(edges, np.arange(d), side="right")
  strictly_upper = jnp.asarray(block_of[:, None] < block_of[None, :], xs.dtype)
  return upper + jnp.swapaxes(upper * strictly_upper[None], -1, -2)


def _scatter(xs: jax.Array, resp: jax.Array) -> jax.Array:
  """`[k, d, d]` sum_c resp_ck x_c x_c^T, by the fastest of three measured forms.

  The full form is one `[d, c] x [c, k*d]` GEMM. The symmetric ones save flops
  but pay elsewhere: the pair gather costs more per element than a broadcast
  (worth it where d <= 2k), and blocks need GEMMs wide enough, k*d/8 columns.
  At (200k, 64, 32) on a 2-core AMD EPYC CPU, in four interleaved runs, an EM
  iteration took 0.35-0.47 s with 8 blocks, 0.44-0.51 s with pairs and
  0.37-0.56 s in full (the last two swapped places from run to run); pairs stay
  faster for d < 32 and are what accelerators were measured with.
  """
  c, d = xs.shape
  k = resp.shape[1]
  if d > 2 * k:
    weighted = (resp[:, :, None] * xs[:, None, :]).reshape(c, k * d)
    return jnp.transpose(_linalg.mm(xs.T, weighted).reshape(d, k, d), (1, 0, 2))
  if d >= 32 and jax.default_backend() == "cpu":
    return _block_scatter(xs, resp, n_blocks=min(8, d // 8))
  return _pair_scatter(xs, resp)


def chunk_stats(
    xs: jax.Array,
    resp: jax.Array,
    shift: jax.Array,
    covariance_type: str,
    log_likelihood: jax.Array,
    total_weight: jax.Array,
) -> SuffStats:
  """Statistics of one chunk.

  Args:
    xs: `[c, d]` rows minus `shift`.
    resp: `[c, k]` responsibilities times sample weights.
    shift: `[d]` the shift subtracted from the rows.
    covariance_type: static.
    log_likelihood, total_weight: `[]` sums carried into the result.
  """
  counts = jnp.sum(resp, axis=0)
  mean_s = _safe_div(_linalg.mm(resp.T, xs), counts[:, None])
  if covariance_type == "full":
    s2 = _scatter(xs, resp)
  elif covariance_type == "tied":
    s2 = _linalg.mm(xs.T, jnp.sum(resp, axis=1, keepdims=True) * xs)
  else:
    s2 = _linalg.mm(resp.T, xs * xs)
  m2 = s2 - _outer_sum(counts, mean_s, covariance_type)
  return SuffStats(
      counts=counts,
      means=mean_s + shift[None, :],
      m2=m2,
      log_likelihood=log_likelihood,
      total_weight=total_weight,
      covariance_type=covariance_type,
  )


def merge(a: SuffStats, b: SuffStats) -> SuffStats:
  """Exact statistics of the union of two disjoint sets of rows (Chan et al.)."""
  counts = a.counts + b.counts
  delta = b.means - a.means
  frac_b = _safe_div(b.counts, counts)
  coef = _safe_div(a.counts * b.counts, counts)
  return SuffStats(
      counts=counts,
      means=a.means + frac_b[:, None] * delta,
      m2=a.m2 + b.m2 + _outer_sum(coef, delta, a.covariance_type),
      log_likelihood=a.log_likelihood + b.log_likelihood,
      total_weight=a.total_weight + b.total_weight,
      covariance_type=a.covariance_type,
  )


RespFn = Callable[[jax.Array, jax.Array, jax.Array | None], tuple[jax.Array, jax.Array]]


def accumulate(
    resp_fn: RespFn,
    x: jax.Array,
    weights: jax.Array | None,
    extra: jax.Array | None,
    *,
    n_components: int,
    covariance_type: str,
    shift: jax.Array,
    chunk_size: int | None,
) -> SuffStats:
  """One chunked pass over `x`, merging `chunk_stats` of every chunk.

  `resp_fn(start, xs, extra_chunk) -> (resp [c, k], log_lik [c])` gives the
  responsibilities of the shifted chunk `xs` whose first row is `start`.
  """
  n, d = x.shape
  width = n_components * d if covariance_type == "full" else max(n_components, d)
  if chunk_size is None:
    chunk_size = _chunking.default_chunk_size(n, width)

  def fn(start, rows):
    xc, wc, ec = rows
    xs = xc - shift[None, :]
    resp, ll = resp_fn(start, xs, ec)
    if wc is None:
      total = jnp.asarray(xc.shape[0], x.dtype)
    else:
      resp = resp * wc[:, None]
      ll = ll * wc
      total = jnp.sum(wc)
    return chunk_stats(xs, resp, shift, covariance_type, jnp.sum(ll), total)

  return _chunking.chunked_reduce(fn, merge, (x, weights, extra), chunk_size)


def suff_stats_unchecked(
    params: GMMParams,
    x: jax.Array,
    weights: jax.Array | None = None,
    chunk_size: int | None = None,
) -> SuffStats:
  shift = jax.lax.stop_gradient(model_mean(params))
  log_prob_fn = component_log_prob_fn(params, shift)

  def resp_fn(start, xs, _):
    lp = log_prob_fn(xs)
    ll = jax.nn.logsumexp(lp, axis=-1)
    return jnp.exp(lp - ll[:, None]), ll

  return accumulate(
      resp_fn,
      x,
      weights,
      None,
      n_components=params.means.shape[0],
      covariance_type=params.covariance_type,
      shift=shift,
      chunk_size=chunk_size,
  )


def suff_stats(
    params: GMMParams,
    x: ArrayLike,
    weights: ArrayLike | None = None,
    *,
    chunk_size: int | None = None,
) -> SuffStats:
  """E-step statistics of `x` under `params`, in one chunked pass.

  Args:
    params: mixture parameters.
    x: `[n, d]` points.
    weights: optional `[n]` non-negative sample weights.
    chunk_size: rows per chunk (static); default bounds memory per chunk.

  Returns:
    `SuffStats`; `merge` them across batches, devices or hosts, then call
    `params_from_stats` for the M-step.
  """
  _checks.params(params)
  x = _checks.as_points(x, params)
  w = None if weights is None else _checks.as_weights(weights, x)
  return suff_stats_unchecked(params, x, w, chunk_size)


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
  cov_type = stats.covariance_type
  check_covariance_type(cov_type)
  dtype = stats.means.dtype
  reg = jnp.asarray(reg_covar, dtype)
  nk = stats.counts + 10 * jnp.finfo(dtype).eps
  weights = nk / jnp.sum(nk)
  means = stats.means * (stats.counts / nk)[:, None]
  d = means.shape[-1]
  if cov_type == "full":
    cov = stats.m2 / nk[:, None, None]
    cov = 0.5 * (cov + jnp.swapaxes(cov, -1, -2)) + reg * jnp.eye(d, dtype=dtype)[None]
  elif cov_type == "tied":
    cov = stats.m2 / jnp.sum(nk)
    cov = 0.5 * (cov + cov.T) + reg * jnp.eye(d, dtype=dtype)
  elif cov_type == "diag":
    cov = jnp.maximum(stats.m2 / nk[:, None], 0) + reg
  else:
    cov = jnp.mean(jnp.maximum(stats.m2 / nk[:, None], 0), axis=-1) + reg
  return GMMParams(
      weights=weights,
      means=means,
      precisions_cholesky=_linalg.precision_cholesky(cov, cov_type),
      covariance_type=cov_type,
  )
