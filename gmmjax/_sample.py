"""Drawing samples from a mixture."""

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import solve_triangular

from . import _checks, _padding
from ._types import GMMParams


def sample(key, params: GMMParams, n: int) -> tuple[jax.Array, jax.Array]:
  """Draws `n` samples.

  Eagerly, the draw is compiled for the size class of `n` (a power of four,
  or whole blocks of 16384) and cut to `n`, so many sample sizes share one
  compiled program; the first `n` draws of a size class do not depend on `n`.

  Args:
    key: PRNG key.
    params: mixture parameters.
    n: number of samples (a non-negative integer; static).

  Returns:
    `(x [n, d], components [n])`: the samples and the component each came from.
  """
  if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
    raise ValueError(f"n must be a non-negative integer, got {n!r}")
  n = int(n)
  _checks.params(params)
  if any(isinstance(a, jax.core.Tracer) for a in jax.tree.leaves((key, params))):
    return _sample(key, params, n)
  rows = _padding.size_class(max(n, 1), _BLOCK)
  return _padding.unpad(_sample_jit(key, params, rows), n)


_BLOCK = 1 << 14


def _sample(key, params: GMMParams, n: int) -> tuple[jax.Array, jax.Array]:
  component_key, noise_key = jax.random.split(key)
  k, d = params.means.shape
  components = jax.random.categorical(component_key, jnp.log(params.weights), shape=(n,))
  z = jax.random.normal(noise_key, (n, d), params.means.dtype)
  prec = params.precisions_cholesky
  cov_type = params.covariance_type
  # x = mu + U^{-T} z has covariance (U U^T)^{-1}.
  if cov_type == "full":
    # One [n, d] x [d, d] product per component, each row keeping its own:
    # memory O(n d), where gathering a factor per row would take O(n d^2).
    eye = jnp.broadcast_to(jnp.eye(d, dtype=z.dtype), prec.shape)
    inv_t = solve_triangular(prec, eye, trans="T", lower=False)  # [k, d, d]: U_k^-T

    def add(j, noise):
      return noise + jnp.where((components == j)[:, None], z @ inv_t[j].T, 0)

    noise = jax.lax.fori_loop(0, k, add, jnp.zeros_like(z))
  elif cov_type == "tied":
    noise = solve_triangular(prec, z.T, trans="T", lower=False).T
  elif cov_type == "diag":
    noise = z / prec[components]
  else:
    noise = z / prec[components][:, None]
  return params.means[components] + noise, components


_sample_jit = jax.jit(_sample, static_argnums=2)
