"""k-means++ seeding, Lloyd's k-means, and the EM initialisations built on them."""

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from . import _checks, _chunking, _linalg, _stats
from ._frame import Frame, data_frame
from ._options import EMOptions
from ._types import GMMParams


class KMeansResult(NamedTuple):
  """Outcome of `gmmjax.kmeans`.

  Attributes:
    centroids: `[k, d]` cluster centres.
    labels: `[n]` index of each point's nearest centre.
    inertia: `[]` weighted sum of squared distances to the nearest centre.
    n_iter: `[]` Lloyd iterations run.
    converged: `[]` whether the centre shift fell below the tolerance.
  """

  centroids: jax.Array
  labels: jax.Array
  inertia: jax.Array
  n_iter: jax.Array
  converged: jax.Array


def _sq_dist(xs: jax.Array, centers: jax.Array) -> jax.Array:
  """`[c, k]` squared distances; GEMM form, clamped against round-off."""
  d2 = (
      jnp.sum(xs * xs, axis=1, keepdims=True)
      - 2 * _linalg.mm(xs, centers.T)
      + jnp.sum(centers * centers, axis=1)[None, :]
  )
  return jnp.maximum(d2, 0)


def _sample_index(u: jax.Array, w: jax.Array, mass: jax.Array) -> jax.Array:
  """Indices with probability proportional to `w * mass`, by inverting the
  cumulative sum at the uniforms `u`: one pass per step, and no random-number
  kernel inside the loop (each is costly to compile on CPU)."""
  cum = jnp.cumsum(w * jnp.maximum(mass, 0))
  # All-zero mass (every point already a centre): fall back to the weights.
  cum = jnp.where(cum[-1] > 0, cum, jnp.cumsum(w))
  return jnp.minimum(jnp.searchsorted(cum, u * cum[-1], side="right"), w.shape[0] - 1)


def kmeans_plusplus_unchecked(key, x, n_clusters: int, weights=None, frame: Frame | None = None) -> jax.Array:
  """Greedy k-means++ centres `[k, d]`, in the coordinates of `frame` when
  one is given (else in those of `x`)."""
  n, d = x.shape
  own = frame is None
  frame = data_frame(x, weights) if own else frame
  xs = (x - frame.shift[None, :]) / frame.scale
  w = jnp.ones((n,), x.dtype) if weights is None else weights
  # Greedy k-means++ (as scikit-learn): best of a few candidates per step.
  n_trials = 2 + int(math.log(n_clusters))
  u = jax.random.uniform(key, (n_clusters, n_trials), x.dtype)
  first = _sample_index(u[0, 0], w, jnp.ones_like(w))
  centers = jnp.zeros((n_clusters, d), x.dtype).at[0].set(xs[first])
  closest = _sq_dist(xs, xs[first][None, :])[:, 0]

  def step(i, carry):
    centers, closest = carry
    cand = _sample_index(u[i], w, closest)
    cand_d2 = jnp.minimum(closest[None, :], _sq_dist(xs, xs[cand]).T)
    best = jnp.argmin(_linalg.mm(cand_d2, w))
    return centers.at[i].set(xs[cand[best]]), cand_d2[best]

  centers, _ = jax.lax.fori_loop(1, n_clusters, step, (centers, closest))
  return centers * frame.scale + frame.shift[None, :] if own else centers


def kmeans_plusplus(key, x: ArrayLike, n_clusters: int, *, weights: ArrayLike | None = None) -> jax.Array:
  """k-means++ seeding (greedy, with `2 + log k` candidates per step).

  Args:
    key: PRNG key.
    x: `[n, d]` points.
    n_clusters: number of centres `k` (static).
    weights: optional `[n]` sample weights.

  Returns:
    `[k, d]` initial centres, each one of the points.
  """
  x = _checks.data(x)
  n_clusters = _checks.n_components(n_clusters, x.shape[0])
  w = None if weights is None else _checks.as_weights(weights, x)
  return _kmeans_plusplus_jit(key, x, n_clusters, w)


_kmeans_plusplus_jit = jax.jit(kmeans_plusplus_unchecked, static_argnums=2)


class _LloydStats(NamedTuple):
  counts: jax.Array
  sums: jax.Array
  inertia: jax.Array


def _lloyd_pass(xs, w, centers, chunk_size):
  def fn(start, rows):
    xc, wc = rows
    d2 = _sq_dist(xc, centers)
    labels = jnp.argmin(d2, axis=1)
    one_hot = jax.nn.one_hot(labels, centers.shape[0], dtype=xc.dtype)
    best = jnp.min(d2, axis=1)
    if wc is not None:
      one_hot = one_hot * wc[:, None]
      best = best * wc
    return _LloydStats(jnp.sum(one_hot, axis=0), _linalg.mm(one_hot.T, xc), jnp.sum(best))

  return _chunking.chunked_reduce(fn, lambda a, b: jax.tree.map(jnp.add, a, b), (xs, w), chunk_size)


def _labels(xs, centers, chunk_size):
  return _chunking.chunked_map(lambda rows: jnp.argmin(_sq_dist(rows[0], centers), axis=1), (xs,), chunk_size)


def kmeans_unchecked(key, x, weights, tol, n_clusters: int, max_iter: int, chunk_size: int | None,
                     frame: Frame | None = None):
  """Lloyd's k-means, in the coordinates of `frame` when one is given (else
  in those of `x`, computed in a frame of its own)."""
  n, d = x.shape
  chunk_size = chunk_size or _chunking.default_chunk_size(n, max(n_clusters, d))
  own = frame is None
  frame = data_frame(x, weights) if own else frame
  xs = (x - frame.shift[None, :]) / frame.scale
  # scikit-learn's tolerance: relative to the mean per-feature variance.
  tol = tol * jnp.mean(jnp.var(xs, axis=0))
  centers = kmeans_plusplus_unchecked(key, xs, n_clusters, weights, Frame(jnp.zeros((d,), x.dtype), jnp.ones((), x.dtype)))

  def cond(state):
    _, n_iter, shift_sq, _ = state
    return (n_iter < max_iter) & (shift_sq > tol)

  def body(state):
    centers, n_iter, _, _ = state
    stats = _lloyd_pass(xs, weights, centers, chunk_size)
    # An empty cluster keeps its centre.
    new = jnp.where(stats.counts[:, None] > 0, stats.sums / jnp.maximum(stats.counts, 1e-30)[:, None], centers)
    return new, n_iter + 1, jnp.sum((new - centers) ** 2), stats.inertia

  inf = jnp.asarray(jnp.inf, x.dtype)
  centers, n_iter, shift_sq, _ = jax.lax.while_loop(cond, body, (centers, 0, inf, inf))
  # Derivatives: at a Lloyd fixed point the assignments are locally constant,
  # so d centroids = d (means of their clusters) and d inertia is taken at
  # fixed centres. The last pass gives both without changing the values.
  centers = jax.lax.stop_gradient(centers)
  stats = _lloyd_pass(xs, weights, centers, chunk_size)
  means = stats.sums / jnp.maximum(stats.counts, 1e-30)[:, None]
  centers = centers + jnp.where(stats.counts[:, None] > 0, means - jax.lax.stop_gradient(means), 0)
  unit = frame.scale if own else 1
  return KMeansResult(
      centroids=centers * frame.scale + frame.shift[None, :] if own else centers,
      labels=_labels(xs, centers, chunk_size),
      inertia=stats.inertia * unit**2,
      n_iter=jnp.asarray(n_iter),
      converged=shift_sq <= tol,
  )


_kmeans_jit = jax.jit(kmeans_unchecked, static_argnums=(4, 5, 6))


def kmeans(
    key,
    x: ArrayLike,
    n_clusters: int,
    *,
    max_iter: int = 300,
    tol: float = 1e-4,
    weights: ArrayLike | None = None,
    chunk_size: int | None = None,
) -> KMeansResult:
  """Lloyd's k-means from a k-means++ start, as one compiled loop.

  Args:
    key: PRNG key for the seeding.
    x: `[n, d]` points.
    n_clusters: `k` (static).
    max_iter: maximum Lloyd iterations (static).
    tol: stop when the squared centre shift is below `tol` times the mean
      feature variance (scikit-learn's convention); traced.
    weights: optional `[n]` sample weights.
    chunk_size: rows per chunk (static); default bounds memory.

  Returns:
    `KMeansResult`. `centroids` and `inertia` are differentiable in `x` and
    `weights`: at the fixed point the assignments are locally constant, so
    each centroid moves with its cluster's mean.
  """
  x = _checks.data(x)
  n_clusters = _checks.n_components(n_clusters, x.shape[0])
  _checks.positive(max_iter, "max_iter")
  _checks.positive(tol, "tol", allow_zero=True)
  w = None if weights is None else _checks.as_weights(weights, x)
  return _kmeans_jit(key, x, w, jnp.asarray(tol, x.dtype), n_clusters, int(max_iter), chunk_size)


def _nearest_resp(centers, active):
  """Hard assignment of each row to its nearest (active) centre."""

  def resp_fn(start, xs):
    d2 = _sq_dist(xs, centers)
    if active is not None:
      d2 = jnp.where(active[None, :], d2, jnp.inf)
    return jax.nn.one_hot(jnp.argmin(d2, axis=1), centers.shape[0], dtype=xs.dtype), jnp.zeros(xs.shape[:1], xs.dtype)

  return resp_fn


def _random_resp(key, k):
  def resp_fn(start, xs):
    u = jax.random.uniform(jax.random.fold_in(key, start), (xs.shape[0], k), xs.dtype)
    return u / jnp.sum(u, axis=1, keepdims=True), jnp.zeros(xs.shape[:1], xs.dtype)

  return resp_fn


def initial_params(key, x, w, reg_covar, frame: Frame, active, *, backend,
                   options: EMOptions) -> tuple[GMMParams, jax.Array]:
  """Starting parameters for EM by `options.init`, in the working
  coordinates of `frame` (traced; no checks), and `[]` whether their
  covariances were well defined. The centre-based inits start from the
  M-step of every row assigned to its nearest centre; `active [k]` (or None)
  switches components off."""
  from ._em import mask_components  # the driver builds on this module

  stats = initial_stats(key, x, w, frame, active, backend=backend, options=options)
  params, ok = _stats.m_step_checked(stats, reg_covar)
  return mask_components(params, active), ok


def initial_stats(key, x, w, frame: Frame, active, *, backend, options: EMOptions) -> _stats.SuffStats:
  """Statistics of the starting responsibilities of `options.init`, in the
  working coordinates of `frame` (traced): every row assigned to its nearest
  centre, or random soft responsibilities for "random"."""
  k, cov_type, chunk_size = options.n_components, options.covariance_type, options.chunk_size
  shift, scale = frame
  if options.init == "kmeans++":
    centers = backend.call(
        lambda key, x, w, shift, scale: kmeans_plusplus_unchecked(key, x, k, w, Frame(shift, scale)),
        key, x, w, shift, scale)
  elif options.init == "kmeans":
    tol = jnp.asarray(1e-4, x.dtype)
    centers = backend.call(
        lambda key, x, w, shift, scale: kmeans_unchecked(key, x, w, tol, k, 300, chunk_size, Frame(shift, scale)),
        key, x, w, shift, scale).centroids
  elif options.init == "random_from_data":
    def pick(key, x, w, shift, scale):
      # Always by weight (Gumbel top-k): the draw of a row then does not depend on how
      # many zero-weight padding rows follow, so padded and sharded fits pick alike.
      w = jnp.ones(x.shape[:1], x.dtype) if w is None else w
      rows = jax.random.choice(key, x.shape[0], (k,), replace=False, p=w / jnp.sum(w))
      return (x[rows] - shift[None, :]) / scale

    centers = backend.call(pick, key, x, w, shift, scale)
  else:
    centers = None
  if centers is None:
    resp_of, args, about = _random_resp, (key, k), jnp.zeros((k, x.shape[1]), x.dtype)
  else:
    resp_of, args, about = _nearest_resp, (centers, active), centers
  return backend.reduce(resp_of, args, x, w, about, covariance_type=cov_type, frame=frame, chunk_size=chunk_size)
