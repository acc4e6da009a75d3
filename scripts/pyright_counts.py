"""Runs pyright (configured in pyproject.toml [tool.pyright]) and prints its error counts per
subpackage, per file and per rule, so the type-checking backlog can be tracked.

Usage: .venv/bin/python scripts/pyright_counts.py [--files] [--rules]
"""

from __future__ import annotations

import argparse
import collections
import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--files", action="store_true", help="also count per file")
  parser.add_argument("--rules", action="store_true", help="also count per rule")
  args = parser.parse_args(argv)
  bin_dir = pathlib.Path(sys.executable).parent
  proc = subprocess.run([str(bin_dir / "pyright"), "--outputjson", "--pythonpath", sys.executable],
                        cwd=ROOT, capture_output=True, text=True)
  report = json.loads(proc.stdout)
  errors = [d for d in report["generalDiagnostics"] if d["severity"] == "error"]
  by_pkg: collections.Counter[str] = collections.Counter()
  by_file: collections.Counter[str] = collections.Counter()
  by_rule: collections.Counter[str] = collections.Counter()
  for d in errors:
    rel = pathlib.Path(d["file"]).resolve().relative_to(ROOT).as_posix()
    parts = rel.split("/")
    by_pkg[parts[1] if len(parts) > 2 else rel] += 1
    by_file[rel] += 1
    by_rule[d.get("rule", "?")] += 1
  print(f"pyright: {len(errors)} errors in {report['summary']['filesAnalyzed']} files")
  for title, counter, show in (("subpackage", by_pkg, True), ("file", by_file, args.files),
                               ("rule", by_rule, args.rules)):
    if show:
      print(f"\nper {title}:")
      for name, n in counter.most_common():
        print(f"  {n:5d}  {name}")
  return 1 if errors else 0


if __name__ == "__main__":
  sys.exit(main())
