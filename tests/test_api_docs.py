"""Public API hygiene: Args/Returns on every public function, exported signature types, docstrings
that point only at files and modules that exist, no unresolved source tags."""

from __future__ import annotations

import enum
import importlib
import inspect
import pathlib
import re
import typing

import pytest

import gbounds

ROOT = pathlib.Path(__file__).resolve().parents[1]
SUBPACKAGES = ["models", "data", "train", "ntk", "info", "bounds", "geometry", "viz",
               "supersample", "analysis", "experiments"]


def _public_objects():
  seen = set()
  for name in [None] + SUBPACKAGES:
    mod = gbounds if name is None else importlib.import_module(f"gbounds.{name}")
    for attr in mod.__all__:
      obj = getattr(mod, attr)
      if id(obj) in seen or inspect.ismodule(obj):
        continue
      seen.add(id(obj))
      yield f"{mod.__name__}.{attr}", obj


def _functions():
  for qual, obj in _public_objects():
    if inspect.isfunction(obj):
      yield qual, obj
    elif inspect.isclass(obj) and not issubclass(obj, (enum.Enum, BaseException)):
      for meth_name, meth in vars(obj).items():
        if meth_name.startswith("_") or not inspect.isfunction(meth):
          continue
        if getattr(meth, "__module__", "").startswith("gbounds"):
          yield f"{qual}.{meth_name}", meth


def _needs_args(fn) -> bool:
  params = [p for p in inspect.signature(fn).parameters.values()
            if p.name not in ("self", "cls")]
  return bool(params)


def _needs_returns(fn) -> bool:
  ann = inspect.signature(fn).return_annotation
  return ann not in (None, "None", inspect.Signature.empty)


def test_every_public_function_has_args_and_returns():
  missing = []
  for qual, fn in _functions():
    doc = inspect.getdoc(fn) or ""
    if not doc:
      missing.append(f"{qual}: no docstring")
      continue
    if _needs_args(fn) and "Args:" not in doc:
      missing.append(f"{qual}: no Args:")
    if _needs_returns(fn) and not re.search(r"^(Returns|Yields):", doc, re.M):
      missing.append(f"{qual}: no Returns:")
  assert not missing, f"{len(missing)} public functions lack sections:\n" + "\n".join(missing)


def _exported_classes() -> set[type]:
  return {obj for _, obj in _public_objects() if inspect.isclass(obj)}


def _gbounds_classes_in(tp, out: set) -> None:
  if isinstance(tp, type):
    if tp.__module__.startswith("gbounds"):
      out.add(tp)
    return
  for arg in typing.get_args(tp):
    _gbounds_classes_in(arg, out)


def test_public_types_in_public_signatures_are_exported():
  exported = _exported_classes()
  unexported = []
  for qual, fn in _functions():
    try:
      hints = typing.get_type_hints(fn)
    except Exception:  # unresolvable forward references (e.g. TYPE_CHECKING-only names)
      continue
    found: set[type] = set()
    for tp in hints.values():
      _gbounds_classes_in(tp, found)
    for cls in found:
      if cls not in exported and not cls.__name__.startswith("_"):
        unexported.append(f"{qual}: {cls.__module__}.{cls.__qualname__}")
  assert not unexported, "public signatures use unexported types:\n" + "\n".join(sorted(set(unexported)))


_PATH = re.compile(r"(?<![\w./-])((?:gbounds|tests|benchmarks|notebooks|scripts|notes)/[\w./-]+\.(?:py|md|ipynb|json))")
_OLD_MODULE = re.compile(r"\bgbounds\._(?!src\b)[a-z_]+\b")


def _library_sources():
  for path in sorted((ROOT / "gbounds").rglob("*.py")):
    yield path, path.read_text()


def test_docstrings_point_only_at_existing_files_and_modules():
  bad = []
  for path, text in _library_sources():
    rel = path.relative_to(ROOT)
    for m in _PATH.finditer(text):
      target = m.group(1)
      if target.startswith("notes/"):
        ok = (ROOT.parent / "shared" / target).exists()
      else:
        ok = (ROOT / target).exists()
      if not ok:
        bad.append(f"{rel}: {target} does not exist")
    for m in _OLD_MODULE.finditer(text):
      bad.append(f"{rel}: old module path {m.group(0)}")
  assert not bad, "\n".join(bad)


def test_no_unresolved_source_tags():
  bad = [f"{p.relative_to(ROOT)}" for p, text in _library_sources()
         if re.search(r"\[(recalled|unverified)\]", text)]
  assert not bad, bad


@pytest.mark.parametrize("check", [test_every_public_function_has_args_and_returns])
def test_the_docstring_check_can_fail(check, monkeypatch):
  def undocumented(x: int) -> int:
    return x
  monkeypatch.setattr(gbounds.bounds, "undocumented_for_test", undocumented, raising=False)
  monkeypatch.setattr(gbounds.bounds, "__all__", [*gbounds.bounds.__all__, "undocumented_for_test"])
  with pytest.raises(AssertionError, match="undocumented_for_test"):
    check()
