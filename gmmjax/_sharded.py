"""EM over rows sharded across devices and hosts, with JAX's own machinery.

Data are a global `jax.Array` whose rows are split over one axis of a
`jax.sharding.Mesh` (`NamedSharding(mesh, P("data"))`); on several hosts it is
built with `jax.make_array_from_process_local_data` after
`jax.distributed.initialize`. Each device computes the chunked statistics of
its own rows inside `shard_map`, and the devices combine them with `psum`:

  1. `psum` of counts and count-weighted means (taken about a common origin)
     gives the global means;
  2. `psum` of each shard's centred second moment plus its between-shard term
     `n_s (mu_s - mu)(mu_s - mu)^T` gives the global centred moment.

This is Chan's merge done for all shards at once, about the *global* mean, so
no raw second moments (and no cancellation) appear. Everything else in the EM
loop is replicated and cheap.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from . import _em, _init, _stats
from ._types import FitResult, GMMParams


def row_sharding(x) -> tuple[Mesh, str | tuple[str, ...]] | None:
  """`(mesh, axis)` when `x` is a `jax.Array` with rows split over a mesh axis
  (under a transformation: when its type says so, as explicit mesh axes do)."""
  if isinstance(x, jax.core.Tracer):
    sharding = getattr(jax.typeof(x), "sharding", None)
  else:
    sharding = getattr(x, "sharding", None)
  if not isinstance(sharding, NamedSharding) or len(sharding.spec) == 0:
    return None
  axis = sharding.spec[0]
  if axis is None:
    return None
  return sharding.mesh, axis


def _axis_size(mesh: Mesh, axis) -> int:
  names = (axis,) if isinstance(axis, str) else tuple(axis)
  size = 1
  for name in names:
    size *= mesh.shape[name]
  return size


def psum_stats(stats: _stats.SuffStats, axis_name) -> _stats.SuffStats:
  """Exact, centred combination of per-shard statistics over a mesh axis.

  Call inside `shard_map`; the result is replicated over `axis_name`.
  """
  psum = functools.partial(jax.lax.psum, axis_name=axis_name)
  counts = psum(stats.counts)
  weighted_mean = lambda v: _stats._safe_div(psum(stats.counts[:, None] * v), counts[:, None])
  # A rough global mean serves as a common origin; the deviations from it are
  # small numbers whose count-weighted mean is exact, so neither the mean
  # (n * mu rounds at the scale of mu, not of the spread) nor the between-shard
  # term loses digits in float32.
  origin = weighted_mean(stats.means)
  dev = stats.means - origin
  dev_mean = weighted_mean(dev)
  delta = dev - dev_mean
  m2 = psum(stats.m2 + _stats._outer_sum(stats.counts, delta, stats.covariance_type))
  return _stats.SuffStats(
      counts=counts,
      means=origin + dev_mean,
      m2=m2,
      log_likelihood=psum(stats.log_likelihood),
      total_weight=psum(stats.total_weight),
      covariance_type=stats.covariance_type,
  )


def _shard_mapped(local_fn, mesh, axis, x, w, *replicated):
  """Runs `local_fn(x_shard, w_shard, *replicated)` per device; output replicated."""
  rows = P(axis)
  if w is None:
    fn = lambda xs, *r: local_fn(xs, None, *r)
    return jax.shard_map(fn, mesh=mesh, in_specs=(rows,) + (P(),) * len(replicated), out_specs=P())(
        x, *replicated
    )
  return jax.shard_map(local_fn, mesh=mesh, in_specs=(rows, rows) + (P(),) * len(replicated), out_specs=P())(
      x, w, *replicated
  )


@dataclasses.dataclass(frozen=True)
class ShardedStats:
  """`suff_stats` over rows sharded on `mesh` axis `axis`; hashable, so usable
  as a static argument of `jit`."""

  mesh: Mesh
  axis: str | tuple[str, ...]

  def __call__(self, params: GMMParams, x, w, chunk_size=None) -> _stats.SuffStats:
    def local(xs, ws, p):
      return psum_stats(_stats.suff_stats_unchecked(p, xs, ws, chunk_size), self.axis)

    return _shard_mapped(local, self.mesh, self.axis, x, w, params)

  def from_centers(self, x, w, centers, covariance_type, reg_covar, chunk_size) -> GMMParams:
    """M-step from hard assignment to the nearest of `centers [k, d]`."""
    k = centers.shape[0]
    shift = jnp.mean(centers, axis=0)
    centers_s = centers - shift[None, :]

    def local(xs, ws, centers_s, shift):
      def resp_fn(start, rows, _):
        labels = jnp.argmin(_init._sq_dist(rows, centers_s), axis=1)
        return jax.nn.one_hot(labels, k, dtype=rows.dtype), jnp.zeros(rows.shape[:1], rows.dtype)

      stats = _stats.accumulate(
          resp_fn, xs, ws, None,
          n_components=k, covariance_type=covariance_type, shift=shift, chunk_size=chunk_size,
      )
      return psum_stats(stats, self.axis)

    stats = _shard_mapped(local, self.mesh, self.axis, x, w, centers_s, shift)
    return _stats.params_from_stats(stats, reg_covar)


def initial_params(
    key, x, w, reg_covar, *, stats: ShardedStats, n_components, covariance_type, init, chunk_size
):
  """EM start on sharded rows (traced).

  k-means++ and random-from-data pick centres with row-parallel global ops
  (the partitionable PRNG gives the same draws as on one device); the M-step
  from those centres is sharded. "kmeans" and "random" run the single-device
  code under the compiler's automatic partitioning.
  """
  # Everything the partitioned function uses is an argument: a closed-over array
  # would keep its explicit-axes type inside `auto_axes` (under `jax.set_mesh`).
  if init == "kmeans++":
    centers = _auto(stats.mesh, lambda key, x, w: _init.kmeans_plusplus_unchecked(key, x, n_components, w), key, x, w)
  elif init == "random_from_data":
    def pick(key, x, w):
      p = None if w is None else w / jnp.sum(w)
      return x[jax.random.choice(key, x.shape[0], (n_components,), replace=False, p=p)]

    centers = _auto(stats.mesh, pick, key, x, w)
  else:
    return _auto(
        stats.mesh,
        lambda key, x, w, reg_covar: _init.initial_params(
            key, x, w, reg_covar,
            n_components=n_components, covariance_type=covariance_type, init=init, chunk_size=chunk_size,
        ),
        key, x, w, reg_covar,
    )
  return stats.from_centers(x, w, centers, covariance_type, reg_covar, chunk_size)


def _auto(mesh: Mesh, fn, *args):
  """`fn(*args)` with the compiler choosing the partitioning (explicit mesh
  axes, `jax.make_mesh`'s default, would reject global gathers); the result
  is replicated."""
  explicit = tuple(
      name for name, kind in zip(mesh.axis_names, mesh.axis_types) if kind == jax.sharding.AxisType.Explicit
  )
  if not explicit:
    return fn(*args)
  return jax.sharding.auto_axes(fn, axes=explicit, out_sharding=NamedSharding(mesh, P()))(*args)


@functools.partial(
    jax.jit,
    static_argnames=("stats", "n_components", "covariance_type", "max_iter", "init", "n_init", "chunk_size"),
)
def _fit(
    key, x, w, init_params, tol, reg_covar, *,
    stats, n_components, covariance_type, max_iter, init, n_init, chunk_size,
):
  def step(params, x, w, reg_covar):
    s = stats(params, x, w, chunk_size)
    return _stats.params_from_stats(s, reg_covar), s.log_likelihood / s.total_weight

  def single(key):
    if init_params is None:
      params = initial_params(
          key, x, w, reg_covar, stats=stats,
          n_components=n_components, covariance_type=covariance_type, init=init, chunk_size=chunk_size,
      )
    else:
      params = init_params
    return _em.em_loop(step, params, tol, max_iter, (x, w, reg_covar))

  if n_init == 1:
    return single(key)
  return _em.best_of(jax.vmap(single)(jax.random.split(key, n_init)))


def check_rows(x, mesh: Mesh, axis) -> None:
  shards = _axis_size(mesh, axis)
  if x.shape[0] % shards:
    raise ValueError(f"{x.shape[0]} rows cannot be split evenly over {shards} shards of mesh axis {axis!r}")


def fit_unchecked(key, x, w, init_params, tol, reg_covar, *, mesh, axis, **static) -> FitResult:
  """`fit` on rows sharded over `mesh` axis `axis` (inputs already validated)."""
  check_rows(x, mesh, axis)
  if w is not None:
    w = jax.device_put(w, NamedSharding(mesh, P(axis)))
  return _fit(key, x, w, init_params, tol, reg_covar, stats=ShardedStats(mesh, axis), **static)


def shard_rows(x, mesh: Mesh, axis: str | tuple[str, ...] = "data") -> jax.Array:
  """Places this process's rows `x [n_local, ...]` as its part of a global array
  whose rows are split over `mesh` axis `axis` (one process: all rows).

  Args:
    x: `[n_local, ...]` host or device array; every process passes the same
      `n_local`, divisible by its number of devices along `axis`.
    mesh: the device mesh (all processes' devices).
    axis: mesh axis name (or names) the rows are split over.

  Returns:
    Global `[n_local * n_processes, ...]` `jax.Array`, ready for `fit`.
  """
  return jax.make_array_from_process_local_data(NamedSharding(mesh, P(axis)), x)
