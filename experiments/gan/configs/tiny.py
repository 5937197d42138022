"""Smoke test: tiny networks, a handful of steps, a few hundred images."""

from . import Config


def get_config() -> Config:
  return Config(latent_dim=8, n_components=5, g_features=(16, 8), d_features=(8, 16), steps=20,
                batch_size=32, log_every=10, classifier_steps=20, classifier_batch=64, n_eval=256,
                train_limit=1024)
