"""Results on disk: atomic JSON/text/npz writes (temporary file + ``os.replace``), checked reads.

A reader never sees a half-written file: each writer creates a temporary file
``.<name>.<random>.tmp`` in the target's directory, writes and ``fsync``\\ s it, and renames it
over the target, which POSIX makes atomic; the directory is then ``fsync``\\ ed so that the
rename survives a power loss. A writer killed mid-write (``SIGKILL``, power loss) leaves only
such a temporary file behind, never a truncated target: :func:`temporaries` lists them and
:func:`temporary_target` names the file each one was for, so that the owner of a directory can
remove them when it resumes (see :mod:`gbounds.supersample._supersample`).

Reads of files that may be damaged (:func:`read_npz`, :func:`read_json`) raise
:class:`gbounds._src.errors.CorruptFileError` naming the file, whatever the damage (truncated, not a
zip archive, a checksum mismatch, not JSON), instead of a bare ``BadZipFile`` or ``EOFError``.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import pathlib
import re
import tempfile
import zipfile
import zlib
from typing import Any

import numpy as np

from gbounds._src import errors as _errors

# `.<target name>.<random part>.tmp` (mkstemp's random part has no dots); `.tmp.npz` is the
# suffix of earlier versions' npz temporaries.
_TEMP_RE = re.compile(r"^\.(?P<target>.+)\.[^./]+\.tmp(?:\.npz)?$")


def _default(o: Any):
  if isinstance(o, np.generic):
    return o.item()
  if isinstance(o, np.ndarray) or hasattr(o, "__array__"):
    return np.asarray(o).tolist()
  if hasattr(o, "name") and hasattr(o, "value"):  # enums
    return o.name.lower()
  raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def _write_all(f, data: bytes) -> None:
  """Writes ``data`` to the open temporary file ``f`` (one place, so tests can slow it down)."""
  f.write(data)


def _fsync_dir(directory: pathlib.Path) -> None:
  try:
    fd = os.open(directory, os.O_RDONLY)
  except OSError:  # pragma: no cover (platforms without directory handles)
    return
  try:
    os.fsync(fd)
  except OSError:  # pragma: no cover
    pass
  finally:
    os.close(fd)


def _umask() -> int:
  """The process umask, read without changing it where the OS allows (Linux /proc)."""
  try:
    with open("/proc/self/status") as f:
      for line in f:
        if line.startswith("Umask:"):
          return int(line.split()[1], 8)
  except OSError:  # pragma: no cover
    pass
  return 0o022  # pragma: no cover (the usual default where /proc is absent)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> str:
  """Writes ``data`` to ``path`` through a temporary file and ``os.replace``.

  Returns:
    The SHA-256 hex digest of ``data`` (what a reader can check the file against).
  """
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
  try:
    # mkstemp creates 0600; give the result the mode a plain open() would have.
    os.fchmod(fd, 0o666 & ~_umask())
    with os.fdopen(fd, "wb") as f:
      _write_all(f, data)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    try:
      os.unlink(tmp)
    except OSError:
      pass
    raise
  _fsync_dir(path.parent)
  return hashlib.sha256(data).hexdigest()


def atomic_write_text(path: str | os.PathLike, text: str) -> str:
  """Writes ``text`` (UTF-8) to ``path`` atomically; returns its SHA-256 hex digest."""
  return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> str:
  """Writes ``obj`` as indented JSON atomically; returns the file's SHA-256 hex digest."""
  return atomic_write_text(path, json.dumps(obj, indent=2, default=_default) + "\n")


def npz_bytes(**arrays: Any) -> bytes:
  """The bytes of an uncompressed ``.npz`` archive of ``arrays``."""
  buf = io.BytesIO()
  # numpy's stub lets **kwds reach allow_pickle: bool; every key here is an array name.
  np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})  # pyright: ignore[reportArgumentType]
  return buf.getvalue()


def atomic_write_npz(path: str | os.PathLike, **arrays: Any) -> str:
  """Writes ``arrays`` to ``path`` (a ``.npz``) atomically; returns its SHA-256 hex digest."""
  return atomic_write_bytes(path, npz_bytes(**arrays))


def sha256_file(path: str | os.PathLike) -> str:
  return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def _corrupt(path: pathlib.Path, expected: str, got: str) -> None:
  raise _errors.CorruptFileError(f"{path}: expected {expected}, got {got} instead.")


def read_npz(path: str | os.PathLike, *, sha256: str | None = None) -> dict[str, np.ndarray]:
  """Reads every array of a ``.npz`` file (no pickles), checking it end to end.

  Args:
    path: the file.
    sha256: its expected SHA-256 hex digest, when the writer recorded one.

  Raises:
    CorruptFileError: the file is absent, truncated, not a zip archive, fails a member's CRC or
      the checksum, or holds something that is not an array; the message names the file.
  """
  path = pathlib.Path(path)
  try:
    data = path.read_bytes()
  except FileNotFoundError:
    _corrupt(path, "an existing .npz file", "no such file")
  except OSError as e:
    _corrupt(path, "a readable .npz file", f"{type(e).__name__}: {e}")
  if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
    _corrupt(path, f"the recorded SHA-256 {sha256[:12]}...",
             f"{hashlib.sha256(data).hexdigest()[:12]}... ({len(data)} bytes; truncated or "
             f"modified)")
  if not data.startswith(b"PK"):
    _corrupt(path, "a .npz (zip) archive",
             f"{'an empty file' if not data else 'a file that is not a zip archive'} "
             f"({len(data)} bytes, starting {data[:8]!r})")
  try:
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
      return {k: np.asarray(z[k]) for k in z.files}
  except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, KeyError,
          AttributeError) as e:
    _corrupt(path, "a complete .npz archive of arrays",
             f"{type(e).__name__}: {e} ({len(data)} bytes)")
  raise AssertionError("unreachable")  # pragma: no cover


def read_json(path: str | os.PathLike) -> Any:
  """Reads a JSON file; a missing, unreadable or malformed file raises CorruptFileError."""
  path = pathlib.Path(path)
  try:
    return json.loads(path.read_text(encoding="utf-8"))
  except FileNotFoundError:
    _corrupt(path, "an existing JSON file", "no such file")
  except (OSError, UnicodeDecodeError, ValueError) as e:
    _corrupt(path, "a complete JSON document", f"{type(e).__name__}: {e}")
  raise AssertionError("unreachable")  # pragma: no cover


def temporary_target(name: str) -> str | None:
  """The file name a temporary file ``name`` of these writers was for, or None."""
  m = _TEMP_RE.match(name)
  return None if m is None else m.group("target")


def temporaries(directory: str | os.PathLike) -> list[tuple[pathlib.Path, str]]:
  """``(temporary file, target name)`` for every temporary file of these writers in a folder.

  A temporary file outlives its writer only when the writer was killed mid-write; whoever owns
  the directory (holds its lock) may delete the ones whose targets it writes.
  """
  directory = pathlib.Path(directory)
  out = []
  for p in sorted(directory.iterdir()):
    target = temporary_target(p.name)
    if target is not None and p.is_file():
      out.append((p, target))
  return out


def new_figure(*, figsize: tuple[float, float] = (6.4, 4.8), nrows: int = 1, ncols: int = 1,
               **subplot_kw: Any):
  """A matplotlib ``Figure`` and its ``Axes`` built without pyplot, so no backend is selected
  and a Jupyter user's backend is left alone (``matplotlib.use`` is never called).

  Args:
    figsize: figure size in inches.
    nrows: rows of axes.
    ncols: columns of axes.
    **subplot_kw: passed to ``Figure.subplots``.

  Returns:
    ``(figure, axes)`` as ``Figure.subplots`` returns them.
  """
  from matplotlib.figure import Figure
  fig = Figure(figsize=figsize)
  axes = fig.subplots(nrows, ncols, **subplot_kw)
  return fig, axes


def figure_png(fig: Any, *, dpi: int = 110, **savefig_kw: Any) -> bytes:
  """Renders a matplotlib figure to PNG bytes (Agg canvas; no global backend change).

  Args:
    fig: a ``matplotlib.figure.Figure``.
    dpi: resolution.
    **savefig_kw: passed to ``Figure.savefig`` (e.g. ``bbox_inches="tight"``).

  Returns:
    The PNG file's bytes.
  """
  from matplotlib.backends.backend_agg import FigureCanvasAgg
  if fig.canvas is None or not isinstance(fig.canvas, FigureCanvasAgg):
    FigureCanvasAgg(fig)
  buf = io.BytesIO()
  fig.savefig(buf, format="png", dpi=dpi, **savefig_kw)
  return buf.getvalue()


def atomic_write_figure(path: str | os.PathLike, fig: Any, *, dpi: int = 110,
                        **savefig_kw: Any) -> str:
  """Writes a figure as PNG atomically (see :func:`atomic_write_bytes`).

  Args:
    path: target ``.png`` path.
    fig: a ``matplotlib.figure.Figure``.
    dpi: resolution.
    **savefig_kw: passed to ``Figure.savefig``.

  Returns:
    The SHA-256 hex digest of the bytes written (as every atomic writer here returns).
  """
  return atomic_write_bytes(path, figure_png(fig, dpi=dpi, **savefig_kw))
