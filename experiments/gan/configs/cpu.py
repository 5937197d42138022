"""A CPU-sized run: smaller networks and few steps, to time a step and check the pipeline."""

from . import Config


def get_config() -> Config:
  return Config(steps=200, log_every=50, classifier_steps=300, n_eval=2000, g_features=(64, 32),
                d_features=(32, 64))
