"""Working coordinates of a fit: `(x - shift) / scale`, the shift a data mean
and the scale a power of two (exact in floating point). A Gaussian mixture is
affine-equivariant, so parameters map back exactly, and data 1e-20 or 1e20 in
size fit as well as data of unit scale."""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from ._types import GMMParams


class Frame(NamedTuple):
  """Working coordinates `(x - shift) / scale`.

  Attributes:
    shift: `[d]` a point near the data (their weighted mean).
    scale: `[]` a power of two near the data's spread.
  """

  shift: jax.Array
  scale: jax.Array


def _power_of_two_above(a: jax.Array) -> jax.Array:
  _, exponent = jnp.frexp(jnp.where(a > 0, a, 1))
  return jnp.ldexp(jnp.ones((), a.dtype), exponent)


def data_frame(x: jax.Array, w: jax.Array | None) -> Frame:
  """The (weighted) mean of `x [n, d]` and a power of two at its spread.

  Computed at the scale of `max |x|` first, so that sums of rows near the
  dtype's largest values cannot overflow."""
  x = jax.lax.stop_gradient(x)
  top = _power_of_two_above(jnp.max(jnp.abs(x)))
  xn = x / top
  if w is None:
    shift = jnp.mean(xn, axis=0)
  else:
    w = jax.lax.stop_gradient(w)
    shift = jnp.sum(w[:, None] * xn, axis=0) / jnp.sum(w)
  spread = _power_of_two_above(jnp.max(jnp.abs(xn - shift[None, :])))
  return Frame(shift * top, spread * top)


def to_frame(params: GMMParams, frame: Frame) -> GMMParams:
  return GMMParams(params.weights, (params.means - frame.shift[None, :]) / frame.scale,
                   params.precisions_cholesky * frame.scale, params.covariance_type)


def from_frame(params: GMMParams, frame: Frame) -> GMMParams:
  return GMMParams(params.weights, params.means * frame.scale + frame.shift[None, :],
                   params.precisions_cholesky / frame.scale, params.covariance_type)


