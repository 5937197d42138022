"""Smoke test: two classes, one seed, a few hundred images, small MLP, one epoch."""

from . import Config


def get_config() -> Config:
  return Config(classes=(0, 7), seeds=(0,), train_per_class=256, test_limit=500, architecture="mlp",
                latent_dim=4, n_components=2, encoder_hidden=(32,), decoder_hidden=(32,), epochs=2,
                batch_size=64, transform_hidden=(32, 8), gmm_components=2, gmm_n_init=1, eval_chunk=256)
