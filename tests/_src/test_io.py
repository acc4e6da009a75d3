"""Atomic writers (gbounds._src.io): results get an ordinary file mode, not mkstemp's 0600."""

import os

from gbounds._src import io as _io


def test_atomic_write_gives_the_umask_mode(tmp_path):
  old = os.umask(0o027)
  try:
    path = tmp_path / "r.json"
    _io.atomic_write_json(path, {"a": 1})
    assert (os.stat(path).st_mode & 0o777) == 0o640
    assert _io.read_json(path) == {"a": 1}
  finally:
    os.umask(old)
