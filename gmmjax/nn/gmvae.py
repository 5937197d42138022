"""GMVAE: a variational autoencoder with a categorical latent marginalised exactly.

Generative model (as in VaDE): c ~ Cat(pi), z | c ~ N(mu_c, diag sigma_c^2), x | z ~ p(x | decoder(z)),
with pi uniform or learned. Inference, in the style of the Gaussian-mixture VAEs of Dilokthanakul et
al. (2016) and Rui Shu's M2-style GMVAE: q(z, c | x) = q(c | x) q(z | x, c), where q(c | x) is a
classifier and q(z | x, c) a Gaussian per component. Both come from a `PosteriorHead` on the code of
one of the encoders in `networks` (so the autoencoder pretraining and the GMM initialisation of VaDE
apply unchanged).

The bound sums over c instead of sampling it:

  ELBO = sum_c q(c | x) [E_{q(z | x, c)} log p(x | z) - KL(q(z | x, c) || p(z | c))] - KL(q(c | x) || p(c)),

with one reparameterised z per component (k decoder passes in one batch). The Gaussian KL is exact
("closed_form") or sampled at the same z ("monte_carlo"). Unlike VaDE, q(z | x) may differ per
component and q(c | x) is free rather than tied to the prior.
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
from . import vade


# q(z | x, c) log-variances stay within this many nats of the encoder's (itself within
# networks.LOG_VAR_MIN .. LOG_VAR_MAX).
_MAX_LOG_VAR_SHIFT = 4.0


class PosteriorHead(nn.Module):
  """q(c | x) logits and per-component q(z | x, c) from an encoder's Gaussian code.

  q(c | x) is linear in the features `[m, m^2]` of the code mean `m`: a diagonal-Gaussian
  discriminant, so it can start as the posterior of a GMM fitted to the codes
  (`init_posterior_from_prior`). q(z | x, c) is the code's Gaussian plus a per-component correction
  from a one-hidden-layer network of `(code, one_hot(c))`; the correction starts at zero.

  Attributes:
    n_components: `k`.
    hidden: width of the hidden layer of the q(z | x, c) network.
  """

  n_components: int
  hidden: int = 128

  @nn.compact
  def __call__(self, mean: jax.Array, log_var: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """`mean, log_var: [n, l]` -> `(logits [n, k], means [n, k, l], log_vars [n, k, l])`."""
    k, l = self.n_components, mean.shape[-1]
    logits = nn.Dense(k, name="logits")(jnp.concatenate([mean, mean * mean], axis=-1))
    # Dense(concat(code, one_hot(c))) == Dense(code) + a row per component: k hidden states
    # without k copies of the input.
    rows = self.param("component", nn.initializers.normal(1.0), (k, self.hidden), jnp.float32)
    code = jnp.concatenate([mean, log_var], axis=-1)
    h = nn.relu(nn.Dense(self.hidden, name="hidden")(code)[:, None, :] + rows[None])  # [n, k, h]
    zeros = nn.initializers.zeros
    d_mean = nn.Dense(l, kernel_init=zeros, name="mean")(h)
    d_log_var = nn.Dense(l, kernel_init=zeros, name="log_var")(h)
    # A bounded correction keeps 1 / variance finite in float32 and is the identity near zero.
    d_log_var = _MAX_LOG_VAR_SHIFT * jnp.tanh(d_log_var / _MAX_LOG_VAR_SHIFT)
    return logits, mean[:, None] + d_mean, log_var[:, None] + d_log_var


class GMVAEParams(NamedTuple):
  """All trainable parameters: encoder, decoder, posterior head and the prior (`vade.PriorParams`)."""

  encoder: Any
  decoder: Any
  head: Any
  prior: vade.PriorParams


class Posterior(NamedTuple):
  """q(c | x) and q(z | x, c).

  Attributes:
    log_resp: `[n, k]` log q(c | x).
    means: `[n, k, l]` means of q(z | x, c).
    log_vars: `[n, k, l]` log-variances of q(z | x, c).
  """

  log_resp: jax.Array
  means: jax.Array
  log_vars: jax.Array


@dataclasses.dataclass(frozen=True)
class GMVAE:
  """Model definition (static): networks, sizes, observation likelihood and prior weights.

  Attributes:
    encoder: Flax module `x -> (mean [n, l], log_var [n, l])` (the code `PosteriorHead` reads).
    decoder: Flax module `z [n, l] -> [n, h, w, c]` likelihood parameters.
    n_components: `k`.
    latent_dim: `l`.
    likelihood: "bernoulli" or "continuous_bernoulli" (decoder gives logits) or "gaussian" (unit-scale
      means); see `networks.log_likelihood`.
    head_hidden: width of the `PosteriorHead` hidden layer.
    uniform_weights: p(c) = 1 / k (the prior's logits are then unused); otherwise p(c) is learned.
  """

  encoder: nn.Module
  decoder: nn.Module
  n_components: int
  latent_dim: int
  likelihood: str = "bernoulli"
  head_hidden: int = 128
  uniform_weights: bool = False
  prior_covariance = "diag"  # Not a field: the bound's per-component KL needs diagonal components.

  def __post_init__(self):
    vade.check_model_fields(self)
    if isinstance(self.head_hidden, bool) or not isinstance(self.head_hidden, int) or self.head_hidden < 1:
      raise ValueError(f"head_hidden must be a positive integer, got {self.head_hidden!r}")

  # The interface VaDE and GMVAE share (experiments train and evaluate either through it).
  def loss(self, key, params: GMVAEParams, x: jax.Array, **kwargs) -> jax.Array:
    """`[]` negative mean ELBO; see `loss`."""
    return loss(key, self, params, x, **kwargs)

  def pretrain_loss(self, params: GMVAEParams, x: jax.Array, **kwargs) -> jax.Array:
    """`[]` autoencoder loss; see `vade.pretrain_loss`."""
    return pretrain_loss(self, params, x, **kwargs)

  def elbo(self, key, params: GMVAEParams, x: jax.Array, **kwargs) -> vade.ElboTerms:
    """Per-example ELBO terms; see `elbo`."""
    return elbo(key, self, params, x, **kwargs)

  def predict(self, params: GMVAEParams, x: jax.Array) -> jax.Array:
    """`[n]` argmax q(c | x); see `predict`."""
    return predict(self, params, x)

  def sample(self, key, params: GMVAEParams, n: int, component: ArrayLike | None = None):
    """`(images, components)`; see `sample`."""
    return sample(key, self, params, n, component=component)

  def init_posterior_from_prior(self, params: GMVAEParams, fraction: float = 0.01) -> GMVAEParams:
    """See `init_posterior_from_prior`."""
    return init_posterior_from_prior(params, fraction)

  @property
  def head(self) -> PosteriorHead:
    """The `PosteriorHead` module."""
    return PosteriorHead(self.n_components, self.head_hidden)

  def init(self, key, x: ArrayLike) -> GMVAEParams:
    """Initial parameters; `x: [n, h, w, c]` fixes input shape and dtype.

    Encoder and decoder get the same keys as in `vade.VaDE.init`, so both models pretrain the
    same autoencoder from the same seed.
    """
    x = jnp.asarray(x)
    encoder, decoder = vade.init_autoencoder(self, key, x)
    z = jnp.zeros((1, self.latent_dim), x.dtype)
    head = self.head.init(jax.random.fold_in(key, 2), z, z)
    prior = vade.standard_prior(self.n_components, self.latent_dim, x.dtype)
    return GMVAEParams(encoder, decoder, head, prior)

  def encode(self, params: GMVAEParams, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """`x: [n, ...]` -> the encoder's code `(mean [n, l], log_var [n, l])`."""
    return self.encoder.apply(params.encoder, x)

  def decode(self, params: GMVAEParams, z: jax.Array) -> jax.Array:
    """`z: [n, l]` -> `[n, h, w, c]` likelihood parameters."""
    return self.decoder.apply(params.decoder, z)

  def posterior(self, params: GMVAEParams, x: jax.Array) -> Posterior:
    """q(c | x) and q(z | x, c) for `x: [n, ...]`."""
    logits, means, log_vars = self.head.apply(params.head, *self.encode(params, x))
    return Posterior(jax.nn.log_softmax(logits, axis=-1), means, log_vars)

  def reconstruct(self, params: GMVAEParams, x: jax.Array) -> jax.Array:
    """Expected pixels of p(x | z) at the mean of q(z | x, c) for the most probable c: `[n, h, w, c]`."""
    post = self.posterior(params, x)
    c = jnp.argmax(post.log_resp, axis=-1)
    z = jnp.take_along_axis(post.means, c[:, None, None], axis=1)[:, 0]
    return networks.mean_image(self.likelihood, self.decode(params, z))


def _require_diagonal(prior: vade.PriorParams) -> None:
  if vade.prior_covariance_type(prior) != "diag":
    raise ValueError("GMVAE's bound uses diagonal prior components; got a full-covariance prior")


def effective_prior(model: GMVAE, prior: vade.PriorParams) -> vade.PriorParams:
  """The prior with zero logits when `model.uniform_weights`, else `prior` (diagonal only)."""
  _require_diagonal(prior)
  return vade.effective_prior(model, prior)


def _gaussian_kl(mean: jax.Array, log_var: jax.Array, mean_p: jax.Array, log_var_p: jax.Array) -> jax.Array:
  """KL(N(mean, e^log_var) || N(mean_p, e^log_var_p)) of diagonal Gaussians, summed over the last axis."""
  d = log_var - log_var_p
  return 0.5 * jnp.sum(jnp.exp(d) - d - 1 + (mean - mean_p) ** 2 * jnp.exp(-log_var_p), axis=-1)


def _component_samples(key, model: GMVAE, params: GMVAEParams, x: jax.Array, post: Posterior, n_samples: int):
  """`(z [s, n, k, l], log p(x | z) [s, n, k])`: `n_samples` z of every q(z | x, c), decoded in one batch."""
  n, k, l = post.means.shape
  eps = jax.random.normal(key, (n_samples, n, k, l), post.means.dtype)
  z = post.means[None] + jnp.exp(0.5 * post.log_vars)[None] * eps
  out = model.decode(params, z.reshape(n_samples * n * k, l))
  x_rep = jnp.broadcast_to(x[None, :, None], (n_samples, n, k, *x.shape[1:]))
  x_rep = x_rep.reshape(out.shape[0], *x.shape[1:])
  rec = networks.log_likelihood(model.likelihood, out, x_rep).reshape(n_samples, n, k)
  return z, rec


def elbo(
    key,
    model: GMVAE,
    params: GMVAEParams,
    x: jax.Array,
    *,
    method: str = "closed_form",
    n_samples: int = 1,
    input_dropout: float = 0.0,
) -> vade.ElboTerms:
  """Per-example ELBO with c summed out exactly.

  Args:
    key: PRNG key for z ~ q(z | x, c) (and for the input mask).
    model: the model definition.
    params: its parameters.
    x: `[n, h, w, c]` images.
    method: "closed_form" (exact Gaussian KL per component) or "monte_carlo" (sampled at the same
      z) (static).
    n_samples: z samples per example and component, averaged (static).
    input_dropout: as in `vade.elbo`: the encoder sees masked pixels, the decoder is scored on `x`.

  Returns:
    `vade.ElboTerms`, each `[n]` (and `log_resp [n, k]` = log q(c | x)).
  """
  if method not in vade.ELBO_METHODS:
    raise ValueError(f"method must be one of {vade.ELBO_METHODS}, got {method!r}")
  post = model.posterior(params, vade.corrupt_images(jax.random.fold_in(key, 2), x, input_dropout))
  prior = effective_prior(model, params.prior)
  z, rec = _component_samples(key, model, params, x, post, n_samples)
  if method == "closed_form":
    kl_z = _gaussian_kl(post.means, post.log_vars, prior.means[None], prior.log_vars[None])  # [n, k]
  else:
    log_q = vade._diag_normal_log_prob(z, post.means[None], post.log_vars[None])
    log_p = vade._diag_normal_log_prob(z, prior.means[None, None], prior.log_vars[None, None])
    kl_z = jnp.mean(log_q - log_p, axis=0)
  resp = jnp.exp(post.log_resp)  # Finite: log_softmax of finite logits; 0 * finite stays 0.
  log_pc = jax.nn.log_softmax(prior.logits)
  reconstruction = jnp.sum(resp * jnp.mean(rec, axis=0), axis=-1)
  kl = jnp.sum(resp * (kl_z + post.log_resp - log_pc[None]), axis=-1)
  return vade.ElboTerms(reconstruction - kl, reconstruction, kl, post.log_resp)


def loss(
    key, model: GMVAE, params: GMVAEParams, x: jax.Array, *, method: str = "closed_form",
    input_dropout: float = 0.0, kl_weight: float = 1.0,
) -> jax.Array:
  """`[]` negative mean ELBO per example (minimise this); `input_dropout` as in `elbo`, `kl_weight` as in
  `vade.weighted_bound` (1: the ELBO)."""
  return -jnp.mean(vade.weighted_bound(
      elbo(key, model, params, x, method=method, input_dropout=input_dropout), kl_weight))


# The autoencoder loss on the encoder's code (the head is not used): VaDE's, as is.
pretrain_loss = vade.pretrain_loss


def log_likelihood(key, model: GMVAE, params: GMVAEParams, x: jax.Array, n_samples: int = 1000) -> jax.Array:
  """`[n]` importance-sampled estimate of log p(x), proposal q(z | x) = sum_c q(c | x) q(z | x, c).

  Stratified over c: `n_samples` z from every component, weighted by q(c | x), with p(z) and q(z | x)
  the full mixtures. The estimate of p(x) is unbiased, so its log is a lower bound in expectation
  that increases to log p(x) with `n_samples`. Memory grows as `n_samples * n * k` decoded images.
  """
  post = model.posterior(params, x)
  gmm = vade.prior_to_gmm(effective_prior(model, params.prior))
  z, rec = _component_samples(key, model, params, x, post, n_samples)
  s, n, k, l = z.shape
  log_pz = gmmjax.log_prob(gmm, z.reshape(-1, l)).reshape(s, n, k)
  # log q(z | x) at every sample: [s, n, k (sampled from), k (mixture)].
  comp = vade._diag_normal_log_prob(z[..., None, :], post.means[None, :, None], post.log_vars[None, :, None])
  log_qz = jax.nn.logsumexp(post.log_resp[None, :, None] + comp, axis=-1)
  terms = post.log_resp[None] + rec + log_pz - log_qz
  return jax.nn.logsumexp(terms, axis=(0, 2)) - math.log(s)


def predict_proba(model: GMVAE, params: GMVAEParams, x: jax.Array) -> jax.Array:
  """`[n, k]` q(c | x)."""
  return jnp.exp(model.posterior(params, x).log_resp)


def predict(model: GMVAE, params: GMVAEParams, x: jax.Array) -> jax.Array:
  """`[n]` most probable cluster under q(c | x)."""
  return jnp.argmax(model.posterior(params, x).log_resp, axis=-1)


def init_posterior_from_prior(params: GMVAEParams, fraction: float = 0.01) -> GMVAEParams:
  """Starts q(c | x) as the prior's posterior at the code mean, q(z | x, c) narrow around the code.

  The encoder's log-variance is reset as in `vade.init_posterior_from_prior`, and the q(c | x) head
  is set to the discriminant of the diagonal prior: logit_c = log pi_c + log N(m | mu_c, sigma_c^2)
  up to a constant. Call after setting `params.prior` (e.g. from `vade.init_prior`).
  """
  _require_diagonal(params.prior)
  params = vade.init_posterior_from_prior(params, fraction)
  prior = params.prior
  head = params.head["params"]["logits"]
  inv_var = jnp.exp(-prior.log_vars)  # [k, l]
  kernel = jnp.concatenate([prior.means * inv_var, -0.5 * inv_var], axis=-1).T  # [2l, k]
  bias = jax.nn.log_softmax(prior.logits) - 0.5 * jnp.sum(prior.means**2 * inv_var + prior.log_vars, axis=-1)
  new = {"kernel": kernel.astype(head["kernel"].dtype), "bias": bias.astype(head["bias"].dtype)}
  head_vars = {**params.head, "params": {**params.head["params"], "logits": new}}
  return params._replace(head=head_vars)


def sample(
    key,
    model: GMVAE,
    params: GMVAEParams,
    n: int,
    component: ArrayLike | None = None,
) -> tuple[jax.Array, jax.Array]:
  """Generates images as `vade.sample` does: c ~ p(c) (or fixed), z ~ N(mu_c, sigma_c^2), mean pixels.

  Args:
    key: PRNG key.
    model, params: the model.
    n: number of images (static).
    component: optional `[]` or `[n]` component indices to sample from.

  Returns:
    `(images [n, h, w, c], components [n])`.
  """
  _require_diagonal(params.prior)
  return vade.sample(key, model, params, n, component)
