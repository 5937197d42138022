"""Size classes: rows padded with zero-weight rows so that one compiled program
serves many row counts."""

import jax
import jax.numpy as jnp
import numpy as np


# The smallest size class: below it, work is too little to matter and compiles dominate.
MIN_ROWS = 1 << 12


def size_class(n: int, chunk_size: int) -> int:
  """Rows a pass over `n` rows is compiled for: up to `chunk_size`, the next
  power of four from 4096 (a sweep over 500 to 50,000 rows compiles five
  programs; where this pads most, the work is small), whole chunks above it
  (at most one chunk more, and no second chunk shape to compile)."""
  if n <= chunk_size:
    rows = MIN_ROWS
    while rows < n:
      rows *= 4
    return min(rows, chunk_size)
  return -(-n // chunk_size) * chunk_size


def chunked_size_class(n: int, chunk_size: int) -> tuple[int, int]:
  """Rows a chunked pass over `n` rows is compiled for, and its rows per chunk:
  `size_class` up to `chunk_size`; above it, the fewest chunks of at most
  `chunk_size` rows, each a whole number of eighths of it (at most four
  classes per chunk count), so at most a quarter more rows (two chunks), where
  whole chunks could nearly double them. A padding row costs every pass as
  much as a data row; more classes mean more compiles, so where compiling
  dominates `size_class` is the better trade."""
  if n <= chunk_size:
    return size_class(n, chunk_size), chunk_size
  n_chunks = -(-n // chunk_size)
  granule = max(1, chunk_size // 8)
  per_chunk = -(-n // n_chunks)
  chunk = -(-per_chunk // granule) * granule
  return n_chunks * chunk, chunk


def pad_rows(x, w, rows: int):
  """`x [n, d]`, `w [n]` (or None: ones) padded to `rows` rows; padding rows
  repeat the first row (finite wherever the data are) and weigh zero. The
  weights are always an array, so padded or not, one program serves. Concrete
  arrays are padded on the host: an eager device op would compile anew for
  every row count."""
  n = x.shape[0]
  concrete = not any(isinstance(a, jax.core.Tracer) for a in (x, w)) and _on_host(x)
  lib = np if concrete else jnp
  x = np.asarray(x) if concrete else x
  w = lib.ones((n,), x.dtype) if w is None else (np.asarray(w) if concrete else w)
  x = lib.concatenate([x, lib.broadcast_to(x[:1], (rows - n, x.shape[1]))])
  return x, lib.concatenate([w, lib.zeros((rows - n,), w.dtype)])


def _on_host(x) -> bool:
  """Whether `x` lives in host memory (NumPy, or the CPU backend), where
  padding on the host costs no transfer."""
  if isinstance(x, jax.core.Tracer):
    return False
  return not isinstance(x, jax.Array) or all(d.platform == "cpu" for d in x.devices())


def unpad(tree, n: int):
  """Leading `n` rows of every non-scalar output, sliced on the host (an
  eager device slice would compile anew for every `n`)."""
  return jax.tree.map(lambda a: (jax.device_put(np.asarray(a)[:n]) if _on_host(a) else a[:n]) if a.ndim else a, tree)
