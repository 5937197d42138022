"""Smoke test: few samples and steps."""

from . import Config


def get_config() -> Config:
  return Config(n_train=500, n_test=500, hidden=(16,), n_components=3, steps=100)
