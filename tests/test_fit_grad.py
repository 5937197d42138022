"""Derivatives of `gmmjax.fit` (implicit, at the EM fixed point) and of `gmmjax.kmeans`.

Oracle: central finite differences of the whole fit, in float64, with the EM loop run to
convergence (to a fixed point of float64), where the implicit derivative is exact.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gmmjax
from helpers import fast_only

TYPES = ["full", "diag", "spherical", "tied"]
# The log-likelihood is flat at the optimum: a change below 1e-14 still leaves the
# parameters ~1e-7 away, enough to spoil finite differences. Stop only where EM
# no longer moves the log-likelihood at all.
TOL = 1e-300


def _data(seed=0, n=40):
  rng = np.random.default_rng(seed)
  return jnp.asarray(np.concatenate([rng.normal(size=(n, 2)) - 2, rng.normal(size=(n, 2)) * 0.7 + 2]))


def _summary(result):
  """A scalar that depends on every fitted quantity, invariant to the component order."""
  p = result.params
  order = jnp.argsort(p.means[:, 0])
  return (
      jnp.sum(p.means[order] * jnp.array([[0.3, -0.7], [1.1, 0.2]]))
      + jnp.sum(p.weights[order] * jnp.array([0.5, -1.5]))
      + 0.1 * jnp.sum(p.covariances)
      + result.log_likelihood
  )


def _fit(x, covariance_type="full", weights=None, reg_covar=1e-6, n_init=1):
  return gmmjax.fit(jax.random.key(0), x, 2, covariance_type=covariance_type, tol=TOL, max_iter=2000,
                    weights=weights, reg_covar=reg_covar, n_init=n_init)


def _central_difference(f, x, direction, h=1e-6):
  return (f(x + h * direction) - f(x - h * direction)) / (2 * h)


# Spherical is diag averaged over features: the same derivative code.
@pytest.mark.parametrize("covariance_type", fast_only(["full", "diag", "tied"], "diag"))
def test_gradient_wrt_data_matches_finite_differences(covariance_type):
  x = _data()
  f = lambda x: _summary(_fit(x, covariance_type))
  result = _fit(x, covariance_type)
  assert bool(result.converged)
  grad = jax.grad(f)(x)
  assert grad.shape == x.shape and bool(jnp.all(jnp.isfinite(grad)))
  for i, j in [(0, 0), (7, 1), (63, 0)]:
    e = jnp.zeros_like(x).at[i, j].set(1.0)
    np.testing.assert_allclose(grad[i, j], _central_difference(f, x, e), rtol=1e-5, atol=1e-9)


@pytest.mark.slow
def test_forward_mode_matches_finite_differences():
  x = _data(1)
  direction = jnp.asarray(np.random.default_rng(2).normal(size=x.shape))
  f = lambda x: _summary(_fit(x))
  _, tangent = jax.jvp(f, (x,), (direction,))
  np.testing.assert_allclose(tangent, _central_difference(f, x, direction), rtol=1e-5)
  np.testing.assert_allclose(tangent, jnp.vdot(jax.grad(f)(x), direction), rtol=1e-8)


@pytest.mark.slow
def test_gradient_wrt_sample_weights_and_reg_covar():
  x = _data(3)
  w = jnp.asarray(np.random.default_rng(4).uniform(0.5, 2.0, x.shape[0]))
  f = lambda w, reg: _summary(_fit(x, "full", weights=w, reg_covar=reg))
  g_w, g_reg = jax.grad(f, argnums=(0, 1))(w, 1e-2)
  for i in (0, 50):
    e = jnp.zeros_like(w).at[i].set(1.0)
    np.testing.assert_allclose(g_w[i], _central_difference(lambda w: f(w, 1e-2), w, e), rtol=1e-5, atol=1e-9)
  np.testing.assert_allclose(g_reg, _central_difference(lambda r: f(w, r), 1e-2, 1.0), rtol=1e-5)


@pytest.mark.slow
def test_vmap_of_gradient_equals_loop_and_jit_equals_eager():
  xs = jnp.stack([_data(s, n=20) for s in range(3)])
  g = jax.grad(lambda x: _summary(_fit(x)))
  batched = jax.vmap(g)(xs)
  for b, x in zip(batched, xs):
    np.testing.assert_allclose(b, g(x), rtol=1e-7, atol=1e-10)
  np.testing.assert_allclose(jax.jit(g)(xs[0]), g(xs[0]), rtol=1e-7, atol=1e-10)


@pytest.mark.slow
def test_gradient_with_restarts_follows_the_kept_fit():
  x = _data(5)
  f = lambda x: _summary(_fit(x, n_init=3))
  e = jnp.zeros_like(x).at[3, 1].set(1.0)
  np.testing.assert_allclose(jax.grad(f)(x)[3, 1], _central_difference(f, x, e), rtol=1e-5, atol=1e-9)


@pytest.mark.slow
def test_float32_gradient_is_finite_on_duplicated_points():
  rng = np.random.default_rng(6)
  x = jnp.asarray(np.repeat(rng.normal(size=(10, 3)), 5, axis=0), jnp.float32)
  grad = jax.grad(lambda x: gmmjax.fit(jax.random.key(0), x, 4, max_iter=50).log_likelihood)(x)
  assert grad.dtype == jnp.float32 and bool(jnp.all(jnp.isfinite(grad)))


@pytest.mark.slow
def test_masked_fit_gradient_equals_fit_with_active_components():
  x = _data(7)
  start = gmmjax.fit(jax.random.key(1), x, 3, max_iter=3).params
  two = gmmjax.GMMParams(start.weights[:2] / jnp.sum(start.weights[:2]), start.means[:2],
                         start.precisions_cholesky[:2], "full")
  kw = dict(tol=1e-14, max_iter=2000)
  masked = lambda x: gmmjax.fit_masked(jax.random.key(0), x, 3, 2, init_params=start, **kw).log_likelihood
  plain = lambda x: gmmjax.fit(jax.random.key(0), x, 2, init_params=two, **kw).log_likelihood
  np.testing.assert_allclose(jax.grad(masked)(x), jax.grad(plain)(x), rtol=1e-7, atol=1e-10)


@pytest.mark.slow
def test_kmeans_gradient_matches_finite_differences():
  # At a Lloyd fixed point the assignments are locally constant: centroids move with their
  # clusters' means, the inertia with the points at fixed centres.
  x = _data(8)
  w = jnp.asarray(np.random.default_rng(9).uniform(0.5, 2.0, x.shape[0]))

  def f(x, w):
    r = gmmjax.kmeans(jax.random.key(0), x, 2, weights=w, tol=0.0)
    return jnp.sum(jnp.sort(r.centroids, axis=0) * jnp.array([[1.0, 2.0], [3.0, -1.0]])) + 0.01 * r.inertia

  g_x, g_w = jax.grad(f, argnums=(0, 1))(x, w)
  for i, j in [(0, 0), (50, 1)]:
    e = jnp.zeros_like(x).at[i, j].set(1.0)
    np.testing.assert_allclose(g_x[i, j], _central_difference(lambda x: f(x, w), x, e), rtol=1e-6)
  e = jnp.zeros_like(w).at[5].set(1.0)
  np.testing.assert_allclose(g_w[5], _central_difference(lambda w: f(x, w), w, e), rtol=1e-6)
