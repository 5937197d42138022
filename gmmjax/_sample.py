"""Drawing samples from a mixture."""

import jax
import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular

from ._types import GMMParams


def sample(key, params: GMMParams, n: int) -> tuple[jax.Array, jax.Array]:
  """Draws `n` samples.

  Args:
    key: PRNG key.
    params: mixture parameters.
    n: number of samples (static).

  Returns:
    `(x [n, d], components [n])`: the samples and the component each came from.
  """
  component_key, noise_key = jax.random.split(key)
  k, d = params.means.shape
  components = jax.random.categorical(component_key, jnp.log(params.weights), shape=(n,))
  z = jax.random.normal(noise_key, (n, d), params.means.dtype)
  prec = params.precisions_cholesky
  cov_type = params.covariance_type
  # x = mu + U^{-T} z has covariance (U U^T)^{-1}.
  if cov_type == "full":
    noise = jax.vmap(lambda u, zi: solve_triangular(u, zi, trans="T", lower=False))(prec[components], z)
  elif cov_type == "tied":
    noise = solve_triangular(prec, z.T, trans="T", lower=False).T
  elif cov_type == "diag":
    noise = z / prec[components]
  else:
    noise = z / prec[components][:, None]
  return params.means[components] + noise, components
