"""Compares two ``gbounds reproduce`` output directories number by number.

Every number in ``report.json`` (recursively, except wall-clock ``seconds`` fields) and every
cell of the CSV files present in both directories must agree to ``--tol`` (relative and absolute);
strings and booleans must be equal. Used to check that a refactoring left the reproduced numbers
unchanged::

    python benchmarks/compare_reports.py /work/baseline/sup /tmp/h6_sup
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import pathlib
import sys

_TIMING_KEYS = ("seconds",)


def _is_number(v) -> bool:
  return isinstance(v, (int, float)) and not isinstance(v, bool)


def _close(a: float, b: float, tol: float) -> bool:
  if math.isnan(a) or math.isnan(b):
    return math.isnan(a) and math.isnan(b)
  return abs(a - b) <= tol * max(1.0, abs(a), abs(b))


def compare_json(a, b, path: str, tol: float, out: list[str]) -> int:
  """Appends every difference of two JSON values to ``out``; returns the numbers compared."""
  if isinstance(a, dict) and isinstance(b, dict):
    count = 0
    for k in sorted(set(a) | set(b)):
      if k in _TIMING_KEYS or k.startswith("seconds_") or k == "versions":
        continue
      if k not in a or k not in b:
        out.append(f"{path}.{k}: only in {'new' if k not in a else 'baseline'}")
        continue
      count += compare_json(a[k], b[k], f"{path}.{k}", tol, out)
    return count
  if isinstance(a, list) and isinstance(b, list):
    if len(a) != len(b):
      out.append(f"{path}: length {len(a)} != {len(b)}")
      return 0
    return sum(compare_json(x, y, f"{path}[{i}]", tol, out) for i, (x, y) in enumerate(zip(a, b)))
  if _is_number(a) and _is_number(b):
    if not _close(float(a), float(b), tol):
      out.append(f"{path}: {a!r} != {b!r}")
    return 1
  if a != b:
    out.append(f"{path}: {a!r} != {b!r}")
  return 0


def _cell(text: str):
  try:
    return float(text)
  except ValueError:
    return text


def compare_csv(a: pathlib.Path, b: pathlib.Path, tol: float, out: list[str]) -> int:
  """Appends every differing cell of two CSV files to ``out``; returns the numbers compared."""
  ra = list(csv.reader(a.open()))
  rb = list(csv.reader(b.open()))
  rows = [[_cell(c) for c in r] for r in ra]
  rows_b = [[_cell(c) for c in r] for r in rb]
  return compare_json(rows, rows_b, a.name, tol, out)


def main(argv: list[str] | None = None) -> int:
  """Compares ``baseline`` with ``new``; returns 0 when every number agrees, else 1.

  Args:
    argv: command-line arguments (``baseline new [--tol TOL]``).

  Returns:
    The process exit status.
  """
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("baseline", type=pathlib.Path)
  p.add_argument("new", type=pathlib.Path)
  p.add_argument("--tol", type=float, default=1e-6)
  args = p.parse_args(argv)
  diffs: list[str] = []
  count = compare_json(json.loads((args.baseline / "report.json").read_text()),
                       json.loads((args.new / "report.json").read_text()), "report.json",
                       args.tol, diffs)
  for f in sorted(args.baseline.glob("*.csv")):
    g = args.new / f.name
    if not g.exists():
      diffs.append(f"{f.name}: missing in {args.new}")
      continue
    count += compare_csv(f, g, args.tol, diffs)
  for d in diffs:
    print(d)
  print(f"{count} numbers compared, {len(diffs)} differences (tol {args.tol:g})")
  return 1 if diffs else 0


if __name__ == "__main__":
  sys.exit(main())
