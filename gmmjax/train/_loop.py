"""The training loop: seeded step-indexed batches, tqdm progress, JSONL metrics, Orbax checkpoints
and exact resume, optionally data parallel over all local devices."""

import dataclasses
import json
import os
import pathlib
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import tqdm.auto as tqdm

from ..data import _batching
from . import _parallel
from ._checkpoint import Checkpointer

METRICS_FILE = "metrics.jsonl"
CONFIG_FILE = "config.json"
CHECKPOINT_DIR = "checkpoints"


class FitResult(NamedTuple):
  """state: the final train state. history: all records of metrics.jsonl (train and eval, including
  those of the run before a resume). resumed_from: the checkpoint step resumed from, or None."""
  state: Any
  history: list[dict]
  resumed_from: int | None


def _jsonable(config: Any) -> Any:
  if dataclasses.is_dataclass(config) and not isinstance(config, type):
    return dataclasses.asdict(config)
  if hasattr(config, "to_dict"):
    return config.to_dict()
  return config


def read_metrics(workdir: os.PathLike) -> list[dict]:
  """Records of `workdir/metrics.jsonl` (a torn last line, from a killed run, is skipped)."""
  path = pathlib.Path(workdir) / METRICS_FILE
  if not path.exists():
    return []
  records = []
  for line in path.read_text().splitlines():
    try:
      records.append(json.loads(line))
    except json.JSONDecodeError:
      continue
  return records


def _truncate_metrics(workdir: pathlib.Path, last_step: int) -> None:
  # Records after the restored checkpoint belong to steps that will run again.
  kept = [r for r in read_metrics(workdir) if r.get("step", 0) <= last_step]
  (workdir / METRICS_FILE).write_text("".join(json.dumps(r) + "\n" for r in kept))


def _to_floats(metrics: dict) -> dict:
  return {k: float(np.asarray(v)) for k, v in metrics.items()}


def evaluate(eval_step: Callable, state: Any, data: Any, *, batch_size: int,
             key: jax.Array | None = None) -> dict:
  """Averages `eval_step(state, batch, key) -> {name: scalar}` over all of `data`, in order.

  Args:
    eval_step: per-batch metrics (means over the batch), e.g. from `make_eval_step`.
    state: train state.
    data: pytree of arrays [n, ...] (all examples are used; the last batch may be smaller).
    batch_size: examples per batch.
    key: PRNG key, folded with the batch index (default `jax.random.key(0)`).

  Returns:
    {name: float}, each the example-weighted mean over the batches.
  """
  key = jax.random.key(0) if key is None else key
  totals, count = {}, 0
  for i, batch in enumerate(_batching.batches(data, batch_size, shuffle=False, drop_remainder=False)):
    size = int(np.shape(jax.tree.leaves(batch)[0])[0])
    metrics = eval_step(state, batch, jax.random.fold_in(key, i))
    for name, value in metrics.items():
      totals[name] = totals.get(name, 0.0) + jnp.asarray(value, jnp.float32) * size
    count += size
  return {name: float(total) / count for name, total in totals.items()}


def fit(train_step: Callable, state: Any, train_data: Any, *, key: jax.Array, num_steps: int,
        batch_size: int, workdir: os.PathLike, seed: int = 0, shuffle: bool = True,
        checkpoint_every: int = 1000, keep: int = 3, log_every: int = 10,
        eval_step: Callable | None = None, eval_data: Any = None, eval_every: int | None = None,
        eval_batch_size: int | None = None, data_parallel: bool = False, progress: bool = True,
        callback: Callable[[int, Any, dict], None] | None = None, config: Any = None) -> FitResult:
  """Runs `num_steps` steps of `train_step`, resuming from the latest checkpoint in `workdir`.

  Step s (counted from 0) uses batch `gmmjax.data.get_batch(train_data, s, batch_size, seed=seed)` and
  key `jax.random.fold_in(key, s)`, so a resumed run repeats an uninterrupted one step for step.

  Args:
    train_step: `train_step(state, batch, key) -> (state, metrics)`, e.g. from `make_train_step`.
    state: initial train state (a pytree; also the template a checkpoint is restored into).
    train_data: pytree of arrays [n, ...], or a function `step -> batch`.
    key: PRNG key of the run.
    num_steps: total number of steps (a resumed run continues up to it).
    batch_size: examples per step (global, over all devices).
    workdir: folder for config.json, metrics.jsonl and checkpoints/.
    seed: integer seed of the batch order.
    shuffle: shuffle each epoch.
    checkpoint_every: save every this many steps (and always after the last).
    keep: checkpoints kept.
    log_every: metrics are fetched from the device, written and shown every this many steps (each
      step still gets its own record).
    eval_step: optional `eval_step(state, batch, key) -> metrics`, run on `eval_data` every
      `eval_every` steps and at the end; records have "split": "eval".
    eval_data: pytree of arrays for `eval_step`.
    eval_every: steps between evaluations (None: only at the end).
    eval_batch_size: defaults to `batch_size`.
    data_parallel: shard each batch over all local devices and replicate the state.
    progress: show a tqdm bar, with the live "loss" if the step reports one.
    callback: `callback(step, state, metrics)` after each step (metrics still on device).
    config: the run's configuration, written to config.json (dataclass, ConfigDict or dict).

  Returns:
    `FitResult(state, history, resumed_from)`.

  Raises:
    IncompatibleCheckpointError, CorruptCheckpointError: the latest checkpoint cannot be resumed; it is
      not modified.
  """
  if num_steps < 0 or checkpoint_every <= 0 or log_every <= 0 or batch_size <= 0:
    raise ValueError("num_steps must be >= 0; checkpoint_every, log_every, batch_size must be positive.")
  workdir = pathlib.Path(workdir)
  workdir.mkdir(parents=True, exist_ok=True)
  if config is not None:
    (workdir / CONFIG_FILE).write_text(json.dumps(_jsonable(config), indent=2, default=str) + "\n")

  if callable(train_data):
    get_batch = train_data
  else:
    n = len(jax.tree.leaves(train_data)[0])
    if batch_size > n:
      raise ValueError(f"batch_size {batch_size} is larger than the training set ({n} examples).")
    get_batch = lambda step: _batching.get_batch(train_data, step, batch_size, seed=seed,  # noqa: E731
                                                 shuffle=shuffle)
  mesh = None
  # A private copy: the step donates its input, and the caller's initial state must stay usable.
  state = jax.tree.map(lambda x: jnp.array(x, copy=True), state)
  if data_parallel:
    mesh = _parallel.data_mesh()
    if batch_size % mesh.devices.size:
      raise ValueError(f"batch_size {batch_size} is not divisible by the {mesh.devices.size} devices.")
    state = _parallel.replicate(state, mesh)

  checkpointer = Checkpointer(workdir / CHECKPOINT_DIR, keep=keep,
                              run_info={"seed": int(seed), "batch_size": int(batch_size),
                                        "shuffle": bool(shuffle)})
  resumed_from = checkpointer.latest_step()
  start = 0
  if resumed_from is not None:
    state = checkpointer.restore(resumed_from, state)
    start = resumed_from
  _truncate_metrics(workdir, start)

  def run_eval(step):
    metrics = evaluate(eval_step, state, eval_data, batch_size=eval_batch_size or batch_size,
                       key=jax.random.fold_in(jax.random.fold_in(key, step), 1 << 30))
    write([{"step": step, "split": "eval", **metrics}])

  metrics_file = open(workdir / METRICS_FILE, "a")

  def write(records):
    metrics_file.write("".join(json.dumps(r) + "\n" for r in records))
    metrics_file.flush()

  pending = []
  bar = tqdm.tqdm(total=num_steps, initial=min(start, num_steps), disable=not progress, dynamic_ncols=True,
                  desc=workdir.name)

  def flush():
    if not pending:
      return
    fetched = jax.device_get([m for _, m in pending])
    records = [{"step": s, "split": "train", **_to_floats(m)} for (s, _), m in zip(pending, fetched)]
    write(records)
    if "loss" in records[-1]:  # A GAN's step reports two losses, neither under this name.
      bar.set_postfix(loss=f"{records[-1]['loss']:.4g}", refresh=False)
    pending.clear()

  try:
    for step in range(start, num_steps):
      batch = get_batch(step)
      if mesh is not None:
        batch = _parallel.shard_batch(batch, mesh)
      state, metrics = train_step(state, batch, jax.random.fold_in(key, step))
      done = step + 1
      pending.append((done, metrics))
      if callback is not None:
        callback(done, state, metrics)
      bar.update(1)
      last = done == num_steps
      if done % log_every == 0 or done % checkpoint_every == 0 or last:
        flush()
      if eval_step is not None and eval_every and done % eval_every == 0 and not last:
        run_eval(done)
      if done % checkpoint_every == 0 or last:
        checkpointer.save(done, state)
    if eval_step is not None and start < num_steps:
      run_eval(num_steps)
  finally:
    flush()
    bar.close()
    metrics_file.close()
    checkpointer.wait()
    checkpointer.close()
  return FitResult(state=state, history=read_metrics(workdir), resumed_from=resumed_from)
