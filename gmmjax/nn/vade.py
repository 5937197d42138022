"""VaDE: a variational autoencoder whose prior is a learnable Gaussian mixture.

Generative model: c ~ Cat(pi), z | c ~ N(mu_c, Sigma_c), x | z ~ p(x | decoder(z)), with Sigma_c
diagonal (VaDE's choice) or full (`PriorParams.precision_offdiag`).
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

Mixture parameters are unconstrained (logits, means, log-variances and, for
full covariances, the free entries of the precision Cholesky factor), so no
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
  """Unconstrained parameters of the Gaussian mixture prior p(z).

  Each component's precision is `U_c U_c^T` with `U_c` upper triangular (scikit-learn's and
  `gmmjax.GMMParams`' precision Cholesky factor): diagonal `exp(-log_vars_c / 2)`, strict upper
  triangle `precision_offdiag_c`. Without `precision_offdiag` the covariances are diagonal and
  `log_vars` are their log-variances; with it, `log_vars` are the conditional log-variances
  (each coordinate given the earlier ones).

  Attributes:
    logits: `[k]` unnormalised log mixing weights.
    means: `[k, l]` component means.
    log_vars: `[k, l]` log-variances (see above).
    precision_offdiag: `None` (diagonal covariances) or `[k, l, l]`, of which only the strict upper
      triangle is used (full covariances).
  """

  logits: jax.Array
  means: jax.Array
  log_vars: jax.Array
  precision_offdiag: jax.Array | None = None


PRIOR_COVARIANCES = ("diag", "full")


def _check_prior_covariance(name: str, value: str) -> None:
  if value not in PRIOR_COVARIANCES:
    raise ValueError(f"{name} must be one of {PRIOR_COVARIANCES}, got {value!r}")


def prior_covariance_type(prior: PriorParams) -> str:
  """"diag" or "full" (static: it depends on the pytree's structure only)."""
  return "diag" if prior.precision_offdiag is None else "full"


def precision_cholesky(prior: PriorParams) -> jax.Array:
  """`[k, l]` precision scales (diagonal prior) or `[k, l, l]` upper-triangular `U_c` (full prior)."""
  scale = jnp.exp(-0.5 * prior.log_vars)
  if prior.precision_offdiag is None:
    return scale
  return jnp.triu(prior.precision_offdiag, 1) + jax.vmap(jnp.diag)(scale)


class VaDEParams(NamedTuple):
  """All trainable parameters: encoder and decoder variables and the prior."""

  encoder: Any
  decoder: Any
  prior: PriorParams


def prior_to_gmm(prior: PriorParams) -> gmmjax.GMMParams:
  """The prior as diagonal or full `gmmjax.GMMParams` (differentiable)."""
  return gmmjax.GMMParams(
      weights=jax.nn.softmax(prior.logits),
      means=prior.means,
      precisions_cholesky=precision_cholesky(prior),
      covariance_type=prior_covariance_type(prior),
  )


def prior_from_gmm(gmm: gmmjax.GMMParams, covariance_type: str = "diag") -> PriorParams:
  """Unconstrained prior from fitted `GMMParams` of any covariance type.

  `covariance_type="diag"` keeps the diagonal of each covariance; "full" keeps them whole.
  """
  _check_prior_covariance("covariance_type", covariance_type)
  k, l = gmm.means.shape
  tiny = jnp.finfo(gmm.means.dtype).tiny
  logits = jnp.log(jnp.maximum(gmm.weights, tiny))
  if covariance_type == "full":
    if gmm.covariance_type == "tied":
      gmm = gmmjax.GMMParams.from_covariances(
          gmm.weights, gmm.means, jnp.broadcast_to(gmm.covariances, (k, l, l)), "full")
    if gmm.covariance_type != "full":  # diag or spherical: U_c is diagonal.
      return prior_from_gmm(gmm)._replace(precision_offdiag=jnp.zeros((k, l, l), gmm.means.dtype))
    u = gmm.precisions_cholesky
    return PriorParams(logits, gmm.means, -2.0 * jnp.log(jnp.diagonal(u, axis1=-2, axis2=-1)), jnp.triu(u, 1))
  cov = gmm.covariances
  if gmm.covariance_type == "full":
    var = jnp.diagonal(cov, axis1=-2, axis2=-1)
  elif gmm.covariance_type == "tied":
    var = jnp.broadcast_to(jnp.diagonal(cov)[None, :], (k, l))
  elif gmm.covariance_type == "spherical":
    var = jnp.broadcast_to(cov[:, None], (k, l))
  else:
    var = cov
  return PriorParams(logits=logits, means=gmm.means, log_vars=jnp.log(jnp.maximum(var, tiny)))


def standard_prior(
    n_components: int, latent_dim: int, dtype=jnp.float32, covariance_type: str = "diag"
) -> PriorParams:
  """Equal weights, zero means, unit variances: a placeholder before `init_prior`."""
  _check_prior_covariance("covariance_type", covariance_type)
  offdiag = jnp.zeros((n_components, latent_dim, latent_dim), dtype) if covariance_type == "full" else None
  return PriorParams(
      logits=jnp.zeros((n_components,), dtype),
      means=jnp.zeros((n_components, latent_dim), dtype),
      log_vars=jnp.zeros((n_components, latent_dim), dtype),
      precision_offdiag=offdiag,
  )


def check_model_fields(model) -> None:
  """The checks VaDE and GMVAE share: likelihood, prior covariance, p(c) flag and sizes."""
  if model.likelihood not in networks.LIKELIHOODS:
    raise ValueError(f"likelihood must be one of {networks.LIKELIHOODS}, got {model.likelihood!r}")
  _check_prior_covariance("prior_covariance", model.prior_covariance)
  if type(model.uniform_weights) is not bool:
    raise ValueError(f"uniform_weights must be a bool, got {model.uniform_weights!r}")
  for name in ("n_components", "latent_dim"):
    value = getattr(model, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
      raise ValueError(f"{name} must be a positive integer, got {value!r}")


@dataclasses.dataclass(frozen=True)
class VaDE:
  """Model definition (static): networks, sizes and observation likelihood.

  Attributes:
    encoder: Flax module `x -> (mean [n, l], log_var [n, l])`.
    decoder: Flax module `z [n, l] -> [n, h, w, c]` likelihood parameters.
    n_components: `k`, clusters in the prior.
    latent_dim: `l`.
    likelihood: "bernoulli" or "continuous_bernoulli" (decoder gives logits) or "gaussian" (unit-scale
      means); see `networks.log_likelihood`.
    prior_covariance: "diag" (VaDE) or "full" covariances of the mixture prior's components.
    uniform_weights: p(c) = 1 / k (the prior's logits are then unused); otherwise p(c) is learned.
  """

  encoder: nn.Module
  decoder: nn.Module
  n_components: int
  latent_dim: int
  likelihood: str = "bernoulli"
  prior_covariance: str = "diag"
  uniform_weights: bool = False

  def __post_init__(self):
    check_model_fields(self)

  # The interface VaDE and GMVAE share (experiments train and evaluate either through it).
  def loss(self, key, params: VaDEParams, x: jax.Array, **kwargs) -> jax.Array:
    """`[]` negative mean ELBO; see `loss`."""
    return loss(key, self, params, x, **kwargs)

  def pretrain_loss(self, params: VaDEParams, x: jax.Array, **kwargs) -> jax.Array:
    """`[]` autoencoder loss; see `pretrain_loss`."""
    return pretrain_loss(self, params, x, **kwargs)

  def elbo(self, key, params: VaDEParams, x: jax.Array, **kwargs) -> "ElboTerms":
    """Per-example ELBO terms; see `elbo`."""
    return elbo(key, self, params, x, **kwargs)

  def predict(self, params: VaDEParams, x: jax.Array) -> jax.Array:
    """`[n]` argmax q(c | x); see `predict`."""
    return predict(self, params, x)

  def sample(self, key, params: VaDEParams, n: int, component: ArrayLike | None = None):
    """`(images, components)`; see `sample`."""
    return sample(key, self, params, n, component=component)

  def init_posterior_from_prior(self, params: VaDEParams, fraction: float = 0.01) -> VaDEParams:
    """See `init_posterior_from_prior`."""
    return init_posterior_from_prior(params, fraction)

  def init(self, key, x: ArrayLike) -> VaDEParams:
    """Initial parameters; `x: [n, h, w, c]` fixes input shape and dtype."""
    x = jnp.asarray(x)
    encoder, decoder = init_autoencoder(self, key, x)
    prior = standard_prior(self.n_components, self.latent_dim, x.dtype, self.prior_covariance)
    return VaDEParams(encoder, decoder, prior)

  def encode(self, params: VaDEParams, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """`x: [n, ...]` -> `(mean [n, l], log_var [n, l])` of q(z | x)."""
    return self.encoder.apply(params.encoder, x)

  def decode(self, params: VaDEParams, z: jax.Array) -> jax.Array:
    """`z: [n, l]` -> `[n, h, w, c]` likelihood parameters."""
    return self.decoder.apply(params.decoder, z)

  def reconstruct(self, params: VaDEParams, x: jax.Array) -> jax.Array:
    """Expected pixels of p(x | z = mean(x)): `[n, h, w, c]`."""
    mean, _ = self.encode(params, x)
    return networks.mean_image(self.likelihood, self.decode(params, mean))


def init_autoencoder(model, key, x: jax.Array) -> tuple[Any, Any]:
  """`(encoder, decoder)` variables of `model` (VaDE or GMVAE) for images `x: [n, h, w, c]`.

  Raises `ValueError` when the decoder's output is not the images' shape (say, a 28x28 decoder for 8x8
  images): found here, not as a broadcast or reshape error deep in the first training step.
  """
  enc_key, dec_key = jax.random.split(key)
  encoder = model.encoder.init(enc_key, x[:1])
  z = jnp.zeros((1, model.latent_dim), x.dtype)
  out, decoder = model.decoder.init_with_output(dec_key, z)
  out = out.shape[1:]
  if tuple(out) != tuple(x.shape[1:]):
    raise ValueError(f"the decoder outputs images of shape {tuple(out)}, but the images are "
                     f"{tuple(x.shape[1:])}; build the decoder with image_shape={tuple(x.shape[1:])}")
  return encoder, decoder


def effective_prior(model, prior: PriorParams) -> PriorParams:
  """The prior with zero logits (p(c) = 1 / k) when `model.uniform_weights`, else `prior`."""
  return prior._replace(logits=jnp.zeros_like(prior.logits)) if model.uniform_weights else prior


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
  if prior.precision_offdiag is None:
    inv_var = jnp.exp(-prior.log_vars)  # [k, l]
    # (s^2 + (m - mu)^2) / sigma^2 summed over l, as [n, k] GEMMs.
    sq = (
        (jnp.exp(log_var) + mean**2) @ inv_var.T
        - 2 * mean @ (prior.means * inv_var).T
        + jnp.sum(prior.means**2 * inv_var, axis=-1)[None, :]
    )
  else:
    # |(m - mu_c) U_c|^2 + tr(U_c U_c^T diag(s^2)); the difference is whitened, not expanded.
    u = precision_cholesky(prior)  # [k, l, l]
    white = jnp.einsum("nkl,klm->nkm", mean[:, None, :] - prior.means[None], u)
    sq = jnp.sum(white**2, axis=-1) + jnp.exp(log_var) @ jnp.sum(u**2, axis=-1).T
  # log det Sigma_c = sum of log_vars for both covariance types.
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
    input_dropout: float = 0.0,
) -> ElboTerms:
  """Per-example ELBO estimate.

  Args:
    key: PRNG key for z ~ q(z | x) (and for the input mask).
    model: the model definition.
    params: its parameters.
    x: `[n, h, w, c]` images.
    method: "closed_form" or "monte_carlo" (see the module docstring; static).
    n_samples: z samples per example, averaged (static).
    input_dropout: > 0 gives the denoising ELBO: the encoder sees `x` with each pixel zeroed with this
      probability (`corrupt_images`), the decoder is scored on the clean `x` (static).

  Returns:
    `ElboTerms`, each `[n]` (and `log_resp [n, k]`).
  """
  if method not in ELBO_METHODS:
    raise ValueError(f"method must be one of {ELBO_METHODS}, got {method!r}")
  mean, log_var = model.encode(params, corrupt_images(jax.random.fold_in(key, 2), x, input_dropout))
  n = mean.shape[0]
  z = _reparam(key, mean, log_var, n_samples)  # [s, n, l]
  out = model.decode(params, z.reshape(n_samples * n, -1))
  x_rep = jnp.broadcast_to(x[None], (n_samples, *x.shape)).reshape(n_samples * n, *x.shape[1:])
  rec = networks.log_likelihood(model.likelihood, out, x_rep).reshape(n_samples, n)
  prior = effective_prior(model, params.prior)
  log_resp = cluster_log_probs(prior, mean, log_var)
  if method == "closed_form":
    a = expected_joint_log_prob(prior, mean, log_var)
    kl = -(jax.nn.logsumexp(a, axis=-1) + _gaussian_entropy(log_var))
    reconstruction = jnp.mean(rec, axis=0)
    return ElboTerms(reconstruction - kl, reconstruction, kl, log_resp)
  flat_z = z.reshape(n_samples * n, -1)
  log_pz = gmmjax.log_prob(prior_to_gmm(prior), flat_z).reshape(n_samples, n)
  log_qz = _diag_normal_log_prob(z, mean[None], log_var[None])
  terms = rec + log_pz - log_qz
  reconstruction = jnp.mean(rec, axis=0)
  value = jnp.mean(terms, axis=0)
  return ElboTerms(value, reconstruction, reconstruction - value, log_resp)


def loss(
    key, model: VaDE, params: VaDEParams, x: jax.Array, *, method: str = "closed_form",
    input_dropout: float = 0.0, kl_weight: float = 1.0,
) -> jax.Array:
  """`[]` negative mean ELBO per example (minimise this); `input_dropout` as in `elbo`.

  `kl_weight` scales the KL part as in a beta-VAE (`weighted_bound`); 1 gives the ELBO itself.
  """
  return -jnp.mean(weighted_bound(elbo(key, model, params, x, method=method, input_dropout=input_dropout),
                                  kl_weight))


def weighted_bound(terms: ElboTerms, kl_weight: float = 1.0) -> jax.Array:
  """`[n]` reconstruction - kl_weight * kl from `terms`; exactly `terms.elbo` when `kl_weight` is 1.

  A weight above 1 pulls the codes harder to the mixture prior, below 1 keeps them closer to the
  autoencoder's. Written as a correction of the ELBO so that weight 1 leaves its rounding untouched.
  """
  if isinstance(kl_weight, (int, float)) and not kl_weight >= 0.0:
    raise ValueError(f"kl_weight must be >= 0, got {kl_weight}")
  return terms.elbo - (kl_weight - 1.0) * terms.kl


def shift_images(key, x: jax.Array, max_shift: int) -> jax.Array:
  """Translates each image of `x: [n, h, w, c]` by its own uniform `(dy, dx)` in `[-max_shift, max_shift]`.

  Pixels shifted in are zero (the background of MNIST-like images).
  """
  s = max_shift
  if s == 0:
    return x
  n, h, w, _ = x.shape
  padded = jnp.pad(x, ((0, 0), (s, s), (s, s), (0, 0)))
  offsets = jax.random.randint(key, (n, 2), 0, 2 * s + 1)
  crop = lambda image, o: jax.lax.dynamic_slice(image, (o[0], o[1], 0), (h, w, image.shape[-1]))
  return jax.vmap(crop)(padded, offsets)


def corrupt_images(key, x: jax.Array, input_dropout: float = 0.0, max_shift: int = 0) -> jax.Array:
  """`x: [n, h, w, c]` translated by up to `max_shift` pixels each way (`shift_images`), then with each
  pixel set to zero with probability `input_dropout` (no rescaling); `x` itself when both are 0.

  The mask draws from `key` itself, so runs without shifts draw the masks they always drew.
  """
  if not 0.0 <= input_dropout < 1.0:
    raise ValueError(f"input_dropout must be in [0, 1), got {input_dropout}")
  side = min(x.shape[1:3])
  if isinstance(max_shift, bool) or not isinstance(max_shift, int) or not 0 <= max_shift < side:
    raise ValueError(f"max_shift must be an integer in [0, {side}), got {max_shift!r}")
  if input_dropout == 0.0 and max_shift == 0:
    return x
  if key is None:
    raise ValueError("input_dropout > 0 or max_shift > 0 needs a PRNG key")
  x_in = shift_images(jax.random.fold_in(key, 1), x, max_shift)
  if input_dropout > 0.0:
    x_in = jnp.where(jax.random.bernoulli(key, 1.0 - input_dropout, x.shape), x_in, 0.0)
  return x_in


def pretrain_loss(
    model: VaDE,
    params: VaDEParams,
    x: jax.Array,
    *,
    key=None,
    input_dropout: float = 0.0,
    max_shift: int = 0,
) -> jax.Array:
  """`[]` deterministic autoencoder loss: -log p(x | z = mean(x)), mean over examples.

  With `input_dropout > 0` or `max_shift > 0` it is a denoising autoencoder's: the encoder sees
  `corrupt_images(key, x, input_dropout, max_shift)` and the decoder must give back the clean, centred
  `x`.
  """
  mean, _ = model.encode(params, corrupt_images(key, x, input_dropout, max_shift))
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
  gmm = prior_to_gmm(effective_prior(model, params.prior))
  log_pz = gmmjax.log_prob(gmm, z.reshape(n_samples * n, -1)).reshape(n_samples, n)
  log_qz = _diag_normal_log_prob(z, mean[None], log_var[None])
  return jax.nn.logsumexp(rec + log_pz - log_qz, axis=0) - math.log(n_samples)


def predict_proba(model: VaDE, params: VaDEParams, x: jax.Array) -> jax.Array:
  """`[n, k]` q(c | x)."""
  mean, log_var = model.encode(params, x)
  return jnp.exp(cluster_log_probs(effective_prior(model, params.prior), mean, log_var))


def predict(model: VaDE, params: VaDEParams, x: jax.Array) -> jax.Array:
  """`[n]` most probable cluster under q(c | x)."""
  mean, log_var = model.encode(params, x)
  return jnp.argmax(expected_joint_log_prob(effective_prior(model, params.prior), mean, log_var), axis=-1)


def init_prior(
    key,
    latents: ArrayLike,
    n_components: int,
    *,
    n_init: int = 5,
    max_iter: int = 200,
    reg_covar: float = 1e-4,
    covariance_type: str = "diag",
) -> PriorParams:
  """Mixture prior fitted by `gmmjax.fit` on encoder means `[n, l]` ("diag" or "full" covariances).

  This is the step between autoencoder pretraining and joint training; it gives
  the prior the clusters the autoencoder already found, which is what keeps the
  joint phase from collapsing to one cluster. Of the `n_init` restarts the one
  with the highest likelihood is kept.
  """
  _check_prior_covariance("covariance_type", covariance_type)
  result = gmmjax.fit(
      key, latents, n_components, covariance_type=covariance_type, max_iter=max_iter,
      n_init=n_init, reg_covar=reg_covar,
  )
  return prior_from_gmm(result.params, covariance_type)


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
    `(images [n, h, w, c], components [n])`.
  """
  z, c = sample_latents(key, effective_prior(model, params.prior), n, component)
  return networks.mean_image(model.likelihood, model.decode(params, z)), c


def sample_latents(
    key, prior: PriorParams, n: int, component: ArrayLike | None = None
) -> tuple[jax.Array, jax.Array]:
  """`(z [n, l], components [n])` from the prior, or from fixed `component` (`[]` or `[n]`)."""
  if component is None:
    return gmmjax.sample(key, prior_to_gmm(prior), n)
  c = jnp.broadcast_to(jnp.asarray(component, jnp.int32), (n,))
  eps = jax.random.normal(key, (n, prior.means.shape[-1]), prior.means.dtype)
  if prior.precision_offdiag is None:
    return prior.means[c] + jnp.exp(0.5 * prior.log_vars[c]) * eps, c
  u = precision_cholesky(prior)[c]
  # z - mu = U^-T eps has covariance U^-T U^-1 = (U U^T)^-1.
  solve = jax.vmap(lambda a, b: jax.scipy.linalg.solve_triangular(a, b, trans="T", lower=False))
  return prior.means[c] + solve(u, eps), c
