"""Helpers shared by the CLI modules: output directories and option checks.

Progress bars: :class:`gbounds._src.progress.TqdmCallback` (the one ``callback(done, total)``
convention).

Option checks raise :class:`gbounds.InvalidInputError` whose message starts with the flag
(``"--n: expected an integer >= 2, got 0 instead."``); the dispatcher prints it as one line and
exits with status 2. Commands run them before any data is loaded or any model trained.
"""

from __future__ import annotations

import math
import os
import pathlib

from gbounds._src import errors as _errors
from gbounds._src.io import atomic_write_json as atomic_write_json  # noqa: F401 (re-export)
from gbounds._src.io import atomic_write_text as atomic_write_text  # noqa: F401 (re-export)


def output_dir(path: str | os.PathLike) -> pathlib.Path:
  """Creates ``path`` if needed and checks that it is writable.

  Args:
    path: the directory.

  Returns:
    The directory as a ``pathlib.Path``.
  """
  from gbounds.analysis import check_output_dir  # the one output-directory check (lazy: jax)
  try:
    return check_output_dir(path)
  except _errors.InvalidInputError as e:
    head, sep, rest = str(e).partition(": ")
    raise _errors.InvalidInputError(f"--out: {rest}" if sep and head == "out_dir"
                                    else str(e)) from None


def check_int(flag: str, value, minimum: int, maximum: int | None = None) -> int:
  """An integer option in ``[minimum, maximum]``.

  Args:
    flag: the flag, for the message.
    value: the parsed value.
    minimum, maximum: the range (``maximum`` None: unbounded).

  Returns:
    ``value``.
  """
  if isinstance(value, bool) or not isinstance(value, int) or value < minimum or (
      maximum is not None and value > maximum):
    rng = f">= {minimum}" if maximum is None else f"in [{minimum}, {maximum}]"
    _errors.fail(flag, f"an integer {rng}", repr(value))
  return value


def check_float(flag: str, value, *, low: float = -math.inf, high: float = math.inf,
                low_open: bool = False, high_open: bool = False, finite: bool = True) -> float:
  """A real option in the interval from ``low`` to ``high`` (``*_open``: excluded).

  Args:
    flag: the flag, for the message.
    value: the parsed value.
    low, high: the interval.
    low_open, high_open: exclude the end.
    finite: refuse infinities.

  Returns:
    ``float(value)``.
  """
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
  """argparse ``type`` for a step count: a non-negative integer or ``inf``.

  Args:
    text: the command-line word.

  Returns:
    An ``int`` or ``math.inf``.
  """
  import argparse
  t = str(text).strip().lower()
  if t in ("inf", "infinity"):
    return math.inf
  try:
    return int(t)
  except ValueError:
    raise argparse.ArgumentTypeError(f"expected an integer or 'inf', got {text!r}") from None
