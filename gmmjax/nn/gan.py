"""DCGAN-sized generator and discriminator (28x28x1 images by default), with a learnable mixture latent.

`MixtureLatent` draws `z = mu_c + sigma_c * eps`, `c ~ Uniform{1..K}`,
`eps ~ N(0, I)` (DeLiGAN): the means and scales are parameters trained with
the generator through the reparameterisation. Without a regulariser the
generator shrinks the scales to zero and the mixture degenerates to K points;
`scale_penalty` is DeLiGAN's `sum (1 - sigma)^2 / K`. `GaussianLatent` is the
standard `N(0, I)` baseline with the same interface. Images are in [-1, 1].
"""

import math
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from .networks import IMAGE_SHAPE, _quarter

LATENTS = ("gaussian", "mixture")


def _uniform_symmetric(key, shape, dtype=jnp.float32):
  """DeLiGAN's initialisation of the component means: U(-1, 1)."""
  return jax.random.uniform(key, shape, dtype, -1.0, 1.0)


class MixtureLatent(nn.Module):
  """Learnable `K`-component diagonal Gaussian mixture with uniform weights.

  Attributes:
    n_components: `K`.
    latent_dim: `l`.
    init_scale: initial standard deviation of every component (DeLiGAN: 0.2).
    min_scale: floor on the standard deviations.
  """

  n_components: int
  latent_dim: int
  init_scale: float = 0.2
  min_scale: float = 1e-3

  def setup(self):
    self.means = self.param("means", _uniform_symmetric, (self.n_components, self.latent_dim))
    # softplus^-1(init_scale - min_scale): the scales start at init_scale.
    raw0 = math.log(math.expm1(self.init_scale - self.min_scale))
    self.raw_scales = self.param(
        "raw_scales", nn.initializers.constant(raw0), (self.n_components, self.latent_dim))

  def scales(self) -> jax.Array:
    """`[K, l]` standard deviations."""
    return jax.nn.softplus(self.raw_scales) + self.min_scale

  def __call__(self, key: jax.Array, n: int) -> jax.Array:
    """`n` reparameterised draws `[n, l]`."""
    key_c, key_e = jax.random.split(key)
    comp = jax.random.randint(key_c, (n,), 0, self.n_components)
    eps = jax.random.normal(key_e, (n, self.latent_dim), self.means.dtype)
    return self.means[comp] + self.scales()[comp] * eps

  def scale_penalty(self) -> jax.Array:
    """`[]` DeLiGAN's `sum_kj (1 - sigma_kj)^2 / K`."""
    return jnp.sum((1.0 - self.scales()) ** 2) / self.n_components


class GaussianLatent(nn.Module):
  """`N(0, I)` latent with `MixtureLatent`'s interface (no parameters, zero penalty)."""

  latent_dim: int

  def __call__(self, key: jax.Array, n: int) -> jax.Array:
    return jax.random.normal(key, (n, self.latent_dim), jnp.float32)

  def scale_penalty(self) -> jax.Array:
    return jnp.zeros(())


class Generator(nn.Module):
  """DCGAN generator: latent draw -> dense h/4 x w/4 x C -> h/2 x w/2 -> h x w x c (tanh); 28x28x1 by
  default.

  Attributes:
    latent: "mixture" or "gaussian".
    latent_dim: `l`.
    n_components: `K` of the mixture latent.
    features: channels at the two smaller resolutions.
    image_shape: `(h, w, c)` of the images; h and w divisible by 4.
  """

  latent: str = "mixture"
  latent_dim: int = 64
  n_components: int = 50
  features: tuple[int, int] = (128, 64)
  image_shape: tuple[int, int, int] = IMAGE_SHAPE

  def setup(self):
    if self.latent not in LATENTS:
      raise ValueError(f"latent must be one of {LATENTS}, got {self.latent!r}")
    if self.latent == "mixture":
      self.prior = MixtureLatent(self.n_components, self.latent_dim)
    else:
      self.prior = GaussianLatent(self.latent_dim)
    c0, c1 = self.features
    h0, w0 = _quarter(self.image_shape)
    self.dense = nn.Dense(h0 * w0 * c0)
    self.norm0 = nn.LayerNorm()
    self.up1 = nn.ConvTranspose(c1, (4, 4), strides=(2, 2), padding="SAME")
    self.norm1 = nn.LayerNorm()
    self.up2 = nn.ConvTranspose(self.image_shape[-1], (4, 4), strides=(2, 2), padding="SAME")

  def decode(self, z: jax.Array) -> jax.Array:
    """`z: [n, l]` -> images `[n, h, w, c]` in [-1, 1]."""
    h = nn.relu(self.norm0(self.dense(z)))
    h = h.reshape(z.shape[0], *_quarter(self.image_shape), self.features[0])
    h = nn.relu(self.norm1(self.up1(h)))
    return jnp.tanh(self.up2(h))

  def __call__(self, key: jax.Array, n: int) -> jax.Array:
    """`n` samples `[n, h, w, c]`."""
    return self.decode(self.prior(key, n))

  def scale_penalty(self) -> jax.Array:
    return self.prior.scale_penalty()


class Discriminator(nn.Module):
  """DCGAN discriminator: two strided convs with leaky ReLU, then one logit.

  Attributes:
    features: channels of the strided convolutions.
    image_shape: `(h, w, c)` of the images.
  """

  features: tuple[int, int] = (64, 128)
  image_shape: tuple[int, int, int] = IMAGE_SHAPE

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """`x: [n, h, w, c]` -> `[n]` logits of "real"."""
    h = x.reshape(x.shape[0], *self.image_shape)
    for f in self.features:
      h = nn.leaky_relu(nn.Conv(f, (4, 4), strides=(2, 2), padding="SAME")(h), 0.2)
    return nn.Dense(1)(h.reshape(h.shape[0], -1))[:, 0]


class GANState(NamedTuple):
  """Parameters and optimiser states of both players, and the step count.

  `g_opt` and `d_opt` are `optax.OptState`s (annotated `Any`: optax's recursive
  alias is not resolvable by documentation tools).
  """

  g_params: dict
  d_params: dict
  g_opt: Any
  d_opt: Any
  step: jax.Array


class GANMetrics(NamedTuple):
  """Per-step losses (all `[]`)."""

  d_loss: jax.Array
  g_loss: jax.Array
  scale_penalty: jax.Array


def discriminator_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  """`[]` binary cross-entropy: real -> 1, fake -> 0 (log-sigmoid form, finite for any logit)."""
  return -jnp.mean(jax.nn.log_sigmoid(real_logits)) - jnp.mean(jax.nn.log_sigmoid(-fake_logits))


def generator_loss(fake_logits: jax.Array) -> jax.Array:
  """`[]` non-saturating generator loss `-log D(G(z))`."""
  return -jnp.mean(jax.nn.log_sigmoid(fake_logits))


def make_gan(generator: Generator, discriminator: Discriminator, g_tx: optax.GradientTransformation,
             d_tx: optax.GradientTransformation, scale_weight: float = 1.0):
  """Builds `(init, step)` for one GAN.

  `init(key) -> GANState`; `step(state, key, real [b, h, w, c]) -> (state,
  GANMetrics)` does one discriminator then one generator update; it is pure,
  so it can be `jit`-ed, scanned and `vmap`-ed.
  """

  def init(key: jax.Array) -> GANState:
    k_g, k_d, k_z = jax.random.split(key, 3)
    g_params = generator.init(k_g, k_z, 2)["params"]
    d_params = discriminator.init(k_d, jnp.zeros((2, *discriminator.image_shape)))["params"]
    return GANState(g_params, d_params, g_tx.init(g_params), d_tx.init(d_params), jnp.zeros((), jnp.int32))

  def step(state: GANState, key: jax.Array, real: jax.Array) -> tuple[GANState, GANMetrics]:
    k_d, k_g = jax.random.split(key)
    n = real.shape[0]
    fake = jax.lax.stop_gradient(generator.apply({"params": state.g_params}, k_d, n))

    def d_loss_fn(d_params):
      logits = discriminator.apply({"params": d_params}, jnp.concatenate([real, fake]))
      return discriminator_loss(logits[:n], logits[n:])

    d_loss, d_grads = jax.value_and_grad(d_loss_fn)(state.d_params)
    d_updates, d_opt = d_tx.update(d_grads, state.d_opt, state.d_params)
    d_params = optax.apply_updates(state.d_params, d_updates)

    def g_loss_fn(g_params):
      fake = generator.apply({"params": g_params}, k_g, n)
      pen = generator.apply({"params": g_params}, method=Generator.scale_penalty)
      loss = generator_loss(discriminator.apply({"params": d_params}, fake))
      return loss + scale_weight * pen, (loss, pen)

    (_, (g_loss, pen)), g_grads = jax.value_and_grad(g_loss_fn, has_aux=True)(state.g_params)
    g_updates, g_opt = g_tx.update(g_grads, state.g_opt, state.g_params)
    g_params = optax.apply_updates(state.g_params, g_updates)
    new = GANState(g_params, d_params, g_opt, d_opt, state.step + 1)
    return new, GANMetrics(d_loss, g_loss, pen)

  return init, step
