"""At least 120 bad inputs over the public API and the CLI: each raises a clear error.

Each case asserts the exception type and that the message names the argument; none may return
a value. Cases live in ``tests/bad_inputs/<family>.py`` (see its ``__init__``).
"""

from __future__ import annotations

import importlib
import pkgutil
import re

import pytest

import tests.bad_inputs as _pkg
from tests.bad_inputs import Case


def _all_cases() -> list[Case]:
  cases: list[Case] = []
  for info in pkgutil.iter_modules(_pkg.__path__):
    mod = importlib.import_module(f"tests.bad_inputs.{info.name}")
    cases.extend(getattr(mod, "CASES", []))
  return cases


CASES = _all_cases()


def test_case_ids_unique():
  ids = [c.id for c in CASES]
  assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_refused(case: Case):
  with pytest.raises(case.exc) as info:
    got = case.call()
    pytest.fail(f"returned {got!r} instead of raising")
  assert re.search(case.match, str(info.value), flags=re.IGNORECASE), str(info.value)


def test_at_least_120_cases_covering_every_family():
  families = {c.family for c in CASES}
  assert len(CASES) >= 120, len(CASES)
  unknown = families - set(_pkg.FAMILIES)
  assert not unknown, f"unknown families {sorted(unknown)}; use tests.bad_inputs.FAMILIES"
  missing = set(_pkg.FAMILIES) - families
  assert not missing, f"no case for families {sorted(missing)}"
