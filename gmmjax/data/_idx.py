"""IDX files (the MNIST family's format), read with numpy, and their original gzip headers."""

import gzip
import hashlib
import os
import pathlib
import struct
import zlib

import numpy as np

# IDX magic: two zero bytes, a dtype code (0x08 = uint8), then the number of dimensions.
_UINT8 = 0x08

FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

# Header fields of the files as published (and as registered by TFDS's `fashion_mnist` builder): the
# gzip FNAME flag with the original file name, and these modification times. Debian's package stores
# the same deflate streams under a rewritten 10-byte header.
_ORIGINAL_MTIME = {"train": 1504176606, "t10k": 1504176627}
TFDS_SHA256 = {
    "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
    "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
}
TFDS_SIZES = {
    "train-images-idx3-ubyte.gz": 26421880,
    "train-labels-idx1-ubyte.gz": 29515,
    "t10k-images-idx3-ubyte.gz": 4422102,
    "t10k-labels-idx1-ubyte.gz": 5148,
}


class DatasetFormatError(ValueError):
  """A data file exists but cannot be used: truncated, of another format, or holding invalid values.

  The message names the file and what is wrong with it.
  """


# What a damaged or foreign .gz raises: EOFError (truncated), gzip.BadGzipFile (not gzip), zlib.error.
GZIP_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error)


def read_gzip(path: pathlib.Path) -> bytes:
  """The decompressed bytes of `path`, or DatasetFormatError naming it."""
  try:
    return gzip.decompress(path.read_bytes())
  except GZIP_ERRORS as e:
    raise DatasetFormatError(f"{path}: not a complete gzip file ({type(e).__name__}: {e}); the file is "
                             "truncated or of another format. Download or copy it again.") from e


def find_idx_file(directory: os.PathLike, stem: str) -> pathlib.Path | None:
  """Returns `directory/stem.gz` or `directory/stem` (uncompressed), whichever exists, else None."""
  directory = pathlib.Path(directory)
  for candidate in (directory / f"{stem}.gz", directory / stem):
    if candidate.is_file():
      return candidate
  return None


def read_idx(path: os.PathLike) -> np.ndarray:
  """Reads an unsigned-byte IDX file (gzip-compressed or not).

  Args:
    path: an IDX file; `.gz` files are decompressed on the fly.

  Returns:
    uint8 array with the shape stored in the header, e.g. [n, 28, 28] for images, [n] for labels.

  Raises:
    DatasetFormatError: (a ValueError) a damaged `.gz`, a header that is not an unsigned-byte IDX header
      or is cut short, or a payload of the wrong size; the message names the file.
  """
  path = pathlib.Path(path)
  raw = read_gzip(path) if path.suffix == ".gz" else path.read_bytes()
  if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != _UINT8:
    raise DatasetFormatError(f"{path} is not an unsigned-byte IDX file (header {raw[:4]!r}).")
  ndim = raw[3]
  offset = 4 + 4 * ndim
  if len(raw) < offset:
    raise DatasetFormatError(f"{path}: the IDX header of a {ndim}-d array needs {offset} bytes, the file has "
                             f"{len(raw)}.")
  shape = struct.unpack(f">{ndim}I", raw[4:offset])
  expected = int(np.prod(shape))
  if len(raw) - offset != expected:
    raise DatasetFormatError(f"{path}: header says {expected} bytes of data, found {len(raw) - offset}.")
  return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(shape)


def restore_gzip_header(data: bytes, name: str) -> bytes:
  """Rewrites the 10-byte gzip header of a Fashion-MNIST file to the one it was published with.

  The compressed stream is unchanged; only the flags (FNAME), the modification time and the stored
  original file name are restored, which makes the bytes (and their SHA-256) identical to the files
  TFDS registers.

  Args:
    data: the bytes of a `.gz` file whose header carries no file name.
    name: the file name without `.gz`, e.g. "train-images-idx3-ubyte".

  Returns:
    The file's bytes with the original header.
  """
  if data[:3] != b"\x1f\x8b\x08":
    raise ValueError(f"{name}: not a deflate gzip stream.")
  if data[3] != 0:
    raise ValueError(f"{name}: gzip header already has flags {data[3]:#x}; expected a bare header.")
  mtime = _ORIGINAL_MTIME[name.split("-", 1)[0]]
  header = b"\x1f\x8b\x08\x08" + struct.pack("<I", mtime) + data[8:10] + name.encode("ascii") + b"\x00"
  return header + data[10:]


def prepare_tfds_manual_dir(src_dir: os.PathLike, dst_dir: os.PathLike) -> dict[str, str]:
  """Writes the four Fashion-MNIST files with their original gzip headers into `dst_dir`.

  The result can be given to TFDS as `tfds.download.DownloadConfig(manual_dir=dst_dir)`. Each file's
  size and SHA-256 is checked against TFDS's registered values before anything is written.

  Args:
    src_dir: folder with Debian's `*-ubyte.gz` files (e.g. /usr/share/datasets/fashion-mnist).
    dst_dir: folder to write into (created if needed).

  Returns:
    {file name: sha256 hex digest} of the written files.
  """
  src_dir, dst_dir = pathlib.Path(src_dir), pathlib.Path(dst_dir)
  restored = {}
  for stem in sum(FASHION_MNIST_FILES.values(), ()):
    file_name = f"{stem}.gz"
    src = src_dir / file_name
    if not src.is_file():
      raise FileNotFoundError(f"{src} not found.")
    data = src.read_bytes()
    if data[3] != 0:  # Already carries a name: keep as is, the checksum decides.
      fixed = data
    else:
      fixed = restore_gzip_header(data, stem)
    digest = hashlib.sha256(fixed).hexdigest()
    if len(fixed) != TFDS_SIZES[file_name] or digest != TFDS_SHA256[file_name]:
      raise ValueError(f"{src}: restored file has size {len(fixed)} and sha256 {digest}, which do not "
                       f"match TFDS's registered {TFDS_SIZES[file_name]} / {TFDS_SHA256[file_name]}.")
    restored[file_name] = fixed
  dst_dir.mkdir(parents=True, exist_ok=True)
  for file_name, data in restored.items():
    (dst_dir / file_name).write_bytes(data)
  return {n: hashlib.sha256(d).hexdigest() for n, d in restored.items()}
