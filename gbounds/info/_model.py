"""The model argument of the info entry points, normalised through ``gbounds.models.as_model_fn``.

Every info entry point that takes a model accepts, as its first argument:

* a plain ``apply_fn(params, x) -> (batch, k)`` callable with its ``params`` (the historical
  form, unchanged);
* a :class:`gbounds.models.ModelFn` (``params`` optional: the ModelFn's own are used);
* a ``flax.linen.Module`` with ``params`` (its ``"params"`` collection);
* a ``flax.nnx.Module`` (``params`` optional: an ``nnx.State`` of ``nnx.Param``; default the
  module's own weights).
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

from flax import linen as nn
from flax import nnx

import gbounds.models as _models
from gbounds._src import errors as _errors


class Model(NamedTuple):
  """A normalised model: ``apply_fn(params, x)``, its ``params``, and the NNX module if any.

  Attributes:
    apply_fn: pure ``apply_fn(params, x) -> (batch, k)``.
    params: the parameters passed to ``apply_fn``.
    nnx_module: the NNX module the model came from (K-FAC reads its layers), else None.
  """
  apply_fn: Any
  params: Any
  nnx_module: Any = None


def as_model(model: Any, params: Any = None, *, name: str = "apply_fn") -> Model:
  """Normalises the model argument of an info entry point (see the module docstring).

  Args:
    model: an ``apply_fn`` callable, a ``ModelFn``, a Linen module or an NNX module.
    params: the parameters (required for a callable and a Linen module).
    name: the argument name used in error messages.

  Returns:
    A :class:`Model`.
  """
  if isinstance(model, _models.ModelFn):
    return Model(model.apply_fn, model.params if params is None else params)
  if isinstance(model, nnx.Module):
    mf = _models.as_model_fn(model, params=params)
    return Model(mf.apply_fn, mf.params, model)
  if isinstance(model, nn.Module):
    if params is None:
      _errors.fail("params", "the parameters of the Linen module (its 'params' collection)",
                   None)
    return Model(_linen_apply_fn(model), params)
  if not callable(model):
    _errors.fail(name, "a callable apply_fn(params, x), a gbounds.models.ModelFn, a Linen "
                 "module with params or an NNX module", type(model).__name__)
  return Model(model, params)


def _linen_apply_fn(module: nn.Module) -> Any:
  """The adapter's ``apply_fn`` of a Linen module, one per (hashable) module: the compiled
  programs cached on ``apply_fn`` downstream (NTK, Fisher, K-FAC) are then reused across calls
  instead of being rebuilt for a fresh closure each time."""
  try:
    return _cached_linen_apply_fn(module)
  except TypeError:  # an unhashable module (a field holding a list, say): no cache
    return _models.as_model_fn(module, params={}).apply_fn


@functools.lru_cache(maxsize=32)
def _cached_linen_apply_fn(module: nn.Module) -> Any:
  # the apply function does not depend on the parameters passed with it
  return _models.as_model_fn(module, params={}).apply_fn
