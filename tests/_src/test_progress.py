"""One progress convention (gbounds._src.progress): callback(done, total) and the tqdm bar."""

import pytest

from gbounds._src import progress
from gbounds._src.progress import ProgressCallback, TqdmCallback


def test_notify_calls_or_skips():
  calls = []
  progress.notify(lambda d, t: calls.append((d, t)), 2, 5)
  progress.notify(None, 3, 5)
  assert calls == [(2, 5)]


def test_plain_functions_satisfy_the_protocol():
  def cb(done: int, total: int) -> None:
    pass

  _: ProgressCallback = cb
  assert callable(_)


def test_tqdm_callback_draws_and_closes(capsys):
  pytest.importorskip("tqdm")
  cb = TqdmCallback("work", unit="chunk")
  for done in (1, 2, 3):
    cb(done, 4)
    assert cb.bar is not None and cb.bar.n == done and cb.bar.total == 4
  cb(4, 4)
  assert cb.bar is None  # closed at done == total
  err = capsys.readouterr().err
  assert "work" in err
  cb.close()  # idempotent


def test_tqdm_callback_total_may_change_and_reopen(capsys):
  pytest.importorskip("tqdm")
  cb = TqdmCallback("x")
  cb(1, 3)
  cb(2, 5)
  assert cb.bar.total == 5 and cb.bar.n == 2
  cb(5, 5)
  assert cb.bar is None
  cb(1, 2)  # a second pass opens a new bar
  assert cb.bar is not None
  cb.close()
  assert cb.bar is None
  capsys.readouterr()


def test_tqdm_callback_disabled_is_silent(capsys):
  cb = TqdmCallback("quiet", enabled=False)
  cb(1, 2)
  cb(2, 2)
  assert cb.bar is None
  assert capsys.readouterr().err == ""


def test_tqdm_callback_without_tqdm_is_silent(monkeypatch, capsys):
  import builtins
  real_import = builtins.__import__

  def no_tqdm(name, *args, **kwargs):
    if name.startswith("tqdm"):
      raise ImportError(name)
    return real_import(name, *args, **kwargs)

  monkeypatch.setattr(builtins, "__import__", no_tqdm)
  cb = TqdmCallback("nothing")
  cb(1, 2)
  assert cb.bar is None and cb.enabled is False
  cb(2, 2)
  assert capsys.readouterr().err == ""
