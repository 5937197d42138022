"""make_optimizer / make_schedule: schedule values, clipping, config forms, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gmmjax import train


def test_schedules_closed_forms():
  const = train.make_schedule(learning_rate=0.1, warmup_steps=10)
  np.testing.assert_allclose([const(0), const(5), const(10), const(1000)], [0.0, 0.05, 0.1, 0.1], rtol=1e-6)
  cos = train.make_schedule(learning_rate=0.2, schedule="cosine", decay_steps=100,
                            end_learning_rate_factor=0.1)
  np.testing.assert_allclose([cos(0), cos(50), cos(100), cos(500)],
                             [0.2, 0.02 + 0.18 * 0.5, 0.02, 0.02], rtol=1e-6)
  wc = train.make_schedule(learning_rate=1.0, schedule="warmup_cosine", warmup_steps=4, decay_steps=20)
  np.testing.assert_allclose([wc(0), wc(2), wc(4), wc(20)], [0.0, 0.5, 1.0, 0.0], atol=1e-6)
  exp = train.make_schedule(learning_rate=1.0, schedule="exponential", decay_steps=10, decay_rate=0.5)
  np.testing.assert_allclose([exp(0), exp(10), exp(20)], [1.0, 0.5, 0.25], rtol=1e-6)


def test_clipping_bounds_the_update():
  tx = train.make_optimizer(optimizer="sgd", learning_rate=1.0, momentum=0.0, clip_norm=2.0)
  params = {"a": jnp.zeros(3), "b": jnp.zeros(2)}
  grads = {"a": jnp.array([3.0, 0.0, 4.0]), "b": jnp.array([0.0, 0.0])}  # Norm 5.
  updates, _ = tx.update(grads, tx.init(params), params)
  np.testing.assert_allclose(updates["a"], -grads["a"] * 2.0 / 5.0, rtol=1e-6)
  small = {"a": jnp.array([0.3, 0.0, 0.4]), "b": jnp.zeros(2)}  # Below the threshold: unchanged.
  updates, _ = tx.update(small, tx.init(params), params)
  np.testing.assert_allclose(updates["a"], -small["a"], rtol=1e-6)


@pytest.mark.parametrize("config", [
    train.OptimizerConfig(optimizer="adam", learning_rate=1e-2),
    {"optimizer": "adam", "learning_rate": 1e-2},
])
def test_config_forms_match_optax_adam(config):
  params = jnp.array([1.0, -2.0])
  grads = jnp.array([0.5, 0.25])
  ours, ref = train.make_optimizer(config), optax.adam(1e-2)
  u1, _ = ours.update(grads, ours.init(params), params)
  u2, _ = ref.update(grads, ref.init(params), params)
  np.testing.assert_allclose(u1, u2, rtol=1e-7)


def test_config_dict_is_accepted():
  ml_collections = pytest.importorskip("ml_collections")  # Optional: accepted, not required.
  cfg = ml_collections.ConfigDict({"optimizer": "adamw", "learning_rate": 1e-3, "weight_decay": 0.1})
  tx = train.make_optimizer(cfg)
  params = jnp.ones(2)
  updates, _ = tx.update(jnp.zeros(2), tx.init(params), params)
  np.testing.assert_allclose(updates, -1e-3 * 0.1 * params, rtol=1e-6)  # Only the decoupled decay.


@pytest.mark.parametrize("kwargs, match", [
    (dict(optimizer="lion"), "Unknown optimizer"),
    (dict(schedule="linear"), "Unknown schedule"),
    (dict(clip_norm=0.0), "clip_norm"),
    (dict(learnig_rate=1.0), "Unknown optimizer settings"),
])
def test_bad_settings(kwargs, match):
  with pytest.raises(ValueError, match=match):
    train.make_optimizer(**kwargs)


def test_optimizer_is_jittable():
  tx = train.make_optimizer(schedule="warmup_cosine", warmup_steps=2, decay_steps=10, clip_norm=1.0)
  params = jnp.ones(3)

  @jax.jit
  def step(params, opt_state):
    updates, opt_state = tx.update(params, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  p, s = step(params, tx.init(params))
  assert np.all(np.isfinite(p))
