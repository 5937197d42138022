"""Mixture-latent GAN modules, one training step, and the Frechet distance / label statistics."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.linalg

from gmmjax.nn import fid, gan


def _finite_tree(tree):
  return all(bool(jnp.all(jnp.isfinite(a))) for a in jax.tree.leaves(tree))


@pytest.mark.slow
def test_mixture_latent_moments_and_penalty():
  prior = gan.MixtureLatent(2, 3, min_scale=0.0)
  variables = prior.init(jax.random.key(0), jax.random.key(1), 4)
  means = jnp.array([[-2.0, 0.0, 1.0], [2.0, 1.0, -1.0]])
  raw = jnp.log(jnp.expm1(jnp.array([[0.5, 0.5, 0.5], [1.0, 1.0, 1.0]])))  # scales 0.5 and 1
  variables = {"params": {"means": means, "raw_scales": raw}}
  z = np.asarray(prior.apply(variables, jax.random.key(2), 200_000))
  np.testing.assert_allclose(z.mean(0), means.mean(0), atol=0.02)
  # Mixture variance: mean of the component variances + variance of the means.
  var = 0.5 * (0.25 + 1.0) + np.asarray(means).var(0)
  np.testing.assert_allclose(z.var(0), var, rtol=0.02)
  pen = prior.apply(variables, method=gan.MixtureLatent.scale_penalty)
  np.testing.assert_allclose(pen, (3 * 0.5**2) / 2, rtol=1e-6)


@pytest.mark.slow
def test_mixture_latent_is_reparameterised():
  prior = gan.MixtureLatent(4, 2)
  variables = prior.init(jax.random.key(0), jax.random.key(1), 4)
  grads = jax.grad(lambda v: jnp.sum(prior.apply(v, jax.random.key(2), 256) ** 2))(variables)
  assert float(jnp.abs(grads["params"]["means"]).min()) > 0
  assert float(jnp.abs(grads["params"]["raw_scales"]).min()) > 0
  init_scales = prior.apply(variables, method=gan.MixtureLatent.scales)
  np.testing.assert_allclose(init_scales, 0.2, rtol=1e-5)


@pytest.mark.slow
def test_gaussian_latent_has_no_parameters():
  g = gan.Generator(latent="gaussian", latent_dim=8, features=(16, 8))
  variables = g.init(jax.random.key(0), jax.random.key(1), 3)
  assert "prior" not in variables["params"]
  assert float(g.apply(variables, method=gan.Generator.scale_penalty)) == 0.0
  with pytest.raises(ValueError, match="latent"):
    gan.Generator(latent="uniform").init(jax.random.key(0), jax.random.key(1), 2)


@pytest.mark.parametrize("latent", ["mixture", "gaussian"])
@pytest.mark.slow
def test_shapes_and_training_step(latent):
  g = gan.Generator(latent=latent, latent_dim=8, n_components=5, features=(16, 8))
  d = gan.Discriminator(features=(8, 16))
  init, step = gan.make_gan(g, d, optax.adam(2e-4, b1=0.5), optax.adam(2e-4, b1=0.5))
  state = jax.jit(init)(jax.random.key(0))
  images = jax.jit(lambda p, k: g.apply({"params": p}, k, 6))(state.g_params, jax.random.key(1))
  assert images.shape == (6, 28, 28, 1)
  assert float(jnp.abs(images).max()) <= 1.0
  assert d.apply({"params": state.d_params}, images).shape == (6,)
  step = jax.jit(step)
  real = jnp.zeros((6, 28, 28, 1), jnp.float32)  # degenerate data: all-black images
  new, metrics = step(state, jax.random.key(2), real)
  assert int(new.step) == 1
  assert _finite_tree(metrics) and _finite_tree(new)
  changed = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), state.g_params, new.g_params)
  assert all(jax.tree.leaves(changed))
  step(new, jax.random.key(3), real)
  assert step._cache_size() == 1


def test_losses_match_cross_entropy():
  r, f = jnp.array([2.0, -1.0]), jnp.array([0.5, -3.0])
  sig = jax.nn.sigmoid
  expected = -jnp.mean(jnp.log(sig(r))) - jnp.mean(jnp.log(1 - sig(f)))
  np.testing.assert_allclose(gan.discriminator_loss(r, f), expected, rtol=1e-10)
  np.testing.assert_allclose(gan.generator_loss(f), -jnp.mean(jnp.log(sig(f))), rtol=1e-10)
  assert bool(jnp.isfinite(gan.discriminator_loss(jnp.array([-1e4]), jnp.array([1e4]))))


def test_frechet_distance_oracles():
  rng = np.random.default_rng(0)
  a, b = rng.normal(size=(5, 5)), rng.normal(size=(5, 5))
  c1, c2 = a @ a.T + 0.1 * np.eye(5), b @ b.T + 0.1 * np.eye(5)
  m1, m2 = rng.normal(size=5), rng.normal(size=5)
  ref = np.sum((m1 - m2) ** 2) + np.trace(c1 + c2 - 2 * scipy.linalg.sqrtm(c1 @ c2).real)
  np.testing.assert_allclose(fid.frechet_distance(m1, c1, m2, c2), ref, rtol=1e-8)
  d1, d2 = np.array([1.0, 4.0]), np.array([9.0, 1.0])
  np.testing.assert_allclose(
      fid.frechet_distance(np.zeros(2), np.diag(d1), np.ones(2), np.diag(d2)),
      2 + np.sum((np.sqrt(d1) - np.sqrt(d2)) ** 2), rtol=1e-12)
  assert abs(fid.frechet_distance(m1, c1, m1, c1)) < 1e-9
  # Rank-deficient covariances (features that are constant) stay finite and >= 0.
  f = rng.normal(size=(50, 3)) * np.array([1.0, 0.0, 2.0])[None]
  assert 0 <= fid.frechet_distance_of_features(f, f + 1) < np.inf


def test_label_stats():
  probs = np.eye(10)[np.arange(100) % 10]
  s = fid.label_stats(probs)
  assert s.coverage == 10 and s.mean_entropy == 0
  np.testing.assert_allclose(s.marginal_entropy, np.log(10))
  np.testing.assert_allclose(s.inception_score, 10)
  collapsed = fid.label_stats(np.tile(np.full((1, 10), 0.1), (20, 1)) * 0 + np.eye(10)[[3]])
  assert collapsed.coverage == 1 and collapsed.inception_score == pytest.approx(1.0)


@pytest.mark.slow
def test_classifier_learns_separable_classes():
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 2, 512)
  images = np.where(labels[:, None, None, None] == 1, 0.5, -0.5) + 0.3 * rng.normal(size=(512, 28, 28, 1))
  images, labels = jnp.asarray(images, jnp.float32), jnp.asarray(labels)
  model = fid.Classifier(n_classes=2, features=(4, 8), dense=16)
  params = fid.train_classifier(jax.random.key(0), images, labels, steps=60, batch_size=64, model=model)
  probs, feats = fid.classify(params, images, model=model, batch_size=200)
  assert feats.shape == (512, 16) and probs.shape == (512, 2)
  assert (probs.argmax(-1) == np.asarray(labels)).mean() > 0.95


@pytest.mark.slow
def test_classifier_loop_equals_scan():
  rng = np.random.default_rng(1)
  images = jnp.asarray(rng.uniform(-1, 1, (64, 28, 28, 1)), jnp.float32)
  labels = jnp.asarray(rng.integers(0, 3, 64))
  model = fid.Classifier(n_classes=3, features=(4,), dense=8)
  run = lambda scan: fid.train_classifier(
      jax.random.key(2), images, labels, steps=5, batch_size=16, model=model, scan=scan)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), run(True), run(False))
