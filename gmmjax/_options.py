"""The static options of an EM fit, validated once, before anything is traced."""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp

from . import _checks
from ._types import GMMParams, check_covariance_type

INITS = ("kmeans++", "kmeans", "random", "random_from_data")


def positive_int(value, name: str) -> int:
  if isinstance(value, bool) or not isinstance(value, int) or value < 1:
    raise ValueError(f"{name} must be a positive integer, got {value!r}")
  return value


@dataclasses.dataclass(frozen=True)
class EMOptions:
  """Shape-setting options of EM (static: each distinct value is a compile).

  Attributes:
    n_components: `k`, component slots.
    covariance_type: "full", "diag", "spherical" or "tied".
    max_iter: maximum EM iterations (sets the trace length).
    init: "kmeans++", "kmeans", "random" or "random_from_data".
    n_init: restarts run side by side; the best is kept.
    chunk_size: rows per chunk of a pass, or None for the default.
  """

  n_components: int
  covariance_type: str = "full"
  max_iter: int = 100
  init: str = "kmeans++"
  n_init: int = 1
  chunk_size: int | None = None

  def __post_init__(self):
    positive_int(self.n_components, "n_components")
    check_covariance_type(self.covariance_type)
    positive_int(self.max_iter, "max_iter")
    if self.init not in INITS:
      raise ValueError(f"init must be one of {INITS}, got {self.init!r}")
    positive_int(self.n_init, "n_init")
    if self.chunk_size is not None:
      positive_int(self.chunk_size, "chunk_size")


def check_fit_args(options: EMOptions, n_samples: int | None, n_features: int, tol, reg_covar,
                   init_params: GMMParams | None, dtype) -> GMMParams | None:
  """Checks the traced arguments of a fit against its options; returns
  `init_params` in `dtype`."""
  if n_samples is not None:
    _checks.n_components(options.n_components, n_samples)
  _checks.positive(tol, "tol", allow_zero=True)
  _checks.positive(reg_covar, "reg_covar", allow_zero=True)
  if init_params is None:
    return None
  _checks.params(init_params, n_features)
  if init_params.covariance_type != options.covariance_type or init_params.means.shape[0] != options.n_components:
    raise ValueError(
        f"init_params are {init_params.covariance_type!r} with {init_params.means.shape[0]} components, "
        f"but the fit asked for {options.covariance_type!r} with {options.n_components}"
    )
  return GMMParams(
      jnp.asarray(init_params.weights, dtype), jnp.asarray(init_params.means, dtype),
      jnp.asarray(init_params.precisions_cholesky, dtype), init_params.covariance_type,
  )
