"""Tests of the f-CMI experiments (gbounds.experiments._fcmi) and the ``gbounds fcmi`` CLI.

Bound values are checked against a brute-force numpy re-computation of the sample-wise f-CMI
estimator (nested loops over supersamples, pairs and masks), measured errors against the raw
predictions, and the synthetic study against the measured gap (every valid bound lies above it).
"""

import json
import math
from typing import Any

import numpy as np
import pytest

import gbounds
from gbounds.cli import main as cli_main
from gbounds.experiments import _fcmi as fe


def _brute_fcmi(masks, predictions):
  """(1/n) sum_i sqrt(2 I(F_i; U_i)) per supersample, plug-in MI by explicit counting."""
  k1, k2, n = masks.shape
  labels = predictions.argmax(-1)                       # (k1, k2, n, 2)
  out = []
  for a in range(k1):
    total = 0.0
    for i in range(n):
      f = [tuple(labels[a, b, i]) for b in range(k2)]
      u = [int(masks[a, b, i]) for b in range(k2)]
      mi = 0.0
      for fv in set(f):
        for uv in (0, 1):
          c = sum(1 for b in range(k2) if f[b] == fv and u[b] == uv)
          if c:
            pf = sum(1 for b in range(k2) if f[b] == fv) / k2
            pu = sum(1 for b in range(k2) if u[b] == uv) / k2
            mi += c / k2 * math.log((c / k2) / (pf * pu))
      total += math.sqrt(2 * max(mi, 0.0))
    out.append(total / n)
  return np.array(out)


def _toy_data(seed=0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(120, 6)).astype(np.float32)
  y = (x[:, 0] + 0.7 * rng.normal(size=120) > 0).astype(np.int32)
  return x[:90], y[:90], x[90:], y[90:]


TINY: dict[str, Any] = dict(ns=(8,), k1=2, k2=4, epochs=20, hidden=(8,), batch_size=8, learning_rate=0.05,
            chunk_size=None, seed=1)


def test_protocol_validation_and_json_roundtrip():
  p = fe.full_scale_protocol()
  assert p.architecture == fe.FcmiArchitecture.FCMI_CNN and (p.k1, p.k2, p.epochs) == (5, 30, 200)
  assert p.ns == (75, 250, 1000, 4000)
  assert fe.FcmiProtocol.from_json(json.loads(json.dumps(p.to_json()))) == p
  assert p.to_json()["architecture"] == "fcmi_cnn"
  with pytest.raises(gbounds.InvalidInputError, match="k2: expected at least 2"):
    fe.FcmiProtocol(k2=1)
  with pytest.raises(gbounds.InvalidInputError, match="ns: expected positive"):
    fe.FcmiProtocol(ns=(0,))
  with pytest.raises(gbounds.InvalidInputError, match="config: expected keys"):
    fe.FcmiProtocol.from_json({"n": 3})
  with pytest.raises(gbounds.InvalidInputError, match="architecture"):
    fe.FcmiProtocol(architecture="resnet")  # pyright: ignore[reportArgumentType]


def test_binary_pool_from_mnist_test_split(data_root):
  p = fe.cpu_scale_protocol()
  xp, yp, xt, yt = fe.binary_pool(p, data_root)
  assert len(yp) + len(yt) == 1991 and len(yt) == p.test_size
  assert set(np.unique(yp)) == {0, 1} and xp.shape[1:] == (28, 28, 1)
  # Held-out test images are not in the pool.
  pool_keys = {hash(r.tobytes()) for r in xp.reshape(len(xp), -1)}
  assert not any(hash(r.tobytes()) in pool_keys for r in xt.reshape(len(xt), -1))
  with pytest.raises(gbounds.InvalidInputError, match="ns: expected n <= 750"):
    fe.run_fcmi_protocol(fe.cpu_scale_protocol(ns=(751,)), data=(xp, yp, xt, yt))


def test_protocol_table_matches_brute_force(tmp_path):
  data = _toy_data()
  seen = []
  table = fe.run_fcmi_protocol(fe.FcmiProtocol(**TINY), data=data, out_dir=tmp_path,
                               progress=lambda done, total: seen.append((done, total)))
  assert seen[-1] == (8, 8)
  assert [r.n for r in table.rows] == [8]
  for row in table.rows:
    r = gbounds.supersample.load_supersample_results(tmp_path / f"n{row.n:05d}")
    per = _brute_fcmi(r.masks, r.predictions)
    assert row.fcmi_bound == pytest.approx(per.mean(), rel=1e-9, abs=1e-12)
    assert row.fcmi_bound_std == pytest.approx(per.std(), rel=1e-9, abs=1e-12)
    # Standard errors over the k1 supersamples: numpy's sample sd (ddof=1) / sqrt(k1).
    gap_a = np.array([np.mean([float(r.losses[a, b, i, 1 - r.masks[a, b, i]])
                               - float(r.losses[a, b, i, r.masks[a, b, i]])
                               for b in range(4) for i in range(row.n)]) for a in range(2)])
    test_a = r.test_error.astype(np.float64).mean(axis=1)
    for got, vals in ((row.fcmi_bound_se, per), (row.gap_se, gap_a),
                      (row.test_error_se, test_a)):
      assert got == pytest.approx(np.std(vals, ddof=1) / np.sqrt(2), rel=1e-9, abs=1e-12)
    assert row.fcmi_bound_per_supersample == pytest.approx(per, rel=1e-9, abs=1e-12)
    assert row.gap_per_supersample == pytest.approx(gap_a, rel=1e-9, abs=1e-12)
    assert np.mean(row.gap_per_supersample) == pytest.approx(row.gap, abs=1e-12)
    assert (row.k1, row.k2) == (2, 4)
    train = np.mean([[r.losses[a, b, i, r.masks[a, b, i]] for i in range(row.n)]
                     for a in range(2) for b in range(4)])
    ghost = np.mean([[r.losses[a, b, i, 1 - r.masks[a, b, i]] for i in range(row.n)]
                     for a in range(2) for b in range(4)])
    assert row.train_error == pytest.approx(train) and row.gap == pytest.approx(ghost - train)
    assert row.test_error == pytest.approx(r.test_error.mean())
    assert row.trainings == 8
  saved = json.loads((tmp_path / "table.json").read_text())
  assert saved["rows"][0]["fcmi_bound"] == pytest.approx(table.rows[0].fcmi_bound)
  assert saved["protocol"]["k2"] == 4
  prov = saved["provenance"]
  assert prov["steps_per_model"] == {"8": 20} and prov["seeds"]["design"] == 1
  assert "jax" in prov["versions"] and prov["seconds_per_n"]["8"] > 0
  assert fe.FcmiRow.from_dict(saved["rows"][0]) == table.rows[0]
  csv = (tmp_path / "table.csv").read_text().splitlines()
  assert csv[0].startswith("n,fcmi_bound") and len(csv) == 2
  assert "fcmi_bound_se" in csv[0].split(",") and "per_supersample" not in csv[0]
  # Resuming a finished run trains nothing and gives the same table.
  again = fe.run_fcmi_protocol(fe.FcmiProtocol(**TINY), data=data, out_dir=tmp_path)
  assert [r.fcmi_bound for r in again.rows] == [r.fcmi_bound for r in table.rows]
  assert "f-CMI bound" in table.format()


@pytest.mark.slow
def test_linearized_protocol_runs_and_matches_brute_force():
  data = _toy_data(1)
  proto = fe.FcmiProtocol(**{**TINY, "training": "linearized", "k2": 40})
  table = fe.run_fcmi_protocol(proto, data=data)
  for row in table.rows:
    r = gbounds.supersample.run_linearized_supersample(
        gbounds.models.MLP(hidden=proto.hidden, out=2), *data, n=row.n, k1=proto.k1, k2=proto.k2,
        seed=proto.seed, weight_decay=proto.ridge)
    assert row.fcmi_bound == pytest.approx(_brute_fcmi(r.masks, r.predictions).mean(), rel=1e-9)
    assert 0 <= row.fcmi_bound <= math.sqrt(2 * math.log(2)) + 1e-12
    assert row.trainings == 80


# With zero training error and 0-1 loss, these are tight to second order in the test error
# eps: the interpolating ones are equalities, and the fast-rate bound at C1 -> inf is
# 2 I_SL / log 2 with I_SL = h(eps/2) - h(eps)/2 = eps log(2)/2 + O(eps^2). Their plug-in
# estimates may fall a little below the measured gap from sampling noise alone.
_TIGHT = ("ldcmi_interpolating", "ecmi_interpolating", "ldcmi_fast_rate")


def test_make_classification_every_bound_above_gap():
  rows = fe.make_classification_study(ns=(8,), k1=4, k2=16, steps=300)
  for r in rows:
    assert len(r.bounds) >= 6, r
    assert r.gap > 0
    for name, value in r.bounds.items():
      if name in _TIGHT:
        assert value >= 0.8 * r.gap, (r.n, name, value, r.gap)
      else:
        assert value >= r.gap, (r.n, name, value, r.gap)


def test_cli_fcmi_config_and_flags(tmp_path, data_root):
  cfg = tmp_path / "cfg.json"
  cfg.write_text(json.dumps({"ns": [10], "k1": 2, "k2": 2, "epochs": 3, "hidden": [8],
                             "architecture": "mlp", "chunk_size": None}))
  out = tmp_path / "out"
  rc = cli_main(["fcmi", "--config", str(cfg), "--k2", "3", "--data-dir", data_root,
                 "--out", str(out), "--published"])
  assert rc == 0
  saved = json.loads((out / "table.json").read_text())
  assert saved["protocol"]["k2"] == 3 and saved["protocol"]["ns"] == [10]
  assert [r["n"] for r in saved["rows"]] == [10]
  assert (out / "fcmi.png").stat().st_size > 0 and (out / "table.csv").exists()
  assert json.loads((out / "protocol.json").read_text())["k2"] == 3
  assert cli_main(["fcmi", "--config", str(tmp_path / "missing.json"), "--out", str(out)]) == 2


def test_reproduce_fcmi_bad_scale():
  with pytest.raises(gbounds.InvalidInputError, match="scale"):
    fe.reproduce_fcmi(scale="huge")


@pytest.mark.slow
def test_small_fcmi_experiment_is_nonvacuous_and_above_gap(tmp_path, data_root):
  table = fe.small_fcmi_experiment(data_root, tmp_path)
  assert [r.n for r in table.rows] == [75, 250]
  for r in table.rows:
    assert r.gap < r.fcmi_bound < 1.0
    assert r.test_error < 0.2
  assert table.rows[1].fcmi_bound < table.rows[0].fcmi_bound
  assert (tmp_path / "fcmi.png").exists()


@pytest.mark.slow
def test_fcmi_notebook_executes(data_root, monkeypatch):
  nbformat = pytest.importorskip("nbformat")
  nbclient = pytest.importorskip("nbclient")
  import pathlib
  monkeypatch.setenv("GBOUNDS_DATA_DIR", data_root)
  path = pathlib.Path(__file__).resolve().parents[2] / "notebooks" / "fcmi_bounds.ipynb"
  nb = nbformat.read(path, as_version=4)
  nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                          resources={"metadata": {"path": str(path.parent)}}).execute()


@pytest.mark.slow
def test_make_classification_study_more_sizes():
  rows = fe.make_classification_study(ns=(5, 10, 20), k1=5, k2=20)
  for r in rows:
    for name, value in r.bounds.items():
      assert value >= (0.8 * r.gap if name in _TIGHT else r.gap), (r.n, name, value, r.gap)
  fcmi = [r.bounds["fcmi"] for r in rows]
  assert fcmi[0] > fcmi[-1]                       # the bound shrinks with n


def test_protocol_checks_keep_valid_values_and_refuse_bad_ones():
  loose: dict[str, Any] = dict(ns=[10.0, 20], hidden=np.array([8]), classes=[9, 4])
  p = fe.FcmiProtocol(**loose)
  assert p.ns == (10, 20) and p.hidden == (8,) and p.classes == (9, 4)
  assert fe.FcmiProtocol.from_json(p.to_json()) == p
  assert fe.small_protocol().to_json()["ns"] == [75, 250]
  with pytest.raises(gbounds.InvalidInputError, match=r"config: expected a JSON object"):
    fe.FcmiProtocol.from_json([1, 2])  # pyright: ignore[reportArgumentType]
  with pytest.raises(gbounds.InvalidInputError, match=r"dataset: expected one of"):
    fe.FcmiProtocol(dataset="cifar10")
  with pytest.raises(gbounds.InvalidInputError, match=r"ridge"):
    fe.FcmiProtocol(ridge=-1.0)


# The paper's recipe, read in the public code hrayrhar/f-CMI (commit 6794e3a / 2ffeef7):
# configs/binary-mnist-4layer-CNN.json: conv 32 (k4 s2 p1), conv 32 (k4 s2 p1), conv 64 (k3 s2
# p0), conv 256 (k3 s1 p0), each ReLU (+ BatchNorm, not modelled here), fc 128 ReLU, fc 2;
# scripts/fcmi_scripts.py (fcmi-mnist-4vs9-CNN): -b 128 -e 200, which_labels 4 9,
# ns [75, 250, 1000, 4000], n_seeds 5, n_S_seeds 30; scripts/fcmi_train_classifier.py defaults:
# optimizer adam, lr 1e-3, weight_decay 0; nnlib get_loaders_from_datasets: drop_last=False
# (an epoch is ceil(n / 128) steps).
PAPER_STAGES = ((32, 4, 2, 1), (32, 4, 2, 1), (64, 3, 2, 0), (256, 3, 1, 0))


@pytest.mark.parametrize("maker", [fe.paper_cnn_protocol, fe.fashion_protocol,
                                   fe.full_scale_protocol])
def test_paper_cnn_protocols_use_the_published_recipe(maker):
  p = maker()
  assert p.architecture == fe.FcmiArchitecture.FCMI_CNN
  model = fe._model(p)
  assert tuple((s.channels, s.kernel, s.stride, s.padding) for s in model.stages) == PAPER_STAGES
  assert tuple(model.dense) == (128,) and model.out == 2
  assert p.optimizer == gbounds.train.Optimizer.ADAM and p.learning_rate == 1e-3
  assert (p.batch_size, p.epochs, p.keep_last_batch) == (128, 200, True)
  assert p.training == fe.FcmiTraining.SGD
  # Steps per model as the paper's loader makes them: 200 epochs of ceil(n / 128) batches.
  for n, steps in ((75, 200), (250, 400), (1000, 1600), (4000, 6400)):
    assert fe.training_steps(p, n) == steps
  assert fe.FcmiProtocol.from_json(json.loads(json.dumps(p.to_json()))) == p


def test_paper_cnn_protocol_sizes_and_published_scope():
  p = fe.paper_cnn_protocol()
  assert (p.dataset, p.classes, p.ns) == ("mnist", (4, 9), (75, 250))
  assert set(p.ns) <= set(fe.PUBLISHED_FCMI)
  assert p.k1 >= 3 and p.k2 >= 2 and p.strategy == gbounds.train.MapStrategy.SEQUENTIAL
  assert p.chunk_size is not None and (p.k1 * p.k2) % p.chunk_size == 0              # no padded (wasted) trainings
  f = fe.fashion_protocol()
  assert (f.dataset, f.split, f.ns, f.k1, f.k2) == ("fashion_mnist", "train", (1000, 4000), 5, 30)
  # The trainer's own rule without keep_last_batch: floor(n / b) steps per epoch.
  assert fe.training_steps(fe.FcmiProtocol(), 250) == 200
  assert fe.training_steps(fe.FcmiProtocol(), 75) == 200
  with pytest.raises(gbounds.InvalidInputError, match="keep_last_batch"):
    fe.FcmiProtocol(keep_last_batch="yes")  # pyright: ignore[reportArgumentType]
  with pytest.raises(gbounds.InvalidInputError, match="scale"):
    fe.reproduce_fcmi(scale="paper")


def test_fashion_pool_is_a_binary_task_big_enough(data_root):
  p = fe.fashion_protocol()
  xp, yp, xt, yt = fe.binary_pool(p, data_root)
  assert (len(yp), len(yt)) == (10000, 2000) and 2 * max(p.ns) <= len(yp)
  assert set(np.unique(yp)) == {0, 1} and xp.shape[1:] == (28, 28, 1)
  assert abs(np.mean(yp) - 0.5) < 0.05


@pytest.mark.slow
def test_fashion_protocol_runs_without_published_numbers(tmp_path, data_root):
  rep = fe.reproduce_fcmi(scale="fashion", data_dir=data_root, out_dir=tmp_path,
                          ns=(6,), k1=2, k2=2, epochs=2, architecture="mlp", hidden=(4,),
                          chunk_size=None, k2_curve=(2, 3))
  assert rep.published == {} and [r.n for r in rep.table.rows] == [6]
  assert rep.bound_vs_masks == {6: {2: (pytest.approx(rep.table.rows[0].fcmi_bound), 0.0)}}
  assert fe.FcmiReproduction.from_dict(json.loads(json.dumps(rep.to_dict()))) == rep
  assert rep.comparison().rows[0][5] == "unpublished"
  assert (tmp_path / "table.json").exists() and (tmp_path / "fcmi.png").exists()


def test_agreement_verdicts():
  assert fe.agreement(0.30, 0.03, 0.2427) == "agrees"           # |diff| = 0.0573 <= 0.06
  assert fe.agreement(0.31, 0.03, 0.2427) == "above"            # 0.0673 > 0.06
  assert fe.agreement(0.10, 0.001, 0.1073) == "below"
  assert fe.agreement(0.10, 0.001, 0.1073, z=10) == "agrees"
  assert fe.agreement(0.10, math.nan, 0.1073) == "no SE"
  assert fe.agreement(0.10, None, 0.1073) == "no SE"
  assert fe.agreement(0.10, 0.01, math.nan) == "unpublished"


def test_resume_after_an_interrupted_run(tmp_path):
  data = _toy_data(2)
  proto = fe.FcmiProtocol(**{**TINY, "chunk_size": 2})          # 4 chunks of 2 models

  class Stop(Exception):
    pass

  def stop_after_first_chunk(done, total):
    if done >= 2:
      raise Stop

  with pytest.raises(Stop):
    fe.run_fcmi_protocol(proto, data=data, out_dir=tmp_path / "cut",
                         progress=stop_after_first_chunk)
  assert not (tmp_path / "cut" / "table.json").exists()
  assert len(list((tmp_path / "cut" / "n00008").glob("chunk_*.npz"))) == 1
  seen = []
  resumed = fe.run_fcmi_protocol(proto, data=data, out_dir=tmp_path / "cut",
                                 progress=lambda done, total: seen.append(done))
  assert seen == [2, 4, 6, 8]          # the finished chunk is loaded, 6 models are trained
  whole = fe.run_fcmi_protocol(proto, data=data, out_dir=tmp_path / "whole")
  # Same numbers as an uninterrupted run (model j depends only on the configuration and j).
  keys = [f for f in fe.FcmiRow._fields if f != "seconds"]
  assert [[getattr(r, k) for k in keys] for r in resumed.rows] == \
      [[getattr(r, k) for k in keys] for r in whole.rows]


def test_bound_vs_masks_uses_all_masks_at_full_k2(tmp_path):
  data = _toy_data(3)
  proto = fe.FcmiProtocol(**{**TINY, "k2": 6})
  table = fe.run_fcmi_protocol(proto, data=data, out_dir=tmp_path)
  r = gbounds.supersample.load_supersample_results(tmp_path / "n00008")
  curve = fe.bound_vs_masks(r, [2, 4, 6], draws=5)
  assert curve[6] == (pytest.approx(table.rows[0].fcmi_bound, rel=1e-12), 0.0)
  for mean, sd in curve.values():
    assert 0.0 <= mean <= math.sqrt(2 * math.log(2)) + 1e-12 and sd >= 0.0
  # One subset of masks, checked by brute force.
  rng = np.random.default_rng(0)
  pick = np.stack([rng.permutation(6)[:4] for _ in range(2)])
  sub_masks = np.take_along_axis(r.masks, pick[:, :, None], axis=1)
  sub_preds = np.take_along_axis(r.predictions, pick[:, :, None, None, None], axis=1)
  one = fe.bound_vs_masks(r._replace(masks=sub_masks, predictions=sub_preds), [4])
  assert one[4][0] == pytest.approx(_brute_fcmi(sub_masks, sub_preds).mean(), rel=1e-9)
  with pytest.raises(gbounds.InvalidInputError, match="k2s"):
    fe.bound_vs_masks(r, [7])
