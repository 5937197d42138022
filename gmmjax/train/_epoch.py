"""One jitted epoch over data resident on the device: `vmap` over models (seeds, classes), `lax.scan` over
batches, with a Python loop of the jitted step as the CPU fallback."""

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

SAMPLING = ("shuffle", "replace")


def make_epoch(step_fn: Callable, *, batch_size: int, num_steps: int | None = None, sampling: str = "shuffle",
               vmap: bool = False, scan: bool | None = True) -> Callable:
  """Builds `epoch(state, key, epoch, data, rows=None) -> (state, metrics)`.

  Step i of epoch e of a model with key k:
  - sampling="shuffle": `perm_key, step_key = split(fold_in(k, e))`; the batches are consecutive slices
    of `permutation(perm_key, n)` (the last incomplete one dropped) and step i gets key
    `split(step_key, num_steps)[i]`.
  - sampling="replace": `k_i = split(fold_in(k, e), num_steps)[i]`; `k_idx, k_step = split(k_i)`; the
    batch is `randint(k_idx, [batch_size], 0, n)` and the step gets `k_step`.
  So each model's run depends only on its key, and an epoch can be repeated exactly after a resume.

  Args:
    step_fn: `step_fn(state, batch, key) -> (state, metrics)`: one update of one model; `batch` is `data`
      indexed by the batch's rows, `metrics` a dict of scalars.
    batch_size: rows per batch (static).
    num_steps: steps per epoch (static). Default: `n // batch_size` (at least 1 with "replace").
    sampling: "shuffle" (each row at most once per epoch) or "replace" (independent draws).
    vmap: the state and key have a leading model axis `[M]`; all models run as one program.
    scan: True: the epoch is one jitted `lax.scan`. False: a Python loop over the jitted step (the same
      keys and batches, so the same result). None: the scan, except on CPU, where XLA runs convolution
      gradients inside a loop body on a slow path, 6 to 20 times slower than the step jitted alone
      (jax-ml/jax#12868).

  Returns:
    `epoch(state, key, epoch, data, rows=None)`:
      state: one model's state (a pytree), or stacked `[M, ...]` with `vmap`.
      key: a PRNG key `[]`, or `[M]` keys with `vmap`.
      epoch: the epoch index (traced: no recompilation from one epoch to the next).
      data: pytree of arrays `[N, ...]` on the device, shared by all models.
      rows: optional int array `[n]` (`[M, n]` with `vmap`): the rows of `data` a model trains on
        (e.g. one class per model); None: all `N` rows.
    It returns the new state and each metric's mean over the epoch's steps (`[M]` with `vmap`).
  """
  if sampling not in SAMPLING:
    raise ValueError(f"sampling must be one of {SAMPLING}, got {sampling!r}")
  if batch_size <= 0 or (num_steps is not None and num_steps <= 0):
    raise ValueError(f"batch_size and num_steps must be positive, got {batch_size}, {num_steps}")

  def steps_for(n: int) -> int:
    if num_steps is not None:
      steps = num_steps
    else:
      steps = n // batch_size if sampling == "shuffle" else max(1, n // batch_size)
    if sampling == "shuffle" and steps * batch_size > n:
      raise ValueError(f"{steps} steps of {batch_size} rows need {steps * batch_size} rows, the data has {n}")
    return steps

  def plan(key, epoch, n, steps):
    """`(step keys [steps], batch positions [steps, batch_size] or None)` of one model."""
    epoch_key = jax.random.fold_in(key, epoch)
    if sampling == "replace":
      return jax.random.split(epoch_key, steps), None
    perm_key, step_key = jax.random.split(epoch_key)
    order = jax.random.permutation(perm_key, n)[: steps * batch_size].reshape(steps, batch_size)
    return jax.random.split(step_key, steps), order

  def one_step(state, key, positions, data, rows, n):
    if sampling == "replace":
      k_idx, key = jax.random.split(key)
      positions = jax.random.randint(k_idx, (batch_size,), 0, n)
    idx = positions if rows is None else rows[positions]
    return step_fn(state, jax.tree.map(lambda a: a[idx], data), key)

  axis = 0 if vmap else None

  def mapped(fn, *in_axes):
    return jax.vmap(fn, in_axes=in_axes) if vmap else fn

  def sizes(data, rows):
    n = len(jax.tree.leaves(data)[0]) if rows is None else rows.shape[-1]
    return n, steps_for(n)

  @jax.jit
  def scanned(state, key, epoch, data, rows):
    n, steps = sizes(data, rows)

    def one_model(state, key, rows):
      keys, order = plan(key, epoch, n, steps)

      def body(state, inputs):
        k, positions = inputs
        return one_step(state, k, positions, data, rows, n)

      state, metrics = jax.lax.scan(body, state, (keys, order))
      return state, jax.tree.map(lambda m: jnp.mean(m, axis=0), metrics)

    return mapped(one_model, 0, 0, None if rows is None else axis)(state, key, rows)

  @jax.jit
  def loop_plan(key, epoch, data, rows):
    n, steps = sizes(data, rows)
    return mapped(lambda k: plan(k, epoch, n, steps), 0)(key)

  @jax.jit
  def loop_step(state, keys, positions, data, rows):
    n, _ = sizes(data, rows)
    step = mapped(lambda s, k, p, r: one_step(s, k, p, data, r, n), 0, 0,
                  None if positions is None else 0, None if rows is None else axis)
    return step(state, keys, positions, rows)

  def looped(state, key, epoch, data, rows):
    keys, order = loop_plan(key, epoch, data, rows)
    steps = keys.shape[1] if vmap else keys.shape[0]
    history = []
    for i in range(steps):
      k_i = keys[:, i] if vmap else keys[i]
      positions = None if order is None else (order[:, i] if vmap else order[i])
      state, metrics = loop_step(state, k_i, positions, data, rows)
      history.append(metrics)
    return state, jax.tree.map(lambda *m: jnp.mean(jnp.stack(m), axis=0), *history)

  def epoch_fn(state: Any, key: jax.Array, epoch: Any, data: Any, rows: jax.Array | None = None):
    use_scan = scan if scan is not None else jax.default_backend() != "cpu"
    return (scanned if use_scan else looped)(state, key, epoch, data, rows)

  return epoch_fn


def map_batches(fn: Callable, x: jax.Array, batch_size: int) -> Any:
  """`fn` over `x: [n, ...]` in batches of `batch_size` rows with `lax.map` (bounded memory), concatenated.

  The last batch is padded with zero rows, whose outputs are dropped. `fn(x [batch_size, ...])` returns a
  pytree of arrays with a leading `[batch_size]` axis.
  """
  n = x.shape[0]
  batch_size = max(1, min(batch_size, n))
  pad = (-n) % batch_size
  padded = jnp.concatenate([x, jnp.zeros((pad, *x.shape[1:]), x.dtype)]) if pad else x
  out = jax.lax.map(fn, padded.reshape(-1, batch_size, *x.shape[1:]))
  return jax.tree.map(lambda a: a.reshape(-1, *a.shape[2:])[:n], out)
