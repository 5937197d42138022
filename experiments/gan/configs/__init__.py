"""Configurations of the GAN comparison: `get_config(name)` for tiny, cpu, cpu_long, full."""

import dataclasses
import importlib


@dataclasses.dataclass(frozen=True)
class Config:
  """Mixture-latent (DeLiGAN) GAN against the same GAN with a N(0, I) latent, on Fashion-MNIST.

  Attributes:
    latents: the GANs to train, by latent ("mixture", "gaussian").
    latent_dim, n_components: latent size and mixture components.
    g_features, d_features: channels of generator (7x7, 14x14) and discriminator convs.
    steps, batch_size, learning_rate, beta1: Adam training of both players, one D and one G step each.
    scale_weight: weight of DeLiGAN's scale regulariser.
    log_every: steps per scanned chunk (one host sync and one metrics row per chunk).
    checkpoint_every: steps between checkpoints, rounded up to whole chunks (the last step is always
      saved).
    classifier_steps, classifier_batch: training of the evaluation classifier.
    n_eval: generated images (and real test images) for the Frechet distance and label statistics.
    train_limit: first training images used (None: all 60000).
    seed: PRNG seed.
    data_dir: folder of the Fashion-MNIST IDX files (None: $GMMJAX_FASHION_MNIST_DIR or Debian's).
  """

  latents: tuple[str, ...] = ("mixture", "gaussian")
  latent_dim: int = 64
  n_components: int = 50
  g_features: tuple[int, int] = (128, 64)
  d_features: tuple[int, int] = (64, 128)
  steps: int = 6000
  batch_size: int = 128
  learning_rate: float = 2e-4
  beta1: float = 0.5
  scale_weight: float = 1.0
  log_every: int = 500
  checkpoint_every: int = 2000
  classifier_steps: int = 3000
  classifier_batch: int = 256
  n_eval: int = 10000
  train_limit: int | None = None
  seed: int = 0
  data_dir: str | None = None


def get_config(name: str) -> Config:
  """The named configuration ("tiny", "cpu", "cpu_long" or "full")."""
  return importlib.import_module(f"{__name__}.{name}").get_config()
