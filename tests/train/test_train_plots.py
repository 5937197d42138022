"""PNG learning curves and image grids."""

import numpy as np
import pytest

from gmmjax.train import plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_image_grid_layout():
  images = np.arange(5 * 2 * 3, dtype=np.float32).reshape(5, 2, 3, 1)
  grid = plots.image_grid(images, ncols=3, pad=1)
  assert grid.shape == (2 * 3 + 1, 3 * 4 + 1)
  np.testing.assert_array_equal(grid[1:3, 1:4], images[0, ..., 0])
  np.testing.assert_array_equal(grid[1:3, 9:12], images[2, ..., 0])  # Row 0, column 2.
  np.testing.assert_array_equal(grid[4:6, 5:8], images[4, ..., 0])  # Row 1, column 1.
  with pytest.raises(ValueError, match="Expected images"):
    plots.image_grid(np.zeros((3, 4)))


def test_pngs_are_written(tmp_path):
  records = [{"step": s, "split": "train", "loss": 1.0 / s} for s in range(1, 30)]
  records += [{"step": 10, "split": "eval", "loss": 0.2}, {"step": 20, "split": "eval", "loss": 0.1}]
  curves = plots.plot_learning_curves(records, tmp_path / "curves.png", log_y=True, smooth=3)
  grid = plots.plot_image_grid(np.random.default_rng(0).random((10, 8, 8, 1)), tmp_path / "sub" / "g.png")
  for path in (curves, grid):
    assert path.read_bytes()[:8] == PNG_SIGNATURE and path.stat().st_size > 1000
  with pytest.raises(ValueError, match="No records"):
    plots.plot_learning_curves([], tmp_path / "x.png")
