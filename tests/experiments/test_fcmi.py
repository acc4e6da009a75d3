"""Tests of the f-CMI experiments (gbounds.experiments._fcmi) and the ``gbounds fcmi`` CLI.

Bound values are checked against a brute-force numpy re-computation of the sample-wise f-CMI
estimator (nested loops over supersamples, pairs and masks), measured errors against the raw
predictions, and the synthetic study against the measured gap (every valid bound lies above it).
"""

import json
import math

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


TINY = dict(ns=(8,), k1=2, k2=4, epochs=20, hidden=(8,), batch_size=8, learning_rate=0.05,
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
    fe.FcmiProtocol(architecture="resnet")


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
                               progress=lambda d, t: seen.append((d, t)))
  assert seen[-1] == (8, 8)
  assert [r.n for r in table.rows] == [8]
  for row in table.rows:
    r = gbounds.supersample.load_supersample_results(tmp_path / f"n{row.n:05d}")
    per = _brute_fcmi(r.masks, r.predictions)
    assert row.fcmi_bound == pytest.approx(per.mean(), rel=1e-9, abs=1e-12)
    assert row.fcmi_bound_std == pytest.approx(per.std(), rel=1e-9, abs=1e-12)
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
  csv = (tmp_path / "table.csv").read_text().splitlines()
  assert csv[0].startswith("n,fcmi_bound") and len(csv) == 2
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
  p = fe.FcmiProtocol(ns=[10.0, 20], hidden=np.array([8]), classes=[9, 4])
  assert p.ns == (10, 20) and p.hidden == (8,) and p.classes == (9, 4)
  assert fe.FcmiProtocol.from_json(p.to_json()) == p
  assert fe.small_protocol().to_json()["ns"] == [75, 250]
  with pytest.raises(gbounds.InvalidInputError, match=r"config: expected a JSON object"):
    fe.FcmiProtocol.from_json([1, 2])
  with pytest.raises(gbounds.InvalidInputError, match=r"dataset: expected one of"):
    fe.FcmiProtocol(dataset="cifar10")
  with pytest.raises(gbounds.InvalidInputError, match=r"ridge"):
    fe.FcmiProtocol(ridge=-1.0)
