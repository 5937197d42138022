"""Input validation, run eagerly before anything is traced or compiled.

Shape and dtype checks always run. Value checks (NaN/inf, negative weights) run
only on concrete arrays: under a caller's `jit` or `vmap` the values are not
known, and the numerics are built to stay finite on any finite input.
"""

import jax
import jax.numpy as jnp
import numpy as np
from jax.typing import ArrayLike

from ._types import GMMParams, check_covariance_type


def _is_concrete(a) -> bool:
  return not isinstance(a, jax.core.Tracer)


def _float_array(a: ArrayLike, name: str) -> jax.Array:
  if _is_concrete(a) and not isinstance(a, jax.Array):
    a = np.asarray(a)
    if a.dtype.kind not in "biuf":
      raise ValueError(f"{name} must be numeric, got dtype {a.dtype}")
  # Host arrays are checked on the host: no device round trip, nothing compiled.
  _check_finite(a, name)
  a = jnp.asarray(a)
  if not jnp.issubdtype(a.dtype, jnp.floating):
    a = a.astype(jnp.result_type(float))
  return a


def _check_finite(a, name: str) -> None:
  if not _is_concrete(a):
    return
  if isinstance(a, np.ndarray):
    # min/max propagate NaN and expose inf without an [n, d] boolean temporary.
    ok = a.size == 0 or (np.isfinite(np.min(a)) and np.isfinite(np.max(a)))
  else:
    ok = jnp.all(jnp.isfinite(a))
  if not bool(ok):
    raise ValueError(f"{name} contains NaN or infinity")


def data(x: ArrayLike, name: str = "x") -> jax.Array:
  """Validates a `[n, d]` float data matrix."""
  x = _float_array(x, name)
  if x.ndim != 2:
    raise ValueError(f"{name} must have shape [n_samples, n_features], got {x.shape}")
  if x.shape[0] < 1 or x.shape[1] < 1:
    raise ValueError(f"{name} must be non-empty, got shape {x.shape}")
  return x


def as_points(x: ArrayLike, params: GMMParams) -> jax.Array:
  x = data(x)
  d = params.means.shape[-1]
  if x.shape[1] != d:
    raise ValueError(f"x has {x.shape[1]} features but the mixture has {d}")
  return x


def as_weights(weights: ArrayLike, x: jax.Array) -> jax.Array:
  """Validates `[n]` non-negative sample weights with a positive sum."""
  w = _float_array(weights, "weights").astype(x.dtype)
  if w.shape != x.shape[:1]:
    raise ValueError(f"weights must have shape {x.shape[:1]}, got {w.shape}")
  if _is_concrete(w):
    if bool(jnp.any(w < 0)):
      raise ValueError("weights must be non-negative")
    if not bool(jnp.sum(w) > 0):
      raise ValueError("weights must have a positive sum")
  return w


def n_components(k, n_samples: int) -> int:
  if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
    raise ValueError(f"n_components must be a positive integer, got {k!r}")
  if k > n_samples:
    raise ValueError(f"n_components={k} must be <= n_samples={n_samples}")
  return int(k)


def positive(value, name: str, allow_zero: bool = False) -> None:
  if _is_concrete(value):
    v = float(value)
    if not np.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
      raise ValueError(f"{name} must be {'non-negative' if allow_zero else 'positive'}, got {v}")


def covariance_type(value: str) -> str:
  check_covariance_type(value)
  return value


def params(p: GMMParams, n_features: int | None = None) -> GMMParams:
  """Checks that parameter shapes agree with each other (and with the data)."""
  if not isinstance(p, GMMParams):
    raise ValueError(f"expected GMMParams, got {type(p).__name__}")
  check_covariance_type(p.covariance_type)
  k, d = p.means.shape[-2:]
  expected = {
      "full": (k, d, d),
      "tied": (d, d),
      "diag": (k, d),
      "spherical": (k,),
  }[p.covariance_type]
  if p.weights.shape[-1:] != (k,):
    raise ValueError(f"weights must have shape [{k}], got {p.weights.shape}")
  if p.precisions_cholesky.shape[-len(expected):] != expected:
    raise ValueError(
        f"{p.covariance_type} precisions_cholesky must have shape {expected}, "
        f"got {p.precisions_cholesky.shape}"
    )
  if n_features is not None and d != n_features:
    raise ValueError(f"params have {d} features but x has {n_features}")
  for name in ("weights", "means", "precisions_cholesky"):
    _check_finite(getattr(p, name), f"params.{name}")
  return p
