"""Parameter, statistic and result containers.

All containers are immutable pytrees. `covariance_type` is static metadata (not a
leaf), so it survives `jit`, `vmap` and `grad` and selects code paths at trace time.
"""

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from . import _linalg

COVARIANCE_TYPES = ("full", "diag", "spherical", "tied")


def check_covariance_type(covariance_type: str) -> None:
  if covariance_type not in COVARIANCE_TYPES:
    raise ValueError(
        f"covariance_type must be one of {COVARIANCE_TYPES}, got {covariance_type!r}"
    )


def _pytree_dataclass(cls):
  """Frozen dataclass whose `covariance_type` field is static pytree metadata."""
  cls = dataclasses.dataclass(frozen=True)(cls)
  fields = [f.name for f in dataclasses.fields(cls)]
  data = [f for f in fields if f != "covariance_type"]
  return jax.tree_util.register_dataclass(
      cls, data_fields=data, meta_fields=["covariance_type"]
  )


@_pytree_dataclass
class GMMParams:
  """Parameters of a Gaussian mixture, in scikit-learn's layout.

  Attributes:
    weights: `[k]` mixing proportions, summing to one.
    means: `[k, d]` component means.
    precisions_cholesky: Cholesky factor `U` of each precision matrix
      (`precision = U @ U.T`, `U` upper triangular, as scikit-learn's
      `precisions_cholesky_`). Shape by `covariance_type`: full `[k, d, d]`,
      tied `[d, d]`, diag `[k, d]`, spherical `[k]`.
    covariance_type: one of "full", "diag", "spherical", "tied" (static).
  """

  weights: jax.Array
  means: jax.Array
  precisions_cholesky: jax.Array
  covariance_type: str = "full"

  @classmethod
  def from_covariances(
      cls,
      weights: ArrayLike,
      means: ArrayLike,
      covariances: ArrayLike,
      covariance_type: str = "full",
  ) -> "GMMParams":
    """Builds parameters from covariances (scikit-learn's `covariances_` shapes)."""
    check_covariance_type(covariance_type)
    means = jnp.asarray(means)
    return cls(
        weights=jnp.asarray(weights, means.dtype),
        means=means,
        precisions_cholesky=_linalg.precision_cholesky(
            jnp.asarray(covariances, means.dtype), covariance_type
        ),
        covariance_type=covariance_type,
    )

  @classmethod
  def from_precisions(
      cls,
      weights: ArrayLike,
      means: ArrayLike,
      precisions: ArrayLike,
      covariance_type: str = "full",
  ) -> "GMMParams":
    """Builds parameters from precision matrices (scikit-learn's `precisions_`)."""
    check_covariance_type(covariance_type)
    means = jnp.asarray(means)
    return cls(
        weights=jnp.asarray(weights, means.dtype),
        means=means,
        precisions_cholesky=_linalg.cholesky_of_precisions(
            jnp.asarray(precisions, means.dtype), covariance_type
        ),
        covariance_type=covariance_type,
    )

  @property
  def n_components(self) -> int:
    return self.means.shape[-2]

  @property
  def n_features(self) -> int:
    return self.means.shape[-1]

  @property
  def covariances(self) -> jax.Array:
    """Covariances in scikit-learn's `covariances_` shape for the type."""
    return _linalg.covariances_from_cholesky(
        self.precisions_cholesky, self.covariance_type
    )

  @property
  def precisions(self) -> jax.Array:
    """Precision matrices in scikit-learn's `precisions_` shape for the type."""
    return _linalg.precisions_from_cholesky(
        self.precisions_cholesky, self.covariance_type
    )


class FitResult(NamedTuple):
  """Outcome of `gmmjax.fit`.

  Attributes:
    params: the fitted `GMMParams`.
    log_likelihood: `[]` mean (weighted) log-likelihood per sample from the last
      E-step, i.e. of the parameters before the final M-step; this is
      scikit-learn's `lower_bound_`.
    n_iter: `[]` EM iterations run.
    converged: `[]` whether the change in `log_likelihood` fell below `tol`.
    log_likelihood_trace: `[max_iter]` `log_likelihood` after each iteration;
      entries from `n_iter` on are NaN.
    failed: `[]` whether an M-step met an ill-defined covariance (a
      collapsed component with too small a `reg_covar`); the fit then stopped
      at the last good parameters. An eager `fit` raises instead.
  """

  params: GMMParams
  log_likelihood: jax.Array
  n_iter: jax.Array
  converged: jax.Array
  log_likelihood_trace: jax.Array
  failed: jax.Array
