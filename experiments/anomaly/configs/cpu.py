"""Two classes, one seed, all their training images: a CPU-sized run of the full setting."""

from . import Config


def get_config() -> Config:
  # A CPU epoch takes minutes: checkpoint each one.
  return Config(classes=(0, 1), seeds=(0,), epochs=2, test_limit=2000, checkpoint_every=1)
