"""Results on disk: atomic JSON/text/npz writes (temporary file + ``os.replace``).

A reader never sees a half-written file: each writer creates a temporary file in the target's
directory and renames it over the target, which POSIX makes atomic.
"""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
import tempfile
from typing import Any

import numpy as np


def _default(o: Any):
  if isinstance(o, np.generic):
    return o.item()
  if isinstance(o, np.ndarray) or hasattr(o, "__array__"):
    return np.asarray(o).tolist()
  if hasattr(o, "name") and hasattr(o, "value"):  # enums
    return o.name.lower()
  raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
  """Writes ``text`` to ``path`` through a temporary file and ``os.replace``."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
  try:
    with os.fdopen(fd, "w") as f:
      f.write(text)
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(OSError):
      os.unlink(tmp)
    raise


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
  atomic_write_text(path, json.dumps(obj, indent=2, default=_default) + "\n")


def atomic_write_npz(path: str | os.PathLike, **arrays: Any) -> None:
  """Writes ``arrays`` to ``path`` (a ``.npz``) atomically."""
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp.npz")
  try:
    with os.fdopen(fd, "wb") as f:
      np.savez(f, **{k: np.asarray(v) for k, v in arrays.items()})
    os.replace(tmp, path)
  except BaseException:
    with contextlib.suppress(OSError):
      os.unlink(tmp)
    raise
