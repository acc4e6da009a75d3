"""Generates the CHANGELOG tables of the restructure (issue 12): every name the package root
exported before it, with its new public path, and every old private module with its new path.

Reads the tree statically (``ast``, no imports, so it works on a tree in mid-edit) and git:

* old root names: the ``from ... import name as name`` lines of ``gbounds/__init__.py`` at
  ``OLD_COMMIT`` (the last commit before the restructure);
* new public paths: the names each ``gbounds/<subpackage>/__init__.py`` in the work tree exports
  (its ``__all__``, else its ``from ... import name as name`` lines) and what the root still
  exports; a name's home is the subpackage whose own private module defines it;
* module moves: git's rename detection between ``OLD_COMMIT`` and the work tree.

Usage::

    python scripts/changelog_names.py            # print the two tables (markdown)
    python scripts/changelog_names.py --write    # replace them in CHANGELOG.md between markers
    python scripts/changelog_names.py --check    # exit 1 if an old root name has no new home

Names renamed on the way (not found under their old name) go in ``RENAMES`` below.
"""

from __future__ import annotations

import argparse
import ast
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
OLD_COMMIT = "8c17a65"
CHANGELOG = ROOT / "CHANGELOG.md"
BEGIN, END = "<!-- changelog_names:begin -->", "<!-- changelog_names:end -->"

# Old root name -> new public path, for names renamed in the restructure (filled at integration
# from the helpers' reports).
RENAMES: dict[str, str] = {}


def _exports(source: str) -> tuple[list[str], dict[str, str]]:
  """(exported names, {name: module it is imported from}) of an ``__init__.py``."""
  tree = ast.parse(source)
  imported: dict[str, str] = {}
  order: list[str] = []
  all_names: list[str] | None = None
  for node in tree.body:
    if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
      for alias in node.names:
        name = alias.asname or alias.name
        if not name.startswith("_"):
          imported[name] = f"{node.module}.{alias.name}" if alias.name != name else node.module
          order.append(name)
    elif isinstance(node, ast.Assign) and any(
        isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
      all_names = [ast.literal_eval(e) for e in node.value.elts]  # type: ignore[attr-defined]
  names = all_names if all_names is not None else order
  return [n for n in names if not n.startswith("__")], imported


def old_root_names() -> list[str]:
  source = subprocess.run(["git", "show", f"{OLD_COMMIT}:gbounds/__init__.py"], cwd=ROOT,
                          check=True, capture_output=True, text=True).stdout
  names, _ = _exports(source)
  return names


def new_exports() -> dict[str, dict[str, str]]:
  """{package: {name: source module}} for the root and every subpackage in the work tree."""
  out: dict[str, dict[str, str]] = {}
  for init in sorted((ROOT / "gbounds").glob("*/__init__.py")) + [ROOT / "gbounds/__init__.py"]:
    package = ".".join(init.parent.relative_to(ROOT).parts)
    if package.split(".")[-1].startswith("_"):
      continue
    names, imported = _exports(init.read_text())
    out[package] = {n: imported.get(n, package) for n in names}
  return out


def locate(name: str, exports: dict[str, dict[str, str]]) -> tuple[str, list[str]]:
  """(home public path, other public paths) of ``name``; home is ``""`` when not found."""
  if name in RENAMES:
    return RENAMES[name], []
  where = [pkg for pkg, names in exports.items() if name in names and pkg != "gbounds"]
  # Home: the subpackage whose own private module defines the name.
  home = [pkg for pkg in where if exports[pkg][name].startswith(pkg + "._")]
  first = (home or where or [""])[0]
  paths = [f"{pkg}.{name}" for pkg in where if pkg != first]
  root = exports.get("gbounds", {})
  if name in root and root[name] != "gbounds":  # not `from gbounds import train as train`
    paths.insert(0, f"gbounds.{name}")
  elif name in root:
    paths.append(f"(`gbounds.{name}` is now the subpackage)")
  return (f"{first}.{name}" if first else ""), paths


def module_moves() -> list[tuple[str, str]]:
  """[(old module, new module)] from git's rename detection, OLD_COMMIT -> work tree."""
  out = subprocess.run(["git", "diff", "-M30%", "--name-status", OLD_COMMIT, "--", "gbounds"],
                       cwd=ROOT, check=True, capture_output=True, text=True).stdout
  moves, deleted = [], []
  for line in out.splitlines():
    parts = line.split("\t")
    if parts[0].startswith("R"):
      moves.append((parts[1], parts[2]))
    elif parts[0] == "D":
      deleted.append(parts[1])
  moves += [(d, "") for d in deleted]
  mod = lambda p: p[:-3].replace("/", ".") if p else ""  # noqa: E731
  return sorted((mod(a), mod(b)) for a, b in moves)


def render() -> tuple[str, list[str]]:
  exports = new_exports()
  lines = ["| old (`gbounds.<name>`) | new public path | also at |", "| --- | --- | --- |"]
  missing = []
  for name in old_root_names():
    home, others = locate(name, exports)
    if not home and others:
      home, others = others[0], others[1:]
    if not home:
      missing.append(name)
      home = "**not exported (removed or renamed)**"
    else:
      home = f"`{home}`"
    also = ", ".join(o if o.startswith("(") else f"`{o}`" for o in others)
    lines.append(f"| `{name}` | {home} | {also} |")
  lines += ["", "| old private module | new module |", "| --- | --- |"]
  for old, new in module_moves():
    lines.append(f"| `{old}` | {f'`{new}`' if new else '(split or removed)'} |")
  return "\n".join(lines) + "\n", missing


def main(argv: list[str] | None = None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--write", action="store_true", help="update CHANGELOG.md in place")
  parser.add_argument("--check", action="store_true",
                      help="exit 1 when an old root name has no new public path")
  args = parser.parse_args(argv)
  table, missing = render()
  if args.write:
    text = CHANGELOG.read_text()
    if BEGIN not in text or END not in text:
      print(f"CHANGELOG.md has no {BEGIN} ... {END} block", file=sys.stderr)
      return 2
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    CHANGELOG.write_text(f"{head}{BEGIN}\n{table}{END}{tail}")
  else:
    sys.stdout.write(table)
  if missing:
    print(f"old root names without a new public path: {', '.join(missing)}", file=sys.stderr)
    return 1 if args.check else 0
  return 0


if __name__ == "__main__":
  sys.exit(main())
