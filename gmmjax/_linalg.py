"""Conversions between covariances, precisions and precision Cholesky factors.

Shapes follow scikit-learn: full `[k, d, d]`, tied `[d, d]`, diag `[k, d]`,
spherical `[k]`. A precision Cholesky factor `U` is upper triangular with
`precision = U @ U.T`, so `U = inv(L).T` where `L = cholesky(covariance)`.
"""

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import solve_triangular

# GPUs default float32 matmuls to TF32 (10-bit mantissa); EM statistics need
# full float32, so every GEMM on data asks for it. CPUs are unaffected.
PRECISION = jax.lax.Precision.HIGHEST


def mm(a: jax.Array, b: jax.Array) -> jax.Array:
  """Matrix product at full precision."""
  return jnp.matmul(a, b, precision=PRECISION)


@jax.custom_jvp
def _matrix_precision_cholesky(cov: jax.Array) -> tuple[jax.Array, jax.Array]:
  """`[..., d, d]` covariance -> (upper-triangular precision Cholesky factor,
  `[]` whether every matrix factorised as given).

  Matrices that round-off left indefinite (a failed Cholesky gives NaN) are
  retried with a diagonal load of `10 d eps` times their mean variance, the size
  of the error a float Cholesky can make, so a regularised covariance never
  yields NaN; the flag says that it happened. The retry runs only when some
  factorisation failed.
  """
  d = cov.shape[-1]
  eye = jnp.broadcast_to(jnp.eye(d, dtype=cov.dtype), cov.shape)
  chol = jnp.linalg.cholesky(cov)
  bad = ~jnp.all(jnp.isfinite(chol), axis=(-2, -1), keepdims=True)

  def retry(chol):
    finfo = jnp.finfo(cov.dtype)
    scale = jnp.trace(cov, axis1=-2, axis2=-1)[..., None, None] / d
    load = jnp.maximum(scale, finfo.tiny) * (10 * d * finfo.eps)
    # Loading only the failed matrices also makes this LAPACK call wait for the
    # first one (through `bad`). Under vmap this branch always runs (cond turns
    # into select), and two of jaxlib's batched Cholesky calls side by side can
    # deadlock: each waits on sub-tasks queued behind the other in XLA's CPU
    # thread pool (seen on 2 cores, fit(..., n_init=2)).
    loaded = jnp.linalg.cholesky(cov + jnp.where(bad, load, 0) * eye)
    # Last resort: the diagonal alone, always positive once regularised.
    diag = jnp.sqrt(jnp.maximum(jnp.diagonal(cov, axis1=-2, axis2=-1), finfo.tiny))
    diag = diag[..., :, None] * eye
    loaded = jnp.where(jnp.all(jnp.isfinite(loaded), axis=(-2, -1), keepdims=True), loaded, diag)
    return jnp.where(bad, loaded, chol)

  chol = jax.lax.cond(jnp.any(bad), retry, lambda c: c, chol)
  return jnp.swapaxes(solve_triangular(chol, eye, lower=True), -1, -2), ~jnp.any(bad)


@_matrix_precision_cholesky.defjvp
def _matrix_precision_cholesky_jvp(primals, tangents):
  # From cov = L L^T and U = L^-T: dU = -U Phi(U^T dcov U)^T, Phi the lower
  # triangle with its diagonal halved. Written on U alone, so the retry `cond`
  # above is never linearised (a vmapped cond's linearisation cannot be
  # transposed, which reverse mode through a vmapped fit needs).
  (cov,), (dcov,) = primals, tangents
  dcov = 0.5 * (dcov + jnp.swapaxes(dcov, -1, -2))  # as jnp.linalg.cholesky's derivative
  u, ok = _matrix_precision_cholesky(cov)
  inner = jnp.matmul(jnp.matmul(jnp.swapaxes(u, -1, -2), dcov, precision=PRECISION), u, precision=PRECISION)
  phi = jnp.tril(inner) - 0.5 * jnp.tril(jnp.triu(inner))
  du = -jnp.matmul(u, jnp.swapaxes(phi, -1, -2), precision=PRECISION)
  return (u, ok), (du, np.zeros(ok.shape, jax.dtypes.float0))


def precision_cholesky_checked(covariances: jax.Array, covariance_type: str) -> tuple[jax.Array, jax.Array]:
  """Precision Cholesky factors and `[]` whether every covariance was
  positive definite (and finite) as given."""
  if covariance_type in ("full", "tied"):
    return _matrix_precision_cholesky(covariances)
  # A zero variance gets a finite (huge) precision; the flag says it was not positive.
  ok = jnp.all((covariances > 0) & jnp.isfinite(covariances))
  return jax.lax.rsqrt(jnp.maximum(covariances, jnp.finfo(covariances.dtype).tiny)), ok


def precision_cholesky(covariances: jax.Array, covariance_type: str) -> jax.Array:
  return precision_cholesky_checked(covariances, covariance_type)[0]


def cholesky_of_precisions(precisions: jax.Array, covariance_type: str) -> jax.Array:
  if covariance_type in ("full", "tied"):
    # U with P = U U^T, U upper: the lower Cholesky factor of P, transposed in
    # reversed index order, is upper; cheaper: U = flip(chol(flip(P))).
    flipped = jnp.flip(precisions, axis=(-2, -1))
    return jnp.flip(jnp.linalg.cholesky(flipped), axis=(-2, -1))
  return jnp.sqrt(precisions)


def precisions_from_cholesky(prec_chol: jax.Array, covariance_type: str) -> jax.Array:
  if covariance_type in ("full", "tied"):
    return prec_chol @ jnp.swapaxes(prec_chol, -1, -2)
  return prec_chol**2


def covariances_from_cholesky(prec_chol: jax.Array, covariance_type: str) -> jax.Array:
  if covariance_type in ("full", "tied"):
    # cov = inv(U U^T) = inv(U)^T inv(U), with inv(U) by a triangular solve.
    eye = jnp.broadcast_to(jnp.eye(prec_chol.shape[-1], dtype=prec_chol.dtype), prec_chol.shape)
    inv_u = solve_triangular(prec_chol, eye, lower=False)
    return jnp.swapaxes(inv_u, -1, -2) @ inv_u
  return 1.0 / prec_chol**2


def log_det_cholesky(prec_chol: jax.Array, covariance_type: str, n_features: int) -> jax.Array:
  """log |U| per component: `[k]` (tied: `[]`)."""
  if covariance_type in ("full", "tied"):
    return jnp.sum(jnp.log(jnp.diagonal(prec_chol, axis1=-2, axis2=-1)), axis=-1)
  if covariance_type == "diag":
    return jnp.sum(jnp.log(prec_chol), axis=-1)
  return n_features * jnp.log(prec_chol)
