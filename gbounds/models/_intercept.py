"""Interception of the dense and convolutional layer calls of a model, Linen or NNX alike.

:func:`intercept_layers` is ``flax.linen.intercept_methods`` restricted to parameterised
layers and extended to NNX: inside the block, every call of a Linen ``nn.Dense``/``nn.Conv``
(any Linen ``apply``) and of an NNX ``nnx.Linear``/``nnx.Conv`` inside an ``apply_fn`` made by
:func:`gbounds.models.as_model_fn` (or the activation capture) goes through
``interceptor(next_fun, args, kwargs, call)``. The interceptor may read the layer input
(``args[0]``), change it, and change the output (``out = next_fun(*args, **kwargs)``); it is
traced with the model (works under ``jit``, ``grad``, ``vjp``, ``vmap``, ``eval_shape``).

``call`` is a :class:`LayerCall`: the layer's ``name`` and ``path`` are those of
:func:`gbounds.models.layer_groups` (for the NNX twins the Linen names), so code written against
the Linen model (e.g. K-FAC, which needs each dense layer's inputs and the gradient with respect
to its outputs) runs unchanged on the NNX twin and addresses the same parameters.

NNX layers are reached on the per-call copy that ``apply_fn`` merges from the graph definition
(its layers' class is swapped for the duration of the call, then restored): the user's module
is never modified. An NNX module called directly (not through ``as_model_fn``) is not seen.
"""

from __future__ import annotations

import contextlib
import contextvars
import enum
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from flax import linen as nn
from flax import nnx

from gbounds.models import _hooks, _layers


class LayerKind(enum.Enum):
  """Kind of an intercepted layer."""
  DENSE = "dense"  # nn.Dense / nnx.Linear
  CONV = "conv"    # nn.Conv / nnx.Conv


class LayerCall(NamedTuple):
  """One call of a parameterised layer, as seen by an interceptor.

  Attributes:
    name: the layer's name (as in :func:`gbounds.models.layer_groups`; Linen: the module path
      joined with ``/``; NNX twins: the Linen twin's name).
    path: the key path of the layer's parameters inside the model's ``params`` (Linen: the
      module path, ``("dense0",)``; NNX: the attribute path, ``("layers", 0)``).
    kind: :class:`LayerKind`.
    use_bias: whether the layer adds a bias.
    module: the layer object (a bound Linen module, or the per-call NNX layer).
  """
  name: str
  path: tuple
  kind: LayerKind
  use_bias: bool
  module: Any


Interceptor = Callable[[Callable[..., Any], tuple, dict, LayerCall], Any]

_STACK: contextvars.ContextVar[tuple] = contextvars.ContextVar("gbounds_layer_interceptors",
                                                               default=())

_LINEN_KINDS = ((nn.Dense, LayerKind.DENSE), (nn.Conv, LayerKind.CONV))
_NNX_KINDS = ((nnx.Linear, LayerKind.DENSE), (nnx.Conv, LayerKind.CONV))


def _kind(module: Any, kinds) -> LayerKind | None:
  for cls, kind in kinds:
    if isinstance(module, cls):
      return kind
  return None


def _chain(interceptors: tuple, base: Callable[..., Any], args: tuple, kwargs: dict,
           call: LayerCall) -> Any:
  """Linen's order: the interceptor entered last is called first."""
  fun = base
  for interceptor in interceptors:
    def wrapped(*a, _i=interceptor, _f=fun, **k):
      return _i(_f, a, k, call)
    fun = wrapped
  return fun(*args, **kwargs)


_TAPPED: dict[type, type] = {}


def _tapped_class(cls: type) -> type:
  """A subclass of an NNX layer class whose ``__call__`` runs the active interceptors."""
  if cls not in _TAPPED:
    def __call__(self, *args, **kwargs):
      call = self.__dict__.get("_gbounds_layer_call")
      base = lambda *a, **k: cls.__call__(self, *a, **k)  # noqa: E731
      if call is None:
        return base(*args, **kwargs)
      return _chain(_STACK.get(), base, args, kwargs, call)
    _TAPPED[cls] = type(f"_Intercepted{cls.__name__}", (cls,), {"__call__": __call__})
  return _TAPPED[cls]


def _nnx_hook(module: Any, x: Any) -> Any:
  tapped = []
  for path, layer in nnx.iter_modules(module):
    kind = _kind(layer, _NNX_KINDS)
    if kind is None:
      continue
    call = LayerCall(_layers.nnx_layer_name(module, tuple(path)), tuple(path), kind,
                     bool(getattr(layer, "use_bias", True)), layer)
    tapped.append((layer, type(layer)))
    object.__setattr__(layer, "_gbounds_layer_call", call)
    object.__setattr__(layer, "__class__", _tapped_class(type(layer)))
  try:
    return module(x)
  finally:
    for layer, cls in tapped:
      object.__setattr__(layer, "__class__", cls)
      del layer.__dict__["_gbounds_layer_call"]


@contextlib.contextmanager
def intercept_layers(interceptor: Interceptor) -> Iterator[None]:
  """Routes every dense/conv layer call of Linen and NNX models through ``interceptor``.

  Usage (record each dense layer's input and perturb its output, as K-FAC does)::

      inputs = {}
      def tap(next_fun, args, kwargs, call):
        if call.kind is not LayerKind.DENSE:
          return next_fun(*args, **kwargs)
        inputs[call.name] = args[0]
        return next_fun(*args, **kwargs) + perturb[call.name]
      with intercept_layers(tap):
        logits = model_fn.apply_fn(model_fn.params, x)

  Args:
    interceptor: ``interceptor(next_fun, args, kwargs, call) -> output``; ``next_fun(*args,
      **kwargs)`` runs the layer (and any interceptor entered before this one); ``call`` is a
      :class:`LayerCall`.

  Returns:
    A context manager; interceptors nest (the one entered last is called first, as in
    ``flax.linen.intercept_methods``).
  """
  def linen_interceptor(next_fun, args, kwargs, context):
    kind = _kind(context.module, _LINEN_KINDS)
    if kind is None or context.method_name != "__call__":
      return next_fun(*args, **kwargs)
    path = tuple(context.module.path)
    call = LayerCall("/".join(str(p) for p in path), path, kind,
                     bool(context.module.use_bias), context.module)
    return interceptor(next_fun, args, kwargs, call)

  token = _STACK.set((*_STACK.get(), interceptor))
  try:
    with nn.intercept_methods(linen_interceptor), _hooks.nnx_hook(_nnx_hook):
      yield
  finally:
    _STACK.reset(token)
