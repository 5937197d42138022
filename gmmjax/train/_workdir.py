"""What a run keeps in its workdir, written so that a SIGKILL at any moment loses nothing.

- `metrics.jsonl` is append-only. A resumed run appends the steps it repeats; `read_metrics` keeps the
  last record of each (split, step), so the history never shrinks and never holds a step twice.
- `config.json` is replaced atomically (new file, fsync, rename) and compared on resume.
- `lock` is held with `fcntl.flock` while a run writes, so that two processes never share a workdir.
- `results.json` (an experiment's evaluation, with its config) is written last and atomically; a finished
  run is read from it, so that evaluating a finished run writes nothing.
"""

import contextlib
import dataclasses
import errno
import fcntl
import json
import os
import pathlib
import time
import warnings
from collections.abc import Callable
from typing import Any

METRICS_FILE = "metrics.jsonl"
CONFIG_FILE = "config.json"
RESUMES_FILE = "resumes.jsonl"
LOCK_FILE = "lock"


class WorkdirLockedError(RuntimeError):
  """Another process is writing to this workdir."""


def jsonable(config: Any) -> Any:
  """A dataclass, `ConfigDict` or dict as plain JSON types (tuples become lists)."""
  if dataclasses.is_dataclass(config) and not isinstance(config, type):
    config = dataclasses.asdict(config)
  elif hasattr(config, "to_dict"):
    config = config.to_dict()
  return json.loads(json.dumps(config, default=str))


def atomic_write_text(path: pathlib.Path, text: str) -> None:
  """Writes `text` to a temporary file, fsyncs it and renames it over `path`: old or new, never torn."""
  tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
  try:
    with open(tmp, "w") as f:
      f.write(text)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  finally:
    with contextlib.suppress(FileNotFoundError):
      tmp.unlink()
  _fsync_dir(path.parent)


def _fsync_dir(directory: pathlib.Path) -> None:
  with contextlib.suppress(OSError):  # Not every file system lets a folder be opened.
    fd = os.open(directory, os.O_RDONLY)
    try:
      os.fsync(fd)
    finally:
      os.close(fd)


def read_metrics(workdir: os.PathLike) -> list[dict]:
  """The history in `workdir/metrics.jsonl`: the last record of each (split, step), ordered by step.

  A torn line (from a killed run) is skipped; records a resumed run wrote again replace the earlier
  ones, so the history holds each step once.
  """
  path = pathlib.Path(workdir) / METRICS_FILE
  if not path.exists():
    return []
  latest = {}
  with open(path, "rb") as f:
    for line in f:
      try:
        record = json.loads(line)
      except (json.JSONDecodeError, UnicodeDecodeError):
        continue
      if not isinstance(record, dict):
        continue
      ident = (record.get("split"), record.get("step"))
      latest.pop(ident, None)  # Re-inserted: a repeated step takes its place in time.
      latest[ident] = record
  return sorted(latest.values(), key=lambda r: r.get("step", 0))  # Stable: train before eval.


class MetricsWriter:
  """Appends JSONL records to `workdir/metrics.jsonl` (never truncates it)."""

  def __init__(self, workdir: pathlib.Path):
    self._file = open(pathlib.Path(workdir) / METRICS_FILE, "ab")
    # A record torn by a kill would swallow the next one: start on a fresh line.
    if self._file.tell() > 0:
      with open(self._file.name, "rb") as f:
        f.seek(-1, os.SEEK_END)
        if f.read(1) != b"\n":
          self._file.write(b"\n")

  def write(self, records: list[dict]) -> None:
    # One write call per batch of records; a kill tears at most the last line.
    self._file.write("".join(json.dumps(r) + "\n" for r in records).encode())
    self._file.flush()

  def sync(self) -> None:
    os.fsync(self._file.fileno())

  def close(self) -> None:
    self._file.close()


def config_differences(saved: Any, current: Any, ignore=(), prefix: str = "") -> dict[str, tuple]:
  """{dotted field: (saved value, current value)} for the fields that differ (JSON values)."""
  if isinstance(saved, dict) and isinstance(current, dict):
    out = {}
    for name in sorted(set(saved) | set(current)):
      if name in ignore:
        continue
      missing = "<missing>"
      out.update(config_differences(saved.get(name, missing), current.get(name, missing), ignore,
                                    f"{prefix}{name}."))
    return out
  return {} if saved == current else {prefix[:-1] or "<config>": (saved, current)}


def read_config(workdir: pathlib.Path) -> Any:
  path = workdir / CONFIG_FILE
  return json.loads(path.read_text()) if path.exists() else None


def record_forced_resume(workdir: pathlib.Path, step: int, differences: dict) -> None:
  record = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "step": step,
            "changed": {k: {"was": a, "now": b} for k, (a, b) in differences.items()}}
  with open(workdir / RESUMES_FILE, "a") as f:
    f.write(json.dumps(record) + "\n")
    f.flush()
    os.fsync(f.fileno())


class WorkdirLock:
  """An `fcntl.flock` on `workdir/lock`: shared while a run only reads, exclusive while it writes.

  A reader never creates the lock file (reading must not write); a workdir without one, on a file system
  that refuses to create it, is read unlocked.
  """

  def __init__(self, workdir: pathlib.Path):
    self.workdir = workdir
    self.path = workdir / LOCK_FILE
    self._fd = None
    self._mode = None

  def _open(self, create: bool) -> None:
    if self._fd is not None:
      return
    try:
      self._fd = os.open(self.path, os.O_RDWR | (os.O_CREAT if create else 0), 0o644)
    except FileNotFoundError:
      if create:
        raise
    except OSError as e:
      if e.errno not in (errno.EACCES, errno.EROFS, errno.EPERM):
        raise
      if self.path.exists():  # flock works on a read-only descriptor too.
        self._fd = os.open(self.path, os.O_RDONLY)

  def acquire(self, exclusive: bool) -> None:
    """Takes (or upgrades to) the lock without waiting.

    Raises:
      WorkdirLockedError: another process holds it.
    """
    self._open(create=exclusive)
    if self._fd is None:
      if exclusive:
        raise WorkdirLockedError(f"Cannot create the lock file {self.path}; is {self.workdir} writable?")
      return
    mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
    if self._mode == mode:
      return
    try:
      fcntl.flock(self._fd, mode | fcntl.LOCK_NB)
    except BlockingIOError:
      raise WorkdirLockedError(
          f"{self.workdir} is in use by another process (it holds {self.path}). Wait for it to finish, "
          "stop it, or use another workdir.") from None
    self._mode = mode
    if exclusive:  # Who holds the lock, for a person looking at the folder.
      with contextlib.suppress(OSError):
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"{os.getpid()}\n".encode(), 0)

  def release(self) -> None:
    if self._fd is not None:
      os.close(self._fd)  # Closing the descriptor drops the flock.
      self._fd, self._mode = None, None


RESULTS_FILE = "results.json"


def read_results(workdir: os.PathLike, config: Any, ignore=()) -> dict | None:
  """The results in `workdir/results.json` if `write_results` wrote them for `config`, else None.

  A finished run is read rather than evaluated again, so that reading it never writes. Fields in `ignore`
  may differ (they do not change the results).
  """
  path = pathlib.Path(workdir) / RESULTS_FILE
  try:
    results = json.loads(path.read_text())
  except (FileNotFoundError, json.JSONDecodeError):
    return None
  if not isinstance(results, dict) or "config" not in results:
    return None
  return None if config_differences(results["config"], jsonable(config), ignore) else results


def write_results(workdir: os.PathLike, config: Any, results: dict, files: dict[str, str] | None = None,
                  plots: Callable[[pathlib.Path], None] | None = None) -> dict:
  """Writes a run's results: `plots(workdir)`, the text `files` {name: text}, then `results.json`.

  `results.json` (with the config under "config") is written last and atomically, so that its presence
  means the other files are complete. A read-only workdir (a finished run being evaluated) gets a
  warning and nothing is written.

  Returns:
    The results as `read_results` returns them (JSON types: lists, string keys).
  """
  workdir = pathlib.Path(workdir)
  results = json.loads(json.dumps({**results, "config": jsonable(config)}))
  if not os.access(workdir, os.W_OK):
    warnings.warn(f"{workdir} is read-only: {RESULTS_FILE} and the other results are not written",
                  stacklevel=2)
    return results
  if plots is not None:
    plots(workdir)
  for name, text in (files or {}).items():
    atomic_write_text(workdir / name, text)
  atomic_write_text(workdir / RESULTS_FILE, json.dumps(results, indent=2) + "\n")
  return results
