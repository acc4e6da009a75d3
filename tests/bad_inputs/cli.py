"""Bad command lines for the dispatcher (``gbounds``) and the ``main``, ``fcmi`` and
``sample-info`` commands.

A case calls ``gbounds.cli.main(argv)`` in process with stderr captured: exit status 2 raises
:class:`CliExit2` carrying the stderr text, which must be exactly one line naming the flag; any
other status is returned (so a 0 exit fails the case) and a traceback propagates. Every case
fails during the option checks, before any model is trained.
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import pathlib
import tempfile

from tests.bad_inputs import Case, CliExit2
from tests.bad_inputs import run_cli as _cli


@functools.cache
def _tmp() -> pathlib.Path:
  d = tempfile.TemporaryDirectory(prefix="gbounds_bad_cli_")
  _tmp.keep = d
  atexit.register(d.cleanup)
  root = pathlib.Path(d.name)
  (root / "list.json").write_text("[75, 250]")
  (root / "unknown.json").write_text(json.dumps({"ns": [10], "epoch": 3}))
  (root / "wrong_type.json").write_text(json.dumps({"k1": "five"}))
  (root / "broken.json").write_text('{"k1": 2,')
  (root / "a_file").write_text("not a directory")
  return root


@functools.cache
def _corrupt_data_dir() -> pathlib.Path:
  """A data directory whose MNIST test images are a plain (not gzip) file."""
  import gzip
  d = _tmp() / "corrupt_data" / "mnist"
  d.mkdir(parents=True)
  (d / "t10k-images-idx3-ubyte.gz").write_bytes(bytes([0, 0, 8, 3]) + b"\0" * 12)
  (d / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes([0, 0, 8, 1, 0, 0, 0, 0])))
  return d.parent


def _data_dir() -> str:
  from tests.conftest import SHARED_DATA
  return os.environ.get("GBOUNDS_DATA_DIR") or os.path.abspath(SHARED_DATA)


def _fcmi(*argv: str):
  return lambda: _cli("fcmi", "--data-dir", _data_dir(), "--out", str(_tmp() / "fcmi"), *argv)


def _si(*argv: str):
  return lambda: _cli("sample-info", "--data-dir", _data_dir(), "--out", str(_tmp() / "si"),
                      *argv)


_X = CliExit2

CASES = [
    # ---- dispatcher: argparse errors are one line, exit 2
    Case("cli/dispatch_unknown_command", "cli", lambda: _cli("analyse"), _X,
         r"^gbounds: error: argument COMMAND: invalid choice: 'analyse'.*--help"),
    Case("cli/dispatch_no_command", "cli", lambda: _cli(), _X,
         r"^gbounds: error: the following arguments are required: COMMAND"),
    Case("cli/main_unknown_flag", "cli", lambda: _cli("main", "--outdir", "x"), _X,
         r"unrecognized arguments: --outdir x"),
    Case("cli/main_out_is_a_file", "cli",
         lambda: _cli("main", "--out", str(_tmp() / "a_file")), _X,
         r"^gbounds main: error: --out: expected a writable directory.*a_file"),
    # ---- fcmi: flags, config file, data
    Case("cli/fcmi_ns_not_int", "cli", _fcmi("--ns", "many"), _X,
         r"^gbounds fcmi: error: argument --ns: invalid int value: 'many'"),
    Case("cli/fcmi_unknown_scale", "cli", _fcmi("--scale", "huge"), _X,
         r"argument --scale: invalid choice: 'huge'"),
    Case("cli/fcmi_classes_absent", "cli", _fcmi("--classes", "4", "11"), _X,
         r"^gbounds fcmi: error: --classes .*expected classes present in the dataset.*\[11\]"),
    Case("cli/fcmi_classes_repeated", "cli", _fcmi("--classes", "4", "4"), _X,
         r"^gbounds fcmi: error: --classes: expected two distinct class labels"),
    Case("cli/fcmi_learning_rate_negative", "cli", _fcmi("--learning-rate", "-1"), _X,
         r"--learning-rate: expected a positive finite number, got -1.0"),
    Case("cli/fcmi_learning_rate_nan", "cli", _fcmi("--learning-rate", "nan"), _X,
         r"--learning-rate: expected a positive finite number, got nan"),
    Case("cli/fcmi_k2_one", "cli", _fcmi("--k2", "1"), _X,
         r"--k2: expected at least 2 masks per supersample"),
    Case("cli/fcmi_epochs_zero", "cli", _fcmi("--epochs", "0"), _X,
         r"--epochs: expected a positive integer"),
    Case("cli/fcmi_chunk_size_zero", "cli", _fcmi("--chunk-size", "0"), _X,
         r"--chunk-size: expected a positive integer"),
    Case("cli/fcmi_hidden_zero", "cli", _fcmi("--hidden", "0"), _X,
         r"--hidden: expected positive hidden widths"),
    Case("cli/fcmi_ns_above_half_pool", "cli", _fcmi("--ns", "5000"), _X,
         r"--ns: expected n <= 750 \(half the pool of 1500 examples\), got 5000"),
    Case("cli/fcmi_test_size_whole_task", "cli", _fcmi("--test-size", "5000"), _X,
         r"--test-size: expected fewer than the 1991 examples"),
    Case("cli/fcmi_config_json_list", "cli",
         lambda: _fcmi("--config", str(_tmp() / "list.json"))(), _X,
         r"--config: expected a JSON object of FcmiProtocol fields, got a JSON list"),
    Case("cli/fcmi_config_unknown_key", "cli",
         lambda: _fcmi("--config", str(_tmp() / "unknown.json"))(), _X,
         r"--config: expected FcmiProtocol fields among .*unknown key\(s\) \['epoch'\]"),
    Case("cli/fcmi_config_wrong_type", "cli",
         lambda: _fcmi("--config", str(_tmp() / "wrong_type.json"))(), _X,
         r"--k1: expected a positive integer, got 'five'"),
    Case("cli/fcmi_config_not_json", "cli",
         lambda: _fcmi("--config", str(_tmp() / "broken.json"))(), _X,
         r"--config: expected a readable JSON file"),
    Case("cli/fcmi_config_missing", "cli",
         lambda: _fcmi("--config", str(_tmp() / "missing.json"))(), _X,
         r"--config: expected a readable JSON file"),
    Case("cli/fcmi_data_file_not_gzip", "cli",
         lambda: _cli("fcmi", "--data-dir", str(_corrupt_data_dir()), "--out",
                      str(_tmp() / "fcmi")), _X,
         r"^gbounds fcmi: error: .*t10k-images-idx3-ubyte.gz: not readable as gzip.*delete it"),
    # ---- sample-info: every option checked up front
    Case("cli/sample_info_n_zero", "cli", _si("--n", "0"), _X,
         r"^gbounds sample-info: error: --n: expected an integer in \[2, 1990\], got 0"),
    Case("cli/sample_info_n_plus_heldout", "cli", _si("--n", "1500", "--heldout", "600"), _X,
         r"--n \+ --heldout: expected at most the 1991"),
    Case("cli/sample_info_width_zero", "cli", _si("--width", "0"), _X,
         r"--width: expected an integer >= 1"),
    Case("cli/sample_info_steps_word", "cli", _si("--steps", "many"), _X,
         r"argument --steps: expected an integer or 'inf', got 'many'"),
    Case("cli/sample_info_steps_zero", "cli", _si("--steps", "0"), _X,
         r"--steps: expected an integer >= 1"),
    Case("cli/sample_info_steps_inf_retraining", "cli",
         _si("--steps", "inf", "--experiment", "summarisation"), _X,
         r"--steps: expected a finite number of steps for --experiment summarisation"),
    Case("cli/sample_info_lr_fraction_divergent", "cli", _si("--lr-fraction", "2.5"), _X,
         r"--lr-fraction: expected a number in \(0, 2\)"),
    Case("cli/sample_info_weight_decay_negative", "cli", _si("--weight-decay", "-1"), _X,
         r"--weight-decay: expected a finite number >= 0, got -1.0"),
    Case("cli/sample_info_noise_rate_above_one", "cli", _si("--noise-rate", "1.5"), _X,
         r"--noise-rate: expected a number in \[0, 1\]"),
    Case("cli/sample_info_sigma_zero", "cli", _si("--sigma", "0"), _X,
         r"--sigma: expected a finite number > 0, got 0.0"),
    Case("cli/sample_info_fsi_sigma_nan", "cli", _si("--fsi-sigma", "nan"), _X,
         r"--fsi-sigma: expected a finite number > 0, got nan"),
    Case("cli/sample_info_retrained_above_n", "cli",
         _si("--experiment", "reproduce", "--n", "50", "--retrained", "100"), _X,
         r"--retrained: expected an integer in \[1, 50\]"),
    Case("cli/sample_info_unknown_experiment", "cli", _si("--experiment", "loo"), _X,
         r"argument --experiment: invalid choice: 'loo'"),
    Case("cli/sample_info_unknown_time", "cli", _si("--time", "euler"), _X,
         r"argument --time: invalid choice: 'euler'"),
]
