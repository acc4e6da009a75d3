"""Bad inputs to training (gbounds.train), the experiment configurations that train, and
wrong-architecture checkpoints (gbounds.geometry.rewind_layers; gbounds.analysis.load_checkpoint)."""

from __future__ import annotations

import atexit
import functools
import os
import tempfile

import jax
import numpy as np

import gbounds
from gbounds._src import errors as _errors
from tests.bad_inputs import Case

_E = _errors.InvalidInputError
_RNG = np.random.default_rng(0)
_X = _RNG.normal(size=(8, 3)).astype(np.float32)
_Y = np.arange(8, dtype=np.int32) % 2
_MODEL = gbounds.models.MLP((4,), 2)
_APPLY = lambda p, x: _MODEL.apply({"params": p}, x)  # noqa: E731
_P = _MODEL.init(jax.random.key(0), _X[:1])["params"]
_P3 = jax.vmap(lambda k: _MODEL.init(k, _X[:1])["params"])(jax.random.split(jax.random.key(1), 3))
_IDX = np.stack([np.arange(4), np.arange(4, 8), np.arange(2, 6)])
_CFG = gbounds.train.TrainConfig(steps=2)
_MSE = gbounds.train.TrainConfig(loss="mse", steps=2)


def _train(x=_X, y=_Y, params=_P, config=_CFG):
  return gbounds.train.train(_APPLY, params, x, y, config)


def _many(x=_X, y=_Y, params=_P3, idx=_IDX, config=_CFG, **kw):
  return gbounds.train.train_many(_APPLY, params, x, y, idx, config, **kw)


def _with_nan(tree):
  def one(a):
    a = np.array(a)
    a.flat[0] = np.nan
    return a
  return jax.tree_util.tree_map(one, tree)


# ---- checkpoints

_CK_DIR: list = []


@functools.cache
def _checkpoint() -> str:
  """An Orbax checkpoint of ``gbounds.models.MLP((8,), 2)`` on (4, 4, 1) inputs, written once."""
  d = tempfile.TemporaryDirectory()
  _CK_DIR.append(d)
  atexit.register(d.cleanup)
  path = os.path.join(d.name, "ck")
  p = {"dense0": {"kernel": np.ones((16, 8), np.float32), "bias": np.zeros(8, np.float32)},
       "head": {"kernel": np.ones((8, 2), np.float32), "bias": np.zeros(2, np.float32)}}
  gbounds.analysis.save_checkpoint(path, p, init_params=p)
  return path


def _load_checkpoint(model):
  return gbounds.analysis.load_checkpoint(_checkpoint(), model, np.zeros((2, 4, 4, 1), np.float32))


def _mlp(hidden: int, seed: int = 0):
  """Parameters of ``gbounds.models.MLP((hidden,), 10)`` on 4 inputs, drawn with numpy (no init)."""
  rng = np.random.default_rng(seed)
  return {"dense0": {"kernel": rng.normal(size=(4, hidden)), "bias": np.zeros(hidden)},
          "head": {"kernel": rng.normal(size=(hidden, 10)), "bias": np.zeros(10)}}


@functools.cache
def _nets():
  """A network and an 'early checkpoint' of another width (6 hidden units instead of 8)."""
  return _mlp(8, 0), _mlp(6, 1)


def _rewind_wrong_width():
  final, early = _nets()
  return gbounds.geometry.rewind_layers(final, early, ["dense0", "head"])


def _rewind_missing_layer():
  final, _ = _nets()
  early = {k: v for k, v in final.items() if k != "head"}
  return gbounds.geometry.rewind_layers(final, early, ["head"])


def _rewind_nan():
  final, _ = _nets()
  return gbounds.geometry.rewind_layers(final, _with_nan(final), ["dense0"])


CASES = [
    # ---- labels against the model's outputs
    Case("train/labels_above_outputs", "labels", lambda: _train(y=_Y + 1), _E,
         r"y: expected class labels in \[0, 2\) \(the model has 2 outputs\)"),
    Case("train/labels_negative", "labels", lambda: _train(y=_Y - 1), _E,
         r"y: expected class labels in \[0, 2\)"),
    Case("train/many_labels_above_outputs", "labels", lambda: _many(y=_Y + 2), _E,
         r"y: expected class labels in \[0, 2\)"),
    Case("train/mse_int_labels_above_outputs", "labels",
         lambda: _train(y=_Y * 5, config=_MSE), _E, r"y: expected class labels in \[0, 2\)"),
    Case("train/float_labels_cross_entropy", "dtypes", lambda: _train(y=_Y + 0.5), _E,
         r"y: expected integer class labels for the cross-entropy loss"),
    Case("train/mse_targets_wrong_width", "shapes",
         lambda: _train(y=np.zeros((8, 3), np.float32), config=_MSE), _E,
         r"y: expected integer labels or float targets with 2 values per example"),
    # ---- data
    Case("train/x_nan", "nan", lambda: _train(x=np.where(_X > 1, np.nan, _X)), _E,
         r"x: expected finite values"),
    Case("train/x_inf_many", "nan", lambda: _many(x=np.where(_X > 1, np.inf, _X)), _E,
         r"x: expected finite values"),
    Case("train/y_nan_targets", "nan",
         lambda: _train(y=np.full((8, 2), np.nan, np.float32), config=_MSE), _E,
         r"y: expected finite values"),
    Case("train/empty_data", "empty", lambda: _train(x=_X[:0], y=_Y[:0]), _E,
         r"x: expected a non-empty array"),
    Case("train/lengths_differ", "shapes", lambda: _train(y=_Y[:5]), _E,
         r"x and y: expected the same size"),
    Case("train/x_wrong_features", "shapes", lambda: _train(x=_X[:, :2]), _E,
         r"x: expected inputs the model accepts.*shape \(8, 2\)"),
    Case("train/x_strings", "dtypes", lambda: _train(x=np.array([["a"]] * 8)), _E,
         r"x: expected a numeric array"),
    Case("train/x_scalar", "ranks", lambda: _train(x=np.float32(1.0), y=_Y[:1]), _E,
         r"x: expected an array with a leading example axis"),
    # ---- params
    Case("train/params_nan", "nan", lambda: _train(params=_with_nan(_P)), _E,
         r"params: expected finite values.*\['dense0'\]\['bias'\]"),
    Case("train/many_params_inf", "nan",
         lambda: _many(params=jax.tree_util.tree_map(lambda a: np.full(np.shape(a), np.inf),
                                                     _P3)), _E,
         r"params: expected finite values"),
    Case("train/many_params_without_model_axis", "shapes", lambda: _many(params=_P), _E,
         r"params: expected a leading model axis of size 3"),
    # ---- train_many indices and options
    Case("train/many_idx_float", "dtypes", lambda: _many(idx=_IDX.astype(float)), _E,
         r"train_idx: expected integer indices"),
    Case("train/many_idx_out_of_range", "sizes", lambda: _many(idx=_IDX + 5), _E,
         r"train_idx: expected indices in \[0, 8\)"),
    Case("train/many_idx_empty", "empty", lambda: _many(idx=_IDX[:, :0]), _E,
         r"train_idx: expected at least one model and one training example"),
    Case("train/many_chunk_size_zero", "sizes", lambda: _many(chunk_size=0), _E,
         r"chunk_size: expected a positive integer"),
    Case("train/many_unknown_strategy", "options", lambda: _many(strategy="pmap"), _E,
         r"strategy: expected one of"),
    Case("train/many_model_ids_wrong_length", "shapes", lambda: _many(model_ids=[0, 1]), _E,
         r"model_ids: expected an array of shape \(3,\)"),
    # ---- hyper-parameters
    Case("train/lr_zero", "sizes", lambda: gbounds.train.TrainConfig(learning_rate=0.0), _E,
         r"learning_rate: expected a positive finite number"),
    Case("train/lr_nan", "nan", lambda: gbounds.train.TrainConfig(learning_rate=float("nan")), _E,
         r"learning_rate: expected a positive finite number, got nan"),
    Case("train/lr_string", "dtypes", lambda: gbounds.train.TrainConfig(learning_rate="0.1"), _E,
         r"learning_rate: expected a positive finite number"),
    Case("train/steps_zero", "sizes", lambda: gbounds.train.TrainConfig(steps=0), _E,
         r"steps: expected an integer >= 1"),
    Case("train/steps_fractional", "sizes", lambda: gbounds.train.TrainConfig(steps=2.5), _E,
         r"steps: expected an integer >= 1"),
    Case("train/batch_size_zero", "sizes", lambda: gbounds.train.TrainConfig(batch_size=0), _E,
         r"batch_size: expected a positive integer"),
    Case("train/momentum_one", "sizes",
         lambda: gbounds.train.TrainConfig(optimizer="momentum", momentum=1.0), _E,
         r"momentum: expected a number in \[0, 1\)"),
    Case("train/weight_decay_negative", "sizes", lambda: gbounds.train.TrainConfig(weight_decay=-1e-3),
         _E, r"weight_decay: expected a non-negative"),
    Case("train/unknown_optimizer", "options", lambda: gbounds.train.TrainConfig(optimizer="lbfgs"),
         _E, r"optimizer: expected one of \{sgd, momentum, adam\}"),
    Case("train/unknown_loss", "options", lambda: gbounds.train.TrainConfig(loss="hinge"), _E,
         r"loss: expected one of"),
    Case("train/config_not_a_config", "options",
         lambda: _train(config={"learning_rate": 0.1}), _E, r"config: expected a gbounds"),
    Case("train/epochs_zero", "sizes", lambda: gbounds.train.steps_for_epochs(0, 100, 10), _E,
         r"epochs: expected an integer >= 1"),
    # ---- experiment configurations (checked before any training)
    Case("train/fcmi_protocol_same_class", "classes",
         lambda: gbounds.experiments.FcmiProtocol(classes=(4, 4)), _E,
         r"classes: expected two distinct class labels"),
    Case("train/fcmi_protocol_string_k1", "dtypes", lambda: gbounds.experiments.FcmiProtocol(k1="five"), _E,
         r"k1: expected a positive integer"),
    Case("train/fcmi_protocol_fractional_ns", "sizes",
         lambda: gbounds.experiments.FcmiProtocol(ns=(75.5,)), _E, r"ns: expected positive numbers"),
    Case("train/fcmi_small_protocol_unknown_key", "options",
         lambda: gbounds.experiments.small_protocol(epoch=3), _E,
         r"config: expected fields of FcmiProtocol.*\['epoch'\]"),
    Case("train/settings_mi_neurons_one", "sizes",
         lambda: gbounds.experiments.SettingsConfig(mi_neurons=1), _E, r"mi_neurons: expected an integer >= 2"),
    Case("train/permuted_config_nan_kappa", "nan",
         lambda: gbounds.geometry.PermutedLabelConfig(kappa=float("nan")), _E, r"kappa: expected"),
    Case("train/reproduce_unknown_override", "options",
         lambda: gbounds.experiments.reproduce("wang_mao_synthetic", foo=1), _E,
         r"overrides: expected configuration keys of wang_mao_synthetic.*\['foo'\]"),
    Case("train/reproduce_override_wrong_kind", "dtypes",
         lambda: gbounds.experiments.reproduce("wang_mao_synthetic", k1="ten"), _E,
         r"k1: expected an integer \(as the preset's 10\)"),
    # ---- model families
    Case("train/mlp_zero_width", "sizes", lambda: gbounds.models.MLP((0,), 2), _E,
         r"hidden: expected a sequence of positive integer widths"),
    Case("train/mlp_hidden_not_sequence", "shapes", lambda: gbounds.models.MLP(512, 2), _E,
         r"hidden: expected a sequence"),
    Case("train/mlp_zero_outputs", "sizes", lambda: gbounds.models.MLP((4,), 0), _E,
         r"out: expected a positive number of outputs"),
    Case("train/mlp_unknown_activation", "options",
         lambda: gbounds.models.MLP((4,), 2, activation="swish"), _E, r"activation: expected one of"),
    Case("train/conv_stage_zero_channels", "sizes", lambda: gbounds.models.ConvStage(0, 3), _E,
         r"channels: expected a positive integer"),
    Case("train/cnn_stages_not_conv_stages", "options",
         lambda: gbounds.models.CNN(stages=((16, 3),)), _E, r"stages: expected a sequence of gbounds"),
    # ---- wrong-architecture checkpoints
    Case("train/checkpoint_wider_model", "checkpoints",
         lambda: _load_checkpoint(gbounds.models.MLP((16,), 2)), _E,
         r"checkpoint: .*ck with \['dense0'\]\['bias'\] of shape \(8,\)"),
    Case("train/checkpoint_more_outputs", "checkpoints",
         lambda: _load_checkpoint(gbounds.models.MLP((8,), 3)), _E,
         r"checkpoint: .*ck with \['head'\]\['bias'\] of shape \(2,\)"),
    Case("train/checkpoint_extra_layer", "checkpoints",
         lambda: _load_checkpoint(gbounds.models.MLP((8, 8), 2)), _E,
         r"checkpoint: .*ck with \['dense1'\]\['bias'\] of shape absent"),
    Case("train/rewind_early_params_other_width", "checkpoints", _rewind_wrong_width, _E,
         r"early_params: expected a checkpoint of the same architecture.*\['dense0'\]\['bias'\] "
         r"of shape \(6,\) \(params: \(8,\)\)"),
    Case("train/rewind_early_params_missing_layer", "checkpoints", _rewind_missing_layer, _E,
         r"early_params: expected a checkpoint of the same architecture holding layers"),
    Case("train/rewind_early_params_nan", "nan", _rewind_nan, _E,
         r"early_params: expected finite values.*\['dense0'\]"),
    Case("train/rewind_layers_as_string", "options",
         lambda: gbounds.geometry.rewind_layers(_nets()[0], _nets()[0], "head"), _E,
         r"layers: expected a sequence of layer names"),
]


def _permuted_config(**kw):
  return gbounds.geometry.PermutedLabelConfig(**kw)


CASES += [
    Case("train/permuted_config_one_point_manifold", "sizes",
         lambda: _permuted_config(n_per_manifold=1), _errors.InvalidInputError, r"n_per_manifold"),
    Case("train/permuted_config_negative_checkpoint_epoch", "sizes",
         lambda: _permuted_config(checkpoint_epochs=(-1, 2)), _errors.InvalidInputError,
         r"checkpoint_epochs"),
]

# ---- compile-once factories (checked when the factory is built, before anything compiles)
CASES += [
    Case("train/train_fn_apply_fn_not_callable", "options",
         lambda: gbounds.train.train_fn(_MODEL, _CFG), _E, r"apply_fn: expected a function"),
    Case("train/train_fn_config_not_a_config", "options",
         lambda: gbounds.train.train_fn(_APPLY, {"steps": 2}), _E, r"config: expected a gbounds"),
    Case("train/train_many_fn_unknown_strategy", "options",
         lambda: gbounds.train.train_many_fn(_APPLY, _CFG, strategy="pmap"), _E,
         r"strategy: expected one of"),
    Case("train/predict_fn_apply_fn_not_callable", "options",
         lambda: gbounds.train.predict_fn(3), _E, r"apply_fn: expected a function"),
    Case("train/predict_many_fn_unknown_strategy", "options",
         lambda: gbounds.train.predict_many_fn(_APPLY, strategy="scan"), _E,
         r"strategy: expected one of"),
    Case("train/resolve_strategy_unknown", "options",
         lambda: gbounds.train.resolve_strategy("pmap", _P3), _E, r"strategy: expected one of"),
    Case("train/train_limit_fn_config_not_a_config", "options",
         lambda: gbounds.train.train_limit_fn(_APPLY, _APPLY, _CFG), _E,
         r"config: expected a gbounds.train.LimitConfig"),
    Case("train/init_many_model_without_init", "options",
         lambda: gbounds.train.init_many(gbounds.models.ModelFn(_APPLY, _P), _X[:1],
                                         jax.random.split(jax.random.key(0), 2)), _E,
         r"model: expected a model whose fresh parameters"),
]
