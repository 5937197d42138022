"""Training infrastructure: train state, optimisers, the loop, checkpoints, data parallelism, plots.

A model plugs in with a loss function; the loop does batching, keys, logging and resume:

  def loss_fn(params, batch, key):                    # -> (scalar loss, {name: scalar})
    images, labels = batch
    loss = ...model.apply({"params": params}, images, rngs={"sample": key})...
    return loss, {"recon": recon}

  tx = train.make_optimizer(train.OptimizerConfig(learning_rate=1e-3, clip_norm=1.0))
  state = train.TrainState.create(params=model.init(key, x0)["params"], tx=tx)
  result = train.run(train.make_train_step(loss_fn), state, (ds.images, ds.labels), key=key,
                     num_steps=10_000, batch_size=256, workdir="runs/vade", checkpoint_every=1000)
  train.plots.plot_learning_curves(result.history, "runs/vade/curves.png")

State that is not trained by gradient (a GMM prior refitted by EM, batch statistics) goes in
`TrainState.extra`, with `make_train_step(loss_fn, has_extra=True)` and
`loss_fn(params, extra, batch, key) -> (loss, (metrics, new_extra))`. Models with several optimisers
(GANs) write their own `train_step(state, batch, key) -> (state, metrics)` on their own
`flax.struct.dataclass` state; `run` only needs that signature. Restarting the same command resumes from
the newest intact checkpoint in `workdir/checkpoints` and repeats the uninterrupted run step for step;
a SIGKILL at any moment loses at most the steps since that checkpoint (see `run`). `fit` and
`FitResult` are deprecated aliases of `run` and `TrainResult` (the names of the GMM fit).
`write_results` stores an evaluation in `workdir/results.json` (last, atomically, with the config) and
`read_results` returns it for the same config, so that rerunning a finished run reads it and writes nothing.

With the data set on the device, `make_epoch` turns a one-model step into one jitted epoch: `vmap` over
models (seeds, classes), `lax.scan` over batches (a loop of the jitted step on CPU where that is faster),
and `run` counts epochs as its steps:

  def step(state, batch, key):                         # one update of one model
    loss, grads = jax.value_and_grad(loss_fn)(state.params, batch, key)
    return state.apply_gradients(grads), {"loss": loss}

  epoch = train.make_epoch(step, batch_size=128, vmap=True)       # states and keys stacked [M]

  def train_step(states, e, key):                       # one `run` step = one epoch of all models
    states, metrics = epoch(states, keys, e, images)    # metrics: each model's mean over the epoch
    return states, {"loss": metrics["loss"].mean()}     # `run` records scalars

  result = train.run(train_step, states, lambda e: e, key=key, num_steps=epochs, batch_size=128,
                     workdir="runs/seeds", log_every=1)
"""

from . import plots as plots
from ._checkpoint import CheckpointError as CheckpointError
from ._checkpoint import Checkpointer as Checkpointer
from ._checkpoint import CorruptCheckpointError as CorruptCheckpointError
from ._checkpoint import IncompatibleCheckpointError as IncompatibleCheckpointError
from ._epoch import make_epoch as make_epoch
from ._epoch import map_batches as map_batches
from ._loop import CONFIG_IGNORE as CONFIG_IGNORE
from ._loop import ConfigMismatchError as ConfigMismatchError
from ._loop import FitResult as FitResult
from ._loop import TrainResult as TrainResult
from ._loop import evaluate as evaluate
from ._loop import fit as fit
from ._loop import run as run
from ._workdir import WorkdirLockedError as WorkdirLockedError
from ._workdir import read_metrics as read_metrics
from ._workdir import read_results as read_results
from ._workdir import write_results as write_results
from ._optim import OptimizerConfig as OptimizerConfig
from ._optim import make_optimizer as make_optimizer
from ._optim import make_schedule as make_schedule
from ._parallel import data_mesh as data_mesh
from ._parallel import replicate as replicate
from ._parallel import shard_batch as shard_batch
from ._state import TrainState as TrainState
from ._state import make_eval_step as make_eval_step
from ._state import make_train_step as make_train_step

__all__ = [
    "CONFIG_IGNORE",
    "CheckpointError",
    "Checkpointer",
    "ConfigMismatchError",
    "CorruptCheckpointError",
    "FitResult",
    "IncompatibleCheckpointError",
    "OptimizerConfig",
    "TrainResult",
    "TrainState",
    "WorkdirLockedError",
    "data_mesh",
    "evaluate",
    "fit",
    "make_epoch",
    "make_eval_step",
    "make_optimizer",
    "make_schedule",
    "map_batches",
    "make_train_step",
    "plots",
    "read_metrics",
    "read_results",
    "replicate",
    "run",
    "shard_batch",
    "write_results",
]
