"""Executes every notebook in notebooks/ with nbclient (slow tier: each trains networks).

A notebook passes when every cell runs without error (they assert their own claims, e.g. that
the bounds lie above the measured gap); the front-door notebook must also display a figure.
"""

import os
import pathlib

import pytest

NOTEBOOKS = sorted((pathlib.Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_executes(path, data_root, tmp_path, monkeypatch):
  nbformat = pytest.importorskip("nbformat")
  nbclient = pytest.importorskip("nbclient")
  monkeypatch.setenv("GBOUNDS_DATA_DIR", data_root)
  monkeypatch.setenv("MPLBACKEND", "Agg")
  nb = nbformat.read(path, as_version=4)
  client = nbclient.NotebookClient(nb, timeout=900, kernel_name="python3",
                                   resources={"metadata": {"path": str(tmp_path)}})
  client.execute()
  images = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
            if "image/png" in o.get("data", {})]
  if path.stem == "front_door":
    assert images, f"{path.name} shows no figure"
  assert os.path.exists(path)
