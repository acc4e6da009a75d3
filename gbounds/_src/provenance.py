"""Provenance: the installed version and the versions of the numeric stack, array fingerprints."""

from __future__ import annotations

import hashlib
import importlib.metadata
import platform
from typing import Any

import numpy as np

__all__ = ["array_fingerprint", "package_version", "versions"]


def package_version() -> str:
  """The installed version of gbounds (from its distribution metadata).

  Returns:
    The version string, or ``"0+unknown"`` when gbounds runs from an uninstalled tree.
  """
  try:
    return importlib.metadata.version("gbounds")
  except importlib.metadata.PackageNotFoundError:
    return "0+unknown"


def versions() -> dict[str, str]:
  """Versions of gbounds, Python and the numeric stack, for result files.

  Returns:
    ``{"gbounds": ..., "python": ..., "jax": ..., "jaxlib": ..., "flax": ..., "numpy": ...}``.
  """
  out = {"gbounds": package_version(), "python": platform.python_version()}
  for name in ("jax", "jaxlib", "flax", "optax", "numpy"):
    try:
      out[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      out[name] = "absent"
  return out


def array_fingerprint(*arrays: Any) -> str:
  """A SHA-256 over the dtypes, shapes and bytes of ``arrays`` (first 16 hex digits).

  Args:
    *arrays: array-likes.

  Returns:
    A 16-character hexadecimal digest.
  """
  h = hashlib.sha256()
  for a in arrays:
    a = np.ascontiguousarray(np.asarray(a))
    h.update(f"{a.dtype.str}{a.shape}".encode())
    h.update(a.tobytes())
  return h.hexdigest()[:16]
