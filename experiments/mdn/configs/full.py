"""The reported run (small enough for a CPU)."""

from . import Config


def get_config() -> Config:
  return Config()
