"""Variational Bayesian Gaussian mixtures (Bishop 2006, ch. 10.2; Blei and Jordan 2006).

The model and its conventions are scikit-learn's `BayesianGaussianMixture`:
a Dirichlet ("dirichlet_distribution") or truncated stick-breaking
("dirichlet_process") prior on the weights, and a Normal-Wishart prior on
each component's mean and precision (for "diag" and "spherical", one Gamma
per variance). The variational posterior is of the same family, stored in
scikit-learn's layout: `covariances = W^-1 / nu`, the inverse of the expected
precision, and its Cholesky factor `precisions_cholesky`.

Its updates read the sufficient statistics EM reads (`SuffStats`: weighted
counts, means and centred second moments), so a fit is the core's loop with
another E-step and M-step: rows chunked in memory, padded to size classes,
sharded over a mesh, streamed from the host or weighted all go through the
same backends. The E-step returns each row's entropy term through the
statistics' `log_likelihood` slot, which is all the lower bound needs of the
rows; the bound is scikit-learn's `lower_bound_` (a sum over the rows, up to
constants that do not depend on the fit).

Stochastic variational inference (Hoffman et al. 2013) steps the posterior's
natural parameters towards those of a mini-batch scaled to the whole data.
They are linear in the statistics' raw moments, so the step is `merge` of
scaled statistics, as in online EM, and the centred moments stay centred.
"""

import dataclasses
import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import betaln, digamma, gammaln
from jax.typing import ArrayLike

from . import _checks, _em, _init, _linalg, _online, _stats
from ._frame import Frame, data_frame
from ._logprob import component_log_prob_fn
from ._options import EMOptions
from ._types import GMMParams, check_covariance_type

WEIGHT_PRIOR_TYPES = ("dirichlet_process", "dirichlet_distribution")
_META = ["covariance_type", "weight_concentration_prior_type"]


def _static_dataclass(cls):
  cls = dataclasses.dataclass(frozen=True)(cls)
  data = [f.name for f in dataclasses.fields(cls) if f.name not in _META]
  return jax.tree_util.register_dataclass(cls, data_fields=data, meta_fields=_META)


@_static_dataclass
class VariationalPrior:
  """Prior of a variational Bayesian mixture (scikit-learn's `*_prior_`).

  Attributes:
    weight_concentration: `[]` Dirichlet concentration of each component
      (or the stick-breaking Beta's second parameter); default `1 / k`.
    mean_precision: `[]` precision scale beta_0 of the means' prior; default 1.
    mean: `[d]` prior mean m_0 (default: the data's mean), or None: from the data.
    degrees_of_freedom: `[]` nu_0 > d - 1; default d.
    covariance: W_0^-1, full/tied `[d, d]`, diag `[d]`, spherical `[]`
      (default: the data's covariance, unbiased), or None: from the data.
    covariance_type: static.
    weight_concentration_prior_type: "dirichlet_process" or
      "dirichlet_distribution" (static).
  """

  weight_concentration: jax.Array
  mean_precision: jax.Array
  mean: jax.Array | None
  degrees_of_freedom: jax.Array
  covariance: jax.Array | None
  covariance_type: str = "full"
  weight_concentration_prior_type: str = "dirichlet_process"


@_static_dataclass
class VariationalPosterior:
  """Variational posterior of a Bayesian Gaussian mixture, in scikit-learn's layout.

  Attributes:
    weight_concentration: Dirichlet `[k]`, or the stick-breaking Betas'
      parameters `[2, k]` (scikit-learn's tuple stacked).
    mean_precision: `[k]` beta_k.
    means: `[k, d]` m_k, the posterior means of the component means.
    degrees_of_freedom: `[k]` nu_k (tied: `[]`).
    precisions_cholesky: Cholesky factor of nu_k W_k, the expected precision,
      in `GMMParams`' layout for the covariance type.
    covariance_type: static.
    weight_concentration_prior_type: static.
  """

  weight_concentration: jax.Array
  mean_precision: jax.Array
  means: jax.Array
  degrees_of_freedom: jax.Array
  precisions_cholesky: jax.Array
  covariance_type: str = "full"
  weight_concentration_prior_type: str = "dirichlet_process"

  @property
  def n_components(self) -> int:
    return self.means.shape[-2]

  @property
  def covariances(self) -> jax.Array:
    """`(W_k nu_k)^-1`, scikit-learn's `covariances_`."""
    return _linalg.covariances_from_cholesky(self.precisions_cholesky, self.covariance_type)

  @property
  def precisions(self) -> jax.Array:
    return _linalg.precisions_from_cholesky(self.precisions_cholesky, self.covariance_type)

  @property
  def weights(self) -> jax.Array:
    """`[k]` expected weights (scikit-learn's `weights_`)."""
    return expected_weights(self)


class VariationalFit(NamedTuple):
  """Outcome of `fit_variational`.

  Attributes:
    posterior: the fitted `VariationalPosterior`.
    prior: the `VariationalPrior` used, every default filled in.
    lower_bound: `[]` scikit-learn's `lower_bound_`: the evidence lower bound
      after the last iteration, summed over the (weighted) rows, without the
      constants that do not depend on the fit.
    n_iter: `[]` iterations run.
    converged: `[]` whether the bound changed by less than `tol`.
    lower_bound_trace: `[max_iter]` the bound after each iteration (NaN after `n_iter`).
    failed: `[]` whether an update met an ill-defined covariance.
  """

  posterior: VariationalPosterior
  prior: VariationalPrior
  lower_bound: jax.Array
  n_iter: jax.Array
  converged: jax.Array
  lower_bound_trace: jax.Array
  failed: jax.Array


# -- the model ----------------------------------------------------------------


def expected_log_weights(q: VariationalPosterior) -> jax.Array:
  """`[k]` E[log pi_k] under the posterior."""
  if q.weight_concentration_prior_type == "dirichlet_process":
    a, b = q.weight_concentration
    digamma_sum = digamma(a + b)
    tail = jnp.cumsum(digamma(b) - digamma_sum)
    return digamma(a) - digamma_sum + jnp.concatenate([jnp.zeros((1,), a.dtype), tail[:-1]])
  c = q.weight_concentration
  return digamma(c) - digamma(jnp.sum(c))


def expected_weights(q: VariationalPosterior) -> jax.Array:
  """`[k]` E[pi_k] under the posterior, normalised as scikit-learn's `weights_`
  (for the truncated stick-breaking prior, the expected sticks)."""
  if q.weight_concentration_prior_type == "dirichlet_process":
    a, b = q.weight_concentration
    frac = b / (a + b)
    rest = jnp.concatenate([jnp.ones((1,), a.dtype), jnp.cumprod(frac[:-1])])
    w = a / (a + b) * rest
  else:
    w = q.weight_concentration
  return w / jnp.sum(w)


def _halves(dof: jax.Array, d: int) -> jax.Array:
  """`[..., d]` (nu - i) / 2 for i < d."""
  return 0.5 * (dof[..., None] - jnp.arange(d, dtype=dof.dtype).reshape((1,) * dof.ndim + (d,)))


def _log_lambda(dof: jax.Array, d: int) -> jax.Array:
  """E[log |Lambda|] + d log(nu) terms: d log 2 + sum_i digamma((nu - i) / 2)."""
  return d * math.log(2.0) + jnp.sum(digamma(_halves(dof, d)), axis=-1)


def point_estimate(q: VariationalPosterior) -> GMMParams:
  """The posterior as `GMMParams`: expected weights, posterior means and the
  inverse expected precisions (scikit-learn's `weights_`, `means_`,
  `covariances_`), for `log_prob`, `sample`, interop and everything else that
  takes a mixture."""
  return GMMParams(expected_weights(q), q.means, q.precisions_cholesky, q.covariance_type)


def _weighted_log_prob_fn(q: VariationalPosterior, origin: jax.Array):
  """`f(x - origin) -> [c, k]` E[log pi_k] + E[log N(x | mu_k, Lambda_k^-1)]
  (scikit-learn's `_estimate_weighted_log_prob`)."""
  d = q.means.shape[-1]
  log_gauss = component_log_prob_fn(point_estimate(q), origin, with_weights=False)
  # The precisions are normalised by nu (E[Lambda]), hence the - d/2 log nu.
  dof = jnp.broadcast_to(q.degrees_of_freedom, q.mean_precision.shape)
  const = (expected_log_weights(q) - 0.5 * d * jnp.log(dof)
           + 0.5 * (_log_lambda(dof, d) - d / q.mean_precision))
  return lambda xs: log_gauss(xs) + const[None, :]


def _e_step_resp(q: VariationalPosterior):
  """Responsibilities of a chunk, and each row's entropy -sum_k r log r."""
  origin = jax.lax.stop_gradient(_linalg.mm(expected_weights(q), q.means))
  f = _weighted_log_prob_fn(q, origin)

  def resp_fn(start, xs):
    lp = f(xs - origin[None, :])
    log_resp = lp - jax.nn.logsumexp(lp, axis=-1, keepdims=True)
    resp = jnp.exp(log_resp)
    return resp, -jnp.sum(jnp.where(resp > 0, resp * log_resp, 0), axis=-1)

  return resp_fn


def posterior_from_stats(stats: _stats.SuffStats, prior: VariationalPrior,
                         reg_covar: ArrayLike) -> tuple[VariationalPosterior, jax.Array]:
  """The variational M-step from statistics (scikit-learn's `_m_step` and
  `_initialize`), and `[]` whether every covariance factorised.

  `prior` must have its mean and covariance filled in (`variational_prior`).
  """
  cov_type = stats.covariance_type
  dtype = stats.means.dtype
  k = stats.means.shape[0]
  # scikit-learn's Gaussian statistics: counts + 10 eps, regularised covariances.
  nk = stats.counts + 10 * jnp.finfo(dtype).eps
  xk = stats.means * (stats.counts / nk)[:, None]
  sk = _stats.covariances_from_stats(stats, reg_covar)
  gamma0, beta0, m0, nu0, cov0 = (jnp.asarray(prior.weight_concentration, dtype),
                                  jnp.asarray(prior.mean_precision, dtype), prior.mean,
                                  jnp.asarray(prior.degrees_of_freedom, dtype), prior.covariance)
  if prior.weight_concentration_prior_type == "dirichlet_process":
    later = jnp.concatenate([jnp.cumsum(nk[::-1])[::-1][1:], jnp.zeros((1,), dtype)])
    concentration = jnp.stack([1 + nk, gamma0 + later])
  else:
    concentration = gamma0 + nk
  beta = beta0 + nk
  means = (beta0 * m0[None, :] + nk[:, None] * xk) / beta[:, None]
  diff = xk - m0[None, :]
  shrink = nk * beta0 / beta
  if cov_type == "tied":
    dof = nu0 + jnp.sum(nk) / k
    cov = (cov0 + sk * jnp.sum(nk) / k + jnp.einsum("k,kd,ke->de", shrink / k, diff, diff)) / dof
  else:
    dof = nu0 + nk
    if cov_type == "full":
      scatter = nk[:, None, None] * sk + shrink[:, None, None] * diff[:, :, None] * diff[:, None, :]
      cov = (cov0[None] + scatter) / dof[:, None, None]
    elif cov_type == "diag":
      cov = (cov0[None, :] + nk[:, None] * sk + shrink[:, None] * diff**2) / dof[:, None]
    else:
      cov = (cov0 + nk * sk + shrink * jnp.mean(diff**2, axis=1)) / dof
  prec_chol, ok = _linalg.precision_cholesky_checked(cov, cov_type)
  q = VariationalPosterior(concentration, beta, means, dof, prec_chol, cov_type,
                           prior.weight_concentration_prior_type)
  return q, ok


def _bound_terms(q: VariationalPosterior) -> jax.Array:
  """The lower bound less the rows' entropy (scikit-learn's `_compute_lower_bound`)."""
  d = q.means.shape[-1]
  dof = q.degrees_of_freedom
  log_det = _linalg.log_det_cholesky(q.precisions_cholesky, q.covariance_type, d) - 0.5 * d * jnp.log(dof)
  log_wishart = -(dof * log_det + dof * d * 0.5 * math.log(2.0) + jnp.sum(gammaln(_halves(dof, d)), axis=-1))
  log_wishart = q.n_components * log_wishart if q.covariance_type == "tied" else jnp.sum(log_wishart)
  if q.weight_concentration_prior_type == "dirichlet_process":
    log_norm_weight = -jnp.sum(betaln(*q.weight_concentration))
  else:
    c = q.weight_concentration
    log_norm_weight = gammaln(jnp.sum(c)) - jnp.sum(gammaln(c))
  return -log_wishart - log_norm_weight - 0.5 * d * jnp.sum(jnp.log(q.mean_precision))


def _total_dof(q: VariationalPosterior) -> jax.Array:
  """sum_k nu_k: the bound in coordinates scaled by s is the bound less
  d log(s) sum_k nu_k (each Wishart normaliser's nu_k log |W_k|)."""
  if q.covariance_type == "tied":
    return q.n_components * q.degrees_of_freedom
  return jnp.sum(q.degrees_of_freedom)


# -- coordinates ---------------------------------------------------------------


def _posterior_to_frame(q: VariationalPosterior, frame: Frame) -> VariationalPosterior:
  return dataclasses.replace(q, means=(q.means - frame.shift[None, :]) / frame.scale,
                             precisions_cholesky=q.precisions_cholesky * frame.scale)


def _posterior_from_frame(q: VariationalPosterior, frame: Frame) -> VariationalPosterior:
  return dataclasses.replace(q, means=q.means * frame.scale + frame.shift[None, :],
                             precisions_cholesky=q.precisions_cholesky / frame.scale)


def _prior_to_frame(prior: VariationalPrior, frame: Frame) -> VariationalPrior:
  return dataclasses.replace(
      prior,
      mean=None if prior.mean is None else (prior.mean - frame.shift) / frame.scale,
      covariance=None if prior.covariance is None else prior.covariance / frame.scale**2)


def _prior_from_frame(prior: VariationalPrior, frame: Frame) -> VariationalPrior:
  return dataclasses.replace(prior, mean=prior.mean * frame.scale + frame.shift,
                             covariance=prior.covariance * frame.scale**2)


def _data_moments(x, w, frame: Frame, cov_type: str, *, backend, chunk_size) -> _stats.SuffStats:
  """One-component statistics of all rows (their mean and scatter), in `frame`."""
  moment_type = "full" if cov_type in ("full", "tied") else "diag"
  one = lambda: lambda start, xs: (jnp.ones((xs.shape[0], 1), xs.dtype), jnp.zeros(xs.shape[:1], xs.dtype))
  return backend.reduce(one, (), x, w, jnp.zeros((1, x.shape[1]), x.dtype), covariance_type=moment_type,
                        frame=frame, chunk_size=chunk_size)


def _with_data_defaults(prior: VariationalPrior, data: _stats.SuffStats) -> VariationalPrior:
  """The prior with scikit-learn's data defaults filled in: the (weighted)
  mean and the unbiased covariance (weights count as repeated rows)."""
  cov = data.m2[0] / (data.total_weight - 1)
  cov = jnp.mean(cov) if prior.covariance_type == "spherical" else cov
  return dataclasses.replace(prior, mean=data.means[0] if prior.mean is None else prior.mean,
                             covariance=cov if prior.covariance is None else prior.covariance)


def _resolved_prior(prior: VariationalPrior, x, w, frame: Frame, *, backend, chunk_size) -> VariationalPrior:
  """The prior with its data defaults filled in from `x`, in `frame`."""
  if prior.mean is not None and prior.covariance is not None:
    return prior
  data = _data_moments(x, w, frame, prior.covariance_type, backend=backend, chunk_size=chunk_size)
  return _with_data_defaults(prior, data)


# -- the fit -------------------------------------------------------------------


def variational_stats(backend, q: VariationalPosterior, x, w, frame: Frame, chunk_size) -> _stats.SuffStats:
  """Statistics of one variational E-step pass (working coordinates); their
  `log_likelihood` is the rows' summed entropy -sum_ik w_i r_ik log r_ik."""
  return backend.reduce(_e_step_resp, (q,), x, w, jax.lax.stop_gradient(q.means),
                        covariance_type=q.covariance_type, frame=frame, chunk_size=chunk_size)


def _step(q, x, w, reg, frame, prior, *, backend, chunk_size):
  stats = variational_stats(backend, q, x, w, frame, chunk_size)
  new, ok = posterior_from_stats(stats, prior, reg)
  return new, stats.log_likelihood + _bound_terms(new), ok


def _start(key, x, w, reg, frame, prior, init_posterior, *, backend, options):
  """The starting posterior in the frame: scikit-learn's `_initialize` from the
  responsibilities of `options.init`, or `init_posterior`."""
  if init_posterior is not None:
    return _posterior_to_frame(init_posterior, frame), jnp.asarray(True)
  stats = _init.initial_stats(key, x, w, frame, None, backend=backend, options=options)
  return posterior_from_stats(stats, prior, reg)


def _fit_program(key, x, w, init_posterior, tol, reg_covar, prior, lower_bound, *, backend,
                 options: EMOptions) -> VariationalFit:
  frame, reg = _em.working_frame(backend, x, w, reg_covar)
  prior = _resolved_prior(_prior_to_frame(prior, frame), x, w, frame, backend=backend,
                          chunk_size=options.chunk_size)
  log_scale = x.shape[1] * jnp.log(frame.scale)
  step = functools.partial(_step, backend=backend, chunk_size=options.chunk_size)

  def single(key):
    q, ok = _start(key, x, w, reg, frame, prior, init_posterior, backend=backend, options=options)
    state = _em.init_state(q, options.max_iter, lower_bound + log_scale * _total_dof(q), ok)
    return _em.em_loop(step, state, tol, options.max_iter, (x, w, reg, frame, prior))

  if options.n_init == 1:
    state = single(key)
  else:
    state = _em.best_of(jax.vmap(single)(jax.random.split(key, options.n_init)))
  return _result_from(state, prior, frame)


def _result_from(state: _em.EMState, prior: VariationalPrior, frame: Frame) -> VariationalFit:
  jacobian = state.params.means.shape[-1] * jnp.log(frame.scale) * _total_dof(state.params)
  return VariationalFit(
      posterior=_posterior_from_frame(state.params, frame),
      prior=_prior_from_frame(prior, frame),
      lower_bound=state.log_likelihood - jacobian,
      n_iter=state.n_iter,
      converged=state.converged,
      lower_bound_trace=state.log_likelihood_trace - jacobian,
      failed=state.failed,
  )


_programs = _em.jit_fit(_fit_program)


def variational_prior(
    n_components: int,
    n_features: int,
    *,
    covariance_type: str = "full",
    weight_concentration_prior_type: str = "dirichlet_process",
    weight_concentration_prior: float | None = None,
    mean_precision_prior: float | None = None,
    mean_prior: ArrayLike | None = None,
    degrees_of_freedom_prior: float | None = None,
    covariance_prior: ArrayLike | None = None,
    dtype=None,
) -> VariationalPrior:
  """A validated prior with scikit-learn's defaults; a mean or covariance left
  None is taken from the data when fitting (their mean, their unbiased covariance).

  Args:
    n_components, n_features: `k` and `d`.
    covariance_type: "full", "diag", "spherical" or "tied".
    weight_concentration_prior_type: "dirichlet_process" (truncated stick
      breaking) or "dirichlet_distribution".
    weight_concentration_prior: > 0; default `1 / k`.
    mean_precision_prior: > 0; default 1.
    mean_prior: `[d]`, or None.
    degrees_of_freedom_prior: > d - 1; default d.
    covariance_prior: full/tied `[d, d]` symmetric positive definite, diag
      `[d]` or spherical `[]` positive, or None.
    dtype: float dtype of the prior (default: JAX's default float).

  Raises:
    ValueError: on a value out of range or a shape that does not fit.
  """
  check_covariance_type(covariance_type)
  if weight_concentration_prior_type not in WEIGHT_PRIOR_TYPES:
    raise ValueError(f"weight_concentration_prior_type must be one of {WEIGHT_PRIOR_TYPES}, "
                     f"got {weight_concentration_prior_type!r}")
  k = _checks.n_components(n_components, n_components)
  d = n_features
  dtype = jnp.result_type(float) if dtype is None else dtype
  scalar = lambda v, default, name: _positive_scalar(default if v is None else v, name, dtype)
  gamma0 = scalar(weight_concentration_prior, 1.0 / k, "weight_concentration_prior")
  beta0 = scalar(mean_precision_prior, 1.0, "mean_precision_prior")
  nu0 = scalar(degrees_of_freedom_prior, float(d), "degrees_of_freedom_prior")
  if not float(nu0) > d - 1:
    raise ValueError(f"degrees_of_freedom_prior must be greater than {d - 1}, got {float(nu0)}")
  mean = None
  if mean_prior is not None:
    mean = _checks.float_array(mean_prior, "mean_prior")
    if mean.shape != (d,):
      raise ValueError(f"mean_prior must have shape ({d},), got {mean.shape}")
    mean = jnp.asarray(mean, dtype)
  cov = None
  if covariance_prior is not None:
    cov = np.asarray(_checks.float_array(covariance_prior, "covariance_prior"), np.float64)
    shape = {"full": (d, d), "tied": (d, d), "diag": (d,), "spherical": ()}[covariance_type]
    if cov.shape != shape:
      raise ValueError(f"{covariance_type} covariance_prior must have shape {shape}, got {cov.shape}")
    if covariance_type in ("full", "tied"):
      if not np.allclose(cov, cov.T) or not np.all(np.linalg.eigvalsh(cov) > 0):
        raise ValueError(f"{covariance_type} covariance_prior must be symmetric, positive-definite")
    elif np.any(cov <= 0):
      raise ValueError(f"{covariance_type} covariance_prior must be positive")
    cov = jnp.asarray(cov, dtype)
  return VariationalPrior(gamma0, beta0, mean, nu0, cov, covariance_type, weight_concentration_prior_type)


def _positive_scalar(v, name, dtype):
  _checks.positive(v, name)
  return jnp.asarray(v, dtype)


def _check_prior(prior: VariationalPrior, k: int, d: int, dtype) -> VariationalPrior:
  if not isinstance(prior, VariationalPrior):
    raise ValueError(f"prior must be a VariationalPrior, got {type(prior).__name__}")
  return variational_prior(
      k, d, covariance_type=prior.covariance_type,
      weight_concentration_prior_type=prior.weight_concentration_prior_type,
      weight_concentration_prior=prior.weight_concentration, mean_precision_prior=prior.mean_precision,
      mean_prior=prior.mean, degrees_of_freedom_prior=prior.degrees_of_freedom,
      covariance_prior=prior.covariance, dtype=dtype)


def _check_posterior(q: VariationalPosterior, prior: VariationalPrior, k: int, d: int, dtype):
  if not isinstance(q, VariationalPosterior):
    raise ValueError(f"init_posterior must be a VariationalPosterior, got {type(q).__name__}")
  if (q.covariance_type, q.weight_concentration_prior_type) != (prior.covariance_type,
                                                               prior.weight_concentration_prior_type):
    raise ValueError("init_posterior has another covariance_type or weight_concentration_prior_type than the fit")
  _checks.params(point_estimate(q), d)
  if q.means.shape[0] != k:
    raise ValueError(f"init_posterior has {q.means.shape[0]} components, the fit asked for {k}")
  positive = lambda a, bound=0: np.all(np.asarray(a) > bound)
  if _checks.is_concrete(q.degrees_of_freedom) and not (
      positive(q.weight_concentration) and positive(q.mean_precision) and positive(q.degrees_of_freedom, d - 1)):
    raise ValueError("init_posterior needs positive concentrations and mean precisions, and degrees of "
                     f"freedom above {d - 1}")
  return jax.tree.map(lambda a: jnp.asarray(a, dtype), q)


def run(key, x, w, prior: VariationalPrior, init_posterior, tol, reg_covar, *, options: EMOptions,
        lower_bound=-np.inf) -> VariationalFit:
  """Validated inputs -> the fit, on the rows' backend (`_em.placed`)."""
  backend, x, w, options = _em.placed(x, w, options)
  dtype = x.dtype
  prior = jax.tree.map(lambda a: jnp.asarray(a, dtype), prior)
  args = (key, x, w, init_posterior, jnp.asarray(tol, dtype), jnp.asarray(reg_covar, dtype), prior,
          jnp.asarray(lower_bound, dtype))
  result = _em._call_fit(args, x.shape, options, programs=_programs, backend=backend)
  _em.check_failed(result.failed)
  return result


@functools.partial(jax.jit, static_argnames=("options",))
def _initial_jit(key, x, w, prior, reg_covar, *, options):
  backend = _em.Local()
  frame, reg = _em.working_frame(backend, x, w, reg_covar)
  prior = _resolved_prior(_prior_to_frame(prior, frame), x, w, frame, backend=backend,
                          chunk_size=options.chunk_size)
  q, _ = _start(key, x, w, reg, frame, prior, None, backend=backend, options=options)
  return _posterior_from_frame(q, frame), _prior_from_frame(prior, frame)


def initial_posterior(key, x, w, prior: VariationalPrior, reg_covar, *,
                      options: EMOptions) -> tuple[VariationalPosterior, VariationalPrior]:
  """The starting posterior `fit_variational` would use and the resolved prior,
  in the data's coordinates (validated inputs; rows padded to their size class)."""
  x, w, options = _em._padded(x, w, options)
  prior = jax.tree.map(lambda a: jnp.asarray(a, x.dtype), prior)
  return _initial_jit(key, x, w, prior, jnp.asarray(reg_covar, x.dtype), options=options)


def fit_variational(
    key,
    x: ArrayLike,
    n_components: int,
    *,
    covariance_type: str = "full",
    weight_concentration_prior_type: str = "dirichlet_process",
    weight_concentration_prior: float | None = None,
    mean_precision_prior: float | None = None,
    mean_prior: ArrayLike | None = None,
    degrees_of_freedom_prior: float | None = None,
    covariance_prior: ArrayLike | None = None,
    max_iter: int = 100,
    tol: float = 1e-3,
    reg_covar: float = 1e-6,
    init: str = "kmeans",
    n_init: int = 1,
    weights: ArrayLike | None = None,
    init_posterior: VariationalPosterior | None = None,
    chunk_size: int | None = None,
) -> VariationalFit:
  """Fits a variational Bayesian Gaussian mixture, as one compiled loop.

  The model, updates, stopping rule and lower bound are scikit-learn's
  `BayesianGaussianMixture`; a component the data do not need keeps a weight
  near zero. Rows are handled as in `fit`: padded to size classes, or
  reduced where they lie when sharded over a mesh.

  Args:
    key: PRNG key (initialisation).
    x: `[n, d]` data (float32 or float64).
    n_components: `k`, the truncation (static).
    covariance_type: "full", "diag", "spherical" or "tied" (static).
    weight_concentration_prior_type, weight_concentration_prior,
      mean_precision_prior, mean_prior, degrees_of_freedom_prior,
      covariance_prior: the prior, as in `variational_prior`.
    max_iter: maximum iterations (static).
    tol: stop when the lower bound, a sum over the rows, changes by less
      (traced). In float32 the bound of n rows is resolved to about
      `1e-7 * n` per unit of its size: scale `tol` with the data.
    reg_covar: added to the data's covariance diagonals (traced).
    init: "kmeans" (scikit-learn's default), "kmeans++", "random" or
      "random_from_data" (static); the first posterior is the update from
      the responsibilities of every row assigned to its nearest centre.
    n_init: restarts run side by side; the highest bound is kept (static).
    weights: optional `[n]` non-negative sample weights (a weight counts as
      that many repeated rows, also in the data's default prior).
    init_posterior: explicit starting `VariationalPosterior`.
    chunk_size: rows per chunk (static).

  Returns:
    `VariationalFit`.

  Raises:
    ValueError: on bad data, weights or prior values, before anything
      compiles; and, run eagerly, on an ill-defined covariance.
  """
  x = _checks.data(x)
  n, d = x.shape
  options = EMOptions(n_components, covariance_type, max_iter, init, n_init, chunk_size)
  _checks.n_components(n_components, n)
  _checks.positive(tol, "tol", allow_zero=True)
  _checks.positive(reg_covar, "reg_covar", allow_zero=True)
  w = None if weights is None else _checks.as_weights(weights, x)
  prior = variational_prior(
      n_components, d, covariance_type=covariance_type,
      weight_concentration_prior_type=weight_concentration_prior_type,
      weight_concentration_prior=weight_concentration_prior, mean_precision_prior=mean_precision_prior,
      mean_prior=mean_prior, degrees_of_freedom_prior=degrees_of_freedom_prior,
      covariance_prior=covariance_prior, dtype=x.dtype)
  _check_data_prior(prior, x, w)
  if init_posterior is not None:
    init_posterior = _check_posterior(init_posterior, prior, n_components, d, x.dtype)
  return run(key, x, w, prior, init_posterior, tol, reg_covar, options=options)


def _check_data_prior(prior: VariationalPrior, x, w) -> None:
  """The data's covariance needs more than one row's worth of weight."""
  if prior.covariance is not None:
    return
  total = x.shape[0] if w is None else w.sum() if _checks.is_concrete(w) else None
  if total is not None and not float(total) > 1:
    raise ValueError("the default covariance_prior (the data's covariance) needs more than one sample "
                     f"(a total weight above 1), got {float(total)}: pass covariance_prior")


# -- one step, for callers and tests -------------------------------------------


def _prior_for(prior: VariationalPrior, x, w):
  """The prior with its data defaults filled in from `x` (data coordinates;
  the moments are taken in the data's frame, as in a fit)."""
  frame = data_frame(x, w)
  resolved = _resolved_prior(_prior_to_frame(prior, frame), x, w, frame, backend=_em.Local(), chunk_size=None)
  return _prior_from_frame(resolved, frame)


@jax.jit
def _resolve_jit(prior, x, w):
  return _prior_for(prior, x, w)


def resolve_prior(prior: VariationalPrior, x: ArrayLike, weights: ArrayLike | None = None) -> VariationalPrior:
  """`prior` with the mean and covariance left None taken from `x [n, d]`
  (scikit-learn's `mean_prior_` and `covariance_prior_`)."""
  x = _checks.data(x)
  w = None if weights is None else _checks.as_weights(weights, x)
  prior = _check_prior(prior, 1, x.shape[1], x.dtype)
  _check_data_prior(prior, x, w)
  return _resolve_jit(prior, x, w)


@jax.jit
def _m_step_jit(prior, x, resp, w, reg_covar):
  stats = _stats._stats_from_resp(x, resp, w, prior.covariance_type, None)
  return posterior_from_stats(stats, prior, reg_covar)[0]


def variational_m_step(prior: VariationalPrior, x: ArrayLike, resp: ArrayLike, *, reg_covar: float = 1e-6,
                       weights: ArrayLike | None = None) -> VariationalPosterior:
  """The posterior from responsibilities (scikit-learn's `_initialize(X, resp)`
  and `_m_step`).

  Args:
    prior: a resolved prior (`resolve_prior`).
    x: `[n, d]` points.
    resp: `[n, k]` responsibilities.
    reg_covar: added to the data's covariance diagonals.
    weights: optional `[n]` sample weights.
  """
  x = _checks.data(x)
  resp = jnp.asarray(_checks.float_array(resp, "resp"), x.dtype)
  if resp.ndim != 2 or resp.shape[0] != x.shape[0]:
    raise ValueError(f"resp must have shape [{x.shape[0]}, k], got {resp.shape}")
  if prior.mean is None or prior.covariance is None:
    raise ValueError("the prior's mean and covariance must be given: resolve_prior(prior, x) fills them in")
  _checks.positive(reg_covar, "reg_covar", allow_zero=True)
  w = None if weights is None else _checks.as_weights(weights, x)
  prior = _check_prior(prior, resp.shape[1], x.shape[1], x.dtype)
  return _m_step_jit(prior, x, resp, w, jnp.asarray(reg_covar, x.dtype))


@jax.jit
def _weighted_log_prob(q, x):
  origin = jax.lax.stop_gradient(jnp.mean(x, axis=0))
  return _weighted_log_prob_fn(q, origin)(x - origin[None, :])


def _checked(q: VariationalPosterior, x):
  if not isinstance(q, VariationalPosterior):
    raise ValueError(f"expected a VariationalPosterior, got {type(q).__name__}")
  _checks.params(point_estimate(q))
  return _checks.as_points(x, point_estimate(q))


def variational_log_resp(q: VariationalPosterior, x: ArrayLike) -> tuple[jax.Array, jax.Array]:
  """The variational E-step (scikit-learn's `_estimate_log_prob_resp`).

  Args:
    q: posterior.
    x: `[n, d]` points.

  Returns:
    `(log_norm [n], log_resp [n, k])`: logsumexp over the components of
    E[log pi_k] + E[log N(x | mu_k, Lambda_k^-1)] (scikit-learn's
    `score_samples`), and the log-responsibilities.
  """
  lp = _weighted_log_prob(q, _checked(q, x))
  norm = jax.nn.logsumexp(lp, axis=-1)
  return norm, lp - norm[:, None]


def lower_bound(q: VariationalPosterior, log_resp: ArrayLike, weights: ArrayLike | None = None) -> jax.Array:
  """scikit-learn's `_compute_lower_bound`: the evidence lower bound of
  posterior `q` fitted from log-responsibilities `log_resp [n, k]` (without
  its constants), rows weighted by `weights [n]`."""
  log_resp = jnp.asarray(log_resp, q.means.dtype)
  resp = jnp.exp(log_resp)
  rows = -jnp.sum(jnp.where(resp > 0, resp * log_resp, 0), axis=-1)
  entropy = jnp.sum(rows) if weights is None else jnp.sum(jnp.asarray(weights, rows.dtype) * rows)
  return entropy + _bound_terms(q)


# -- the posterior predictive ---------------------------------------------------


@jax.jit
def _predictive_log_prob(q: VariationalPosterior, x):
  d = q.means.shape[-1]
  cov_type = q.covariance_type
  beta = q.mean_precision
  dof = jnp.broadcast_to(q.degrees_of_freedom, beta.shape)
  origin = jax.lax.stop_gradient(jnp.mean(x, axis=0))
  # Each component is a Student-t (Bishop 10.81): for full and tied, d
  # dimensions with nu + 1 - d degrees of freedom and precision
  # (nu + 1 - d) beta / (1 + beta) W; for diag and spherical each dimension's
  # own Gamma precision makes it a product of d univariate t's with nu.
  df = dof + 1 - d if cov_type in ("full", "tied") else dof
  factor = (df * beta / ((1 + beta) * dof)) if cov_type in ("full", "tied") else beta / (1 + beta)
  gauss = GMMParams(jnp.ones_like(beta) / beta.shape[0], q.means,
                    q.precisions_cholesky, cov_type)
  # Squared Mahalanobis distances of each dimension block under E[Lambda], from the Gaussian log-density.
  unit = component_log_prob_fn(gauss, origin, with_weights=False)
  log_det = jnp.broadcast_to(_linalg.log_det_cholesky(q.precisions_cholesky, cov_type, d), beta.shape)
  xs = x - origin[None, :]
  if cov_type in ("full", "tied"):
    maha = -2 * (unit(xs) - (log_det - 0.5 * d * math.log(2 * math.pi))[None, :])
    lp = (gammaln(0.5 * (df + d)) - gammaln(0.5 * df) - 0.5 * d * jnp.log(df * math.pi) + log_det
          + 0.5 * d * jnp.log(factor))[None, :] - 0.5 * (df + d)[None, :] * jnp.log1p(factor[None, :] * maha / df[None, :])
  else:
    prec = jnp.broadcast_to(q.precisions_cholesky.reshape(beta.shape[0], -1), (beta.shape[0], d))
    means = q.means - origin[None, :]
    z2 = ((xs[:, None, :] - means[None]) * prec[None]) ** 2 * factor[None, :, None]
    lp = d * (gammaln(0.5 * (df + 1)) - gammaln(0.5 * df) - 0.5 * jnp.log(df * math.pi)
              + 0.5 * jnp.log(factor))[None, :] + jnp.sum(jnp.log(prec), axis=-1)[None, :] \
        - 0.5 * (df + 1)[None, :] * jnp.sum(jnp.log1p(z2 / df[None, :, None]), axis=-1)
  return jax.nn.logsumexp(lp + jnp.log(expected_weights(q))[None, :], axis=-1)


def predictive_log_prob(q: VariationalPosterior, x: ArrayLike) -> jax.Array:
  """Log-density of the posterior predictive: a mixture of Student-t's,
  weights E[pi_k] (Bishop 10.81).

  Full and tied: component k is a d-dimensional Student-t with
  `nu_k + 1 - d` degrees of freedom, location `m_k` and precision
  `(nu_k + 1 - d) beta_k / (1 + beta_k) W_k`. Diag and spherical (a Gamma
  per variance): a product over the dimensions of univariate t's with
  `nu_k` degrees of freedom and scale^2 `(1 + beta_k) / beta_k` times the
  posterior's variance.

  Args:
    q: posterior.
    x: `[n, d]` points.

  Returns:
    `[n]` log p(x | data).
  """
  return _predictive_log_prob(q, _checked(q, x))


# -- stochastic variational inference -------------------------------------------


class SVIState(NamedTuple):
  """State of stochastic variational inference.

  Attributes:
    posterior: current `VariationalPosterior` (the update of `stats`).
    stats: the statistics whose update the posterior is, at the data's size
      (working coordinates of `frame`).
    prior: the resolved prior (working coordinates).
    frame: the working coordinates, fixed by the first batch.
    n_updates: `[]` mini-batches absorbed.
    n_samples: `[]` the (weighted) size of the data the batches are drawn from.
    reg_covar: `[]` in the frame's units.
  """

  posterior: VariationalPosterior
  stats: _stats.SuffStats
  prior: VariationalPrior
  frame: Frame
  n_updates: jax.Array
  n_samples: jax.Array
  reg_covar: jax.Array


def svi_step_size(n_updates: ArrayLike, delay: float = 10.0, forgetting: float = 0.6) -> jax.Array:
  """Robbins-Monro step `rho_t = (t + delay) ** -forgetting` (Hoffman et al.'s
  tau and kappa; 0.5 < kappa <= 1)."""
  return (jnp.asarray(n_updates) + delay) ** -forgetting


@functools.partial(jax.jit, static_argnames=("options",))
def _svi_init(key, x, w, prior, reg_covar, n_samples, *, options):
  backend = _em.Local()
  frame, reg = _em.working_frame(backend, x, w, reg_covar)
  prior = _resolved_prior(_prior_to_frame(prior, frame), x, w, frame, backend=backend,
                          chunk_size=options.chunk_size)
  stats = _init.initial_stats(key, x, w, frame, None, backend=backend, options=options)
  stats = _online._scale(stats, n_samples / stats.total_weight)
  q, _ = posterior_from_stats(stats, prior, reg)
  return SVIState(q, stats, prior, frame, jnp.asarray(0), n_samples, reg)


def svi_init(
    key,
    x: ArrayLike,
    n_components: int,
    n_samples: float,
    *,
    prior: VariationalPrior | None = None,
    covariance_type: str = "full",
    weight_concentration_prior_type: str = "dirichlet_process",
    reg_covar: float = 1e-6,
    init: str = "kmeans",
    weights: ArrayLike | None = None,
    chunk_size: int | None = None,
) -> SVIState:
  """Starts stochastic variational inference from a first batch.

  The batch fixes the working coordinates and the data defaults of the
  prior; its initial responsibilities, scaled to `n_samples` rows, give the
  first posterior.

  Args:
    key: PRNG key (initialisation).
    x: `[b, d]` first batch (a representative sample of the data).
    n_components: `k` (static).
    n_samples: size of the data the batches are drawn from (sum of weights).
    prior: optional `VariationalPrior` (its covariance type and weight prior
      override the two arguments below); default scikit-learn's.
    covariance_type, weight_concentration_prior_type: of the default prior.
    reg_covar: added to the data's covariance diagonals.
    init: as in `fit_variational`.
    weights: optional `[b]` sample weights.
    chunk_size: rows per chunk (static).
  """
  x = _checks.data(x)
  d = x.shape[1]
  if prior is None:
    prior = variational_prior(n_components, d, covariance_type=covariance_type,
                              weight_concentration_prior_type=weight_concentration_prior_type, dtype=x.dtype)
  prior = _check_prior(prior, n_components, d, x.dtype)
  options = EMOptions(n_components, prior.covariance_type, 1, init, 1, chunk_size)
  _checks.n_components(n_components, x.shape[0])
  _checks.positive(n_samples, "n_samples")
  _checks.positive(reg_covar, "reg_covar", allow_zero=True)
  w = None if weights is None else _checks.as_weights(weights, x)
  _check_data_prior(prior, x, w)
  return _svi_init(key, x, w, prior, jnp.asarray(reg_covar, x.dtype), jnp.asarray(n_samples, x.dtype),
                   options=options)


def svi_update_unchecked(state: SVIState, x, w, step_size, chunk_size=None) -> SVIState:
  batch = variational_stats(_em.Local(), state.posterior, x, w, state.frame, chunk_size)
  rho = svi_step_size(state.n_updates + 1) if step_size is None else step_size
  rho = jnp.asarray(rho, state.stats.means.dtype)
  # (1 - rho) lambda + rho lambda_hat, lambda_hat the natural parameters of the batch seen
  # as the whole data: the prior's share cancels, leaving a convex combination of statistics.
  stats = _stats.merge(_online._scale(state.stats, 1 - rho),
                       _online._scale(batch, rho * state.n_samples / batch.total_weight))
  q, _ = posterior_from_stats(stats, state.prior, state.reg_covar)
  return state._replace(posterior=q, stats=stats, n_updates=state.n_updates + 1)


_svi_update_jit = jax.jit(svi_update_unchecked, static_argnums=4)


def svi_update(state: SVIState, x_batch: ArrayLike, step_size: ArrayLike | None = None, *,
               weights: ArrayLike | None = None, chunk_size: int | None = None) -> SVIState:
  """One natural-gradient step from a mini-batch (Hoffman et al. 2013).

  Args:
    state: current `SVIState`.
    x_batch: `[b, d]` points drawn from the data.
    step_size: `[]` rho in (0, 1]; None uses `svi_step_size(n_updates + 1)`.
    weights: optional `[b]` sample weights.
    chunk_size: rows per chunk (static).

  Returns:
    The updated `SVIState`; `svi_posterior(state)` is the posterior in the
    data's coordinates.
  """
  x = _checks.as_points(x_batch, point_estimate(state.posterior))
  w = None if weights is None else _checks.as_weights(weights, x)
  if step_size is not None:
    _checks.positive(step_size, "step_size")
    if _checks.is_concrete(step_size) and float(step_size) > 1:
      raise ValueError(f"step_size must be in (0, 1], got {float(step_size)}")
  return _svi_update_jit(state, x.astype(state.posterior.means.dtype), w, step_size, chunk_size)


def svi_posterior(state: SVIState) -> VariationalPosterior:
  """The posterior of an `SVIState` in the data's coordinates."""
  return _posterior_from_frame(state.posterior, state.frame)


# -- streamed fit ----------------------------------------------------------------


@functools.partial(jax.jit, static_argnames=("backend", "chunk_size"))
def _stream_stats(q, x, w, frame, *, backend, chunk_size):
  return variational_stats(backend, q, x, w, frame, chunk_size)


@functools.partial(jax.jit, static_argnames=("backend", "chunk_size"))
def _stream_moments(prior, x, w, frame, *, backend, chunk_size):
  return _data_moments(x, w, frame, prior.covariance_type, backend=backend, chunk_size=chunk_size)


@functools.partial(jax.jit, static_argnames=("backend",))
def _stream_frame(x, w, prior, reg_covar, *, backend):
  frame, reg = _em.working_frame(backend, x, w, reg_covar)
  return frame, reg, _prior_to_frame(prior, frame)


@functools.partial(jax.jit, static_argnames=("backend", "options"))
def _stream_init(key, x, w, prior, init_posterior, reg, frame, *, backend, options):
  return _start(key, x, w, reg, frame, prior, init_posterior, backend=backend, options=options)


@jax.jit
def _stream_m_step(stats, prior, reg):
  return posterior_from_stats(stats, prior, reg)


@jax.jit
def _stream_bound(stats, q):
  return stats.log_likelihood + _bound_terms(q)


def fit_variational_stream(
    key,
    batches,
    n_components: int,
    *,
    covariance_type: str = "full",
    weight_concentration_prior_type: str = "dirichlet_process",
    weight_concentration_prior: float | None = None,
    mean_precision_prior: float | None = None,
    mean_prior: ArrayLike | None = None,
    degrees_of_freedom_prior: float | None = None,
    covariance_prior: ArrayLike | None = None,
    max_iter: int = 100,
    tol: float = 1e-3,
    reg_covar: float = 1e-6,
    init: str = "kmeans",
    init_posterior: VariationalPosterior | None = None,
    chunk_size: int | None = None,
    mesh: jax.sharding.Mesh | None = None,
    axis: str | tuple[str, ...] = "data",
    progress: bool = True,
) -> VariationalFit:
  """`fit_variational` over a stream of batches, one pass per iteration (as
  `fit_stream`); equals it on the concatenated batches from the same start.

  The data defaults of the prior (mean and covariance) take one more pass;
  the initialisation reads the first batch only.

  Args:
    key: PRNG key (initialisation).
    batches: `[b, d]` arrays or `(x, weights)` pairs: a re-iterable or a
      callable returning a fresh iterator, as in `fit_stream`.
    n_components, covariance_type, weight_concentration_prior_type, the
      priors, max_iter, tol, reg_covar, init, init_posterior, chunk_size: as
      in `fit_variational`.
    mesh, axis: optional mesh whose axis `axis` splits each batch's rows.
    progress: show a tqdm bar over the passes.

  Returns:
    `VariationalFit`.
  """
  from . import _stream  # the host loop's pieces

  options = EMOptions(n_components, covariance_type, max_iter, init, 1, chunk_size)
  stream = _stream.open_stream(batches, mesh, axis)
  x0 = stream.first_x
  dtype, d = x0.dtype, x0.shape[1]
  if init_posterior is None:
    _checks.n_components(n_components, x0.shape[0])
  _checks.positive(tol, "tol", allow_zero=True)
  _checks.positive(reg_covar, "reg_covar", allow_zero=True)
  prior = variational_prior(
      n_components, d, covariance_type=covariance_type,
      weight_concentration_prior_type=weight_concentration_prior_type,
      weight_concentration_prior=weight_concentration_prior, mean_precision_prior=mean_precision_prior,
      mean_prior=mean_prior, degrees_of_freedom_prior=degrees_of_freedom_prior,
      covariance_prior=covariance_prior, dtype=dtype)
  if init_posterior is not None:
    init_posterior = _check_posterior(init_posterior, prior, n_components, d, dtype)
  backend = stream.backend
  x, w = stream.feed(stream.first)
  frame, reg, prior = _stream_frame(x, w, prior, jnp.asarray(reg_covar, dtype), backend=backend)
  if prior.mean is None or prior.covariance is None:
    moments = _stream._one_pass(_stream.Hooks(None, _stream_moments, _stream._merge), prior, frame,
                                stream.next_pass, stream.feed, backend, chunk_size)
    if not float(moments.total_weight) > 1:
      raise ValueError("the default covariance_prior (the data's covariance) needs a total weight above 1: "
                       "pass covariance_prior")
    prior = _with_data_defaults(prior, moments)
  q, ok = _stream_init(key, x, w, prior, init_posterior, reg, frame, backend=backend, options=options)
  m_step = lambda stats, q, reg: _stream_m_step(stats, prior, reg)
  hooks = _stream.Hooks(None, _stream_stats, _stream._merge, m_step, bound=_stream_bound)
  state = _stream.passes(hooks, stream, frame, reg, q, ok, tol, max_iter, chunk_size, progress)
  return _result_from(state, prior, frame)
