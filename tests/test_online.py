"""Online (stepwise) EM: exact identities of the update, and one-pass quality on 1M points."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gmmjax
from gmmjax._online import OnlineState, online_init, online_update, online_update_unchecked
from helpers import fast_only, mixture_data, optimized_jit, random_params


def _data(covariance_type, n, seed=0, k=3, d=3):
  truth = random_params(seed, k, d, covariance_type, spread=4.0)
  x, _ = mixture_data(seed + 1, truth, n)
  return x


def _close(a, b, rtol=1e-9, atol=1e-11):
  for name in ("weights", "means", "precisions_cholesky"):
    np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=rtol, atol=atol)


@pytest.mark.parametrize("covariance_type", fast_only(gmmjax.COVARIANCE_TYPES, "full"))
def test_step_size_one_is_an_em_step_on_the_batch(covariance_type):
  x = _data(covariance_type, 800)
  state = online_init(jax.random.key(0), x[:400], 3, covariance_type=covariance_type, reg_covar=1e-4)
  new = online_update(state, x[400:], 1.0)
  want, ll = gmmjax.em_step(state.params, x[400:], reg_covar=1e-4)
  _close(new.params, want)
  np.testing.assert_allclose(new.log_likelihood, ll, rtol=1e-12)
  assert int(new.n_updates) == 1


@pytest.mark.slow
@pytest.mark.parametrize("covariance_type", ["full", "diag"])
def test_cumulative_step_sizes_average_all_batch_statistics(covariance_type):
  # gamma_t = b_t / n_seen makes the state the merged statistics of every batch,
  # each under the parameters current when it arrived.
  x = _data(covariance_type, 900, seed=4)
  batches = np.split(x, [300, 500, 900])[:3]
  start = random_params(9, 3, 3, covariance_type, spread=4.0)
  state = online_init(jax.random.key(1), batches[0], 3, covariance_type=covariance_type, init_params=start)
  merged = gmmjax.suff_stats(start, batches[0])
  seen = len(batches[0])
  for b in batches[1:]:
    before = state.params
    seen += len(b)
    state = online_update(state, b, len(b) / seen)
    merged = gmmjax.merge(merged, gmmjax.suff_stats(before, b))
  np.testing.assert_allclose(state.stats.counts, merged.counts / seen, rtol=1e-10)
  np.testing.assert_allclose(state.stats.means, merged.means, rtol=1e-10, atol=1e-12)
  np.testing.assert_allclose(state.stats.m2, merged.m2 / seen, rtol=1e-10, atol=1e-12)
  _close(state.params, gmmjax.params_from_stats(merged, 1e-6))


def test_scan_equals_host_loop():
  x = _data("full", 2000, seed=2)
  state = online_init(jax.random.key(0), x[:200], 3)
  stacked = x[200:].reshape(9, 200, 3)
  loop = state
  for b in stacked:
    loop = online_update(loop, b)
  scanned, _ = jax.lax.scan(lambda s, b: (online_update_unchecked(s, b, None, None), None), state, stacked)
  _close(scanned.params, loop.params, rtol=1e-10)
  assert int(scanned.n_updates) == 9


@pytest.mark.slow
def test_one_pass_over_a_million_points_reaches_batch_em():
  x = _data("full", 1_000_000, seed=8, k=4, d=4)
  # The batch fit's many passes over a million rows dominate: compiled with optimisations.
  batch = optimized_jit(lambda key, x: gmmjax.fit(key, x, 4, n_init=2, tol=1e-6, max_iter=300))(jax.random.key(0), x)
  batch_ll = float(jnp.mean(gmmjax.log_prob(batch.params, x)))
  state = online_init(jax.random.key(0), x[:2000], 4)
  for b in x[2000:].reshape(-1, 2000, 4):
    state = online_update(state, b)
  assert int(state.n_updates) == 499
  online_ll = float(jnp.mean(gmmjax.log_prob(state.params, x)))
  # The issue asks for 1 %; one pass gets within 0.1 % (2e-5 measured) ...
  assert online_ll >= batch_ll - 1e-3 * abs(batch_ll)
  # ... from a start on the first batch that is not (3e-3 measured).
  init_ll = float(jnp.mean(gmmjax.log_prob(online_init(jax.random.key(0), x[:2000], 4).params, x)))
  assert init_ll < batch_ll - 1e-3 * abs(batch_ll)


@pytest.mark.slow
def test_float32_state_stays_float32_and_finite_on_degenerate_batches():
  x = _data("full", 600).astype(np.float32)
  state = online_init(jax.random.key(0), x[:300], 3, reg_covar=1e-3)
  state = online_update(state, np.repeat(x[:1], 100, axis=0))  # one repeated point
  state = online_update(state, x[300:])
  assert state.params.means.dtype == jnp.float32
  for leaf in jax.tree.leaves(state):
    assert bool(jnp.all(jnp.isfinite(leaf)))
  np.testing.assert_allclose(jnp.sum(state.params.weights), 1, rtol=1e-6)


def test_bad_inputs_raise():
  x = _data("full", 300)
  state = online_init(jax.random.key(0), x, 3)
  assert isinstance(state, OnlineState)
  with pytest.raises(ValueError, match="step_size"):
    online_update(state, x, 1.5)
  with pytest.raises(ValueError, match="step_size"):
    online_update(state, x, 0.0)
  with pytest.raises(ValueError, match="features"):
    online_update(state, x[:, :2])
  with pytest.raises(ValueError, match="n_components"):
    online_init(jax.random.key(0), x[:2], 3)


def test_no_recompile_across_updates_and_step_sizes():
  from gmmjax import _online

  x = _data("diag", 900, seed=6)
  state = online_init(jax.random.key(0), x[:300], 3, covariance_type="diag")
  state = online_update(state, x[300:600], 0.5)
  size = _online._update_jit._cache_size()
  for gamma in (0.3, 0.1):
    state = online_update(state, x[600:], gamma)
  assert _online._update_jit._cache_size() == size
