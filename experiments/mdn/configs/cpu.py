"""Same as full: the problem is CPU-sized."""

from . import Config


def get_config() -> Config:
  return Config()
