"""Model families (Linen and NNX), the one model adapter, layer addressing, activation capture.

The adapter contract (every gbounds entry point that takes a model follows it):

* An entry point accepts ``model`` as a Linen module (with ``params=``, or ``example_input=``
  and ``key=`` to initialise it), an NNX module, or a :class:`ModelFn`, and normalises it with
  ``as_model_fn(model, params=..., example_input=..., key=...)``.
* :class:`ModelFn` is ``(apply_fn, params, init_fn)``: ``apply_fn(params, x) -> (batch, k)``
  is pure; ``init_fn(key) -> params`` draws fresh parameters of the same structure (pure,
  traceable under ``jit``/``vmap``), or is ``None`` when unknown (a Linen module given only
  ``params``; an NNX module without a ``fresh(rngs)`` method, since flax's NNX layers do not
  keep their initialisers). :func:`nnx_model_fn` builds a ModelFn with ``init_fn`` from any NNX
  constructor; :func:`require_init_fn` is the check for entry points that re-initialise.
  A ModelFn passes through ``as_model_fn`` unchanged (``params=`` replaces its parameters).
  ``ModelFn(apply_fn, params)`` (two fields) still constructs one with ``init_fn=None``, but a
  ModelFn now unpacks into three values.
* Checking an apply_fn and its output shape: ``gbounds.ntk.check_apply_fn`` and
  ``gbounds.ntk.output_shape``.
* :func:`layer_groups` lists the parameterised layers in forward order with names shared by a
  Linen model and its NNX twin (``"conv0"``, ``"dense0"``, ``"head"``), and the key path of each
  layer's parameters (:func:`group_params`, :func:`group_arrays`): "layer i" is the same layer
  in either API.
* :func:`capture_activations` / :func:`available_layers` take the same model forms (Linen
  module with params, NNX module, ModelFn); the twins give the same names, order and numbers.
* :func:`intercept_layers` routes every dense/conv layer call (Linen ``apply``, or the NNX
  ``apply_fn`` of ``as_model_fn``) through ``interceptor(next_fun, args, kwargs, call)`` with
  ``call`` a :class:`LayerCall` (name, params path, :class:`LayerKind`, use_bias): per-layer
  inputs (``args[0]``) and output perturbations for K-FAC, identical for a Linen model and its
  NNX twin.
"""

from gbounds.models._capture import LayerInfo as LayerInfo
from gbounds.models._capture import available_layers as available_layers
from gbounds.models._capture import capture_activations as capture_activations
from gbounds.models._capture import stack_activations as stack_activations
from gbounds.models._intercept import Interceptor as Interceptor
from gbounds.models._intercept import LayerCall as LayerCall
from gbounds.models._intercept import LayerKind as LayerKind
from gbounds.models._intercept import intercept_layers as intercept_layers
from gbounds.models._layers import LayerGroup as LayerGroup
from gbounds.models._layers import group_arrays as group_arrays
from gbounds.models._layers import group_params as group_params
from gbounds.models._layers import layer_groups as layer_groups
from gbounds.models._layers import nnx_layer_name as nnx_layer_name
from gbounds.models._networks import CNN as CNN
from gbounds.models._networks import FCMI_STAGES as FCMI_STAGES
from gbounds.models._networks import MLP as MLP
from gbounds.models._networks import Activation as Activation
from gbounds.models._networks import ConvStage as ConvStage
from gbounds.models._networks import ModelFn as ModelFn
from gbounds.models._networks import NnxCNN as NnxCNN
from gbounds.models._networks import NnxMLP as NnxMLP
from gbounds.models._networks import as_model_fn as as_model_fn
from gbounds.models._networks import count_params as count_params
from gbounds.models._networks import linen_params_to_nnx as linen_params_to_nnx
from gbounds.models._networks import nnx_model_fn as nnx_model_fn
from gbounds.models._networks import require_init_fn as require_init_fn

__all__ = [
    "Activation",
    "CNN",
    "MLP",
    "ConvStage",
    "FCMI_STAGES",
    "ModelFn",
    "NnxCNN",
    "NnxMLP",
    "as_model_fn",
    "count_params",
    "linen_params_to_nnx",
    "nnx_model_fn",
    "require_init_fn",
    "LayerGroup",
    "group_arrays",
    "group_params",
    "layer_groups",
    "nnx_layer_name",
    "Interceptor",
    "LayerCall",
    "LayerKind",
    "intercept_layers",
    "LayerInfo",
    "available_layers",
    "capture_activations",
    "stack_activations",
]
