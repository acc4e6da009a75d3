"""Tests for the reproduction registry (gbounds.experiments._registry) and ``gbounds reproduce``."""

import json
import math

import pytest

from gbounds import GBoundsError, InvalidInputError
from gbounds.cli import main as cli_main
from gbounds.experiments import _registry as rr

EXPECTED = {"fcmi_mnist_4v9", "sample_info_correlation", "pac_bayes_binary_mnist",
            "wang_mao_synthetic", "limit_label_noise", "supervision_complexity",
            "permuted_label_geometry", "activation_information", "pac_bayes_certificates"}


def test_every_target_listed_with_cpu_and_full_configs():
  rows = {t["name"]: t for t in rr.list_targets()}
  assert EXPECTED <= set(rows)
  for t in rows.values():
    assert isinstance(t["cpu"], dict) and isinstance(t["full"], dict) and t["full"] != t["cpu"]
    assert t["paper"] and t["title"]
  # The pieces of this checkout are all present.
  assert all(rows[n]["available"] for n in EXPECTED), {n: rows[n]["reason"] for n in EXPECTED}


def test_cli_list(capsys):
  assert cli_main(["reproduce", "--list"]) == 0
  out = capsys.readouterr().out
  for name in EXPECTED:
    assert name in out


def test_missing_module_is_listed_not_fatal(monkeypatch):
  fake = rr.Target("fake", "Fake", "nobody", ("no_such_module_for_gbounds",), {}, {"a": 1},
                   lambda *a, **k: None)
  monkeypatch.setitem(rr.TARGETS, "fake", fake)
  rows = {t["name"]: t for t in rr.list_targets()}
  assert rows["fake"]["available"] is False and "not found" in rows["fake"]["reason"]
  with pytest.raises(GBoundsError, match="not available"):
    rr.reproduce("fake")


def test_unknown_target():
  with pytest.raises(InvalidInputError, match="fcmi_mnist_4v9"):
    rr.reproduce("no_such_target")


def test_small_synthetic_run_and_report(tmp_path, capsys):
  rc = cli_main(["reproduce", "wang_mao_synthetic", "--set", "ns=[4]", "k1=2", "k2=4",
                 "steps=30", "--out", str(tmp_path)])
  assert rc == 0
  out = capsys.readouterr().out
  assert "n=4: measured gap" in out
  payload = json.loads((tmp_path / "report.json").read_text())
  assert payload["name"] == "wang_mao_synthetic" and payload["config"]["k1"] == 2
  assert (tmp_path / "report.html").exists() and (tmp_path / "wang_mao_synthetic.csv").exists()
  # The bound-validity row is computed from the rows themselves: recheck it.
  row = payload["result"]["rows"][0]
  valid = all(v >= row["gap"] - 1e-12 for v in row["bounds"].values())
  rows = {r["quantity"]: r for r in payload["rows"]}
  assert rows["n=4: every bound >= gap"]["ours"] == valid


@pytest.mark.slow
def test_pac_bayes_target_small(data_root):
  res = rr.reproduce("pac_bayes_binary_mnist", data_dir=data_root, n_train=500, n_test=500,
                     hidden=[64], epochs=3, mc_samples=20)
  rows = {r.quantity: r for r in res.rows}
  cert = rows["PAC-Bayes-kl certificate"].ours
  assert 0 < cert <= 1 and math.isfinite(rows["KL(Q||P) (nats)"].ours)
  assert res.payload["n"] == 500


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_preset_passes_the_override_checks(name):
  """Valid configurations are never refused: each preset, given back as overrides, is
  accepted; its keys are among those the runner understands."""
  t = rr.TARGETS[name]
  assert t.accepts is not None
  rr.check_overrides(name, dict(t.cpu))
  rr.check_overrides(name, dict(t.full))
  assert set(t.cpu) | set(t.full) <= set(t.accepts())


def test_override_checks_refuse_unknown_keys_and_wrong_kinds():
  with pytest.raises(InvalidInputError, match=r"overrides: .*unknown key\(s\) \['stepz'\]"):
    rr.check_overrides("wang_mao_synthetic", {"stepz": 3})
  with pytest.raises(InvalidInputError, match=r"ns: expected a list"):
    rr.check_overrides("wang_mao_synthetic", {"ns": "5,10"})
  with pytest.raises(InvalidInputError, match=r"epochs: expected an integer"):
    rr.check_overrides("pac_bayes_binary_mnist", {"epochs": 2.5})
  rr.check_overrides("pac_bayes_binary_mnist", {"learning_rate": 1, "epochs": 3.0})
  rr.check_overrides("pac_bayes_binary_mnist", {"delta": 0.05})  # a certificate option
