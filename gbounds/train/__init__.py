"""Training and prediction (compile-once factories), optimizers, LIMIT."""

from gbounds.train._train import Loss as Loss
from gbounds.train._train import MapStrategy as MapStrategy
from gbounds.train._train import Optimizer as Optimizer
from gbounds.train._train import TrainConfig as TrainConfig
from gbounds.train._train import TrainResult as TrainResult
from gbounds.train._train import accuracy as accuracy
from gbounds.train._train import init_many as init_many
from gbounds.train._train import loss_fn as loss_fn
from gbounds.train._train import predict_many as predict_many
from gbounds.train._train import steps_for_epochs as steps_for_epochs
from gbounds.train._train import train as train
from gbounds.train._train import train_many as train_many
from gbounds.train._limit import AuxLoss as AuxLoss
from gbounds.train._limit import ClassifierStep as ClassifierStep
from gbounds.train._limit import NoiseParameterisation as NoiseParameterisation
from gbounds.train._limit import GradientSource as GradientSource
from gbounds.train._limit import LimitConfig as LimitConfig
from gbounds.train._limit import LimitNoise as LimitNoise
from gbounds.train._limit import LimitResult as LimitResult
from gbounds.train._limit import limit_gradients as limit_gradients
from gbounds.train._limit import train_limit as train_limit

__all__ = [
    "Loss",
    "MapStrategy",
    "Optimizer",
    "TrainConfig",
    "TrainResult",
    "accuracy",
    "init_many",
    "loss_fn",
    "predict_many",
    "steps_for_epochs",
    "train",
    "train_many",
    "AuxLoss",
    "ClassifierStep",
    "NoiseParameterisation",
    "GradientSource",
    "LimitConfig",
    "LimitNoise",
    "LimitResult",
    "limit_gradients",
    "train_limit",
]
