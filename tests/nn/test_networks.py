"""Encoders/decoders: output shapes, dtypes, and likelihoods against scipy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate
import scipy.stats

from gmmjax import nn as gnn
from helpers import fast_only


@pytest.mark.parametrize("architecture", gnn.ARCHITECTURES)
@pytest.mark.parametrize("flat", fast_only([False, True], True))
def test_shapes_and_float32(key, architecture, flat):
  x = jax.random.uniform(key, (5, 28, 28, 1), jnp.float32)
  if flat:
    x = x.reshape(5, 784)
  enc = gnn.make_encoder(architecture, 7)
  dec = gnn.make_decoder(architecture)
  p_enc = enc.init(key, x)
  mean, log_var = enc.apply(p_enc, x)
  assert mean.shape == log_var.shape == (5, 7)
  assert mean.dtype == log_var.dtype == jnp.float32
  assert bool(jnp.all(log_var > gnn.networks.LOG_VAR_MIN))
  assert bool(jnp.all(log_var < gnn.networks.LOG_VAR_MAX))
  p_dec = dec.init(key, mean)
  out = dec.apply(p_dec, mean)
  assert out.shape == (5, 28, 28, 1)
  assert out.dtype == jnp.float32
  # Each output pixel depends on the code (a decoder that ignores z is useless).
  out2 = dec.apply(p_dec, mean + 1.0)
  assert float(jnp.min(jnp.abs(out2 - out).reshape(5, -1).max(axis=0))) > 0


def test_log_var_bounded_on_extreme_input(key):
  enc = gnn.ConvEncoder(4)
  x = jnp.full((2, 28, 28, 1), 1e4, jnp.float32)
  mean, log_var = enc.apply(enc.init(key, x), x)
  assert bool(jnp.all(jnp.isfinite(jnp.exp(-log_var))))


def test_unknown_architecture_raises():
  with pytest.raises(ValueError, match="architecture"):
    gnn.make_encoder("resnet", 3)
  with pytest.raises(ValueError, match="architecture"):
    gnn.make_decoder("resnet")
  with pytest.raises(ValueError, match="likelihood"):
    gnn.log_likelihood("poisson", jnp.zeros((1, 2)), jnp.zeros((1, 2)))


def test_bernoulli_matches_scipy():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(4, 6)) * 5
  x = rng.integers(0, 2, size=(4, 6)).astype(float)
  expected = scipy.stats.bernoulli(1 / (1 + np.exp(-logits))).logpmf(x).sum(-1)
  np.testing.assert_allclose(gnn.bernoulli_log_prob(logits, x), expected, rtol=1e-10)


@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
def test_continuous_bernoulli_is_a_density_on_the_unit_interval(dtype):
  # Closed-form normaliser against quadrature of lambda^x (1 - lambda)^(1 - x) over [0, 1], across the
  # small-logit series, the switch at |logit| = 1e-2 and logits far in the tails.
  logits = np.array([-60.0, -7.0, -0.5, -1e-2, -3e-3, 0.0, 1e-5, 9.99e-3, 1.01e-2, 0.3, 4.0, 35.0])
  log_c = gnn.continuous_bernoulli_log_prob(jnp.asarray(logits[:, None], dtype), jnp.zeros((12, 1), dtype)) \
      - gnn.bernoulli_log_prob(jnp.asarray(logits[:, None], dtype), jnp.zeros((12, 1), dtype))
  log_lam, log_1m_lam = -np.logaddexp(0, -logits), -np.logaddexp(0, logits)  # exact in the tails
  mass = [scipy.integrate.quad(lambda x, a=a, b=b: np.exp(x * a + (1 - x) * b), 0, 1, epsabs=0, epsrel=1e-13)[0]
          for a, b in zip(log_lam, log_1m_lam)]
  rtol = 1e-10 if dtype == jnp.float64 else 1e-6
  np.testing.assert_allclose(np.exp(np.asarray(log_c, np.float64)), 1 / np.asarray(mass), rtol=rtol)
  # Its mean image is the density's mean, by quadrature too.
  mean = gnn.mean_image("continuous_bernoulli", jnp.asarray(logits, dtype))
  first = [scipy.integrate.quad(lambda x, a=a, b=b: x * np.exp(x * a + (1 - x) * b), 0, 1, epsabs=0,
                                epsrel=1e-13)[0] for a, b in zip(log_lam, log_1m_lam)]
  np.testing.assert_allclose(np.asarray(mean, np.float64), np.asarray(first) / np.asarray(mass), rtol=rtol,
                             atol=1e-12 if dtype == jnp.float64 else 1e-7)
  assert gnn.log_likelihood("continuous_bernoulli", jnp.asarray(logits[:, None], dtype),
                            jnp.zeros((12, 1), dtype)).shape == (12,)
  # Summed over pixels: two pixels give the product of the two densities.
  x = jnp.asarray([[0.2, 0.9]], dtype)
  two = gnn.continuous_bernoulli_log_prob(jnp.asarray([[1.5, -3.0]], dtype), x)
  one = [gnn.continuous_bernoulli_log_prob(jnp.asarray([[v]], dtype), x[:, i:i + 1]) for i, v in enumerate([1.5, -3.0])]
  np.testing.assert_allclose(two, one[0] + one[1], rtol=rtol)


def test_bernoulli_finite_for_huge_logits():
  logits = jnp.array([[1e4, -1e4, 0.0]], jnp.float32)
  x = jnp.array([[1.0, 0.0, 0.5]], jnp.float32)
  ll = gnn.bernoulli_log_prob(logits, x)
  assert bool(jnp.isfinite(ll).all())
  g = jax.grad(lambda l: gnn.bernoulli_log_prob(l, x).sum())(logits)
  assert bool(jnp.isfinite(g).all())


def test_gaussian_matches_scipy():
  rng = np.random.default_rng(1)
  mean = rng.normal(size=(3, 2, 2, 1))
  x = rng.normal(size=(3, 2, 2, 1))
  log_scale = rng.normal(size=(2, 2, 1)) * 0.3
  expected = scipy.stats.norm(mean, np.exp(log_scale)[None]).logpdf(x).reshape(3, -1).sum(-1)
  np.testing.assert_allclose(gnn.gaussian_log_prob(mean, x, log_scale), expected, rtol=1e-10)
  np.testing.assert_allclose(
      gnn.log_likelihood("gaussian", mean, x),
      scipy.stats.norm(mean, 1.0).logpdf(x).reshape(3, -1).sum(-1),
      rtol=1e-10,
  )


def test_image_shape_is_a_parameter_of_the_networks():
  from gmmjax.nn import fid, gan

  shape = (32, 16, 3)
  x = jnp.zeros((2, *shape), jnp.float32)
  key = jax.random.key(0)
  encoder = gnn.ConvEncoder(4, features=(4, 8), dense=8, image_shape=shape)
  decoder = gnn.ConvDecoder(features=(8, 4), dense=8, image_shape=shape)
  mean, _ = encoder.apply(encoder.init(key, x), x)
  assert decoder.apply(decoder.init(key, mean), mean).shape == (2, *shape)
  generator = gan.Generator(latent="gaussian", latent_dim=4, features=(8, 4), image_shape=shape)
  assert generator.apply(generator.init(key, key, 2), key, 2).shape == (2, *shape)
  discriminator = gan.Discriminator(features=(4, 8), image_shape=shape)
  assert discriminator.apply(discriminator.init(key, x), x).shape == (2,)
  classifier = fid.Classifier(n_classes=3, features=(4, 8), dense=8, image_shape=shape)
  logits, _ = classifier.apply(classifier.init(key, x), x)
  assert logits.shape == (2, 3)
  mlp = gnn.MLPDecoder(hidden=(8,), image_shape=shape)
  assert mlp.apply(mlp.init(key, mean), mean).shape == (2, *shape)
  for architecture in gnn.ARCHITECTURES:
    model = gnn.DAGMM(architecture=architecture, encoder_hidden=(8,), decoder_hidden=(8,), image_shape=shape)
    out = model.apply(model.init(key, x), x)
    assert out.reconstruction.shape == x.shape
  with pytest.raises(ValueError, match="divisible by 4"):
    bad = gnn.ConvDecoder(image_shape=(30, 30, 1))
    bad.init(key, mean)
  # A decoder of another shape is named at init, not found as a reshape error in training.
  for model in (gnn.vade.VaDE(gnn.MLPEncoder(4), gnn.MLPDecoder((8,)), 3, 4),
                gnn.gmvae.GMVAE(gnn.MLPEncoder(4), gnn.MLPDecoder((8,)), 3, 4)):
    with pytest.raises(ValueError, match=r"image_shape=\(32, 16, 3\)"):
      model.init(key, x)
