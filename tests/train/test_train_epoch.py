"""make_epoch: the scanned epoch equals the CPU fallback loop, vmap over models equals a loop over them,
shuffling visits each row once, and a new epoch index does not recompile."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gmmjax import train

TX = optax.adam(1e-2)


def _step(state, batch, key):
  x, y = batch

  def loss_fn(params):
    noise = 0.1 * jax.random.normal(key, x.shape, x.dtype)
    pred = (x + noise) @ params["w"] + params["b"]
    return jnp.mean((pred - y) ** 2)

  loss, grads = jax.value_and_grad(loss_fn)(state.params)
  return state.apply_gradients(grads), {"loss": loss}


def _data(n=40):
  rng = np.random.default_rng(0)
  x = rng.normal(size=(n, 3)).astype(np.float32)
  return jnp.asarray(x), jnp.asarray(x @ np.array([1.0, -2.0, 0.5], np.float32))


def _state(seed):
  params = {"w": jax.random.normal(jax.random.key(seed), (3,), jnp.float32), "b": jnp.zeros((), jnp.float32)}
  return train.TrainState.create(params=params, tx=TX)


def _stack(trees):
  return jax.tree.map(lambda *a: jnp.stack(a), *trees)


@pytest.mark.parametrize("sampling", ["shuffle", pytest.param("replace", marks=pytest.mark.slow)])
def test_vmap_over_models_equals_each_model_alone_and_scan_equals_loop(sampling):
  data = _data()
  rows = jnp.stack([jnp.arange(0, 20), jnp.arange(20, 40), jnp.arange(10, 30)])  # Each model its rows.
  keys = jnp.stack([jax.random.key(s) for s in range(3)])
  states = _stack([_state(s) for s in range(3)])
  together = train.make_epoch(_step, batch_size=8, sampling=sampling, vmap=True)
  looped = train.make_epoch(_step, batch_size=8, sampling=sampling, vmap=True, scan=False)
  alone = train.make_epoch(_step, batch_size=8, sampling=sampling)
  a, b = states, states
  for e in range(2):
    a, ma = together(a, keys, e, data, rows)
    b, mb = looped(b, keys, e, data, rows)
  np.testing.assert_allclose(ma["loss"], mb["loss"], rtol=1e-6)
  for m in range(3):
    s = _state(m)
    for e in range(2):
      s, ms = alone(s, keys[m], e, data, rows[m])
    np.testing.assert_allclose(a.params["w"][m], s.params["w"], rtol=1e-6)
    np.testing.assert_allclose(b.params["w"][m], s.params["w"], rtol=1e-6)
    np.testing.assert_allclose(ma["loss"][m], ms["loss"], rtol=1e-6)
  assert int(a.step[0]) == 2 * (20 // 8)


def test_shuffle_visits_each_row_at_most_once_per_epoch():
  def count(state, batch, key):
    return state + jnp.zeros_like(state).at[batch].add(1), {}

  epoch = train.make_epoch(count, batch_size=4)
  state, _ = epoch(jnp.zeros(10, jnp.int32), jax.random.key(0), 0, jnp.arange(10))
  assert sorted(np.asarray(state).tolist()) == [0, 0] + [1] * 8  # Two batches of 4; 2 rows left out.
  with pytest.raises(ValueError, match="need 12 rows"):
    train.make_epoch(count, batch_size=4, num_steps=3)(jnp.zeros(10, jnp.int32), jax.random.key(0), 0,
                                                        jnp.arange(10))


def test_a_new_epoch_index_does_not_recompile():
  traces = []

  def step(state, batch, key):
    traces.append(1)
    return _step(state, batch, key)

  epoch = train.make_epoch(step, batch_size=8, sampling="replace")
  state = _state(0)
  for e in range(3):
    state, _ = epoch(state, jax.random.key(0), e, _data())
  assert len(traces) == 1
