"""Twin models for NNX-vs-Linen tests: the same network in both Flax APIs, identical weights.

Every entry point that takes a model accepts a Linen module (with ``params=``), an NNX module or
a :class:`gbounds.models.ModelFn`. A twin test runs the entry point on ``twins.linen`` (with
``twins.linen_params``) and on ``twins.nnx`` and asserts the same numbers::

    from tests.model_twins import cnn_twins
    t = cnn_twins()
    a = entry_point(t.linen, params=t.linen_params, x=t.x, ...)
    b = entry_point(t.nnx, x=t.x, ...)

The NNX module is built by :func:`fresh_nnx` each call (NNX modules are mutable; an entry
point that trains one in place must not leak into another test).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import gbounds.models as gm

CNN_INPUT_SHAPE = (8, 8, 1)
CNN_STAGES = (gm.ConvStage(4, 3, 2, 1), gm.ConvStage(6, 3, 1, 0))
CNN_DENSE = (8,)
MLP_INPUT_SHAPE = (4, 4, 1)
MLP_HIDDEN = (12, 6)
OUT = 3


class Twins(NamedTuple):
  """A Linen module and params, its NNX twin with identical weights, and a tiny dataset.

  Attributes:
    linen: The Linen module (``gbounds.models.CNN`` or ``MLP``).
    linen_params: Its parameters (the ``"params"`` collection).
    nnx: The NNX twin (``NnxCNN`` or ``NnxMLP``) holding the same weights.
    x: Inputs, ``(n, *input_shape)``, in the twins' dtype.
    y: Integer labels in ``[0, OUT)``, ``(n,)``, int32.
  """
  linen: Any
  linen_params: Any
  nnx: Any
  x: jax.Array
  y: jax.Array


def dataset(input_shape, *, n: int = 12, k: int = OUT, seed: int = 0, dtype=jnp.float32):
  """A deterministic dataset: standard-normal ``x`` of ``(n, *input_shape)``, labels ``i % k``.

  Args:
    input_shape: Shape of one example.
    n: Number of examples.
    k: Number of classes.
    seed: Numpy seed of ``x``.
    dtype: Floating dtype of ``x``.

  Returns:
    ``(x, y)``: ``x`` float of ``dtype``, ``y`` int32 labels cycling through the classes.
  """
  rng = np.random.default_rng(seed)
  x = jnp.asarray(rng.standard_normal((n, *input_shape)), dtype)
  y = jnp.asarray(np.arange(n) % k, jnp.int32)
  return x, y


def _nnx_cnn(dtype, seed):
  return gm.NnxCNN(CNN_INPUT_SHAPE, CNN_STAGES, CNN_DENSE, OUT, param_dtype=dtype,
                   rngs=nnx.Rngs(seed + 1000))


def _nnx_mlp(dtype, seed):
  return gm.NnxMLP(int(np.prod(MLP_INPUT_SHAPE)), MLP_HIDDEN, OUT, param_dtype=dtype,
                   rngs=nnx.Rngs(seed + 1000))


def cnn_twins(seed: int = 0, *, n: int = 12, dtype=jnp.float32) -> Twins:
  """The CNN twins: ``gbounds.models.CNN`` and ``NnxCNN`` on (8, 8, 1) inputs, 3 outputs.

  Two conv stages (4 channels 3x3 stride 2 pad 1, 6 channels 3x3), one dense layer of 8.

  Args:
    seed: Seed of the Linen initialisation (``jax.random.key(seed)``) and of the data.
    n: Number of examples.
    dtype: Parameter and input dtype.

  Returns:
    :class:`Twins`.
  """
  linen = gm.CNN(stages=CNN_STAGES, dense=CNN_DENSE, out=OUT, param_dtype=dtype)
  x, y = dataset(CNN_INPUT_SHAPE, n=n, seed=seed, dtype=dtype)
  params = linen.init(jax.random.key(seed), x[:1])["params"]
  twin = _nnx_cnn(dtype, seed)
  gm.linen_params_to_nnx(twin, params)
  return Twins(linen, params, twin, x, y)


def mlp_twins(seed: int = 0, *, n: int = 12, dtype=jnp.float32) -> Twins:
  """The MLP twins: ``gbounds.models.MLP`` and ``NnxMLP`` on (4, 4, 1) inputs, 3 outputs.

  Hidden widths (12, 6).

  Args:
    seed: Seed of the Linen initialisation (``jax.random.key(seed)``) and of the data.
    n: Number of examples.
    dtype: Parameter and input dtype.

  Returns:
    :class:`Twins`.
  """
  linen = gm.MLP(hidden=MLP_HIDDEN, out=OUT, param_dtype=dtype)
  x, y = dataset(MLP_INPUT_SHAPE, n=n, seed=seed, dtype=dtype)
  params = linen.init(jax.random.key(seed), x[:1])["params"]
  twin = _nnx_mlp(dtype, seed)
  gm.linen_params_to_nnx(twin, params)
  return Twins(linen, params, twin, x, y)


def fresh_nnx(twins: Twins) -> Any:
  """A new NNX module with the twins' weights (for entry points that mutate their model).

  Args:
    twins: A :class:`Twins`.

  Returns:
    A new ``NnxCNN``/``NnxMLP`` holding ``twins.linen_params``.
  """
  dtype = twins.x.dtype
  make = _nnx_cnn if isinstance(twins.nnx, gm.NnxCNN) else _nnx_mlp
  twin = make(dtype, 0)
  gm.linen_params_to_nnx(twin, twins.linen_params)
  return twin
