"""Tests of the permuted-label / layer-rewinding experiment pieces (gbounds/_rewind.py)."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gbounds
from gbounds.geometry import _rewind as _rewind


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
  x = jnp.zeros((1, 28, 28, 1))
  return model, model.init(jax.random.key(0), x)["params"], \
      model.init(jax.random.key(1), x)["params"]


def test_parameter_layers_and_rewinding():
  _, final, early = _cnn_params()
  names = _rewind.parameter_layers(final)
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
  assert kinds == set(_rewind.MANIFOLD_KINDS)
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
