"""One result convention: frozen dataclasses (or NamedTuples) with ``to_dict``/``from_dict``
that round-trip through JSON, and one table type, :class:`Table`, returned by every ``table()``.

``to_dict`` gives JSON-ready values: arrays become nested lists, enums their ``value``, nested
results their own ``to_dict``, tuples lists, paths strings. ``from_dict`` rebuilds the object
from the field annotations (``np.ndarray``/``jax.Array`` fields come back as numpy arrays, enums
as enums, nested results through their ``from_dict``), so ``type(r).from_dict(r.to_dict())``
equals ``r`` field by field.

Use :class:`ResultMixin` as a base of a frozen dataclass; a NamedTuple defines
``to_dict = results.namedtuple_to_dict`` and ``from_dict = classmethod(results.from_dict)``.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import pathlib
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["ResultMixin", "Table", "encode", "from_dict", "namedtuple_to_dict", "to_dict"]


def encode(value: Any) -> Any:
  """A JSON-ready copy of ``value`` (see the module docstring).

  Args:
    value: any result field value.

  Returns:
    Plain Python: dict, list, str, int, float, bool or None.
  """
  if hasattr(value, "to_dict") and callable(value.to_dict) and not isinstance(value, type):
    return value.to_dict()
  if isinstance(value, enum.Enum):
    return value.value
  if isinstance(value, (bool, np.bool_)):
    return bool(value)
  if isinstance(value, (int, np.integer)):
    return int(value)
  if isinstance(value, (float, np.floating)):
    return float(value)
  if isinstance(value, (str, type(None))):
    return value
  if isinstance(value, pathlib.PurePath):
    return str(value)
  if hasattr(value, "__array__") or isinstance(value, np.ndarray):
    return np.asarray(value).tolist()
  if isinstance(value, Mapping):
    return {(k.value if isinstance(k, enum.Enum) else str(k)): encode(v) for k, v in value.items()}
  if isinstance(value, Sequence):
    return [encode(v) for v in value]
  raise TypeError(f"cannot encode a {type(value).__name__} for to_dict")


def _fields(obj: Any) -> list[str]:
  if dataclasses.is_dataclass(obj):
    return [f.name for f in dataclasses.fields(obj)]
  return list(obj._fields)


def to_dict(obj: Any) -> dict[str, Any]:
  """``{field: encode(value)}`` for a dataclass or NamedTuple instance.

  Args:
    obj: a dataclass or NamedTuple instance.

  Returns:
    A JSON-ready dict.
  """
  return {name: encode(getattr(obj, name)) for name in _fields(obj)}


def namedtuple_to_dict(self: Any) -> dict[str, Any]:
  """This result as a JSON-ready dict (``to_dict`` for use as a NamedTuple method).

  Args:
    self: the NamedTuple result.

  Returns:
    ``{field: value}`` with JSON-ready values (see :mod:`gbounds._src.results`).
  """
  return to_dict(self)


def _is_array_type(tp: Any) -> bool:
  import jax
  if tp is np.ndarray or tp is jax.Array or typing.get_origin(tp) is np.ndarray:
    return True
  name = getattr(tp, "__name__", "") or ""
  return name.rsplit(".", 1)[-1] in ("Array", "ndarray", "ArrayLike")


def _decode(tp: Any, value: Any) -> Any:
  if value is None:
    return None
  origin = typing.get_origin(tp)
  if origin in (typing.Union, types.UnionType):
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if isinstance(value, list) and any(_is_array_type(a) for a in args):
      return np.asarray(value)  # a list only encodes an array (or a sequence) member
    for a in args:
      try:
        return _decode(a, value)
      except (TypeError, ValueError, KeyError):
        continue
    return value
  if tp is Any or tp is None:
    return value
  if isinstance(tp, type) and issubclass(tp, enum.Enum):
    return tp(value)
  if isinstance(tp, type) and hasattr(tp, "from_dict") and isinstance(value, Mapping):
    return tp.from_dict(value)
  if _is_array_type(tp):
    return np.asarray(value)
  if origin is tuple:
    args = typing.get_args(tp)
    if len(args) == 2 and args[1] is Ellipsis:
      return tuple(_decode(args[0], v) for v in value)
    if args:
      return tuple(_decode(a, v) for a, v in zip(args, value))
    return tuple(value)
  if origin in (list, Sequence):
    (a,) = typing.get_args(tp) or (Any,)
    return [_decode(a, v) for v in value]
  if origin in (dict, Mapping):
    args = typing.get_args(tp)
    if len(args) == 2:
      kt, vt = args
      return {_decode(kt, k): _decode(vt, v) for k, v in value.items()}
    return dict(value)
  if tp is float and isinstance(value, (int, float)):
    return float(value)
  if tp is tuple:
    return tuple(value)
  if tp is pathlib.Path:
    return pathlib.Path(value)
  return value


def from_dict(cls: type, data: Mapping[str, Any]) -> Any:
  """Rebuilds a dataclass or NamedTuple of type ``cls`` from :func:`to_dict` output.

  Args:
    cls: the result type.
    data: a dict as :func:`to_dict` returns it.

  Returns:
    An instance of ``cls``.
  """
  hints = typing.get_type_hints(cls)
  names = [f.name for f in dataclasses.fields(cls)] if dataclasses.is_dataclass(cls) \
      else list(cls._fields)
  missing = [n for n in names if n not in data and not _has_default(cls, n)]
  if missing:
    raise KeyError(f"{cls.__name__}.from_dict: missing fields {missing}")
  kwargs = {n: _decode(hints.get(n, Any), data[n]) for n in names if n in data}
  return cls(**kwargs)


def _has_default(cls: type, name: str) -> bool:
  if dataclasses.is_dataclass(cls):
    f = {f.name: f for f in dataclasses.fields(cls)}[name]
    return f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
  return name in getattr(cls, "_field_defaults", {})


class ResultMixin:
  """``to_dict``/``from_dict`` for frozen dataclass results."""

  def to_dict(self) -> dict[str, Any]:
    """This result as a JSON-ready dict.

    Returns:
      ``{field: value}`` with JSON-ready values (see :mod:`gbounds._src.results`).
    """
    return to_dict(self)

  @classmethod
  def from_dict(cls, data: Mapping[str, Any]) -> Any:
    """Rebuilds the result from :meth:`to_dict` output.

    Args:
      data: a dict as :meth:`to_dict` returns it (e.g. read back from JSON).

    Returns:
      An instance of this class, equal field by field to the one that was encoded.
    """
    return from_dict(cls, data)


def _fmt(v: Any) -> str:
  if hasattr(v, "shape") and np.ndim(v) == 0 and hasattr(v, "item"):
    v = v.item()  # 0-d numpy/jax arrays and numpy scalars format like Python scalars
  if isinstance(v, bool):
    return "yes" if v else "no"
  if isinstance(v, enum.Enum):
    return str(v.value)
  if isinstance(v, (float, np.floating)):
    v = float(v)
    if math.isnan(v):
      return "n/a"
    return f"{v:.4g}" if (abs(v) >= 1e4 or (0 < abs(v) < 1e-3)) else f"{v:.4f}"
  return str(v)


@dataclasses.dataclass(frozen=True)
class Table(ResultMixin):
  """A rectangular table: what every ``table()`` in gbounds returns.

  Attributes:
    columns: column names.
    rows: one tuple per row, ``len(columns)`` values each.
    title: optional caption.
  """
  columns: tuple[str, ...]
  rows: tuple[tuple[Any, ...], ...]
  title: str = ""

  def __post_init__(self):
    object.__setattr__(self, "columns", tuple(self.columns))
    object.__setattr__(self, "rows", tuple(tuple(r) for r in self.rows))
    for i, r in enumerate(self.rows):
      if len(r) != len(self.columns):
        raise ValueError(f"Table row {i} has {len(r)} values for {len(self.columns)} columns")

  def records(self) -> list[dict[str, Any]]:
    """The rows as dicts.

    Returns:
      One ``{column: value}`` dict per row.
    """
    return [dict(zip(self.columns, r)) for r in self.rows]

  def column(self, name: str) -> list[Any]:
    """The values of one column.

    Args:
      name: the column's name.

    Returns:
      Its values, one per row.
    """
    i = self.columns.index(name)
    return [r[i] for r in self.rows]

  def to_csv(self) -> str:
    """The table as CSV.

    Returns:
      CSV text, the header line first.
    """
    import csv
    import io
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(self.columns)
    for r in self.rows:
      w.writerow([encode(v) if not isinstance(v, (str, int, float)) else v for v in r])
    return buf.getvalue()

  def to_text(self) -> str:
    """The table as aligned plain text.

    Returns:
      The title (if any), the header, a rule and one line per row.
    """
    cells = [list(self.columns)] + [[_fmt(v) for v in r] for r in self.rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(self.columns))]
    lines = ["  ".join(c[i].ljust(widths[i]) for i in range(len(widths))).rstrip() for c in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if self.title:
      lines.insert(0, self.title)
    return "\n".join(lines)

  def __str__(self) -> str:
    return self.to_text()
