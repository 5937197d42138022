"""Orbax checkpoints of a train state, with a fingerprint and a content hash so that an incompatible
or corrupted checkpoint is refused with a clear error instead of being loaded. A damaged latest step
does not block a resume: `restore_latest` falls back to the newest intact one."""

import hashlib
import os
import pathlib
import time
import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
  """A checkpoint cannot be used to resume this run."""


class IncompatibleCheckpointError(CheckpointError):
  """The checkpoint was written by a run with another state structure or run settings."""


class CorruptCheckpointError(CheckpointError):
  """The checkpoint's files cannot be read or do not match the hash stored with them."""


def _as_arrays(tree: Any) -> Any:
  # numpy arrays and Python/numpy scalars become jax arrays, which orbax saves and restores as such.
  return jax.tree.map(lambda x: x if isinstance(x, jax.Array) else jnp.asarray(x), tree)


def _is_key(x: Any) -> bool:
  return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def _dtype(x: Any) -> str:
  return str(x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype)


def fingerprint(state: Any) -> list[list[Any]]:
  """[[key path, shape, dtype], ...] of the state's array leaves, in tree order."""
  leaves = jax.tree_util.tree_flatten_with_path(state)[0]
  return [[jax.tree_util.keystr(path), list(np.shape(x)), _dtype(x)] for path, x in leaves]


def content_hash(state: Any) -> str:
  """SHA-256 over the bytes of all leaves (fetched to the host)."""
  digest = hashlib.sha256()
  state = jax.tree.map(lambda x: jax.random.key_data(x) if _is_key(x) else x, state)
  for leaf in jax.tree.leaves(jax.device_get(state)):
    array = np.ascontiguousarray(leaf)
    digest.update(str(array.dtype).encode() + str(array.shape).encode())
    digest.update(array.tobytes())
  return digest.hexdigest()


def _describe_mismatch(saved: list, current: list) -> str:
  saved_map, current_map = {p: (s, d) for p, s, d in saved}, {p: (s, d) for p, s, d in current}
  lines = []
  for path in sorted(set(saved_map) | set(current_map)):
    a, b = saved_map.get(path), current_map.get(path)
    if a != b:
      fmt = lambda v: "missing" if v is None else f"shape {v[0]} {v[1]}"  # noqa: E731
      lines.append(f"  {path}: checkpoint {fmt(a)}, now {fmt(b)}")
    if len(lines) >= 10:
      lines.append("  ...")
      break
  return "\n".join(lines)


class Checkpointer:
  """Saves and restores a train state under `directory` with `ocp.CheckpointManager`.

  Args:
    directory: checkpoint folder (created on the first save).
    keep: number of most recent checkpoints kept.
    run_info: JSON-able settings that must match for a resume to be exact (seed, batch size, ...).
  """

  def __init__(self, directory: os.PathLike, *, keep: int = 3, run_info: dict | None = None):
    self.directory = pathlib.Path(directory).absolute()
    self.run_info = dict(run_info or {})
    # A kill during a save leaves a temporary folder; orbax removes it when the next run writes.
    options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True, cleanup_tmp_directories=True)
    self._manager = ocp.CheckpointManager(self.directory, options=options, item_names=("state", "meta"))

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def save(self, step: int, state: Any) -> None:
    """Saves `state` as checkpoint `step` (asynchronously; `wait` blocks until written)."""
    state = _as_arrays(state)
    meta = {"format_version": FORMAT_VERSION, "step": int(step), "fingerprint": fingerprint(state),
            "sha256": content_hash(state), "run_info": self.run_info}
    self._manager.save(int(step), force=True, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)))

  def restore(self, step: int, target: Any) -> Any:
    """Restores checkpoint `step` into the structure (and shardings) of `target`.

    Raises:
      IncompatibleCheckpointError: other state structure, shapes, dtypes or run settings.
      CorruptCheckpointError: unreadable files or contents that do not match their hash.
    """
    target = _as_arrays(target)
    where = self.directory / str(step)
    advice = (f"The checkpoint is left as it is; move the folder {where} out of {self.directory} to "
              "resume from an older step, or use another workdir.")
    try:
      meta = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    except Exception as e:  # noqa: BLE001 - any read failure means the files are damaged.
      raise CorruptCheckpointError(f"Cannot read the metadata of checkpoint {where}: {type(e).__name__}: "
                                   f"{e}. {advice}") from e
    if not isinstance(meta, dict) or meta.get("format_version") != FORMAT_VERSION:
      raise IncompatibleCheckpointError(f"Checkpoint {where} has an unknown format ({str(meta)[:200]}). "
                                        f"{advice}")
    current = fingerprint(target)
    if meta["fingerprint"] != current:
      raise IncompatibleCheckpointError(
          f"Checkpoint {where} holds a different train state than this run:\n"
          f"{_describe_mismatch(meta['fingerprint'], current)}\n{advice}")
    if meta.get("run_info") != self.run_info:
      raise IncompatibleCheckpointError(
          f"Checkpoint {where} was written with run settings {meta.get('run_info')}, this run has "
          f"{self.run_info}; resuming would not reproduce the same run. {advice}")
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, target)
    try:
      restored = self._manager.restore(step, args=ocp.args.Composite(
          state=ocp.args.StandardRestore(abstract)))["state"]
    except Exception as e:  # noqa: BLE001
      raise CorruptCheckpointError(f"Cannot read the state of checkpoint {where}: {type(e).__name__}: {e}. "
                                   f"{advice}") from e
    if content_hash(restored) != meta["sha256"]:
      raise CorruptCheckpointError(f"Checkpoint {where} is corrupted: its contents do not match the SHA-256 "
                                   f"stored when it was written. {advice}")
    return restored

  def restore_latest(self, target: Any, *, max_step: int | None = None) -> tuple[int | None, Any]:
    """Restores the newest intact checkpoint (at most `max_step`), skipping damaged ones with a warning.

    Returns:
      `(step, state)`, or `(None, target)` if there is no checkpoint (at most `max_step`).

    Raises:
      IncompatibleCheckpointError: the newest readable checkpoint belongs to another kind of run.
      CorruptCheckpointError: checkpoints exist but none of them can be read; all are left as they are.
    """
    steps = sorted((s for s in self.all_steps() if max_step is None or s <= max_step), reverse=True)
    damaged = []
    for step in steps:
      try:
        state = self.restore(step, target)
      except CorruptCheckpointError as e:
        damaged.append(step)
        warnings.warn(f"{e} Falling back to an older checkpoint.", stacklevel=2)
        continue
      if damaged:
        warnings.warn(f"Resuming from checkpoint {step}: the newer checkpoint(s) {damaged} in "
                      f"{self.directory} cannot be read.", stacklevel=2)
      return step, state
    if damaged:
      raise CorruptCheckpointError(
          f"None of the checkpoints {sorted(damaged)} in {self.directory} can be read (see the warnings "
          "above). They are left as they are; to start over, move them away or use another workdir.")
    return None, target

  def set_aside(self, steps: list[int]) -> pathlib.Path | None:
    """Moves step folders (damaged ones a run will write again) to `<directory>.damaged/`.

    Returns:
      The folder they were moved into, or None if there was nothing to move.
    """
    steps = [s for s in steps if (self.directory / str(s)).exists()]
    if not steps:
      return None
    aside = self.directory.with_name(f"{self.directory.name}.damaged")
    aside.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    for step in steps:
      os.replace(self.directory / str(step), aside / f"{step}-{stamp}-{os.getpid()}")
    warnings.warn(f"Moved the damaged checkpoint(s) {steps} to {aside}.", stacklevel=2)
    self._manager.reload()
    return aside

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def close(self) -> None:
    self._manager.close()
