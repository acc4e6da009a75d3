"""Named exceptions and the shared input checkers used across gbounds.

Every checker raises with a message of the form
``"<argument>: expected <what>, got <what> instead."`` so that a user sees which argument
was wrong and what would have been accepted.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, TypeVar

import numpy as np

_E = TypeVar("_E", bound=enum.Enum)


class GBoundsError(Exception):
  """Base class of all gbounds errors."""


class InvalidInputError(GBoundsError, ValueError):
  """An argument has the wrong shape, dtype, domain or value."""


class DataNotFoundError(GBoundsError, FileNotFoundError):
  """A dataset file is absent and could not be downloaded."""


class ChecksumError(GBoundsError):
  """A downloaded or cached file does not match its published checksum."""


def fail(name: str, expected: str, got: Any) -> NoReturn:
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
  """The arrays have the same size along ``axis`` (each of rank > ``axis``).

  Args:
    names: the arguments' names, in order.
    *arrays: the arrays.
    axis: the axis compared.
  """
  for n, a in zip(names, arrays):
    if np.ndim(a) <= axis:
      fail(" and ".join(names), f"arrays with an axis {axis} of the same size",
           f"{n} of shape {np.shape(a)}")
  sizes = [np.shape(a)[axis] for a in arrays]
  if len(set(sizes)) > 1:
    pairs = ", ".join(f"{n}={s}" for n, s in zip(names, sizes))
    fail(" and ".join(names), f"the same size along axis {axis}", pairs)


def _as_real_array(name: str, x: Any, expected: str) -> np.ndarray:
  """``x`` as a float array, refusing strings, None and other non-numbers with the house message."""
  arr = np.asarray(x)
  if arr.dtype.kind not in "biuf":
    fail(name, expected, f"a value of type {type(x).__name__} ({_short_repr(x)})")
  return arr.astype(float)


def _short_repr(x: Any) -> str:
  r = repr(x)
  return r if len(r) <= 60 else r[:57] + "..."


def check_positive(name: str, value: Any, *, strict: bool = True) -> None:
  """Finite values, all positive (``strict``) or non-negative.

  Args:
    name: the argument's name.
    value: scalar or array.
    strict: ``True`` for ``> 0``, ``False`` for ``>= 0``.
  """
  v = _as_real_array(name, value, "a positive value" if strict else "a non-negative value")
  ok = np.all(v > 0) if strict else np.all(v >= 0)
  if not ok or not np.all(np.isfinite(v)):
    fail(name, "a positive value" if strict else "a non-negative value", value)


def check_in_unit_interval(name: str, x: Any) -> None:
  """Finite values in [0, 1].

  Args:
    name: the argument's name.
    x: scalar or array.
  """
  arr = _as_real_array(name, x, "values in [0, 1]")
  if not (np.all(np.isfinite(arr)) and np.all(arr >= 0) and np.all(arr <= 1)):
    fail(name, "values in [0, 1]", _describe(arr))


def check_binary(name: str, x: Any) -> None:
  arr = np.asarray(x)
  if not np.all((arr == 0) | (arr == 1)):
    fail(name, "binary values in {0, 1}", f"values {np.unique(arr)[:5]}")


def as_enum(name: str, value: Any, enum_cls: type[_E]) -> _E:
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


class StoreLockedError(GBoundsError, RuntimeError):
  """A results directory is held by another writer (its lock file names the holder)."""


class CorruptFileError(GBoundsError, ValueError):
  """A file on disk is truncated, corrupt or of the wrong format (the message names it)."""


class ConvergenceError(GBoundsError, ArithmeticError):
  """An iterative method did not meet its tolerance (and no exact fallback was allowed)."""


def is_concrete(*xs: Any) -> bool:
  """True when no argument is a JAX tracer (its values can be checked eagerly)."""
  import jax  # local: keep this module importable without initialising JAX
  import jax.core  # explicit: jax/__init__ imports it but `del`s the name, hiding it from pyright

  leaves = jax.tree_util.tree_leaves(xs)
  return not any(isinstance(leaf, jax.core.Tracer) for leaf in leaves)


def check_open_unit_interval(name: str, x: Any) -> None:
  """Values strictly inside (0, 1), e.g. a confidence parameter ``delta``."""
  arr = _as_real_array(name, x, "values in the open interval (0, 1)")
  if arr.size == 0 or not (np.all(np.isfinite(arr)) and np.all(arr > 0) and np.all(arr < 1)):
    fail(name, "values in the open interval (0, 1)", _describe(arr))


def check_probability(name: str, x: Any) -> None:
  """Finite values in the closed interval [0, 1] (error rates, probabilities)."""
  arr = _as_real_array(name, x, "probabilities in [0, 1]")
  if not (np.all(np.isfinite(arr)) and np.all(arr >= 0) and np.all(arr <= 1)):
    fail(name, "probabilities in [0, 1]", _describe(arr))


def check_nonnegative_int(name: str, x: Any, *, minimum: int = 0) -> None:
  """Integer-valued (int dtype or whole floats), finite, at least ``minimum``."""
  arr = np.asarray(x)
  ok = arr.dtype.kind in "iub" or (
      arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)))
  if not ok or (arr.size and np.min(arr) < minimum):
    fail(name, f"integers >= {minimum}", _describe(arr))


def check_int(name: str, value: Any, minimum: int | None = None, maximum: int | None = None, *,
              whole_floats: bool = True, what: str | None = None) -> int:
  """An integer in ``[minimum, maximum]`` (either end optional); returns it as ``int``.

  Accepts Python and numpy integers (never a bool) and, with ``whole_floats``, finite floats
  with no fractional part (``3.0``). ``what`` replaces the default wording of the message
  ("an integer", "an integer >= m" or "an integer in [m, M]").
  """
  is_int = isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))
  is_whole = (whole_floats and isinstance(value, (float, np.floating))
              and bool(np.isfinite(value)) and float(value).is_integer())
  if not ((is_int or is_whole) and (minimum is None or value >= minimum)
          and (maximum is None or value <= maximum)):
    if what is None:
      if maximum is not None:
        what = f"an integer in [{minimum}, {maximum}]"
      else:
        what = "an integer" if minimum is None else f"an integer >= {minimum}"
    fail(name, what, repr(value))
  return int(value)


def check_labels(name: str, y: Any, num_classes: int) -> None:
  """Integer class labels in ``[0, num_classes)``."""
  arr = np.asarray(y)
  if arr.dtype.kind not in "iu":
    if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
      arr = arr.astype(np.int64)
    else:
      fail(name, f"integer class labels in [0, {num_classes})", f"dtype {arr.dtype}")
  if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
    fail(name, f"class labels in [0, {num_classes}) (the model has {num_classes} outputs)",
         f"labels in [{arr.min()}, {arr.max()}]")


def check_finite_tree(name: str, tree: Any) -> None:
  """Eager NaN/inf check over every floating leaf of a pytree (e.g. model parameters)."""
  import jax

  leaves = jax.tree_util.tree_leaves_with_path(tree)
  bad = []
  for path, leaf in leaves:
    arr = np.asarray(leaf)
    if arr.dtype.kind in "fc" and not np.all(np.isfinite(arr)):
      bad.append(jax.tree_util.keystr(path) or "<root>")
  if bad:
    fail(name, "finite values (no NaN or inf) in every leaf",
         f"non-finite values in {', '.join(bad[:5])}" + (" ..." if len(bad) > 5 else ""))


def error_if(x: Any, pred: Any, message: str) -> Any:
  """Raises :class:`InvalidInputError` with ``message`` where ``pred`` holds; jit-safe.

  On concrete values the check is eager. Under ``jit``/``vmap`` it runs as a host callback,
  so a traced call fails at run time (JAX wraps the error; its text contains ``message``)
  instead of returning a number. Returns ``x`` unchanged so the check can be threaded
  through a computation.
  """
  import jax

  if is_concrete(pred):
    if bool(np.any(np.asarray(pred))):
      raise InvalidInputError(message)
    return x

  def _raise(p):
    if np.any(np.asarray(p)):
      raise InvalidInputError(message)

  jax.debug.callback(_raise, pred)
  return x


def _describe(arr: np.ndarray) -> str:
  if arr.size == 0:
    return "an empty array"
  if arr.size == 1:
    return repr(arr.reshape(()).item())
  finite = arr[np.isfinite(arr)] if arr.dtype.kind in "fc" else arr
  parts = [f"shape {arr.shape}"]
  if finite.size:
    parts.append(f"range [{finite.min()}, {finite.max()}]")
  if arr.dtype.kind in "fc" and finite.size < arr.size:
    parts.append(f"{arr.size - finite.size} non-finite")
  return ", ".join(parts)


def check_real(name: str, value: Any, expected: str,
               ok: Callable[[float | np.integer | np.floating], bool | np.bool_]) -> None:
  """A real, finite scalar (not a bool or a string) for which ``ok`` holds.

  Args:
    name: the argument's name, for the message.
    value: the value to check.
    expected: what was expected, in words (e.g. ``"a positive learning rate"``).
    ok: predicate on the value.
  """
  good = (isinstance(value, (int, float, np.integer, np.floating))
          and not isinstance(value, (bool, np.bool_)) and np.isfinite(value) and ok(value))
  if not good:
    fail(name, expected, repr(value))
