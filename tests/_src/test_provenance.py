"""Provenance (gbounds._src.provenance) and the version written once, in pyproject.toml."""

import hashlib
import importlib.metadata
import pathlib
import platform
import tomllib

import numpy as np

import gbounds
from gbounds._src import provenance

ROOT = pathlib.Path(__file__).resolve().parents[2]


def test_version_comes_from_installed_metadata():
  assert gbounds.__version__ == importlib.metadata.version("gbounds")
  assert provenance.package_version() == gbounds.__version__


def test_version_is_written_once_in_pyproject():
  pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
  assert pyproject["project"]["version"] == gbounds.__version__, (
      "installed metadata is stale: reinstall (pip install -e .)")
  init = (ROOT / "gbounds" / "__init__.py").read_text()
  assert pyproject["project"]["version"] not in init


def test_package_version_fallback_when_not_installed(monkeypatch):
  def missing(name):
    raise importlib.metadata.PackageNotFoundError(name)

  monkeypatch.setattr(importlib.metadata, "version", missing)
  assert provenance.package_version() == "0+unknown"
  v = provenance.versions()
  assert v["gbounds"] == "0+unknown" and v["jax"] == "absent"


def test_versions():
  v = provenance.versions()
  assert set(v) == {"gbounds", "python", "jax", "jaxlib", "flax", "optax", "numpy"}
  assert v["python"] == platform.python_version()
  assert v["numpy"] == np.__version__
  import jax
  assert v["jax"] == jax.__version__


def _reference_fingerprint(*arrays):
  h = hashlib.sha256()
  for a in arrays:
    a = np.ascontiguousarray(a)
    h.update(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())
  return h.hexdigest()[:16]


def test_array_fingerprint():
  a = np.arange(6, dtype=np.float32).reshape(2, 3)
  b = np.array([1, 2], np.int64)
  fp = provenance.array_fingerprint(a, b)
  assert fp == _reference_fingerprint(a, b)
  assert len(fp) == 16 and int(fp, 16) >= 0
  # non-contiguous views hash like their contiguous copies; jax arrays like numpy ones
  assert provenance.array_fingerprint(a.T) == _reference_fingerprint(np.ascontiguousarray(a.T))
  import jax.numpy as jnp
  assert provenance.array_fingerprint(jnp.asarray(a)) == provenance.array_fingerprint(a)
  # dtype, shape and order all change it
  assert provenance.array_fingerprint(a.astype(np.int32)) != provenance.array_fingerprint(a)
  assert provenance.array_fingerprint(a.reshape(3, 2)) != provenance.array_fingerprint(a)
  assert provenance.array_fingerprint(b, a) != fp
  assert provenance.array_fingerprint() == hashlib.sha256().hexdigest()[:16]
