"""Exact EM over data that never sit in memory at once: one pass per iteration.

Each EM iteration reads every batch once, computes its sufficient statistics on
the device and merges them (Chan's centred update), then takes the M-step from
the merged statistics. The result is the EM iterate of the concatenated data,
whatever the batch sizes. The host loop runs once per pass: batches come from
the host (a memmap, a TFDS iterator), so the pass cannot be one compiled loop.
`host_loop` is that loop for any model that provides its `Hooks` (the GMM
here, `gmmjax.mfa.fit_stream` the mixture of factor analysers).
"""

from __future__ import annotations

import functools
from typing import Callable, Iterable, Iterator, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike
from . import _checks, _em, _padding, _sharded, _stats
from ._frame import from_frame
from ._options import EMOptions, check_fit_args
from ._types import FitResult, GMMParams

Batch = ArrayLike | tuple[ArrayLike, ArrayLike]
Batches = Iterable[Batch] | Callable[[], Iterable[Batch]]


def _passes(batches: Batches) -> Callable[[], Iterator[Batch]]:
  """A function that starts a fresh pass over the batches."""
  if callable(batches):
    return lambda: iter(batches())
  if iter(batches) is batches:
    raise ValueError(
        "batches is a one-shot iterator, but EM reads the data once per iteration: "
        "pass a list, a re-iterable dataset, or a callable returning a fresh iterator"
    )
  return lambda: iter(batches)


def _split(batch: Batch) -> tuple[np.ndarray | jax.Array, np.ndarray | jax.Array | None]:
  if isinstance(batch, tuple):
    if len(batch) != 2:
      raise ValueError(f"a batch is an array x or a pair (x, weights), got a tuple of {len(batch)}")
    return batch
  return batch, None


class _Feeder:
  """Validates batches and pads them to a few static shapes.

  A smaller batch (typically the last) is padded to the first batch's row count
  with zero-weight rows, which leave every statistic unchanged, so a pass
  compiles once. With a mesh, rows are padded to a multiple of the local
  shards and placed as this process's part of a global array.
  """

  def __init__(self, dtype, n_features: int, sharded: _sharded.Sharded | None, rows: int):
    self.dtype = dtype
    self.n_features = n_features
    self.sharded = sharded
    self.multiple = 1
    if sharded is not None:
      local = sharded.mesh.local_mesh
      self.multiple = _sharded._axis_size(local, sharded.axis)
    self.rows = -(-rows // self.multiple) * self.multiple

  def __call__(self, batch: Batch) -> tuple[jax.Array, jax.Array | None]:
    x, w = _split(batch)
    x = _checks.data(np.asarray(x) if not isinstance(x, jax.Array) else x, "batch")
    if x.shape[1] != self.n_features:
      raise ValueError(f"batch has {x.shape[1]} features, the first batch had {self.n_features}")
    x = x.astype(self.dtype)
    w = None if w is None else _checks.as_weights(w, x)
    n = x.shape[0]
    target = max(self.rows, -(-n // self.multiple) * self.multiple)
    if n < target:
      x, w = _padding.pad_rows(x, w, target)
    if self.sharded is not None:
      x = _sharded.shard_rows(x, self.sharded.mesh, self.sharded.axis)
      w = None if w is None else _sharded.shard_rows(w, self.sharded.mesh, self.sharded.axis)
    return x, w


@functools.partial(jax.jit, static_argnames=("backend", "chunk_size"))
def _batch_stats(params, x, w, frame, *, backend, chunk_size):
  return _em.em_stats(backend, params, x, w, frame, chunk_size)


_merge = jax.jit(_stats.merge)
_m_step = jax.jit(_stats.m_step_checked)
_advance = jax.jit(_em.advance)


class Hooks(NamedTuple):
  """What the host loop needs of a model (each a jitted function).

  Attributes:
    start: `(key, x, w, init_params, reg_covar, *, backend) -> (frame, reg, params, ok)` from the
      first batch: the working frame, `reg_covar` in it, the starting parameters in it.
    batch_stats: `(params, x, w, frame, *, backend, chunk_size) -> stats` of one batch.
    merge: `(stats, stats) -> stats`.
    m_step: `(stats, params, reg) -> (new_params, ok)`.
    params_from_frame: `(params, frame) -> params` in the data's coordinates.
    bound: `(stats, new_params) -> []` the objective the loop tracks; None: the
      mean log-likelihood, `stats.log_likelihood / stats.total_weight`.
  """

  start: Callable | None
  batch_stats: Callable
  merge: Callable
  m_step: Callable | None = None
  params_from_frame: Callable = from_frame
  bound: Callable | None = None


def _one_pass(hooks: Hooks, params, frame, next_pass, feed, backend, chunk_size):
  acc = None
  for batch in next_pass():
    x, w = feed(batch)
    s = hooks.batch_stats(params, x, w, frame, backend=backend, chunk_size=chunk_size)
    acc = s if acc is None else hooks.merge(acc, s)
  if acc is None:
    raise ValueError("batches yielded no data")
  return acc


@functools.partial(jax.jit, static_argnames=("backend", "options"))
def _start(key, x, w, init_params, reg_covar, *, backend, options):
  """The working frame of the first batch and the initial parameters in it."""
  frame, reg = _em.working_frame(backend, x, w, reg_covar)
  params, ok = _em.starting_params(key, x, w, reg, frame, init_params, None, backend=backend, options=options)
  return frame, reg, params, ok


def fit_stream(
    key,
    batches: Batches,
    n_components: int,
    *,
    covariance_type: str = "full",
    max_iter: int = 100,
    tol: float = 1e-3,
    reg_covar: float = 1e-6,
    init: str = "kmeans++",
    init_params: GMMParams | None = None,
    chunk_size: int | None = None,
    mesh: jax.sharding.Mesh | None = None,
    axis: str | tuple[str, ...] = "data",
    progress: bool = True,
) -> FitResult:
  """Exact EM over a stream of batches, one pass over the stream per iteration.

  Equals `fit` on the concatenated batches from the same start, with memory
  bounded by one batch (plus the chunked intermediates of its statistics).

  Args:
    key: PRNG key (initialisation).
    batches: the data as `[b, d]` arrays or `(x [b, d], weights [b])` pairs:
      either a re-iterable (list, `tf.data`/TFDS dataset, an object whose
      `__iter__` starts over) or a callable returning a fresh iterator, e.g.
      `lambda: (mm[i:i + b] for i in range(0, len(mm), b))` over a
      `numpy.memmap`. Batches may differ in size; smaller ones are padded with
      zero-weight rows to the first one's size, so keep that the largest.
    n_components: `k` (static).
    covariance_type: "full", "diag", "spherical" or "tied".
    max_iter: maximum EM iterations, i.e. passes over the data.
    tol: stop when the mean log-likelihood changes by less.
    reg_covar: added to covariance diagonals.
    init: as in `fit`, applied to the first batch only (make it a
      representative sample, e.g. by shuffling the stream).
    init_params: explicit starting `GMMParams` (then `init` is unused).
    chunk_size: rows per chunk inside a batch (static).
    mesh: optional `jax.sharding.Mesh`; each process's batches are split over
      the devices of mesh axis `axis` (and over hosts under
      `jax.distributed`: every process then yields the same number of
      equally sized batches, each its own rows), and the statistics are
      reduced with `psum`.
    axis: the mesh axis (or axes) the rows are split over.
    progress: show a tqdm bar over the passes.

  Returns:
    `FitResult`, with the same meaning as `fit`'s.

  Raises:
    ValueError: on a one-shot iterator, an empty stream, inconsistent or
      non-finite batches, or invalid settings.
  """
  options = EMOptions(n_components, covariance_type, max_iter, init, 1, chunk_size)
  stream = open_stream(batches, mesh, axis)
  x0 = stream.first_x
  init_params = check_fit_args(options, x0.shape[0] if init_params is None else None, x0.shape[1], tol,
                               reg_covar, init_params, x0.dtype)
  hooks = Hooks(functools.partial(_start, options=options), _batch_stats, _merge,
                lambda stats, params, reg: _m_step(stats, reg))
  return host_loop(hooks, stream, key, init_params, reg_covar, tol, max_iter, chunk_size, progress)


class Stream(NamedTuple):
  """A re-iterable stream of batches, its first batch (validated) and the
  backend its batches are reduced on."""

  next_pass: Callable[[], Iterator[Batch]]
  first: Batch
  first_x: np.ndarray | jax.Array
  backend: object
  feed: _Feeder


def open_stream(batches: Batches, mesh, axis) -> Stream:
  next_pass = _passes(batches)
  first = next(next_pass(), None)
  if first is None:
    raise ValueError("batches yielded no data")
  x0, _ = _split(first)
  x0 = _checks.data(x0 if isinstance(x0, jax.Array) else np.asarray(x0), "batch")
  backend = _em.Local() if mesh is None else _sharded.Sharded(mesh, axis)
  feed = _Feeder(x0.dtype, x0.shape[1], None if mesh is None else backend, x0.shape[0])
  return Stream(next_pass, first, x0, backend, feed)


def host_loop(hooks: Hooks, stream: Stream, key, init_params, reg_covar, tol, max_iter: int, chunk_size,
              progress: bool) -> FitResult:
  """EM with one pass over the stream per iteration (validated arguments)."""
  dtype = stream.first_x.dtype
  x, w = stream.feed(stream.first)
  frame, reg, params, ok = hooks.start(key, x, w, init_params, jnp.asarray(reg_covar, dtype),
                                       backend=stream.backend)
  state = passes(hooks, stream, frame, reg, params, ok, tol, max_iter, chunk_size, progress)
  return _em.result_from(state, frame, hooks.params_from_frame)


def passes(hooks: Hooks, stream: Stream, frame, reg, params, ok, tol, max_iter: int, chunk_size,
           progress: bool) -> _em.EMState:
  """The iterations from `params` (in `frame`), one pass over the stream each;
  raises the `reg_covar` error if an M-step failed."""
  # The bookkeeping of each pass is the in-memory loop's own `advance`.
  state = _em.init_state(params, max_iter, ok=ok)
  tol = jnp.asarray(tol, stream.first_x.dtype)
  progress_bar = _progress(max_iter, progress)
  while int(state.n_iter) < max_iter and not bool(state.converged) and not bool(state.failed):
    stats = _one_pass(hooks, state.params, frame, stream.next_pass, stream.feed, stream.backend, chunk_size)
    new, ok = hooks.m_step(stats, state.params, reg)
    bound = stats.log_likelihood / stats.total_weight if hooks.bound is None else hooks.bound(stats, new)
    state = _advance(state, new, bound, ok, tol)
    progress_bar(float(state.log_likelihood))
  progress_bar(None)
  _em.check_failed(state.failed)
  return state


def _progress(total: int, enabled: bool):
  """A tqdm bar over the passes when tqdm is installed and `enabled`."""
  try:
    from tqdm.auto import tqdm
  except ImportError:
    enabled = False
  if not enabled:
    return lambda ll: None
  bar = tqdm(total=total, desc="fit_stream", unit="pass")

  def update(ll):
    if ll is None:
      bar.close()
    else:
      bar.update(1)
      bar.set_postfix(log_likelihood=f"{ll:.6g}")

  return update
