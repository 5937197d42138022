"""Synthetic mixture data generated chunk by chunk, in place.

On the device (`mixture_rows`), `[n, d]` rows are written into one
preallocated buffer with `dynamic_update_slice` inside a `fori_loop`, so
generating N = 10M x 64 float32 (2.56 GB) needs the buffer plus one chunk, not
several full-size temporaries. On the host (`host_mixture_rows`), NumPy fills a
64-byte aligned buffer that `jax.device_put` can hand to the CPU backend
without a copy.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np


def random_mixture(key, k: int, d: int, dtype=jnp.float32, spread: float = 4.0):
  """`(weights [k], means [k, d], scales [k, d])` of a random diagonal mixture."""
  kw, km, ks = jax.random.split(key, 3)
  weights = jax.random.dirichlet(kw, jnp.full((k,), 5.0)).astype(dtype)
  means = (spread * jax.random.normal(km, (k, d))).astype(dtype)
  scales = jax.random.uniform(ks, (k, d), minval=0.5, maxval=1.5).astype(dtype)
  return weights, means, scales


@functools.partial(jax.jit, static_argnames=("n", "chunk"))
def _generate(key, weights, means, scales, *, n: int, chunk: int):
  d = means.shape[1]
  n_chunks, rest = divmod(n, chunk)

  def rows(i, size):
    kz, kn = jax.random.split(jax.random.fold_in(key, i))
    z = jax.random.categorical(kz, jnp.log(weights), shape=(size,))
    return means[z] + scales[z] * jax.random.normal(kn, (size, d), means.dtype)

  def body(i, x):
    return jax.lax.dynamic_update_slice_in_dim(x, rows(i, chunk), i * chunk, axis=0)

  x = jax.lax.fori_loop(0, n_chunks, body, jnp.zeros((n, d), means.dtype))
  if rest:
    x = jax.lax.dynamic_update_slice_in_dim(x, rows(n_chunks, rest), n_chunks * chunk, axis=0)
  return x


def mixture_rows(key, n: int, k: int, d: int, dtype=jnp.float32, chunk: int = 65536, part: int = 0) -> jax.Array:
  """`[n, d]` rows of a random `k`-component mixture, on the default device.

  The mixture depends on `key` only; `part` selects independent draws from
  it, so a large data set can be produced (and written out) part by part.
  """
  chunk = min(chunk, n)
  kp, kx = jax.random.split(key)
  weights, means, scales = random_mixture(kp, k, d, dtype)
  return _generate(jax.random.fold_in(kx, part), weights, means, scales, n=n, chunk=chunk)


def host_mixture_rows(seed: int, n: int, k: int, d: int, dtype=np.float32, part: int = 0, chunk: int = 65536) -> np.ndarray:
  """`[n, d]` rows of a random `k`-component mixture in a read-only NumPy array.

  The mixture depends on `seed` only; `part` selects independent draws from it.
  The buffer is 64-byte aligned and read-only, so on the CPU backend
  `jax.device_put` shares it instead of copying (safe, since nothing can write
  to it afterwards).
  """
  mix = np.random.default_rng(seed)
  weights = mix.dirichlet(np.full(k, 5.0))
  means = 4.0 * mix.standard_normal((k, d))
  scales = mix.uniform(0.5, 1.5, (k, d))
  itemsize = np.dtype(dtype).itemsize
  raw = np.empty(n * d * itemsize + 64, np.uint8)
  offset = (-raw.ctypes.data) % 64
  out = raw[offset : offset + n * d * itemsize].view(dtype).reshape(n, d)
  rng = np.random.default_rng([seed, part])
  for start in range(0, n, chunk):
    rows = min(chunk, n - start)
    z = rng.choice(k, size=rows, p=weights)
    out[start : start + rows] = means[z] + scales[z] * rng.standard_normal((rows, d))
  out.flags.writeable = False
  return out
