"""Component and mixture log-densities, responsibilities and predictions.

The component log-densities of a chunk of rows are one GEMM against all
components at once (`x @ [U_1 ... U_k]` for full covariances), which is what
makes EM fast; everything else is a cheap `[n, k]` reduction.
"""

import math
from typing import Callable

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from . import _checks, _linalg
from ._types import GMMParams

LogProbFn = Callable[[jax.Array], jax.Array]


def model_mean(params: GMMParams) -> jax.Array:
  """`[d]` mean of the mixture; a shift that keeps float32 sums well scaled."""
  return _linalg.mm(params.weights, params.means)


def _log_weights(weights: jax.Array) -> jax.Array:
  """log pi_k, with -inf and a zero derivative (not NaN) for switched-off components."""
  positive = weights > 0
  return jnp.where(positive, jnp.log(jnp.where(positive, weights, 1)), -jnp.inf)


def component_log_prob_fn(params: GMMParams, shift: jax.Array, with_weights: bool = True) -> LogProbFn:
  """Returns `f(x - shift) -> [n, k]` log N(x | mu_k, Sigma_k) + log pi_k
  (without the `log pi_k` term when `with_weights` is False).

  Per-parameter work (stacking the Cholesky factors, log-determinants) is done
  once here, so the returned function is cheap to call on many chunks.
  Working in coordinates shifted near the data mean keeps the expanded
  quadratic forms of the diag/spherical/tied paths free of cancellation.
  """
  cov_type = params.covariance_type
  k, d = params.means.shape
  prec = params.precisions_cholesky
  means = params.means - shift[None, :]
  const = jnp.broadcast_to(_linalg.log_det_cholesky(prec, cov_type, d) - 0.5 * d * math.log(2 * math.pi), (k,))
  if with_weights:
    const = const + _log_weights(params.weights)

  if cov_type == "full":
    # All k whitening maps in one [d, k*d] matrix: one GEMM per chunk.
    stacked = jnp.transpose(prec, (1, 0, 2)).reshape(d, k * d)
    offsets = jnp.einsum("kd,kde->ke", means, prec, precision=_linalg.PRECISION)

    def f(xs):
      y = _linalg.mm(xs, stacked).reshape(xs.shape[0], k, d) - offsets[None]
      return const[None, :] - 0.5 * jnp.sum(y * y, axis=-1)

  elif cov_type == "tied":
    white_means = _linalg.mm(means, prec)
    sq_means = jnp.sum(white_means**2, axis=-1)

    def f(xs):
      y = _linalg.mm(xs, prec)
      maha = jnp.sum(y * y, axis=-1, keepdims=True) - 2 * _linalg.mm(y, white_means.T) + sq_means[None, :]
      return const[None, :] - 0.5 * jnp.maximum(maha, 0)

  elif cov_type == "diag":
    prec2 = prec**2
    lin = means * prec2
    sq_means = jnp.sum(means * lin, axis=-1)

    def f(xs):
      maha = _linalg.mm(xs * xs, prec2.T) - 2 * _linalg.mm(xs, lin.T) + sq_means[None, :]
      return const[None, :] - 0.5 * jnp.maximum(maha, 0)

  else:  # spherical
    prec2 = prec**2
    sq_means = jnp.sum(means**2, axis=-1)

    def f(xs):
      sq_dist = jnp.sum(xs * xs, axis=-1, keepdims=True) - 2 * _linalg.mm(xs, means.T) + sq_means[None, :]
      return const[None, :] - 0.5 * prec2[None, :] * jnp.maximum(sq_dist, 0)

  return f


def _component_log_prob(params: GMMParams, x: jax.Array, with_weights: bool = True) -> jax.Array:
  shift = jax.lax.stop_gradient(model_mean(params))
  return component_log_prob_fn(params, shift, with_weights)(x - shift[None, :])


def component_log_prob(params: GMMParams, x: ArrayLike) -> jax.Array:
  """Per-component log-densities log N(x | mu_k, Sigma_k).

  Args:
    params: mixture parameters.
    x: `[n, d]` points.

  Returns:
    `[n, k]` log-densities, without the mixing weights.
  """
  x = _checks.as_points(x, params)
  return _component_log_prob(params, x, with_weights=False)


def log_prob(params: GMMParams, x: ArrayLike) -> jax.Array:
  """Mixture log-density log sum_k pi_k N(x | mu_k, Sigma_k).

  Args:
    params: mixture parameters.
    x: `[n, d]` points.

  Returns:
    `[n]` log-densities.
  """
  x = _checks.as_points(x, params)
  return jax.nn.logsumexp(_component_log_prob(params, x), axis=-1)


def e_step(
    params: GMMParams, x: ArrayLike, weights: ArrayLike | None = None
) -> tuple[jax.Array, jax.Array]:
  """Expectation step.

  Args:
    params: mixture parameters.
    x: `[n, d]` points.
    weights: optional `[n]` non-negative sample weights.

  Returns:
    `(mean_log_likelihood [], log_resp [n, k])`: the (weighted) mean of
    log p(x_i) and the log-responsibilities log p(component | x_i).
  """
  x = _checks.as_points(x, params)
  lp = _component_log_prob(params, x)
  ll = jax.nn.logsumexp(lp, axis=-1, keepdims=True)
  log_resp = lp - ll
  if weights is None:
    return jnp.mean(ll), log_resp
  w = _checks.as_weights(weights, x)
  return jnp.sum(w * ll[:, 0]) / jnp.sum(w), log_resp


def predict_proba(params: GMMParams, x: ArrayLike) -> jax.Array:
  """`[n, k]` posterior probabilities p(component | x)."""
  return jnp.exp(e_step(params, x)[1])


def predict(params: GMMParams, x: ArrayLike) -> jax.Array:
  """`[n]` index of the most probable component of each point."""
  x = _checks.as_points(x, params)
  return jnp.argmax(_component_log_prob(params, x), axis=-1)
