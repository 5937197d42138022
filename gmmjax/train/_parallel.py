"""Data parallelism over all local devices with `jax.sharding`: the batch is split along its leading
axis, the train state is replicated, and jit partitions the step (gradients are reduced across
devices by the compiler, so the update equals the single-device one up to summation order)."""

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = "data"


def data_mesh(devices: list | None = None) -> Mesh:
  """A one-axis mesh named "data" over `devices` (all local devices by default)."""
  devices = jax.local_devices() if devices is None else list(devices)
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def shard_batch(batch: Any, mesh: Mesh) -> Any:
  """Places each leaf [b, ...] split along b over the mesh; b must be divisible by the device count."""
  n = mesh.devices.size
  for leaf in jax.tree.leaves(batch):
    if np.shape(leaf)[0] % n:
      raise ValueError(f"Batch size {np.shape(leaf)[0]} is not divisible by the {n} devices.")
  return jax.device_put(batch, NamedSharding(mesh, PartitionSpec(DATA_AXIS)))


def replicate(tree: Any, mesh: Mesh) -> Any:
  """Places a full copy of every leaf on each device of the mesh."""
  return jax.device_put(tree, NamedSharding(mesh, PartitionSpec()))
