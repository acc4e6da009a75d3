"""Tests of the permuted-label / layer-rewinding experiment (gbounds/geometry/_rewind.py) and its
figures (gbounds/viz/_geometry.py)."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gbounds


def test_permute_labels_keeps_marginals_and_touches_only_the_selected_fraction():
  y = np.repeat(np.arange(10), 50).astype(np.int32)
  yp, mask = gbounds.geometry.permute_labels(y, fraction=0.4, seed=3)
  assert mask.sum() == 200
  np.testing.assert_array_equal(yp[~mask], y[~mask])
  np.testing.assert_array_equal(np.sort(yp[mask]), np.sort(y[mask]))
  assert np.mean(yp[mask] != y[mask]) > 0.7  # a random permutation of 10 classes
  yp2, mask2 = gbounds.geometry.permute_labels(y, fraction=0.4, seed=3)
  np.testing.assert_array_equal(yp, yp2)
  with pytest.raises(gbounds.InvalidInputError, match="fraction"):
    gbounds.geometry.permute_labels(y, fraction=1.5)


def _cnn_params():
  model = gbounds.models.CNN(out=10)
  x = jnp.zeros((1, 28, 28, 1), jnp.float32)
  return model, model.init(jax.random.key(0), x)["params"], \
      model.init(jax.random.key(1), x)["params"]


def test_parameter_layers_and_rewinding():
  _, final, early = _cnn_params()
  names = gbounds.geometry.parameter_layers(final)
  assert names == ("conv0", "conv1", "conv2", "dense0", "head")
  p = gbounds.geometry.rewind_layers(final, early, names[-2:])
  for n in names:
    src = early if n in names[-2:] else final
    for a, b in zip(jax.tree_util.tree_leaves(p[n]), jax.tree_util.tree_leaves(src[n])):
      np.testing.assert_array_equal(a, b)
  with pytest.raises(gbounds.InvalidInputError, match="layers"):
    gbounds.geometry.rewind_layers(final, early, ["conv9"])


def test_layer_features_match_a_hand_computed_forward_pass():
  model = gbounds.models.MLP(hidden=(7, 5), out=3)
  x = np.random.default_rng(0).standard_normal((9, 4, 4, 1)).astype(np.float32)
  params = model.init(jax.random.key(0), x)["params"]
  feats = gbounds.geometry.layer_features(model, params, x, chunk_size=4)  # 3 chunks (jitted inside)
  h = x.reshape(9, -1)
  np.testing.assert_allclose(feats["input"], h)
  for name in ("dense0", "dense1"):
    h = np.maximum(h @ np.asarray(params[name]["kernel"]) + np.asarray(params[name]["bias"]), 0)
    np.testing.assert_allclose(feats[name], h, rtol=1e-5, atol=1e-6)
  logits = h @ np.asarray(params["head"]["kernel"]) + np.asarray(params["head"]["bias"])
  np.testing.assert_allclose(feats["head"], logits, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(feats["head"], model.apply({"params": params}, x), rtol=1e-5,
                             atol=1e-6)


def test_cnn_features_are_full_feature_maps():
  model, params, _ = _cnn_params()
  feats = gbounds.geometry.layer_features(model, params, np.zeros((2, 28, 28, 1), np.float32))
  assert feats["conv0"].shape == (2, 14 * 14 * 16)
  assert feats["dense0"].shape == (2, 128)


def test_config_validation():
  with pytest.raises(gbounds.InvalidInputError, match="rewind_epoch"):
    gbounds.geometry.PermutedLabelConfig(epochs=3, rewind_epoch=5)
  with pytest.raises(gbounds.InvalidInputError, match="dataset"):
    gbounds.geometry.PermutedLabelConfig(dataset="cifar")
  cfg = gbounds.geometry.PermutedLabelConfig(epochs=4, checkpoint_epochs=(0, 9), rewind_epoch=1)
  assert cfg.checkpoint_epochs == (0, 1, 4)


@pytest.mark.slow
def test_quick_experiment_through_the_cli(data_root, tmp_path):
  from gbounds.cli import main
  rc = main(["manifold", "permuted-labels", "--quick", "--data-dir", data_root,
             "--out", str(tmp_path)])
  assert rc == 0
  res = json.loads((tmp_path / "result.json").read_text())
  kinds = {g["kind"] for g in res["geometry"]}
  assert kinds == set(gbounds.geometry.MANIFOLD_KINDS)
  assert {g["layer"] for g in res["geometry"]} == {"input", "conv0", "conv1", "conv2", "dense0"}
  # L = 5 rewinds everything: the network is the rewind checkpoint itself.
  last = [r for r in res["rewinding"] if r["direction"] == "last"]
  first = [r for r in res["rewinding"] if r["direction"] == "first"]
  assert last[-1]["test_accuracy"] == first[-1]["test_accuracy"]
  for name in ("geometry.png", "rewinding.png", "geometry.csv", "rewinding.csv"):
    assert (tmp_path / name).stat().st_size > 0


def test_rewinding_from_a_checkpoint_of_another_architecture_names_the_leaf():
  final = {"dense0": {"kernel": np.zeros((4, 8)), "bias": np.zeros(8)},
           "head": {"kernel": np.zeros((8, 10)), "bias": np.zeros(10)}}
  early = {"dense0": {"kernel": np.ones((4, 8)), "bias": np.ones(8)},
           "head": {"kernel": np.ones((8, 10))}}
  out = gbounds.geometry.rewind_layers(final, early, ["dense0"])  # the matching group rewinds
  np.testing.assert_array_equal(out["dense0"]["kernel"], 1.0)
  np.testing.assert_array_equal(out["head"]["kernel"], 0.0)
  with pytest.raises(gbounds.InvalidInputError,
                     match=r"early_params: .*\['head'\]\['bias'\] of shape absent "
                           r"\(params: \(10,\)\)"):
    gbounds.geometry.rewind_layers(final, early, ["head"])


def test_config_types_are_checked():
  with pytest.raises(gbounds.InvalidInputError, match="n_train"):
    gbounds.geometry.PermutedLabelConfig(n_train="3000")
  with pytest.raises(gbounds.InvalidInputError, match="checkpoint_epochs"):
    gbounds.geometry.PermutedLabelConfig(checkpoint_epochs=(0, 1.5))
  assert gbounds.geometry.PermutedLabelConfig().checkpoint_epochs == (0, 1, 2, 5, 10, 20, 40)


# ----------------------------------------------------------------------------- NNX twin


def test_layer_features_and_rewinding_agree_for_the_nnx_twin():
  from flax import nnx

  from tests.model_twins import cnn_twins
  t = cnn_twins()
  early = cnn_twins(seed=1)
  lin = gbounds.geometry.layer_features(t.linen, t.linen_params, t.x, chunk_size=5)
  nx = gbounds.geometry.layer_features(t.nnx, x=t.x, chunk_size=5)
  assert list(lin) == list(nx) == ["input", "conv0", "conv1", "dense0", "head"]
  for name in lin:
    np.testing.assert_allclose(nx[name], lin[name], rtol=1e-5, atol=1e-6)
  names = gbounds.geometry.parameter_layers(t.linen_params)
  assert gbounds.geometry.parameter_layers(nnx.state(t.nnx, nnx.Param), model=t.nnx) == names
  early_state = nnx.state(early.nnx, nnx.Param)
  for chosen in (names[-2:], names[:1], names):
    p_lin = gbounds.geometry.rewind_layers(t.linen_params, early.linen_params, chosen)
    p_nnx = gbounds.geometry.rewind_layers(nnx.state(t.nnx, nnx.Param), early_state, chosen,
                                           model=t.nnx)
    out_lin = t.linen.apply({"params": p_lin}, t.x)
    out_nnx = gbounds.models.as_model_fn(t.nnx, params=p_nnx).apply_fn(p_nnx, t.x)
    np.testing.assert_allclose(out_nnx, out_lin, rtol=1e-5, atol=1e-6)
    f_lin = gbounds.geometry.layer_features(t.linen, p_lin, t.x)
    f_nnx = gbounds.geometry.layer_features(t.nnx, p_nnx, t.x)
    for name in f_lin:
      np.testing.assert_allclose(f_nnx[name], f_lin[name], rtol=1e-5, atol=1e-6)
  via_fn = gbounds.geometry.layer_features(gbounds.models.as_model_fn(t.nnx), x=t.x)
  assert list(via_fn) == list(lin)
  for name in lin:
    np.testing.assert_allclose(via_fn[name], lin[name], rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- results


def _small_result():
  g = gbounds.geometry
  cfg = g.PermutedLabelConfig(epochs=2, rewind_epoch=1, checkpoint_epochs=(0,))
  geometry = tuple(g.GeometryRecord(e, layer, kind, 1.5 + e, 0.5, 3.25, 0.1, 0)
                   for e in cfg.checkpoint_epochs for layer in ("input", "conv0")
                   for kind in g.ManifoldKind)
  history = tuple(g.EpochRecord(e, 0.9, 0.1 * e, 0.8) for e in cfg.checkpoint_epochs)
  rewinding = (g.RewindRecord(g.RewindDirection.LAST, 0, (), 0.8, 0.2, 0.9),
               g.RewindRecord(g.RewindDirection.LAST, 1, ("head",), 0.85, 0.1, 0.9),
               g.RewindRecord(g.RewindDirection.FIRST, 1, ("conv0",), 0.7, 0.2, 0.8))
  return g.PermutedLabelResult(cfg, ("input", "conv0"), ("conv0", "head"), history, geometry,
                               rewinding, 0.9)


def test_results_round_trip_through_json_with_enums():
  res = _small_result()
  data = json.loads(json.dumps(res.to_dict()))
  assert data["geometry"][0]["kind"] == "unpermuted" and data["rewinding"][0]["direction"] == "last"
  assert data["config"]["dataset"] == "mnist"
  back = gbounds.geometry.PermutedLabelResult.from_dict(data)
  assert back == res
  assert isinstance(back.geometry[0].kind, gbounds.geometry.ManifoldKind)
  assert isinstance(back.rewinding[2].direction, gbounds.geometry.RewindDirection)
  assert back.config.dataset is gbounds.geometry.ImageDataset.MNIST
  rec = res.geometry[3]
  assert gbounds.geometry.GeometryRecord.from_dict(json.loads(json.dumps(rec.to_dict()))) == rec


def test_tables_are_gbounds_tables():
  res = _small_result()
  for table in (res.table(), res.history_table(), res.geometry_table()):
    assert isinstance(table, gbounds.Table)
  assert res.table().column("layers") == ["", "head", "conv0"]
  assert res.table().column("direction") == ["last", "last", "first"]
  assert len(res.geometry_table().rows) == len(res.config.checkpoint_epochs) * 2 * 3


def test_figures_draw_on_given_axes_without_pyplot():
  from gbounds._src.io import figure_png, new_figure
  from gbounds.viz import _geometry as viz
  res = _small_result()
  fig, axes = new_figure(nrows=3, ncols=3, sharex=True, sharey="row")
  assert viz.plot_layer_geometry_grid(axes, res) is axes
  assert axes[0, 1].get_title() == "permuted"
  assert len(axes[0, 0].get_lines()) == len(res.config.checkpoint_epochs)
  fig2, ax = new_figure()
  assert viz.plot_rewinding(ax, res) is ax
  assert len(ax.get_lines()) == 4
  for f in (fig, fig2):
    assert figure_png(f)[:4] == b"\x89PNG"


@pytest.mark.slow
def test_permuted_label_experiment_agrees_for_the_nnx_twin(data_root):
  from flax import nnx
  g, gm = gbounds.geometry, gbounds.models
  cfg = g.PermutedLabelConfig(n_train=300, n_test=100, epochs=2, rewind_epoch=1, batch_size=50,
                              checkpoint_epochs=(0,), n_per_manifold=5, n_t=20, center_rank=0)
  linen = gm.CNN(out=10)
  params = linen.init(jax.random.key(cfg.seed), jnp.zeros((1, 28, 28, 1), jnp.float32))["params"]
  twin = gm.NnxCNN((28, 28, 1), out=10, rngs=nnx.Rngs(0))
  gm.linen_params_to_nnx(twin, params)
  a = g.permuted_label_experiment(cfg, data_dir=data_root)  # default: CNN(out=10) from the seed
  b = g.permuted_label_experiment(cfg, data_dir=data_root, model=twin)
  assert a.parameter_layers == b.parameter_layers == ("conv0", "conv1", "conv2", "dense0", "head")
  assert a.analysed_layers == b.analysed_layers
  np.testing.assert_allclose(np.array([tuple(r)[1:] for r in b.history]),
                             np.array([tuple(r)[1:] for r in a.history]), atol=0.02)
  assert [(r.direction, r.layers) for r in a.rewinding] == \
      [(r.direction, r.layers) for r in b.rewinding]
  np.testing.assert_allclose([r.test_accuracy for r in b.rewinding],
                             [r.test_accuracy for r in a.rewinding], atol=0.02)
  assert [(r.epoch, r.layer, r.kind) for r in a.geometry] == \
      [(r.epoch, r.layer, r.kind) for r in b.geometry]
  np.testing.assert_allclose([r.capacity for r in b.geometry], [r.capacity for r in a.geometry],
                             rtol=1e-2)
