"""Deep autoencoding Gaussian mixture model (DAGMM) for anomaly detection.

An autoencoder's code, plus two reconstruction features (relative Euclidean
error and cosine similarity), forms `z`; an estimation network maps `z` to soft
memberships `gamma`; the mixture is the M-step of the core on `(z, gamma)`
(`gmmjax.stats_from_responsibilities` then `gmmjax.params_from_stats`, with `reg_covar` on
every covariance diagonal), and a sample's energy is `-gmmjax.log_prob`.

Numerics: the reconstruction features use norms with an epsilon inside the
square root (finite gradient at zero error), covariances are regularised and
factorised by the core's Cholesky with its diagonal-load fallback, and empty
components get the core's `10 eps` counts, so collapsed codes, one-hot or empty
memberships give finite energies and finite gradients.
"""

from typing import NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from .._stats import params_from_stats, stats_from_responsibilities
from .._logprob import log_prob as gmm_log_prob
from .._types import GMMParams, check_covariance_type
from . import networks


class DAGMMOutput(NamedTuple):
  """Forward pass of `DAGMM` on `n` inputs.

  Attributes:
    code: `[n, l]` autoencoder code.
    reconstruction: `[n, *image]` reconstructed inputs (same layout as `x`).
    z: `[n, l + 2]` code plus relative error and cosine similarity.
    gamma: `[n, k]` soft memberships (rows sum to one).
  """

  code: jax.Array
  reconstruction: jax.Array
  z: jax.Array
  gamma: jax.Array


def _safe_norm(x: jax.Array, eps: float) -> jax.Array:
  # eps inside the root keeps d||x||/dx finite at x = 0.
  return jnp.sqrt(jnp.sum(x * x, axis=-1) + eps * eps)


def reconstruction_features(x: ArrayLike, x_hat: ArrayLike, eps: float = 1e-6) -> jax.Array:
  """Relative Euclidean error and cosine similarity of each row.

  Args:
    x: `[n, ...]` inputs.
    x_hat: `[n, ...]` reconstructions, same shape.
    eps: guard against zero norms (all-zero images).

  Returns:
    `[n, 2]`: `||x - x_hat|| / ||x||` and `<x, x_hat> / (||x|| ||x_hat||)`.
  """
  x = jnp.asarray(x)
  x_hat = jnp.asarray(x_hat, x.dtype).reshape(x.shape)
  x, x_hat = x.reshape(x.shape[0], -1), x_hat.reshape(x.shape[0], -1)
  norm_x, norm_hat = _safe_norm(x, eps), _safe_norm(x_hat, eps)
  rel = _safe_norm(x - x_hat, eps) / norm_x
  cos = jnp.sum(x * x_hat, axis=-1) / (norm_x * norm_hat)
  return jnp.stack([rel, cos], axis=-1)


def mixture_from_memberships(
    z: ArrayLike,
    gamma: ArrayLike,
    reg_covar: ArrayLike = 1e-4,
    covariance_type: str = "full",
) -> GMMParams:
  """The core M-step on soft memberships: differentiable in `z` and `gamma`.

  Args:
    z: `[n, d]` points.
    gamma: `[n, k]` memberships (rows sum to one).
    reg_covar: `[]` added to covariance diagonals; must be positive for
      collapsed codes to give a finite density.
    covariance_type: static, any of the core's types.

  Returns:
    `GMMParams` (weights `phi`, means `mu`, precision Cholesky factors).
  """
  z = jnp.asarray(z)
  gamma = jnp.asarray(gamma, z.dtype)
  check_covariance_type(covariance_type)
  if z.ndim != 2 or gamma.ndim != 2 or z.shape[0] != gamma.shape[0]:
    raise ValueError(f"z must be [n, d] and gamma [n, k] with the same n, got {z.shape} and {gamma.shape}")
  stats = stats_from_responsibilities(z, gamma, covariance_type=covariance_type)
  return params_from_stats(stats, reg_covar)


def energy(params: GMMParams, z: ArrayLike) -> jax.Array:
  """`[n]` sample energy `-log sum_k phi_k N(z | mu_k, Sigma_k)` (core log-density)."""
  return -gmm_log_prob(params, z)


def covariance_penalty(params: GMMParams) -> jax.Array:
  """`[]` DAGMM's `sum_k sum_j 1 / Sigma_kjj`, which grows as a variance shrinks."""
  cov = params.covariances
  if params.covariance_type in ("full", "tied"):
    diag = jnp.diagonal(cov, axis1=-2, axis2=-1)
  else:
    diag = cov
  if params.covariance_type == "tied":
    diag = jnp.broadcast_to(diag, params.means.shape)
  elif params.covariance_type == "spherical":
    diag = jnp.broadcast_to(diag[:, None], params.means.shape)
  return jnp.sum(1.0 / diag)


class EstimationNetwork(nn.Module):
  """`z -> softmax` memberships: Dense-tanh-dropout-Dense, as in DAGMM.

  Attributes:
    n_components: `k`.
    hidden: width of the hidden layer.
    dropout: dropout rate on the hidden layer (training only).
  """

  n_components: int
  hidden: int = 10
  dropout: float = 0.5

  @nn.compact
  def __call__(self, z: jax.Array, train: bool = False) -> jax.Array:
    """`z: [n, d]` -> `gamma: [n, k]`."""
    h = nn.tanh(nn.Dense(self.hidden)(z))
    h = nn.Dropout(self.dropout, deterministic=not train)(h)
    return jax.nn.softmax(nn.Dense(self.n_components)(h), axis=-1)


class DAGMM(nn.Module):
  """Compression network (autoencoder) plus estimation network.

  Attributes:
    latent_dim: `l`, the code size.
    n_components: `k`.
    architecture: "mlp" or "conv" encoder/decoder from `gmmjax.nn.networks`.
    encoder_hidden / decoder_hidden: MLP widths (ignored by "conv").
    image_shape: `(h, w, c)` of the images.
    estimation_hidden, dropout: estimation network.
    eps: guard of the reconstruction features.
  """

  latent_dim: int = 1
  n_components: int = 4
  architecture: str = "mlp"
  encoder_hidden: Sequence[int] = (60, 30, 10)
  decoder_hidden: Sequence[int] = (10, 30, 60)
  estimation_hidden: int = 10
  dropout: float = 0.5
  eps: float = 1e-6
  image_shape: Sequence[int] = networks.IMAGE_SHAPE

  def setup(self):
    if self.architecture == "mlp":
      self.encoder = networks.MLPEncoder(self.latent_dim, hidden=self.encoder_hidden)
      self.decoder = networks.MLPDecoder(hidden=self.decoder_hidden, image_shape=self.image_shape)
    else:
      self.encoder = networks.make_encoder(self.architecture, self.latent_dim, image_shape=self.image_shape)
      self.decoder = networks.make_decoder(self.architecture, image_shape=self.image_shape)
    self.estimation = EstimationNetwork(self.n_components, self.estimation_hidden, self.dropout)

  def encode(self, x: jax.Array) -> jax.Array:
    """`x: [n, h, w, c]` -> `[n, l]` code (the encoder's mean head)."""
    return self.encoder(x)[0]

  def __call__(self, x: jax.Array, train: bool = False) -> DAGMMOutput:
    """`x: [n, h, w, c]` images in [0, 1] -> `DAGMMOutput`."""
    code = self.encode(x)
    x_hat = jax.nn.sigmoid(self.decoder(code)).reshape(x.shape)
    z = jnp.concatenate([code, reconstruction_features(x, x_hat, self.eps)], axis=-1)
    return DAGMMOutput(code, x_hat, z, self.estimation(z, train))


class DAGMMLoss(NamedTuple):
  """Terms of `dagmm_loss` (all `[]`)."""

  total: jax.Array
  reconstruction: jax.Array
  energy: jax.Array
  penalty: jax.Array


def dagmm_loss(
    out: DAGMMOutput,
    x: ArrayLike,
    *,
    lambda_energy: ArrayLike = 0.1,
    lambda_cov: ArrayLike = 0.005,
    reg_covar: ArrayLike = 1e-4,
    covariance_type: str = "full",
) -> tuple[DAGMMLoss, GMMParams]:
  """Mean squared reconstruction error + lambda_energy E[energy] + lambda_cov penalty.

  The mixture is re-estimated from the batch's memberships (the paper's
  batch-wise M-step) and returned with the loss.

  Returns:
    `(DAGMMLoss, GMMParams)`.
  """
  x = jnp.asarray(x, out.reconstruction.dtype)
  rec = jnp.mean(jnp.sum((x - out.reconstruction).reshape(x.shape[0], -1) ** 2, axis=-1))
  params = mixture_from_memberships(out.z, out.gamma, reg_covar, covariance_type)
  e = jnp.mean(energy(params, out.z))
  pen = covariance_penalty(params)
  total = rec + lambda_energy * e + lambda_cov * pen
  return DAGMMLoss(total, rec, e, pen), params
