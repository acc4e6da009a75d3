"""Named exceptions and the shared input checkers used across gbounds.

Every checker raises with a message of the form
``"<argument>: expected <what>, got <what> instead."`` so that a user sees which argument
was wrong and what would have been accepted.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any

import numpy as np


class GBoundsError(Exception):
  """Base class of all gbounds errors."""


class InvalidInputError(GBoundsError, ValueError):
  """An argument has the wrong shape, dtype, domain or value."""


class DataNotFoundError(GBoundsError, FileNotFoundError):
  """A dataset file is absent and could not be downloaded."""


class ChecksumError(GBoundsError):
  """A downloaded or cached file does not match its published checksum."""


def fail(name: str, expected: str, got: Any) -> None:
  """Raises :class:`InvalidInputError` with the house message format."""
  raise InvalidInputError(f"{name}: expected {expected}, got {got} instead.")


def check_rank(name: str, x: Any, rank: int | Sequence[int]) -> None:
  ranks = (rank,) if isinstance(rank, int) else tuple(rank)
  if np.ndim(x) not in ranks:
    fail(name, f"an array of rank {' or '.join(map(str, ranks))}",
         f"rank {np.ndim(x)} (shape {np.shape(x)})")


def check_nonempty(name: str, x: Any, axis: int = 0) -> None:
  shape = np.shape(x)
  if len(shape) == 0 or shape[axis] == 0:
    fail(name, f"a non-empty array along axis {axis}", f"shape {shape}")


def check_finite(name: str, x: Any) -> None:
  """Eager NaN/inf check (call outside jit, on concrete arrays)."""
  arr = np.asarray(x)
  if arr.dtype.kind in "fc" and not np.all(np.isfinite(arr)):
    bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
    fail(name, "finite values (no NaN or inf)", f"{bad} non-finite entries")


def check_same_leading(names: Sequence[str], *arrays: Any, axis: int = 0) -> None:
  sizes = [np.shape(a)[axis] for a in arrays]
  if len(set(sizes)) > 1:
    pairs = ", ".join(f"{n}={s}" for n, s in zip(names, sizes))
    fail(" and ".join(names), f"the same size along axis {axis}", pairs)


def check_positive(name: str, value: Any, *, strict: bool = True) -> None:
  v = np.asarray(value)
  ok = np.all(v > 0) if strict else np.all(v >= 0)
  if not ok or not np.all(np.isfinite(v)):
    fail(name, "a positive value" if strict else "a non-negative value", value)


def check_in_unit_interval(name: str, x: Any) -> None:
  arr = np.asarray(x)
  if not (np.all(np.isfinite(arr)) and np.all(arr >= 0) and np.all(arr <= 1)):
    fail(name, "values in [0, 1]", f"range [{np.nanmin(arr)}, {np.nanmax(arr)}]")


def check_binary(name: str, x: Any) -> None:
  arr = np.asarray(x)
  if not np.all((arr == 0) | (arr == 1)):
    fail(name, "binary values in {0, 1}", f"values {np.unique(arr)[:5]}")


def as_enum(name: str, value: Any, enum_cls: type[enum.Enum]) -> Any:
  """Accepts an enum member, its name (case-insensitive) or its value."""
  if isinstance(value, enum_cls):
    return value
  if isinstance(value, str):
    key = value.strip().upper().replace("-", "_")
    if key in enum_cls.__members__:
      return enum_cls[key]
  try:
    return enum_cls(value)
  except (ValueError, TypeError):
    valid = ", ".join(m.name.lower() for m in enum_cls)
    fail(name, f"one of {{{valid}}}", repr(value))
