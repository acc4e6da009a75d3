"""The ``gbounds`` command line: a thin dispatcher over one module per command group.

Each module in :data:`_COMMAND_MODULES` (``gbounds/cli/_<name>.py``) exposes
``register(subparsers)``, which adds its subcommands with ``set_defaults(func=...)``;
``func(args)`` returns the process exit code.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from gbounds import _errors

_COMMAND_MODULES: tuple[str, ...] = (
    "_activation",
    "_main",
    "_fcmi",
    "_analyze",
    "_manifold",
    "_weights",
    "_sample_info",
)


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="gbounds",
      description="Memorization diagnostics and information-theoretic generalization bounds.")
  sub = parser.add_subparsers(dest="command", metavar="COMMAND")
  sub.required = True
  for name in _COMMAND_MODULES:
    importlib.import_module(f"gbounds.cli.{name}").register(sub)
  return parser


def main(argv: list[str] | None = None) -> int:
  parser = build_parser()
  args = parser.parse_args(argv)
  try:
    return int(args.func(args) or 0)
  except _errors.GBoundsError as e:
    print(f"gbounds {args.command}: error: {e}", file=sys.stderr)
    return 2


if __name__ == "__main__":  # pragma: no cover
  sys.exit(main())
