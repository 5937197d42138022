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


def is_concrete(a) -> bool:
  return not isinstance(a, jax.core.Tracer)


def _on_host(a) -> bool:
  return isinstance(a, np.ndarray) or (
      isinstance(a, jax.Array) and a.is_fully_addressable and all(d.platform == "cpu" for d in a.devices()))


def float_array(a: ArrayLike, name: str, allow_neg_inf: bool = False):
  """A real float array: integers become the default float, float16 and
  bfloat16 float32 (their range cannot hold the second moments); complex
  and non-numeric input is refused. NumPy input stays NumPy (it reaches a
  compiled function without an eager device op, which would compile anew
  for every shape)."""
  dtype = a.dtype if hasattr(a, "dtype") else np.asarray(a).dtype
  if not (jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.integer) or dtype == bool):
    raise ValueError(f"{name} must be real numbers, got dtype {dtype}")
  if is_concrete(a) and not isinstance(a, jax.Array):
    a = np.asarray(a)
  _check_finite(a, name, allow_neg_inf)
  lib = np if isinstance(a, np.ndarray) else jnp
  if not jnp.issubdtype(a.dtype, jnp.floating):
    a = a.astype(jnp.result_type(float))
  elif jnp.finfo(a.dtype).bits < 32:
    a = a.astype(np.float32)
  return lib.asarray(a)


def _check_finite(a, name: str, allow_neg_inf: bool = False) -> None:
  if not is_concrete(a):
    return
  # Host arrays are checked on the host: no device round trip, nothing compiled.
  if _on_host(a):
    a = np.asarray(a)
    if allow_neg_inf:
      ok = not (np.any(np.isnan(a)) or np.any(a == np.inf))
    else:
      # min/max propagate NaN and expose inf without an [n, d] boolean temporary.
      ok = a.size == 0 or (np.isfinite(np.min(a)) and np.isfinite(np.max(a)))
  elif allow_neg_inf:
    ok = bool(jnp.all(~jnp.isnan(a) & (a < jnp.inf)))
  else:
    ok = bool(jnp.all(jnp.isfinite(a)))
  if not ok:
    raise ValueError(f"{name} contains NaN or infinity")


def _spread_check(x, name: str) -> None:
  """Refuses data whose features differ in scale by more than the dtype can
  fit together: the fit works at the largest feature's scale, where the
  squares of the smallest would underflow (a fill value such as 9.97e36
  among data of unit size, say)."""
  if not is_concrete(x) or x.shape[0] < 2:
    return
  finfo = jnp.finfo(x.dtype)
  if _on_host(x):
    x = np.asarray(x)
  elif not x.is_fully_addressable:
    return
  lib = np if isinstance(x, np.ndarray) else jnp
  spread = np.asarray(lib.max(x, axis=0), np.float64) - np.asarray(lib.min(x, axis=0), np.float64)
  top = np.max(spread)
  varying = spread[spread > 0]
  if top > 0 and varying.size and np.min(varying) / top < np.sqrt(finfo.tiny) / finfo.eps:
    j = int(np.argmax(spread))
    raise ValueError(
        f"{name}[:, {j}] spans {top:.3g} while another feature spans {np.min(varying):.3g}: {x.dtype} cannot "
        "fit features so different in scale together. Rescale the features (or fit in float64); a value "
        "such as 9.97e36 may be a fill value for missing data."
    )


def data(x: ArrayLike, name: str = "x") -> jax.Array:
  """Validates a `[n, d]` float data matrix."""
  x = float_array(x, name)
  if x.ndim != 2:
    raise ValueError(f"{name} must have shape [n_samples, n_features], got {x.shape}")
  if x.shape[0] < 1 or x.shape[1] < 1:
    raise ValueError(f"{name} must be non-empty, got shape {x.shape}")
  _spread_check(x, name)
  return x


def as_points(x: ArrayLike, params: GMMParams) -> jax.Array:
  x = data(x)
  d = params.means.shape[-1]
  if x.shape[1] != d:
    raise ValueError(f"x has {x.shape[1]} features but the mixture has {d}")
  return x


def as_weights(weights: ArrayLike, x: jax.Array) -> jax.Array:
  """Validates `[n]` non-negative sample weights with a positive sum."""
  w = float_array(weights, "weights").astype(x.dtype)
  if w.shape != x.shape[:1]:
    raise ValueError(f"weights must have shape {x.shape[:1]}, got {w.shape}")
  if is_concrete(w):
    lib = np if _on_host(w) else jnp
    wh = np.asarray(w) if lib is np else w
    if bool(lib.any(wh < 0)):
      raise ValueError("weights must be non-negative")
    if not bool(lib.sum(wh) > 0):
      raise ValueError("weights must have a positive sum")
  return w


def n_components(k, n_samples: int) -> int:
  if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
    raise ValueError(f"n_components must be a positive integer, got {k!r}")
  if k > n_samples:
    raise ValueError(f"n_components={k} must be <= n_samples={n_samples}")
  return int(k)


def positive(value, name: str, allow_zero: bool = False) -> None:
  if is_concrete(value):
    if np.ndim(value) != 0 or np.iscomplexobj(value):
      raise ValueError(f"{name} must be a real number, got {value!r}")
    v = float(value)
    if not np.isfinite(v) or v < 0 or (v == 0 and not allow_zero):
      raise ValueError(f"{name} must be {'non-negative' if allow_zero else 'positive'}, got {v}")


def covariance_type(value: str) -> str:
  check_covariance_type(value)
  return value


def params(p: GMMParams, n_features: int | None = None) -> GMMParams:
  """Checks parameters given by a caller: shapes that agree with each other
  (and with the data), finite values, weights that are a distribution and
  precision factors with a positive diagonal. Value checks run on concrete
  arrays only."""
  if not isinstance(p, GMMParams):
    raise ValueError(f"expected GMMParams, got {type(p).__name__}")
  check_covariance_type(p.covariance_type)
  for name in ("weights", "means", "precisions_cholesky"):
    a = getattr(p, name)
    dtype = a.dtype if hasattr(a, "dtype") else np.asarray(a).dtype
    if not jnp.issubdtype(dtype, jnp.floating):
      raise ValueError(f"params.{name} must be real floats, got dtype {dtype}")
  if np.ndim(p.means) < 2:
    raise ValueError(f"params.means must have shape [k, d], got {np.shape(p.means)}")
  k, d = p.means.shape[-2:]
  expected = {
      "full": (k, d, d),
      "tied": (d, d),
      "diag": (k, d),
      "spherical": (k,),
  }[p.covariance_type]
  if p.weights.shape[-1:] != (k,):
    raise ValueError(f"params.weights must have shape [{k}], got {p.weights.shape}")
  if p.precisions_cholesky.shape[-len(expected):] != expected:
    raise ValueError(
        f"{p.covariance_type} params.precisions_cholesky must have shape {expected}, "
        f"got {p.precisions_cholesky.shape} (a different covariance_type?)"
    )
  if n_features is not None and d != n_features:
    raise ValueError(f"params have {d} features but x has {n_features}")
  for name in ("weights", "means", "precisions_cholesky"):
    _check_finite(getattr(p, name), f"params.{name}")
  if is_concrete(p.weights):
    w = np.asarray(p.weights, np.float64)
    if np.any(w < 0):
      raise ValueError(f"params.weights must be non-negative, got {w}")
    total = np.sum(w, axis=-1)
    if np.any(np.abs(total - 1) > max(1e-6, 10 * k * float(jnp.finfo(p.weights.dtype).eps))):
      raise ValueError(f"params.weights must sum to one, got a sum of {total}")
  if is_concrete(p.precisions_cholesky):
    u = np.asarray(p.precisions_cholesky)
    diag = np.diagonal(u, axis1=-2, axis2=-1) if p.covariance_type in ("full", "tied") else u
    if np.any(diag <= 0):
      raise ValueError(f"params.precisions_cholesky must have a positive diagonal ({p.covariance_type})")
    if p.covariance_type in ("full", "tied") and np.any(np.tril(u, -1) != 0):
      raise ValueError("params.precisions_cholesky must be upper triangular (precision = U @ U.T)")
  return p
