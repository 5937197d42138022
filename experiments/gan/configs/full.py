"""Both GANs, 6000 steps of batch 128 on all 60000 training images (one GPU)."""

from . import Config


def get_config() -> Config:
  return Config()
