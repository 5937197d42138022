"""The other generative models of Fashion-MNIST in the MFA comparison, read from finished runs.

The mixture-latent GAN (`experiments.gan`) and VaDE (`experiments.vade`) are restored from their
workdirs without writing to them. Their images come out like the MFA's: `[n, 784]` grey levels in
[0, 1] (the GAN's tanh output mapped from [-1, 1], VaDE's mean pixels of p(x | z)).
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from experiments.gan import train as gan_train
from experiments.vade import generate as vade_generate
from gmmjax.nn import vade


def gan_samples(workdir: str, n: int, key: jax.Array, latent: str = "mixture") -> np.ndarray:
  """`[n, 784]` images of a finished GAN run's generator `latent`."""
  generator, g_params = gan_train.load_generator(workdir, latent)
  images = gan_train.generate(generator, g_params, key, n)
  return np.asarray((images.reshape(n, -1) + 1) / 2, np.float32)


def load_vade(workdir: str):
  """`(config, model, params)` of a finished VaDE run (its first seed); only a VaDE has the bound below."""
  config, model, params, _ = vade_generate.load_trained(workdir)
  if config.dataset != "fashion_mnist":
    raise ValueError(f"{workdir} holds a VaDE of {config.dataset}, not of fashion_mnist")
  if not isinstance(model, vade.VaDE) or model.likelihood != "bernoulli":
    raise ValueError(f"{workdir} holds a {config.model} with a {config.likelihood} likelihood; the "
                     "comparison reads a VaDE with a Bernoulli decoder")
  return config, model, params


def vade_samples(workdir: str, n: int, key: jax.Array) -> np.ndarray:
  """`[n, 784]` images of a finished VaDE run: components from the learned weights, then z, then pixels."""
  _, model, params = load_vade(workdir)
  images, _ = vade_generate.generate(key, model, params, n, per_component=False)
  return images.reshape(n, -1)


@functools.partial(jax.jit, static_argnames=("model", "n_samples"))
def _bound(key, model: vade.VaDE, params, x: jax.Array, n_samples: int) -> jax.Array:
  """`[n]` ELBO of `x: [n, 28, 28, 1]` with the decoder's logits read as a continuous Bernoulli."""
  model = dataclasses.replace(model, likelihood="continuous_bernoulli")
  return vade.elbo(key, model, params, x, method="closed_form", n_samples=n_samples).elbo


def vade_bits_per_dim(workdir: str, x: np.ndarray, key: jax.Array, n_samples: int = 10,
                      batch_size: int = 500) -> tuple[float, str]:
  """`(bits per dimension, training split)` of VaDE's bound on `x: [n, 784]` in [0, 1].

  VaDE trains its decoder as a Bernoulli likelihood of grey levels, which is no density on [0, 1].
  Its logits read as a continuous Bernoulli (the likelihood "continuous_bernoulli") do define one, so
  the ELBO under it (closed-form KL, `n_samples` draws of z per image) lower-bounds a proper
  log-density of the same dequantised images the MFA is scored on: `8 - mean ELBO / (784 ln 2)`
  upper-bounds that model's bits per dimension.
  """
  config, model, params = load_vade(workdir)
  images = jnp.asarray(x, jnp.float32).reshape(-1, 28, 28, 1)
  total = 0.0
  for j, i in enumerate(range(0, len(images), batch_size)):
    total += float(jnp.sum(_bound(jax.random.fold_in(key, j), model, params, images[i:i + batch_size],
                                  n_samples)))
  d = images[0].size
  return 8.0 - total / len(images) / (d * math.log(2)), config.split
