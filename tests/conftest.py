"""Test-suite configuration: float64 available (tests pick float32 or float64 explicitly)."""

import os

import jax
import pytest

jax.config.update("jax_enable_x64", True)

SHARED_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")


@pytest.fixture(scope="session")
def data_root():
  """The offline data directory: $GBOUNDS_DATA_DIR, else ../shared/data beside the clone."""
  root = os.environ.get("GBOUNDS_DATA_DIR") or os.path.abspath(SHARED_DATA)
  if not os.path.isdir(os.path.join(root, "mnist")):
    pytest.fail(f"data directory {root} has no mnist/ folder; set GBOUNDS_DATA_DIR")
  return root
