"""Training and prediction (compile-once factories), optimizers, LIMIT.

Compile once: every training or prediction loop has a public ``*_fn`` factory that builds one
``jax.jit`` program, cached on its static pieces (the identity of ``apply_fn``, the value of the
frozen config, the strategy); the checked entry points are thin wrappers over them, so a loop
of calls on the same shapes compiles once.

* :func:`train_fn` ``(apply_fn, config) -> fn(params, x, y) -> TrainResult`` (behind
  :func:`train`).
* :func:`train_many_fn` ``(apply_fn, config, *, strategy) -> fn(params, x, y, train_idx,
  model_ids) -> TrainResult`` (behind :func:`train_many`): model ``j`` trains on
  ``train_idx[j]`` of the pool with batch order ``fold_in(key(config.seed), model_ids[j])``.
  This is the per-chunk program of the supersample harness (same numbers as
  :func:`train_many` with ``model_ids``); :func:`resolve_strategy` gives the
  concrete :class:`MapStrategy` that ``AUTO`` stands for with a set of parameters.
* :func:`predict_fn` ``(apply_fn) -> fn(params, x)`` and :func:`predict_many_fn`
  ``(apply_fn, *, strategy) -> fn(params, x) -> (m, n, k)`` (behind :func:`predict_many`).
* :func:`train_limit_fn` ``(apply_fn, aux_apply_fn, config) -> fn(params, aux_params, x, y)
  -> LimitResult`` (behind :func:`train_limit`).

Losses and metrics: :func:`loss_fn` (the mean training loss of a batch), :func:`accuracy`.
"""

from gbounds.train._limit import AuxLoss as AuxLoss
from gbounds.train._limit import ClassifierStep as ClassifierStep
from gbounds.train._limit import GradientSource as GradientSource
from gbounds.train._limit import LimitConfig as LimitConfig
from gbounds.train._limit import LimitNoise as LimitNoise
from gbounds.train._limit import LimitResult as LimitResult
from gbounds.train._limit import NoiseParameterisation as NoiseParameterisation
from gbounds.train._limit import limit_gradients as limit_gradients
from gbounds.train._limit import noise_scale_of as noise_scale_of
from gbounds.train._limit import train_limit as train_limit
from gbounds.train._limit import train_limit_fn as train_limit_fn
from gbounds.train._train import Loss as Loss
from gbounds.train._train import MapStrategy as MapStrategy
from gbounds.train._train import Optimizer as Optimizer
from gbounds.train._train import TrainConfig as TrainConfig
from gbounds.train._train import TrainResult as TrainResult
from gbounds.train._train import accuracy as accuracy
from gbounds.train._train import init_many as init_many
from gbounds.train._train import loss_fn as loss_fn
from gbounds.train._train import make_optimizer as make_optimizer
from gbounds.train._train import predict_fn as predict_fn
from gbounds.train._train import predict_many as predict_many
from gbounds.train._train import predict_many_fn as predict_many_fn
from gbounds.train._train import resolve_strategy as resolve_strategy
from gbounds.train._train import steps_for_epochs as steps_for_epochs
from gbounds.train._train import train as train
from gbounds.train._train import train_fn as train_fn
from gbounds.train._train import train_many as train_many
from gbounds.train._train import train_many_fn as train_many_fn

__all__ = [
    "Loss",
    "MapStrategy",
    "Optimizer",
    "TrainConfig",
    "TrainResult",
    "accuracy",
    "init_many",
    "loss_fn",
    "make_optimizer",
    "predict_fn",
    "predict_many",
    "predict_many_fn",
    "resolve_strategy",
    "steps_for_epochs",
    "train",
    "train_fn",
    "train_many",
    "train_many_fn",
    "AuxLoss",
    "ClassifierStep",
    "NoiseParameterisation",
    "GradientSource",
    "LimitConfig",
    "LimitNoise",
    "LimitResult",
    "limit_gradients",
    "noise_scale_of",
    "train_limit",
    "train_limit_fn",
]
