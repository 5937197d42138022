"""Smoke test: a few hundred images, small networks, two seeds, two epochs per phase (seconds)."""

from .base import Config


def get_config() -> Config:
  return Config(
      dataset="mnist_5k",
      stride=20,  # 250 images, 25 of each digit.
      hidden=(32,),
      latent_dim=4,
      n_components=3,
      batch_size=64,
      pretrain_epochs=2,
      epochs=2,
      lr_decay_epochs=1,
      seeds=(0, 1),
      gmm_n_init=1,
      gmm_max_iter=20,
      checkpoint_every=1,
      samples_per_component=3,
      n_reconstructions=4,
      progress=False,
  )
