"""The ``gbounds`` command line: a thin dispatcher over one module per command group.

Each module in :data:`_COMMAND_MODULES` (``gbounds/cli/_<name>.py``) exposes
``register(subparsers)``, which adds its subcommands with ``set_defaults(func=...)``;
``func(args)`` returns the process exit code.

User errors exit with status 2 and one line on stderr that names the flag and says what was
expected, never a traceback: command-line syntax errors (argparse's, shortened to one line with a
pointer to ``--help``) and every :class:`gbounds.GBoundsError` raised by the library
(:class:`~gbounds.InvalidInputError`, :class:`~gbounds.CorruptFileError`,
:class:`~gbounds.StoreLockedError`, :class:`~gbounds.DataNotFoundError`, ...). When such an
error names an argument that is also a flag of the command (``learning_rate`` and
``--learning-rate``), the line names the flag. Any other exception is a bug and keeps its
traceback.
"""

from __future__ import annotations

import argparse
import importlib
import re
import sys

from gbounds._src import errors as _errors

_COMMAND_MODULES: tuple[str, ...] = (
    "_activation",
    "_main",
    "_fcmi",
    "_analyze",
    "_manifold",
    "_weights",
    "_sample_info",
)

# Library argument names that stand for a differently named flag (used only when the running
# command has that flag).
_FLAG_ALIASES: dict[str, str] = {"overrides": "--set", "config": "--config",
                                 "recipe": "--recipe", "checkpoint": "--checkpoint",
                                 "out_dir": "--out", "data_dir": "--data-dir"}


class _Parser(argparse.ArgumentParser):
  """An ``ArgumentParser`` whose usage errors are one line: the problem and where to look."""

  def error(self, message: str):  # noqa: D102 -- argparse API
    self.exit(2, f"{self.prog}: error: {_one_line(message)} (see '{self.prog} --help')\n")


def _one_line(text: object) -> str:
  return " ".join(str(text).split())


def build_parser() -> argparse.ArgumentParser:
  """The ``gbounds`` argument parser with every command group's subcommands.

  Returns:
    The parser (usage errors exit with status 2 and one line).
  """
  parser = _Parser(
      prog="gbounds",
      description="Memorization diagnostics and information-theoretic generalization bounds.")
  sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
  sub.required = True
  for name in _COMMAND_MODULES:
    importlib.import_module(f"gbounds.cli.{name}").register(sub)
  return parser


def _command_parsers(parser: argparse.ArgumentParser, command: str | None):
  """The parser of ``command`` and its nested subcommand parsers."""
  out, todo = [], []
  for action in parser._actions:  # noqa: SLF001 -- argparse keeps no public list
    if isinstance(action, argparse._SubParsersAction) and command in action.choices:  # noqa: SLF001
      todo.append(action.choices[command])
  while todo:
    p = todo.pop()
    out.append(p)
    for action in p._actions:  # noqa: SLF001
      if isinstance(action, argparse._SubParsersAction):  # noqa: SLF001
        todo.extend(action.choices.values())
  return out


def _flag_for(parser: argparse.ArgumentParser, command: str | None, name: str) -> str | None:
  """The flag (or positional's name) of ``command`` that stands for argument ``name``."""
  flags: dict[str, str] = {}
  options: set[str] = set()
  for p in _command_parsers(parser, command):
    for action in p._actions:  # noqa: SLF001
      if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):  # noqa: SLF001
        continue
      options.update(action.option_strings)
      long = [o for o in action.option_strings if o.startswith("--")]
      if long:
        flags.setdefault(action.dest, long[0])
      elif not action.option_strings:
        flags.setdefault(action.dest, str(action.metavar or action.dest.upper()))
  if name in flags:
    return flags[name]
  alias = _FLAG_ALIASES.get(name)
  return alias if alias in options else None


def _describe(parser: argparse.ArgumentParser, command: str | None, e: BaseException) -> str:
  """One line for a library error, its leading argument name replaced by the flag."""
  text = _one_line(e)
  m = re.match(r"([A-Za-z_][A-Za-z0-9_]*)(?=:|\s\()", text)  # "name: ..." / "name (...): ..."
  if m and isinstance(e, _errors.InvalidInputError):
    flag = _flag_for(parser, command, m.group(1))
    if flag is not None:
      text = flag + text[m.end():]
  return text


def main(argv: list[str] | None = None) -> int:
  """Runs the command line.

  Args:
    argv: the arguments (default ``sys.argv[1:]``).

  Returns:
    The exit status: 0 on success, 2 on a user error (one line on stderr).
  """
  parser = build_parser()
  try:
    args = parser.parse_args(argv)
  except SystemExit as e:  # --help (0) or a usage error (2, already printed as one line)
    return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
  try:
    return int(args.func(args) or 0)
  except _errors.GBoundsError as e:
    print(f"gbounds {args.command}: error: {_describe(parser, args.command, e)}",
          file=sys.stderr)
    return 2


if __name__ == "__main__":  # pragma: no cover
  sys.exit(main())
