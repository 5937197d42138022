"""The training loop: seeded step-indexed batches, tqdm progress, JSONL metrics, Orbax checkpoints
and exact resume, optionally data parallel over all local devices."""

import json
import os
import pathlib
import time
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import tqdm.auto as tqdm

from ..data import _batching
from . import _parallel, _workdir
from ._checkpoint import CheckpointError, Checkpointer
from ._workdir import read_metrics

CHECKPOINT_DIR = "checkpoints"
RESUME_MODES = ("auto", "force")
# Config fields that do not change what a run computes; they may differ on resume.
CONFIG_IGNORE = ("progress", "checkpoint_every", "log_every", "keep")


class TrainResult(NamedTuple):
  """state: the final train state. history: the records of metrics.jsonl up to the run's last step
  (train and eval, including those of the runs before a resume; each (split, step) once).
  resumed_from: the checkpoint step resumed from, or None."""
  state: Any
  history: list[dict]
  resumed_from: int | None

  @property
  def elapsed_s(self) -> float | None:
    """The training time of all the calls that made `history` (its last train record's "elapsed_s")."""
    train = [r for r in self.history if r.get("split") == "train"]
    return train[-1].get("elapsed_s") if train else None


class ConfigMismatchError(CheckpointError):
  """The workdir holds a run with another configuration."""


def _check_config(workdir: pathlib.Path, config: Any, resume: str, ignore) -> dict:
  """{field: (saved, now)} of a forced resume; raises ConfigMismatchError unless `resume="force"`."""
  saved = _workdir.read_config(workdir)
  if config is None or saved is None:
    return {}
  differences = _workdir.config_differences(saved, _workdir.jsonable(config), ignore)
  if differences and resume != "force":
    lines = "\n".join(f"  {k}: {a!r} in the workdir, {b!r} now" for k, (a, b) in differences.items())
    raise ConfigMismatchError(
        f"{workdir} holds a run with another configuration:\n{lines}\nResuming it would mix two "
        "configurations in one result. Use a new workdir, or resume anyway with resume='force' "
        f"(`--resume=force` on the command line), which is recorded in {workdir / _workdir.RESUMES_FILE}.")
  return differences


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


def run(train_step: Callable, state: Any, train_data: Any, *, key: jax.Array, num_steps: int,
        batch_size: int, workdir: os.PathLike, seed: int = 0, shuffle: bool = True,
        checkpoint_every: int = 1000, keep: int = 3, log_every: int = 10,
        eval_step: Callable | None = None, eval_data: Any = None, eval_every: int | None = None,
        eval_batch_size: int | None = None, data_parallel: bool = False, progress: bool = True,
        callback: Callable[[int, Any, dict], None] | None = None, config: Any = None,
        resume: str = "auto", config_ignore: tuple[str, ...] = CONFIG_IGNORE) -> TrainResult:
  """Runs `num_steps` steps of `train_step`, resuming from the newest intact checkpoint in `workdir`.

  Step s (counted from 0) uses batch `gmmjax.data.get_batch(train_data, s, batch_size, seed=seed)` and
  key `jax.random.fold_in(key, s)`, so a resumed run repeats an uninterrupted one step for step.

  The workdir survives a SIGKILL at any moment: metrics.jsonl is only appended to, config.json is
  replaced atomically, and a damaged newest checkpoint is skipped (with a warning) for an older intact
  one. While steps run, `workdir/lock` is held exclusively, so a second process gets
  `WorkdirLockedError`. A finished run (nothing left to do) is read without writing anything.

  Args:
    train_step: `train_step(state, batch, key) -> (state, metrics)`, e.g. from `make_train_step`.
    state: initial train state (a pytree; also the template a checkpoint is restored into).
    train_data: pytree of arrays [n, ...], or a function `step -> batch`.
    key: PRNG key of the run.
    num_steps: total number of steps (a resumed run continues up to it; a workdir that went further
      returns its checkpoint at `num_steps`, or is refused if it has none).
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
    config: the run's configuration (dataclass, ConfigDict or dict), written to config.json and
      compared with it on resume.
    resume: "auto" (a config that differs from config.json is refused) or "force" (resume anyway; the
      differences are appended to `workdir/resumes.jsonl` and config.json takes the new config).
    config_ignore: config fields that may differ on resume (they do not change the result).

  Returns:
    `TrainResult(state, history, resumed_from)`. Train records carry "elapsed_s", the training time up to
    that step summed over all runs that produced the history.

  Raises:
    ConfigMismatchError: the workdir holds a run with another config (and `resume="auto"`).
    WorkdirLockedError: another process is using the workdir.
    IncompatibleCheckpointError, CorruptCheckpointError: no checkpoint can be resumed; all are left
      as they are.
  """
  if num_steps < 0 or checkpoint_every <= 0 or log_every <= 0 or batch_size <= 0:
    raise ValueError("num_steps must be >= 0; checkpoint_every, log_every, batch_size must be positive.")
  if resume not in RESUME_MODES:
    raise ValueError(f"resume must be one of {RESUME_MODES}, got {resume!r}")
  workdir = pathlib.Path(workdir)
  if callable(train_data):
    get_batch = train_data
  else:
    n = len(jax.tree.leaves(train_data)[0])
    if batch_size > n:
      raise ValueError(f"batch_size {batch_size} is larger than the training set ({n} examples).")
    get_batch = lambda step: _batching.get_batch(train_data, step, batch_size, seed=seed,  # noqa: E731
                                                 shuffle=shuffle)
  if not workdir.exists():
    workdir.mkdir(parents=True)
  lock = _workdir.WorkdirLock(workdir)
  checkpointer = None
  try:
    lock.acquire(exclusive=False)
    forced = _check_config(workdir, config, resume, config_ignore)
    checkpointer = Checkpointer(workdir / CHECKPOINT_DIR, keep=keep,
                                run_info={"seed": int(seed), "batch_size": int(batch_size),
                                          "shuffle": bool(shuffle)})
    template = _as_arrays_copy(state)
    if data_parallel:
      mesh = _parallel.data_mesh()
      if batch_size % mesh.devices.size:
        raise ValueError(f"batch_size {batch_size} is not divisible by the {mesh.devices.size} devices.")
      template = _parallel.replicate(template, mesh)
    else:
      mesh = None
    beyond = [s for s in checkpointer.all_steps() if s > num_steps]
    if beyond:
      # A shorter run than the one in the workdir: its own step's checkpoint, or nothing.
      if num_steps not in checkpointer.all_steps():
        raise CheckpointError(
            f"{workdir} holds a run that went to step {max(beyond)}, but no checkpoint at step {num_steps}, "
            f"where this run ends. Use another workdir, or ask for at least {max(beyond)} steps.")
      state = checkpointer.restore(num_steps, template)
      return TrainResult(state=state, history=_history(workdir, num_steps), resumed_from=num_steps)
    resumed_from, state = checkpointer.restore_latest(template, max_step=num_steps)
    start = resumed_from or 0
    if start == num_steps and resumed_from is not None and not forced:
      return TrainResult(state=state, history=_history(workdir, num_steps), resumed_from=resumed_from)

    # From here on the run writes: take the workdir for itself.
    lock.acquire(exclusive=True)
    if forced:
      _workdir.record_forced_resume(workdir, start, forced)
    if config is not None:
      text = json.dumps(_workdir.jsonable(config), indent=2) + "\n"
      path = workdir / _workdir.CONFIG_FILE
      if not path.exists() or path.read_text() != text:
        _workdir.atomic_write_text(path, text)
    # Steps after the resumed one are damaged or empty folders that this run will write again.
    checkpointer.set_aside([s for s in checkpointer.all_steps() if s > start])
    state = _train(train_step, state, get_batch, key=key, start=start, num_steps=num_steps, workdir=workdir,
                   checkpointer=checkpointer, mesh=mesh, checkpoint_every=checkpoint_every,
                   log_every=log_every, eval_step=eval_step, eval_data=eval_data, eval_every=eval_every,
                   eval_batch_size=eval_batch_size or batch_size, progress=progress, callback=callback)
    return TrainResult(state=state, history=_history(workdir, num_steps), resumed_from=resumed_from)
  finally:
    if checkpointer is not None:
      checkpointer.close()
    lock.release()


def fit(*args: Any, **kwargs: Any) -> TrainResult:
  """Deprecated alias of `run` (the name clashes with `gmmjax.fit`, the GMM fit)."""
  warnings.warn("gmmjax.train.fit is deprecated; use gmmjax.train.run", DeprecationWarning, stacklevel=2)
  return run(*args, **kwargs)


FitResult = TrainResult  # Deprecated alias of `TrainResult`.


def _as_arrays_copy(state: Any) -> Any:
  # A private copy: the step donates its input, and the caller's initial state must stay usable.
  return jax.tree.map(lambda x: jnp.array(x, copy=True), state)


def _history(workdir: pathlib.Path, last_step: int) -> list[dict]:
  return [r for r in read_metrics(workdir) if r.get("step", 0) <= last_step]


def _train(train_step, state, get_batch, *, key, start, num_steps, workdir, checkpointer, mesh,
           checkpoint_every, log_every, eval_step, eval_data, eval_every, eval_batch_size, progress,
           callback):
  """Steps `start + 1 .. num_steps`: metrics appended, checkpoints saved, the lock already held."""
  # Training time carries over from the history up to the resumed step.
  previous = [r for r in read_metrics(workdir) if r.get("split") == "train" and r.get("step") == start]
  elapsed_before = float(previous[-1].get("elapsed_s", 0.0)) if previous else 0.0
  writer = _workdir.MetricsWriter(workdir)
  t0 = time.perf_counter()
  pending = []
  bar = tqdm.tqdm(total=num_steps, initial=min(start, num_steps), disable=not progress, dynamic_ncols=True,
                  desc=workdir.name)

  def run_eval(step):
    metrics = evaluate(eval_step, state, eval_data, batch_size=eval_batch_size,
                       key=jax.random.fold_in(jax.random.fold_in(key, step), 1 << 30))
    writer.write([{"step": step, "split": "eval", **metrics}])

  def flush():
    if not pending:
      return
    fetched = jax.device_get([m for _, m in pending])
    elapsed = elapsed_before + time.perf_counter() - t0
    records = [{"step": s, "split": "train", **_to_floats(m), "elapsed_s": elapsed}
               for (s, _), m in zip(pending, fetched)]
    writer.write(records)
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
        writer.sync()  # The records up to a checkpoint are on disk before it is.
        checkpointer.save(done, state)
    if eval_step is not None and start < num_steps:
      run_eval(num_steps)
    checkpointer.wait()
  finally:
    flush()
    bar.close()
    writer.close()
  return state
