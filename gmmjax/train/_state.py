"""Train state and the jitted train-step pattern."""

from collections.abc import Callable
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax

LossFn = Callable[..., tuple[jax.Array, Any]]


@flax.struct.dataclass
class TrainState:
  """Everything a step changes, as one pytree (checkpointed as a whole).

  step: [] int32, optimiser steps taken.
  params: trained by gradient.
  opt_state: the optimiser's state.
  extra: model state not trained by gradient (batch statistics, a GMM prior refitted by EM, an EMA of
    the parameters); None if unused.
  tx: the optax transformation (static, not saved).
  """
  step: jax.Array
  params: Any
  opt_state: Any
  extra: Any = None
  tx: optax.GradientTransformation = flax.struct.field(pytree_node=False, default=None)

  @classmethod
  def create(cls, *, params: Any, tx: optax.GradientTransformation, extra: Any = None) -> "TrainState":
    return cls(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params), extra=extra, tx=tx)

  def apply_gradients(self, grads: Any, **changes: Any) -> "TrainState":
    """One optimiser update; `changes` replace other fields (e.g. `extra=`)."""
    updates, opt_state = self.tx.update(grads, self.opt_state, self.params)
    params = optax.apply_updates(self.params, updates)
    return self.replace(step=self.step + 1, params=params, opt_state=opt_state, **changes)


def make_train_step(loss_fn: LossFn, *, has_extra: bool = False, jit: bool = True) -> Callable:
  """Builds `train_step(state, batch, key) -> (state, metrics)` from a loss function.

  Gradient, optimiser update and parameter update run in one jitted function.

  Args:
    loss_fn: `loss_fn(params, batch, key) -> (loss, metrics)`, or with `has_extra=True`
      `loss_fn(params, extra, batch, key) -> (loss, (metrics, new_extra))`. `loss` is a scalar,
      `metrics` a dict of scalars.
    has_extra: whether the loss reads and updates `state.extra`.
    jit: wrap the step in `jax.jit`. The input state is donated: use only the returned state.

  Returns:
    The step function. Its metrics are the loss function's plus "loss" and "grad_norm".
  """

  def train_step(state: TrainState, batch: Any, key: jax.Array) -> tuple[TrainState, dict]:
    if has_extra:
      def objective(params):
        return loss_fn(params, state.extra, batch, key)
      (loss, (metrics, extra)), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
      new_state = state.apply_gradients(grads, extra=extra)
    else:
      def objective(params):
        return loss_fn(params, batch, key)
      (loss, metrics), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
      new_state = state.apply_gradients(grads)
    metrics = {**metrics, "loss": loss, "grad_norm": optax.tree.norm(grads)}
    return new_state, metrics

  return jax.jit(train_step, donate_argnums=0) if jit else train_step


def make_eval_step(loss_fn: LossFn, *, has_extra: bool = False, jit: bool = True) -> Callable:
  """Builds `eval_step(state, batch, key) -> metrics` (the loss function's metrics plus "loss")."""

  def eval_step(state: TrainState, batch: Any, key: jax.Array) -> dict:
    if has_extra:
      loss, (metrics, _) = loss_fn(state.params, state.extra, batch, key)
    else:
      loss, metrics = loss_fn(state.params, batch, key)
    return {**metrics, "loss": loss}

  return jax.jit(eval_step) if jit else eval_step
