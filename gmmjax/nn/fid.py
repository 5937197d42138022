"""Frechet distance and label statistics from a Fashion-MNIST classifier trained here.

No downloaded network: `Classifier` is a small convnet trained on the training
split; its penultimate features give the Frechet distance between generated and
real test images (the FID recipe with a domain classifier), and its predicted
labels give the label entropy and class coverage of a generator.
"""

import functools
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from numpy.typing import ArrayLike

from ..train import make_epoch
from .networks import IMAGE_SHAPE


class Classifier(nn.Module):
  """Conv-conv-dense classifier; returns logits and penultimate features.

  Attributes:
    n_classes: number of classes.
    features: channels of the two strided convolutions.
    dense: feature width (the Frechet distance's dimension).
    image_shape: `(h, w, c)` of the images.
  """

  n_classes: int = 10
  features: tuple[int, int] = (32, 64)
  dense: int = 128
  image_shape: tuple[int, int, int] = IMAGE_SHAPE

  @nn.compact
  def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """`x: [n, h, w, c]` in [-1, 1] -> `(logits [n, c], features [n, dense])`."""
    h = x.reshape(x.shape[0], *self.image_shape)
    for f in self.features:
      h = nn.relu(nn.Conv(f, (3, 3), strides=(2, 2), padding="SAME")(h))
    feats = nn.relu(nn.Dense(self.dense)(h.reshape(h.shape[0], -1)))
    return nn.Dense(self.n_classes)(feats), feats


def train_classifier(key: jax.Array, images: jax.Array, labels: jax.Array, *, steps: int,
                     batch_size: int = 256, learning_rate: float = 1e-3,
                     model: Classifier = Classifier(), scan: bool | None = None) -> dict:
  """Trains `model` with Adam on `steps` mini-batches drawn with replacement: one
  `gmmjax.train.make_epoch` epoch.

  Args:
    key: PRNG key.
    images: `[n, h, w, c]` in [-1, 1] (on device).
    labels: `[n]` integer classes.
    steps: number of updates (static).
    scan: as in `make_epoch`: True one scanned program, False a Python loop of the
      jitted step (same keys, same result), None the scan except on CPU.

  Returns:
    The trained parameters.
  """
  k_init, k_steps = jax.random.split(key)
  params = model.init(k_init, images[:2])["params"]
  tx = optax.adam(learning_rate)

  def step(state, batch, _):
    p, s = state
    x, y = batch

    def loss_fn(p):
      logits, _ = model.apply({"params": p}, x)
      return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, y))

    loss, g = jax.value_and_grad(loss_fn)(p)
    u, s = tx.update(g, s, p)
    return (optax.apply_updates(p, u), s), {"loss": loss}

  epoch = make_epoch(step, batch_size=batch_size, num_steps=steps, sampling="replace", scan=scan)
  (params, _), _ = epoch((params, tx.init(params)), k_steps, 0, (images, labels))
  return params


@functools.partial(jax.jit, static_argnums=0)
def _apply(model: Classifier, params: dict, x: jax.Array) -> tuple[jax.Array, jax.Array]:
  # Module-level and keyed on the (hashable) module: one compilation per model and batch shape.
  return model.apply({"params": params}, x)


def classify(params: dict, images: jax.Array, *, model: Classifier = Classifier(),
             batch_size: int = 2000) -> tuple[np.ndarray, np.ndarray]:
  """`(probabilities [n, c], features [n, f])` as float64 numpy arrays, in batches."""
  probs, feats = [], []
  for i in range(0, images.shape[0], batch_size):
    logits, f = _apply(model, params, images[i : i + batch_size])
    probs.append(np.asarray(jax.nn.softmax(logits, axis=-1), np.float64))
    feats.append(np.asarray(f, np.float64))
  return np.concatenate(probs), np.concatenate(feats)


def _sqrt_psd(a: np.ndarray) -> np.ndarray:
  w, v = np.linalg.eigh(0.5 * (a + a.T))
  return (v * np.sqrt(np.maximum(w, 0))[None, :]) @ v.T


def frechet_distance(mu1: ArrayLike, cov1: ArrayLike, mu2: ArrayLike, cov2: ArrayLike) -> float:
  """Frechet distance between N(mu1, cov1) and N(mu2, cov2).

  `||mu1 - mu2||^2 + tr(C1 + C2 - 2 (C1^1/2 C2 C1^1/2)^1/2)`, with the matrix
  square roots of symmetric PSD matrices by eigendecomposition (no complex
  parts from round-off, unlike a general `sqrtm`).
  """
  mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
  cov1, cov2 = np.asarray(cov1, np.float64), np.asarray(cov2, np.float64)
  s1 = _sqrt_psd(cov1)
  w = np.linalg.eigvalsh(s1 @ cov2 @ s1)
  tr_cross = np.sum(np.sqrt(np.maximum(w, 0)))
  return float(np.sum((mu1 - mu2) ** 2) + np.trace(cov1) + np.trace(cov2) - 2 * tr_cross)


def frechet_distance_of_features(f1: ArrayLike, f2: ArrayLike) -> float:
  """Frechet distance between Gaussians fitted to two feature sets `[n, f]`, `[m, f]`."""
  f1, f2 = np.asarray(f1, np.float64), np.asarray(f2, np.float64)
  return frechet_distance(f1.mean(0), np.cov(f1, rowvar=False), f2.mean(0), np.cov(f2, rowvar=False))


class LabelStats(NamedTuple):
  """Classifier-label statistics of a sample.

  Attributes:
    mean_entropy: mean per-image predictive entropy (nats; low = confident, recognisable images).
    marginal_entropy: entropy of the mean prediction (log 10 = all classes equally).
    coverage: number of classes that are the argmax of at least `min_share` of the images.
    inception_score: `exp(marginal_entropy - mean_entropy)` with this classifier.
    class_shares: `[c]` fraction of images per predicted class.
  """

  mean_entropy: float
  marginal_entropy: float
  coverage: int
  inception_score: float
  class_shares: np.ndarray


def _entropy(p: np.ndarray) -> np.ndarray:
  return -np.sum(np.where(p > 0, p * np.log(np.where(p > 0, p, 1)), 0), axis=-1)


def label_stats(probs: ArrayLike, min_share: float = 0.01) -> LabelStats:
  """`LabelStats` of predicted class probabilities `[n, c]`."""
  probs = np.asarray(probs, np.float64)
  if probs.ndim != 2:
    raise ValueError(f"probs must have shape [n, c], got {probs.shape}")
  mean_ent = float(_entropy(probs).mean())
  marg_ent = float(_entropy(probs.mean(0)))
  shares = np.bincount(probs.argmax(-1), minlength=probs.shape[1]) / probs.shape[0]
  return LabelStats(mean_ent, marg_ent, int(np.sum(shares >= min_share)),
                    float(np.exp(marg_ent - mean_ent)), shares)
