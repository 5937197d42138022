"""Self-supervised features for one-class detection: which geometric transform was applied?

A classifier trained on normal images only to tell the 8 symmetries of the
square apart (4 rotations by 90 degrees, each with or without a horizontal flip)
must learn what the normal class looks like in each orientation (the idea of
GEOM, Golan & El-Yaniv 2018). Its penultimate features are a second learned
representation, next to an autoencoder's code, on which a GMM is fitted; the
one-class experiment (`experiments/anomaly/`) combines the two GMMs' scores.
"""

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

N_TRANSFORMS = 8


def dihedral_transforms(x: jax.Array) -> jax.Array:
  """`x: [n, h, h, c]` square images -> `[8, n, h, h, c]`.

  Transform `t` rotates by `t % 4` quarter turns (counter-clockwise) the image,
  horizontally flipped first when `t >= 4`; transform 0 is the identity.
  """
  flipped = x[:, :, ::-1]
  return jnp.stack([jnp.rot90(v, r, axes=(1, 2)) for v in (x, flipped) for r in range(4)])


def apply_transforms(x: jax.Array, t: jax.Array) -> jax.Array:
  """`x: [n, h, h, c]`, `t: [n]` integers in [0, 8) -> `[n, h, h, c]`, image i under transform t[i]."""
  return jnp.take_along_axis(dihedral_transforms(x), t[None, :, None, None, None], axis=0)[0]


class TransformClassifier(nn.Module):
  """MLP from an image to logits over the 8 transforms, and its penultimate features.

  Attributes:
    hidden: widths of the hidden layers; the last one is the feature size.
  """

  hidden: Sequence[int] = (512, 32)

  @nn.compact
  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """`x: [n, 28, 28, 1]` -> `(logits [n, 8], features [n, hidden[-1]])`."""
    h = x.reshape(x.shape[0], -1)
    for width in self.hidden:
      h = nn.relu(nn.Dense(width)(h))
    return nn.Dense(N_TRANSFORMS)(h), h


def transform_loss(model: TransformClassifier, params, x: jax.Array, key: jax.Array) -> jax.Array:
  """Mean cross-entropy of predicting a uniformly drawn transform of each image of `x: [n, ...]`."""
  t = jax.random.randint(key, (x.shape[0],), 0, N_TRANSFORMS)
  logits, _ = model.apply({"params": params}, apply_transforms(x, t))
  return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, t))
