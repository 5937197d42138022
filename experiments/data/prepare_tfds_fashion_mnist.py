"""Opt-in: prepare TFDS's official `fashion_mnist` from Debian's files, without downloading.

Debian's `dataset-fashion-mnist` stores the published deflate streams under a rewritten gzip header.
This restores the original headers (FNAME flag, original file name and mtime), checks the four files
against TFDS's registered sizes and SHA-256, writes them into a manual_dir, and (where tensorflow is
installed, which TFDS needs to extract and encode) runs the builder with
`DownloadConfig(manual_dir=...)` in the array_record format that `tfds.data_source` reads.

  python experiments/data/prepare_tfds_fashion_mnist.py --data_dir ~/tensorflow_datasets
  # then: gmmjax.data.load("fashion_mnist", source="tfds", tfds_data_dir="~/tensorflow_datasets")
"""

import argparse
import importlib.util
import os
import pathlib
import sys

from gmmjax import data


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--src", default="/usr/share/datasets/fashion-mnist",
                      help="folder with Debian's *-ubyte.gz files")
  parser.add_argument("--data_dir", default=os.path.expanduser("~/tensorflow_datasets"),
                      help="TFDS data directory to prepare into")
  parser.add_argument("--manual_dir", default=None, help="where to write the restored files "
                      "(default: DATA_DIR/downloads/manual)")
  parser.add_argument("--files_only", action="store_true", help="only write the restored files")
  args = parser.parse_args(argv)

  data_dir = pathlib.Path(args.data_dir).expanduser()
  manual_dir = pathlib.Path(args.manual_dir) if args.manual_dir else data_dir / "downloads" / "manual"
  digests = data.prepare_tfds_manual_dir(args.src, manual_dir)
  for name, digest in sorted(digests.items()):
    print(f"{manual_dir / name}  sha256 {digest}  (matches TFDS's registered checksum)")
  if args.files_only:
    return 0
  if importlib.util.find_spec("tensorflow") is None:
    print("tensorflow is not installed: TFDS needs it to extract and encode the images. Install it "
          "(`pip install tensorflow`) and rerun, or use gmmjax.data.load('fashion_mnist', source='local'), "
          "which reads the same files with numpy.", file=sys.stderr)
    return 1
  import tensorflow_datasets as tfds
  builder = tfds.builder("fashion_mnist", data_dir=str(data_dir))
  builder.download_and_prepare(
      file_format="array_record",
      download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
  print(f"Prepared {builder.info.full_name} in {data_dir}: {builder.info.splits}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
