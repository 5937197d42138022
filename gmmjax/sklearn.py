"""A scikit-learn estimator backed by gmmjax's compiled EM.

`GaussianMixture` takes the constructor arguments of
`sklearn.mixture.GaussianMixture`, has the same fitted attributes and methods,
adds `sample_weight` to `fit`, and works in `Pipeline`, `GridSearchCV` and
anything else that speaks the estimator API:

    from gmmjax.sklearn import GaussianMixture

    gm = GaussianMixture(n_components=3, covariance_type="diag", random_state=0)
    labels = gm.fit(X, sample_weight=w).predict(X)

Numerics follow the input: float32 data is fitted in float32, float64 (and
integer) data in float64. JAX's 64-bit mode is switched on only for the
duration of each call (`jax.enable_x64`, a thread-local context), never
globally, so the caller's own JAX code keeps its configuration.

From the same starting parameters (`weights_init`, `means_init` and
`precisions_init` all given) the EM iterations, stopping rule, fitted
attributes, `n_iter_`, `lower_bound_` and `converged_` are those of
scikit-learn's class. Random initialisations draw from JAX keys derived from
`random_state`, so they differ from scikit-learn's draws; "k-means++" and
"random_from_data" also start from the M-step of every point assigned to its
nearest seed, rather than from point masses with `reg_covar` covariances.
"""

from __future__ import annotations

import math
import warnings
from numbers import Integral, Real

import jax
import jax.numpy as jnp
import numpy as np

try:
  from sklearn.base import BaseEstimator, DensityMixin
  from sklearn.exceptions import ConvergenceWarning
  from sklearn.utils import check_random_state
  from sklearn.utils._param_validation import Interval, StrOptions
  from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data
except ImportError as err:  # pragma: no cover - depends on the environment
  raise ImportError(
      "gmmjax.sklearn needs scikit-learn: pip install 'gmmjax[interop]' (or pip install scikit-learn)"
  ) from err

from . import _em, _select, variational
from ._logprob import e_step, log_prob
from ._options import EMOptions
from ._sample import sample as _sample
from ._types import GMMParams

# scikit-learn's names for the initialisations -> gmmjax's.
INIT_NAMES = {
    "kmeans": "kmeans",
    "k-means++": "kmeans++",
    "random": "random",
    "random_from_data": "random_from_data",
}

_NOT_CONVERGED = (
    "Best performing initialization did not converge. Try different init parameters, "
    "or increase max_iter, tol, or check for degenerate data."
)


def _x64():
  """Scoped 64-bit mode: float64 inputs stay float64, float32 stay float32."""
  return jax.enable_x64(True)


def _key(random_state) -> jax.Array:
  """A JAX key drawn from a scikit-learn `random_state` (None, int, RandomState)."""
  rng = check_random_state(random_state)
  return jax.random.key(int(rng.randint(np.iinfo(np.int32).max)))


def _check_weights_init(weights, n_components, dtype):
  weights = np.asarray(weights, dtype=dtype)
  if weights.shape != (n_components,):
    raise ValueError(f"The parameter 'weights' should have the shape of {(n_components,)}, but got {weights.shape}")
  if not np.all(np.isfinite(weights)) or np.any(weights < 0) or np.any(weights > 1):
    raise ValueError(f"The parameter 'weights' should be in the range [0, 1], got {weights}")
  atol = 1e-6 if dtype == np.float32 else 1e-8
  if not abs(1.0 - float(np.sum(weights))) <= atol:
    raise ValueError(f"The parameter 'weights' should be normalized, but got sum(weights) = {np.sum(weights):.5f}")
  return weights


def _check_means_init(means, n_components, n_features, dtype):
  means = np.asarray(means, dtype=dtype)
  if means.shape != (n_components, n_features):
    raise ValueError(
        f"The parameter 'means' should have the shape of {(n_components, n_features)}, but got {means.shape}"
    )
  if not np.all(np.isfinite(means)):
    raise ValueError("The parameter 'means' contains NaN or infinity")
  return means


def _check_precisions_init(precisions, covariance_type, n_components, n_features, dtype):
  precisions = np.asarray(precisions, dtype=dtype)
  shape = {
      "full": (n_components, n_features, n_features),
      "tied": (n_features, n_features),
      "diag": (n_components, n_features),
      "spherical": (n_components,),
  }[covariance_type]
  if precisions.shape != shape:
    raise ValueError(
        f"The parameter '{covariance_type} precision' should have the shape of {shape}, "
        f"but got {precisions.shape}"
    )
  if not np.all(np.isfinite(precisions)):
    raise ValueError(f"'{covariance_type} precision' contains NaN or infinity")
  if covariance_type in ("full", "tied"):
    mats = precisions.reshape((-1, n_features, n_features))
    symmetric = np.allclose(mats, np.swapaxes(mats, -1, -2))
    if not symmetric or not np.all(np.linalg.eigvalsh(mats) > 0):
      raise ValueError(f"'{covariance_type} precision' should be symmetric, positive-definite")
  elif np.any(precisions <= 0):
    raise ValueError(f"'{covariance_type} precision' should be positive")
  return precisions


class _Mixture(DensityMixin, BaseEstimator):
  """What the mixture estimators share: input checks, fitted-model use, sampling."""

  def fit(self, X, y=None, sample_weight=None):
    """Estimates the parameters.

    Args:
      X: `[n, d]` training data.
      y: ignored.
      sample_weight: optional `[n]` non-negative weights; an integer weight
        counts as that many copies of the row.

    Returns:
      The fitted estimator.
    """
    self.fit_predict(X, y, sample_weight=sample_weight)
    return self

  def _fit_input(self, X, sample_weight):
    """Validated `(X, w)` for a fit (`w` None without sample weights)."""
    self._validate_params()
    X = validate_data(self, X, dtype=[np.float64, np.float32], ensure_min_samples=2)
    n = X.shape[0]
    if n < self.n_components:
      raise ValueError(
          f"Expected n_samples >= n_components but got n_components = {self.n_components}, n_samples = {n}"
      )
    w = None
    if sample_weight is not None:
      w = _check_sample_weight(sample_weight, X, dtype=X.dtype, ensure_non_negative=True)
      if not np.sum(w) > 0:
        raise ValueError("sample_weight must have a positive sum")
    return X, w

  def _finish(self, n_iter, lower_bound, trace, converged) -> None:
    self.n_iter_ = n_iter
    self.lower_bound_ = lower_bound
    self.lower_bounds_ = list(trace[:n_iter])
    self.converged_ = converged
    self._print_verbose(trace[:n_iter], converged, lower_bound)
    if not converged and self.max_iter > 0:
      warnings.warn(_NOT_CONVERGED, ConvergenceWarning)

  def _print_verbose(self, trace, converged, lower_bound) -> None:
    if not self.verbose:
      return
    print("Initialization 0")
    if self.verbose >= 2:
      changes = np.diff(np.concatenate([[-np.inf], trace]))
      for i in range(self.verbose_interval, len(trace) + 1, self.verbose_interval):
        print(f"  Iteration {i}\t ll change {changes[i - 1]:.5f}")
    print(f"Initialization {'converged' if converged else 'did not converge'}. lower bound {lower_bound:.5f}.")

  def _set_params_from(self, params: GMMParams) -> None:
    self.weights_ = np.array(params.weights)
    self.means_ = np.array(params.means)
    self.precisions_cholesky_ = np.array(params.precisions_cholesky)
    self.covariances_ = np.array(params.covariances)
    self.precisions_ = np.array(params.precisions)

  def _params(self, dtype) -> GMMParams:
    """The fitted parameters as `GMMParams` in `dtype` (call inside `_x64`)."""
    return GMMParams(
        weights=jnp.asarray(self.weights_, dtype),
        means=jnp.asarray(self.means_, dtype),
        precisions_cholesky=jnp.asarray(self.precisions_cholesky_, dtype),
        covariance_type=self.covariance_type,
    )

  def _validated(self, X):
    check_is_fitted(self)
    X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
    return X, np.result_type(X.dtype, self.means_.dtype)

  def to_params(self) -> GMMParams:
    """The fitted mixture as `gmmjax.GMMParams` (in the dtype it was fitted in).

    Returns:
      `GMMParams` to use with `gmmjax.log_prob`, `gmmjax.sample`, `jit`, ...
    """
    check_is_fitted(self)
    with _x64():
      return self._params(self.means_.dtype)

  def score(self, X, y=None):
    """Mean log-likelihood of the rows of `X`.

    Args:
      X: `[n, d]` points.
      y: ignored.

    Returns:
      float, the average of `score_samples(X)`.
    """
    return float(np.mean(self.score_samples(X)))

  def predict(self, X):
    """Most probable component of each row of `X`.

    Args:
      X: `[n, d]` points.

    Returns:
      `[n]` component labels.
    """
    return np.argmax(self.predict_proba(X), axis=1)

  def sample(self, n_samples=1):
    """Draws samples from the fitted mixture.

    Draws are seeded by `random_state` (an int gives the same draws on every
    call, as in scikit-learn) and ordered by component, as scikit-learn's.

    Args:
      n_samples: number of samples.

    Returns:
      `(X [n_samples, d], y [n_samples])`: samples and their components.
    """
    check_is_fitted(self)
    if n_samples < 1:
      raise ValueError(f"Invalid value for 'n_samples': {n_samples}. The sampling requires at least one sample.")
    with _x64():
      x, components = _sample(_key(self.random_state), self._params(self.means_.dtype), int(n_samples))
      x, components = np.asarray(x), np.asarray(components, dtype=np.int64)
    order = np.argsort(components, kind="stable")
    return x[order], components[order]


class GaussianMixture(_Mixture):
  """Gaussian mixture fitted by gmmjax's compiled EM, with scikit-learn's API.

  Args:
    n_components: number of mixture components.
    covariance_type: "full", "tied", "diag" or "spherical".
    tol: EM stops when the mean log-likelihood changes by less.
    reg_covar: non-negative value added to covariance diagonals.
    max_iter: maximum EM iterations; 0 keeps the initial parameters.
    n_init: restarts (run side by side in one program); the best is kept.
    init_params: "kmeans", "k-means++", "random" or "random_from_data".
    weights_init: optional `[k]` initial weights.
    means_init: optional `[k, d]` initial means.
    precisions_init: optional initial precisions, in `precisions_` shape.
    random_state: None, int or `numpy.random.RandomState`; seeds the JAX keys
      of the initialisation and of `sample`.
    warm_start: if True, a second `fit` continues from the fitted parameters
      (one initialisation, `n_init` ignored), with the stopping rule carried
      over, as in scikit-learn.
    verbose: 1 prints a line per restart, 2 also the change in log-likelihood
      every `verbose_interval` iterations. The loop is compiled, so these
      lines are printed from its trace once it has finished.
    verbose_interval: iterations between verbose lines.

  Attributes:
    weights_: `[k]` mixing weights.
    means_: `[k, d]` means.
    covariances_: covariances (shape by `covariance_type`, as scikit-learn).
    precisions_: precisions (same shapes).
    precisions_cholesky_: Cholesky factors of the precisions (same shapes).
    converged_: whether the best restart converged.
    n_iter_: EM iterations of the best restart.
    lower_bound_: mean log-likelihood of the training data at the last
      E-step of the best restart.
    lower_bounds_: `lower_bound_` after each iteration of the best restart.
    n_features_in_: number of features seen in `fit`.
    feature_names_in_: feature names seen in `fit` (when `X` has them).
  """

  _parameter_constraints: dict = {
      "n_components": [Interval(Integral, 1, None, closed="left")],
      "covariance_type": [StrOptions({"full", "tied", "diag", "spherical"})],
      "tol": [Interval(Real, 0.0, None, closed="left")],
      "reg_covar": [Interval(Real, 0.0, None, closed="left")],
      "max_iter": [Interval(Integral, 0, None, closed="left")],
      "n_init": [Interval(Integral, 1, None, closed="left")],
      "init_params": [StrOptions(set(INIT_NAMES))],
      "weights_init": ["array-like", None],
      "means_init": ["array-like", None],
      "precisions_init": ["array-like", None],
      "random_state": ["random_state"],
      "warm_start": ["boolean"],
      "verbose": ["verbose"],
      "verbose_interval": [Interval(Integral, 1, None, closed="left")],
  }

  def __init__(
      self,
      n_components=1,
      *,
      covariance_type="full",
      tol=1e-3,
      reg_covar=1e-6,
      max_iter=100,
      n_init=1,
      init_params="kmeans",
      weights_init=None,
      means_init=None,
      precisions_init=None,
      random_state=None,
      warm_start=False,
      verbose=0,
      verbose_interval=10,
  ):
    self.n_components = n_components
    self.covariance_type = covariance_type
    self.tol = tol
    self.reg_covar = reg_covar
    self.max_iter = max_iter
    self.n_init = n_init
    self.init_params = init_params
    self.weights_init = weights_init
    self.means_init = means_init
    self.precisions_init = precisions_init
    self.random_state = random_state
    self.warm_start = warm_start
    self.verbose = verbose
    self.verbose_interval = verbose_interval

  # -- fitting ---------------------------------------------------------------

  def fit_predict(self, X, y=None, sample_weight=None):
    """Fits the model (as `fit`) and returns the component of each row of `X`.

    Args:
      X: `[n, d]` training data.
      y: ignored.
      sample_weight: optional `[n]` non-negative weights.

    Returns:
      `[n]` labels, consistent with `fit(X).predict(X)`.
    """
    X, w = self._fit_input(X, sample_weight)
    inits = self._checked_inits(X.shape[1], X.dtype)
    warm = self.warm_start and hasattr(self, "converged_")

    with _x64():
      # NumPy arrays go straight to the compiled fit (an eager conversion compiles per shape).
      x = X

      key = _key(self.random_state)
      if warm:
        best = self._fit_warm(x, w)
      elif self.max_iter == 0:
        params = self._initial(key, x, w, inits)
        best = (params, -np.inf, 0, False, np.zeros((0,)))
      elif all(v is not None for v in inits):
        best = self._fit_from(self._initial(key, x, w, inits), key, x, w)
      elif any(v is not None for v in inits):
        best = None
        for sub in jax.random.split(key, self.n_init):
          run = self._fit_from(self._initial(sub, x, w, inits), sub, x, w)
          if best is None or run[1] > best[1]:
            best = run
      else:
        best = self._unpack(_em.run(key, x, w, None, self.tol, self.reg_covar,
                                    options=self._options(n_init=self.n_init)))
      params, lower_bound, n_iter, converged, trace = best
      self._set_params_from(params)
      labels = np.argmax(np.asarray(e_step(params, x)[1]), axis=1)

    self._finish(n_iter, lower_bound, trace, converged)
    return labels

  def _checked_inits(self, d, dtype):
    k = self.n_components
    return (
        None if self.weights_init is None else _check_weights_init(self.weights_init, k, dtype),
        None if self.means_init is None else _check_means_init(self.means_init, k, d, dtype),
        None if self.precisions_init is None else _check_precisions_init(
            self.precisions_init, self.covariance_type, k, d, dtype),
    )

  def _initial(self, key, x, w, inits) -> GMMParams:
    """Starting parameters: the named initialisation, overridden by the
    given `*_init` arrays (as scikit-learn combines them)."""
    weights, means, precisions = inits
    if weights is not None and means is not None and precisions is not None:
      return GMMParams.from_precisions(weights, means, precisions, self.covariance_type)
    params = _em.initial_params(key, x, w, self.reg_covar, options=self._options())
    prec_chol = params.precisions_cholesky
    if precisions is not None:
      prec_chol = GMMParams.from_precisions(
          params.weights, params.means, precisions, self.covariance_type).precisions_cholesky
    return GMMParams(
        weights=params.weights if weights is None else jnp.asarray(weights),
        means=params.means if means is None else jnp.asarray(means),
        precisions_cholesky=prec_chol,
        covariance_type=self.covariance_type,
    )

  def _options(self, n_init=1) -> EMOptions:
    return EMOptions(self.n_components, self.covariance_type, max(self.max_iter, 1), INIT_NAMES[self.init_params],
                     n_init)

  def _fit_from(self, params, key, x, w, lower_bound=-np.inf):
    return self._unpack(_em.run(key, x, w, params, self.tol, self.reg_covar, options=self._options(),
                                lower_bound=lower_bound))

  def _fit_warm(self, x, w):
    params = self._params(x.dtype)
    if params.means.shape[1] != x.shape[1]:
      raise ValueError(f"X has {x.shape[1]} features, but the fitted mixture has {params.means.shape[1]}")
    if self.max_iter == 0:
      return params, -np.inf, 0, False, np.zeros((0,))
    # scikit-learn's warm start: the stopping rule carries over from the previous fit.
    return self._fit_from(params, jax.random.key(0), x, w, lower_bound=self.lower_bound_)

  @staticmethod
  def _unpack(result):
    return (result.params, float(result.log_likelihood), int(result.n_iter), bool(result.converged),
            np.asarray(result.log_likelihood_trace))

  # -- using the fitted model ------------------------------------------------

  def score_samples(self, X):
    """Log-density of each row of `X` under the mixture.

    Args:
      X: `[n, d]` points.

    Returns:
      `[n]` log p(x).
    """
    X, dtype = self._validated(X)
    with _x64():
      return np.asarray(log_prob(self._params(dtype), np.asarray(X, dtype)))

  def predict_proba(self, X):
    """Posterior probability of each component for each row of `X`.

    Args:
      X: `[n, d]` points.

    Returns:
      `[n, k]` responsibilities, rows summing to one.
    """
    X, dtype = self._validated(X)
    with _x64():
      return np.exp(np.asarray(e_step(self._params(dtype), np.asarray(X, dtype))[1]))

  def _n_parameters(self) -> int:
    with _x64():
      return _select.n_parameters(self._params(self.means_.dtype))

  def bic(self, X):
    """Bayesian information criterion on `X` (lower is better).

    Args:
      X: `[n, d]` points.

    Returns:
      float, `-2 log L + p log n`.
    """
    n = np.shape(X)[0]
    return -2 * self.score(X) * n + self._n_parameters() * math.log(n)

  def aic(self, X):
    """Akaike information criterion on `X` (lower is better).

    Args:
      X: `[n, d]` points.

    Returns:
      float, `-2 log L + 2 p`.
    """
    return -2 * self.score(X) * np.shape(X)[0] + 2 * self._n_parameters()


class BayesianGaussianMixture(_Mixture):
  """Variational Bayesian Gaussian mixture fitted by gmmjax's compiled loop,
  with the API of `sklearn.mixture.BayesianGaussianMixture`.

  The model, updates, stopping rule and `lower_bound_` are scikit-learn's
  (see `gmmjax.variational`); from the same starting posterior the fitted
  attributes, `n_iter_` and `lower_bound_` are scikit-learn's.

  Args:
    n_components: the truncation: an upper bound on the components used.
    covariance_type: "full", "tied", "diag" or "spherical".
    tol: the fit stops when the lower bound (a sum over the rows) changes by less.
    reg_covar: non-negative value added to the data's covariance diagonals.
    max_iter: maximum iterations; 0 keeps the initial posterior.
    n_init: restarts (run side by side in one program); the best bound is kept.
    init_params: "kmeans", "k-means++", "random" or "random_from_data".
    weight_concentration_prior_type: "dirichlet_process" or "dirichlet_distribution".
    weight_concentration_prior: > 0, default `1 / n_components`.
    mean_precision_prior: > 0, default 1.
    mean_prior: `[d]`, default the data's mean.
    degrees_of_freedom_prior: > d - 1, default d.
    covariance_prior: default the data's covariance (shape by `covariance_type`).
    random_state: None, int or `numpy.random.RandomState`; seeds the JAX keys.
    warm_start: if True, a second `fit` continues from the fitted posterior.
    verbose, verbose_interval: progress lines, as `GaussianMixture`'s.

  Attributes:
    weights_, means_, covariances_, precisions_, precisions_cholesky_: the
      posterior's point estimate (expected weights, posterior means, inverse
      expected precisions).
    weight_concentration_: Dirichlet `[k]`, or the stick-breaking Betas `(a [k], b [k])`.
    mean_precision_: `[k]`.
    degrees_of_freedom_: `[k]` (tied: a float).
    weight_concentration_prior_, mean_precision_prior_, mean_prior_,
      degrees_of_freedom_prior_, covariance_prior_: the prior used.
    converged_, n_iter_, lower_bound_, lower_bounds_: of the best restart.
    n_features_in_, feature_names_in_: as in scikit-learn.
  """

  _parameter_constraints: dict = {
      **{name: c for name, c in GaussianMixture._parameter_constraints.items() if not name.endswith("_init")},
      "weight_concentration_prior_type": [StrOptions({"dirichlet_process", "dirichlet_distribution"})],
      "weight_concentration_prior": [None, Interval(Real, 0.0, None, closed="neither")],
      "mean_precision_prior": [None, Interval(Real, 0.0, None, closed="neither")],
      "mean_prior": [None, "array-like"],
      "degrees_of_freedom_prior": [None, Interval(Real, 0.0, None, closed="neither")],
      "covariance_prior": [None, "array-like", Interval(Real, 0.0, None, closed="neither")],
  }

  def __init__(
      self,
      *,
      n_components=1,
      covariance_type="full",
      tol=1e-3,
      reg_covar=1e-6,
      max_iter=100,
      n_init=1,
      init_params="kmeans",
      weight_concentration_prior_type="dirichlet_process",
      weight_concentration_prior=None,
      mean_precision_prior=None,
      mean_prior=None,
      degrees_of_freedom_prior=None,
      covariance_prior=None,
      random_state=None,
      warm_start=False,
      verbose=0,
      verbose_interval=10,
  ):
    self.n_components = n_components
    self.covariance_type = covariance_type
    self.tol = tol
    self.reg_covar = reg_covar
    self.max_iter = max_iter
    self.n_init = n_init
    self.init_params = init_params
    self.weight_concentration_prior_type = weight_concentration_prior_type
    self.weight_concentration_prior = weight_concentration_prior
    self.mean_precision_prior = mean_precision_prior
    self.mean_prior = mean_prior
    self.degrees_of_freedom_prior = degrees_of_freedom_prior
    self.covariance_prior = covariance_prior
    self.random_state = random_state
    self.warm_start = warm_start
    self.verbose = verbose
    self.verbose_interval = verbose_interval

  def fit_predict(self, X, y=None, sample_weight=None):
    """Fits the model (as `fit`) and returns the component of each row of `X`.

    Args:
      X: `[n, d]` training data.
      y: ignored.
      sample_weight: optional `[n]` non-negative weights.

    Returns:
      `[n]` labels, consistent with `fit(X).predict(X)`.
    """
    X, w = self._fit_input(X, sample_weight)
    warm = self.warm_start and hasattr(self, "converged_")
    if warm and self.means_.shape[1] != X.shape[1]:
      raise ValueError(f"X has {X.shape[1]} features, but the fitted mixture has {self.means_.shape[1]}")
    with _x64():
      prior = variational.variational_prior(
          self.n_components, X.shape[1], covariance_type=self.covariance_type,
          weight_concentration_prior_type=self.weight_concentration_prior_type,
          weight_concentration_prior=self.weight_concentration_prior,
          mean_precision_prior=self.mean_precision_prior, mean_prior=self.mean_prior,
          degrees_of_freedom_prior=self.degrees_of_freedom_prior, covariance_prior=self.covariance_prior,
          dtype=X.dtype)
      variational._check_data_prior(prior, X, w)
      key = _key(self.random_state)
      options = EMOptions(self.n_components, self.covariance_type, max(self.max_iter, 1),
                          INIT_NAMES[self.init_params], 1 if warm else self.n_init)
      start = self._posterior(X.dtype) if warm else None
      if self.max_iter == 0:
        if start is None:
          start, prior = variational.initial_posterior(key, X, w, prior, self.reg_covar, options=options)
        else:
          prior = variational.resolve_prior(prior, X, w)
        fit = None
        q, lower_bound, n_iter, converged, trace = start, -np.inf, 0, False, np.zeros((0,))
      else:
        # scikit-learn's warm start: the stopping rule carries over from the previous fit.
        fit = variational.run(key, X, w, prior, start, self.tol, self.reg_covar, options=options,
                              lower_bound=self.lower_bound_ if warm else -np.inf)
        q, prior = fit.posterior, fit.prior
        lower_bound, n_iter = float(fit.lower_bound), int(fit.n_iter)
        converged, trace = bool(fit.converged), np.asarray(fit.lower_bound_trace)
      self._set_posterior(q, prior)
      labels = np.argmax(np.asarray(variational.variational_log_resp(q, X)[1]), axis=1)
    self._finish(n_iter, lower_bound, trace, converged)
    return labels

  def _set_posterior(self, q, prior) -> None:
    self._set_params_from(variational.point_estimate(q))
    conc = np.array(q.weight_concentration)
    self.weight_concentration_ = tuple(conc) if self.weight_concentration_prior_type == "dirichlet_process" else conc
    self.mean_precision_ = np.array(q.mean_precision)
    dof = np.array(q.degrees_of_freedom)
    self.degrees_of_freedom_ = float(dof) if dof.ndim == 0 else dof
    self.weight_concentration_prior_ = float(prior.weight_concentration)
    self.mean_precision_prior_ = float(prior.mean_precision)
    self.mean_prior_ = np.array(prior.mean)
    self.degrees_of_freedom_prior_ = float(prior.degrees_of_freedom)
    cov = np.array(prior.covariance)
    self.covariance_prior_ = float(cov) if cov.ndim == 0 else cov

  def _posterior(self, dtype) -> variational.VariationalPosterior:
    """The fitted posterior in `dtype` (call inside `_x64`)."""
    conc = self.weight_concentration_
    conc = np.stack(conc) if isinstance(conc, tuple) else conc
    return variational.VariationalPosterior(
        *(jnp.asarray(a, dtype) for a in (conc, self.mean_precision_, self.means_, self.degrees_of_freedom_,
                                          self.precisions_cholesky_)),
        covariance_type=self.covariance_type,
        weight_concentration_prior_type=self.weight_concentration_prior_type,
    )

  def to_posterior(self) -> variational.VariationalPosterior:
    """The fitted posterior as `gmmjax.variational.VariationalPosterior`."""
    check_is_fitted(self)
    with _x64():
      return self._posterior(self.means_.dtype)

  def _log_resp(self, X):
    X, dtype = self._validated(X)
    with _x64():
      norm, log_resp = variational.variational_log_resp(self._posterior(dtype), np.asarray(X, dtype))
      return np.asarray(norm), np.asarray(log_resp)

  def score_samples(self, X):
    """scikit-learn's score of each row of `X`: logsumexp_k of
    E[log pi_k] + E[log N(x | mu_k, Lambda_k^-1)] under the posterior (for the
    posterior predictive density see `gmmjax.variational.predictive_log_prob`).

    Args:
      X: `[n, d]` points.

    Returns:
      `[n]` scores.
    """
    return self._log_resp(X)[0]

  def predict_proba(self, X):
    """Variational responsibilities of each component for each row of `X`.

    Args:
      X: `[n, d]` points.

    Returns:
      `[n, k]` responsibilities, rows summing to one.
    """
    return np.exp(self._log_resp(X)[1])
