"""`stats_from_responsibilities`: the M-step statistics of given (hard or soft) responsibilities."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gmmjax

TYPES = ["full", "diag", "spherical", "tied"]


def _oracle(x, resp, w):
  r = resp * w[:, None]
  nk = r.sum(0)
  means = r.T @ x / nk[:, None]
  dev = x[:, None, :] - means[None]
  full = np.einsum("ck,cki,ckj->kij", r, dev, dev)
  return nk, means, {"full": full, "tied": full.sum(0), "diag": np.diagonal(full, axis1=1, axis2=2),
                     "spherical": np.diagonal(full, axis1=1, axis2=2)}


@pytest.mark.parametrize("covariance_type", TYPES)
def test_soft_and_hard_responsibilities_match_the_oracle(covariance_type):
  rng = np.random.default_rng(0)
  # A tight component 300 away from the rest: float32 keeps its moments.
  x = np.concatenate([rng.normal(size=(300, 3)), 300 + 0.01 * rng.normal(size=(100, 3))])
  x32 = x.astype(np.float32)
  x = x32.astype(np.float64)
  # Inputs exact in float32 too: the oracle sees what the float32 computation sees.
  w = rng.uniform(0.5, 2.0, 400).astype(np.float32).astype(np.float64)
  soft = rng.dirichlet(np.ones(3), 400).astype(np.float32).astype(np.float64)
  hard = np.eye(3)[np.r_[rng.integers(0, 2, 300), np.full(100, 2)]]
  for resp in (soft, hard):
    nk, means, m2 = _oracle(x, resp, w)
    # float32: the scatter's rows are the shared GEMM operand, so its round-off is
    # eps |x - mean| |x - c_k| per row (here |x - mean| is 75 times a spread of 1).
    for data, rtol in ((x, 1e-10), (x32, 2e-3)):
      s = gmmjax.stats_from_responsibilities(data, resp, covariance_type=covariance_type, weights=w)
      np.testing.assert_allclose(s.counts, nk, rtol=rtol)
      np.testing.assert_allclose(s.means, means, rtol=rtol, atol=rtol)
      np.testing.assert_allclose(s.m2, m2[covariance_type], rtol=rtol, atol=rtol * np.abs(m2[covariance_type]).max())
  # The hard assignment's tight component: variance 1e-4 kept to float32 accuracy.
  s = gmmjax.stats_from_responsibilities(x32, hard, covariance_type="diag")
  np.testing.assert_allclose(s.m2[2] / s.counts[2], np.var(x32[300:], axis=0), rtol=1e-3)


def test_gradients_flow_through_responsibilities_and_data():
  rng = np.random.default_rng(1)
  x = jnp.asarray(rng.normal(size=(50, 2)))
  logits = jnp.asarray(rng.normal(size=(50, 2)))

  def f(x, logits):
    s = gmmjax.stats_from_responsibilities(x, jax.nn.softmax(logits), covariance_type="full")
    return jnp.sum(gmmjax.params_from_stats(s, 1e-6).means ** 2) + jnp.sum(s.m2)

  gx, gl = jax.grad(f, argnums=(0, 1))(x, logits)
  eps = 1e-6
  e = jnp.zeros_like(logits).at[3, 1].set(1.0)
  fd = (f(x, logits + eps * e) - f(x, logits - eps * e)) / (2 * eps)
  np.testing.assert_allclose(gl[3, 1], fd, rtol=1e-5)
  assert np.all(np.isfinite(gx))
