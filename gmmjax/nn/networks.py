"""Encoders, decoders and observation likelihoods for images `[n, h, w, c]`.

Encoders map images `[n, h, w, c]` (or flat `[n, h * w * c]`) to the mean and
log-variance of a diagonal Gaussian `q(z | x)`; decoders map codes `[n, l]` to
per-pixel parameters `[n, h, w, c]` (Bernoulli logits or Gaussian means). The
image shape is each decoder's (and convolutional encoder's) `image_shape`,
28x28x1 by default.
"""

from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

IMAGE_SHAPE = (28, 28, 1)

# Bounds on encoder log-variances: exp(-12) ~ 6e-6 .. exp(6) ~ 400. They keep
# 1 / variance finite in float32 without limiting any sensible posterior.
LOG_VAR_MIN = -12.0
LOG_VAR_MAX = 6.0


def _soft_clip(x: jax.Array, lo: float, hi: float) -> jax.Array:
  """Smooth clip to (lo, hi): identity in the middle, gradients never vanish exactly."""
  mid, half = 0.5 * (hi + lo), 0.5 * (hi - lo)
  return mid + half * jnp.tanh((x - mid) / half)


def _flatten(x: jax.Array) -> jax.Array:
  return x.reshape(x.shape[0], -1)


class MLPEncoder(nn.Module):
  """Fully connected Gaussian encoder (VaDE's 784-500-500-2000-l by default).

  Attributes:
    latent_dim: `l`.
    hidden: widths of the hidden layers.
  """

  latent_dim: int
  hidden: Sequence[int] = (500, 500, 2000)

  @nn.compact
  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """`x: [n, ...]` (any image shape, flattened) -> `(mean [n, l], log_var [n, l])`."""
    h = _flatten(x)
    for width in self.hidden:
      h = nn.relu(nn.Dense(width)(h))
    mean = nn.Dense(self.latent_dim, name="mean")(h)
    log_var = nn.Dense(self.latent_dim, name="log_var")(h)
    return mean, _soft_clip(log_var, LOG_VAR_MIN, LOG_VAR_MAX)


class MLPDecoder(nn.Module):
  """Fully connected decoder to per-pixel parameters `[n, h, w, c]`.

  Attributes:
    hidden: widths of the hidden layers (VaDE: 2000-500-500).
    image_shape: `(h, w, c)` of the images.
  """

  hidden: Sequence[int] = (2000, 500, 500)
  image_shape: Sequence[int] = IMAGE_SHAPE

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    """`z: [n, l]` -> `[n, h, w, c]`."""
    h = z
    for width in self.hidden:
      h = nn.relu(nn.Dense(width)(h))
    out = nn.Dense(math.prod(self.image_shape))(h)
    return out.reshape(z.shape[0], *self.image_shape)


class ConvEncoder(nn.Module):
  """Convolutional Gaussian encoder: h -> h/2 -> h/4 (strided convs), then dense.

  Attributes:
    latent_dim: `l`.
    features: channels of the two strided convolutions.
    dense: width of the dense layer after them.
    image_shape: `(h, w, c)` of the images.
  """

  latent_dim: int
  features: Sequence[int] = (32, 64)
  dense: int = 256
  image_shape: Sequence[int] = IMAGE_SHAPE

  @nn.compact
  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """`x: [n, h, w, c]` or `[n, h * w * c]` -> `(mean [n, l], log_var [n, l])`."""
    h = x.reshape(x.shape[0], *self.image_shape)
    for f in self.features:
      h = nn.relu(nn.Conv(f, (4, 4), strides=(2, 2), padding="SAME")(h))
    h = nn.relu(nn.Dense(self.dense)(_flatten(h)))
    mean = nn.Dense(self.latent_dim, name="mean")(h)
    log_var = nn.Dense(self.latent_dim, name="log_var")(h)
    return mean, _soft_clip(log_var, LOG_VAR_MIN, LOG_VAR_MAX)


class ConvDecoder(nn.Module):
  """Transposed-convolution decoder: dense -> h/4 x w/4 -> h/2 x w/2 -> h x w x c.

  Attributes:
    features: channels at the two smaller resolutions.
    dense: width of the first dense layer.
    image_shape: `(h, w, c)` of the images; h and w divisible by 4.
  """

  features: Sequence[int] = (64, 32)
  dense: int = 256
  image_shape: Sequence[int] = IMAGE_SHAPE

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    """`z: [n, l]` -> `[n, h, w, c]`."""
    h0, w0 = _quarter(self.image_shape)
    h = nn.relu(nn.Dense(self.dense)(z))
    h = nn.relu(nn.Dense(h0 * w0 * self.features[0])(h))
    h = h.reshape(z.shape[0], h0, w0, self.features[0])
    h = nn.relu(nn.ConvTranspose(self.features[1], (4, 4), strides=(2, 2), padding="SAME")(h))
    return nn.ConvTranspose(self.image_shape[-1], (4, 4), strides=(2, 2), padding="SAME")(h)


def _quarter(image_shape: Sequence[int]) -> tuple[int, int]:
  """`(h / 4, w / 4)`: the resolution two stride-2 transposed convolutions double twice."""
  height, width = image_shape[0], image_shape[1]
  if height % 4 or width % 4:
    raise ValueError(f"image height and width must be divisible by 4, got {tuple(image_shape)}")
  return height // 4, width // 4


ARCHITECTURES = ("mlp", "conv")


def make_encoder(architecture: str, latent_dim: int, **kwargs) -> nn.Module:
  """`MLPEncoder` or `ConvEncoder` by name ("mlp" or "conv")."""
  if architecture == "mlp":
    return MLPEncoder(latent_dim, **kwargs)
  if architecture == "conv":
    return ConvEncoder(latent_dim, **kwargs)
  raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")


def make_decoder(architecture: str, **kwargs) -> nn.Module:
  """`MLPDecoder` or `ConvDecoder` by name ("mlp" or "conv")."""
  if architecture == "mlp":
    return MLPDecoder(**kwargs)
  if architecture == "conv":
    return ConvDecoder(**kwargs)
  raise ValueError(f"architecture must be one of {ARCHITECTURES}, got {architecture!r}")


def bernoulli_log_prob(logits: ArrayLike, x: ArrayLike) -> jax.Array:
  """log p(x | logits) summed over pixels, for targets `x` in [0, 1].

  Written as `x * logits - softplus(logits)`, which is finite for any logit.

  Args:
    logits: `[n, ...]` decoder outputs.
    x: `[n, ...]` targets in [0, 1], same shape.

  Returns:
    `[n]` log-likelihoods.
  """
  logits, x = jnp.asarray(logits), jnp.asarray(x)
  x = x.reshape(logits.shape).astype(logits.dtype)
  ll = x * logits - jax.nn.softplus(logits)
  return jnp.sum(_flatten(ll), axis=-1)


def continuous_bernoulli_log_prob(logits: ArrayLike, x: ArrayLike) -> jax.Array:
  """log p(x | logits) of the continuous Bernoulli, summed over pixels: a density on [0, 1].

  The Bernoulli log-likelihood of `x` plus the log normaliser of lambda^x (1 - lambda)^(1 - x) on
  [0, 1] (Loaiza-Ganem and Cunningham 2019), which is log(t / tanh(t / 2)) with t = |logits| (log 2 at
  t = 0). It scores a Bernoulli decoder's output as a density of grey levels, comparable with other
  densities of the same images.

  Args:
    logits: `[n, ...]` decoder outputs.
    x: `[n, ...]` targets in [0, 1], same shape.

  Returns:
    `[n]` log-densities.
  """
  logits = jnp.asarray(logits)
  t = jnp.abs(logits)
  small = t < 1e-2  # log 2 + t^2 / 12 is exact there to float64 rounding; the closed form cancels.
  safe = jnp.where(small, 1.0, t)
  log_norm = jnp.where(small, math.log(2.0) + t * t / 12,
                       jnp.log(safe) - jnp.log1p(-jnp.exp(-safe)) + jnp.log1p(jnp.exp(-safe)))
  return bernoulli_log_prob(logits, x) + jnp.sum(_flatten(log_norm), axis=-1)


def gaussian_log_prob(mean: ArrayLike, x: ArrayLike, log_scale: ArrayLike = 0.0) -> jax.Array:
  """log N(x | mean, exp(log_scale)^2) summed over pixels.

  Args:
    mean: `[n, ...]` decoder outputs.
    x: `[n, ...]` targets, same shape.
    log_scale: per-pixel log standard deviation: a scalar or an array of the
      pixel shape `[...]` (e.g. a learned parameter).

  Returns:
    `[n]` log-likelihoods.
  """
  mean, x = jnp.asarray(mean), jnp.asarray(x)
  x = x.reshape(mean.shape).astype(mean.dtype)
  log_scale = jnp.broadcast_to(jnp.asarray(log_scale, mean.dtype), mean.shape[1:])[None]
  z = (x - mean) * jnp.exp(-log_scale)
  ll = -0.5 * z * z - log_scale - 0.5 * math.log(2 * math.pi)
  return jnp.sum(_flatten(ll), axis=-1)


LIKELIHOODS = ("bernoulli", "continuous_bernoulli", "gaussian")


def log_likelihood(likelihood: str, out: jax.Array, x: jax.Array) -> jax.Array:
  """`[n]` log p(x | decoder output) for "bernoulli" or "continuous_bernoulli" (logits) or "gaussian"
  (unit-scale means)."""
  if likelihood == "bernoulli":
    return bernoulli_log_prob(out, x)
  if likelihood == "continuous_bernoulli":
    return continuous_bernoulli_log_prob(out, x)
  if likelihood == "gaussian":
    return gaussian_log_prob(out, x)
  raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")


def mean_image(likelihood: str, out: jax.Array) -> jax.Array:
  """Expected pixel values from decoder outputs: the sigmoid of logits, the continuous Bernoulli's mean,
  or the Gaussian means.

  The continuous Bernoulli's mean with logit l is 1/2 + (coth(u) - 1/u) / 2, u = l / 2. The closed form
  cancels near 0, where the Langevin function's series takes over (to |u| = 1/2 in float32, 1e-3 in
  float64, each exact to its precision).
  """
  if likelihood == "bernoulli":
    return jax.nn.sigmoid(out)
  if likelihood == "continuous_bernoulli":
    u = jnp.asarray(out) / 2
    small = jnp.abs(u) < (0.5 if jnp.finfo(u.dtype).eps > 1e-10 else 1e-3)
    safe = jnp.where(small, 1.0, u)
    u2 = u * u
    series = u * (1 / 3 - u2 * (1 / 45 - u2 * (2 / 945 - u2 * (1 / 4725 - u2 * 2 / 93555))))
    return 0.5 + 0.5 * jnp.where(small, series, 1 / jnp.tanh(safe) - 1 / safe)
  return out
