"""Self-supervised features for one-class detection: which geometric transform was applied?

A classifier trained on normal images only to tell geometric transforms apart
(the 8 symmetries of the square: 4 quarter turns, each with or without a
horizontal flip; optionally each also shifted up, down, left or right) must
learn what the normal class looks like the right way up (the idea of GEOM,
Golan & El-Yaniv 2018). Its penultimate features are a second learned
representation, next to an autoencoder's code, on which a GMM is fitted; the
one-class experiment (`experiments/anomaly/`) combines the two GMMs' scores.
"""

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

N_DIHEDRAL = 8


def n_transforms(shift: int) -> int:
  """Number of transforms of `all_transforms(x, shift)`: 8, or 40 with shifts."""
  return N_DIHEDRAL * (5 if shift else 1)


def dihedral_transforms(x: jax.Array) -> jax.Array:
  """`x: [n, h, h, c]` square images -> `[8, n, h, h, c]`.

  Transform `t` rotates by `t % 4` quarter turns (counter-clockwise) the image,
  horizontally flipped first when `t >= 4`; transform 0 is the identity.
  """
  flipped = x[:, :, ::-1]
  return jnp.stack([jnp.rot90(v, r, axes=(1, 2)) for v in (x, flipped) for r in range(4)])


def all_transforms(x: jax.Array, shift: int = 0) -> jax.Array:
  """`x: [n, h, h, c]` -> `[n_transforms(shift), n, h, h, c]`.

  The 8 dihedral transforms; with `shift > 0`, followed by the same 8 shifted
  cyclically by `shift` pixels down, up, right and left (transforms 8-15, 16-23,
  24-31, 32-39).
  """
  d = dihedral_transforms(x)
  if not shift:
    return d
  offsets = ((shift, 0), (-shift, 0), (0, shift), (0, -shift))
  return jnp.concatenate([d] + [jnp.roll(d, o, axis=(2, 3)) for o in offsets])


def _pixel_sources(h: int, shift: int) -> jax.Array:
  """`[n_transforms(shift), h * h]`: row `t` lists, for each output pixel, the input pixel it copies."""
  with jax.ensure_compile_time_eval():
    index_image = jnp.arange(h * h).reshape(1, h, h, 1)
    return all_transforms(index_image, shift).reshape(-1, h * h)


def apply_transforms(x: jax.Array, t: jax.Array, shift: int = 0) -> jax.Array:
  """`x: [n, h, h, c]`, `t: [n]` integers in [0, n_transforms(shift)) -> `[n, h, h, c]`,
  image i under transform t[i].

  Every transform permutes pixels, so each image is one gather through its
  transform's row of a constant index table (no image is transformed 40 ways).
  """
  n, h, _, c = x.shape
  sources = _pixel_sources(h, shift)[t]
  return jnp.take_along_axis(x.reshape(n, h * h, c), sources[:, :, None], axis=1).reshape(x.shape)


class TransformClassifier(nn.Module):
  """MLP from an image to logits over the transforms, and its penultimate features.

  Attributes:
    hidden: widths of the hidden layers; the last one is the feature size.
    n_transforms: number of classes, `n_transforms(shift)`.
  """

  hidden: Sequence[int] = (1024, 64)
  n_transforms: int = N_DIHEDRAL

  @nn.compact
  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """`x: [n, h, w, c]` -> `(logits [n, n_transforms], features [n, hidden[-1]])`."""
    h = x.reshape(x.shape[0], -1)
    for width in self.hidden:
      h = nn.relu(nn.Dense(width)(h))
    return nn.Dense(self.n_transforms)(h), h


def transform_loss(
    model: TransformClassifier, params, x: jax.Array, key: jax.Array, shift: int = 0
) -> jax.Array:
  """Mean cross-entropy of predicting a uniformly drawn transform of each image of `x: [n, ...]`.

  `shift` (static) must be the one `model.n_transforms` was built for.
  """
  if model.n_transforms != n_transforms(shift):
    raise ValueError(f"model has {model.n_transforms} classes; shift={shift} gives {n_transforms(shift)} transforms")
  t = jax.random.randint(key, (x.shape[0],), 0, model.n_transforms)
  logits, _ = model.apply({"params": params}, apply_transforms(x, t, shift))
  return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, t))
