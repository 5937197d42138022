"""PNG plots for a run's workdir: learning curves from metrics.jsonl, image grids."""

import os
import pathlib
from collections.abc import Sequence

import numpy as np


def pyplot():
  """matplotlib.pyplot on the file-only Agg backend (no display needed)."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  return plt


def plot_learning_curves(records: Sequence[dict], path: os.PathLike, *, keys: Sequence[str] | None = None,
                         log_y: bool = False, smooth: int = 1) -> pathlib.Path:
  """Plots metrics against step, one panel per metric, train and eval records as separate lines.

  Args:
    records: dicts with "step", optional "split", and scalar metrics (e.g. `read_metrics(workdir)`).
    path: PNG file to write.
    keys: metrics to plot (default: every numeric key of the records).
    log_y: logarithmic y axis (only for panels whose values are all positive).
    smooth: moving-average window for train curves.

  Returns:
    The written path.
  """
  if not records:
    raise ValueError("No records to plot.")
  if keys is None:
    keys = sorted({k for r in records for k, v in r.items()
                   if k not in ("step", "split") and isinstance(v, (int, float))})
  plt = pyplot()
  fig, axes = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.2), squeeze=False)
  for ax, name in zip(axes[0], keys):
    for split in sorted({r.get("split", "train") for r in records}, key=lambda s: (s != "train", s)):
      rows = [(r["step"], r[name]) for r in records if r.get("split", "train") == split and name in r]
      if not rows:
        continue
      steps, values = np.asarray(rows, dtype=np.float64).T
      if split == "train" and smooth > 1 and len(values) >= smooth:
        values = np.convolve(values, np.ones(smooth) / smooth, mode="valid")
        steps = steps[smooth - 1:]
      ax.plot(steps, values, label=split, marker="o" if split != "train" else None, markersize=3)
    ax.set_title(name)
    ax.set_xlabel("step")
    if log_y and all(r[name] > 0 for r in records if name in r):
      ax.set_yscale("log")
    ax.legend()
    ax.grid(alpha=0.3)
  fig.tight_layout()
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path


def image_grid(images: np.ndarray, *, ncols: int | None = None, pad: int = 1) -> np.ndarray:
  """Tiles images [n, h, w] or [n, h, w, c] (c in {1, 3}) into one array [H, W] or [H, W, c]."""
  images = np.asarray(images)
  if images.ndim == 4 and images.shape[-1] == 1:
    images = images[..., 0]
  if images.ndim not in (3, 4) or len(images) == 0:
    raise ValueError(f"Expected images [n, h, w] or [n, h, w, c], got shape {images.shape}.")
  n, h, w = images.shape[:3]
  ncols = ncols or int(np.ceil(np.sqrt(n)))
  nrows = -(-n // ncols)
  grid = np.full((nrows * (h + pad) + pad, ncols * (w + pad) + pad, *images.shape[3:]),
                 images.max() if images.size else 0, dtype=images.dtype)
  for i, image in enumerate(images):
    r, c = divmod(i, ncols)
    grid[pad + r * (h + pad):pad + r * (h + pad) + h, pad + c * (w + pad):pad + c * (w + pad) + w] = image
  return grid


def plot_image_grid(images: np.ndarray, path: os.PathLike, *, ncols: int | None = None,
                    title: str | None = None, vmin: float | None = None,
                    vmax: float | None = None) -> pathlib.Path:
  """Writes images [n, h, w(, c)] as one tiled PNG (grey colormap for one channel)."""
  grid = image_grid(images, ncols=ncols)
  plt = pyplot()
  fig, ax = plt.subplots(figsize=(max(2.0, grid.shape[1] / 40), max(2.0, grid.shape[0] / 40)))
  ax.imshow(grid, cmap="gray" if grid.ndim == 2 else None, vmin=vmin, vmax=vmax, interpolation="nearest")
  ax.axis("off")
  if title:
    ax.set_title(title)
  fig.tight_layout()
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path
