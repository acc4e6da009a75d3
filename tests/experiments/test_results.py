"""Result types of gbounds.experiments: JSON round trips (to_dict/from_dict), table() types, and
figures drawn without pyplot."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest

import gbounds
import gbounds.experiments as ex
from gbounds._src import io as _io
from gbounds.viz import _experiments as viz


def _roundtrip(obj):
  return type(obj).from_dict(json.loads(json.dumps(obj.to_dict())))


def _fcmi_row(n):
  return ex.FcmiRow(n, 0.2, 0.01, 0.3, 0.25, 0.05, 0.1, 0.05, 0.12, 10, 1.5)


def test_fcmi_results_round_trip_and_tables():
  protocol = ex.small_protocol(ns=(10, 20))
  assert _roundtrip(protocol) == protocol
  table = ex.FcmiTable((_fcmi_row(10), _fcmi_row(20)), protocol.to_json())
  assert _roundtrip(table) == table
  rep = ex.FcmiReproduction(table, dict(ex.PUBLISHED_FCMI))
  assert _roundtrip(rep) == rep
  t = table.table()
  assert isinstance(t, gbounds.Table) and t.column("n") == [10, 20]
  c = rep.comparison()
  assert isinstance(c, gbounds.Table) and all(math.isnan(v) for v in c.column("gap (published)"))
  row = ex.SyntheticRow(5, 0.1, 0.0, {"fcmi": 0.3, "ldcmi_sqrt": 0.2})
  assert _roundtrip(row) == row


def test_sample_info_results_round_trip():
  rep = ex.SampleInfoReproduction({"weights_lambda0": 0.9, "mislabeled_auroc": 0.8},
                                  dict(ex.PUBLISHED_TABLE1_MLP), {"n_train": 10, "seed": 0})
  assert _roundtrip(rep) == rep
  t = rep.table()
  assert isinstance(t, gbounds.Table)
  assert t.records()[0] == {"quantity": "weights_lambda0", "ours": 0.9, "published": 0.987}
  corr = ex.LooCorrelation(0.9, float("nan"), 0.8, 3)
  back = _roundtrip(corr)
  assert (back.weights, back.num_retrained) == (0.9, 3) and math.isnan(back.predictions)
  loo = ex.RetrainedLoo(np.arange(3), np.ones((3, 4), np.float32), None, 1.0)
  back = _roundtrip(loo)
  np.testing.assert_array_equal(back.indices, loo.indices)
  np.testing.assert_array_equal(back.weight_change, loo.weight_change)
  assert back.heldout_prediction_change is None


def test_weight_info_results_round_trip_and_tables():
  rows = (ex.LimitRow(0.2, "cross_entropy", 0.9, 0.8, 0.85, 0.5, 3.0),
          ex.LimitRow(0.2, "limit_g", 0.92, 0.7, 0.88, float("nan"), 4.0))
  lim = ex.LimitReproduction(rows, {"epochs": 1})
  back = _roundtrip(lim)
  assert back.rows[0] == rows[0] and math.isnan(back.rows[1].memorized_fraction)
  assert isinstance(lim.table(), gbounds.Table) and lim.table().column("method") == [
      "cross_entropy", "limit_g"]
  assert "| 20% | limit_g |" in lim.markdown()
  sup = ex.SupervisionReproduction((ex.SupervisionRow("one_hot", 3.6, 1.2, 0.16, 1.0, 40.3),),
                                   {"ridge": 0.01})
  assert _roundtrip(sup) == sup
  assert sup.table().rows == (("one_hot", 3.6, 1.2, 0.16, 1.0, 40.3),)
  assert "| one_hot |" in sup.markdown()


def test_memorization_results_round_trip_and_table():
  cfg = ex.SettingsConfig(seeds=1)
  assert _roundtrip(cfg) == cfg
  rec = ex.ModelRecord("colored", 0.0, 0, 1.0, 0.6, 2.0, 0.1)
  assert _roundtrip(rec) == rec

  def result(name):
    return ex.SettingsResult(name, (rec,), (0.0, 0.5), {"val_accuracy": [0.6, 0.7]}, 1.0, 0.5,
                             0.9, 0.4, (np.ones(3), np.zeros(3)), (np.ones(2), np.ones(2)))
  rep = ex.MemorizationReproduction(result("colored"), result("shuffled"), cfg)
  back = _roundtrip(rep)
  assert back.config == cfg and back.colored.records == (rec,)
  np.testing.assert_array_equal(back.shuffled.entropies[0], np.ones(3))
  t = rep.table()
  assert isinstance(t, gbounds.Table) and len(t.rows) == 4
  assert t.records()[0]["paper"] == ex.PAPER_KENDALL_TAU["colored"]["entropy"]


def test_reproduction_round_trip_and_table():
  rows = (ex.Comparison("gap", 0.1, math.nan), ex.Comparison("valid", True, True))
  rep = ex.Reproduction("x", "X -- nobody", {"ns": [5]}, rows, {"rows": [1, 2]}, (), "text", 1.5)
  back = _roundtrip(rep)
  def same(a, b):  # NaN (nothing compared) round-trips as NaN
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a)
                      and math.isnan(b))
  for got, want in zip(back.rows, rows, strict=True):
    assert all(same(g, w) for g, w in zip(got, want, strict=True)), (got, want)
  assert back.config == rep.config and back.seconds == 1.5
  assert isinstance(rep.table(), gbounds.Table)
  assert rep.table().column("quantity") == ["gap", "valid"]


def test_registry_holds_callables_and_lists_its_keys():
  for name, t in ex.TARGETS.items():
    assert callable(t.runner), name
    assert all(not r.startswith("gbounds") for r in t.requires), name
    keys = ex.target_keys(name)
    assert keys is None or isinstance(keys, dict)
  assert set(ex.target_keys("wang_mao_synthetic")) >= {"ns", "k1", "k2", "steps"}
  assert ex.target_keys("fcmi_mnist_4v9")["scale"] == "cpu"
  with pytest.raises(gbounds.InvalidInputError, match="name"):
    ex.target_keys("no_such_target")


def test_experiment_figures_draw_on_given_axes(tmp_path):
  fig, ax = _io.new_figure()
  assert viz.plot_fsi_histogram(ax, np.exp(np.linspace(-3, 1, 20)), np.arange(20) < 5,
                                auroc=0.9) is ax
  fig, ax = _io.new_figure()
  viz.plot_summarisation(ax, [0.0, 0.5], {"most": [0.1, 0.2], "random": [0.1, 0.15]})
  rows, cols = viz.image_grid_shape(5)
  fig, axes = _io.new_figure(nrows=rows, ncols=cols)
  viz.plot_image_grid(axes, np.random.default_rng(0).random((6, 4, 4, 1)), np.arange(6.0),
                      count=5, labels=np.arange(6))
  fig, ax = _io.new_figure()
  viz.plot_fcmi_table(ax, [_fcmi_row(10), _fcmi_row(20)], published=ex.PUBLISHED_FCMI)
  ex.write_fcmi_figure(ex.FcmiTable((_fcmi_row(10),), {}), tmp_path / "f.png")
  assert (tmp_path / "f.png").read_bytes()[:4] == b"\x89PNG"


def test_library_code_imports_no_pyplot():
  code = ("import sys, gbounds.experiments, gbounds.cli, gbounds.viz._experiments; "
          "gbounds.cli.build_parser(); "
          "print('matplotlib.pyplot' in sys.modules)")
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
  assert out.stdout.strip() == "False"
