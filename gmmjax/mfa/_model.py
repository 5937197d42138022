"""Mixtures of factor analysers: parameters, densities, posteriors, sampling.

Component k has covariance `W_k W_k^T + diag(psi_k)`, `W_k` of shape `[d, l]`
with `l << d`. Densities go through the `[l, l]` matrix `M_k = I + W_k^T
Psi_k^-1 W_k` (Woodbury identity, matrix determinant lemma):

  log |W W^T + Psi| = log |M| + sum log psi,
  (x - mu)^T (W W^T + Psi)^-1 (x - mu) = |Psi^-1/2 (x - mu - W z*)|^2 + |z*|^2,

z* = M^-1 W^T Psi^-1 (x - mu) = E[z | x], so a pass costs O(n k d l) and no
`[d, d]` matrix is ever formed (see `chunk_terms` for why this form).
"""

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import solve_triangular
from jax.typing import ArrayLike

from .. import _checks, _chunking, _linalg, _padding
from .._frame import Frame
from .._logprob import _log_weights, _rows, scorers
from .._types import GMMParams


@dataclasses.dataclass(frozen=True)
class MFAParams:
  """Parameters of a mixture of factor analysers.

  Attributes:
    weights: `[k]` mixing proportions, summing to one.
    means: `[k, d]` component means.
    factors: `[k, d, l]` factor loadings `W_k`.
    noise_variances: `[k, d]` diagonal noise variances `psi_k` (all equal
      along `d` within a component when `isotropic`).
    isotropic: static; True for a mixture of probabilistic PCA (MPPCA), whose
      noise is `sigma_k^2 I`.
  """

  weights: jax.Array
  means: jax.Array
  factors: jax.Array
  noise_variances: jax.Array
  isotropic: bool = False

  @property
  def n_components(self) -> int:
    return self.means.shape[-2]

  @property
  def n_features(self) -> int:
    return self.means.shape[-1]

  @property
  def n_factors(self) -> int:
    return self.factors.shape[-1]

  @property
  def covariances(self) -> jax.Array:
    """`[k, d, d]` covariances `W W^T + diag(psi)` (for checks and interop)."""
    w, psi = self.factors, self.noise_variances
    return jnp.einsum("kdl,kel->kde", w, w, precision=_linalg.PRECISION) + jax.vmap(jnp.diag)(psi)


jax.tree_util.register_dataclass(
    MFAParams, data_fields=["weights", "means", "factors", "noise_variances"], meta_fields=["isotropic"])


def check_params(p: MFAParams, n_features: int | None = None) -> MFAParams:
  """Checks parameters given by a caller: consistent shapes, finite values,
  weights that are a distribution, positive noise variances (equal along `d`
  when isotropic). Value checks run on concrete arrays only."""
  if not isinstance(p, MFAParams):
    raise ValueError(f"expected MFAParams, got {type(p).__name__}")  # noqa: TRY004 (the project raises ValueError)
  for name in ("weights", "means", "factors", "noise_variances"):
    a = getattr(p, name)
    dtype = a.dtype if hasattr(a, "dtype") else np.asarray(a).dtype
    if not jnp.issubdtype(dtype, jnp.floating):
      raise ValueError(f"params.{name} must be real floats, got dtype {dtype}")
  if np.ndim(p.means) != 2:
    raise ValueError(f"params.means must have shape [k, d], got {np.shape(p.means)}")
  k, d = p.means.shape
  if np.shape(p.weights) != (k,):
    raise ValueError(f"params.weights must have shape [{k}], got {np.shape(p.weights)}")
  if np.ndim(p.factors) != 3 or np.shape(p.factors)[:2] != (k, d):
    raise ValueError(f"params.factors must have shape [{k}, {d}, l], got {np.shape(p.factors)}")
  if np.shape(p.noise_variances) != (k, d):
    raise ValueError(f"params.noise_variances must have shape [{k}, {d}], got {np.shape(p.noise_variances)}")
  if n_features is not None and d != n_features:
    raise ValueError(f"params have {d} features but x has {n_features}")
  for name in ("weights", "means", "factors", "noise_variances"):
    _checks._check_finite(getattr(p, name), f"params.{name}")
  if _checks.is_concrete(p.weights):
    w = np.asarray(p.weights, np.float64)
    if np.any(w < 0):
      raise ValueError(f"params.weights must be non-negative, got {w}")
    if abs(np.sum(w) - 1) > max(1e-6, 10 * k * float(jnp.finfo(p.weights.dtype).eps)):
      raise ValueError(f"params.weights must sum to one, got a sum of {np.sum(w)}")
  if _checks.is_concrete(p.noise_variances):
    psi = np.asarray(p.noise_variances, np.float64)
    if np.any(psi <= 0):
      raise ValueError("params.noise_variances must be positive")
    eps = float(jnp.finfo(p.noise_variances.dtype).eps)
    if p.isotropic and np.any(np.ptp(psi, axis=1) > 10 * eps * np.max(psi, axis=1)):
      raise ValueError("isotropic params.noise_variances must be equal along the features of each component")
  return p


def to_gmm(params: MFAParams) -> GMMParams:
  """The equivalent full-covariance `GMMParams` (forms `[k, d, d]`; for checks
  and interop, not for large `d`)."""
  check_params(params)
  return GMMParams.from_covariances(params.weights, params.means, params.covariances, "full")


def to_unconstrained(params: MFAParams) -> dict:
  """Unconstrained arrays for gradient training (Adam on mini-batches):
  `{"logits" [k], "means" [k, d], "factors" [k, d, l], "log_noise"}`, the
  last `[k, d]` (`[k, 1]` when isotropic). `from_unconstrained` inverts it."""
  log_noise = jnp.log(params.noise_variances)
  return {"logits": jnp.log(params.weights), "means": params.means, "factors": params.factors,
          "log_noise": log_noise[:, :1] if params.isotropic else log_noise}


def from_unconstrained(u: dict, isotropic: bool = False) -> MFAParams:
  """`MFAParams` from `to_unconstrained`'s arrays: weights `softmax(logits)`,
  noise variances `exp(log_noise)`; differentiable, so `-mean(log_prob)` of
  a mini-batch is a loss for `optax` / `gmmjax.train`."""
  means = u["means"]
  noise = jnp.broadcast_to(jnp.exp(u["log_noise"]), means.shape)
  return MFAParams(jax.nn.softmax(u["logits"]), means, u["factors"], noise, isotropic)


def to_frame(params: MFAParams, frame: Frame) -> MFAParams:
  s = frame.scale
  return MFAParams(params.weights, (params.means - frame.shift[None, :]) / s, params.factors / s,
                   params.noise_variances / (s * s), params.isotropic)


def from_frame(params: MFAParams, frame: Frame) -> MFAParams:
  s = frame.scale
  return MFAParams(params.weights, params.means * s + frame.shift[None, :], params.factors * s,
                   params.noise_variances * (s * s), params.isotropic)


class Factorised(NamedTuple):
  """Per-component quantities of the Woodbury form, computed once per pass.

  Attributes:
    inv_psi: `[k, d]` 1 / psi.
    proj: `[d, k*l]` the maps `Psi_k^-1 W_k M_k^-1` side by side, so that
      E[z | x, k] = proj_k^T (x - mu_k).
    m_inv: `[k, l, l]` M^-1 = (I + W^T Psi^-1 W)^-1, the posterior covariance
      of the factors.
    const: `[k]` log pi_k - (d log 2 pi + log |Sigma_k|) / 2, with log |Sigma|
      = log |M| + sum log psi (without log pi_k when unweighted).
  """

  inv_psi: jax.Array
  proj: jax.Array
  m_inv: jax.Array
  const: jax.Array


def factorise(params: MFAParams, with_weights: bool = True) -> Factorised:
  """The Woodbury quantities of `params`, from the QR factorisation of
  `B = [Psi^-1/2 W; I]` (`[d + l, l]`, `B^T B = M`): R has the square root of
  M's condition number, so E[z | x] = R^-1 Q_1^T Psi^-1/2 (x - mu) keeps its
  digits where M, with pixels of tiny noise, is ill-conditioned."""
  w, psi = params.factors, params.noise_variances
  k, d, l = w.shape
  eye = jnp.broadcast_to(jnp.eye(l, dtype=w.dtype), (k, l, l))
  sqrt_inv = jax.lax.rsqrt(psi)
  q, r = jnp.linalg.qr(jnp.concatenate([w * sqrt_inv[:, :, None], eye], axis=1))
  # One LAPACK call after the other: independent ones side by side can deadlock XLA's CPU thread
  # pool (see `_linalg._matrix_precision_cholesky`).
  r_inv = solve_triangular(r, eye, lower=False)
  proj = jnp.matmul(r_inv, jnp.swapaxes(q[:, :d] * sqrt_inv[:, :, None], -1, -2),
                    precision=_linalg.PRECISION)  # [k, l, d]: R^-1 Q_1^T Psi^-1/2
  m_inv = jnp.matmul(r_inv, jnp.swapaxes(r_inv, -1, -2), precision=_linalg.PRECISION)
  log_det = jnp.sum(jnp.log(psi), axis=-1) + 2 * jnp.sum(jnp.log(jnp.abs(jnp.diagonal(r, axis1=-2, axis2=-1))), -1)
  const = -0.5 * (d * math.log(2 * math.pi) + log_det)
  if with_weights:
    const = const + _log_weights(params.weights)
  return Factorised(1 / psi, jnp.transpose(proj, (2, 0, 1)).reshape(d, k * l), m_inv, const)


def chunk_width(d: int, k: int, l: int) -> int:
  """Elements per row that size a pass's chunks (`_chunking.default_chunk_size`):
  a chunk holds the `[c, k l]` latent means (and a few arrays like them) and,
  one component at a time, the `[c, d]` residuals with their temporaries
  (about four arrays); never a `[c, k, d]` array."""
  return 4 * max(d, k * l)


def _chunk_rows(n: int, params: MFAParams) -> int:
  return _chunking.default_chunk_size(n, chunk_width(*params.factors.shape))


def map_residuals(params: MFAParams, xs: jax.Array, ez: jax.Array, fn, per_component):
  """`fn(e, a_k)` stacked over the components k, with e = x - mu_k - W_k z*_k
  `[c, d]` the residuals of the rows `xs [c, d]` (`ez [c, k, l]` their z*)
  and `a_k` the k-th slice of `per_component` (arrays `[k, ...]`). One
  component at a time, and taken anew by every use: on CPU, keeping a chunk's
  `[k, c, d]` residuals between the quadratic form and the noise statistics
  costs more (memory traffic) than the thin `[c, l] x [l, d]` GEMM that
  recomputes them."""

  def one(t):
    mean, factors, z, a = t
    return fn(xs - mean[None, :] - jnp.matmul(z, factors.T, precision=_linalg.PRECISION), a)

  return jax.lax.map(one, (params.means, params.factors, jnp.swapaxes(ez, 0, 1), per_component))


def chunk_terms(fac: Factorised, params: MFAParams, xs: jax.Array):
  """For rows `xs [c, d]`: `(log pi_k p(x | k) [c, k], z* = E[z | x, k] [c, k, l])`.

  The quadratic form is taken as the minimum it is,
  (x - mu)^T Sigma^-1 (x - mu) = min_z |Psi^-1/2 (x - mu - W z)|^2 + |z|^2,
  attained at z*: two positive terms, where the Woodbury form |Psi^-1/2 (x -
  mu)|^2 - |L^-1 W^T Psi^-1 (x - mu)|^2 cancels to a few digits in float32
  when the noise is small against the factors' variance (image pixels). An
  error in z* changes the minimum only to second order, so z* of all
  components comes from one GEMM of the rows against the `[d, k l]` maps;
  the residuals are taken on the differences x - mu_k (`map_residuals`), so
  a tight component far from the origin keeps its digits.
  """
  k, _, l = params.factors.shape
  means = params.means
  offsets = _linalg.mm(means.reshape(k, 1, -1), fac.proj.reshape(-1, k, l).transpose(1, 0, 2))[:, 0]  # [k, l]
  ez = _linalg.mm(xs, fac.proj).reshape(xs.shape[0], k, l) - offsets[None]
  quad = map_residuals(params, xs, ez, lambda e, inv_psi: _linalg.mm(e * e, inv_psi), fac.inv_psi)
  return fac.const[None, :] - 0.5 * (quad.T + jnp.sum(ez * ez, axis=-1)), ez


def _component_log_prob(params: MFAParams, x: jax.Array, with_weights: bool = True) -> jax.Array:
  # No shift of origin: every term is taken on the differences x - mu_k.
  fac = factorise(params, with_weights)
  fn = lambda rows: chunk_terms(fac, params, rows[0])[0]
  return _chunking.chunked_map(fn, (x,), _chunk_rows(x.shape[0], params))


_scorers = scorers(_component_log_prob)


@jax.jit
def _posterior(params, x, w):
  fac = factorise(params)

  def fn(rows):
    lp, ez = chunk_terms(fac, params, rows[0])
    return jnp.concatenate([jax.nn.log_softmax(lp, axis=-1)[:, :, None], ez], axis=-1)

  out = _chunking.chunked_map(fn, (x,), _chunk_rows(x.shape[0], params))
  return jnp.exp(out[:, :, 0]), out[:, :, 1:], fac.m_inv


def _rows_of(fn, params, x, weights=None):
  return _rows(fn, params, x, weights, check=check_params)


def component_log_prob(params: MFAParams, x: ArrayLike) -> jax.Array:
  """`[n, k]` per-component log-densities log N(x | mu_k, W_k W_k^T + Psi_k)
  of `x [n, d]`, without the mixing weights."""
  return _rows_of(_scorers.component_log_prob, params, x)


def log_prob(params: MFAParams, x: ArrayLike) -> jax.Array:
  """`[n]` mixture log-densities of `x [n, d]` (per-image log-likelihoods,
  e.g. anomaly scores)."""
  return _rows_of(_scorers.log_prob, params, x)


def e_step(params: MFAParams, x: ArrayLike, weights: ArrayLike | None = None) -> tuple[jax.Array, jax.Array]:
  """`(mean_log_likelihood [], log_resp [n, k])` of `x [n, d]` (optional `[n]`
  sample weights weigh the mean), as `gmmjax.e_step`."""
  return _rows_of(_scorers.e_step, params, x, weights)


def predict(params: MFAParams, x: ArrayLike) -> jax.Array:
  """`[n]` index of the most probable component of each point."""
  return _rows_of(_scorers.predict, params, x)


def posterior(params: MFAParams, x: ArrayLike) -> tuple[jax.Array, jax.Array, jax.Array]:
  """The posterior over the component and the latent factors of `x [n, d]`.

  Returns:
    `(resp [n, k], latent_means [n, k, l], latent_covariances [k, l, l])`:
    p(component k | x), and p(z | x, k) = N(latent_means[:, k],
    latent_covariances[k]) with `latent_covariances[k] = M_k^-1` the same for
    every point.
  """
  check_params(params)
  x = _checks.as_points(x, params)
  n = x.shape[0]
  if not all(_checks.is_concrete(a) for a in jax.tree.leaves((params, x))):
    return _posterior(params, x, None)
  rows = _padding.size_class(n, 1 << 14)
  resp, means, cov = _posterior(params, *_padding.pad_rows(x, None, rows))
  return (*_padding.unpad((resp, means), n), cov) if rows != n else (resp, means, cov)


def _conditional_one(params: MFAParams, x, observed):
  """Inpainting of one row: the observed block's factor analysers are those
  of `params` with `1 / psi` zero at the missing features (Woodbury on the
  observed block), and E[x_m | x_o, k] = mu_m + W_m E[z | x_o, k]."""
  obs = observed.astype(x.dtype)
  inv_psi = obs[None, :] / params.noise_variances
  w = params.factors
  wp = w * inv_psi[:, :, None]
  l = w.shape[-1]
  m = jnp.eye(l, dtype=w.dtype)[None] + jnp.einsum("kdl,kdm->klm", w, wp, precision=_linalg.PRECISION)
  chol = jnp.linalg.cholesky(0.5 * (m + jnp.swapaxes(m, -1, -2)))
  y = x[None, :] - params.means
  b = jnp.einsum("kdl,kd->kl", wp, y, precision=_linalg.PRECISION)  # W^T Psi_o^-1 (x - mu)
  a = solve_triangular(chol, b[:, :, None], lower=True)[:, :, 0]
  log_det = jnp.sum(obs[None, :] * jnp.log(params.noise_variances), axis=-1) + 2 * jnp.sum(
      jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), axis=-1)
  quad = jnp.sum(y * y * inv_psi, axis=-1) - jnp.sum(a * a, axis=-1)
  lp = _log_weights(params.weights) - 0.5 * (jnp.sum(obs) * math.log(2 * math.pi) + log_det + quad)
  ll = jax.nn.logsumexp(lp)
  resp = jnp.exp(lp - ll)
  ez = solve_triangular(chol, a[:, :, None], lower=True, trans="T")[:, :, 0]  # M^-1 b
  cond = params.means + jnp.einsum("kdl,kl->kd", w, ez, precision=_linalg.PRECISION)
  filled = jnp.where(observed, x, _linalg.mm(resp, cond))
  return filled, resp, ll


@jax.jit
def _inpaint(params, x, observed):
  one = jax.vmap(lambda x, o: _conditional_one(params, x, o))
  width = params.n_components * params.n_features * params.n_factors
  chunk = max(1, min(x.shape[0], _chunking.default_chunk_size(x.shape[0], width) // 16))
  n = x.shape[0]
  out = _chunking.chunked_map(lambda rows: jnp.concatenate(
      [a.reshape(rows[0].shape[0], -1) for a in one(rows[0], rows[1])], axis=1), (x, observed), chunk)
  d, k = params.n_features, params.n_components
  return out[:, :d].reshape(n, d), out[:, d:d + k], out[:, d + k]


def inpaint(params: MFAParams, x: ArrayLike, observed: ArrayLike) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Fills in the missing features of each row by their conditional mean.

  Per component, x_m | x_o is Gaussian with mean mu_m + W_m E[z | x_o, k]; the
  mixture's conditional mean weighs these by p(k | x_o), the responsibilities
  of the observed features alone. Costs O(k d l^2) per row, no `[d, d]`
  matrix.

  Args:
    params: mixture parameters.
    x: `[n, d]` rows; values at missing features are ignored (but must be finite).
    observed: `[n, d]` or `[d]` booleans, True where a feature is observed.

  Returns:
    `(filled [n, d], resp [n, k], log_prob_observed [n])`: `x` with its missing
    features replaced by the conditional mean, p(k | x_o), and log p(x_o).
  """
  check_params(params)
  x = _checks.as_points(x, params)
  observed = np.asarray(observed) if _checks.is_concrete(observed) else observed
  if observed.dtype != bool:
    raise ValueError(f"observed must be booleans, got dtype {observed.dtype}")
  observed = jnp.broadcast_to(observed, x.shape) if observed.shape == x.shape[1:] else observed
  if observed.shape != x.shape:
    raise ValueError(f"observed must have shape {x.shape} or {x.shape[1:]}, got {observed.shape}")
  return _inpaint(params, x, observed)


def _sample(key, params: MFAParams, n: int, noise: bool = True):
  k_key, z_key, e_key = jax.random.split(key, 3)
  _, d, l = params.factors.shape
  dtype = params.means.dtype
  components = jax.random.categorical(k_key, _log_weights(params.weights), shape=(n,))
  z = jax.random.normal(z_key, (n, l), dtype)
  eps = jax.random.normal(e_key, (n, d), dtype)

  def rows(r):
    c, z, eps = r
    loading = jnp.einsum("cdl,cl->cd", params.factors[c], z, precision=_linalg.PRECISION)
    mean = params.means[c] + loading
    return mean + jnp.sqrt(params.noise_variances[c]) * eps if noise else mean

  chunk = _chunking.default_chunk_size(n, d * l) // 16
  return _chunking.chunked_map(rows, (components, z, eps), max(1, min(chunk, n))), components


_sample_jit = jax.jit(_sample, static_argnums=(2, 3))


def sample(key, params: MFAParams, n: int, *, noise: bool = True) -> tuple[jax.Array, jax.Array]:
  """Draws `n` samples `x = mu_k + W_k z + sqrt(psi_k) eps`, `z ~ N(0, I_l)`,
  `eps ~ N(0, I_d)`, `k ~ weights`.

  `noise=False` leaves out `sqrt(psi_k) eps`: each draw is the mean of p(x | z, k), as a VAE's
  decoder mean, with the same `k` and `z` as the draw with noise from the same key.

  Returns:
    `(x [n, d], components [n])`, as `gmmjax.sample`.
  """
  if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
    raise ValueError(f"n must be a non-negative integer, got {n!r}")
  n = int(n)
  check_params(params)
  if any(isinstance(a, jax.core.Tracer) for a in jax.tree.leaves((key, params))):
    return _sample(key, params, n, bool(noise))
  rows = _padding.size_class(max(n, 1), 1 << 14)
  return _padding.unpad(_sample_jit(key, params, rows, bool(noise)), n)
