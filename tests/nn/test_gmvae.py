"""GMVAE: exact marginalisation over c against a per-component loop, the bound against importance-sampled
log p(x), float32 gradients on degenerate data, jit."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

import gmmjax
from gmmjax import nn as gnn
from gmmjax.nn import gmvae, vade
from helpers import call_with_encoder_input, fast_only


K, L, N = 3, 2, 4  # Components, latent size, images: one size everywhere, so tests share compilations.

# Whole functions are jitted once here: on CPU, compiling them beats running them op by op.
elbo = jax.jit(gmvae.elbo, static_argnums=1, static_argnames=("method", "n_samples"))
log_likelihood = jax.jit(gmvae.log_likelihood, static_argnums=(1, 4))
posterior = jax.jit(lambda model, params, x: model.posterior(params, x), static_argnums=0)
predict_proba = jax.jit(gmvae.predict_proba, static_argnums=0)
init = jax.jit(lambda model, key, x: model.init(key, x), static_argnums=0)
init_posterior_from_prior = jax.jit(gmvae.init_posterior_from_prior)
DECODER = gnn.MLPDecoder((16,))
decoder_log_prob = jax.jit(lambda variables, z, x: gnn.bernoulli_log_prob(DECODER.apply(variables, z), x))


def _model(uniform_weights=False):
  return gmvae.GMVAE(gnn.MLPEncoder(L, (16,)), DECODER, K, L, head_hidden=8, uniform_weights=uniform_weights)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _random_model(key, model, dtype):
  kx, kp, km, kv, kw, kh = jax.random.split(key, 6)
  x = (jax.random.uniform(kx, (N, 28, 28, 1)) > 0.5).astype(dtype)
  params = model.init(kp, x)
  prior = vade.PriorParams(
      logits=jax.random.normal(kw, (K,), dtype),
      means=1.5 * jax.random.normal(km, (K, L), dtype),
      log_vars=0.3 * jax.random.normal(kv, (K, L), dtype),
  )
  leaves, tree = jax.tree.flatten(params.head)
  keys = jax.random.split(kh, len(leaves))
  head = tree.unflatten([a + 0.3 * jax.random.normal(kk, a.shape, a.dtype) for a, kk in zip(leaves, keys)])
  return params._replace(prior=prior, head=head), x


@functools.lru_cache
def _tiny(dtype=jnp.float64):
  """A small random model (posterior head perturbed away from its zero start) and binary images."""
  model = _model()
  return (model, *_random_model(jax.random.key(0), model, dtype))


@pytest.mark.slow
def test_shapes_and_normalisation(key):
  model, params, x = _tiny()
  post = posterior(model, params, x)
  assert post.log_resp.shape == (N, K) and post.means.shape == post.log_vars.shape == (N, K, L)
  terms = elbo(key, model, params, x, n_samples=3)
  for name in ("elbo", "reconstruction", "kl"):
    assert getattr(terms, name).shape == (N,) and getattr(terms, name).dtype == x.dtype
  assert bool(jnp.all(terms.kl > 0))  # Both KL parts are exact here (closed form), hence >= 0.
  resp = predict_proba(model, params, x)
  np.testing.assert_allclose(jnp.sum(resp, -1), 1.0, rtol=1e-12)
  labels = jax.jit(gmvae.predict, static_argnums=0)(model, params, x)
  np.testing.assert_array_equal(labels, jnp.argmax(resp, -1))
  assert log_likelihood(key, model, params, x, n_samples=1).shape == (N,)
  assert jax.jit(model.reconstruct)(params, x).shape == (N, 28, 28, 1)
  sample = jax.jit(gmvae.sample, static_argnums=(1, 3))
  images, comps = sample(key, model, params, 6, 2)
  assert images.shape == (6, 28, 28, 1) and bool(jnp.all(comps == 2))
  assert bool(jnp.all((images >= 0) & (images <= 1)))
  _, comps = sample(key, model, params, 300)
  assert set(np.unique(comps)) <= {0, 1, 2}


@pytest.mark.parametrize("method, uniform_weights",
                         fast_only([("closed_form", False), ("monte_carlo", True)], ("monte_carlo", True)))
def test_exact_marginalisation_equals_loop_over_components(key, method, uniform_weights):
  # The same key gives the same z; here each component is decoded on its own and its log densities
  # come from scipy.
  model, params, x = _tiny()
  post = posterior(model, params, x)
  model = _model(uniform_weights)  # The same parameters.
  s = 3
  terms = elbo(jax.random.key(5), model, params, x, method=method, n_samples=s)
  n, k, l = post.means.shape
  eps = np.asarray(jax.random.normal(jax.random.key(5), (s, n, k, l), jnp.float64))
  logits = np.zeros(k) if uniform_weights else np.asarray(params.prior.logits)
  log_pc = special.log_softmax(logits)
  mu, var = np.asarray(params.prior.means), np.exp(np.asarray(params.prior.log_vars))
  m, v = np.asarray(post.means), np.exp(np.asarray(post.log_vars))
  q = np.exp(np.asarray(post.log_resp))
  expected = np.zeros(n)
  for c in range(k):
    z = m[None, :, c] + np.sqrt(v[None, :, c]) * eps[:, :, c]  # [s, n, l]
    rec = np.stack([np.asarray(decoder_log_prob(params.decoder, jnp.asarray(z[i]), x)) for i in range(s)])
    if method == "closed_form":
      kl_z = 0.5 * np.sum(np.log(var[c] / v[:, c]) + (v[:, c] + (m[:, c] - mu[c]) ** 2) / var[c] - 1, -1)
    else:
      log_q = stats.norm.logpdf(z, m[None, :, c], np.sqrt(v[None, :, c])).sum(-1)
      log_p = stats.norm.logpdf(z, mu[c], np.sqrt(var[c])).sum(-1)
      kl_z = np.mean(log_q - log_p, axis=0)
    expected += q[:, c] * (rec.mean(0) - kl_z - np.log(q[:, c]) + log_pc[c])
  np.testing.assert_allclose(terms.elbo, expected, rtol=1e-10)
  np.testing.assert_allclose(terms.reconstruction - terms.kl, terms.elbo, rtol=1e-12)


@pytest.mark.slow
def test_estimators_agree_in_expectation(key):
  model, params, x = _tiny()
  a = elbo(jax.random.key(1), model, params, x, method="closed_form", n_samples=1000)
  b = elbo(jax.random.key(1), model, params, x, method="monte_carlo", n_samples=1000)
  np.testing.assert_allclose(a.reconstruction, b.reconstruction, rtol=1e-12)  # Same z.
  np.testing.assert_allclose(b.kl, a.kl, atol=0.15)  # The sampled Gaussian KL: standard error ~0.03.


@pytest.mark.slow
def test_elbo_below_importance_sampled_log_likelihood(key):
  model, params, x = _tiny()
  # 1,000 z per component (3,000 per image): two independent estimates agree to 0.5 nats.
  log_px = log_likelihood(jax.random.key(8), model, params, x, n_samples=1000)
  again = log_likelihood(jax.random.key(9), model, params, x, n_samples=1000)
  np.testing.assert_allclose(log_px, again, atol=0.5)
  # The bound, averaged over 1,000 z per component, lies below log p(x) up to 0.5 nats of sampling
  # error; for this random model it lies tens of nats below, so the check is not vacuous.
  bound = elbo(jax.random.key(6), model, params, x, n_samples=1000).elbo
  assert bool(jnp.all(bound <= log_px + 0.5))
  assert bool(jnp.all(bound < log_px - 5))
  # Few importance samples give a looser (lower) estimate on average.
  few = log_likelihood(jax.random.key(10), model, params, x, n_samples=1)
  assert float(jnp.mean(few)) <= float(jnp.mean(log_px)) + 0.05


@pytest.mark.parametrize("method", vade.ELBO_METHODS)
@pytest.mark.slow
def test_float32_gradients_finite_on_degenerate_input(key, method):
  model = _model()
  zeros = jnp.zeros((N, 28, 28, 1), jnp.float32)
  duplicates = jnp.tile((jax.random.uniform(key, (1, 28, 28, 1)) > 0.5).astype(jnp.float32), (N, 1, 1, 1))
  params = init(model, jax.random.key(1), zeros)
  # What a GMM fitted to codes this degenerate can look like: far-apart, very narrow components.
  prior = vade.PriorParams(
      logits=jnp.array([0.0, -30.0, 5.0], jnp.float32),
      means=jnp.array([[1e3, 0], [-1e3, 0], [0, 1e3]], jnp.float32),
      log_vars=jnp.full((K, L), -10.0, jnp.float32),
  )
  params = init_posterior_from_prior(params._replace(prior=prior))
  loss = lambda p, x: gmvae.loss(jax.random.key(2), model, p, x, method=method)  # noqa: E731
  grad = jax.jit(jax.value_and_grad(loss))
  for x in (zeros, duplicates):
    value, grads = grad(params, x)
    assert value.dtype == jnp.float32 and bool(jnp.isfinite(value))
    for leaf in jax.tree.leaves(grads):
      assert leaf.dtype == jnp.float32
      assert bool(jnp.all(jnp.isfinite(leaf)))
    resp = predict_proba(model, params, x)
    assert bool(jnp.all(jnp.isfinite(resp)))
    np.testing.assert_allclose(jnp.sum(resp, -1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(resp, jnp.broadcast_to(resp[:1], resp.shape), rtol=1e-6)  # Equal images.


@pytest.mark.slow
def test_jit_equals_eager_and_compiles_once(key):
  model, params, x = _tiny(jnp.float32)
  loss = lambda p, x, k: gmvae.loss(k, model, p, x)  # noqa: E731
  grad = jax.jit(jax.value_and_grad(loss))
  value, _ = grad(params, x, jax.random.key(3))
  np.testing.assert_allclose(value, loss(params, x, jax.random.key(3)), rtol=1e-5)
  eager = gmvae.predict_proba(model, params, x)
  np.testing.assert_allclose(predict_proba(model, params, x), eager, rtol=1e-5)
  grad(params, 1 - x, jax.random.key(4))  # New values, same shapes: no recompilation.
  assert grad._cache_size() == 1


@pytest.mark.parametrize("method", vade.ELBO_METHODS)
def test_denoising_elbo_encodes_the_masked_image_and_scores_the_clean_one(method, monkeypatch):
  model, params, x = _tiny(jnp.float32)
  k = jax.random.key(7)
  got = gmvae.elbo(k, model, params, x, method=method, input_dropout=0.3)
  # Oracle: the plain ELBO of a model whose posterior reads the masked image in place of its input.
  masked = vade.corrupt_images(jax.random.fold_in(k, 2), x, 0.3)
  assert bool(jnp.any((masked == 0) & (x == 1)))
  want = call_with_encoder_input(monkeypatch, gmvae.GMVAE, "posterior", masked,
                                 lambda: gmvae.elbo(k, model, params, x, method=method))
  jax.tree.map(functools.partial(np.testing.assert_allclose, rtol=1e-6), got, want)
  assert abs(float(jnp.mean(got.elbo - gmvae.elbo(k, model, params, x, method=method).elbo))) > 1e-3
  with pytest.raises(ValueError, match="input_dropout"):
    gmvae.loss(k, model, params, x, input_dropout=-0.1)


@pytest.mark.slow
def test_kl_weight_scales_only_the_kl_part_and_one_is_the_elbo():
  model, params, x = _tiny(jnp.float32)
  k = jax.random.key(3)
  terms = elbo(k, model, params, x)
  np.testing.assert_array_equal(gmvae.loss(k, model, params, x), -jnp.mean(terms.elbo))
  np.testing.assert_allclose(gmvae.loss(k, model, params, x, kl_weight=3.0),
                             -jnp.mean(terms.reconstruction - 3.0 * terms.kl), rtol=1e-5)
  grads = jax.grad(lambda p: gmvae.loss(k, model, p, x, kl_weight=0.0))(params)
  for leaf in jax.tree.leaves(grads.prior):
    np.testing.assert_array_equal(leaf, 0.0)
  with pytest.raises(ValueError, match="kl_weight"):
    gmvae.loss(k, model, params, x, kl_weight=float("nan"))


@pytest.mark.slow
def test_init_from_prior_starts_at_the_gmm_posterior(key):
  model, _, x = _tiny(jnp.float32)
  params = init(model, jax.random.key(1), x)  # The posterior head's corrections start at zero.
  prior = vade.PriorParams(jnp.log(jnp.array([0.2, 0.3, 0.5], jnp.float32)),
                           0.2 * jax.random.normal(key, (K, L), jnp.float32),
                           jnp.log(jnp.array([[0.01, 0.1], [1.0, 0.05], [0.3, 0.3]], jnp.float32)))
  params = init_posterior_from_prior(params._replace(prior=prior))  # fraction=0.01
  mean, log_var = jax.jit(model.encode)(params, x)
  expected = gmmjax.predict_proba(vade.prior_to_gmm(prior), mean)
  np.testing.assert_allclose(predict_proba(model, params, x), expected, atol=1e-4)
  post = posterior(model, params, x)
  np.testing.assert_allclose(post.means, jnp.broadcast_to(mean[:, None], post.means.shape), rtol=1e-6)
  np.testing.assert_allclose(post.log_vars, jnp.broadcast_to(log_var[:, None], post.log_vars.shape),
                             rtol=1e-5)
  # 1% of the narrowest prior variance in each latent dimension.
  target = jnp.log(0.01 * jnp.array([0.01, 0.05]))
  np.testing.assert_allclose(log_var, jnp.broadcast_to(target, log_var.shape), rtol=1e-4)


def test_bad_arguments_raise(key):
  with pytest.raises(ValueError, match="likelihood"):
    gmvae.GMVAE(gnn.MLPEncoder(2), gnn.MLPDecoder(), 3, 2, likelihood="poisson")
  with pytest.raises(ValueError, match="n_components"):
    gmvae.GMVAE(gnn.MLPEncoder(2), gnn.MLPDecoder(), 0, 2)
  with pytest.raises(ValueError, match="head_hidden"):
    gmvae.GMVAE(gnn.MLPEncoder(2), gnn.MLPDecoder(), 3, 2, head_hidden=0)
  model, params, x = _tiny()
  with pytest.raises(ValueError, match="method"):
    gmvae.elbo(key, model, params, x, method="exact")
