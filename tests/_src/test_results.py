"""One result convention (gbounds._src.results): to_dict/from_dict round trips through JSON for
frozen dataclasses and NamedTuples, and the Table type."""

from __future__ import annotations

import csv
import dataclasses
import enum
import io
import json
import math
import pathlib
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gbounds
from gbounds._src import results
from gbounds._src.results import ResultMixin, Table


class Method(enum.Enum):
  EXACT = "exact"
  LANCZOS = "lanczos"


class Level(enum.IntEnum):
  LOW = 1
  HIGH = 2


@dataclasses.dataclass(frozen=True)
class Inner(ResultMixin):
  value: float
  method: Method


class Point(NamedTuple):
  x: float
  label: str
  weights: np.ndarray
  to_dict = results.namedtuple_to_dict
  from_dict = classmethod(results.from_dict)


@dataclasses.dataclass(frozen=True)
class Outer(ResultMixin):
  name: str
  count: int
  ratio: float
  flag: bool
  method: Method
  level: Level
  array: np.ndarray
  from_jax: np.ndarray
  inner: Inner
  maybe_inner: Inner | None
  maybe_array: np.ndarray | None
  pair: tuple[int, float]
  floats: tuple[float, ...]
  inners: tuple[Inner, ...]
  methods: list[Method]
  by_method: dict[Method, float]
  point: Point
  path: pathlib.Path
  extra: Any = None
  note: str = "default"


def _outer(**overrides):
  kw = dict(
      name="run", count=3, ratio=0.25, flag=True, method=Method.LANCZOS, level=Level.HIGH,
      array=np.arange(6.0).reshape(2, 3), from_jax=jnp.asarray([1.5, -2.0]),
      inner=Inner(1.25, Method.EXACT), maybe_inner=None, maybe_array=np.array([1, 2, 3]),
      pair=(4, 0.5), floats=(0.1, 0.2), inners=(Inner(1.0, Method.EXACT), Inner(2.0,
                                                                            Method.LANCZOS)),
      methods=[Method.EXACT, Method.LANCZOS], by_method={Method.EXACT: 1.0, Method.LANCZOS: 2.0},
      point=Point(0.5, "p", np.array([0.25, 0.75])), path=pathlib.Path("/tmp/out.json"),
      extra={"k": [1, 2]})
  kw.update(overrides)
  return Outer(**kw)


def _assert_same(a, b):
  """Field by field: arrays by value, everything else by ==, types preserved."""
  if dataclasses.is_dataclass(a) or isinstance(a, tuple) and hasattr(a, "_fields"):
    assert type(a) is type(b)
    names = [f.name for f in dataclasses.fields(a)] if dataclasses.is_dataclass(a) else a._fields
    for n in names:
      _assert_same(getattr(a, n), getattr(b, n))
  elif isinstance(a, (np.ndarray, jax.Array)):
    assert isinstance(b, np.ndarray)
    np.testing.assert_array_equal(np.asarray(a), b)
  elif isinstance(a, (tuple, list)):
    assert type(a) is type(b) and len(a) == len(b)
    for x, y in zip(a, b):
      _assert_same(x, y)
  else:
    assert type(a) is type(b), (a, b)
    assert a == b


def _json_round_trip(obj):
  d = obj.to_dict()
  text = json.dumps(d)  # JSON-ready: must not raise
  return type(obj).from_dict(json.loads(text)), d


def test_dataclass_round_trip_through_json():
  r = _outer()
  back, d = _json_round_trip(r)
  _assert_same(r, back)
  assert d["method"] == "lanczos" and d["level"] == 2
  assert d["array"] == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
  assert d["inner"] == {"value": 1.25, "method": "exact"}
  assert d["by_method"] == {"exact": 1.0, "lanczos": 2.0}
  assert d["path"] == "/tmp/out.json"
  assert back.method is Method.LANCZOS and back.level is Level.HIGH
  assert back.by_method == {Method.EXACT: 1.0, Method.LANCZOS: 2.0}


@dataclasses.dataclass(frozen=True)
class JaxFields(ResultMixin):
  value: jax.Array
  maybe: jax.Array | None = None


def test_jax_array_fields_come_back_as_arrays():
  r = JaxFields(jnp.asarray([[1.0, 2.0]]), jnp.asarray(3.0))
  back, _ = _json_round_trip(r)
  assert isinstance(back.value, np.ndarray) and isinstance(back.maybe, np.ndarray)
  np.testing.assert_array_equal(back.value, [[1.0, 2.0]])


@dataclasses.dataclass(frozen=True)
class UnionFields(ResultMixin):
  like: jax.typing.ArrayLike
  number_or_array: float | np.ndarray


def test_union_array_fields_come_back_as_arrays():
  r = UnionFields(np.array([1.0, 2.0]), np.array([3.0]))
  back, _ = _json_round_trip(r)
  assert isinstance(back.like, np.ndarray) and isinstance(back.number_or_array, np.ndarray)


def test_dataclass_round_trip_optional_present_and_defaults():
  r = _outer(maybe_inner=Inner(3.0, Method.LANCZOS), maybe_array=None, note="given")
  back, _ = _json_round_trip(r)
  _assert_same(r, back)
  d = r.to_dict()
  del d["note"], d["extra"]
  again = Outer.from_dict(d)
  assert again.note == "default" and again.extra is None


def test_numpy_scalars_encode_as_python():
  r = _outer(count=np.int64(7), ratio=np.float32(0.5), flag=np.bool_(False))
  d = r.to_dict()
  assert type(d["count"]) is int and type(d["ratio"]) is float and type(d["flag"]) is bool
  json.dumps(d)


def test_nan_and_inf_survive_python_json():
  r = _outer(ratio=float("nan"), floats=(float("inf"), -1.0))
  back, _ = _json_round_trip(r)
  assert math.isnan(back.ratio) and back.floats == (float("inf"), -1.0)


def test_missing_required_field_is_named():
  d = _outer().to_dict()
  del d["count"]
  with pytest.raises(KeyError, match="count"):
    Outer.from_dict(d)


def test_namedtuple_round_trip():
  p = Point(1.5, "a", np.array([[1.0, 2.0]]))
  d = p.to_dict()
  assert d == {"x": 1.5, "label": "a", "weights": [[1.0, 2.0]]}
  back = Point.from_dict(json.loads(json.dumps(d)))
  _assert_same(p, back)
  assert results.to_dict(p) == d
  _assert_same(p, results.from_dict(Point, d))


def test_encode_rejects_unknown_types():
  with pytest.raises(TypeError, match="object"):
    results.encode(object())


def test_encode_plain_values():
  assert results.encode((1, 2.5, "s", None)) == [1, 2.5, "s", None]
  assert results.encode({Method.EXACT: np.float64(1.0), 3: "x"}) == {"exact": 1.0, "3": "x"}
  assert results.encode(jnp.asarray(2.0)) == 2.0
  assert results.encode(pathlib.PurePosixPath("a/b")) == "a/b"


def test_root_exports_table():
  assert gbounds.Table is Table


def _table():
  return Table(columns=["name", "value", "ok"],
               rows=[("a", 1.5, True), ("b,c", float("nan"), False), ("d", 12345.678, True)],
               title="Demo")


def test_table_normalises_to_tuples_and_validates():
  t = _table()
  assert t.columns == ("name", "value", "ok")
  assert isinstance(t.rows, tuple) and all(isinstance(r, tuple) for r in t.rows)
  with pytest.raises(ValueError, match="row 1"):
    Table(columns=("a", "b"), rows=[(1, 2), (3,)])
  with pytest.raises(dataclasses.FrozenInstanceError):
    t.title = "x"


def test_table_records_and_column():
  t = _table()
  assert t.records()[0] == {"name": "a", "value": 1.5, "ok": True}
  assert len(t.records()) == 3
  assert t.column("name") == ["a", "b,c", "d"]
  with pytest.raises(ValueError):
    t.column("missing")


def test_table_csv_parses_back():
  t = Table(columns=("method", "value", "vec"),
            rows=[(Method.EXACT, 0.5, np.array([1, 2])), ("x,y", 2, None)])
  rows = list(csv.reader(io.StringIO(t.to_csv())))
  assert rows == [["method", "value", "vec"], ["exact", "0.5", "[1, 2]"], ["x,y", "2", ""]]


def test_table_text():
  text = _table().to_text()
  lines = text.split("\n")
  assert lines[0] == "Demo"
  assert lines[1].split() == ["name", "value", "ok"]
  assert set(lines[2].replace(" ", "")) == {"-"}
  assert lines[3].split() == ["a", "1.5000", "yes"]
  assert lines[4].split() == ["b,c", "n/a", "no"]
  assert lines[5].split() == ["d", "1.235e+04", "yes"]
  # columns aligned: every value starts where its header starts
  start = lines[1].index("value")
  assert all(line[start - 2:start] == "  " for line in lines[3:])
  assert str(_table()) == text
  assert Table(columns=("a",), rows=[(Level.LOW,)]).to_text().split("\n")[-1] == "1"
  assert "\n" not in Table(columns=("a",), rows=[]).to_text().split("\n", 1)[0]


def test_table_round_trip():
  t = Table(columns=("a", "b"), rows=[("x", 1.0), ("y", 2.0)], title="T")
  back = Table.from_dict(json.loads(json.dumps(t.to_dict())))
  assert back == t
  untitled = Table(columns=("a",), rows=[(1,)])
  assert Table.from_dict(untitled.to_dict()) == untitled and untitled.title == ""


def test_table_text_formats_numpy_and_jax_scalars_like_python_ones():
  py = Table(columns=("ok", "x"), rows=[(True, 0.123456789)]).to_text()
  np_row = Table(columns=("ok", "x"), rows=[(np.bool_(True), jnp.asarray(0.123456789))]).to_text()
  assert np_row == py
