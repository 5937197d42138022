"""The benchmark: 10 classes x 3 seeds, all training images, the whole test set (one GPU)."""

from . import Config


def get_config() -> Config:
  return Config()
