"""Every notebook in experiments/notebooks runs top to bottom with the small setting."""

import pathlib

import nbformat
import pytest
from nbclient import NotebookClient

REPO = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((REPO / "experiments" / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks():
  assert any(p.name == "gmm_basics.ipynb" for p in NOTEBOOKS)


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, tmp_path, monkeypatch):
  # The kernel inherits this environment (and this tree's gmmjax through conftest's PYTHONPATH): small
  # setting, no GPU preallocation.
  monkeypatch.setenv("GMMJAX_NOTEBOOK_SMALL", "1")
  monkeypatch.setenv("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
  monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
  nb = nbformat.read(path, as_version=4)
  # Runs in a scratch directory so outputs the notebook writes do not land in the tree.
  client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
  client.execute()  # raises CellExecutionError on the first failing cell
  errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
  assert not errors
