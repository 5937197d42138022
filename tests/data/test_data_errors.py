"""gmmjax.data.load on damaged or misplaced files: one error class that names the file, no silent
fallback from a folder the user named."""

import gzip
import shutil
import struct

import numpy as np
import pytest

from gmmjax import data


def _write_idx(path, array):
  header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
  path.write_bytes(gzip.compress(header + np.ascontiguousarray(array, np.uint8).tobytes()))


@pytest.fixture
def idx_dir(tmp_path):
  rng = np.random.default_rng(0)
  for part, n in (("train", 6), ("t10k", 4)):
    _write_idx(tmp_path / f"{part}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
    _write_idx(tmp_path / f"{part}-labels-idx1-ubyte.gz", rng.integers(0, 10, (n,), dtype=np.uint8))
  return tmp_path


@pytest.mark.parametrize("what", ["empty", "missing"])
def test_environment_folder_without_files_fails_naming_it(tmp_path, monkeypatch, what):
  folder = tmp_path / "fmnist"
  if what == "empty":
    folder.mkdir()
  monkeypatch.setenv("GMMJAX_FASHION_MNIST_DIR", str(folder))
  # Never the system copy instead: the user asked for this folder.
  with pytest.raises(data.DatasetNotFoundError, match=f"GMMJAX_FASHION_MNIST_DIR='{folder}'"):
    data.load("fashion_mnist", source="local")


def _damage(path, how):
  raw = path.read_bytes()
  if how == "truncated_gz":
    path.write_bytes(raw[: len(raw) // 2])
  elif how == "foreign_gz":
    path.write_bytes(b"PK\x03\x04 this is a zip file, not gzip" + raw[:40])
  elif how == "corrupt_gz":  # A valid header and a scrambled deflate stream.
    path.write_bytes(raw[:10] + bytes(b ^ 0x5A for b in raw[10:]))
  elif how == "short_header":  # Says 3 dimensions, ends after the first size.
    path.write_bytes(gzip.compress(bytes([0, 0, 0x08, 3]) + struct.pack(">I", 6)))


@pytest.mark.parametrize("how", ["truncated_gz", "foreign_gz", "corrupt_gz", "short_header"])
def test_damaged_idx_file_raises_one_error_naming_it(idx_dir, how):
  path = idx_dir / "train-images-idx3-ubyte.gz"
  _damage(path, how)
  with pytest.raises(ValueError, match=str(path)) as e:
    data.load("fashion_mnist", source="local", data_dir=idx_dir)
  assert isinstance(e.value, data.DatasetFormatError)


def test_labels_outside_the_classes_are_rejected(idx_dir):
  path = idx_dir / "train-labels-idx1-ubyte.gz"
  _write_idx(path, np.array([0, 1, 2, 10, 3, 4], np.uint8))
  with pytest.raises(ValueError, match=rf"{path}.*label 10 at index 3") as e:
    data.load("fashion_mnist", source="local", data_dir=idx_dir)
  assert isinstance(e.value, data.DatasetFormatError)


def _csv(rows):
  return "".join(",".join(str(v) for v in row) + "\n" for row in rows).encode()


@pytest.mark.parametrize("how", ["truncated_gz", "not_numbers", "short_row", "label_11", "pixel_300"])
def test_damaged_mnist_5k_csv_raises_one_error_naming_it(tmp_path, how):
  rows = [[0] * 784 + [3], [255] * 784 + [9]]
  if how == "not_numbers":
    rows[1][5] = "x"
  elif how == "short_row":
    rows = [row[:700] for row in rows]
  elif how == "label_11":
    rows[1][-1] = 11
  elif how == "pixel_300":
    rows[0][0] = 300
  raw = gzip.compress(_csv(rows))
  if how == "truncated_gz":
    raw = raw[: len(raw) // 2]
  path = tmp_path / "mnist_5k.csv.gz"
  path.write_bytes(raw)
  with pytest.raises(ValueError, match=str(path)) as e:
    data.load("mnist_5k", data_dir=tmp_path)
  assert isinstance(e.value, data.DatasetFormatError)


def test_intact_files_still_load(idx_dir, tmp_path):
  assert data.load("fashion_mnist", source="local", data_dir=idx_dir).images.shape == (6, 28, 28, 1)
  csv_dir = tmp_path / "csv"
  csv_dir.mkdir()
  (csv_dir / "mnist_5k.csv.gz").write_bytes(gzip.compress(_csv([[7] * 784 + [4]])))
  ds = data.load("mnist_5k", data_dir=csv_dir)
  assert ds.images.shape == (1, 28, 28, 1) and ds.labels.tolist() == [4]
  shutil.rmtree(csv_dir)
