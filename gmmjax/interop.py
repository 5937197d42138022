"""Conversions between `GMMParams` and other libraries' Gaussian mixtures.

* distrax: `to_distrax` / `from_distrax` (`distrax.MixtureSameFamily`).
* TensorFlow Probability on JAX: `to_tfp` / `from_tfp`
  (`tfp.substrates.jax.distributions.MixtureSameFamily`).
* scikit-learn: `to_sklearn` / `from_sklearn` (a fitted
  `sklearn.mixture.GaussianMixture`, or `gmmjax.sklearn.GaussianMixture`).

Each library is imported only when its functions are called; a missing one
raises an `ImportError` that says what to install (`pip install
'gmmjax[interop]'` installs all three).

distrax and TFP broadcast by implicit rank promotion inside their own
methods: where `jax_numpy_rank_promotion` is set to "raise", call the returned
distribution's methods (`log_prob`, `sample`, ...) inside
`jax.numpy_rank_promotion("allow")`.

Full and tied components become multivariate normals with a lower-triangular
scale `L` (`L L^T = covariance`; from the precision factor `U` of
`GMMParams`, `L = U^{-T}`, so no covariance is ever factorised); diag and
spherical components become diagonal normals with scale `1 / U`.
"""

from __future__ import annotations

import numpy as np
import jax
import jax.numpy as jnp
from jax.scipy.linalg import solve_triangular

from . import _checks
from ._types import COVARIANCE_TYPES, GMMParams

_INSTALL = "pip install 'gmmjax[interop]'"


def _import_distrax():
  try:
    import distrax
  except Exception as err:
    raise ImportError(f"this conversion needs distrax: {_INSTALL} (or pip install distrax)") from err
  return distrax


def _import_tfd():
  try:
    from tensorflow_probability.substrates import jax as tfp
  except Exception as err:
    # TFP releases older than the installed jax fail with AttributeError, not
    # ImportError; either way the fix is a TFP that matches jax.
    raise ImportError(
        "this conversion needs TensorFlow Probability's JAX substrate, built for the installed jax: "
        f"{_INSTALL} (or pip install tfp-nightly)"
    ) from err
  return tfp.distributions


def _import_sklearn_mixture():
  try:
    from sklearn import mixture
  except Exception as err:
    raise ImportError(f"this conversion needs scikit-learn: {_INSTALL} (or pip install scikit-learn)") from err
  return mixture


# -- GMMParams -> loc/scale ---------------------------------------------------


def _scale(params: GMMParams) -> tuple[str, jax.Array]:
  """("diag", `[k, d]` stddevs) or ("tri", `[k, d, d]` lower-triangular scales)."""
  k, d = params.means.shape
  u = params.precisions_cholesky
  if params.covariance_type == "diag":
    return "diag", 1.0 / u
  if params.covariance_type == "spherical":
    return "diag", jnp.broadcast_to((1.0 / u)[:, None], (k, d))
  eye = jnp.broadcast_to(jnp.eye(d, dtype=u.dtype), u.shape)
  # U U^T = P = inv(Sigma)  =>  Sigma = U^{-T} U^{-1}, and U^{-T} is lower.
  scale = jnp.swapaxes(solve_triangular(u, eye, lower=False), -1, -2)
  if params.covariance_type == "tied":
    scale = jnp.broadcast_to(scale[None], (k, d, d))
  return "tri", scale


def _checked(params: GMMParams) -> GMMParams:
  _checks.params(params)
  if params.means.ndim != 2:
    raise ValueError(f"expected one mixture with means [k, d], got means of shape {params.means.shape}")
  return params


def to_distrax(params: GMMParams):
  """The mixture as a `distrax.MixtureSameFamily`.

  Args:
    params: `GMMParams` with `means [k, d]`.

  Returns:
    `MixtureSameFamily(Categorical(probs=weights), MultivariateNormalTri or
    MultivariateNormalDiag)`, whose `log_prob` equals `gmmjax.log_prob`.
  """
  distrax = _import_distrax()
  params = _checked(params)
  kind, scale = _scale(params)
  if kind == "diag":
    components = distrax.MultivariateNormalDiag(loc=params.means, scale_diag=scale)
  else:
    components = distrax.MultivariateNormalTri(loc=params.means, scale_tri=scale, is_lower=True)
  return distrax.MixtureSameFamily(
      mixture_distribution=distrax.Categorical(probs=params.weights),
      components_distribution=components,
  )


def to_tfp(params: GMMParams):
  """The mixture as a TFP-on-JAX `MixtureSameFamily`.

  Args:
    params: `GMMParams` with `means [k, d]`.

  Returns:
    `tfp.substrates.jax.distributions.MixtureSameFamily` of a `Categorical`
    and `MultivariateNormalTriL` (full, tied) or `MultivariateNormalDiag`
    (diag, spherical) components.
  """
  tfd = _import_tfd()
  params = _checked(params)
  kind, scale = _scale(params)
  if kind == "diag":
    components = tfd.MultivariateNormalDiag(loc=params.means, scale_diag=scale)
  else:
    components = tfd.MultivariateNormalTriL(loc=params.means, scale_tril=scale)
  return tfd.MixtureSameFamily(
      mixture_distribution=tfd.Categorical(probs=params.weights),
      components_distribution=components,
  )


# -- distributions -> GMMParams -----------------------------------------------


def _is_concrete(*arrays) -> bool:
  return not any(isinstance(a, jax.core.Tracer) for a in arrays)


def _require(ok, message: str) -> None:
  if not bool(ok):
    raise ValueError(message)


def _from_moments(weights, means, variances, covariances, covariance_type, inferred, rtol) -> GMMParams:
  """Builds `GMMParams` of `covariance_type` from `[k, d]` variances and (for
  full components, else None) `[k, d, d]` covariances.

  A narrower type than the distribution's (tied from full, diag from full,
  spherical from either) is allowed only when the values have that structure;
  that is checked on concrete arrays.
  """
  if covariance_type is None:
    covariance_type = inferred
  if covariance_type not in COVARIANCE_TYPES:
    raise ValueError(f"covariance_type must be one of {COVARIANCE_TYPES} or None, got {covariance_type!r}")
  k, d = means.shape
  check = _is_concrete(variances) and (covariances is None or _is_concrete(covariances))
  if covariances is None:
    covariances = jax.vmap(jnp.diag)(variances)
  elif check and covariance_type in ("diag", "spherical"):
    off = covariances - jax.vmap(jnp.diag)(variances)
    _require(
        jnp.all(jnp.abs(off) <= rtol * jnp.max(jnp.abs(covariances))),
        f"the components have correlated features; they cannot be converted to {covariance_type!r}",
    )
  if covariance_type == "full":
    cov = covariances
  elif covariance_type == "tied":
    cov = covariances[0]
    if check:
      _require(
          jnp.allclose(covariances, cov[None], rtol=rtol, atol=0),
          "the components have different covariances; they cannot be converted to 'tied'",
      )
  elif covariance_type == "diag":
    cov = variances
  else:
    cov = variances[:, 0]
    if check:
      _require(
          jnp.allclose(variances, cov[:, None], rtol=rtol, atol=0),
          "the components' variances differ between features; they cannot be converted to 'spherical'",
      )
  return GMMParams.from_covariances(weights, means, cov, covariance_type)


def _mixture_parts(dist, expected: str):
  """`(mixing, components, k, d)` of a `MixtureSameFamily` of multivariate normals."""
  mixing = getattr(dist, "mixture_distribution", None)
  components = getattr(dist, "components_distribution", None)
  if mixing is None or components is None:
    raise ValueError(f"expected a {expected}.MixtureSameFamily, got {type(dist).__name__}")
  batch, event = tuple(components.batch_shape), tuple(components.event_shape)
  if len(batch) != 1 or len(event) != 1:
    raise ValueError(
        "expected components with batch shape [k] and event shape [d], got batch shape "
        f"{batch} and event shape {event}"
    )
  return mixing, components, batch[0], event[0]


def from_distrax(dist, covariance_type: str | None = None, rtol: float = 1e-6) -> GMMParams:
  """`GMMParams` from a `distrax.MixtureSameFamily` of multivariate normals.

  Args:
    dist: mixture with a `Categorical` over `k` components and multivariate
      normal components of batch shape `[k]`, event shape `[d]`.
    covariance_type: type of the result; None gives "diag" for diagonal
      components and "full" otherwise. "tied" and "spherical" (and "diag" from
      full components) need the structure to hold to `rtol`.
    rtol: relative tolerance of those structure checks.

  Returns:
    `GMMParams` with the same log-density.

  Raises:
    ValueError: if `dist` is not such a mixture, or lacks the requested structure.
  """
  distrax = _import_distrax()
  _, components, _, _ = _mixture_parts(dist, "distrax")
  diagonal = isinstance(components, distrax.MultivariateNormalDiag)
  return _from_distribution(dist, "distrax", diagonal, covariance_type, rtol)


def from_tfp(dist, covariance_type: str | None = None, rtol: float = 1e-6) -> GMMParams:
  """`GMMParams` from a TFP-on-JAX `MixtureSameFamily` of multivariate normals.

  Args:
    dist: mixture with a `Categorical` over `k` components and multivariate
      normal components (`MultivariateNormalTriL`, `...Diag`,
      `...FullCovariance`, ...) of batch shape `[k]`, event shape `[d]`.
    covariance_type: as in `from_distrax`.
    rtol: relative tolerance of the structure checks.

  Returns:
    `GMMParams` with the same log-density.

  Raises:
    ValueError: if `dist` is not such a mixture, or lacks the requested structure.
  """
  tfd = _import_tfd()
  _, components, _, _ = _mixture_parts(dist, "tfp")
  diagonal = isinstance(components, tfd.MultivariateNormalDiag)
  return _from_distribution(dist, "tfp", diagonal, covariance_type, rtol)


def _from_distribution(dist, expected, diagonal, covariance_type, rtol):
  mixing, components, k, d = _mixture_parts(dist, expected)
  # distrax and TFP broadcast by rank promotion internally; allow it for their
  # code only, so callers running with jax_numpy_rank_promotion="raise" can convert.
  with jax.numpy_rank_promotion("allow"):
    probs = mixing.probs_parameter() if hasattr(mixing, "probs_parameter") else mixing.probs
    means = jnp.asarray(components.mean())
    variances = jnp.asarray(components.variance())
    covariances = None if diagonal else jnp.asarray(components.covariance())
  _require(means.shape == (k, d), f"expected component means of shape {(k, d)}, got {means.shape}")
  return _from_moments(
      jnp.asarray(probs, means.dtype), means, variances, covariances,
      covariance_type, "diag" if diagonal else "full", rtol,
  )


# -- scikit-learn -------------------------------------------------------------


def from_sklearn(estimator) -> GMMParams:
  """`GMMParams` of a fitted scikit-learn style Gaussian mixture.

  Args:
    estimator: a fitted `sklearn.mixture.GaussianMixture` (or
      `gmmjax.sklearn.GaussianMixture`, or anything with `weights_`, `means_`,
      `precisions_cholesky_` and `covariance_type`).

  Returns:
    `GMMParams` in JAX's default float dtype (float64 only where JAX's 64-bit
    mode is on).

  Raises:
    ValueError: if the estimator is not fitted.
  """
  missing = [a for a in ("weights_", "means_", "precisions_cholesky_") if not hasattr(estimator, a)]
  if missing or not hasattr(estimator, "covariance_type"):
    raise ValueError(
        f"expected a fitted Gaussian mixture estimator; {type(estimator).__name__} lacks "
        f"{missing or ['covariance_type']}"
    )
  means = jnp.asarray(np.asarray(estimator.means_, dtype=float))
  params = GMMParams(
      weights=jnp.asarray(np.asarray(estimator.weights_, dtype=float), means.dtype),
      means=means,
      precisions_cholesky=jnp.asarray(np.asarray(estimator.precisions_cholesky_, dtype=float), means.dtype),
      covariance_type=estimator.covariance_type,
  )
  return _checks.params(params)


def to_sklearn(params: GMMParams, **kwargs):
  """A `sklearn.mixture.GaussianMixture` that holds `params` as if fitted.

  Its fitted attributes (`weights_`, `means_`, `covariances_`, `precisions_`,
  `precisions_cholesky_`) are set, so `predict`, `score_samples`, `sample`,
  `bic`, ... work at once; its `weights_init`, `means_init` and
  `precisions_init` are `params` too, so calling `fit` runs scikit-learn's EM
  from them.

  Args:
    params: `GMMParams` with `means [k, d]`.
    **kwargs: other constructor arguments (`tol`, `max_iter`, ...).

  Returns:
    `sklearn.mixture.GaussianMixture` (float64 attributes).
  """
  mixture = _import_sklearn_mixture()
  params = _checked(params)
  weights = np.asarray(params.weights, dtype=np.float64)
  weights = weights / weights.sum()  # scikit-learn checks the sum to 1e-8
  means = np.asarray(params.means, dtype=np.float64)
  prec_chol = np.asarray(params.precisions_cholesky, dtype=np.float64)
  if params.covariance_type in ("full", "tied"):
    precisions = prec_chol @ np.swapaxes(prec_chol, -1, -2)
    inv = np.linalg.inv(prec_chol)
    covariances = np.swapaxes(inv, -1, -2) @ inv
  else:
    precisions = prec_chol**2
    covariances = 1.0 / precisions
  gm = mixture.GaussianMixture(
      n_components=means.shape[0],
      covariance_type=params.covariance_type,
      weights_init=weights,
      means_init=means,
      precisions_init=precisions,
      **kwargs,
  )
  gm.weights_ = weights
  gm.means_ = means
  gm.covariances_ = covariances
  gm.precisions_ = precisions
  gm.precisions_cholesky_ = prec_chol
  gm.n_features_in_ = means.shape[1]
  return gm
