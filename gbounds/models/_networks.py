"""Flax model families (Linen and NNX) and the adapter to an ``(apply_fn, params)`` pair.

Two families, each in both Flax APIs with identical parameter layouts, so that the same
weights give the same function (and the same NTK) in either:

* ``MLP``: flatten, then ``Dense(width) -> activation`` per hidden layer, then ``Dense(out)``.
* ``CNN``: per stage ``Conv(channels, kernel, stride, padding) -> activation``, flatten,
  optional dense hidden layers, then ``Dense(out)``. The default stages are the f-CMI MNIST
  architecture of Harutyunyan et al. (2021) without BatchNorm (the NTK engine linearizes all
  parameters; BatchNorm would couple examples).

Downstream code (NTK engine, trainers, bounds) only sees :class:`ModelFn`:
``apply_fn(params, x) -> (batch, k)`` and ``params``, a pytree.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn
from flax import nnx

from gbounds._src import errors as _errors

_ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": jax.nn.relu, "tanh": jnp.tanh, "gelu": jax.nn.gelu, "erf": jax.scipy.special.erf,
    "identity": lambda x: x,
}


def _activation(name: str) -> Callable[[jax.Array], jax.Array]:
  if name not in _ACTIVATIONS:
    _errors.fail("activation", f"one of {sorted(_ACTIVATIONS)}", repr(name))
  return _ACTIVATIONS[name]


def _check_widths(name: str, widths: Any, *, allow_empty: bool = True) -> None:
  try:
    ws = tuple(widths)
  except TypeError:
    ws = None
  if ws is None or (not ws and not allow_empty) or any(
      isinstance(w, bool) or not isinstance(w, (int, np.integer)) or w < 1 for w in ws):
    _errors.fail(name, "a sequence of positive integer widths", repr(widths))


def _check_out(out: Any) -> None:
  if isinstance(out, bool) or not isinstance(out, (int, np.integer)) or out < 1:
    _errors.fail("out", "a positive number of outputs", repr(out))


def _check_stages(stages: Any) -> None:
  try:
    ok = all(isinstance(st, ConvStage) for st in stages)
  except TypeError:
    ok = False
  if not ok:
    _errors.fail("stages", "a sequence of gbounds.models.ConvStage", repr(stages))


class ModelFn(NamedTuple):
  """A model as a pure function and its parameters: ``apply_fn(params, x) -> (batch, k)``."""
  apply_fn: Callable[[Any, jax.Array], jax.Array]
  params: Any


# ----------------------------------------------------------------------------- Linen


class MLP(nn.Module):
  """Linen MLP. ``hidden``: widths of the hidden layers; ``out``: number of outputs."""
  hidden: Sequence[int] = (512, 512)
  out: int = 2
  activation: str = "relu"
  param_dtype: Any = jnp.float32

  def __post_init__(self):
    _check_widths("hidden", self.hidden)
    _check_out(self.out)
    _activation(self.activation)
    super().__post_init__()

  @nn.compact
  def __call__(self, x):
    act = _activation(self.activation)
    x = x.reshape((x.shape[0], -1))
    for i, w in enumerate(self.hidden):
      x = act(nn.Dense(w, name=f"dense{i}", param_dtype=self.param_dtype)(x))
    return nn.Dense(self.out, name="head", param_dtype=self.param_dtype)(x)


@dataclasses.dataclass(frozen=True)
class ConvStage:
  channels: int
  kernel: int
  stride: int = 1
  padding: int | str = 0

  def __post_init__(self):
    for name in ("channels", "kernel", "stride"):
      v = getattr(self, name)
      if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
        _errors.fail(name, "a positive integer", repr(v))
    p = self.padding
    if isinstance(p, bool) or (isinstance(p, (int, np.integer)) and p < 0):
      _errors.fail("padding", "an integer >= 0 or a Flax padding string ('SAME', 'VALID')",
                   repr(p))


FCMI_STAGES = (ConvStage(32, 4, 2, 1), ConvStage(32, 4, 2, 1), ConvStage(64, 3, 2, 0),
               ConvStage(256, 3, 1, 0))
SMALL_STAGES = (ConvStage(16, 4, 2, 1), ConvStage(32, 4, 2, 1), ConvStage(32, 3, 2, 0))


def _pad(p):
  return p if isinstance(p, str) else [(p, p), (p, p)]


class CNN(nn.Module):
  """Linen CNN: conv stages, flatten, ``dense`` hidden layers, head with ``out`` outputs."""
  stages: Sequence[ConvStage] = SMALL_STAGES
  dense: Sequence[int] = (128,)
  out: int = 2
  activation: str = "relu"
  param_dtype: Any = jnp.float32

  def __post_init__(self):
    _check_stages(self.stages)
    _check_widths("dense", self.dense)
    _check_out(self.out)
    _activation(self.activation)
    super().__post_init__()

  @nn.compact
  def __call__(self, x):
    act = _activation(self.activation)
    for i, s in enumerate(self.stages):
      x = act(nn.Conv(s.channels, (s.kernel, s.kernel), strides=(s.stride, s.stride),
                      padding=_pad(s.padding), name=f"conv{i}", param_dtype=self.param_dtype)(x))
    x = x.reshape((x.shape[0], -1))
    for i, w in enumerate(self.dense):
      x = act(nn.Dense(w, name=f"dense{i}", param_dtype=self.param_dtype)(x))
    return nn.Dense(self.out, name="head", param_dtype=self.param_dtype)(x)


# ----------------------------------------------------------------------------- NNX


class NnxMLP(nnx.Module):
  """NNX twin of :class:`MLP` (same parameter names and layouts)."""

  def __init__(self, in_features: int, hidden: Sequence[int] = (512, 512), out: int = 2, *,
               activation: str = "relu", param_dtype=jnp.float32, rngs: nnx.Rngs):
    self.act = activation
    dims = [in_features, *hidden]
    self.layers = nnx.List([nnx.Linear(a, b, param_dtype=param_dtype, rngs=rngs)
                            for a, b in zip(dims[:-1], dims[1:])])
    self.head = nnx.Linear(dims[-1], out, param_dtype=param_dtype, rngs=rngs)

  def ordered_layers(self):
    return [*self.layers, self.head]

  def __call__(self, x):
    act = _activation(self.act)
    x = x.reshape((x.shape[0], -1))
    for layer in self.layers:
      x = act(layer(x))
    return self.head(x)


class NnxCNN(nnx.Module):
  """NNX twin of :class:`CNN`; ``input_shape`` is (H, W, C) of one example."""

  def __init__(self, input_shape: Sequence[int], stages: Sequence[ConvStage] = SMALL_STAGES,
               dense: Sequence[int] = (128,), out: int = 2, *, activation: str = "relu",
               param_dtype=jnp.float32, rngs: nnx.Rngs):
    self.act = activation
    c = input_shape[-1]
    self.convs = nnx.List()
    for s in stages:
      self.convs.append(nnx.Conv(c, s.channels, (s.kernel, s.kernel), strides=(s.stride, s.stride),
                                 padding=_pad(s.padding), param_dtype=param_dtype, rngs=rngs))
      c = s.channels
    probe = jnp.zeros((1, *input_shape), param_dtype)
    for conv in self.convs:
      probe = conv(probe)
    dims = [int(probe.size), *dense]
    self.dense = nnx.List([nnx.Linear(a, b, param_dtype=param_dtype, rngs=rngs)
                           for a, b in zip(dims[:-1], dims[1:])])
    self.head = nnx.Linear(dims[-1], out, param_dtype=param_dtype, rngs=rngs)

  def ordered_layers(self):
    return [*self.convs, *self.dense, self.head]

  def __call__(self, x):
    act = _activation(self.act)
    for conv in self.convs:
      x = act(conv(x))
    x = x.reshape((x.shape[0], -1))
    for layer in self.dense:
      x = act(layer(x))
    return self.head(x)


# ----------------------------------------------------------------------------- adapter


def as_model_fn(model: Any, *, example_input: jax.Array | None = None,
                key: jax.Array | int | None = None, params: Any = None) -> ModelFn:
  """Turns a Linen module (with ``example_input`` and ``key``, or given ``params``) or an
  NNX module into a :class:`ModelFn`.

  For NNX, ``params`` is the module's ``nnx.Param`` state (an ``nnx.State`` pytree) and
  ``apply_fn`` merges it with the module's graph definition: the call is pure.
  """
  if isinstance(model, nnx.Module):
    graphdef, state, rest = nnx.split(model, nnx.Param, ...)

    def nnx_apply(p, x):
      return nnx.merge(graphdef, p, rest)(x)

    return ModelFn(nnx_apply, state if params is None else params)
  if isinstance(model, nn.Module):
    if params is None:
      if example_input is None:
        _errors.fail("example_input", "an input batch to initialise a Linen module", None)
      key = jax.random.key(0 if key is None else key) if not isinstance(key, jax.Array) else key
      params = model.init(key, example_input)["params"]

    def linen_apply(p, x):
      return model.apply({"params": p}, x)

    return ModelFn(linen_apply, params)
  _errors.fail("model", "a flax.linen.Module or flax.nnx.Module", type(model).__name__)


def linen_params_to_nnx(model: nnx.Module, linen_params: Any) -> nnx.State:
  """Copies Linen :class:`MLP`/:class:`CNN` parameters into their NNX twin, in place; returns
  the twin's parameter state."""
  flat_linen = [v for _, v in sorted(_layer_items(linen_params), key=lambda kv: kv[0])]
  nnx_layers = model.ordered_layers()
  if len(flat_linen) != len(nnx_layers):
    _errors.fail("linen_params", f"{len(nnx_layers)} layers", len(flat_linen))
  for layer, p in zip(nnx_layers, flat_linen):
    layer.kernel[...] = jnp.asarray(p["kernel"])
    layer.bias[...] = jnp.asarray(p["bias"])
  _, state = nnx.split(model, nnx.Param)
  return state


def _layer_items(params):
  order = {"conv": 0, "dense": 1, "head": 2}
  for name, p in params.items():
    stem = name.rstrip("0123456789")
    idx = int(name[len(stem):] or 0)
    yield (order[stem], idx), p


def count_params(params: Any) -> int:
  return int(sum(x.size for x in jax.tree_util.tree_leaves(params)))
