"""``gbounds reproduce --all`` / ``--summary``: resume from finished results, one line per
published number (fake finished results; nothing heavy runs)."""

import json
import math

import pytest

import gbounds.experiments as ge
from gbounds.analysis import write_report
from gbounds.cli import main as cli_main
from gbounds.experiments import _registry as rr


def _fake(name: str, **overrides) -> rr.Reproduction:
  """A finished reproduction of ``name`` whose numbers equal the published ones (booleans:
  the claim), with the resolved configuration of the preset plus ``overrides``."""
  resolved = rr.resolved_config(name, **overrides)
  table = ge.published_table(name)
  rows = []
  for q in rr.planned_quantities(name, resolved):
    p = table.get(q)
    ours = math.nan if p is None or isinstance(p.value, str) else p.value
    rows.append(rr.Comparison(q, ours, math.nan))
  prov = rr.provenance(resolved, started=0.0, seconds=1.0)
  return rr.Reproduction(name, name, dict(rr.TARGETS[name].cpu, **overrides),
                         rr.compare(name, rows, resolved), {}, (), "", 1.0, resolved, prov)


def _write_all(root, names=None):
  for name in names or rr.TARGETS:
    write_report(_fake(name).report(), root / name)


@pytest.fixture
def no_runs(monkeypatch):
  """Fails the test if any target runs; returns the list of names run by the fake runner."""
  ran = []

  def fake_reproduce(name, *, full=False, data_dir=None, out_dir=None, progress=None, **o):
    ran.append(name)
    return _fake(name, **o)

  monkeypatch.setattr(ge, "reproduce", fake_reproduce)
  return ran


def _expected_lines():
  """(target, quantity, verdict) of every published number the CPU presets produce."""
  out = []
  for name in rr.TARGETS:
    rep = _fake(name)
    out += [(name, r.quantity, r.verdict) for r in rep.rows if r.verdict]
  return out


def test_summary_reads_finished_results_without_running(tmp_path, capsys, no_runs):
  _write_all(tmp_path)
  assert cli_main(["reproduce", "--summary", "--out", str(tmp_path)]) == 0
  out = capsys.readouterr().out
  assert no_runs == []
  lines = out.splitlines()
  expected = _expected_lines()
  for name, quantity, verdict in expected:
    hits = [ln for ln in lines if ln.startswith(name) and quantity in ln]
    assert len(hits) == 1, (name, quantity)
    assert hits[0].rstrip().endswith(verdict)
  # Numbers equal to the published ones agree, unless the configuration or the number says
  # otherwise: the CPU f-CMI preset (an MLP) is not comparable; Table 1 of the sample-
  # information paper is unconfirmed; qualitative claims are not comparable.
  verdicts = {(n, q): v for n, q, v in expected}
  assert verdicts[("fcmi_mnist_4v9", "n=75: f-CMI bound")] == "not comparable"
  assert verdicts[("sample_info_correlation", "weights_lambda0")] == "unconfirmed"
  assert verdicts[("activation_information",
                   "colored MNIST: Kendall tau, mean mi vs val. accuracy")] == "agree"
  assert verdicts[("wang_mao_synthetic", "n=5: every bound >= gap")] == "agree"
  assert verdicts[("permuted_label_geometry",
                   "final: permuted-label fit (memorization)")] == "not comparable"
  counts = {v: sum(1 for *_, w in expected if w == v) for v in ge.VERDICTS}
  assert "; ".join(f"{n} {v}" for v, n in counts.items()) in out


def test_summary_names_missing_and_other_configurations(tmp_path, capsys, no_runs):
  _write_all(tmp_path, ["wang_mao_synthetic"])
  write_report(_fake("supervision_complexity", seed=3).report(), tmp_path / "supervision_complexity")
  assert cli_main(["reproduce", "--summary", "--out", str(tmp_path)]) == 0
  out = capsys.readouterr().out
  assert no_runs == []
  assert "fcmi_mnist_4v9: not run" in out
  assert "supervision_complexity: finished with another configuration" in out
  assert "teacher labels: lower normalized complexity than one-hot" in out  # still shown


def test_all_skips_finished_targets_and_runs_the_rest(tmp_path, capsys, no_runs):
  names = list(rr.TARGETS)
  _write_all(tmp_path, names[:-2])
  # The next to last finished with another configuration: rerun; the last never ran.
  write_report(_fake(names[-2], seed=5).report(), tmp_path / names[-2])
  assert cli_main(["reproduce", "--all", "--out", str(tmp_path)]) == 0
  out = capsys.readouterr().out
  assert no_runs == names[-2:]
  for name in names[:-2]:
    assert f"== {name}: finished with the same configuration" in out
  for name in names[-2:]:
    assert f"== {name}: running into" in out
    saved = json.loads((tmp_path / name / "report.json").read_text())
    assert saved["resolved_config"] == rr.resolved_config(name)
    assert saved["provenance"]["versions"]["numpy"]
  # Everything is finished now: a second --all runs nothing, and the summary is complete.
  assert cli_main(["reproduce", "--all", "--summary", "--out", str(tmp_path)]) == 0
  out = capsys.readouterr().out
  assert no_runs == names[-2:]
  assert "not run" not in out
  for _name, quantity, _ in _expected_lines():
    assert quantity in out


def test_all_full_is_another_configuration(tmp_path, capsys, no_runs):
  _write_all(tmp_path, ["wang_mao_synthetic"])
  cli_main(["reproduce", "--all", "--full", "--out", str(tmp_path)])
  capsys.readouterr()
  assert "wang_mao_synthetic" in no_runs  # the CPU run does not stand in for --full


def test_all_and_summary_refuse_set_and_a_name(tmp_path, capsys):
  assert cli_main(["reproduce", "--all", "--set", "k1=2", "--out", str(tmp_path)]) == 2
  assert "--set" in capsys.readouterr().err
  assert cli_main(["reproduce", "wang_mao_synthetic", "--all", "--out", str(tmp_path)]) == 2
  assert "--all" in capsys.readouterr().err
  assert cli_main(["reproduce", "--list"]) == 0
  assert "wang_mao_synthetic" in capsys.readouterr().out
