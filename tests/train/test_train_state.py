"""TrainState and make_train_step / make_eval_step against hand-written updates; evaluate; recompiles."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gmmjax import train


def _quadratic_loss(params, batch, key):
  x, y = batch
  pred = x @ params["w"] + params["b"]
  noise = 0.01 * jax.random.normal(key, ())
  return jnp.mean((pred - y) ** 2) + noise, {"mae": jnp.mean(jnp.abs(pred - y))}


def _problem():
  rng = np.random.default_rng(0)
  x = rng.standard_normal((16, 3))
  y = x @ np.array([1.0, -2.0, 0.5]) + 0.3
  params = {"w": jnp.zeros(3), "b": jnp.zeros(())}
  return params, (jnp.asarray(x), jnp.asarray(y))


@pytest.mark.slow
def test_train_step_equals_manual_update():
  params, batch = _problem()
  tx = train.make_optimizer(learning_rate=0.1, clip_norm=1.0)
  state = train.TrainState.create(params=params, tx=tx)
  key = jax.random.key(3)
  (loss, aux), grads = jax.value_and_grad(_quadratic_loss, has_aux=True)(params, batch, key)
  updates, _ = tx.update(grads, tx.init(params), params)
  expected = optax.apply_updates(params, updates)
  grad_norm = optax.tree.norm(grads)

  step = train.make_train_step(_quadratic_loss)
  new_state, metrics = step(state, batch, key)  # Donates `state` (and so `params`).
  for name in ("w", "b"):
    np.testing.assert_allclose(new_state.params[name], expected[name], rtol=1e-12)
  np.testing.assert_allclose(metrics["loss"], loss, rtol=1e-12)
  np.testing.assert_allclose(metrics["mae"], aux["mae"], rtol=1e-12)
  np.testing.assert_allclose(metrics["grad_norm"], grad_norm, rtol=1e-12)
  assert int(new_state.step) == 1


def test_extra_state_is_updated():
  params, batch = _problem()

  def loss_fn(params, extra, batch, key):
    loss, metrics = _quadratic_loss(params, batch, key)
    return loss, (metrics, {"count": extra["count"] + 1, "last_loss": loss})

  state = train.TrainState.create(params=params, tx=train.make_optimizer(),
                                  extra={"count": jnp.zeros((), jnp.int32), "last_loss": jnp.zeros(())})
  step = train.make_train_step(loss_fn, has_extra=True)
  for i in range(3):
    state, metrics = step(state, batch, jax.random.key(i))
  assert int(state.extra["count"]) == 3
  np.testing.assert_allclose(state.extra["last_loss"], metrics["loss"])
  eval_metrics = train.make_eval_step(loss_fn, has_extra=True)(state, batch, jax.random.key(0))
  assert set(eval_metrics) == {"loss", "mae"}


def test_training_reduces_the_loss_and_does_not_recompile():
  params, batch = _problem()
  state = train.TrainState.create(params=params, tx=train.make_optimizer(learning_rate=0.05))
  step = train.make_train_step(_quadratic_loss)
  losses = []
  for i in range(200):
    state, metrics = step(state, batch, jax.random.key(i))
    losses.append(float(metrics["loss"]))
  assert losses[-1] < 0.05 * losses[0]
  assert step._cache_size() == 1


def test_evaluate_weights_batches_by_size():
  params, (x, y) = _problem()
  state = train.TrainState.create(params=params, tx=train.make_optimizer())

  def eval_step(state, batch, key):
    xb, yb = batch
    return {"mean_y": jnp.mean(yb), "mean_x0": jnp.mean(xb[:, 0])}

  out = train.evaluate(eval_step, state, (np.asarray(x), np.asarray(y)), batch_size=5)  # 5+5+5+1.
  np.testing.assert_allclose(out["mean_y"], np.mean(y), rtol=1e-6)
  np.testing.assert_allclose(out["mean_x0"], np.mean(x[:, 0]), rtol=1e-6)
