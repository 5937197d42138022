"""VaDE: the closed-form ELBO against Monte Carlo, bounds against importance-sampled log p(x),
gradients and float32 numerics."""

import dataclasses
import functools
import math

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import call_with_encoder_input, fast_only
from hypothesis import given, settings

import gmmjax
from gmmjax import nn as gnn
from gmmjax.nn import vade


def _tiny_model(k=3, latent_dim=2):
  return vade.VaDE(gnn.MLPEncoder(latent_dim, (16,)), gnn.MLPDecoder((16,)), k, latent_dim)


def _tiny(key, k=3, latent_dim=2, n=4, dtype=jnp.float64, spread=1.5, covariance="diag"):
  """A small random model and data where log p(x) is within reach of importance sampling."""
  model = _tiny_model(k, latent_dim)
  kx, kp, km, kv, kw, ko = jax.random.split(key, 6)
  x = (jax.random.uniform(kx, (n, 28, 28, 1)) > 0.5).astype(dtype)
  params = model.init(kp, x)
  offdiag = 0.6 * jax.random.normal(ko, (k, latent_dim, latent_dim), dtype) if covariance == "full" else None
  prior = vade.PriorParams(
      logits=jax.random.normal(kw, (k,), dtype),
      means=spread * jax.random.normal(km, (k, latent_dim), dtype),
      log_vars=0.3 * jax.random.normal(kv, (k, latent_dim), dtype),
      precision_offdiag=offdiag,
  )
  return model, params._replace(prior=prior), x


def _factorised_elbo_mc(key, model, params, x, n_samples):
  """Monte-Carlo estimate of the same factorised bound the closed form computes exactly:
  E_{q(z)q(c)}[log p(x|z) + log pi_c + log N(z|c) - log q(c|x) - log q(z|x)], log N via gmmjax."""
  mean, log_var = model.encode(params, x)
  log_resp = vade.cluster_log_probs(params.prior, mean, log_var)
  gmm = vade.prior_to_gmm(params.prior)
  eps = jax.random.normal(key, (n_samples, *mean.shape), mean.dtype)
  z = mean[None] + jnp.exp(0.5 * log_var)[None] * eps
  n, l = mean.shape
  comp = gmmjax.component_log_prob(gmm, z.reshape(-1, l)).reshape(n_samples, n, -1)
  log_w = jnp.log(gmm.weights)
  inner = jnp.sum(jnp.exp(log_resp)[None] * (log_w[None, None] + comp - log_resp[None]), axis=-1)
  log_q = -0.5 * jnp.sum(math.log(2 * math.pi) + log_var[None] + eps**2, axis=-1)
  return inner - log_q  # [s, n]: the negative KL part


@pytest.mark.parametrize("covariance", vade.PRIOR_COVARIANCES)
@pytest.mark.slow
def test_closed_form_kl_matches_monte_carlo_in_expectation(key, covariance):
  model, params, x = _tiny(key, covariance=covariance)
  terms = vade.elbo(jax.random.key(1), model, params, x, method="closed_form")
  samples = _factorised_elbo_mc(jax.random.key(2), model, params, x, 200_000)
  mc, se = jnp.mean(samples, 0), jnp.std(samples, 0) / math.sqrt(samples.shape[0])
  assert bool(jnp.all(se > 0))
  np.testing.assert_array_less(jnp.abs(-terms.kl - mc), 5 * se + 1e-9)


@pytest.mark.slow
def test_reconstruction_term_is_shared_by_both_estimators(key):
  model, params, x = _tiny(key)
  a = vade.elbo(jax.random.key(3), model, params, x, method="closed_form", n_samples=4)
  b = vade.elbo(jax.random.key(3), model, params, x, method="monte_carlo", n_samples=4)
  np.testing.assert_allclose(a.reconstruction, b.reconstruction, rtol=1e-12)
  np.testing.assert_allclose(a.log_resp, b.log_resp, rtol=1e-12)


@pytest.mark.slow
def test_estimators_agree_with_one_component(key):
  # With k = 1 there is no q(c|x) gap: both are unbiased for the same bound. The same key
  # gives the same z, so only the KL estimate differs.
  model, params, x = _tiny(key, k=1)
  a = vade.elbo(jax.random.key(4), model, params, x, method="closed_form", n_samples=4000)
  b = vade.elbo(jax.random.key(4), model, params, x, method="monte_carlo", n_samples=4000)
  np.testing.assert_allclose(b.kl, a.kl, atol=0.1)
  assert bool(jnp.all(a.kl > 0.5))  # not trivially zero


@pytest.mark.parametrize("covariance", vade.PRIOR_COVARIANCES)
@pytest.mark.slow
def test_bounds_below_importance_sampled_log_likelihood(key, covariance):
  model, params, x = _tiny(key, n=3, covariance=covariance)
  # The same key gives both bounds the same z, so their difference is only the KL estimate.
  closed = vade.elbo(jax.random.key(6), model, params, x, method="closed_form", n_samples=2000).elbo
  mc = vade.elbo(jax.random.key(6), model, params, x, method="monte_carlo", n_samples=2000).elbo
  log_px = vade.log_likelihood(jax.random.key(8), model, params, x, n_samples=20_000)
  # Closed form <= collapsed Monte-Carlo bound <= log p(x), up to sampling error.
  assert bool(jnp.all(closed <= mc + 0.05))
  assert bool(jnp.all(mc <= log_px + 0.5))
  assert bool(jnp.all(closed < log_px))
  # Few importance samples give a looser (lower) estimate on average.
  few = vade.log_likelihood(jax.random.key(9), model, params, x, n_samples=2)
  assert float(jnp.mean(few)) <= float(jnp.mean(log_px)) + 0.05


@given(
    hnp.arrays(np.float64, (5, 3), elements=st.floats(-20, 20)),
    hnp.arrays(np.float64, (5, 3), elements=st.floats(-8, 4)),
    hnp.arrays(np.float64, (4, 3), elements=st.floats(-20, 20)),
    hnp.arrays(np.float64, (4, 3), elements=st.floats(-8, 4)),
    hnp.arrays(np.float64, (4,), elements=st.floats(-10, 10)),
)
@pytest.mark.slow
def test_kl_part_non_negative_and_resp_normalised(mean, log_var, mu, lv, logits):
  prior = vade.PriorParams(jnp.asarray(logits), jnp.asarray(mu), jnp.asarray(lv))
  a = vade.expected_joint_log_prob(prior, jnp.asarray(mean), jnp.asarray(log_var))
  kl = -(jax.nn.logsumexp(a, axis=-1) + vade._gaussian_entropy(jnp.asarray(log_var)))
  assert bool(jnp.all(kl >= -1e-6 * (1 + jnp.abs(kl))))
  log_resp = vade.cluster_log_probs(prior, jnp.asarray(mean), jnp.asarray(log_var))
  np.testing.assert_allclose(jax.nn.logsumexp(log_resp, axis=-1), 0.0, atol=1e-9)


@pytest.mark.parametrize("covariance", fast_only(vade.PRIOR_COVARIANCES, "full"))
def test_gamma_tends_to_gmm_posterior_at_the_mean(key, covariance):
  _, params, _ = _tiny(key, covariance=covariance)
  mean = jax.random.normal(jax.random.key(11), (7, 2), jnp.float64)
  log_var = jnp.full((7, 2), -30.0)
  gamma = jnp.exp(vade.cluster_log_probs(params.prior, mean, log_var))
  expected = gmmjax.predict_proba(vade.prior_to_gmm(params.prior), mean)
  np.testing.assert_allclose(gamma, expected, atol=1e-9)


def test_prior_roundtrip_and_diagonal_of_full(key):
  _, params, _ = _tiny(key)
  gmm = vade.prior_to_gmm(params.prior)
  back = vade.prior_from_gmm(gmm)
  np.testing.assert_allclose(jax.nn.softmax(back.logits), gmm.weights, rtol=1e-12)
  np.testing.assert_allclose(back.log_vars, params.prior.log_vars, rtol=1e-10)
  full = gmmjax.GMMParams.from_covariances(
      jnp.array([0.3, 0.7]), jnp.zeros((2, 2)),
      jnp.array([[[2.0, 0.5], [0.5, 1.0]], [[1.0, 0.0], [0.0, 3.0]]]), "full")
  np.testing.assert_allclose(
      jnp.exp(vade.prior_from_gmm(full).log_vars), [[2.0, 1.0], [1.0, 3.0]], rtol=1e-10)


@pytest.mark.slow
def test_full_prior_expected_log_density_against_scipy(key):
  # E_{N(m, diag s^2)}[log N(z | mu, Sigma)] = log N(m | mu, Sigma) - tr(Sigma^-1 diag s^2) / 2.
  from scipy import stats

  _, params, _ = _tiny(key, k=3, latent_dim=4, covariance="full")
  mean = jax.random.normal(jax.random.key(1), (5, 4), jnp.float64)
  log_var = 0.5 * jax.random.normal(jax.random.key(2), (5, 4), jnp.float64)
  gmm = vade.prior_to_gmm(params.prior)
  got = vade.expected_joint_log_prob(params.prior, mean, log_var)
  for c in range(3):
    cov = np.asarray(gmm.covariances[c])
    want = (np.log(gmm.weights[c]) + stats.multivariate_normal(gmm.means[c], cov).logpdf(np.asarray(mean))
            - 0.5 * np.exp(np.asarray(log_var)) @ np.diag(np.linalg.inv(cov)))
    np.testing.assert_allclose(got[:, c], want, rtol=1e-10)


def test_full_prior_with_zero_correlations_equals_diagonal(key):
  _, params, _ = _tiny(key)
  diag = params.prior
  full = diag._replace(precision_offdiag=jnp.tril(jnp.ones((3, 2, 2))))  # lower triangle is ignored
  mean = jax.random.normal(jax.random.key(1), (6, 2), jnp.float64)
  log_var = jax.random.normal(jax.random.key(2), (6, 2), jnp.float64)
  np.testing.assert_allclose(vade.expected_joint_log_prob(full, mean, log_var),
                             vade.expected_joint_log_prob(diag, mean, log_var), rtol=1e-12)
  np.testing.assert_allclose(vade.prior_to_gmm(full).covariances,
                             jax.vmap(jnp.diag)(vade.prior_to_gmm(diag).covariances), rtol=1e-12)


def test_full_prior_roundtrip_and_from_other_types(key):
  cov = jnp.array([[[2.0, 0.5], [0.5, 1.0]], [[1.0, -0.3], [-0.3, 3.0]]])
  gmm = gmmjax.GMMParams.from_covariances(jnp.array([0.3, 0.7]), jnp.ones((2, 2)), cov, "full")
  prior = vade.prior_from_gmm(gmm, "full")
  np.testing.assert_allclose(vade.prior_to_gmm(prior).covariances, cov, rtol=1e-10)
  np.testing.assert_allclose(jax.nn.softmax(prior.logits), [0.3, 0.7], rtol=1e-12)
  diag = gmmjax.GMMParams.from_covariances(jnp.array([0.5, 0.5]), jnp.zeros((2, 2)),
                                           jnp.array([[2.0, 1.0], [1.0, 3.0]]), "diag")
  np.testing.assert_allclose(vade.prior_to_gmm(vade.prior_from_gmm(diag, "full")).covariances,
                             jax.vmap(jnp.diag)(diag.covariances), rtol=1e-10, atol=1e-15)
  with pytest.raises(ValueError, match="covariance_type"):
    vade.prior_from_gmm(gmm, "tied")


@pytest.mark.slow
def test_init_prior_full_keeps_correlations(key):
  cov = jnp.array([[1.0, 0.9], [0.9, 1.0]])
  centers = jnp.array([[-6.0, 0.0], [6.0, 0.0]])
  labels = jnp.repeat(jnp.arange(2), 2000)
  latents = centers[labels] + jax.random.normal(key, (4000, 2)) @ jnp.linalg.cholesky(cov).T
  prior = vade.init_prior(jax.random.key(1), latents, 2, covariance_type="full")
  np.testing.assert_allclose(vade.prior_to_gmm(prior).covariances, jnp.stack([cov, cov]), atol=0.08)
  assert vade.prior_covariance_type(vade.init_prior(jax.random.key(1), latents, 2)) == "diag"


def test_full_prior_samples_have_the_component_covariance(key):
  _, params, _ = _tiny(key, covariance="full")
  z, c = vade.sample_latents(jax.random.key(5), params.prior, 200_000, component=1)
  assert bool(jnp.all(c == 1))
  gmm = vade.prior_to_gmm(params.prior)
  sd = jnp.sqrt(jnp.diagonal(gmm.covariances[1]))
  np.testing.assert_array_less(jnp.abs(jnp.mean(z, 0) - gmm.means[1]), 5 * sd / math.sqrt(z.shape[0]))
  np.testing.assert_allclose(jnp.cov(z.T), gmm.covariances[1], rtol=0.03, atol=0.01)


@pytest.mark.slow
def test_full_prior_trains_in_float32_and_gmvae_refuses_it(key):
  import optax

  model = vade.VaDE(gnn.MLPEncoder(2, (16,)), gnn.MLPDecoder((16,)), 3, 2, prior_covariance="full")
  x = (jax.random.uniform(key, (16, 28, 28, 1)) > 0.7).astype(jnp.float32)
  params = model.init(jax.random.key(1), x)
  assert params.prior.precision_offdiag.shape == (3, 2, 2)
  opt = optax.adam(1e-2)
  state = opt.init(params)

  @jax.jit
  def step(params, state, key):
    value, g = jax.value_and_grad(lambda p: vade.loss(key, model, p, x))(params)
    upd, state = opt.update(g, state)
    return optax.apply_updates(params, upd), state, value, g

  for i in range(10):
    params, state, value, g = step(params, state, jax.random.key(i))
    assert all(bool(jnp.all(jnp.isfinite(leaf))) for leaf in jax.tree.leaves(g))
  assert bool(jnp.isfinite(value))
  with pytest.raises(ValueError, match="prior_covariance"):
    vade.VaDE(gnn.MLPEncoder(2), gnn.MLPDecoder(), 3, 2, prior_covariance="tied")
  from gmmjax.nn import gmvae

  gm = gmvae.GMVAE(gnn.MLPEncoder(2, (16,)), gnn.MLPDecoder((16,)), 3, 2)
  gparams = gm.init(jax.random.key(2), x)
  with pytest.raises(ValueError, match="diagonal"):
    gmvae.loss(key, gm, gparams._replace(prior=params.prior), x)


@pytest.mark.parametrize("method", vade.ELBO_METHODS)
@pytest.mark.slow
def test_float32_gradients_finite_on_extreme_prior(key, method):
  model = _tiny_model(k=4)
  x = (jax.random.uniform(key, (8, 28, 28, 1)) > 0.5).astype(jnp.float32)
  params = model.init(jax.random.key(1), x)
  # Far-apart, very narrow components: naive exp(log N) underflows to 0 for every c.
  prior = vade.PriorParams(
      logits=jnp.array([0.0, -30.0, 5.0, 0.0], jnp.float32),
      means=jnp.array([[1e3, 0], [-1e3, 0], [0, 1e3], [0, -1e3]], jnp.float32),
      log_vars=jnp.full((4, 2), -10.0, jnp.float32),
  )
  params = params._replace(prior=prior)
  loss = lambda p: vade.loss(jax.random.key(2), model, p, x, method=method)  # noqa: E731
  value, grads = jax.value_and_grad(loss)(params)
  assert value.dtype == jnp.float32
  assert bool(jnp.isfinite(value))
  for leaf in jax.tree.leaves(grads):
    assert leaf.dtype == jnp.float32
    assert bool(jnp.all(jnp.isfinite(leaf)))
  resp = vade.predict_proba(model, params, x)
  assert bool(jnp.all(jnp.isfinite(resp)))
  np.testing.assert_allclose(jnp.sum(resp, -1), 1.0, rtol=1e-5)


@pytest.mark.slow
def test_init_prior_finds_separated_clusters(key):
  centers = jnp.array([[-6.0, 0.0], [6.0, 0.0], [0.0, 8.0]])
  labels = jnp.repeat(jnp.arange(3), 100)
  latents = centers[labels] + 0.3 * jax.random.normal(key, (300, 2))
  prior = vade.init_prior(jax.random.key(1), latents, 3)
  got = np.sort(np.asarray(prior.means), axis=0)
  np.testing.assert_allclose(got, np.sort(np.asarray(centers), axis=0), atol=0.15)
  np.testing.assert_allclose(jax.nn.softmax(prior.logits), 1 / 3, atol=0.02)


def test_pretrain_and_training_step_reduce_loss(key):
  import optax

  model = _tiny_model(k=2)
  x = (jax.random.uniform(key, (16, 28, 28, 1)) > 0.7).astype(jnp.float32)
  params = model.init(jax.random.key(1), x)
  opt = optax.adam(1e-2)
  state = opt.init(params)

  @jax.jit
  def step(params, state, k):
    value, g = jax.value_and_grad(lambda p: vade.loss(k, model, p, x))(params)
    upd, state = opt.update(g, state)
    return optax.apply_updates(params, upd), state, value

  first = None
  for i in range(30):
    params, state, value = step(params, state, jax.random.key(i))
    first = value if first is None else first
  assert float(value) < float(first)
  assert bool(jnp.isfinite(vade.pretrain_loss(model, params, x)))


@pytest.mark.slow
def test_sample_per_component_and_shapes(key):
  model, params, _ = _tiny(key, dtype=jnp.float32)
  images, comps = vade.sample(key, model, params, 6, component=2)
  assert images.shape == (6, 28, 28, 1)
  assert bool(jnp.all(comps == 2))
  assert bool(jnp.all((images >= 0) & (images <= 1)))
  _, comps = vade.sample(key, model, params, 500)
  assert set(np.unique(comps)) <= {0, 1, 2}


@pytest.mark.parametrize("covariance", vade.PRIOR_COVARIANCES)
@pytest.mark.slow
def test_uniform_weights_is_the_model_with_zero_logits_and_never_trains_them(key, covariance):
  model, params, x = _tiny(key, covariance=covariance)
  uniform = dataclasses.replace(model, uniform_weights=True)
  zeroed = params._replace(prior=params.prior._replace(logits=jnp.zeros_like(params.prior.logits)))
  assert not np.allclose(params.prior.logits, 0.0)
  for method in vade.ELBO_METHODS:
    got = vade.elbo(key, uniform, params, x, method=method)
    want = vade.elbo(key, model, zeroed, x, method=method)
    for a, b in zip(got, want):
      np.testing.assert_array_equal(a, b)
  np.testing.assert_array_equal(vade.predict_proba(uniform, params, x), vade.predict_proba(model, zeroed, x))
  np.testing.assert_array_equal(vade.predict(uniform, params, x), vade.predict(model, zeroed, x))
  np.testing.assert_array_equal(vade.log_likelihood(key, uniform, params, x, n_samples=8),
                                vade.log_likelihood(key, model, zeroed, x, n_samples=8))
  for got, want in zip(vade.sample(key, uniform, params, 7), vade.sample(key, model, zeroed, 7)):
    np.testing.assert_array_equal(got, want)
  grads = jax.grad(lambda p: vade.loss(key, uniform, p, x))(params)
  np.testing.assert_array_equal(grads.prior.logits, 0.0)
  assert np.all(np.abs(grads.prior.means) > 0)


def test_bad_arguments_raise(key):
  with pytest.raises(ValueError, match="uniform_weights"):
    vade.VaDE(gnn.MLPEncoder(2), gnn.MLPDecoder(), 3, 2, uniform_weights=1)
  with pytest.raises(ValueError, match="likelihood"):
    vade.VaDE(gnn.MLPEncoder(2), gnn.MLPDecoder(), 3, 2, likelihood="poisson")
  with pytest.raises(ValueError, match="n_components"):
    vade.VaDE(gnn.MLPEncoder(2), gnn.MLPDecoder(), 0, 2)
  model, params, x = _tiny(key)
  with pytest.raises(ValueError, match="method"):
    vade.elbo(key, model, params, x, method="exact")


@pytest.mark.parametrize("method", vade.ELBO_METHODS)
@pytest.mark.slow
def test_kl_weight_scales_only_the_kl_part_and_one_is_the_elbo(key, method):
  model, params, x = _tiny(key, covariance="full")
  terms = vade.elbo(key, model, params, x, method=method)
  # Weight 1 is the ELBO to the last bit, so runs without the option are unchanged.
  np.testing.assert_array_equal(vade.loss(key, model, params, x, method=method), -jnp.mean(terms.elbo))
  for weight in (0.0, 0.5, 2.0):
    np.testing.assert_allclose(vade.loss(key, model, params, x, method=method, kl_weight=weight),
                               -jnp.mean(terms.reconstruction - weight * terms.kl), rtol=1e-12)
  # The prior enters through the KL part alone: without it, the prior gets no gradient.
  grads = jax.grad(lambda p: vade.loss(key, model, p, x, method=method, kl_weight=0.0))(params)
  for leaf in jax.tree.leaves(grads.prior):
    np.testing.assert_array_equal(leaf, 0.0)
  scaled = jax.grad(lambda p: vade.loss(key, model, p, x, method=method, kl_weight=2.0))(params)
  one = jax.grad(lambda p: vade.loss(key, model, p, x, method=method))(params)
  for a, b in zip(jax.tree.leaves(scaled.prior), jax.tree.leaves(one.prior)):
    np.testing.assert_allclose(a, 2.0 * b, rtol=1e-10, atol=1e-14)
  with pytest.raises(ValueError, match="kl_weight"):
    vade.loss(key, model, params, x, kl_weight=-1.0)


@pytest.mark.parametrize("architecture", gnn.ARCHITECTURES)
@pytest.mark.slow
def test_posterior_log_var_reset_makes_gamma_the_gmm_posterior(key, architecture):
  small = {"hidden": (16,)} if architecture == "mlp" else {}
  model = vade.VaDE(gnn.make_encoder(architecture, 3, **small), gnn.make_decoder(architecture, **small), 4, 3)
  x = jax.random.uniform(key, (6, 28, 28, 1), jnp.float32)
  params = model.init(jax.random.key(1), x)
  params = params._replace(prior=vade.PriorParams(
      jnp.zeros(4, jnp.float32), jax.random.normal(key, (4, 3), jnp.float32) * 0.05,
      jnp.log(jnp.full((4, 3), 1e-3, jnp.float32)).at[0].set(0.0)))
  # A random log-variance head gives variances ~1, far wider than three of the components.
  reset = vade.init_posterior_from_prior(params, fraction=0.01)
  mean, log_var = model.encode(reset, x)
  np.testing.assert_allclose(log_var, jnp.broadcast_to(jnp.log(1e-5), log_var.shape), rtol=1e-4)
  np.testing.assert_allclose(mean, model.encode(params, x)[0])  # the mean head is untouched
  gmm_resp = gmmjax.predict_proba(vade.prior_to_gmm(reset.prior), mean)
  np.testing.assert_allclose(vade.predict_proba(model, reset, x), gmm_resp, atol=0.05)


@pytest.mark.slow
def test_denoising_pretrain_loss_encodes_the_masked_image_and_scores_the_clean_one(key):
  model, params, x = _tiny(key, dtype=jnp.float32)
  k_mask = jax.random.key(7)
  assert float(vade.pretrain_loss(model, params, x, key=k_mask)) == float(vade.pretrain_loss(model, params, x))

  rate = 0.3
  got = vade.pretrain_loss(model, params, x, key=k_mask, input_dropout=rate)
  masked = jnp.where(jax.random.bernoulli(k_mask, 1 - rate, x.shape), x, 0.0)
  mean, _ = model.encode(params, masked)
  want = -jnp.mean(gnn.log_likelihood(model.likelihood, model.decode(params, mean), x))
  np.testing.assert_allclose(float(got), float(want), rtol=1e-6)
  # The target stays clean: scoring the masked image against itself is another number.
  assert abs(float(got) - float(vade.pretrain_loss(model, params, masked))) > 1e-3
  grads = jax.grad(lambda p: vade.pretrain_loss(model, p, x, key=k_mask, input_dropout=rate))(params)
  assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))


@pytest.mark.parametrize("rate, with_key", [(0.2, False), (1.0, True), (-0.1, True)])
def test_denoising_pretrain_loss_rejects_bad_settings(key, rate, with_key):
  model, params, x = _tiny(key, dtype=jnp.float32)
  with pytest.raises(ValueError, match="input_dropout"):
    vade.pretrain_loss(model, params, x, key=key if with_key else None, input_dropout=rate)


@pytest.mark.parametrize("method", vade.ELBO_METHODS)
@pytest.mark.slow
def test_denoising_elbo_encodes_the_masked_image_and_scores_the_clean_one(key, method, monkeypatch):
  model, params, x = _tiny(key, dtype=jnp.float32, covariance="full")
  k = jax.random.key(7)
  got = vade.elbo(k, model, params, x, method=method, input_dropout=0.3)
  np.testing.assert_array_equal(vade.elbo(k, model, params, x, method=method, input_dropout=0.0).elbo,
                                vade.elbo(k, model, params, x, method=method).elbo)
  # Oracle: the plain ELBO of a model whose encoder reads the masked image in place of its input.
  masked = vade.corrupt_images(jax.random.fold_in(k, 2), x, 0.3)
  assert 0.1 < float(jnp.mean((masked == 0) & (x == 1)) / jnp.mean(x == 1)) < 0.5
  want = call_with_encoder_input(monkeypatch, vade.VaDE, "encode", masked,
                                 lambda: vade.elbo(k, model, params, x, method=method))
  jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=1e-6), got, want)
  grads = jax.grad(lambda p: vade.loss(k, model, p, x, method=method, input_dropout=0.3))(params)
  assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
  with pytest.raises(ValueError, match="input_dropout"):
    vade.loss(k, model, params, x, input_dropout=1.0)


def _shifted_with_zeros(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
  h, w = image.shape[:2]
  out = np.zeros_like(image)
  out[max(0, dy):h + min(0, dy), max(0, dx):w + min(0, dx)] = image[max(0, -dy):h - max(0, dy),
                                                                    max(0, -dx):w - max(0, dx)]
  return out


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), max_shift=st.integers(0, 3))
@pytest.mark.slow
def test_shift_images_translates_each_image_within_the_range_with_zero_fill(seed, max_shift):
  x = np.asarray(jax.random.uniform(jax.random.key(seed), (8, 28, 28, 1), jnp.float32)) + 0.5
  got = np.asarray(vade.shift_images(jax.random.key(seed + 1), jnp.asarray(x), max_shift))
  shifts = range(-max_shift, max_shift + 1)
  for image, shifted in zip(x, got):
    # Pixels are >= 0.5, so exactly one translation reproduces the image (zeros mark what came in).
    matches = [(dy, dx) for dy in shifts for dx in shifts
               if np.array_equal(_shifted_with_zeros(image, dy, dx), shifted)]
    assert len(matches) == 1


@pytest.mark.slow
def test_shift_images_draws_every_offset(key):
  x = jnp.zeros((2000, 5, 5, 1)).at[:, 2, 2, 0].set(1.0)  # one bright pixel in the centre
  where = np.argwhere(np.asarray(vade.shift_images(key, x, 1))[..., 0] == 1.0)[:, 1:]
  counts = np.unique(where, axis=0, return_counts=True)[1]
  assert len(counts) == 9 and counts.min() > 150  # all 3 x 3 offsets, each ~222 times


def test_shifting_pretrain_loss_encodes_the_shifted_masked_image_and_scores_the_clean_one(key):
  model, params, x = _tiny(key, dtype=jnp.float32)
  k = jax.random.key(7)
  got = vade.pretrain_loss(model, params, x, key=k, input_dropout=0.3, max_shift=2)
  shifted = vade.shift_images(jax.random.fold_in(k, 1), x, 2)
  corrupted = jnp.where(jax.random.bernoulli(k, 0.7, x.shape), shifted, 0.0)
  mean, _ = model.encode(params, corrupted)
  want = -jnp.mean(gnn.log_likelihood(model.likelihood, model.decode(params, mean), x))
  np.testing.assert_allclose(float(got), float(want), rtol=1e-6)
  assert not np.array_equal(np.asarray(shifted), np.asarray(x))
  # Without shifts the dropout mask is the one drawn before shifts existed (recorded runs reproduce).
  np.testing.assert_array_equal(
      float(vade.pretrain_loss(model, params, x, key=k, input_dropout=0.3, max_shift=0)),
      float(vade.pretrain_loss(model, params, x, key=k, input_dropout=0.3)))


@pytest.mark.parametrize("max_shift, with_key",
                         [(1, False), (-1, True), (28, True), (1.5, True), (True, True)])
def test_shifting_pretrain_loss_rejects_bad_settings(key, max_shift, with_key):
  model, params, x = _tiny(key, dtype=jnp.float32)
  with pytest.raises(ValueError, match="max_shift"):
    vade.pretrain_loss(model, params, x, key=key if with_key else None, max_shift=max_shift)
