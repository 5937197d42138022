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
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from . import _stats


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
  weighted_mean = lambda v: _stats.safe_div(psum(stats.counts[:, None] * v), counts[:, None])
  # A rough global mean serves as a common origin; the deviations from it are
  # small numbers whose count-weighted mean is exact, so neither the mean
  # (n * mu rounds at the scale of mu, not of the spread) nor the between-shard
  # term loses digits in float32.
  origin = weighted_mean(stats.means)
  dev = stats.means - origin
  dev_mean = weighted_mean(dev)
  delta = dev - dev_mean
  m2 = psum(stats.m2 + _stats.outer_sum(stats.counts, delta, delta, stats.covariance_type))
  return _stats.SuffStats(
      counts=counts,
      means=origin + dev_mean,
      m2=m2,
      log_likelihood=psum(stats.log_likelihood),
      total_weight=psum(stats.total_weight),
      covariance_type=stats.covariance_type,
  )


@dataclasses.dataclass(frozen=True)
class Sharded:
  """Statistics backend for rows sharded over `mesh` axis `axis`: each device
  reduces its own rows in chunks, `psum_stats` combines them. Hashable, so a
  static argument of `jit`."""

  mesh: Mesh
  axis: str | tuple[str, ...]

  def reduce_stats(self, chunk_fn_of, args, x, w, *, frame, chunk_size, merge, psum, width=1):
    """As `Local.reduce_stats` on each device's rows; `psum(stats, axis_name)`
    combines the devices' statistics (replicated result)."""
    def local(xs, ws, args, frame):
      stats = _stats.reduce_rows(chunk_fn_of(*args), merge, xs, ws, shift=frame.shift, scale=frame.scale,
                                 chunk_size=chunk_size, width=width)
      return psum(stats, self.axis)

    rows = P(self.axis)
    if w is None:
      fn = lambda xs, *r: local(xs, None, *r)
      return jax.shard_map(fn, mesh=self.mesh, in_specs=(rows, P(), P()), out_specs=P())(x, args, frame)
    return jax.shard_map(local, mesh=self.mesh, in_specs=(rows, rows, P(), P()), out_specs=P())(x, w, args, frame)

  def reduce(self, resp_fn_of, args, x, w, centers, *, covariance_type, frame, chunk_size) -> _stats.SuffStats:
    """`SuffStats` of every row, responsibilities from `resp_fn_of(*args)`."""
    return self.reduce_stats(_stats.resp_reduction(resp_fn_of, covariance_type), (args, centers), x, w,
                             frame=frame, chunk_size=chunk_size, merge=_stats.merge, psum=psum_stats,
                             width=centers.size)

  def call(self, fn, *args):
    """`fn(*args)` with the compiler choosing the partitioning (explicit mesh
    axes, `jax.make_mesh`'s default, would reject global gathers); the result
    is replicated."""
    # Everything the partitioned function uses is an argument: a closed-over array
    # would keep its explicit-axes type inside `auto_axes` (under `jax.set_mesh`).
    explicit = tuple(
        name for name, kind in zip(self.mesh.axis_names, self.mesh.axis_types)
        if kind == jax.sharding.AxisType.Explicit
    )
    if not explicit:
      return fn(*args)
    return jax.sharding.auto_axes(fn, axes=explicit, out_sharding=NamedSharding(self.mesh, P()))(*args)


def check_rows(x, mesh: Mesh, axis) -> None:
  """Refuses a row count that the mesh axis does not split evenly."""
  shards = _axis_size(mesh, axis)
  if x.shape[0] % shards:
    raise ValueError(f"{x.shape[0]} rows cannot be split evenly over {shards} shards of mesh axis {axis!r}")


def like_rows(w, x):
  """`w [n]` placed with the row sharding of `x`."""
  mesh, axis = row_sharding(x)
  return jax.device_put(w, NamedSharding(mesh, P(axis)))


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
