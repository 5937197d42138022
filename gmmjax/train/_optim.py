"""Optax optimisers from a small config: learning-rate schedule, weight decay, gradient clipping."""

import dataclasses
from typing import Any

import optax

SCHEDULES = ("constant", "cosine", "warmup_cosine", "exponential")
OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
  """Optimiser settings (any object or dict with these names works with `make_optimizer`)."""
  optimizer: str = "adam"
  learning_rate: float = 1e-3
  schedule: str = "constant"
  warmup_steps: int = 0
  decay_steps: int = 10_000  # Length of the cosine decay / period of the exponential decay.
  end_learning_rate_factor: float = 0.0  # Final rate = factor * learning_rate (cosine schedules).
  decay_rate: float = 0.5  # Exponential schedule: rate multiplied by this every `decay_steps`.
  b1: float = 0.9
  b2: float = 0.999
  eps: float = 1e-8
  momentum: float = 0.9  # sgd / rmsprop.
  weight_decay: float = 0.0  # Decoupled (adamw) weight decay.
  clip_norm: float | None = None  # Clip the global gradient norm to this value.


def _get(config: Any, name: str) -> Any:
  default = getattr(OptimizerConfig, name)
  if isinstance(config, dict):
    return config.get(name, default)
  return getattr(config, name, default)


def make_schedule(config: Any = None, **overrides: Any) -> optax.Schedule:
  """The learning-rate schedule described by `config` (see `OptimizerConfig`)."""
  config = {**({} if config is None else _as_dict(config)), **overrides}
  lr = float(_get(config, "learning_rate"))
  kind = _get(config, "schedule")
  warmup = int(_get(config, "warmup_steps"))
  decay = int(_get(config, "decay_steps"))
  end = lr * float(_get(config, "end_learning_rate_factor"))
  if kind not in SCHEDULES:
    raise ValueError(f"Unknown schedule {kind!r}; expected one of {SCHEDULES}.")
  if kind == "constant":
    if warmup > 0:
      return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), optax.constant_schedule(lr)],
                                  [warmup])
    return optax.constant_schedule(lr)
  if kind == "cosine":
    return optax.cosine_decay_schedule(lr, decay, alpha=end / lr if lr else 0.0)
  if kind == "warmup_cosine":
    return optax.warmup_cosine_decay_schedule(0.0, lr, max(warmup, 1), max(decay, warmup + 1), end)
  return optax.exponential_decay(lr, decay, float(_get(config, "decay_rate")), transition_begin=warmup)


def _as_dict(config: Any) -> dict:
  if isinstance(config, dict):
    return dict(config)
  if dataclasses.is_dataclass(config):
    return dataclasses.asdict(config)
  if hasattr(config, "to_dict"):  # ml_collections.ConfigDict.
    return config.to_dict()
  names = [f.name for f in dataclasses.fields(OptimizerConfig)]
  return {name: getattr(config, name) for name in names if hasattr(config, name)}


def make_optimizer(config: Any = None, **overrides: Any) -> optax.GradientTransformation:
  """An optax optimiser with schedule and optional global-norm clipping.

  Args:
    config: `OptimizerConfig`, dict, ml_collections `ConfigDict`, or None for the defaults.
    **overrides: fields replacing those of `config`.

  Returns:
    `optax.chain(clip_by_global_norm, optimiser)` (clipping only when `clip_norm` is set).
  """
  config = {**({} if config is None else _as_dict(config)), **overrides}
  unknown = set(config) - {f.name for f in dataclasses.fields(OptimizerConfig)}
  if unknown:
    raise ValueError(f"Unknown optimizer settings {sorted(unknown)}.")
  name = _get(config, "optimizer")
  schedule = make_schedule(config)
  b1, b2, eps = float(_get(config, "b1")), float(_get(config, "b2")), float(_get(config, "eps"))
  if name == "adam":
    opt = optax.adam(schedule, b1=b1, b2=b2, eps=eps)
  elif name == "adamw":
    opt = optax.adamw(schedule, b1=b1, b2=b2, eps=eps, weight_decay=float(_get(config, "weight_decay")))
  elif name == "sgd":
    opt = optax.sgd(schedule, momentum=float(_get(config, "momentum")) or None)
  elif name == "rmsprop":
    opt = optax.rmsprop(schedule, eps=eps, momentum=float(_get(config, "momentum")) or None)
  else:
    raise ValueError(f"Unknown optimizer {name!r}; expected one of {OPTIMIZERS}.")
  clip = _get(config, "clip_norm")
  if clip is not None:
    if clip <= 0:
      raise ValueError(f"clip_norm must be positive, got {clip}.")
    return optax.chain(optax.clip_by_global_norm(float(clip)), opt)
  return opt
