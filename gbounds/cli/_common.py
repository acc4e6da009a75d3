"""Helpers shared by the CLI modules: output directories and progress bars."""

from __future__ import annotations

import os
import pathlib
import tempfile

from gbounds import _errors
from gbounds._io import atomic_write_json as atomic_write_json  # noqa: F401 (re-export)
from gbounds._io import atomic_write_text as atomic_write_text  # noqa: F401 (re-export)


def output_dir(path: str | os.PathLike) -> pathlib.Path:
  """Creates ``path`` if needed and checks that it is writable."""
  p = pathlib.Path(path)
  try:
    p.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=p):
      pass
  except OSError as e:
    _errors.fail("--out", "a writable directory", f"{p} ({e.strerror})")
  return p


def progress(iterable=None, **kwargs):
  """A tqdm progress bar (to stderr), or the plain iterable when tqdm is not installed."""
  try:
    from tqdm.auto import tqdm
  except ImportError:  # pragma: no cover
    return iterable
  return tqdm(iterable, **kwargs)
