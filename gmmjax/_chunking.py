"""Reductions over row chunks with bounded memory and static shapes.

EM never materialises `[n, k, d]` (or even `[n, k]`) arrays for all rows: each
pass slices fixed-size row chunks with `lax.dynamic_slice` inside a
`fori_loop` (no padded copy of the data) and merges per-chunk results; the
remainder rows form one last, smaller chunk.
"""

from typing import Any, Callable

import jax
import jax.numpy as jnp

# Elements in the largest per-chunk intermediate, e.g. the `[chunk, k*d]`
# product of the full-covariance E-step. ~16 MiB in float32 stays in cache on
# CPU; accelerators prefer bigger chunks.
_CPU_CHUNK_ELEMENTS = 1 << 22
_ACCELERATOR_CHUNK_ELEMENTS = 1 << 27
# Narrow passes (diag, spherical, tied, small k*d) keep several `[rows, ~width]`
# arrays alive at once, so on CPU the rows are capped as well, to stay in cache.
_CPU_MAX_CHUNK_ROWS = 1 << 14


def default_chunk_size(n: int, width: int) -> int:
  """Rows per chunk so that `[rows, width]` intermediates stay bounded."""
  if jax.default_backend() == "cpu":
    rows = min(_CPU_MAX_CHUNK_ROWS, _CPU_CHUNK_ELEMENTS // max(width, 1))
  else:
    rows = _ACCELERATOR_CHUNK_ELEMENTS // max(width, 1)
  # A power of two, so that padded size classes are whole chunks.
  rows = 1 << (max(256, rows).bit_length() - 1)
  return int(rows)


def chunked_reduce(
    fn: Callable[[int | jax.Array, tuple[jax.Array, ...]], Any],
    merge: Callable[[Any, Any], Any],
    rows: tuple[jax.Array | None, ...],
    chunk_size: int,
) -> Any:
  """`merge`s `fn(start, chunk_rows)` over consecutive row chunks.

  Args:
    fn: maps `(first_row_index, tuple of [c, ...] arrays)` to a pytree.
    merge: associative combination of two such pytrees.
    rows: arrays sharing their leading dimension `n` (None entries pass through).
    chunk_size: static rows per chunk.

  Returns:
    The merged pytree over all `n` rows.
  """
  n = next(r for r in rows if r is not None).shape[0]
  chunk_size = min(chunk_size, n)
  n_full, rest = divmod(n, chunk_size)

  def take(start, size):
    return tuple(
        None if r is None else jax.lax.dynamic_slice_in_dim(r, start, size) for r in rows
    )

  acc = fn(0, take(0, chunk_size))
  if n_full > 1:
    acc = jax.lax.fori_loop(
        1,
        n_full,
        lambda i, a: merge(a, fn(i * chunk_size, take(i * chunk_size, chunk_size))),
        acc,
    )
  if rest:
    start = n_full * chunk_size
    acc = merge(acc, fn(start, tuple(None if r is None else r[start:] for r in rows)))
  return acc


def chunked_map(
    fn: Callable[[tuple[jax.Array, ...]], jax.Array],
    rows: tuple[jax.Array | None, ...],
    chunk_size: int,
) -> jax.Array:
  """Applies a row-wise `fn` chunk by chunk; returns the `[n, ...]` result."""
  n = next(r for r in rows if r is not None).shape[0]
  chunk_size = min(chunk_size, n)
  n_full = n // chunk_size
  if n_full <= 1 and n == chunk_size:
    return fn(rows)
  head = tuple(None if r is None else r[: n_full * chunk_size].reshape(n_full, chunk_size, *r.shape[1:]) for r in rows)
  out = jax.lax.map(fn, head)
  out = out.reshape(n_full * chunk_size, *out.shape[2:])
  if n_full * chunk_size < n:
    tail = fn(tuple(None if r is None else r[n_full * chunk_size:] for r in rows))
    out = jnp.concatenate([out, tail], axis=0)
  return out
