"""Flax model families (Linen and NNX) and the adapter to an ``(apply_fn, params)`` pair.

Two families, each in both Flax APIs with identical parameter layouts, so that the same
weights give the same function (and the same NTK) in either:

* ``MLP``: flatten, then ``Dense(width) -> activation`` per hidden layer, then ``Dense(out)``.
* ``CNN``: per stage ``Conv(channels, kernel, stride, padding) -> activation``, flatten,
  optional dense hidden layers, then ``Dense(out)``. The default stages are the f-CMI MNIST
  architecture of Harutyunyan et al. (2021) without BatchNorm (the NTK engine linearizes all
  parameters; BatchNorm would couple examples).

Downstream code (NTK engine, trainers, bounds) only sees :class:`ModelFn`:
``apply_fn(params, x) -> (batch, k)``, ``params`` (a pytree) and ``init_fn(key) -> params`` (or
``None``), made by :func:`as_model_fn` from any of the accepted model forms.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn
from flax import nnx

from gbounds._src import errors as _errors
from gbounds.models import _hooks


class Activation(enum.StrEnum):
  """The activations of :class:`MLP`/:class:`CNN` and their NNX twins (value: accepted name)."""
  RELU = "relu"          # jax.nn.relu
  TANH = "tanh"          # jnp.tanh
  GELU = "gelu"          # jax.nn.gelu (tanh approximation, jax's default)
  ERF = "erf"            # jax.scipy.special.erf
  IDENTITY = "identity"  # x -> x (a linear network)


_ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": jax.nn.relu, "tanh": jnp.tanh, "gelu": jax.nn.gelu, "erf": jax.scipy.special.erf,
    "identity": lambda x: x,
}


def _activation(name: Activation | str) -> Callable[[jax.Array], jax.Array]:
  if not isinstance(name, str) or name not in _ACTIVATIONS:
    _errors.fail("activation", f"one of {sorted(_ACTIVATIONS)}", repr(name))
  return _ACTIVATIONS[str(name)]


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
  """A model as a pure function, its parameters, and (when known) how to draw fresh parameters.

  Attributes:
    apply_fn: ``apply_fn(params, x) -> (batch, k)``, pure (traceable under ``jit``/``vmap``).
    params: the parameters, a pytree (a Linen ``"params"`` dict or an NNX ``nnx.State``).
    init_fn: ``init_fn(key) -> params``: fresh parameters with the structure, shapes and dtypes
      of ``params`` from a ``jax.random`` key (pure, traceable); ``None`` when unknown.
  """
  apply_fn: Callable[[Any, jax.typing.ArrayLike], jax.Array]
  params: Any
  init_fn: Callable[[jax.Array], Any] | None = None


# ----------------------------------------------------------------------------- Linen


class MLP(nn.Module):
  """Linen MLP: flatten, ``Dense(w) -> activation`` per hidden width, ``Dense(out)``.

  Attributes:
    hidden: widths of the hidden layers (modules ``dense0``, ``dense1``, ...).
    out: number of outputs (module ``head``).
    activation: an :class:`Activation` (or its name).
    param_dtype: dtype of the parameters.
  """
  hidden: Sequence[int] = (512, 512)
  out: int = 2
  activation: Activation | str = Activation.RELU
  param_dtype: Any = jnp.float32

  def __post_init__(self):
    _check_widths("hidden", self.hidden)
    _check_out(self.out)
    _activation(self.activation)
    super().__post_init__()

  @nn.compact
  def __call__(self, x):
    """The logits.

    Args:
      x: a batch of inputs, ``(batch, ...)`` (flattened per example).

    Returns:
      ``(batch, out)`` logits.
    """
    act = _activation(self.activation)
    x = x.reshape((x.shape[0], -1))
    for i, w in enumerate(self.hidden):
      x = act(nn.Dense(w, name=f"dense{i}", param_dtype=self.param_dtype)(x))
    return nn.Dense(self.out, name="head", param_dtype=self.param_dtype)(x)


@dataclasses.dataclass(frozen=True)
class ConvStage:
  """One convolutional stage of :class:`CNN`: ``Conv(channels, kernel x kernel)`` + activation.

  Attributes:
    channels: output channels.
    kernel: square kernel size.
    stride: stride in both spatial axes.
    padding: symmetric zero padding in pixels, or a Flax padding string (``"SAME"``,
      ``"VALID"``).
  """
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
  return p if isinstance(p, str) else ((p, p), (p, p))


class CNN(nn.Module):
  """Linen CNN: conv stages, flatten, ``dense`` hidden layers, head with ``out`` outputs.

  Attributes:
    stages: the :class:`ConvStage` sequence (modules ``conv0``, ``conv1``, ...).
    dense: widths of the dense hidden layers after flattening (``dense0``, ...).
    out: number of outputs (module ``head``).
    activation: an :class:`Activation` (or its name).
    param_dtype: dtype of the parameters.
  """
  stages: Sequence[ConvStage] = SMALL_STAGES
  dense: Sequence[int] = (128,)
  out: int = 2
  activation: Activation | str = Activation.RELU
  param_dtype: Any = jnp.float32

  def __post_init__(self):
    _check_stages(self.stages)
    _check_widths("dense", self.dense)
    _check_out(self.out)
    _activation(self.activation)
    super().__post_init__()

  @nn.compact
  def __call__(self, x):
    """The logits.

    Args:
      x: a batch of inputs, ``(batch, ...)`` with ``(H, W, C)`` examples.

    Returns:
      ``(batch, out)`` logits.
    """
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
  """NNX twin of :class:`MLP` (same layer order, parameter shapes and initialisers).

  Args:
    in_features: size of one flattened example.
    hidden: widths of the hidden layers (attribute ``layers``; Linen ``dense{i}``).
    out: number of outputs (attribute ``head``).
    activation: as in :class:`MLP`.
    param_dtype: dtype of the parameters.
    rngs: the ``nnx.Rngs`` of the initialisation.
  """

  def __init__(self, in_features: int, hidden: Sequence[int] = (512, 512), out: int = 2, *,
               activation: Activation | str = Activation.RELU, param_dtype=jnp.float32,
               rngs: nnx.Rngs):
    self.act = activation
    self._config = (int(in_features), tuple(int(w) for w in hidden), int(out), activation,
                    param_dtype)
    dims = [in_features, *hidden]
    self.layers = nnx.List([nnx.Linear(a, b, param_dtype=param_dtype, rngs=rngs)
                            for a, b in zip(dims[:-1], dims[1:])])
    self.head = nnx.Linear(dims[-1], out, param_dtype=param_dtype, rngs=rngs)

  def ordered_layers(self) -> list[nnx.Linear]:
    """The parameterised layers in forward order (hidden layers, then the head).

    Returns:
      A list of ``nnx.Linear``.
    """
    return [*self.layers, self.head]

  def fresh(self, rngs: nnx.Rngs) -> NnxMLP:
    """A new module of the same architecture, initialised from ``rngs``.

    Args:
      rngs: the ``nnx.Rngs`` of the new module's initialisation.

    Returns:
      An :class:`NnxMLP` with this one's sizes, activation and dtype.
    """
    in_features, hidden, out, activation, param_dtype = self._config
    return NnxMLP(in_features, hidden, out, activation=activation, param_dtype=param_dtype,
                  rngs=rngs)

  # duplicates: the NNX families mirror their Linen twins (MLP/NnxMLP, CNN/NnxCNN) line for line on
  # purpose: tests/model_twins.py checks that they compute the same function.
  def __call__(self, x):
    """The logits.

    Args:
      x: a batch of inputs, ``(batch, ...)`` (flattened per example).

    Returns:
      ``(batch, out)`` logits.
    """
    act = _activation(self.act)
    x = x.reshape((x.shape[0], -1))
    for layer in self.layers:
      x = act(layer(x))
    return self.head(x)


class NnxCNN(nnx.Module):
  """NNX twin of :class:`CNN` (same layer order, parameter shapes and initialisers).

  Args:
    input_shape: ``(H, W, C)`` of one example.
    stages: the :class:`ConvStage` sequence (attribute ``convs``; Linen ``conv{i}``).
    dense: widths of the dense hidden layers (attribute ``dense``; Linen ``dense{i}``).
    out: number of outputs (attribute ``head``).
    activation: as in :class:`CNN`.
    param_dtype: dtype of the parameters.
    rngs: the ``nnx.Rngs`` of the initialisation.
  """

  def __init__(self, input_shape: Sequence[int], stages: Sequence[ConvStage] = SMALL_STAGES,
               dense: Sequence[int] = (128,), out: int = 2, *,
               activation: Activation | str = Activation.RELU,
               param_dtype=jnp.float32, rngs: nnx.Rngs):
    self.act = activation
    self._config = (tuple(int(d) for d in input_shape), tuple(stages),
                    tuple(int(w) for w in dense), int(out), activation, param_dtype)
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

  def ordered_layers(self) -> list[nnx.Conv | nnx.Linear]:
    """The parameterised layers in forward order (conv stages, dense layers, the head).

    Returns:
      A list of ``nnx.Conv`` and ``nnx.Linear``.
    """
    return [*self.convs, *self.dense, self.head]

  def fresh(self, rngs: nnx.Rngs) -> NnxCNN:
    """A new module of the same architecture, initialised from ``rngs``.

    Args:
      rngs: the ``nnx.Rngs`` of the new module's initialisation.

    Returns:
      An :class:`NnxCNN` with this one's input shape, stages, widths, activation and dtype.
    """
    input_shape, stages, dense, out, activation, param_dtype = self._config
    return NnxCNN(input_shape, stages, dense, out, activation=activation,
                  param_dtype=param_dtype, rngs=rngs)

  def __call__(self, x):
    """The logits.

    Args:
      x: a batch of inputs, ``(batch, ...)`` with ``(H, W, C)`` examples.

    Returns:
      ``(batch, out)`` logits.
    """
    act = _activation(self.act)
    for conv in self.convs:
      x = act(conv(x))
    x = x.reshape((x.shape[0], -1))
    for layer in self.dense:
      x = act(layer(x))
    return self.head(x)


# ----------------------------------------------------------------------------- adapter


def _as_key(key: Any) -> jax.Array:
  """``None`` -> ``key(0)``; an integer seed -> ``jax.random.key(seed)``; a key array as is."""
  if isinstance(key, jax.Array):
    return key
  return jax.random.key(0 if key is None else key)


def _nnx_init_fn(model: nnx.Module) -> Callable[[jax.Array], Any] | None:
  """``init_fn`` of an NNX module that can rebuild itself (a ``fresh(rngs)`` method), else None."""
  fresh = getattr(model, "fresh", None)
  if not callable(fresh):
    return None

  def nnx_init(key):
    return nnx.split(fresh(nnx.Rngs(_as_key(key))), nnx.Param, ...)[1]

  return nnx_init


@functools.lru_cache(maxsize=256)
def _linen_apply_for(model: nn.Module) -> Callable[[Any, jax.typing.ArrayLike], jax.Array]:
  # Linen modules are hashable frozen dataclasses: equal modules share one apply_fn, so the
  # compile-once caches of train/ntk/bounds (keyed on apply_fn) hit on every call.
  def linen_apply(p, x) -> jax.Array:
    # flax types apply() as `Any | (out, mutated)`; without mutable= it returns the output only.
    return model.apply({"params": p}, x)  # pyright: ignore[reportReturnType]
  return linen_apply


@functools.lru_cache(maxsize=256)
def _nnx_apply_for(graphdef: Any) -> Callable[[Any, jax.typing.ArrayLike], jax.Array]:
  # The same for NNX modules without non-parameter state: one apply_fn per graph definition.
  def nnx_apply(p, x):
    return _hooks.call_nnx(nnx.merge(graphdef, p), x)
  return nnx_apply


def as_model_fn(model: Any, *, params: Any = None, example_input: jax.typing.ArrayLike | None = None,
                key: jax.Array | int | None = None) -> ModelFn:
  """Normalises a model to a :class:`ModelFn`: THE adapter of every gbounds entry point.

  Accepted:

  * a ``flax.linen.Module``: ``params`` (the ``"params"`` collection) are used when given, else
    ``model.init(key, example_input)["params"]``. ``apply_fn(p, x) = model.apply({"params": p},
    x)``. ``init_fn(k) = model.init(k, example_input)["params"]`` when ``example_input`` is given
    (so ``init_fn(key)`` reproduces the default params), else ``None``.
  * a ``flax.nnx.Module``: ``params`` is the module's ``nnx.Param`` state (an ``nnx.State``)
    unless given; ``apply_fn`` merges it with the module's graph definition and its other state
    (a pure call: the module is not mutated). ``init_fn(k)`` rebuilds the module through its
    ``fresh(rngs)`` method with ``nnx.Rngs(k)`` (:class:`NnxMLP`, :class:`NnxCNN` have one) and
    returns the new ``nnx.Param`` state; ``None`` for modules without ``fresh`` (flax's layers
    do not keep their initialisers; use :func:`nnx_model_fn` with a constructor instead).
  * a :class:`ModelFn`: returned as is; ``params``, when given, replaces its parameters.

  Args:
    model: a Linen module, an NNX module or a :class:`ModelFn`.
    params: parameters to use instead of the model's own (Linen: the ``"params"`` collection;
      NNX: an ``nnx.State`` of ``nnx.Param`` with the module's structure).
    example_input: an input batch, needed to initialise a Linen module (and for its ``init_fn``).
    key: ``jax.random`` key or integer seed of a Linen initialisation (default 0).

  Returns:
    ``ModelFn(apply_fn, params, init_fn)``.

  Raises:
    InvalidInputError: ``model`` is none of the above, or a Linen module has neither
      ``params`` nor ``example_input``.
  """
  if isinstance(model, ModelFn):
    return model if params is None else model._replace(params=params)
  if isinstance(model, nnx.Module):
    graphdef, state, rest = nnx.split(model, nnx.Param, ...)
    if not jax.tree.leaves(rest):
      apply_fn = _nnx_apply_for(graphdef)  # one function per architecture: caches keyed
    else:                                  # on apply_fn (compile once) hit across calls
      def nnx_apply(p, x):
        return _hooks.call_nnx(nnx.merge(graphdef, p, rest), x)
      apply_fn = nnx_apply

    return ModelFn(apply_fn, state if params is None else params, _nnx_init_fn(model))
  if isinstance(model, nn.Module):
    init_fn = None
    if example_input is not None:
      def linen_init(k):
        return model.init(_as_key(k), example_input)["params"]
      init_fn = linen_init
    if params is None:
      if example_input is None:
        _errors.fail("example_input", "an input batch to initialise a Linen module (or params=)",
                     None)
      params = model.init(_as_key(key), example_input)["params"]

    try:
      apply_fn = _linen_apply_for(model)
    except TypeError:  # an unhashable field (e.g. a list from JSON kwargs): no sharing

      def unshared_apply(p, x) -> jax.Array:
        # flax types apply() as `Any | (out, mutated)`; without mutable= it is the output only.
        return model.apply({"params": p}, x)  # pyright: ignore[reportReturnType]
      apply_fn = unshared_apply

    return ModelFn(apply_fn, params, init_fn)
  _errors.fail("model", "a flax.linen.Module, a flax.nnx.Module or a gbounds.models.ModelFn",
               type(model).__name__)


def nnx_model_fn(make: Callable[[nnx.Rngs], nnx.Module], *, key: jax.Array | int | None = None
                 ) -> ModelFn:
  """A :class:`ModelFn` (with ``init_fn``) from an NNX constructor ``make(rngs) -> module``.

  For any NNX model, e.g. ``nnx_model_fn(lambda rngs: MyNet(3, rngs=rngs))``: the parameters
  are those of ``make(nnx.Rngs(key))`` and ``init_fn(k)`` those of ``make(nnx.Rngs(k))``.

  Args:
    make: builds the module from an ``nnx.Rngs``; must be traceable (no Python control flow on
      random values) when ``init_fn`` is used under ``jit``/``vmap``.
    key: ``jax.random`` key or integer seed of the parameters (default 0).

  Returns:
    ``ModelFn(apply_fn, params, init_fn)``.

  Raises:
    InvalidInputError: ``make`` is not callable or does not return an NNX module.
  """
  if not callable(make):
    _errors.fail("make", "a constructor make(rngs) -> flax.nnx.Module", type(make).__name__)
  model = make(nnx.Rngs(_as_key(key)))
  if not isinstance(model, nnx.Module):
    _errors.fail("make", "a constructor returning a flax.nnx.Module", type(model).__name__)

  def nnx_init(k):
    return nnx.split(make(nnx.Rngs(_as_key(k))), nnx.Param, ...)[1]

  return as_model_fn(model)._replace(init_fn=nnx_init)


def require_init_fn(model_fn: ModelFn, name: str = "model") -> Callable[[jax.Array], Any]:
  """The ``init_fn`` of ``model_fn``, or a clear error when fresh parameters cannot be drawn.

  For entry points that re-initialise a model (one network per seed).

  Args:
    model_fn: a :class:`ModelFn` (from :func:`as_model_fn`).
    name: the argument name shown in the error.

  Returns:
    ``init_fn(key) -> params``.

  Raises:
    InvalidInputError: ``model_fn.init_fn`` is ``None``.
  """
  if model_fn.init_fn is None:
    _errors.fail(name, "a model whose fresh parameters can be drawn (a Linen module with "
                 "example_input, gbounds.models.NnxMLP/NnxCNN or an NNX module with a "
                 "fresh(rngs) method, gbounds.models.nnx_model_fn(make), or a ModelFn with "
                 "init_fn)", "a model without init_fn")
  return model_fn.init_fn


def linen_params_to_nnx(model: NnxMLP | NnxCNN, linen_params: Any) -> nnx.State:
  """Copies Linen :class:`MLP`/:class:`CNN` parameters into their NNX twin, in place.

  Args:
    model: an :class:`NnxMLP`/:class:`NnxCNN` of the same architecture.
    linen_params: the Linen module's ``"params"`` collection.

  Returns:
    The twin's parameter state (``nnx.State`` of ``nnx.Param``), now holding the same weights.

  Raises:
    InvalidInputError: the numbers of layers differ.
  """
  flat_linen = [v for _, v in sorted(_layer_items(linen_params), key=lambda kv: kv[0])]
  nnx_layers = model.ordered_layers()
  if len(flat_linen) != len(nnx_layers):
    _errors.fail("linen_params", f"{len(nnx_layers)} layers", len(flat_linen))
  for layer, p in zip(nnx_layers, flat_linen):
    layer.kernel[...] = jnp.asarray(p["kernel"])
    assert layer.bias is not None  # NnxMLP/NnxCNN build every layer with use_bias=True
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
  """The number of scalar parameters.

  Args:
    params: a parameter pytree (Linen dict or NNX ``State``).

  Returns:
    The total size of its array leaves.
  """
  return int(sum(x.size for x in jax.tree_util.tree_leaves(params)))
