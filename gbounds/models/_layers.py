"""Parameterised layers of a model, addressed the same way for a Linen model and its NNX twin.

:func:`layer_groups` lists the layers that own parameters, in forward order, each with a name
and the key path of its parameter dict inside ``params``. For :class:`gbounds.models.MLP` /
:class:`gbounds.models.CNN` and their NNX twins :class:`gbounds.models.NnxMLP` /
:class:`gbounds.models.NnxCNN` the names agree (``"conv0"``, ..., ``"dense0"``, ..., ``"head"``,
the names :func:`gbounds.models.capture_activations` uses), so "layer ``i``" means the same layer
in either API; only ``path`` differs (``("dense0",)`` in Linen, ``("layers", 0)`` in NNX).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
from flax import linen as nn
from flax import nnx

from gbounds._src import errors as _errors
from gbounds._src import results as _results
from gbounds.models import _networks


class LayerGroup(NamedTuple):
  """One parameterised layer.

  Attributes:
    name: the layer's name: for the gbounds families and their NNX twins the Linen module name
      (``"conv0"``, ``"dense1"``, ``"head"``); otherwise the key path joined with ``/``.
    path: the keys from the root of ``params`` to the layer's parameter dict (``("dense0",)``
      for Linen, ``("layers", 0)`` for an NNX ``State``).
    leaves: the names of the layer's own parameters, sorted (``("bias", "kernel")``).
  """
  name: str
  path: tuple
  leaves: tuple[str, ...]

  to_dict = _results.namedtuple_to_dict
  from_dict = classmethod(_results.from_dict)


_TWIN_ATTRS = {"layers": "dense", "dense": "dense", "convs": "conv"}


def nnx_layer_name(model: nnx.Module, path: tuple) -> str:
  """The name of the NNX layer at ``path`` (module attribute path) of ``model``.

  Args:
    model: the NNX module.
    path: the attribute path of the layer (``("layers", 0)``).

  Returns:
    For :class:`NnxMLP`/:class:`NnxCNN` the Linen twin's name (``layers[i]``/``dense[i]`` ->
    ``"dense{i}"``, ``convs[i]`` -> ``"conv{i}"``, ``head`` -> ``"head"``); otherwise the path
    joined with ``/``.
  """
  if type(model) in (_networks.NnxMLP, _networks.NnxCNN):
    if tuple(path) == ("head",):
      return "head"
    if len(path) == 2 and path[0] in _TWIN_ATTRS:
      return f"{_TWIN_ATTRS[path[0]]}{int(path[1])}"
  return "/".join(str(p) for p in path)


def _is_leaf_value(v: Any) -> bool:
  return isinstance(v, nnx.Variable) or hasattr(v, "shape")


def _walk(tree: Any, path: tuple, out: list[tuple[tuple, tuple[str, ...]]]) -> None:
  leaves = tuple(sorted(str(k) for k, v in tree.items() if _is_leaf_value(v)))
  if leaves:
    out.append((path, leaves))
  for k, v in tree.items():
    if isinstance(v, Mapping) or isinstance(v, nnx.State):
      _walk(v, (*path, k), out)


def layer_groups(model: Any, params: Any = None) -> tuple[LayerGroup, ...]:
  """The parameterised layers of a model, in forward order.

  Order: for a Linen module, the order of ``params`` (Flax keeps creation order, which is call
  order for ``@nn.compact`` modules); for an NNX module with an ``ordered_layers()`` method
  (the gbounds twins), that order, other layers after it in path order; for any other NNX
  module, attribute-path order; for a bare parameter pytree or a :class:`ModelFn`, the order of
  its dicts (an NNX ``State`` alone is in key order, which need not be forward order: pass the
  module).

  Args:
    model: a Linen module (with ``params``), an NNX module (``params`` optional: its own
      ``nnx.Param`` state), a :class:`gbounds.models.ModelFn`, or ``None`` with ``params``.
    params: the parameters (Linen ``"params"`` collection, or the variables dict holding it;
      NNX ``nnx.State``).

  Returns:
    A tuple of :class:`LayerGroup`, one per dict of ``params`` that holds parameter arrays.

  Raises:
    InvalidInputError: a Linen module without ``params``, or a model of another type.
  """
  module = None
  if isinstance(model, _networks.ModelFn):
    params = model.params if params is None else params
  elif isinstance(model, nnx.Module):
    module = model
    if params is None:
      params = nnx.state(model, nnx.Param)
  elif isinstance(model, nn.Module):
    if params is None:
      _errors.fail("params", "the Linen module's parameters", None)
  elif model is not None:
    _errors.fail("model", "a flax.linen.Module, a flax.nnx.Module, a gbounds.models.ModelFn or "
                 "None (with params)", type(model).__name__)
  if isinstance(params, Mapping) and set(params) == {"params"} and not isinstance(
      params, nnx.State):
    params = params["params"]
  if not (isinstance(params, Mapping) or isinstance(params, nnx.State)):
    _errors.fail("params", "a parameter dict (Linen) or nnx.State (NNX)", type(params).__name__)
  found: list[tuple[tuple, tuple[str, ...]]] = []
  _walk(params, (), found)
  if module is None:
    return tuple(LayerGroup("/".join(str(p) for p in path), path, leaves)
                 for path, leaves in found)
  by_path = {tuple(p): m for p, m in nnx.iter_modules(module)}
  rank = {}
  if callable(getattr(module, "ordered_layers", None)):
    # Duck-typed (guarded by the callable() check); pyright does not narrow on getattr.
    rank = {id(m): i for i, m in enumerate(module.ordered_layers())}  # pyright: ignore[reportAttributeAccessIssue]
  order = sorted(range(len(found)), key=lambda i: (
      rank.get(id(by_path.get(found[i][0])), len(rank)), _path_key(found[i][0])))
  return tuple(LayerGroup(nnx_layer_name(module, found[i][0]), found[i][0], found[i][1])
               for i in order)


def _path_key(path: tuple) -> tuple:
  return tuple((0, int(p), "") if isinstance(p, int) or str(p).isdigit() else (1, 0, str(p))
               for p in path)


def group_params(params: Any, group: LayerGroup) -> Any:
  """The parameter dict of one layer.

  Args:
    params: the model's parameters (as given to :func:`layer_groups`).
    group: a :class:`LayerGroup` of those parameters.

  Returns:
    The sub-dict (Linen) or sub-``State`` (NNX) at ``group.path``; its entries are
    ``group.leaves``.
  """
  if isinstance(params, Mapping) and set(params) == {"params"} and not isinstance(
      params, nnx.State):
    params = params["params"]
  node = params
  for k in group.path:
    node = node[k]
  return node


def group_arrays(params: Any, group: LayerGroup) -> dict[str, jax.Array]:
  """The arrays of one layer, by parameter name (NNX variables unwrapped).

  Args:
    params: the model's parameters.
    group: a :class:`LayerGroup` of those parameters.

  Returns:
    ``{leaf name: array}`` for ``group.leaves``.
  """
  node = group_params(params, group)
  out = {}
  for name in group.leaves:
    v = node[name]
    out[name] = v.get_value() if isinstance(v, nnx.Variable) else v
  return out
