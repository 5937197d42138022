"""Data sets as numpy arrays (TFDS or local files) and seeded, resumable mini-batches.

  ds = gmmjax.data.load("fashion_mnist", split="all")        # ds.images [70000, 28, 28, 1] float32 in [0, 1]
  ds.info.source                                              # "tfds" or "local"
  for images, labels in gmmjax.data.load("mnist_5k", batch_size=128, seed=0, epochs=2): ...
  batch = gmmjax.data.get_batch((ds.images, ds.labels), step, 128, seed=0)  # pure in (seed, step)
"""

from ._batching import batch_indices as batch_indices
from ._batching import batches as batches
from ._batching import get_batch as get_batch
from ._batching import steps_per_epoch as steps_per_epoch
from ._idx import DatasetFormatError as DatasetFormatError
from ._idx import prepare_tfds_manual_dir as prepare_tfds_manual_dir
from ._idx import read_idx as read_idx
from ._idx import restore_gzip_header as restore_gzip_header
from ._load import FASHION_MNIST_CLASSES as FASHION_MNIST_CLASSES
from ._load import IMAGE_SHAPES as IMAGE_SHAPES
from ._load import NAMES as NAMES
from ._load import Batches as Batches
from ._load import Dataset as Dataset
from ._load import DatasetInfo as DatasetInfo
from ._load import DatasetNotFoundError as DatasetNotFoundError
from ._load import load as load

__all__ = [
    "FASHION_MNIST_CLASSES",
    "IMAGE_SHAPES",
    "NAMES",
    "Batches",
    "Dataset",
    "DatasetFormatError",
    "DatasetInfo",
    "DatasetNotFoundError",
    "batch_indices",
    "batches",
    "get_batch",
    "load",
    "prepare_tfds_manual_dir",
    "read_idx",
    "restore_gzip_header",
    "steps_per_epoch",
]
