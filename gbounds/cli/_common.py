"""Helpers shared by the CLI modules: output directories, option checks and progress bars.

Option checks raise :class:`gbounds.InvalidInputError` whose message starts with the flag
(``"--n: expected an integer >= 2, got 0 instead."``); the dispatcher prints it as one line and
exits with status 2. Commands run them before any data is loaded or any model trained.
"""

from __future__ import annotations

import math
import os
import pathlib
import tempfile

from gbounds._src import errors as _errors
from gbounds._src.io import atomic_write_json as atomic_write_json  # noqa: F401 (re-export)
from gbounds._src.io import atomic_write_text as atomic_write_text  # noqa: F401 (re-export)


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


def check_int(flag: str, value, minimum: int, maximum: int | None = None) -> int:
  """An integer option in ``[minimum, maximum]``."""
  if isinstance(value, bool) or not isinstance(value, int) or value < minimum or (
      maximum is not None and value > maximum):
    rng = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
    _errors.fail(flag, f"an integer {rng}", repr(value))
  return value


def check_float(flag: str, value, *, low: float = -math.inf, high: float = math.inf,
                low_open: bool = False, high_open: bool = False, finite: bool = True) -> float:
  """A real option in the interval from ``low`` to ``high`` (``*_open``: excluded)."""
  ok = isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)
  if ok:
    ok = ((not finite or math.isfinite(value))
          and (value > low if low_open else value >= low)
          and (value < high if high_open else value <= high))
  if not ok:
    kind = "a finite number" if finite else "a number"
    if math.isinf(low) and math.isinf(high):
      expected = kind
    elif math.isinf(high):
      expected = f"{kind} {'>' if low_open else '>='} {low:g}"
    elif math.isinf(low):
      expected = f"{kind} {'<' if high_open else '<='} {high:g}"
    else:
      expected = (f"a number in {'(' if low_open else '['}{low:g}, {high:g}"
                  f"{')' if high_open else ']'}")
    _errors.fail(flag, expected, repr(value))
  return float(value)


def int_or_inf(text: str):
  """argparse ``type`` for a step count: a non-negative integer or ``inf``."""
  import argparse
  t = str(text).strip().lower()
  if t in ("inf", "infinity"):
    return math.inf
  try:
    return int(t)
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected an integer or 'inf', got {text!r}") from None


def progress(iterable=None, **kwargs):
  """A tqdm progress bar (to stderr), or the plain iterable when tqdm is not installed."""
  try:
    from tqdm.auto import tqdm
  except ImportError:  # pragma: no cover
    return iterable
  return tqdm(iterable, **kwargs)
