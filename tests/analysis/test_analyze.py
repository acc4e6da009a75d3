"""Tests for gbounds.analysis._analyze (the front door) and the ``gbounds analyze`` / ``pac-bayes`` CLI.

Tiny sizes (scikit-learn digits 4-vs-9, an MLP with 16 hidden units). The tests that run a whole
analysis (NTK, supersample trainings, Monte Carlo; ~1 CPU-minute of compilation) are in the slow
tier; input checks, data splitting, budget scaling and checkpoints are in the default tier.
Numbers are checked against independent recomputations: errors by numpy, CMI bounds by
gbounds.bounds.cmi_bounds on the results directory read back with load_supersample_results, PAC-Bayes
by the formula on the reported fields (the optimised certificate's kl inversions by scipy's root
finder, its held-out bound by scipy's beta quantile).

The optimised PAC-Bayes certificate (the default) runs in the default tier with small settings
(1-2 epochs, a few hundred Monte Carlo draws) on one tiny MLP with a learnt prior, shared by the
tests through a module fixture; the NNX test runs it on the NNX MLP twin with the data-free prior
that ``auto`` picks on 12 examples (its comparison with the Linen twin is in the slow tier).
"""

import dataclasses
import json
import math
import os
import pathlib

import jax
import numpy as np
import pytest

import gbounds
from gbounds import InvalidInputError
from gbounds.analysis import _analyze as an
from gbounds.cli import main as cli_main

RECIPE = gbounds.train.TrainConfig(optimizer="adam", learning_rate=1e-2, batch_size=30, steps=40)
# Small settings of the optimised certificate (the default PAC-Bayes method).
SMALL_CERT = dict(certificate_epochs=2, finetune_epochs=0, mc_draws=300, test_draws=100)
CONFIG = an.AnalysisConfig(k1=2, k2=3, si_heldout=20, ntk_chunk_size=64, **SMALL_CERT)


@pytest.fixture(scope="module")
def tiny():
  data = an.analysis_data("digits", n_train=60, n_test=60, seed=1)
  model = gbounds.models.MLP((16,), 2)
  m = gbounds.as_model_fn(model, example_input=data.x_train[:1], key=0)
  trained = gbounds.train.train(m.apply_fn, m.params, data.x_train, data.y_train, RECIPE).params
  return data, model, m.params, trained


@pytest.fixture(scope="module")
def analysis(tiny, tmp_path_factory):
  data, model, init, trained = tiny
  out = tmp_path_factory.mktemp("analysis")
  a = an.analyze(model, data, RECIPE, params=trained, init_params=init, config=CONFIG,
                 out_dir=out, progress=False)
  return a, out


def test_analysis_data_split():
  d = an.analysis_data("digits", n_train=50, n_test=40, seed=0)
  assert d.x_train.shape[0] == 50 and d.x_test.shape[0] == 40
  assert len(d.y_pool) == 361 - 40  # 181 fours + 180 nines, minus the test set
  np.testing.assert_array_equal(d.x_pool[:50], d.x_train)
  assert set(np.unique(d.y_train)) <= {0, 1}


def test_unknown_dataset_lists_valid_ones():
  with pytest.raises(InvalidInputError) as e:
    an.analysis_data("cifar11")
  for name in gbounds.data.DATASETS:
    assert name in str(e.value)


@pytest.mark.slow
def test_measured_errors_match_numpy(analysis, tiny):
  a, _ = analysis
  data, model, _, trained = tiny
  pred_te = np.argmax(np.asarray(model.apply({"params": trained}, data.x_test)), -1)
  pred_tr = np.argmax(np.asarray(model.apply({"params": trained}, data.x_train)), -1)
  assert a.test_error == pytest.approx(np.mean(pred_te != data.y_test))
  assert a.train_error == pytest.approx(np.mean(pred_tr != data.y_train))
  assert a.gap == pytest.approx(a.test_error - a.train_error)
  assert a.num_params == gbounds.models.count_params(trained)


@pytest.mark.slow
def test_cmi_bounds_match_results_directory(analysis):
  a, out = analysis
  r = gbounds.supersample.load_supersample_results(out / "supersample")
  assert r.masks.shape == (2, 3, 60)
  rep = gbounds.bounds.cmi_bounds(r.masks, r.predictions, r.labels, full_vector=False)
  assert a.cmi["fcmi"].value == pytest.approx(rep["fcmi"].value)
  assert a.supersample["gap"] == pytest.approx(r.gap)
  rows = {x.name: x for x in a.bound_rows()}
  assert rows["fcmi"].gap_bound == pytest.approx(rep["fcmi"].value)
  assert rows["fcmi"].measured_gap == pytest.approx(r.gap)


@pytest.mark.slow
def test_sample_information_ranking(analysis):
  a, _ = analysis
  s = a.sample_info
  assert s.si.shape == (60,) and np.all(np.isfinite(s.si)) and np.all(s.si >= 0)
  assert np.all(np.diff(s.si[s.order]) <= 0)
  assert sorted(s.order.tolist()) == list(range(60))
  assert s.settings["expansion"] == "trained"


@pytest.mark.slow
def test_pac_bayes_fields_consistent(analysis):
  # 60 training examples: auto picks the data-free prior (a learnt one needs 100 per part).
  a, _ = analysis
  p = a.pac_bayes
  assert isinstance(p, gbounds.bounds.PosteriorCertificate)
  assert (p.prior, p.n, p.n_prior, p.n_bound) == ("data_free", 60, 0, 60)
  assert p.mc_draws == 300 and len(p.history) == 2  # 2 epochs, no fine-tuning
  _check_certificate(p)
  rows = [r for r in a.bound_rows() if r.family.startswith("PAC")]
  assert {r.name for r in rows} == {"pac_bayes_kl", "pac_bayes_classic", "pac_bayes_quad",
                                    "pac_bayes_lambda"}


@pytest.mark.slow
def test_resume_loads_finished_stages(analysis, tiny, monkeypatch):
  a, out = analysis
  data, model, init, trained = tiny

  def boom(*args, **kwargs):
    raise AssertionError("stage recomputed instead of loaded")

  # The stages call these names of the analyze module (imported from the public namespaces).
  monkeypatch.setattr(an, "sample_information", boom)
  monkeypatch.setattr(an, "pac_bayes_certificate", boom)
  monkeypatch.setattr(an, "certify", boom)
  monkeypatch.setattr(an, "run_supersample", boom)
  b = an.analyze(model, data, RECIPE, params=trained, init_params=init, config=CONFIG,
                 out_dir=out, progress=False)
  np.testing.assert_array_equal(b.sample_info.order, a.sample_info.order)
  _assert_same(b.pac_bayes, a.pac_bayes)  # field by field (the data-free prior's NaNs)
  assert b.cmi["fcmi"].value == a.cmi["fcmi"].value


@pytest.mark.slow
def test_report_files(analysis, tiny, tmp_path):
  a, _ = analysis
  data = tiny[0]
  files = an.write_analysis_report(a, tmp_path, data=data)
  payload = json.loads(files.json.read_text())
  assert payload["n_train"] == 60 and len(payload["bounds"]) == len(a.bound_rows())
  page = files.html.read_text()
  assert page.count("data:image/png;base64,") == len(files.png) >= 3
  names = {p.name for p in files.csv}
  assert {"bounds.csv", "measured.csv", "sample_information_all.csv",
          "pac_bayes_certificate.csv", "pac_bayes_prior_scale.csv"} <= names
  lines = (tmp_path / "sample_information_all.csv").read_text().splitlines()
  assert len(lines) == 61
  for p in files.png:
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_budget_scaling():
  c = an.AnalysisConfig(k1=4, k2=12, budget=0.125)
  assert c.scaled(100) == (2, 6, 50)
  assert an.AnalysisConfig(k1=1, k2=2, budget=1e-6).scaled(10) == (1, 2, 1)


def test_bad_inputs(tiny, tmp_path):
  data, model, init, trained = tiny
  with pytest.raises(InvalidInputError, match="params"):
    an.analyze(gbounds.models.MLP((8,), 2), data, RECIPE, params=trained, config=CONFIG,
               progress=False)
  blocker = tmp_path / "file"
  blocker.write_text("x")
  with pytest.raises(InvalidInputError, match="out_dir"):
    an.analyze(model, data, RECIPE, params=trained, out_dir=blocker / "sub", progress=False)
  with pytest.raises(InvalidInputError, match="module"):
    an.load_module("gbounds.no_such_module:MLP")
  with pytest.raises(InvalidInputError, match="module"):
    an.load_module("gbounds.models:NoSuchClass")
  with pytest.raises(InvalidInputError, match="module_kwargs"):
    an.load_module("gbounds.models:MLP", {"widths": 3})


def test_checkpoint_roundtrip_and_mismatch(tiny, tmp_path):
  data, model, init, trained = tiny
  ck = tmp_path / "ck"
  an.save_checkpoint(ck, trained, init_params=init)
  p, i = an.load_checkpoint(ck, an.load_module("gbounds.models:MLP", {"hidden": [16]}),
                            data.x_train)
  for a_, b_ in zip(jax.tree_util.tree_leaves(p), jax.tree_util.tree_leaves(trained)):
    np.testing.assert_array_equal(np.asarray(a_), np.asarray(b_))
  assert i is not None
  with pytest.raises(InvalidInputError, match="checkpoint"):
    an.load_checkpoint(ck, gbounds.models.MLP((32,), 2), data.x_train)
  with pytest.raises(InvalidInputError, match="checkpoint"):
    an.load_checkpoint(tmp_path / "missing", model, data.x_train)
  with pytest.raises(InvalidInputError, match="path"):
    an.save_checkpoint(ck, trained)  # never overwrites


def _cli_args(ck, out, *extra):
  return ["analyze", "--checkpoint", str(ck), "--module", "gbounds.models:MLP",
          "--module-kwargs", '{"hidden": [16]}', "--dataset", "digits", "--n-train", "60",
          "--n-test", "60", "--data-seed", "1", "--optimizer", "adam", "--learning-rate", "0.01",
          "--batch-size", "30", "--steps", "40", "--out", str(out), "--no-progress", *extra]


@pytest.mark.slow
def test_cli_analyze_and_errors_keep_existing_files(tiny, tmp_path, capsys):
  data, model, init, trained = tiny
  ck = tmp_path / "ck"
  an.save_checkpoint(ck, trained, init_params=init)
  out = tmp_path / "out"
  rc = cli_main(_cli_args(ck, out, "--k1", "1", "--k2", "2", "--mc-samples", "4",
                          "--skip", "sample_info"))
  assert rc == 0
  printed = capsys.readouterr().out
  assert "fcmi" in printed and "pac_bayes_kl" in printed
  before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
  assert "report.html" in before
  # A mismatching module, a bad module path, an unknown dataset: clear errors, files untouched.
  for bad in (["--module-kwargs", '{"hidden": [32]}'], ["--module", "nope.nope:MLP"],
              ["--dataset", "cifar11"]):
    rc = cli_main(_cli_args(ck, out, *bad))
    err = capsys.readouterr().err
    assert rc == 2 and "error:" in err
    after = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert after == before
  blocker = tmp_path / "blocker"
  blocker.write_text("")
  assert cli_main(_cli_args(ck, blocker / "x")) == 2
  # The CLI names the flag (was the Python argument name out_dir before issue #11).
  assert "error: --out: expected a writable directory" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_pac_bayes(tiny, tmp_path, capsys):
  data, model, init, trained = tiny
  ck = tmp_path / "ck"
  an.save_checkpoint(ck, trained)  # bare: no init_params -> fresh-init prior, noted
  rc = cli_main(["pac-bayes", "--checkpoint", str(ck), "--module", "gbounds.models:MLP",
                 "--module-kwargs", '{"hidden": [16]}', "--dataset", "digits", "--n-train", "60",
                 "--n-test", "60", "--data-seed", "1", "--mc-samples", "4", "--out",
                 str(tmp_path / "pb"), "--no-progress"])
  assert rc == 0
  payload = json.loads((tmp_path / "pb" / "report.json").read_text())
  assert payload["pac_bayes"]["n"] == 60
  # The default is the optimised certificate; the earlier flag --mc-samples sets its draws.
  assert payload["pac_bayes"]["prior"] == "data_free" and payload["pac_bayes"]["mc_draws"] == 4
  assert payload["config"]["pac_bayes_method"] == "optimised"
  assert any("fresh initialisation" in n for n in payload["notes"])
  assert pathlib.Path(tmp_path / "pb" / "report.html").exists()


def test_analyze_refuses_non_finite_weights_and_degenerate_data_before_any_work(tiny, tmp_path):
  data, model, init, trained = tiny
  out = tmp_path / "never_created"
  nan_tree = jax.tree_util.tree_map(lambda v: v.at[(0,) * v.ndim].set(np.nan), trained)
  cases = [
      (dict(params=nan_tree, init_params=init), r"^params: expected finite values"),
      (dict(params=trained, init_params=nan_tree), r"^init_params: expected finite values"),
      (dict(params=trained, data=data._replace(y_train=np.zeros_like(data.y_train),
                                               y_pool=np.zeros_like(data.y_pool))),
       r"^data.y_train: expected labels of at least two classes"),
      (dict(params=trained, data=data._replace(y_test=np.full_like(data.y_test, 2))),
       r"^data.y_test: expected class labels in \[0, 2\)"),
      (dict(params=trained, data=data._replace(x_pool=data.x_pool[:0], y_pool=data.y_pool[:0])),
       r"^data.x_pool: expected a non-empty"),
  ]
  for kw, match in cases:
    d = kw.pop("data", data)
    with pytest.raises(InvalidInputError, match=match):
      an.analyze(model, d, RECIPE, config=CONFIG, out_dir=out, progress=False, **kw)
  assert not out.exists()  # refused before the output directory was even created


def test_analysis_data_classes_checked_and_relabelled_in_the_given_order():
  with pytest.raises(InvalidInputError, match=r"^classes: expected classes present"):
    an.analysis_data("digits", classes=(4, 11), n_train=20, n_test=20)
  with pytest.raises(InvalidInputError, match=r"^classes: expected distinct"):
    an.analysis_data("digits", classes=(4, 4), n_train=20, n_test=20)
  x, y = gbounds.data.load_digits()
  d = an.analysis_data("digits", classes=(9, 4, 7), n_train=30, n_test=30, seed=0)
  # Each relabelled example is an image of the class at that position of `classes`.
  lookup = {img.tobytes(): lab for img, lab in zip(np.asarray(x), np.asarray(y))}
  orig = np.array([lookup[img.tobytes()] for img in d.x_train])
  np.testing.assert_array_equal(np.asarray((9, 4, 7))[d.y_train], orig)


def test_load_module_imports_from_the_current_directory(tmp_path, monkeypatch):
  import sys
  (tmp_path / "gb_cwd_models_xyz.py").write_text(
      "from gbounds.models import MLP\n\nclass Net(MLP):\n  pass\n")
  monkeypatch.chdir(tmp_path)
  monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
  m = an.load_module("gb_cwd_models_xyz:Net", {"hidden": [3]})
  assert type(m).__name__ == "Net"
  assert str(tmp_path) not in sys.path  # only for the import
  sys.modules.pop("gb_cwd_models_xyz", None)


def test_bound_rows_say_which_rows_certify_nothing(tmp_path):
  rng = np.random.default_rng(0)
  masks = rng.integers(0, 2, (2, 4, 5))
  losses = rng.integers(0, 2, (2, 4, 5, 2)).astype(float)  # nonzero training loss
  rep = gbounds.bounds.cmi_bounds(masks, None, losses, full_vector=False)
  sel = (gbounds.bounds.SigmaSelection(0.1, 1.0, 0.2, 0.5),)
  cert = gbounds.bounds.PacBayesCertificate(
      n=5, num_params=3, sigma=0.1, distance_sq=1.0, kl=50.0, grid_size=1, delta=0.025,
      delta_mc=0.01, mc_samples=4, mc_error=0.2, empirical_error_bound=0.6,
      deterministic_train_error=0.2, stochastic_test_error=0.3, mcallester=1.7,
      pac_bayes_kl=0.9, catoni=math.nan, catoni_c=1.0, selection=sel)
  ss = {"k1": 2, "k2": 4, "n": 5, "gap": rep.measured.gap,
        "ghost_error": rep.measured.test_error, "train_error": rep.measured.train_error}
  a = an.Analysis("d", "m", {}, 5, 5, 3, 0.1, 0.2, 0.1, None, rep, ss, cert, {}, {}, ())
  rows = {r.name: r for r in a.bound_rows()}
  assert not rows["ecmi_interpolating"].valid
  assert "needs zero training loss" in rows["ecmi_interpolating"].reason
  assert not rows["mcallester"].valid and "vacuous" in rows["mcallester"].reason
  assert not rows["catoni"].valid and "non-finite" in rows["catoni"].reason
  assert rows["pac_bayes_kl"].valid and rows["pac_bayes_kl"].reason == ""
  for r in rows.values():
    assert r.valid == (r.reason == "")
  table = a.bound_table()
  assert "why not valid" in table.columns
  assert a.to_dict()["bounds"][0]["reason"] is not None


def test_cli_nan_checkpoint_exits_2_naming_the_flag(tiny, tmp_path, capsys):
  _, _, init, trained = tiny
  ck = tmp_path / "ck_nan"
  nan_tree = jax.tree_util.tree_map(lambda v: np.asarray(v).copy(), trained)
  jax.tree_util.tree_leaves(nan_tree)[-1].flat[0] = np.nan
  an.save_checkpoint(ck, nan_tree, init_params=init)
  rc = cli_main(["pac-bayes", "--checkpoint", str(ck), "--module", "gbounds.models:MLP",
                 "--module-kwargs", '{"hidden": [16]}', "--dataset", "digits", "--n-train", "60",
                 "--n-test", "60", "--data-seed", "1", "--mc-samples", "4", "--out",
                 str(tmp_path / "pb"), "--no-progress"])
  err = capsys.readouterr().err.strip().splitlines()
  assert rc == 2 and len(err) == 1, err
  assert err[0].startswith("gbounds pac-bayes: error: --checkpoint: expected finite values")
  assert not (tmp_path / "pb" / "report.json").exists()


def test_load_module_public_path_and_the_old_private_path_name_one_class():
  a = an.load_module("gbounds.models:MLP", {"hidden": [3]})
  b = an.load_module("gbounds.models._networks:MLP", {"hidden": [3]})  # earlier versions' path
  assert type(a) is type(b) is gbounds.models.MLP


def _cert():
  sel = (gbounds.bounds.SigmaSelection(0.1, 1.0, 0.2, 0.5),
         gbounds.bounds.SigmaSelection(0.3, 0.2, 0.25, 0.6))
  return gbounds.bounds.PacBayesCertificate(
      n=5, num_params=3, sigma=0.1, distance_sq=1.0, kl=50.0, grid_size=2, delta=0.025,
      delta_mc=0.01, mc_samples=4, mc_error=0.2, empirical_error_bound=0.6,
      deterministic_train_error=0.2, stochastic_test_error=0.3, mcallester=1.7,
      pac_bayes_kl=0.9, catoni=0.95, catoni_c=1.0, selection=sel)


def _assert_same(a, b):
  """Field-by-field equality of nested results (arrays by value)."""
  if dataclasses.is_dataclass(a) or hasattr(a, "_fields"):
    assert type(a) is type(b)
    names = ([f.name for f in dataclasses.fields(a)] if dataclasses.is_dataclass(a)
             else a._fields)
    for k in names:
      _assert_same(getattr(a, k), getattr(b, k))
  elif isinstance(a, (list, tuple)):
    assert len(a) == len(b)
    for x, y in zip(a, b):
      _assert_same(x, y)
  elif isinstance(a, dict):
    assert a.keys() == b.keys()
    for k in a:
      _assert_same(a[k], b[k])
  elif isinstance(a, (np.ndarray, jax.Array)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  elif isinstance(a, float) and math.isnan(a):
    assert math.isnan(b)
  else:
    assert a == b, (a, b)


def test_results_round_trip_through_json():
  rng = np.random.default_rng(0)
  masks = rng.integers(0, 2, (2, 4, 5))
  losses = rng.integers(0, 2, (2, 4, 5, 2)).astype(float)
  rep = gbounds.bounds.cmi_bounds(masks, None, losses, full_vector=False)
  ranking = an.SampleInfoRanking(np.array([2, 0, 1]), np.array([0.5, 0.1, 0.9]),
                                 np.array([0.4, 0.2, 0.8]), np.array([0, 1, 0]),
                                 {"sigma": 1.0, "note": "x"})
  ss = {"k1": 2, "k2": 4, "n": 5, "gap": rep.measured.gap,
        "ghost_error": rep.measured.test_error, "train_error": rep.measured.train_error}
  a = an.Analysis("d", "m", {"steps": 3}, 5, 5, 3, 0.1, 0.2, 0.1, ranking, rep, ss, _cert(),
                  {"k1": 2}, {"measured": 0.5}, ("a note",))
  d = json.loads(json.dumps(a.to_dict()))
  b = an.Analysis.from_dict(d)
  _assert_same(b, a)
  assert b.to_dict() == a.to_dict()
  assert d["bounds"] == [r.to_dict() for r in a.bound_rows()]
  for r in a.bound_rows():
    _assert_same(an.BoundRow.from_dict(json.loads(json.dumps(r.to_dict()))), r)
  _assert_same(an.SampleInfoRanking.from_dict(json.loads(json.dumps(ranking.to_dict()))),
               ranking)
  cfg = an.AnalysisConfig(k1=2, k2=3, sigmas=(0.1, 0.2))
  assert an.AnalysisConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
  data = an.analysis_data("digits", n_train=10, n_test=10, seed=0)
  back = an.AnalysisData.from_dict(json.loads(json.dumps(data.to_dict())))
  for x, y in zip(back, data):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
  # Tables are gbounds.Table.
  for t in (a.table(), a.bound_table(), a.summary_table(), ranking.table()):
    assert isinstance(t, gbounds.Table)
  assert a.table().columns[0] == "bound" and len(a.table().rows) == len(a.bound_rows())
  assert ranking.table().column("index") == [2, 0, 1]  # most informative first
  assert "Measured errors" in a.format()


def test_report_figures_leave_the_matplotlib_backend_alone(tmp_path):
  import matplotlib
  before = matplotlib.get_backend()
  rng = np.random.default_rng(0)
  masks = rng.integers(0, 2, (2, 4, 5))
  losses = np.zeros((2, 4, 5, 2))
  losses[..., 1] = rng.integers(0, 2, (2, 4, 5))
  losses = np.where(masks[..., None] == np.arange(2), 0.0, losses)
  rep = gbounds.bounds.cmi_bounds(masks, None, losses, full_vector=False)
  ranking = an.SampleInfoRanking(np.array([1, 0]), np.array([0.1, 0.9]), np.array([0.1, 0.2]),
                                 np.array([0, 1]), {})
  ss = {"k1": 2, "k2": 4, "n": 5, "gap": rep.measured.gap,
        "ghost_error": rep.measured.test_error, "train_error": rep.measured.train_error}
  a = an.Analysis("d", "m", {}, 2, 5, 3, 0.0, 0.2, 0.2, ranking, rep, ss, _cert(), {}, {}, ())
  files = an.write_analysis_report(a, tmp_path)
  assert len(files.png) == 3
  assert matplotlib.get_backend() == before


def _twin_data(t):
  x, y = np.asarray(t.x), np.asarray(t.y)
  return an.AnalysisData(x[:12], y[:12], x[24:], y[24:], x[:24], y[:24], "CNN twins")


def _close(a, b):
  np.testing.assert_allclose(np.asarray(a, np.float64), np.asarray(b, np.float64), rtol=2e-3,
                             atol=1e-5)


@pytest.mark.slow
def test_analyze_nnx_twin_gives_the_linen_numbers_in_every_stage():
  from tests.model_twins import cnn_twins
  from tests.supersample.test_supersample_twins import linen_to_nnx_fn, nnx_twin_model_fn
  t = cnn_twins(n=36)
  data = _twin_data(t)
  recipe = gbounds.train.TrainConfig(learning_rate=0.1, steps=2, batch_size=4)
  cfg = an.AnalysisConfig(k1=1, k2=2, mc_samples=4, sigmas=(0.1,), si_heldout=6,
                          ntk_chunk_size=64, pac_bayes_method="isotropic")
  init = t.linen.init(jax.random.key(1), t.x[:1])["params"]
  a = an.analyze(t.linen, data, recipe, params=t.linen_params, init_params=init, config=cfg,
                 progress=False)
  # The NNX twin as a ModelFn whose fresh initialisations are the Linen twin's (the
  # supersample stage retrains from fresh initialisations).
  b = an.analyze(nnx_twin_model_fn(t), data, recipe, init_params=linen_to_nnx_fn(t)(init),
                 config=cfg, progress=False)
  assert (a.train_error, a.test_error, a.num_params) == (b.train_error, b.test_error,
                                                          b.num_params)
  np.testing.assert_array_equal(a.sample_info.order[:3], b.sample_info.order[:3])
  _close(a.sample_info.si, b.sample_info.si)
  _close(a.sample_info.fsi, b.sample_info.fsi)
  for k in ("train_error", "ghost_error", "gap"):
    assert a.supersample[k] == pytest.approx(b.supersample[k], abs=1e-6)
  for ra, rb in zip(a.bound_rows(), b.bound_rows()):
    assert ra.name == rb.name and ra.valid == rb.valid
    _close(ra.gap_bound, rb.gap_bound)
  _close(a.pac_bayes.kl, b.pac_bayes.kl)
  assert a.pac_bayes.mc_error == b.pac_bayes.mc_error


def test_analyze_nnx_module_gives_the_linen_numbers():
  # The bare NNX module (its own weights) against its Linen twin: measured errors and the
  # isotropic PAC-Bayes certificates, the earlier method kept as an option (the supersample
  # stage retrains NNX's own fresh initialisations, which are not the Linen twin's; the slow
  # test above covers it through a ModelFn).
  from tests.model_twins import cnn_twins, fresh_nnx
  from tests.supersample.test_supersample_twins import linen_to_nnx_fn
  t = cnn_twins(n=36)
  data = _twin_data(t)
  recipe = gbounds.train.TrainConfig(learning_rate=0.1, steps=2, batch_size=4)
  cfg = an.AnalysisConfig(mc_samples=4, sigmas=(0.1,), cmi=False, sample_info=False,
                          pac_bayes_method="isotropic")
  init = t.linen.init(jax.random.key(1), t.x[:1])["params"]
  a = an.analyze(t.linen, data, recipe, params=t.linen_params, init_params=init, config=cfg,
                 progress=False)
  c = an.analyze(fresh_nnx(t), data, recipe, init_params=linen_to_nnx_fn(t)(init),
                 config=cfg, progress=False)
  assert (c.train_error, c.test_error, c.num_params) == (a.train_error, a.test_error,
                                                          a.num_params)
  assert isinstance(c.pac_bayes, gbounds.bounds.PacBayesCertificate)
  assert {r.name for r in c.bound_rows()} == {"mcallester", "pac_bayes_kl", "catoni"}
  _close(c.pac_bayes.kl, a.pac_bayes.kl)
  _close(c.pac_bayes.pac_bayes_kl, a.pac_bayes.pac_bayes_kl)
  assert c.pac_bayes.mc_error == a.pac_bayes.mc_error


# ----------------------------------------------------------------------------- optimised certificate


def _kl_inverse_upper(q, c):
  """``sup{p >= q : kl(q || p) <= c}`` by scipy's root finder (independent of gbounds)."""
  import scipy.optimize
  import scipy.special

  def kl(p):
    if p == q:
      return 0.0
    return float(scipy.special.xlogy(q, q / p) + scipy.special.xlogy(1 - q, (1 - q) / (1 - p)))

  top = 1 - 1e-15
  if kl(top) <= c:
    return 1.0
  return scipy.optimize.brentq(lambda p: kl(p) - c, q, top, xtol=1e-15, rtol=1e-13)


def _check_certificate(p):
  """Every bound of a PosteriorCertificate recomputed from its KL, draws and sizes."""
  # gbounds' kl inverse is a bisection, within about 1e-8 of the exact root found here.
  e_ub = _kl_inverse_upper(p.mc_error, math.log(2 / p.delta_mc) / p.mc_draws)
  assert p.mc_error_bound == pytest.approx(e_ub, rel=1e-6, abs=1e-8)
  # The union bound pays at least ln G for the grid of G prior stds (ln G + ln T with T tried
  # configurations, where certify is told of them).
  assert p.grid_size == 49 and p.union_cost_nats >= math.log(p.grid_size) - 1e-12
  base = p.kl + math.log(2 * math.sqrt(p.n_bound) / p.delta)
  c = (base + p.union_cost_nats) / p.n_bound
  assert p.certificate == pytest.approx(_kl_inverse_upper(e_ub, c), rel=1e-6, abs=1e-8)
  assert p.classic == pytest.approx(e_ub + math.sqrt(c / 2), rel=1e-6)
  assert p.quad == pytest.approx((math.sqrt(e_ub + c / 2) + math.sqrt(c / 2)) ** 2, rel=1e-6)
  assert p.certificate <= min(p.classic, p.quad, p.lambda_bound) + 1e-12  # kl is the tightest
  assert p.union_cost == pytest.approx(
      p.certificate - _kl_inverse_upper(e_ub, base / p.n_bound), rel=1e-6, abs=1e-7)
  assert p.mc_cost == pytest.approx(p.certificate - _kl_inverse_upper(p.mc_error, c), rel=1e-6,
                                    abs=1e-7)
  # The selected prior std is the grid's minimum-KL point, and the curve's bound there is it.
  j = int(np.argmin([q.kl for q in p.curve]))
  assert p.curve[j].prior_scale == p.prior_scale and p.curve[j].kl == pytest.approx(p.kl)
  assert p.curve[j].bound == pytest.approx(p.certificate)


@pytest.fixture(scope="module")
def optimised(tiny, tmp_path_factory):
  """The default (optimised) certificate with an explicitly learnt prior on 60 examples."""
  data, model, init, trained = tiny
  out = tmp_path_factory.mktemp("optimised")
  cfg = an.AnalysisConfig(cmi=False, sample_info=False, prior="learnt", **SMALL_CERT)
  logs = []
  a = an.analyze(model, data, RECIPE, params=trained, init_params=init, config=cfg,
                 out_dir=out, progress=False, log=logs.append)
  return a, out, cfg, logs


def test_optimised_certificate_is_the_default_with_a_learnt_prior(optimised):
  a, _, cfg, _ = optimised
  assert an.AnalysisConfig().pac_bayes_method == "optimised" == cfg.pac_bayes_method
  p = a.pac_bayes
  assert isinstance(p, gbounds.bounds.PosteriorCertificate)
  # Half of the 60 examples train the prior, the bound uses the other half.
  assert (p.prior, p.n, p.n_prior, p.n_bound) == ("learnt", 60, 30, 30)
  assert (p.objective, p.mc_draws, p.delta, p.delta_mc) == ("quad", 300, 0.025, 0.01)
  _check_certificate(p)
  # The held-out bound: the Clopper-Pearson upper limit of the prior network's errors.
  import scipy.stats
  k = round(p.prior_bound_error * p.n_bound)
  assert p.prior_bound_error == pytest.approx(k / p.n_bound)
  want = 1.0 if k == p.n_bound else scipy.stats.beta.ppf(1 - p.delta, k + 1, p.n_bound - k)
  assert p.heldout_bound == pytest.approx(want, rel=1e-6)
  assert p.trained_test_error == pytest.approx(a.test_error)
  rows = {r.name: r for r in a.bound_rows()}
  assert set(rows) == {"pac_bayes_kl", "pac_bayes_classic", "pac_bayes_quad", "pac_bayes_lambda"}
  for name, attr in (("pac_bayes_kl", "certificate"), ("pac_bayes_classic", "classic"),
                     ("pac_bayes_quad", "quad"), ("pac_bayes_lambda", "lambda_bound")):
    r = rows[name]
    assert r.test_error_bound == getattr(p, attr)
    assert r.gap_bound == pytest.approx(getattr(p, attr) - p.mc_error)
    assert r.measured_test_error == p.gibbs_test_error
    assert r.valid == (getattr(p, attr) < 1)
  measured = a.summary_table().rows
  assert measured[-1][1:3] == (p.mc_error, p.gibbs_test_error)


def test_optimised_summary_states_choice_certificate_heldout_and_mc_term(optimised):
  a, _, _, logs = optimised
  p = a.pac_bayes
  text = a.format()
  assert "PAC-Bayes prior: learnt prior (asked for): 30 of the 60 training examples" in text
  assert f"PAC-Bayes certificate {p.certificate:.4f}" in text
  assert f"held-out bound of the prior network {p.heldout_bound:.4f}" in text
  assert f"Monte Carlo term {p.mc_error_bound - p.mc_error:.4f}" in text
  assert "cost of the MC bound" in text  # the certificate's table: what each choice cost
  line = [s for s in logs if s.startswith("PAC-Bayes")][0]
  assert f"certificate {p.certificate:.4f}" in line and "held-out bound" in line
  assert "Monte Carlo term" in line


def test_optimised_report_has_the_certificate_table_and_both_figures(optimised, tmp_path):
  a, _, _, _ = optimised
  p = a.pac_bayes
  files = an.write_analysis_report(a, tmp_path)
  assert sorted(f.name for f in files.png) == ["bounds.png", "pac_bayes_posterior_scales.png",
                                               "pac_bayes_prior_scale.png"]
  for f in files.png:
    assert f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  curve = (tmp_path / "pac_bayes_prior_scale.csv").read_text().splitlines()
  assert len(curve) == 1 + 49
  scales = (tmp_path / "pac_bayes_posterior_scales.csv").read_text().splitlines()
  assert len(scales) == 1 + 4  # two Dense layers: kernel and bias each
  table = (tmp_path / "pac_bayes_certificate.csv").read_text()
  assert "held-out bound (prior net)" in table and "Monte Carlo term" in table
  page = files.html.read_text()
  assert "PAC-Bayes certificate (optimised posterior)" in page
  assert "learnt prior (asked for)" in page
  assert json.loads(files.json.read_text())["pac_bayes"]["certificate"] == p.certificate


def test_optimised_round_trips_and_resumes_only_with_the_same_settings(optimised, tiny,
                                                                       monkeypatch):
  a, out, cfg, _ = optimised
  data, model, init, trained = tiny
  d = json.loads(json.dumps(a.to_dict()))
  b = an.Analysis.from_dict(d)
  assert isinstance(b.pac_bayes, gbounds.bounds.PosteriorCertificate)
  _assert_same(b, a)
  assert b.to_dict() == a.to_dict() and b.format() == a.format()
  assert an.AnalysisConfig.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg

  def boom(*args, **kwargs):
    raise AssertionError("stage recomputed instead of loaded")

  monkeypatch.setattr(an, "certify", boom)
  c = an.analyze(model, data, RECIPE, params=trained, init_params=init, config=cfg,
                 out_dir=out, progress=False)
  _assert_same(c.pac_bayes, a.pac_bayes)
  # Other certificate settings are another stage key: recomputed, never the stale file.
  for change in (dict(mc_draws=301), dict(prior="data_free"), dict(objective="kl")):
    with pytest.raises(AssertionError, match="recomputed"):
      an.analyze(model, data, RECIPE, params=trained, init_params=init,
                 config=dataclasses.replace(cfg, **change), out_dir=out, progress=False)


def test_prior_choice_learnt_when_each_part_has_100_examples():
  learnt, data_free = gbounds.bounds.PriorKind.LEARNT, gbounds.bounds.PriorKind.DATA_FREE
  assert an.MIN_PART_EXAMPLES == 100
  cases = [  # (choice, n, prior_fraction) -> kind
      (("auto", 200, 0.5), learnt), (("auto", 199, 0.5), data_free),  # 100 / 99
      (("auto", 400, 0.25), learnt), (("auto", 397, 0.25), data_free),  # 99 / 298
      (("auto", 250, 0.6), learnt), (("auto", 248, 0.6), data_free),  # 149 / 99
      (("auto", 60, 0.5), data_free), (("learnt", 60, 0.5), learnt),
      (("data_free", 10_000, 0.5), data_free), (("learnt", 2, 0.5), learnt)]
  for (choice, n, f), kind in cases:
    got, reason = an.prior_choice(choice, n, f)
    assert got is kind, (choice, n, f)
    assert reason.startswith(f"{kind.value.replace('_', '-')} prior"), reason
    cfg = an.AnalysisConfig(prior=choice, prior_fraction=f)
    assert cfg.certify_config(n).prior is kind
  _, reason = an.prior_choice("auto", 199, 0.5)
  assert "at least 100 examples in each part" in reason and "100 / 99" in reason
  with pytest.raises(InvalidInputError, match=r"^prior_fraction: expected a split of the 10 "):
    an.prior_choice("learnt", 10, 0.01)
  c = an.AnalysisConfig(prior="data_free", objective="kl", prior_fraction=0.3,
                        certificate_epochs=3, finetune_epochs=0, mc_draws=50, test_draws=7,
                        delta=0.05, delta_mc=0.02, seed=4).certify_config(100)
  assert (c.prior, c.objective, c.prior_fraction, c.epochs, c.finetune_epochs, c.mc_draws,
          c.test_draws, c.delta, c.delta_mc, c.seed) == ("data_free", "kl", 0.3, 3, 0, 50, 7,
                                                         0.05, 0.02, 4)
  assert c.batch_size == gbounds.bounds.CertifyConfig().batch_size  # the rest: defaults


def _nnx_optimised(twins):
  """The NNX twin through the default (optimised) certificate, and its Linen twin's analysis
  (a function: call the second only where the comparison is wanted)."""
  from tests.model_twins import fresh_nnx
  from tests.supersample.test_supersample_twins import linen_to_nnx_fn
  data = _twin_data(twins)
  recipe = gbounds.train.TrainConfig(learning_rate=0.1, steps=2, batch_size=4)
  cfg = an.AnalysisConfig(cmi=False, sample_info=False, certificate_epochs=1, finetune_epochs=0,
                          mc_draws=200, test_draws=50)
  init = twins.linen.init(jax.random.key(1), twins.x[:1])["params"]
  c = an.analyze(fresh_nnx(twins), data, recipe, init_params=linen_to_nnx_fn(twins)(init),
                 config=cfg, progress=False)
  return c, lambda: an.analyze(twins.linen, data, recipe, params=twins.linen_params,
                               init_params=init, config=cfg, progress=False)


def test_analyze_nnx_module_optimised_certificate():
  # 12 training examples: auto picks the data-free prior at init_params.
  from tests.model_twins import mlp_twins
  c, _ = _nnx_optimised(mlp_twins(n=36))
  p = c.pac_bayes
  assert isinstance(p, gbounds.bounds.PosteriorCertificate)
  assert (p.prior, p.n_prior, p.n_bound, p.num_params) == ("data_free", 0, 12, c.num_params)
  assert p.trained_test_error == c.test_error
  assert math.isnan(p.heldout_bound)
  assert len(p.scales) == 6  # three Dense layers, kernel and bias each, named by their path
  assert len({s.name for s in p.scales}) == 6 and all("/" in s.name for s in p.scales)
  _check_certificate(p)
  assert "no held-out bound (data-free prior)" in c.format()
  assert "a learnt prior needs at least 100 examples in each part" in c.format()


@pytest.mark.slow
def test_analyze_nnx_cnn_optimised_certificate_gives_the_linen_numbers():
  from tests.model_twins import cnn_twins
  c, linen = _nnx_optimised(cnn_twins(n=36))
  a = linen()
  p = c.pac_bayes
  assert a.pac_bayes.num_params == p.num_params and a.pac_bayes.n_bound == p.n_bound
  _close(a.pac_bayes.kl, p.kl)
  _close(a.pac_bayes.certificate, p.certificate)
  _close(a.pac_bayes.gibbs_test_error, p.gibbs_test_error)
  assert a.pac_bayes.trained_test_error == p.trained_test_error
