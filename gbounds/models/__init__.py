"""Model families (Linen and NNX), the one model adapter, activation capture."""

from gbounds.models._networks import CNN as CNN
from gbounds.models._networks import MLP as MLP
from gbounds.models._networks import ConvStage as ConvStage
from gbounds.models._networks import FCMI_STAGES as FCMI_STAGES
from gbounds.models._networks import ModelFn as ModelFn
from gbounds.models._networks import NnxCNN as NnxCNN
from gbounds.models._networks import NnxMLP as NnxMLP
from gbounds.models._networks import as_model_fn as as_model_fn
from gbounds.models._networks import count_params as count_params
from gbounds.models._networks import linen_params_to_nnx as linen_params_to_nnx
from gbounds.models._capture import LayerInfo as LayerInfo
from gbounds.models._capture import available_layers as available_layers
from gbounds.models._capture import capture_activations as capture_activations
from gbounds.models._capture import stack_activations as stack_activations

__all__ = [
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
    "LayerInfo",
    "available_layers",
    "capture_activations",
    "stack_activations",
]
