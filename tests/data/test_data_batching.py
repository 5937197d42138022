"""Seeded step-indexed batches: permutations, determinism, exact resume."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gmmjax import data


@given(n=st.integers(1, 60), batch_size=st.integers(1, 20), seed=st.integers(0, 2**31),
       epochs=st.integers(1, 3))
def test_each_epoch_is_a_permutation_and_matches_get_batch(n, batch_size, seed, epochs):
  if batch_size > n:
    with pytest.raises(ValueError, match="larger than the dataset"):
      next(data.batches(np.arange(n), batch_size, seed=seed))
    return
  x = np.arange(n)
  got = list(data.batches({"x": x, "y": -x}, batch_size, seed=seed, epochs=epochs))
  per_epoch = n // batch_size
  assert len(got) == epochs * per_epoch
  for step, batch in enumerate(got):
    np.testing.assert_array_equal(batch["y"], -batch["x"])
    np.testing.assert_array_equal(batch["x"], data.get_batch({"x": x}, step, batch_size, seed=seed)["x"])
  for e in range(epochs):
    seen = np.concatenate([b["x"] for b in got[e * per_epoch:(e + 1) * per_epoch]])
    assert len(np.unique(seen)) == len(seen) == per_epoch * batch_size  # No repeats within an epoch.


@given(n=st.integers(1, 40), batch_size=st.integers(1, 40))
def test_keep_remainder_covers_every_example_once(n, batch_size):
  got = list(data.batches(np.arange(n), batch_size, seed=1, drop_remainder=False))
  assert len(got) == data.steps_per_epoch(n, batch_size, drop_remainder=False)
  np.testing.assert_array_equal(np.sort(np.concatenate(got)), np.arange(n))


def test_resume_from_start_step_is_exact():
  x = np.arange(50)
  full = list(data.batches(x, 8, seed=7, epochs=3))
  resumed = list(data.batches(x, 8, seed=7, epochs=3, start_step=10))
  assert len(resumed) == len(full) - 10
  for a, b in zip(full[10:], resumed):
    np.testing.assert_array_equal(a, b)


def test_seed_and_shuffle():
  x = np.arange(100)
  a = data.get_batch(x, 0, 10, seed=0)
  b = data.get_batch(x, 0, 10, seed=1)
  assert not np.array_equal(a, b)
  np.testing.assert_array_equal(data.get_batch(x, 3, 10, shuffle=False), np.arange(30, 40))
  np.testing.assert_array_equal(data.get_batch(x, 12, 10, shuffle=False), np.arange(20, 30))  # Epoch 2.


def test_mismatched_leading_sizes_raise():
  with pytest.raises(ValueError, match="same leading size"):
    data.get_batch((np.zeros(4), np.zeros(5)), 0, 2)
