"""Capture of hidden-layer activations from Flax models (Linen and NNX), chunked over inputs.

The capturable layers are the dense and convolutional layers of a model (``nn.Dense`` /
``nn.Conv`` in Linen, ``nnx.Linear`` / ``nnx.Conv`` in NNX). For each the *pre-activation*
output of the layer's ``__call__`` is recorded (the ``W x + b`` before the nonlinearity), as in
Bansal, Pruthi and Belinkov, "Measures of Information Reflect Memorization Patterns" (NeurIPS
2022, Sec. 3): a dense layer gives one neuron per output unit; an output with spatial axes
(a conv stage, ``(batch, H, W, C)``) is globally average-pooled over every axis except the first
(batch) and the last (channels), giving one neuron per channel.

Layer names:

* Linen: the module path joined with ``/`` (``"dense0"``, ``"conv1"``, ``"head"`` for
  :class:`gbounds.models.MLP` / :class:`gbounds.models.CNN`; ``"block/Dense_0"`` for nested
  modules).
* NNX: for the twins :class:`gbounds.models.NnxMLP` / :class:`gbounds.models.NnxCNN` the *same
  names as their Linen counterparts* (``nnx`` attribute ``layers[i]`` / ``dense[i]`` is
  ``"dense{i}"``, ``convs[i]`` is ``"conv{i}"``, ``head`` is ``"head"``), so that the same code
  runs on either; for any other NNX module, the attribute path joined with ``/`` (``"layers/0"``).

A layer called more than once per forward pass gives ``name``, ``name@1``, ``name@2``, ...

The default selection (``layers=None``) is every capturable layer except the output layer, i.e.
the one whose output *is* the model's output (the logits); when no layer output is returned
unchanged, the last capturable layer (in call order for Linen, in ``ordered_layers()`` order for
the NNX twins, in attribute-path order otherwise) is taken to be the output layer.

NNX capture uses :func:`flax.nnx.capture` with ``method_outputs``: Flax temporarily instruments
the module classes' ``__call__`` during the (traced) call and restores them afterwards.

A :class:`gbounds.models.ModelFn` (from :func:`gbounds.models.as_model_fn`, of a Linen or an NNX
module) is captured through :func:`gbounds.models.intercept_layers`: the names are the same
(Linen module paths; the Linen twin's names for :class:`gbounds.models.NnxMLP` /
:class:`gbounds.models.NnxCNN`), in call order, and the activations are the same numbers.

For per-layer *inputs* and output gradients (K-FAC), use :func:`gbounds.models.intercept_layers`
directly: it sees every dense/conv call of a Linen ``apply`` or of an ``as_model_fn`` NNX
``apply_fn``, with the same names and the parameter paths of :func:`gbounds.models.layer_groups`.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn
from flax import nnx

from gbounds._src import batching as _batching
from gbounds._src import errors as _errors
from gbounds._src import results as _results
from gbounds.models import _intercept, _layers
from gbounds.models import _networks as _models


class LayerInfo(NamedTuple):
  """A capturable layer.

  Attributes:
    name: the name used by :func:`capture_activations`.
    width: number of neurons after pooling (output units, or channels for a conv stage).
    pooled: whether the raw output had spatial axes that are globally average-pooled.
    is_output: whether this is the model's output layer (excluded by default).
  """
  name: str
  width: int
  pooled: bool
  is_output: bool

  to_dict = _results.namedtuple_to_dict
  from_dict = classmethod(_results.from_dict)


# ----------------------------------------------------------------------------- raw capture


def _linen_filter(mdl: nn.Module, method_name: str) -> bool:
  return method_name == "__call__" and isinstance(mdl, (nn.Dense, nn.Conv))


def _walk_linen(tree: Any, path: tuple[str, ...], out: list[tuple[str, tuple]]) -> None:
  for key, value in tree.items():
    if key == "__call__":
      out.append(("/".join(path), tuple(value)))
    else:
      _walk_linen(value, (*path, str(key)), out)


def _linen_raw(model: nn.Module, params: Any, x: jax.Array):
  y, state = model.apply({"params": params}, x, capture_intermediates=_linen_filter,
                         mutable=["intermediates"])
  found: list[tuple[str, tuple]] = []
  _walk_linen(state.get("intermediates", {}), (), found)
  return y, found, None


def _nnx_name(model: nnx.Module, path: tuple) -> str:
  return _layers.nnx_layer_name(model, path)


def _nnx_layer_paths(model: nnx.Module) -> list[tuple]:
  paths = [tuple(p) for p, m in nnx.iter_modules(model) if isinstance(m, (nnx.Linear, nnx.Conv))]
  if hasattr(model, "ordered_layers"):
    # Duck-typed (NnxMLP/NnxCNN or any module with the method); pyright does not narrow on hasattr.
    order = {id(m): i for i, m in enumerate(model.ordered_layers())}  # pyright: ignore[reportAttributeAccessIssue]
    lookup = dict((tuple(p), m) for p, m in nnx.iter_modules(model))
    return sorted(paths, key=lambda p: (order.get(id(lookup[p]), len(order)), _path_key(p)))
  return sorted(paths, key=_path_key)


def _path_key(path: tuple) -> tuple:
  return tuple((0, int(p), "") if isinstance(p, int) or str(p).isdigit() else (1, 0, str(p))
               for p in path)


def _nnx_raw(graphdef, state, rest, x: jax.Array):
  module = nnx.merge(graphdef, state, rest)
  paths = _nnx_layer_paths(module)
  y, inter = nnx.capture(module, nnx.Intermediate, method_outputs=nnx.Intermediate)(x)
  found = []
  for path in paths:
    node = inter
    try:
      for p in path:
        node = node[p]
      values = tuple(node["__call__"].get_value())
    except (KeyError, TypeError):
      continue  # a layer that was not called on this forward pass
    found.append((_nnx_name(module, path), values))
  return y, found, [_nnx_name(module, p) for p in paths]


def _model_fn_raw(apply_fn, params, x: jax.Array):
  """Raw capture through :func:`intercept_layers` (any ``apply_fn`` built on Linen or on
  :func:`gbounds.models.as_model_fn`'s NNX adapter): outputs grouped by layer, in call order."""
  found: dict[str, list] = {}

  def record(next_fun, args, kwargs, call):
    out = next_fun(*args, **kwargs)
    found.setdefault(call.name, []).append(out)
    return out

  with _intercept.intercept_layers(record):
    y = apply_fn(params, x)
  return y, [(name, tuple(values)) for name, values in found.items()], None


def _pool(a: jax.Array) -> jax.Array:
  if a.ndim <= 2:
    return a.reshape((a.shape[0], -1)) if a.ndim == 2 else a[:, None]
  return jnp.mean(a, axis=tuple(range(1, a.ndim - 1)))


class _Kind(enum.Enum):
  LINEN = "linen"
  NNX = "nnx"
  MODEL_FN = "model_fn"


def _raw(kind: _Kind, static: Any, params: Any, extra: Any, x: jax.Array):
  """Raw capture of one model form: ``static`` is the module / graphdef / apply_fn (hashable,
  the compile-cache key), ``extra`` the NNX non-parameter state (a traced argument)."""
  if kind is _Kind.LINEN:
    return _linen_raw(static, params, x)
  if kind is _Kind.NNX:
    return _nnx_raw(static, params, extra, x)
  return _model_fn_raw(static, params, x)


def _collect(y, found, order, activation=None):
  """(names in forward order, pooled outputs, pooled flags, output-layer name)."""
  names, arrays, pooled = [], [], []
  seen: dict[str, int] = {}
  for name, values in found:
    for v in values:
      k = seen.get(name, 0)
      seen[name] = k + 1
      names.append(name if k == 0 else f"{name}@{k}")
      a = v if activation is None else activation(v)
      arrays.append(_pool(a))
      pooled.append(v.ndim > 2)
  output_name = None
  flat = [v for _, vs in found for v in vs]
  for name, v in zip(names, flat):
    if v is y:
      output_name = name
  if output_name is None and names:
    output_name = order[-1] if order else names[-1]
  return names, arrays, pooled, output_name


class _Capturer:
  """Binds a model and its parameters: ``kind``, hashable ``static``, ``extra`` state, params."""

  def __init__(self, model: Any, params: Any):
    self.extra = None
    if isinstance(model, nnx.Module):
      graphdef, own_state, rest = nnx.split(model, nnx.Param, ...)
      self.params = own_state if params is None else params
      _errors.check_finite_tree("params" if params is not None else "model", self.params)
      self.kind, self.static, self.extra = _Kind.NNX, graphdef, rest
    elif isinstance(model, nn.Module):
      if params is None:
        _errors.fail("params", "the Linen module's parameters", None)
      if isinstance(params, dict) and set(params) == {"params"}:
        params = params["params"]
      if not jax.tree_util.tree_leaves(params):
        _errors.fail("params", "the Linen module's parameters (a non-empty pytree)", "no arrays")
      _errors.check_finite_tree("params", params)
      self.params = params
      self.kind, self.static = _Kind.LINEN, model
    elif isinstance(model, _models.ModelFn):
      self.params = model.params if params is None else params
      _errors.check_finite_tree("params" if params is not None else "model.params", self.params)
      self.kind, self.static = _Kind.MODEL_FN, model.apply_fn
    else:
      _errors.fail("model", "a flax.linen.Module, a flax.nnx.Module or a gbounds.models.ModelFn",
                   type(model).__name__)

  def __call__(self, params, x, activation=None):
    """Returns (names in forward order, pooled outputs, pooled flags, output-layer name)."""
    return _collect(*_raw(self.kind, self.static, params, self.extra, x), activation)


def _run_fn_uncached(kind: _Kind, static: Any, indices: tuple[int, ...], activation: Any):
  @jax.jit
  def run(p, extra, xb):
    _, arrays, _, _ = _collect(*_raw(kind, static, p, extra, xb), activation)
    return [arrays[i] for i in indices]
  return run


_run_fn_cached = functools.lru_cache(maxsize=32)(_run_fn_uncached)


def _run_fn(kind: _Kind, static: Any, indices: tuple[int, ...], activation: Any):
  """The jitted chunk function, compiled once per (model, selection, activation)."""
  try:
    hash((static, activation))
  except TypeError:  # an unhashable module: compile per call, as before
    return _run_fn_uncached(kind, static, indices, activation)
  return _run_fn_cached(kind, static, indices, activation)


def _layer_infos(cap: _Capturer, x: jax.Array) -> tuple[LayerInfo, ...]:
  meta = {}

  def probe(p, xb):
    names, arrays, pooled, out_name = cap(p, xb)
    meta.update(names=names, pooled=pooled, out=out_name)
    return arrays

  shapes = jax.eval_shape(probe, cap.params, x[:1])
  return tuple(LayerInfo(n, int(s.shape[-1]), bool(pl), n == meta["out"])
               for n, s, pl in zip(meta["names"], shapes, meta["pooled"]))


def _check_x(x: Any) -> jax.Array:
  if isinstance(x, (str, bytes)) or x is None:
    _errors.fail("x", "an input array", type(x).__name__)
  x = jnp.asarray(x)
  if x.ndim < 2:
    _errors.fail("x", "an input batch with a leading batch axis (rank >= 2)", f"shape {x.shape}")
  _errors.check_nonempty("x", x)
  if not (jnp.issubdtype(x.dtype, jnp.number) or x.dtype == jnp.bool_):
    _errors.fail("x", "a numeric input array", f"dtype {x.dtype}")
  _errors.check_finite("x", x)
  return x


def available_layers(model: Any, params: Any, x: jax.typing.ArrayLike) -> tuple[LayerInfo, ...]:
  """Lists the capturable layers of ``model`` (in forward order) for inputs shaped like ``x``.

  Only shapes are traced (``jax.eval_shape`` on one example); nothing is computed.

  Args:
    model: a ``flax.linen.Module``, a ``flax.nnx.Module`` or a :class:`gbounds.models.ModelFn`
      (made by :func:`gbounds.models.as_model_fn`, or any ``apply_fn`` that calls Linen modules).
    params: Linen parameters (``variables["params"]`` or the full variables dict); for NNX an
      ``nnx.State`` of ``nnx.Param`` (as from :func:`gbounds.models.linen_params_to_nnx`) or
      ``None`` to use the module's own weights; for a ModelFn, ``None`` for its own ``params``.
    x: an input batch, ``(batch, ...)``.

  Returns:
    A tuple of :class:`LayerInfo`; ``info.name`` is what :func:`capture_activations` accepts.
  """
  x = _check_x(x)
  return _layer_infos(_Capturer(model, params), x)


def capture_activations(model: Any, params: Any, x: jax.typing.ArrayLike, *,
                        layers: Sequence[str] | None = None, chunk_size: int = 1024,
                        activation: Callable[[jax.Array], jax.Array] | None = None,
                        ) -> dict[str, jax.Array]:
  """Records the pre-activation outputs of named layers on a batch of inputs, chunk by chunk.

  For a dense layer the result is ``(batch, units)``; for an output with spatial axes (a conv
  stage) it is the global average over those axes, ``(batch, channels)``:
  ``a_c(x) = 1/(H W) sum_{h,w} z_{h,w,c}(x)`` (Bansal et al., NeurIPS 2022, Sec. 3).

  Args:
    model: a ``flax.linen.Module``, a ``flax.nnx.Module`` or a :class:`gbounds.models.ModelFn`.
    params: Linen parameters (or the variables dict with a ``"params"`` entry); for NNX an
      ``nnx.State`` of ``nnx.Param`` or ``None`` for the module's own weights; for a ModelFn,
      ``None`` for its own ``params``.
    x: inputs ``(batch, ...)`` as the model expects them.
    layers: layer names (see :func:`available_layers`); default: every capturable layer except
      the output layer (the logits).
    chunk_size: inputs per forward pass (memory bound); the last chunk is padded to the same
      shape (``gbounds._src.batching``: repeats of its first row, dropped afterwards; examples
      do not interact) so that one compiled function serves all chunks, and the compiled
      function is cached per model, selection and activation.
    activation: optional elementwise function applied to each raw layer output *before* pooling,
      e.g. ``jax.nn.relu`` to capture post-activation outputs instead.

  Returns:
    ``{name: (batch, width) array}`` in the order of ``layers`` (or forward order).

  Raises:
    InvalidInputError: an unknown layer name (the message lists the available ones), a bad
      ``chunk_size`` or input rank.
  """
  x = _check_x(x)
  if (isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer))
      or chunk_size < 1):
    _errors.fail("chunk_size", "a positive integer", repr(chunk_size))
  if activation is not None and not callable(activation):
    _errors.fail("activation", "a callable applied elementwise, or None", type(activation).__name__)
  if layers is not None and not isinstance(layers, str):
    layers = list(layers)
    if any(not isinstance(n, str) for n in layers):
      _errors.fail("layers", "layer names (strings)", f"{[type(n).__name__ for n in layers]}")
    if len(set(layers)) != len(layers):
      _errors.fail("layers", "each layer name once", f"{layers}")
  cap = _Capturer(model, params)
  infos = _layer_infos(cap, x)
  by_name = {i.name: i for i in infos}
  if layers is None:
    selected = [i.name for i in infos if not i.is_output]
  else:
    if isinstance(layers, str):
      layers = (layers,)
    selected = list(layers)
    unknown = [n for n in selected if n not in by_name]
    if unknown:
      _errors.fail("layers", f"names among the available layers {[i.name for i in infos]}",
                   f"unknown {unknown}")
  if not selected:
    _errors.fail("layers", "at least one layer to capture", "an empty selection")
  index = {n: k for k, n in enumerate(by_name)}

  compiled = _run_fn(cap.kind, cap.static, tuple(index[n] for n in selected), activation)

  def run(p, xb):
    return compiled(p, cap.extra, xb)

  outs = _batching.chunked_map(lambda xb: run(cap.params, xb), x, chunk_size=int(chunk_size))
  return dict(zip(selected, outs))


def stack_activations(activations: dict[str, jax.Array]) -> jax.Array:
  """Concatenates captured layers along the neuron axis: ``(batch, sum of widths)``.

  Args:
    activations: ``{name: (batch, width) array}``, as from :func:`capture_activations`.

  Returns:
    ``(batch, sum of widths)``, the layers side by side in the dict's order.

  Raises:
    InvalidInputError: an empty dict, an array not of rank 2, or differing batch sizes.
  """
  if not isinstance(activations, dict) or not activations:
    _errors.fail("activations", "a non-empty dict of captured layers",
                 "{}" if isinstance(activations, dict) else type(activations).__name__)
  arrays = [jnp.asarray(a) for a in activations.values()]
  for name, a in zip(activations, arrays):
    if a.ndim != 2:
      _errors.fail(f"activations[{name!r}]", "a (batch, width) array", f"shape {a.shape}")
  sizes = {a.shape[0] for a in arrays}
  if len(sizes) > 1:
    _errors.fail("activations", "the same batch size in every layer",
                 ", ".join(f"{n}={a.shape[0]}" for n, a in zip(activations, arrays)))
  return jnp.concatenate(arrays, axis=1)
