"""Atomic writers, checked readers and figures (gbounds._src.io), checked with hashlib, json,
numpy and matplotlib directly."""

import enum
import hashlib
import json
import os
import sys

import numpy as np
import pytest

from gbounds._src import io as _io
from gbounds._src.errors import CorruptFileError


def test_atomic_write_gives_the_umask_mode(tmp_path):
  old = os.umask(0o027)
  try:
    path = tmp_path / "r.json"
    _io.atomic_write_json(path, {"a": 1})
    assert (os.stat(path).st_mode & 0o777) == 0o640
    assert _io.read_json(path) == {"a": 1}
  finally:
    os.umask(old)


def _no_temporaries(directory):
  assert [p.name for p in directory.iterdir() if p.name.endswith(".tmp")] == []
  assert _io.temporaries(directory) == []


def test_atomic_write_bytes_text_json_digest_and_no_temporaries(tmp_path):
  d = tmp_path / "sub" / "dir"  # parents are created
  digest = _io.atomic_write_bytes(d / "a.bin", b"\x00\x01abc")
  assert (d / "a.bin").read_bytes() == b"\x00\x01abc"
  assert digest == hashlib.sha256(b"\x00\x01abc").hexdigest() == _io.sha256_file(d / "a.bin")
  digest = _io.atomic_write_text(d / "t.txt", "héllo\n")
  assert (d / "t.txt").read_bytes() == "héllo\n".encode()
  assert digest == hashlib.sha256("héllo\n".encode()).hexdigest()
  _no_temporaries(d)


class _Mode(enum.Enum):
  FAST = "fast"


def test_atomic_write_json_numpy_and_enums(tmp_path):
  obj = {"a": np.float32(0.5), "b": np.arange(3), "c": [np.int64(2)], "m": _Mode.FAST}
  digest = _io.atomic_write_json(tmp_path / "r.json", obj)
  text = (tmp_path / "r.json").read_text()
  assert json.loads(text) == {"a": 0.5, "b": [0, 1, 2], "c": [2], "m": "fast"}
  assert text.endswith("\n") and digest == hashlib.sha256(text.encode()).hexdigest()
  assert _io.read_json(tmp_path / "r.json") == json.loads(text)
  with pytest.raises(TypeError, match="not JSON serialisable"):
    _io.atomic_write_json(tmp_path / "bad.json", {"x": object()})
  assert not (tmp_path / "bad.json").exists()
  _no_temporaries(tmp_path)


def test_atomic_write_replaces_and_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
  path = tmp_path / "r.txt"
  _io.atomic_write_text(path, "old")
  _io.atomic_write_text(path, "new")
  assert path.read_text() == "new"

  def boom(f, data):
    f.write(data[:2])
    raise KeyboardInterrupt  # a BaseException, as a signal would be

  monkeypatch.setattr(_io, "_write_all", boom)
  with pytest.raises(KeyboardInterrupt):
    _io.atomic_write_text(path, "newest")
  assert path.read_text() == "new"
  _no_temporaries(tmp_path)


def test_npz_round_trip_and_digest(tmp_path):
  arrays = {"x": np.arange(6.0).reshape(2, 3), "y": np.array([1, 2], np.int32),
            "z": np.array(3.5)}
  digest = _io.atomic_write_npz(tmp_path / "a.npz", **arrays)
  back = _io.read_npz(tmp_path / "a.npz", sha256=digest)
  assert set(back) == set(arrays)
  for k, v in arrays.items():
    np.testing.assert_array_equal(back[k], v)
    assert back[k].dtype == v.dtype
  with np.load(tmp_path / "a.npz") as z:  # a plain numpy archive
    np.testing.assert_array_equal(z["x"], arrays["x"])
  assert _io.npz_bytes(**arrays) == (tmp_path / "a.npz").read_bytes()


def test_read_npz_damage_raises_corrupt_file_error_naming_the_file(tmp_path):
  good = tmp_path / "good.npz"
  digest = _io.atomic_write_npz(good, x=np.arange(1000.0))
  data = good.read_bytes()
  cases = {
      "missing.npz": None,
      "empty.npz": b"",
      "text.npz": b"hello, not a zip",
      "truncated.npz": data[: len(data) // 2],
  }
  for name, content in cases.items():
    if content is not None:
      (tmp_path / name).write_bytes(content)
    with pytest.raises(CorruptFileError, match=name):
      _io.read_npz(tmp_path / name)
  with pytest.raises(CorruptFileError, match="SHA-256"):
    _io.read_npz(good, sha256="0" * 64)
  _io.read_npz(good, sha256=digest)
  np.savez(tmp_path / "pickled.npz", o=np.array([{"a": 1}], dtype=object))
  with pytest.raises(CorruptFileError, match="pickled.npz"):
    _io.read_npz(tmp_path / "pickled.npz")


def test_read_json_damage(tmp_path):
  with pytest.raises(CorruptFileError, match="no such file"):
    _io.read_json(tmp_path / "absent.json")
  (tmp_path / "half.json").write_text('{"a": [1, 2')
  with pytest.raises(CorruptFileError, match="half.json"):
    _io.read_json(tmp_path / "half.json")
  (tmp_path / "latin.json").write_bytes(b'"\xff"')
  with pytest.raises(CorruptFileError, match="latin.json"):
    _io.read_json(tmp_path / "latin.json")


def test_temporaries_are_named_after_their_targets(tmp_path):
  assert _io.temporary_target(".results.json.ab12_x.tmp") == "results.json"
  assert _io.temporary_target(".chunk.npz.k3j.tmp.npz") == "chunk.npz"
  assert _io.temporary_target("results.json") is None
  assert _io.temporary_target(".hidden") is None
  (tmp_path / ".r.json.abc.tmp").write_text("partial")
  (tmp_path / "r.json").write_text("{}")
  assert _io.temporaries(tmp_path) == [(tmp_path / ".r.json.abc.tmp", "r.json")]


def test_figures_without_pyplot_or_backend_change(tmp_path):
  matplotlib = pytest.importorskip("matplotlib")
  had_pyplot = "matplotlib.pyplot" in sys.modules
  # the private getter reads the backend without resolving (and so selecting) one
  backend = matplotlib.rcParams._get_backend_or_none()
  fig, ax = _io.new_figure(figsize=(2, 1.5))
  ax.plot([0, 1], [1, 0])
  png = _io.figure_png(fig, dpi=50)
  assert png.startswith(b"\x89PNG\r\n\x1a\n")
  fig2, axes = _io.new_figure(nrows=1, ncols=2, sharey=True)
  assert len(axes) == 2
  _io.atomic_write_figure(tmp_path / "f.png", fig, dpi=50)
  assert (tmp_path / "f.png").read_bytes().startswith(b"\x89PNG")
  assert ("matplotlib.pyplot" in sys.modules) == had_pyplot
  assert matplotlib.rcParams._get_backend_or_none() == backend
  _no_temporaries(tmp_path)


def test_atomic_write_figure_returns_what_it_documents(tmp_path):
  pytest.importorskip("matplotlib")
  fig, ax = _io.new_figure(figsize=(1, 1))
  out = _io.atomic_write_figure(tmp_path / "f.png", fig, dpi=20)
  doc = _io.atomic_write_figure.__doc__ or ""
  if "SHA-256" in doc:
    assert out == hashlib.sha256((tmp_path / "f.png").read_bytes()).hexdigest()
  else:
    assert out == str(tmp_path / "f.png"), (
        "atomic_write_figure's docstring says it returns the path; it returns " + out)
