"""The command line's error contract: user errors exit 2 with one line naming the flag, never a
traceback; internal bugs keep their traceback; option checks run before any data or training."""

import contextlib
import io
import math
import os
import subprocess
import sys

import pytest

import gbounds
from gbounds._src import errors as _errors
from gbounds.cli import _common, build_parser, main


def _run(argv):
  out, err = io.StringIO(), io.StringIO()
  with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    rc = main(list(argv))
  return rc, out.getvalue(), err.getvalue()


def _patch_command(monkeypatch, command, func):
  """Replaces ``command``'s handler: build_parser registers the modules afresh on every call,
  so the module-level ``_run`` is patched."""
  import gbounds.cli._fcmi as fcmi_cli
  import gbounds.cli._main as main_cli
  mod = {"fcmi": fcmi_cli, "main": main_cli}[command]
  monkeypatch.setattr(mod, "_run", func)


@pytest.mark.parametrize("exc", [
    _errors.InvalidInputError("a message\nover two lines"),
    _errors.CorruptFileError("/data/mnist/x.gz: truncated. Delete it."),
    _errors.StoreLockedError("results/ is locked by pid 123"),
    _errors.DataNotFoundError("x.gz is not in /data"),
    _errors.ConvergenceError("lanczos did not converge"),
])
def test_library_errors_exit_2_with_one_line(monkeypatch, exc):
  def boom(args):
    raise exc
  _patch_command(monkeypatch, "main", boom)
  rc, _, err = _run(["main"])
  assert rc == 2
  assert err.count("\n") == 1 and err.startswith("gbounds main: error: ")
  assert "Traceback" not in err
  assert " ".join(str(exc).split()) in err


def test_internal_bugs_keep_their_traceback(monkeypatch):
  def bug(args):
    raise ZeroDivisionError("an internal bug")
  _patch_command(monkeypatch, "main", bug)
  with pytest.raises(ZeroDivisionError, match="an internal bug"):
    main(["main"])


def test_library_argument_is_named_by_its_flag(monkeypatch):
  def bad(args):
    _errors.fail("learning_rate", "a positive number", -1)
  _patch_command(monkeypatch, "fcmi", bad)
  rc, _, err = _run(["fcmi"])
  assert rc == 2
  assert err == ("gbounds fcmi: error: --learning-rate: expected a positive number, got -1 "
                 "instead.\n")


def test_argument_that_is_not_a_flag_is_left_alone(monkeypatch):
  def bad(args):
    _errors.fail("theta", "a finite kernel", "nan")
  _patch_command(monkeypatch, "fcmi", bad)
  _, _, err = _run(["fcmi"])
  assert err == "gbounds fcmi: error: theta: expected a finite kernel, got nan instead.\n"


def test_usage_errors_are_one_line_and_return_2():
  rc, _, err = _run(["fcmi", "--k1", "two"])
  assert rc == 2 and err.count("\n") == 1
  assert "argument --k1: invalid int value: 'two'" in err and "gbounds fcmi --help" in err


def test_help_returns_0():
  rc, out, err = _run(["fcmi", "--help"])
  assert rc == 0 and "--classes" in out and err == ""


def test_fcmi_checks_options_before_training(monkeypatch, tmp_path, data_root):
  from gbounds.experiments import _fcmi as fe

  def no_training(*a, **k):
    raise AssertionError("training started")
  monkeypatch.setattr(fe, "run_fcmi_protocol", no_training)
  out = tmp_path / "out"
  for argv in (["--classes", "4", "11"], ["--ns", "900"], ["--k2", "1"], ["--hidden", "0"]):
    rc, _, err = _run(["fcmi", "--data-dir", data_root, "--out", str(out), *argv])
    assert rc == 2, err
    assert argv[0] in err
  assert not out.exists()  # nothing written either


def test_sample_info_checks_options_before_loading_data(monkeypatch, tmp_path):
  from gbounds.experiments import _sample_info as ex

  def no_data(*a, **k):
    raise AssertionError("data loaded")
  monkeypatch.setattr(ex, "mnist_4_vs_9", no_data)
  for argv in (["--n", "1"], ["--lr-fraction", "2"], ["--steps", "inf", "--experiment",
                                                         "reproduce"], ["--retrained", "0",
                                                                        "--experiment",
                                                                        "reproduce"]):
    rc, _, err = _run(["sample-info", "--out", str(tmp_path), *argv])
    assert rc == 2 and argv[0] in err, err


def test_sample_info_steps_inf_is_accepted_where_the_help_promises_it():
  parser = build_parser()
  args = parser.parse_args(["sample-info", "--steps", "inf"])
  assert args.steps == math.inf
  from gbounds.cli import _sample_info
  _sample_info.check_args(args)  # 'info' takes t = inf
  args = parser.parse_args(["sample-info", "--steps", "inf", "--experiment", "mislabeled"])
  _sample_info.check_args(args)
  assert parser.parse_args(["sample-info", "--steps", "250"]).steps == 250


def test_option_checkers():
  assert _common.check_int("--n", 3, 1, 5) == 3
  assert _common.check_float("--x", 0.5, low=0, high=1) == 0.5
  for bad in (True, 2.0, "3", 0, 6):
    with pytest.raises(gbounds.InvalidInputError, match=r"^--n: expected an integer in \[1, 5\]"):
      _common.check_int("--n", bad, 1, 5)
  for bad in (math.nan, math.inf, -0.1, "0.5", None):
    with pytest.raises(gbounds.InvalidInputError, match=r"^--x: expected a finite number >= 0"):
      _common.check_float("--x", bad, low=0)


@pytest.mark.slow
def test_console_entry_point_prints_one_line_without_traceback(tmp_path):
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  proc = subprocess.run(
      [sys.executable, "-c", "import sys; from gbounds.cli import main; sys.exit(main())",
       "sample-info", "--noise-rate", "2", "--out", str(tmp_path)],
      capture_output=True, text=True, env=env, timeout=120)
  assert proc.returncode == 2
  assert proc.stderr == ("gbounds sample-info: error: --noise-rate: expected a number in [0, 1], "
                         "got 2.0 instead.\n")
