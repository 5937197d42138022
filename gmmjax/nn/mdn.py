"""Mixture density networks: a Flax head mapping features to a Gaussian mixture over targets.

The head outputs, per input row, a `K`-component mixture over a `D`-dimensional
target: mixing logits, means, and either per-dimension scales ("diag") or the
lower Cholesky factor of each covariance ("full"). Scales are
`softplus(raw) + min_scale`, so a component can never collapse onto a point and
send the likelihood to infinity.
"""

import math
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular
from jax.typing import ArrayLike

from .. import _linalg

MDN_COVARIANCE_TYPES = ("diag", "full")


class MDNParams(NamedTuple):
  """A batch of Gaussian mixtures, one per input row.

  Attributes:
    logits: `[n, k]` unnormalised log mixing weights.
    means: `[n, k, D]` component means.
    scales: diag: `[n, k, D]` standard deviations; full: `[n, k, D, D]` lower
      Cholesky factors `L` of the covariances (`Sigma = L L^T`).
  """

  logits: jax.Array
  means: jax.Array
  scales: jax.Array

  @property
  def covariance_type(self) -> str:
    return "full" if self.scales.ndim == 4 else "diag"

  @property
  def log_weights(self) -> jax.Array:
    """`[n, k]` normalised log mixing weights."""
    return jax.nn.log_softmax(self.logits, axis=-1)

  def covariances(self) -> jax.Array:
    """diag `[n, k, D]` variances or full `[n, k, D, D]` covariance matrices."""
    if self.covariance_type == "diag":
      return self.scales**2
    return _linalg.mm(self.scales, jnp.swapaxes(self.scales, -1, -2))


def _positive(raw: jax.Array, min_scale: float) -> jax.Array:
  return jax.nn.softplus(raw) + min_scale


class MDNHead(nn.Module):
  """Dense layers from features to `MDNParams`.

  Attributes:
    n_components: `K`.
    target_dim: `D`.
    covariance_type: "diag" or "full" (Cholesky factor with positive diagonal).
    min_scale: floor added to every standard deviation (and Cholesky diagonal).
  """

  n_components: int
  target_dim: int
  covariance_type: str = "diag"
  min_scale: float = 1e-3

  @nn.compact
  def __call__(self, h: jax.Array) -> MDNParams:
    """`h: [n, f]` features -> `MDNParams` with `n` rows."""
    if self.covariance_type not in MDN_COVARIANCE_TYPES:
      raise ValueError(
          f"covariance_type must be one of {MDN_COVARIANCE_TYPES}, got {self.covariance_type!r}"
      )
    if self.n_components < 1 or self.target_dim < 1:
      raise ValueError("n_components and target_dim must be positive")
    k, d = self.n_components, self.target_dim
    n = h.shape[0]
    logits = nn.Dense(k, name="logits")(h)
    means = nn.Dense(k * d, name="means")(h).reshape(n, k, d)
    if self.covariance_type == "diag":
      scales = _positive(nn.Dense(k * d, name="scales")(h).reshape(n, k, d), self.min_scale)
      return MDNParams(logits, means, scales)
    n_tril = d * (d + 1) // 2
    raw = nn.Dense(k * n_tril, name="scale_tril")(h).reshape(n, k, n_tril)
    rows, cols = jnp.tril_indices(d)
    tril = jnp.zeros((n, k, d, d), raw.dtype).at[:, :, rows, cols].set(raw)
    diag = _positive(jnp.diagonal(tril, axis1=-2, axis2=-1), self.min_scale)
    eye = jnp.eye(d, dtype=raw.dtype)
    # Strictly lower part as is, diagonal replaced by the floored positive one.
    tril = tril * (1 - eye)[None, None] + diag[..., None] * eye[None, None]
    return MDNParams(logits, means, tril)


def component_log_prob(params: MDNParams, y: ArrayLike) -> jax.Array:
  """`[n, k]` log N(y_i | mu_ik, Sigma_ik) (without the mixing weights).

  Args:
    params: mixtures for `n` rows.
    y: `[n, D]` targets.
  """
  y = jnp.asarray(y, params.means.dtype)
  if y.ndim != 2 or y.shape != (params.means.shape[0], params.means.shape[2]):
    raise ValueError(f"y must have shape {params.means.shape[::2]}, got {y.shape}")
  d = y.shape[-1]
  diff = y[:, None, :] - params.means
  if params.covariance_type == "diag":
    white = diff / params.scales
    log_det = jnp.sum(jnp.log(params.scales), axis=-1)
  else:
    white = solve_triangular(params.scales, diff[..., None], lower=True)[..., 0]
    log_det = jnp.sum(jnp.log(jnp.diagonal(params.scales, axis1=-2, axis2=-1)), axis=-1)
  return -0.5 * jnp.sum(white * white, axis=-1) - log_det - 0.5 * d * math.log(2 * math.pi)


def log_prob(params: MDNParams, y: ArrayLike) -> jax.Array:
  """`[n]` log p(y_i | x_i) = logsumexp_k (log pi_ik + log N(y_i | mu_ik, Sigma_ik))."""
  return jax.nn.logsumexp(params.log_weights + component_log_prob(params, y), axis=-1)


def nll(params: MDNParams, y: ArrayLike) -> jax.Array:
  """`[]` mean negative log-likelihood of the targets `y: [n, D]`."""
  return -jnp.mean(log_prob(params, y))


def sample(key: jax.Array, params: MDNParams) -> jax.Array:
  """One draw per row: `[n, D]`, component by its weight, then mean + L eps."""
  key_c, key_e = jax.random.split(key)
  n, k, d = params.means.shape
  comp = jax.random.categorical(key_c, params.logits, axis=-1)
  eps = jax.random.normal(key_e, (n, d), params.means.dtype)
  mean = jnp.take_along_axis(params.means, comp[:, None, None], axis=1)[:, 0]
  if params.covariance_type == "diag":
    scale = jnp.take_along_axis(params.scales, comp[:, None, None], axis=1)[:, 0]
    return mean + scale * eps
  tril = jnp.take_along_axis(params.scales, comp[:, None, None, None], axis=1)[:, 0]
  return mean + jnp.einsum("nde,ne->nd", tril, eps)


def mean(params: MDNParams) -> jax.Array:
  """`[n, D]` mixture mean sum_k pi_k mu_k (the squared-error optimal point prediction)."""
  return jnp.einsum("nk,nkd->nd", jnp.exp(params.log_weights), params.means)


def mode(params: MDNParams) -> jax.Array:
  """`[n, D]` the component mean at which the mixture density is highest.

  The mode of a mixture has no closed form; among the component means the best
  one is the exact mode when components are well separated, and a point of high
  density otherwise (what a multimodal prediction should return).
  """
  n, k, d = params.means.shape

  def density_at_means(p):  # one row: mixture log-density at each of its k means
    tiled = MDNParams(
        jnp.broadcast_to(p.logits, (k, k)),
        jnp.broadcast_to(p.means, (k, k, d)),
        jnp.broadcast_to(p.scales, (k, *p.scales.shape)),
    )
    return log_prob(tiled, p.means)

  scores = jax.vmap(density_at_means)(params)
  best = jnp.argmax(scores, axis=-1)
  return jnp.take_along_axis(params.means, best[:, None, None], axis=1)[:, 0]
