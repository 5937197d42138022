"""Configurations of the mixture density network experiment: `get_config(name)` for tiny, cpu, full."""

import dataclasses
import importlib


@dataclasses.dataclass(frozen=True)
class Config:
  """MDN on the inverse of y = x + 0.3 sin(2 pi x) + noise, x ~ N(0.5, prior_sd^2).

  Attributes:
    n_train, n_test: sample sizes.
    noise, prior_sd: the data's noise and prior standard deviations.
    hidden: tanh MLP widths before the MDN head.
    n_components, covariance_type, min_scale: the `MDNHead`.
    steps, learning_rate: full-batch Adam steps.
    checkpoint_every: steps between checkpoints (the last step is always saved).
    seed: PRNG seed (data and initialisation).
  """

  n_train: int = 4000
  n_test: int = 4000
  noise: float = 0.05
  prior_sd: float = 0.25
  hidden: tuple[int, ...] = (64, 64)
  n_components: int = 5
  covariance_type: str = "diag"
  min_scale: float = 1e-3
  steps: int = 4000
  learning_rate: float = 3e-3
  checkpoint_every: int = 1000
  seed: int = 0


def get_config(name: str) -> Config:
  """The named configuration ("tiny", "cpu" or "full")."""
  return importlib.import_module(f"{__name__}.{name}").get_config()
