"""Component and mixture log-densities, responsibilities and predictions.

The component log-densities of a chunk of rows are one GEMM against all
components at once (`x @ [U_1 ... U_k]` for full covariances), which is what
makes EM fast; everything else is a cheap `[n, k]` reduction.
"""

import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

from . import _checks, _linalg, _padding
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
  Working in coordinates shifted near the data mean keeps the full path's
  `U^T x - U^T mu` accurate.
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
    # Squared distances as differences, not the expanded |x|^2 - 2 x.m + |m|^2:
    # the expansion loses every digit for a tight component far from the origin.
    white_means = _linalg.mm(means, prec)

    def f(xs):
      y = _linalg.mm(xs, prec)
      return const[None, :] - 0.5 * jnp.sum((y[:, None, :] - white_means[None]) ** 2, axis=-1)

  elif cov_type == "diag":

    def f(xs):
      return const[None, :] - 0.5 * jnp.sum(((xs[:, None, :] - means[None]) * prec[None]) ** 2, axis=-1)

  else:  # spherical

    def f(xs):
      sq_dist = jnp.sum((xs[:, None, :] - means[None]) ** 2, axis=-1)
      return const[None, :] - 0.5 * (prec**2)[None, :] * sq_dist

  return f


def _component_log_prob(params: GMMParams, x: jax.Array, with_weights: bool = True) -> jax.Array:
  shift = jax.lax.stop_gradient(model_mean(params))
  return component_log_prob_fn(params, shift, with_weights)(x - shift[None, :])


def _rows(fn, params: GMMParams, x: ArrayLike, weights: ArrayLike | None = None, check=_checks.params):
  """Checks the inputs (`check(params)` the parameters), then `fn(params, x,
  w)` jitted; concrete rows are padded to a size class (zero weight), so one
  compile serves many row counts. Returns the outputs with leading dimension
  `n`, sliced back."""
  check(params)
  x = _checks.as_points(x, params)
  w = None if weights is None else _checks.as_weights(weights, x)
  n = x.shape[0]
  if not all(_checks.is_concrete(a) for a in jax.tree.leaves((params, x, w))):
    return fn(params, x, w)  # under a transformation: the caller's shapes are static already
  rows = _padding.size_class(n, _PADDED_ROWS)
  out = fn(params, *_padding.pad_rows(x, w, rows))
  return out if rows == n else _padding.unpad(out, n)


# Above this many rows, sizes are padded to whole multiples of it.
_PADDED_ROWS = 1 << 14


class Scorers(NamedTuple):
  """The jitted `(params, x, w) -> ...` functions behind the public scoring
  functions of a mixture model, built by `scorers`."""

  log_prob: Callable
  component_log_prob: Callable  # without the mixing weights
  e_step: Callable
  predict: Callable


def scorers(component_log_prob_of: Callable) -> Scorers:
  """`Scorers` of a model whose `component_log_prob_of(params, x, with_weights)`
  gives the `[n, k]` log-densities (plus the log mixing weights when
  `with_weights`)."""

  def log_prob(params, x, w):
    return jax.nn.logsumexp(component_log_prob_of(params, x, True), axis=-1)

  def component_log_prob(params, x, w):
    return component_log_prob_of(params, x, False)

  def e_step(params, x, w):
    lp = component_log_prob_of(params, x, True)
    ll = jax.nn.logsumexp(lp, axis=-1)
    mean_ll = jnp.mean(ll) if w is None else jnp.sum(jnp.where(w > 0, w * ll, 0)) / jnp.sum(w)
    return mean_ll, lp - ll[:, None]

  def predict(params, x, w):
    return jnp.argmax(component_log_prob_of(params, x, True), axis=-1)

  return Scorers(*(jax.jit(f) for f in (log_prob, component_log_prob, e_step, predict)))


_scorers = scorers(_component_log_prob)


def component_log_prob(params: GMMParams, x: ArrayLike) -> jax.Array:
  """Per-component log-densities log N(x | mu_k, Sigma_k).

  Args:
    params: mixture parameters.
    x: `[n, d]` points.

  Returns:
    `[n, k]` log-densities, without the mixing weights.
  """
  return _rows(_scorers.component_log_prob, params, x)


def log_prob(params: GMMParams, x: ArrayLike) -> jax.Array:
  """Mixture log-density log sum_k pi_k N(x | mu_k, Sigma_k).

  Args:
    params: mixture parameters.
    x: `[n, d]` points.

  Returns:
    `[n]` log-densities.
  """
  return _rows(_scorers.log_prob, params, x)


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
  return _rows(_scorers.e_step, params, x, weights)


def predict_proba(params: GMMParams, x: ArrayLike) -> jax.Array:
  """`[n, k]` posterior probabilities p(component | x)."""
  return jnp.exp(e_step(params, x)[1])


def predict(params: GMMParams, x: ArrayLike) -> jax.Array:
  """`[n]` index of the most probable component of each point."""
  return _rows(_scorers.predict, params, x)
