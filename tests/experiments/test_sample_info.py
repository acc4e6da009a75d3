"""Tests of gbounds.experiments._sample_info (retraining ground truth, experiments, CLI)."""

import json
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from jax.flatten_util import ravel_pytree

import gbounds
from gbounds._src import io as _io
from gbounds.experiments import _sample_info as ex
from gbounds.viz import _experiments as viz
from tests import model_twins


def _write(path, draw):
  fig, ax = _io.new_figure()
  draw(ax)
  _io.atomic_write_figure(path, fig)


def test_pearson_and_auroc_match_scipy():
  rng = np.random.default_rng(0)
  a, b = rng.normal(size=50), rng.normal(size=50)
  assert ex.pearson(a, a + 0.3 * b) == pytest.approx(scipy.stats.pearsonr(a, a + 0.3 * b)[0])
  scores = np.round(rng.normal(size=80), 1)  # ties
  pos = rng.random(80) < 0.3
  u = scipy.stats.mannwhitneyu(scores[pos], scores[~pos]).statistic
  assert ex.auroc(scores, pos) == pytest.approx(u / (pos.sum() * (~pos).sum()))
  assert ex.precision_at([3.0, 2.0, 1.0, 0.0], [True, False, True, False], 2) == 0.5
  with pytest.raises(gbounds.InvalidInputError, match="positives"):
    ex.auroc([1.0, 2.0], [True, True])


def test_sum_recipe_retraining_equals_explicit_sum_loss_gd():
  """The mean-loss trainer with the reparametrised recipe runs exactly the SUM-loss GD."""
  rng = np.random.default_rng(1)
  x = rng.normal(size=(12, 3)).astype(np.float32)
  y = rng.normal(size=(12, 1)).astype(np.float32)
  model = gbounds.models.MLP(hidden=(8,), out=1)
  params = model.init(jax.random.key(0), jnp.asarray(x[:1]))["params"]
  apply_fn = lambda p, xx: model.apply({"params": p}, xx)  # noqa: E731
  eta, steps, lam = 0.01, 30, 0.5
  res = ex.retrain_leave_one_out(apply_fn, params, x, y, [4], learning_rate=eta, steps=steps,
                                 weight_decay=lam, progress=False)
  flat0, unravel = ravel_pytree(params)

  def gd(keep):
    def loss(w):
      r = jnp.asarray(apply_fn(unravel(w), x[keep])) - y[keep]
      return 0.5 * jnp.sum(r * r) + 0.5 * lam * jnp.sum((w - flat0) ** 2)
    w = flat0
    for _ in range(steps):
      w = w - eta * jax.grad(loss)(w)
    return np.asarray(w)

  ref = gd(np.arange(12)) - gd(np.delete(np.arange(12), 4))
  np.testing.assert_allclose(res.weight_change[0], ref, rtol=1e-3, atol=1e-6)
  with pytest.raises(gbounds.InvalidInputError, match="indices"):
    ex.retrain_leave_one_out(apply_fn, params, x, y, [12], learning_rate=eta, steps=1,
                             progress=False)


def test_cli_info_small(tmp_path, data_root):
  from gbounds.cli import main
  rc = main(["sample-info", "--n", "40", "--heldout", "20", "--width", "16", "--steps", "50",
             "--data-dir", data_root, "--out", str(tmp_path)])
  assert rc == 0
  summary = json.loads((tmp_path / "summary.json").read_text())
  assert summary["n"] == 40 and summary["mean_fsi"] > 0
  assert (tmp_path / "sample_info.csv").read_text().count("\n") == 41
  assert (tmp_path / "most_informative.png").stat().st_size > 0


@pytest.mark.slow
def test_linearized_loo_correlates_with_retraining(data_root):
  x, y, xh, _ = ex.mnist_4_vs_9(80, 100, data_dir=data_root)
  apply_fn, params = ex.mlp_at_init(256, 0, x)
  eta = ex.stable_learning_rate(apply_fn, params, x, 0.5, 0.0)
  info = ex._linearized_info(apply_fn, params, x, y.astype(np.float64), learning_rate=eta, t=300,
                      x_heldout=xh)
  idx = np.arange(30)
  real = ex.retrain_leave_one_out(apply_fn, params, x, y.astype(np.float32), idx,
                                  learning_rate=eta, steps=300, x_heldout=xh, progress=False)
  corr = ex.loo_correlation(info, real, apply_fn, params, x)
  assert corr.num_retrained == 30
  assert corr.weights > 0.9 and corr.predictions > 0.9


@pytest.mark.slow
def test_mislabeled_detection_and_summarisation(tmp_path, data_root):
  res = ex.mislabeled_detection(n_train=200, n_heldout=100, width=64, steps=300,
                                data_dir=data_root)
  assert res.flipped.sum() == 20
  assert res.auroc > 0.7
  _write(tmp_path / "h.png",
         lambda ax: viz.plot_fsi_histogram(ax, res.fsi, res.flipped, auroc=res.auroc))
  assert type(res).from_dict(json.loads(json.dumps(res.to_dict()))).auroc == res.auroc
  summ = ex.data_summarisation(n_train=60, n_heldout=60, fractions=(0.0, 0.2), width=32,
                               steps=100, iterative_step=0.1, data_dir=data_root, progress=False)
  assert set(summ.test_error) == {"most", "least", "random", "most_iterative", "least_iterative"}
  assert all(np.all((e >= 0) & (e <= 1)) for e in summ.test_error.values())
  np.testing.assert_allclose([e[0] for e in summ.test_error.values()],
                             summ.test_error["most"][0])  # nothing removed: same network
  _write(tmp_path / "s.png", lambda ax: viz.plot_summarisation(ax, summ.fractions,
                                                              summ.test_error))
  back = type(summ).from_dict(json.loads(json.dumps(summ.to_dict())))
  for k, v in summ.test_error.items():
    np.testing.assert_array_equal(np.asarray(back.test_error[k]), v)
  assert (tmp_path / "s.png").stat().st_size > 0


@pytest.mark.slow
def test_reproduce_small(data_root):
  res = ex.reproduce_sample_info(n_train=40, n_heldout=40, width=32, steps=100,
                                 num_retrained=10, mislabeled_n=100, data_dir=data_root,
                                 progress=False)
  assert set(res.published) >= {"weights_lambda0", "predictions_lambda0"}
  assert -1 <= res.ours["weights_lambda0"] <= 1
  assert 0 <= res.ours["mislabeled_auroc"] <= 1


@pytest.mark.slow
def test_notebook_executes():
  import pathlib

  import nbclient
  import nbformat
  path = pathlib.Path(__file__).parent.parent.parent / "notebooks" / "sample_information.ipynb"
  nb = nbformat.read(path, as_version=4)
  nbclient.NotebookClient(nb, timeout=300, kernel_name="python3",
                          resources={"metadata": {"path": str(path.parent)}}).execute()


@pytest.mark.parametrize("twin", ["mlp", "cnn"])
def test_retrain_leave_one_out_nnx_and_linen_twins_agree(twin):
  """The same network as a Linen module (with params), an NNX module and a ModelFn."""
  t = (model_twins.mlp_twins if twin == "mlp" else model_twins.cnn_twins)(n=8)
  y = np.asarray(t.y, np.float32) if np.ndim(t.y) == 2 else np.eye(model_twins.OUT,
                                                                   dtype=np.float32)[t.y]
  kw: dict[str, Any] = dict(learning_rate=0.01, steps=5, weight_decay=0.1, x_heldout=t.x[:3],
                            progress=False)
  lin = ex.retrain_leave_one_out(t.linen, t.linen_params, t.x, y, [1, 5], **kw)
  nn_ = ex.retrain_leave_one_out(model_twins.fresh_nnx(t), None, t.x, y, [1, 5], **kw)
  mf = gbounds.models.as_model_fn(t.linen, params=t.linen_params)
  fn = ex.retrain_leave_one_out(mf, None, t.x, y, [1, 5], **kw)
  # flattening orders of Linen and NNX parameters differ: compare per-example norms
  np.testing.assert_allclose(np.sum(nn_.weight_change ** 2, 1),
                             np.sum(lin.weight_change ** 2, 1), rtol=1e-4, atol=1e-10)
  assert nn_.heldout_prediction_change is not None and lin.heldout_prediction_change is not None
  np.testing.assert_allclose(nn_.heldout_prediction_change, lin.heldout_prediction_change,
                             rtol=1e-4, atol=1e-7)
  np.testing.assert_array_equal(fn.weight_change, lin.weight_change)


# ----------------------------------------------------------------------------- paper configuration


def test_pearson_ci_matches_scipy_fisher_and_a_brute_force_bootstrap():
  rng = np.random.default_rng(3)
  a = rng.normal(size=40)
  b = a + 0.5 * rng.normal(size=40)
  ci = ex.pearson_ci(a, b, num_bootstrap=300, seed=5)
  ref = scipy.stats.pearsonr(a, b)
  lo, hi = ref.confidence_interval(0.95)  # scipy: Fisher z-transform
  assert ci.r == pytest.approx(ref[0], rel=1e-12)
  assert (ci.fisher_low, ci.fisher_high) == pytest.approx((lo, hi), rel=1e-10)
  idx = np.random.default_rng(5).integers(0, 40, (300, 40))
  boot = [scipy.stats.pearsonr(a[i], b[i])[0] for i in idx]
  assert (ci.bootstrap_low, ci.bootstrap_high) == pytest.approx(
      tuple(np.percentile(boot, [2.5, 97.5])), rel=1e-10)
  assert ci.count == 40 and ci.fisher_low < ci.r < ci.fisher_high
  ci90 = ex.pearson_ci(a, b, level=0.9, num_bootstrap=0)
  assert ci90.fisher_high - ci90.fisher_low < ci.fisher_high - ci.fisher_low
  assert np.isnan(ci90.bootstrap_low)
  with pytest.raises(gbounds.InvalidInputError, match="level"):
    ex.pearson_ci(a, b, level=1.0)
  with pytest.raises(gbounds.InvalidInputError, match="a, b"):
    ex.pearson_ci(a, b[:-1])


def test_torch_default_init_bounds():
  x = np.zeros((2, 5, 5, 1), np.float32)
  _, params = ex.mlp_at_init(7, 0, x)
  p = ex.torch_default_init(params, 3)
  for name, fan_in in (("dense0", 25), ("head", 7)):
    for leaf in ("kernel", "bias"):
      v = np.asarray(p[name][leaf])
      assert v.shape == params[name][leaf].shape and v.dtype == params[name][leaf].dtype
      assert np.abs(v).max() <= 1 / np.sqrt(fan_in)
  assert np.abs(np.asarray(p["dense0"]["kernel"])).max() > 0.9 / np.sqrt(25)
  with pytest.raises(gbounds.InvalidInputError, match="params"):
    ex.torch_default_init({"dense0": {"kernel": 1}}, 0)


def _brute_gd(apply_fn, params, x, y, keep, eta, lam, steps):
  flat0, unravel = ravel_pytree(params)

  def loss(w):
    r = apply_fn(unravel(w), x[keep]) - y[keep]
    return 0.5 * jnp.sum(r * r) + 0.5 * lam * jnp.sum((w - flat0) ** 2)

  step = jax.jit(lambda w: w - eta * jax.grad(loss)(w))
  w = flat0
  for _ in range(steps):
    w = step(w)
  return np.asarray(w), np.asarray(apply_fn(unravel(w), x[:4]))


@pytest.mark.parametrize("convention", ["sum", "mean"])
def test_mlp_retraining_equals_brute_force_gd(convention):
  """The input-basis trainer (rank-deficient inputs, chunks of differences) runs exactly the
  leave-one-out GD of the flat network, under both learning-rate conventions."""
  dt = jnp.float64 if jax.config.read("jax_enable_x64") else jnp.float32
  rng = np.random.default_rng(0)
  x = rng.random((12, 6, 6, 1))
  x[:, :2] = 0.3  # constant pixels: the inputs span fewer than 36 directions
  x = x.astype(dt)
  y = rng.random(12).astype(dt)
  apply_fn, params = ex.mlp_at_init(8, 0, x.astype(np.float32))
  params = ex.torch_default_init(jax.tree_util.tree_map(lambda a: jnp.asarray(a, dt), params), 1)
  eta, lam, steps, idx = 0.02, 0.5, 40, [0, 3, 7]
  res = ex.retrain_mlp_leave_one_out(params, x, y, idx, learning_rate=eta, steps=steps,
                                     weight_decay=lam, convention=convention, x_heldout=x[:4],
                                     chunk_size=2, progress=False)
  n = 12
  w_full, f_full = _brute_gd(apply_fn, params, x, y[:, None], np.arange(n), eta, lam, steps)
  tol = 1e-10 if dt == jnp.float64 else 2e-3
  for j, i in enumerate(idx):
    eta_i, lam_i = (eta * n / (n - 1), lam * (n - 1) / n) if convention == "mean" else (eta, lam)
    w_i, f_i = _brute_gd(apply_fn, params, x, y[:, None], np.delete(np.arange(n), i), eta_i,
                         lam_i, steps)
    scale = np.abs(w_full - w_i).max()
    np.testing.assert_allclose(res.weight_change[j], w_full - w_i, atol=tol * scale, rtol=0)
    assert res.heldout_prediction_change is not None
    np.testing.assert_allclose(res.heldout_prediction_change[j], f_full - f_i,
                               atol=tol * np.abs(f_full - f_i).max(), rtol=0)
  with pytest.raises(gbounds.InvalidInputError, match="params"):
    ex.retrain_mlp_leave_one_out({"a": params["dense0"]}, x, y, [0], learning_rate=eta, steps=1)


def _paper_run(path, data_root, **kw):
  cfg: dict[str, Any] = dict(n_train=16, n_heldout=10, width=8, steps=30, num_retrained=16,
                             chunk_size=3, num_bootstrap=200, data_dir=data_root)
  cfg.update(kw)
  return ex.reproduce_sample_info_paper(path, **cfg)


@pytest.fixture(scope="module")
def paper_all(tmp_path_factory, data_root):
  if not jax.config.read("jax_enable_x64"):
    pytest.skip("the paper run needs float64")
  return _paper_run(tmp_path_factory.mktemp("all"), data_root)


@pytest.mark.x64
def test_paper_subset_equals_all_examples_path(paper_all, tmp_path, data_root):
  sub = _paper_run(tmp_path, data_root, num_retrained=5)
  assert len(sub.subset) == 5 and set(paper_all.subset) == set(range(16))
  np.testing.assert_array_equal(sub.subset, paper_all.subset[:5])  # a prefix of one permutation
  for name in ("linearized_weights", "retrained_weights", "linearized_predictions",
               "retrained_predictions"):
    np.testing.assert_allclose(getattr(sub, name), getattr(paper_all, name)[:5], rtol=1e-9)
  assert sub.weights.r == pytest.approx(
      scipy.stats.pearsonr(paper_all.linearized_weights[:5],
                           paper_all.retrained_weights[:5])[0], rel=1e-9)
  # the linearized column is sample_information's, for every example
  x, y, xh = ex._paper_data(16, 10, 0, data_root)
  apply_fn, p = ex.mlp_at_init(8, 0, x.astype(np.float32))
  p = ex.torch_default_init(jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), p), 0)
  info = gbounds.info.sample_information(apply_fn, p, x, y, learning_rate=1e-3 / 16, t=30,
                                         x_heldout=xh, convention="mean")
  np.testing.assert_allclose(paper_all.linearized_weights,
                             np.asarray(info.weight_change_sq)[paper_all.subset], rtol=1e-9)
  # files: JSON with provenance, CSV with one row per retrained example
  data = json.loads((tmp_path / "result.json").read_text())
  assert data["settings"]["num_retrained"] == 5 and "jax" in data["settings"]["versions"]
  assert data["subset"] == [int(i) for i in sub.subset]
  assert (tmp_path / "per_example.csv").read_text().count("\n") == 6
  back = ex.PaperLooCorrelation.from_dict(data)
  assert back.weights.r == sub.weights.r and back.table().rows[0][-1] == 0.987


@pytest.mark.x64
def test_paper_run_resumes_after_interruption(paper_all, tmp_path, data_root, monkeypatch):
  calls = []
  real = ex._MlpTrainer.train

  def once_then_fail(self, left_out):
    if calls:
      raise KeyboardInterrupt
    calls.append(list(left_out))
    return real(self, left_out)

  monkeypatch.setattr(ex._MlpTrainer, "train", once_then_fail)
  with pytest.raises(KeyboardInterrupt):
    _paper_run(tmp_path, data_root)
  assert len(list((tmp_path / "loo").glob("*.npz"))) == 3
  assert not list((tmp_path / "loo").glob("*.tmp*"))
  seen = []
  monkeypatch.setattr(ex._MlpTrainer, "train",
                      lambda self, left_out: seen.append(list(left_out)) or real(self, left_out))
  res = _paper_run(tmp_path, data_root)
  assert sum(len(c) for c in seen) == 13 and not set(calls[0]) & {i for c in seen for i in c}
  np.testing.assert_array_equal(res.subset, paper_all.subset)
  np.testing.assert_allclose(res.retrained_weights, paper_all.retrained_weights, rtol=1e-12)
  assert res.weights.r == pytest.approx(paper_all.weights.r, rel=1e-12)
  with pytest.raises(gbounds.InvalidInputError, match="out_dir"):
    _paper_run(tmp_path, data_root, steps=31)
  with pytest.raises(gbounds.InvalidInputError, match="num_retrained"):
    _paper_run(tmp_path / "other", data_root, num_retrained=17)


def test_paper_run_needs_x64(tmp_path, data_root):
  if jax.config.read("jax_enable_x64"):
    with jax.enable_x64(False):
      with pytest.raises(gbounds.InvalidInputError, match="jax_enable_x64"):
        _paper_run(tmp_path, data_root)
  else:
    with pytest.raises(gbounds.InvalidInputError, match="jax_enable_x64"):
      _paper_run(tmp_path, data_root)
