"""to_dict/from_dict round trips of the models' result types."""

import json

import jax.numpy as jnp

import gbounds.models as gm
from tests import model_twins


def test_layer_info_round_trip():
  t = model_twins.cnn_twins()
  for info in gm.available_layers(t.linen, t.linen_params, t.x):
    back = gm.LayerInfo.from_dict(json.loads(json.dumps(info.to_dict())))
    assert back == info and type(back) is gm.LayerInfo


def test_layer_group_round_trip():
  t = model_twins.mlp_twins()
  for group in (*gm.layer_groups(t.linen, t.linen_params), *gm.layer_groups(t.nnx)):
    back = gm.LayerGroup.from_dict(json.loads(json.dumps(group.to_dict())))
    assert back == group and type(back) is gm.LayerGroup
  assert gm.count_params(t.linen_params) == 16 * 12 + 12 + 12 * 6 + 6 + 6 * 3 + 3
  assert gm.count_params({"a": jnp.zeros((2, 3))}) == 6
