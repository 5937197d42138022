"""Transform classifier: the 8 symmetries of the square (and their shifts), per-image transforms, loss and learning."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gmmjax.nn import geometric


def _numpy_transform(image: np.ndarray, t: int, shift: int = 0) -> np.ndarray:
  """One `[h, h, c]` image under transform `t`, written with NumPy as the oracle."""
  dihedral, offset = t % 8, t // 8
  if dihedral >= 4:
    image = image[:, ::-1]
  image = np.rot90(image, dihedral % 4, axes=(0, 1))
  rows, cols = [(0, 0), (shift, 0), (-shift, 0), (0, shift), (0, -shift)][offset]
  return np.roll(np.roll(image, rows, axis=0), cols, axis=1)


def test_dihedral_transforms_match_numpy_and_are_distinct(key):
  x = jax.random.uniform(key, (3, 5, 5, 2))
  for shift in (0, 2):
    out = np.asarray(geometric.all_transforms(x, shift))
    n = geometric.n_transforms(shift)
    assert out.shape == (n, 3, 5, 5, 2) and n == (40 if shift else 8)
    for t in range(n):
      for i in range(3):
        np.testing.assert_array_equal(out[t, i], _numpy_transform(np.asarray(x[i]), t, shift))
    np.testing.assert_array_equal(out[0], x)
    np.testing.assert_array_equal(out[:8], geometric.dihedral_transforms(x))
    # A generic image has n different images: each transform is a distinct class.
    assert len({row.tobytes() for row in out[:, 0].reshape(n, -1)}) == n


@pytest.mark.slow
def test_apply_transforms_picks_each_images_transform(key):
  x = jax.random.uniform(key, (40, 6, 6, 1))
  t = jnp.arange(40)[::-1]
  out = np.asarray(jax.jit(geometric.apply_transforms, static_argnums=2)(x, t, 1))
  for i in range(40):
    np.testing.assert_array_equal(out[i], _numpy_transform(np.asarray(x[i]), int(t[i]), 1))


@pytest.mark.slow
def test_classifier_shapes_and_finite_gradients_on_blank_images(key):
  model = geometric.TransformClassifier(hidden=(16, 4))
  x = jnp.zeros((6, 28, 28, 1))
  params = model.init(key, x)["params"]
  logits, features = model.apply({"params": params}, x)
  assert logits.shape == (6, 8) and features.shape == (6, 4)
  loss, grads = jax.value_and_grad(geometric.transform_loss, argnums=1)(model, params, x, key)
  # Blank images look the same under every transform: the best loss is log 8, reached at init.
  np.testing.assert_allclose(loss, np.log(8), rtol=0.1)
  assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
  with pytest.raises(ValueError, match="40 transforms"):
    geometric.transform_loss(model, params, x, key, shift=6)


@pytest.mark.slow
def test_classifier_learns_to_tell_transforms_apart(key):
  """An asymmetric pattern (a bright corner pixel plus noise): the transform is learnable."""
  k_x, k_init, k_train = jax.random.split(key, 3)
  x = 0.1 * jax.random.uniform(k_x, (256, 28, 28, 1))
  x = x.at[:, :4, :2].set(1.0)  # top-left block, 4 rows by 2 columns: no symmetry of the square fixes it
  model = geometric.TransformClassifier(hidden=(64, 16))
  params = model.init(k_init, x[:2])["params"]
  tx = optax.adam(3e-3)
  opt = tx.init(params)

  @jax.jit
  def step(params, opt, k):
    loss, g = jax.value_and_grad(geometric.transform_loss, argnums=1)(model, params, x, k)
    updates, opt = tx.update(g, opt)
    return optax.apply_updates(params, updates), opt, loss

  for k in jax.random.split(k_train, 150):
    params, opt, loss = step(params, opt, k)
  assert float(loss) < 0.1  # from log 8 = 2.08
  t = jnp.arange(256) % 8
  logits, _ = model.apply({"params": params}, geometric.apply_transforms(x, t))
  assert float(jnp.mean(jnp.argmax(logits, -1) == t)) > 0.98
