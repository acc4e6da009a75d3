"""The package's layout rules, checked by parsing every module's imports (no import is executed).

Layers, lowest first (a module may import its own subpackage, ``gbounds._src``, and the *public*
namespace of a strictly lower layer; never a higher layer, a peer, the root, or another
subpackage's private ``_module``)::

    _src  <-  models, data  <-  ntk  <-  train  <-  info, bounds, geometry, viz
          <-  supersample  <-  analysis  <-  experiments  <-  cli

Notebooks and benchmarks use the public API only (no ``_``-prefixed module or name).
"""

from __future__ import annotations

import ast
import json
import pathlib
import re

import pytest

import gbounds

ROOT = pathlib.Path(__file__).resolve().parents[1]
PKG = ROOT / "gbounds"

LAYER = {"_src": 0, "models": 1, "data": 1, "ntk": 2, "train": 3, "info": 4, "bounds": 4,
         "geometry": 4, "viz": 4, "supersample": 5, "analysis": 6, "experiments": 7, "cli": 8}
_MODULE_STRING = re.compile(r"^gbounds(\.[A-Za-z_]\w*)+(:\w+)?$")


def _imports(tree: ast.AST):
  """(lineno, dotted target, imported names) for every import and every 'gbounds.x' string."""
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      for a in node.names:
        yield node.lineno, a.name, []
    elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
      yield node.lineno, node.module, [a.name for a in node.names]
    elif isinstance(node, ast.ImportFrom) and node.level:
      yield node.lineno, "<relative>", []
    elif isinstance(node, ast.Constant) and isinstance(node.value, str) and \
        _MODULE_STRING.match(node.value):
      yield node.lineno, node.value.split(":")[0], []


def _violations_of_library_module(path: pathlib.Path) -> list[str]:
  rel = path.relative_to(PKG)
  if rel.parts == ("__init__.py",):
    return []
  src_pkg = rel.parts[0]
  assert src_pkg in LAYER, f"{rel}: module outside the known subpackages {sorted(LAYER)}"
  out = []
  for line, target, names in _imports(ast.parse(path.read_text(), str(path))):
    where = f"gbounds/{rel}:{line}"
    if target == "<relative>":
      out.append(f"{where}: relative import (use absolute gbounds.* imports)")
      continue
    parts = target.split(".")
    if parts[0] != "gbounds":
      continue
    if len(parts) == 1:
      # `from gbounds import x` inside the package reaches up to the root
      out.append(f"{where}: imports the package root ({names})")
      continue
    dst = parts[1]
    if dst not in LAYER:
      out.append(f"{where}: imports unknown gbounds.{dst}")
      continue
    if dst == src_pkg:
      continue
    if src_pkg == "_src":
      out.append(f"{where}: _src imports upward into gbounds.{dst}")
      continue
    if dst == "_src":
      if src_pkg in ("cli",) or True:
        continue
    if LAYER[dst] >= LAYER[src_pkg]:
      out.append(f"{where}: {src_pkg} (layer {LAYER[src_pkg]}) imports {target} "
                 f"(layer {LAYER[dst]}): upward or sideways")
    private = [p for p in parts[2:] if p.startswith("_")] + [n for n in names if n.startswith("_")]
    if private:
      out.append(f"{where}: {target} {names}: private to gbounds.{dst}")
  return out


def _public_only(text: str, where: str) -> list[str]:
  out = []
  try:
    tree = ast.parse(text)
  except SyntaxError:
    return out
  for line, target, names in _imports(tree):
    parts = target.split(".")
    if parts[0] != "gbounds":
      continue
    private = [p for p in parts[1:] if p.startswith("_")] + [n for n in names if n.startswith("_")]
    if private:
      out.append(f"{where}:{line}: {target} {names}: not public API")
  for m in re.finditer(r"\bgbounds(\.\w+)*\.(_[a-z]\w*)", text):
    if not m.group(2).startswith("__"):
      out.append(f"{where}: attribute {m.group(0)}: not public API")
  return out


def library_violations() -> list[str]:
  out = []
  for path in sorted(PKG.rglob("*.py")):
    out += _violations_of_library_module(path)
  return out


def user_code_violations() -> list[str]:
  out = []
  for path in sorted((ROOT / "benchmarks").glob("*.py")):
    out += _public_only(path.read_text(), str(path.relative_to(ROOT)))
  for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
    nb = json.loads(path.read_text())
    for i, cell in enumerate(nb["cells"]):
      if cell["cell_type"] == "code":
        src = "".join(cell["source"])
        src = "\n".join(l for l in src.splitlines() if not l.lstrip().startswith(("%", "!")))
        out += _public_only(src, f"{path.relative_to(ROOT)}[cell {i}]")
  return out


def test_library_imports_only_run_downward():
  bad = library_violations()
  assert not bad, "\n".join(bad)


# Two benchmarks compare gbounds' internal solvers with reference solvers on the very same
# preprocessed inputs (the KSG tie-broken columns; the MFTMA anchor QP matrices), which no public
# function returns. They are the only exceptions, listed by name so that any other private use fails.
KNOWN_INTERNAL_BENCHMARKS = ("benchmarks/bench_ksg.py", "benchmarks/bench_manifold.py")


def test_notebooks_and_benchmarks_use_the_public_api():
  bad = [v for v in user_code_violations() if not v.startswith(KNOWN_INTERNAL_BENCHMARKS)]
  assert not bad, "\n".join(bad)


def test_the_checker_catches_upward_and_private_imports(tmp_path):
  # The rules above must be able to fail: run them on planted modules.
  def check(pkg, text):
    p = PKG / pkg / "_planted_for_test.py"
    try:
      p.write_text(text)
      return _violations_of_library_module(p)
    finally:
      p.unlink()
  assert check("ntk", "from gbounds.analysis import analyze\n")
  assert check("ntk", "from gbounds.models._networks import MLP\n")
  assert check("ntk", "import gbounds\n")
  assert check("info", "from gbounds.bounds import binary_kl\n")  # sideways
  assert check("_src", "from gbounds.models import MLP\n")
  assert check("experiments", "x = 'gbounds.info._sample_info'\n")
  assert not check("info", "from gbounds.ntk import empirical_ntk_fn\nfrom gbounds._src import io\n")
  assert _public_only("from gbounds.ntk._empirical import x\n", "nb")
  assert not _public_only("from gbounds.ntk import empirical_ntk_fn\n", "nb")


SUBPACKAGES = ["models", "data", "train", "ntk", "info", "bounds", "geometry", "viz",
               "supersample", "analysis", "experiments"]


@pytest.mark.parametrize("name", SUBPACKAGES)
def test_every_subpackage_declares_all_and_exports_it(name):
  import importlib
  mod = importlib.import_module(f"gbounds.{name}")
  assert hasattr(mod, "__all__"), f"gbounds.{name} has no __all__"
  missing = [n for n in mod.__all__ if not hasattr(mod, n)]
  assert not missing, f"gbounds.{name}.__all__ names missing attributes: {missing}"


def test_root_is_small_and_holds_no_experiment():
  # the front door, the error types, Table/ProgressCallback (in many signatures), the subpackages
  assert len(gbounds.__all__) <= 26, gbounds.__all__
  import gbounds.experiments as ex
  assert not set(ex.__all__) & set(gbounds.__all__)
  for n in gbounds.__all__:
    assert hasattr(gbounds, n), n


def _global_state_uses(text: str) -> list[str]:
  out = []
  for node in ast.walk(ast.parse(text)):
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
      f = node.func
      if f.attr == "use" and isinstance(f.value, ast.Name) and f.value.id == "matplotlib":
        out.append(f"line {node.lineno}: matplotlib.use(...)")
      if f.attr == "update" and isinstance(f.value, ast.Attribute) and f.value.attr == "config":
        out.append(f"line {node.lineno}: jax.config.update(...)")
    if isinstance(node, ast.Attribute) and node.attr in ("jax_enable_x64", "x64_enabled"):
      out.append(f"line {node.lineno}: reads {node.attr}")
    if isinstance(node, (ast.Import, ast.ImportFrom)):
      mod = node.module if isinstance(node, ast.ImportFrom) else None
      names = [a.name for a in node.names]
      if mod == "matplotlib" and "pyplot" in names or "matplotlib.pyplot" in names:
        out.append(f"line {node.lineno}: imports matplotlib.pyplot")
  return out


def test_library_code_touches_no_global_state():
  bad = []
  for path in sorted(PKG.rglob("*.py")):
    bad += [f"{path.relative_to(ROOT)} {v}" for v in _global_state_uses(path.read_text())]
  assert not bad, "\n".join(bad)
  assert _global_state_uses("import matplotlib\nmatplotlib.use('Agg')\n")
  assert _global_state_uses("import jax\nx = jax.config.jax_enable_x64\n")
  assert _global_state_uses("import matplotlib.pyplot as plt\n")
