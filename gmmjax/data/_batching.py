"""Seeded, step-indexed mini-batches: batch `step` is a pure function of (seed, step), so resuming at any
step reproduces exactly the batches an uninterrupted run would have seen."""

import functools
from collections.abc import Iterator
from typing import Any

import jax
import numpy as np


@functools.lru_cache(maxsize=4)
def _permutation(seed: int, epoch: int, n: int, shuffle: bool) -> np.ndarray:
  if not shuffle:
    order = np.arange(n)
  else:
    # One independent stream per (seed, epoch): no state to carry across a restart.
    order = np.random.default_rng((seed, epoch)).permutation(n)
  order.setflags(write=False)
  return order


def _num_examples(arrays: Any) -> int:
  leaves = jax.tree.leaves(arrays)
  if not leaves:
    raise ValueError("`arrays` has no leaves.")
  sizes = {int(np.shape(leaf)[0]) for leaf in leaves}
  if len(sizes) != 1:
    raise ValueError(f"All arrays must have the same leading size, got {sorted(sizes)}.")
  return sizes.pop()


def steps_per_epoch(num_examples: int, batch_size: int, *, drop_remainder: bool = True) -> int:
  """Number of batches in one pass over `num_examples` examples."""
  if batch_size <= 0:
    raise ValueError(f"batch_size must be positive, got {batch_size}.")
  if drop_remainder:
    return num_examples // batch_size
  return -(-num_examples // batch_size)


def batch_indices(step: int, num_examples: int, batch_size: int, *, seed: int = 0,
                  shuffle: bool = True) -> np.ndarray:
  """Indices of global batch `step` (full batches only; the remainder of each epoch is dropped).

  Args:
    step: global step, counted over epochs from 0.
    num_examples: dataset size n.
    batch_size: examples per batch, at most n.
    seed: integer seed; epoch e is shuffled by `np.random.default_rng((seed, e))`.
    shuffle: if False, batches go through the data in order.

  Returns:
    int64 array [batch_size].
  """
  per_epoch = steps_per_epoch(num_examples, batch_size)
  if per_epoch == 0:
    raise ValueError(f"batch_size {batch_size} is larger than the dataset ({num_examples} examples).")
  epoch, i = divmod(int(step), per_epoch)
  return _permutation(int(seed), epoch, num_examples, bool(shuffle))[i * batch_size:(i + 1) * batch_size]


def get_batch(arrays: Any, step: int, batch_size: int, *, seed: int = 0, shuffle: bool = True) -> Any:
  """Batch `step` of a pytree of arrays sharing their leading axis (see `batch_indices`).

  Args:
    arrays: pytree of numpy arrays, each [n, ...].
    step: global step.
    batch_size: examples per batch.
    seed: integer seed.
    shuffle: shuffle each epoch.

  Returns:
    The same pytree with leaves [batch_size, ...].
  """
  idx = batch_indices(step, _num_examples(arrays), batch_size, seed=seed, shuffle=shuffle)
  return jax.tree.map(lambda a: np.asarray(a)[idx], arrays)


def batches(arrays: Any, batch_size: int, *, seed: int = 0, shuffle: bool = True,
            drop_remainder: bool = True, epochs: int | None = 1, start_step: int = 0) -> Iterator[Any]:
  """Iterates over seeded mini-batches of a pytree of arrays.

  With `drop_remainder=True` (the default; every batch has the same static shape), batch k equals
  `get_batch(arrays, k, batch_size, seed=seed, shuffle=shuffle)`, so `start_step` resumes exactly.

  Args:
    arrays: pytree of numpy arrays, each [n, ...].
    batch_size: examples per batch.
    seed: integer seed for the per-epoch shuffles.
    shuffle: shuffle each epoch.
    drop_remainder: drop the last incomplete batch of each epoch.
    epochs: number of passes, or None for an endless stream.
    start_step: global step to start from.

  Yields:
    Pytrees with leaves [batch_size, ...] (the last of an epoch may be smaller if not `drop_remainder`).
  """
  n = _num_examples(arrays)
  per_epoch = steps_per_epoch(n, batch_size, drop_remainder=drop_remainder)
  if per_epoch == 0:
    raise ValueError(f"batch_size {batch_size} is larger than the dataset ({n} examples).")
  arrays = jax.tree.map(np.asarray, arrays)
  step = int(start_step)
  while epochs is None or step < epochs * per_epoch:
    epoch, i = divmod(step, per_epoch)
    idx = _permutation(int(seed), epoch, n, bool(shuffle))[i * batch_size:(i + 1) * batch_size]
    yield jax.tree.map(lambda a, idx=idx: a[idx], arrays)
    step += 1
