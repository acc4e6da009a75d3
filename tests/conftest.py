"""Test-suite configuration.

* ``GBOUNDS_TEST_X64`` (default ``1``): float64 available (tests pick float32 or float64
  explicitly); ``0`` runs the suite with x64 off, where tests marked ``x64`` are skipped.
* ``GBOUNDS_TEST_STRICT`` (default ``1``): numerics as strict as equinox's suite,
  ``jax_numpy_dtype_promotion="strict"`` and ``jax_numpy_rank_promotion="raise"``, so that no
  library function relies on implicit dtype or rank promotion; ``0`` turns it off for debugging.
"""

import os

import jax
import pytest

X64 = os.environ.get("GBOUNDS_TEST_X64", "1") != "0"
jax.config.update("jax_enable_x64", X64)
if os.environ.get("GBOUNDS_TEST_STRICT", "1") != "0":
  jax.config.update("jax_numpy_dtype_promotion", "strict")
  jax.config.update("jax_numpy_rank_promotion", "raise")


def pytest_collection_modifyitems(config, items):
  """Skips tests marked ``x64`` when the suite runs with x64 off."""
  if X64:
    return
  skip = pytest.mark.skip(reason="needs float64 (GBOUNDS_TEST_X64=0)")
  for item in items:
    if "x64" in item.keywords:
      item.add_marker(skip)

SHARED_DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data")


@pytest.fixture(scope="session")
def data_root():
  """The offline data directory: $GBOUNDS_DATA_DIR, else ../shared/data beside the clone."""
  root = os.environ.get("GBOUNDS_DATA_DIR") or os.path.abspath(SHARED_DATA)
  if not os.path.isdir(os.path.join(root, "mnist")):
    pytest.fail(f"data directory {root} has no mnist/ folder; set GBOUNDS_DATA_DIR")
  return root
