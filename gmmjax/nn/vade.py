"""VaDE: a variational autoencoder whose prior is a learnable Gaussian mixture.

Generative model: c ~ Cat(pi), z | c ~ N(mu_c, diag sigma_c^2), x | z ~ p(x | decoder(z)).
Inference: q(z, c | x) = q(z | x) q(c | x) with q(z | x) = N(mean(x), diag exp(log_var(x))).

Two estimators of the evidence lower bound are provided:

* "closed_form": the KL part is exact. Given q(z | x), the best q(c | x) is
  gamma_c ∝ pi_c exp(E_q[log N(z | mu_c, sigma_c^2)]), computed in log space
  with logsumexp, and the bound becomes
  E_q[log p(x | z)] + logsumexp_c(log pi_c + E_q[log N(z | c)]) + H[q(z | x)].
  Only the reconstruction term is sampled.
* "monte_carlo": log p(x | z) + log p(z) - log q(z | x) at sampled z, with the
  mixture marginalised exactly by `gmmjax.log_prob`. Its expectation is the
  tighter bound with c integrated out; the gap to "closed_form" is
  E_q[KL(q(c | x) || p(c | z))] >= 0.

Mixture parameters are unconstrained (logits, means, log-variances), so no
optimiser step can make them invalid.
"""

import dataclasses
import math
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.typing import ArrayLike

import gmmjax

from . import networks

ELBO_METHODS = ("closed_form", "monte_carlo")

_LOG_2PI = math.log(2 * math.pi)


class PriorParams(NamedTuple):
  """Unconstrained parameters of the diagonal Gaussian mixture prior p(z).

  Attributes:
    logits: `[k]` unnormalised log mixing weights.
    means: `[k, l]` component means.
    log_vars: `[k, l]` log-variances.
  """

  logits: jax.Array
  means: jax.Array
  log_vars: jax.Array


class VaDEParams(NamedTuple):
  """All trainable parameters: encoder and decoder variables and the prior."""

  encoder: Any
  decoder: Any
  prior: PriorParams


def prior_to_gmm(prior: PriorParams) -> gmmjax.GMMParams:
  """The prior as diagonal `gmmjax.GMMParams` (differentiable)."""
  return gmmjax.GMMParams(
      weights=jax.nn.softmax(prior.logits),
      means=prior.means,
      precisions_cholesky=jnp.exp(-0.5 * prior.log_vars),
      covariance_type="diag",
  )


def prior_from_gmm(gmm: gmmjax.GMMParams) -> PriorParams:
  """Unconstrained prior from fitted `GMMParams` (any covariance type: its diagonal is kept)."""
  k, l = gmm.means.shape
  cov = gmm.covariances
  if gmm.covariance_type == "full":
    var = jnp.diagonal(cov, axis1=-2, axis2=-1)
  elif gmm.covariance_type == "tied":
    var = jnp.broadcast_to(jnp.diagonal(cov)[None, :], (k, l))
  elif gmm.covariance_type == "spherical":
    var = jnp.broadcast_to(cov[:, None], (k, l))
  else:
    var = cov
  tiny = jnp.finfo(gmm.means.dtype).tiny
  return PriorParams(
      logits=jnp.log(jnp.maximum(gmm.weights, tiny)),
      means=gmm.means,
      log_vars=jnp.log(jnp.maximum(var, tiny)),
  )


def standard_prior(n_components: int, latent_dim: int, dtype=jnp.float32) -> PriorParams:
  """Equal weights, zero means, unit variances: a placeholder before `init_prior`."""
  return PriorParams(
      logits=jnp.zeros((n_components,), dtype),
      means=jnp.zeros((n_components, latent_dim), dtype),
      log_vars=jnp.zeros((n_components, latent_dim), dtype),
  )


@dataclasses.dataclass(frozen=True)
class VaDE:
  """Model definition (static): networks, sizes and observation likelihood.

  Attributes:
    encoder: Flax module `x -> (mean [n, l], log_var [n, l])`.
    decoder: Flax module `z [n, l] -> [n, 28, 28, 1]` likelihood parameters.
    n_components: `k`, clusters in the prior.
    latent_dim: `l`.
    likelihood: "bernoulli" (decoder gives logits) or "gaussian" (unit-scale means).
  """

  encoder: nn.Module
  decoder: nn.Module
  n_components: int
  latent_dim: int
  likelihood: str = "bernoulli"

  def __post_init__(self):
    if self.likelihood not in networks.LIKELIHOODS:
      raise ValueError(f"likelihood must be one of {networks.LIKELIHOODS}, got {self.likelihood!r}")
    for name in ("n_components", "latent_dim"):
      value = getattr(self, name)
      if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")

  def init(self, key, x: ArrayLike) -> VaDEParams:
    """Initial parameters; `x: [n, 28, 28, 1]` fixes input shape and dtype."""
    x = jnp.asarray(x)
    enc_key, dec_key = jax.random.split(key)
    encoder = self.encoder.init(enc_key, x[:1])
    z = jnp.zeros((1, self.latent_dim), x.dtype)
    decoder = self.decoder.init(dec_key, z)
    return VaDEParams(encoder, decoder, standard_prior(self.n_components, self.latent_dim, x.dtype))

  def encode(self, params: VaDEParams, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """`x: [n, ...]` -> `(mean [n, l], log_var [n, l])` of q(z | x)."""
    return self.encoder.apply(params.encoder, x)

  def decode(self, params: VaDEParams, z: jax.Array) -> jax.Array:
    """`z: [n, l]` -> `[n, 28, 28, 1]` likelihood parameters."""
    return self.decoder.apply(params.decoder, z)

  def reconstruct(self, params: VaDEParams, x: jax.Array) -> jax.Array:
    """Expected pixels of p(x | z = mean(x)): `[n, 28, 28, 1]`."""
    mean, _ = self.encode(params, x)
    return networks.mean_image(self.likelihood, self.decode(params, mean))


def _reparam(key, mean: jax.Array, log_var: jax.Array, n_samples: int) -> jax.Array:
  """`[s, n, l]` samples of q(z | x)."""
  eps = jax.random.normal(key, (n_samples, *mean.shape), mean.dtype)
  return mean[None] + jnp.exp(0.5 * log_var)[None] * eps


def _diag_normal_log_prob(z: jax.Array, mean: jax.Array, log_var: jax.Array) -> jax.Array:
  """log N(z | mean, diag exp(log_var)), summed over the last axis."""
  return -0.5 * jnp.sum(_LOG_2PI + log_var + (z - mean) ** 2 * jnp.exp(-log_var), axis=-1)


def expected_joint_log_prob(prior: PriorParams, mean: jax.Array, log_var: jax.Array) -> jax.Array:
  """`[n, k]` log pi_c + E_{q(z|x)}[log N(z | mu_c, sigma_c^2)], in closed form.

  Args:
    prior: mixture prior.
    mean: `[n, l]` means of q(z | x).
    log_var: `[n, l]` log-variances of q(z | x).
  """
  log_w = jax.nn.log_softmax(prior.logits)
  inv_var = jnp.exp(-prior.log_vars)  # [k, l]
  # (s^2 + (m - mu)^2) / sigma^2 summed over l, as [n, k] GEMMs.
  sq = (
      (jnp.exp(log_var) + mean**2) @ inv_var.T
      - 2 * mean @ (prior.means * inv_var).T
      + jnp.sum(prior.means**2 * inv_var, axis=-1)[None, :]
  )
  const = -0.5 * (mean.shape[-1] * _LOG_2PI + jnp.sum(prior.log_vars, axis=-1))
  return log_w[None, :] + const[None, :] - 0.5 * jnp.maximum(sq, 0)


def cluster_log_probs(prior: PriorParams, mean: jax.Array, log_var: jax.Array) -> jax.Array:
  """`[n, k]` log q(c | x) = log gamma, normalised with logsumexp."""
  a = expected_joint_log_prob(prior, mean, log_var)
  return a - jax.nn.logsumexp(a, axis=-1, keepdims=True)


def _gaussian_entropy(log_var: jax.Array) -> jax.Array:
  return 0.5 * jnp.sum(_LOG_2PI + 1.0 + log_var, axis=-1)


class ElboTerms(NamedTuple):
  """Per-example ELBO and its parts.

  Attributes:
    elbo: `[n]` evidence lower bound.
    reconstruction: `[n]` estimate of E_q[log p(x | z)].
    kl: `[n]` estimate of the KL part, `reconstruction - elbo`.
    log_resp: `[n, k]` log q(c | x).
  """

  elbo: jax.Array
  reconstruction: jax.Array
  kl: jax.Array
  log_resp: jax.Array


def elbo(
    key,
    model: VaDE,
    params: VaDEParams,
    x: jax.Array,
    *,
    method: str = "closed_form",
    n_samples: int = 1,
) -> ElboTerms:
  """Per-example ELBO estimate.

  Args:
    key: PRNG key for z ~ q(z | x).
    model: the model definition.
    params: its parameters.
    x: `[n, 28, 28, 1]` images.
    method: "closed_form" or "monte_carlo" (see the module docstring; static).
    n_samples: z samples per example, averaged (static).

  Returns:
    `ElboTerms`, each `[n]` (and `log_resp [n, k]`).
  """
  if method not in ELBO_METHODS:
    raise ValueError(f"method must be one of {ELBO_METHODS}, got {method!r}")
  mean, log_var = model.encode(params, x)
  n = mean.shape[0]
  z = _reparam(key, mean, log_var, n_samples)  # [s, n, l]
  out = model.decode(params, z.reshape(n_samples * n, -1))
  x_rep = jnp.broadcast_to(x[None], (n_samples, *x.shape)).reshape(n_samples * n, *x.shape[1:])
  rec = networks.log_likelihood(model.likelihood, out, x_rep).reshape(n_samples, n)
  log_resp = cluster_log_probs(params.prior, mean, log_var)
  if method == "closed_form":
    a = expected_joint_log_prob(params.prior, mean, log_var)
    kl = -(jax.nn.logsumexp(a, axis=-1) + _gaussian_entropy(log_var))
    reconstruction = jnp.mean(rec, axis=0)
    return ElboTerms(reconstruction - kl, reconstruction, kl, log_resp)
  flat_z = z.reshape(n_samples * n, -1)
  log_pz = gmmjax.log_prob(prior_to_gmm(params.prior), flat_z).reshape(n_samples, n)
  log_qz = _diag_normal_log_prob(z, mean[None], log_var[None])
  terms = rec + log_pz - log_qz
  reconstruction = jnp.mean(rec, axis=0)
  value = jnp.mean(terms, axis=0)
  return ElboTerms(value, reconstruction, reconstruction - value, log_resp)


def loss(key, model: VaDE, params: VaDEParams, x: jax.Array, *, method: str = "closed_form") -> jax.Array:
  """`[]` negative mean ELBO per example (minimise this)."""
  return -jnp.mean(elbo(key, model, params, x, method=method).elbo)


def pretrain_loss(
    model: VaDE,
    params: VaDEParams,
    x: jax.Array,
    *,
    key=None,
    input_dropout: float = 0.0,
) -> jax.Array:
  """`[]` deterministic autoencoder loss: -log p(x | z = mean(x)), mean over examples.

  With `input_dropout > 0` it is a denoising autoencoder's: the encoder sees `x` with each pixel set to
  zero with that probability (no rescaling; `key` draws the mask) and the decoder must give back the
  clean `x`. On Fashion-MNIST a GMM clusters its codes better, but joint training then closes most of
  the gap (experiments/vade/README.md).
  """
  if not 0.0 <= input_dropout < 1.0:
    raise ValueError(f"input_dropout must be in [0, 1), got {input_dropout}")
  x_in = x
  if input_dropout > 0.0:
    if key is None:
      raise ValueError("input_dropout > 0 needs a PRNG key")
    x_in = jnp.where(jax.random.bernoulli(key, 1.0 - input_dropout, x.shape), x, 0.0)
  mean, _ = model.encode(params, x_in)
  return -jnp.mean(networks.log_likelihood(model.likelihood, model.decode(params, mean), x))


def log_likelihood(key, model: VaDE, params: VaDEParams, x: jax.Array, n_samples: int = 1000) -> jax.Array:
  """`[n]` importance-sampled estimate of log p(x) with q(z | x) as proposal.

  Its expectation is a lower bound that increases to log p(x) with `n_samples`.
  """
  mean, log_var = model.encode(params, x)
  n = mean.shape[0]
  z = _reparam(key, mean, log_var, n_samples)
  out = model.decode(params, z.reshape(n_samples * n, -1))
  x_rep = jnp.broadcast_to(x[None], (n_samples, *x.shape)).reshape(n_samples * n, *x.shape[1:])
  rec = networks.log_likelihood(model.likelihood, out, x_rep).reshape(n_samples, n)
  log_pz = gmmjax.log_prob(prior_to_gmm(params.prior), z.reshape(n_samples * n, -1)).reshape(n_samples, n)
  log_qz = _diag_normal_log_prob(z, mean[None], log_var[None])
  return jax.nn.logsumexp(rec + log_pz - log_qz, axis=0) - math.log(n_samples)


def predict_proba(model: VaDE, params: VaDEParams, x: jax.Array) -> jax.Array:
  """`[n, k]` q(c | x)."""
  mean, log_var = model.encode(params, x)
  return jnp.exp(cluster_log_probs(params.prior, mean, log_var))


def predict(model: VaDE, params: VaDEParams, x: jax.Array) -> jax.Array:
  """`[n]` most probable cluster under q(c | x)."""
  mean, log_var = model.encode(params, x)
  return jnp.argmax(expected_joint_log_prob(params.prior, mean, log_var), axis=-1)


def init_prior(
    key,
    latents: ArrayLike,
    n_components: int,
    *,
    n_init: int = 5,
    max_iter: int = 200,
    reg_covar: float = 1e-4,
) -> PriorParams:
  """Mixture prior fitted by `gmmjax.fit` (diagonal) on encoder means `[n, l]`.

  This is the step between autoencoder pretraining and joint training; it gives
  the prior the clusters the autoencoder already found, which is what keeps the
  joint phase from collapsing to one cluster.
  """
  result = gmmjax.fit(
      key, latents, n_components, covariance_type="diag", max_iter=max_iter,
      n_init=n_init, reg_covar=reg_covar,
  )
  return prior_from_gmm(result.params)


def with_posterior_log_var(params: VaDEParams, log_var: ArrayLike) -> VaDEParams:
  """Makes the encoder output the constant `log_var [l]` (zero kernel, matching bias).

  After pretraining, the log-variance head of the encoder is still random: variances near 1 on codes
  whose clusters may be far narrower would make q(c | x) pick the widest component for every x. Setting
  them well below the prior's variances makes q(c | x) start as the fitted GMM's posterior at the code.
  The encoder must name its log-variance layer "log_var" (as `MLPEncoder` and `ConvEncoder` do).
  """
  head = params.encoder["params"]["log_var"]
  lo, hi = networks.LOG_VAR_MIN, networks.LOG_VAR_MAX
  mid, half = 0.5 * (hi + lo), 0.5 * (hi - lo)
  target = jnp.clip(jnp.asarray(log_var, head["bias"].dtype), lo + 1e-3 * half, hi - 1e-3 * half)
  bias = mid + half * jnp.arctanh((target - mid) / half)  # inverse of the encoder's soft clip
  new_head = {"kernel": jnp.zeros_like(head["kernel"]), "bias": bias}
  encoder = {**params.encoder, "params": {**params.encoder["params"], "log_var": new_head}}
  return params._replace(encoder=encoder)


def init_posterior_from_prior(params: VaDEParams, fraction: float = 0.01) -> VaDEParams:
  """`with_posterior_log_var` at `fraction` of the narrowest prior variance in each latent dimension."""
  return with_posterior_log_var(params, jnp.min(params.prior.log_vars, axis=0) + math.log(fraction))


def sample(
    key,
    model: VaDE,
    params: VaDEParams,
    n: int,
    component: ArrayLike | None = None,
) -> tuple[jax.Array, jax.Array]:
  """Generates images: c ~ pi (or fixed), z ~ N(mu_c, sigma_c^2), mean pixels of p(x | z).

  Args:
    key: PRNG key.
    model, params: the model.
    n: number of images (static).
    component: optional `[]` or `[n]` component indices to sample from.

  Returns:
    `(images [n, 28, 28, 1], components [n])`.
  """
  gmm = prior_to_gmm(params.prior)
  if component is None:
    z, c = gmmjax.sample(key, gmm, n)
  else:
    c = jnp.broadcast_to(jnp.asarray(component, jnp.int32), (n,))
    eps = jax.random.normal(key, (n, model.latent_dim), gmm.means.dtype)
    z = params.prior.means[c] + jnp.exp(0.5 * params.prior.log_vars[c]) * eps
  return networks.mean_image(model.likelihood, model.decode(params, z)), c
