"""The whole benchmark (10 classes x 3 seeds, all images) with MLP networks: minutes on a CPU."""

from . import Config


def get_config() -> Config:
  # Chosen on seed 0 (README): a 32-d code beats 16, and 16 components in the
  # second detector's GMM beat 4; a wider MLP, 50 epochs or dropping DAGMM's
  # energy term did not help. The transform classifier's defaults (a (1024, 64)
  # MLP, 40 transforms with 6-pixel shifts) were chosen on seeds 0 and 1.
  return Config(architecture="mlp", latent_dim=32, gmm_components=16)
