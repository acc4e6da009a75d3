"""Tests of gbounds.experiments._sample_info (retraining ground truth, experiments, CLI)."""

import json

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
      r = apply_fn(unravel(w), x[keep]) - y[keep]
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
  kw = dict(learning_rate=0.01, steps=5, weight_decay=0.1, x_heldout=t.x[:3], progress=False)
  lin = ex.retrain_leave_one_out(t.linen, t.linen_params, t.x, y, [1, 5], **kw)
  nn_ = ex.retrain_leave_one_out(model_twins.fresh_nnx(t), None, t.x, y, [1, 5], **kw)
  mf = gbounds.models.as_model_fn(t.linen, params=t.linen_params)
  fn = ex.retrain_leave_one_out(mf, None, t.x, y, [1, 5], **kw)
  # flattening orders of Linen and NNX parameters differ: compare per-example norms
  np.testing.assert_allclose(np.sum(nn_.weight_change ** 2, 1),
                             np.sum(lin.weight_change ** 2, 1), rtol=1e-4, atol=1e-10)
  np.testing.assert_allclose(nn_.heldout_prediction_change, lin.heldout_prediction_change,
                             rtol=1e-4, atol=1e-7)
  np.testing.assert_array_equal(fn.weight_change, lin.weight_change)
