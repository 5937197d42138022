"""Writes a trained VaDE or GMVAE run's codes of its whole data set (encoder means) to `.npz`.

  python -m experiments.vade.encode --workdir runs/fmnist --out codes.npz

The model, the data set and the parameters come from the run as in `generate.load_trained` (the newest
joint-training checkpoint, read only); the images are the ones the run trained on. The file holds
`codes [n, latent_dim]` float32, `labels [n]`, `epoch` (the checkpoint's joint epoch) and `epochs` (the
joint epochs the run was configured for: more than `epoch` when it was stopped early).
"""

from __future__ import annotations

import argparse
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from . import generate
from . import train as vade_train


def encode(workdir: str | pathlib.Path, seed_index: int = 0) -> dict[str, np.ndarray]:
  """The arrays `main` writes: `codes [n, latent_dim]`, `labels [n]`, `epoch`, `epochs`."""
  config, model, params, epoch = generate.load_trained(workdir, seed_index)
  images, labels, _ = vade_train.load_images(config)
  with jax.default_matmul_precision(config.matmul_precision):
    stacked = jax.tree.map(lambda a: a[None], params)
    codes = vade_train.encode_all(model, stacked, jnp.asarray(images))[0]
  return {"codes": np.asarray(codes, np.float32), "labels": np.asarray(labels), "epoch": np.int32(epoch),
          "epochs": np.int32(config.epochs)}


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--workdir", required=True, help="workdir of an experiments.vade.main run")
  parser.add_argument("--out", required=True, help="output .npz path")
  parser.add_argument("--seed_index", type=int, default=0, help="which trained seed of the run")
  args = parser.parse_args(argv)
  arrays = encode(args.workdir, args.seed_index)
  out = pathlib.Path(args.out)
  out.parent.mkdir(parents=True, exist_ok=True)
  np.savez_compressed(out, **arrays)
  print(f"wrote the codes {arrays['codes'].shape} of joint epoch {arrays['epoch']} of {arrays['epochs']} "
        f"to {out}")


if __name__ == "__main__":
  main()
