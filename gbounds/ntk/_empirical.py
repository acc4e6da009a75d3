"""The linearization engine: ``linearize``, per-example Jacobians and the empirical NTK.

For a network ``f(w, x) in R^k`` with weights ``w in R^d`` (a pytree), the empirical neural
tangent kernel between inputs ``x1`` (n1 of them) and ``x2`` (n2) is

.. math::  \\Theta(x_1, x_2) = J(x_1) J(x_2)^\\top, \\qquad J(x) = \\partial f(w, x) / \\partial w,

an ``(n1 k) x (n2 k)`` matrix in sample-major order (row ``i * k + c`` is example ``i``, output
``c``) -- Jacot, Gabriel & Hongler (2018); Lee et al. (2019) for the linearized network. The
``TRACE`` output returns the ``n1 x n2`` mean over outputs, ``(1/k) sum_c J_c J_c^T``, which is
neural-tangents' default (``trace_axes=(-1,)``).

Everything is chunked over inputs: at most ``chunk_size`` examples of each side are
differentiated at once, so memory is ``O(chunk_size k d)`` for the Jacobians plus the kernel
itself. When ``x2`` is omitted the kernel is symmetric and only the chunk blocks on and above
the diagonal are computed (about half the contraction flops when there are several chunks). Each
chunk's Jacobian is computed once and reused across its row and column of blocks while the cached
Jacobians fit in a memory budget (by default half of the device's free memory); beyond it, the
chunks used most often are kept and the others recomputed, so peak memory stays set by the budget
and the chunk. Blocks are written in place into one preallocated kernel (buffer donation), so the
kernel is held once, not once per block list plus once assembled.

Every entry point checks its arguments eagerly (outside the jitted cores, on concrete values):
finite parameters and inputs, inputs of a shape the model accepts, ``chunk_size`` a positive
integer, a known implementation; a bad argument raises :class:`gbounds.InvalidInputError`
naming it.

Precision follows the inputs: pass float64 parameters and inputs (which needs
``jax.config.update("jax_enable_x64", True)`` or the ``jax.enable_x64(True)`` context, set by
the caller; the library never flips it) to get a float64 kernel.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.core  # explicit: jax/__init__ imports it, then `del`s the name (hidden from pyright)
import jax.numpy as jnp
import numpy as np
from flax import errors as flax_errors
from jax.flatten_util import ravel_pytree

from gbounds._src import batching as _batching
from gbounds._src import errors as _errors

ApplyFn = Callable[[Any, jax.Array], jax.Array]


class NtkImplementation(enum.IntEnum):
  """How the empirical NTK is computed.

  Attributes:
    JACOBIAN_CONTRACTION: per-example Jacobians (``vmap`` of ``jacrev``), contracted parameter
      leaf by parameter leaf with matrix products. Fastest whenever ``chunk_size * k * d``
      floats fit in memory; the default.
    NTK_VECTOR_PRODUCTS: never stores a Jacobian: each kernel column is
      ``jvp(f(x1), vjp(f(x2))(e))``. Use when the Jacobian chunk would not fit; costs about one
      forward+backward pass per kernel column.
    AUTO: whichever of the two a cost model predicts is faster for this architecture, chunk and
      backend (:func:`choose_implementation`); Jacobian contraction is also ruled out when one
      chunk's Jacobian would not fit in memory.
  """
  JACOBIAN_CONTRACTION = 1
  NTK_VECTOR_PRODUCTS = 2
  AUTO = 3


class NtkOutput(enum.IntEnum):
  """Shape of the returned kernel.

  Attributes:
    FULL: ``(n1 k, n2 k)``, sample-major.
    TRACE: ``(n1, n2)``, the mean over the ``k`` outputs of the diagonal output blocks.
  """
  FULL = 1
  TRACE = 2


def _check_inputs(name: str, x: Any) -> jax.Array:
  if isinstance(x, (str, bytes)) or (not isinstance(x, jax.Array)
                                     and np.asarray(x).dtype.kind not in "biuf"):
    _errors.fail(name, "a numeric array of inputs", type(x).__name__ if isinstance(
        x, (str, bytes)) else f"dtype {np.asarray(x).dtype}")
  _errors.check_nonempty(name, x)
  if np.ndim(x) < 2:
    _errors.fail(name, "a batch of inputs with a leading example axis (rank >= 2)",
                 f"shape {np.shape(x)}")
  if not isinstance(x, jax.core.Tracer):
    _errors.check_finite(name, x)
  return jnp.asarray(x)


def check_apply_fn(apply_fn: Any) -> None:
  """Refuses anything but a function ``apply_fn(params, x) -> (batch, k)`` (eager).

  A Flax module is refused with a pointer to :func:`gbounds.models.as_model_fn`.

  Args:
    apply_fn: the candidate model function.

  Returns:
    None.

  Raises:
    gbounds.InvalidInputError: naming ``apply_fn``.
  """
  from flax import linen as nn
  from flax import nnx
  if isinstance(apply_fn, (nn.Module, nnx.Module)):
    _errors.fail("apply_fn", "a function apply_fn(params, x) -> (batch, k) (a Flax module gives "
                 "one through gbounds.as_model_fn(model))", type(apply_fn).__name__)
  if not callable(apply_fn):
    _errors.fail("apply_fn", "a function apply_fn(params, x) -> (batch, k)",
                 type(apply_fn).__name__)


def _check_params(name: str, params: Any) -> None:
  """Eager NaN/inf check of concrete parameters (skipped under tracing, where the values are
  unknown: the jitted cores are not slowed)."""
  if _errors.is_concrete(params):
    _errors.check_finite_tree(name, params)


def _check_chunk_size(chunk_size: Any) -> None:
  if chunk_size is not None and (isinstance(chunk_size, (bool, np.bool_))
                                 or not isinstance(chunk_size, (int, np.integer))
                                 or chunk_size < 1):
    _errors.fail("chunk_size", "a positive integer or None", repr(chunk_size))


def _check_same_tree(name: str, tree: Any, ref_name: str, ref: Any) -> None:
  """``tree`` has the structure and leaf shapes of ``ref`` (static: safe under jit)."""
  s1, s2 = jax.tree_util.tree_structure(tree), jax.tree_util.tree_structure(ref)
  if s1 != s2:
    _errors.fail(name, f"a pytree with the structure of {ref_name}", f"{s1} (vs {s2})")
  for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(tree),
                          jax.tree_util.tree_leaves(ref)):
    if np.shape(a) != np.shape(b):
      _errors.fail(name, f"leaves with the shapes of {ref_name}",
                   f"{jax.tree_util.keystr(path)} of shape {np.shape(a)} (vs {np.shape(b)})")


def output_shape(apply_fn: ApplyFn, params: Any, x: Any, name: str = "x",
                 shown: tuple | None = None) -> tuple[int, ...]:
  """Shape of ``apply_fn(params, x)`` by abstract evaluation (``jax.eval_shape``; no FLOPs).

  Args:
    apply_fn: ``apply_fn(params, x) -> (batch, k)``.
    params: the parameters (concrete or abstract).
    x: a batch of inputs (often just its first row, ``x[:1]``).
    name: how an error names ``x``.
    shown: the shape an error reports for ``x`` (e.g. the full batch's when ``x`` is a slice).

  Returns:
    The output shape ``(batch, k)``.

  Raises:
    gbounds.InvalidInputError: a model that cannot be applied to ``x`` (wrong input shape for
      these parameters; names ``name``) or whose output is not ``(batch, k)`` (names
      ``apply_fn``).
  """
  try:
    out = jax.eval_shape(apply_fn, params, x)
  except (TypeError, ValueError, IndexError, flax_errors.FlaxError) as e:
    first = str(e).strip().splitlines()[0] if str(e).strip() else ""
    _errors.fail(name, "inputs the model accepts with these params",
                 f"shape {shown or np.shape(x)} ({type(e).__name__}: {first[:300]})")
  shape = getattr(out, "shape", None)
  if shape is None or len(shape) != 2 or shape[0] != np.shape(x)[0]:
    _errors.fail("apply_fn", "outputs of shape (batch, k)",
                 f"{shape if shape is not None else type(out).__name__} for {name} of shape "
                 f"{np.shape(x)}")
  return tuple(shape)


def linearize(apply_fn: ApplyFn, params0: Any) -> ApplyFn:
  """First-order Taylor expansion of ``apply_fn`` in its parameters around ``params0``.

  .. math:: f_{lin}(w, x) = f(w_0, x) + J(x)\\,(w - w_0)

  computed with one ``jax.jvp`` (Lee et al., 2019, eq. 5).

  Args:
    apply_fn: ``apply_fn(params, x) -> (batch, k)``.
    params0: the expansion point.

  Returns:
    ``f_lin(params, x)``, equal to ``apply_fn(params0, x)`` at ``params0``. ``params`` must have
    the structure and shapes of ``params0``; non-finite concrete ``params0`` are refused.
  """
  check_apply_fn(apply_fn)
  _check_params("params0", params0)

  def f_lin(params, x):
    _check_same_tree("params", params, "params0", params0)
    delta = jax.tree_util.tree_map(lambda p, p0: p - p0, params, params0)
    y0, dy = jax.jvp(lambda p: apply_fn(p, x), (params0,), (delta,))
    return y0 + dy
  return f_lin


def _per_example_jacobian_leaves(apply_fn, params, x):
  """Leaves of the Jacobian, each reshaped to ``(c k, leaf_size)``."""
  def single(p, xi):
    return apply_fn(p, xi[None])[0]
  jac = jax.vmap(jax.jacrev(single), in_axes=(None, 0))(params, x)  # leaves (c, k, *shape)
  leaves = jax.tree_util.tree_leaves(jac)
  return [leaf.reshape(leaf.shape[0] * leaf.shape[1], -1) for leaf in leaves]


def jacobian_fn(apply_fn: ApplyFn, *, chunk_size: int | None = None
                ) -> Callable[[Any, jax.Array], jax.Array]:
  """Factory for the flattened per-example Jacobian of ``apply_fn``, chunked over inputs.

  .. math:: J(x)_{(i k + c),\\,p} = \\partial f_c(w, x_i) / \\partial w_p

  Args:
    apply_fn: ``apply_fn(params, x) -> (batch, k)``.
    chunk_size: at most this many examples are differentiated at once (``None``: all).

  Returns:
    ``jac(params, x) -> (n k, d)``: columns in ``jax.flatten_util.ravel_pytree(params)`` order,
    rows sample-major. One compiled program per chunk shape (the last chunk is padded by
    repeating its first row, ``gbounds._src.batching``).
  """
  check_apply_fn(apply_fn)
  _check_chunk_size(chunk_size)

  @jax.jit
  def chunk_jac(params, xc):
    def single(p_flat, xi):
      return apply_fn(unravel(p_flat), xi[None])[0]
    flat, unravel = ravel_pytree(params)
    return jax.vmap(jax.jacrev(single), in_axes=(None, 0))(flat, xc)  # (c, k, d)

  def jac(params, x):
    x = _check_inputs("x", x)
    _check_params("params", params)
    output_shape(apply_fn, params, x[:1], "x", x.shape)
    j = _batching.chunked_map(lambda xc: chunk_jac(params, xc), x, chunk_size=chunk_size)
    return j.reshape(-1, j.shape[-1])
  return jac


def _chunks(x: jax.Array, chunk_size: int | None) -> list[jax.Array]:
  """``x`` split into chunks of one size (``gbounds._src.batching``: the last one padded by
  repeating its first row, so every chunk reuses one compiled program)."""
  bounds = _batching.chunk_bounds(x.shape[0], chunk_size)
  size = bounds[0][1] - bounds[0][0]
  return [_batching.pad_rows(x[s:e], size) for s, e in bounds]


def _contract(leaves1, leaves2, k: int, output: NtkOutput):
  if output == NtkOutput.FULL:
    return sum(a @ b.T for a, b in zip(leaves1, leaves2))
  total = 0.0
  for a, b in zip(leaves1, leaves2):
    a3 = a.reshape(-1, k, a.shape[-1])
    b3 = b.reshape(-1, k, b.shape[-1])
    total = total + jnp.einsum("akp,bkp->ab", a3, b3)
  return total / k


# (column, x1 example) pairs evaluated at once, per backend: bounds the memory. On CPU one x2
# example at a time was fastest (CNN, n = 256: 15.6 s vs 34.9 s at 2^16; MLP 2.2 s vs 2.6 s);
# accelerators get wide batches.
_NVP_COLUMNS = {"cpu": 1 << 9}
_NVP_COLUMNS_DEFAULT = 1 << 16


def _nvp_block(apply_fn, params, x1, x2, output: NtkOutput):
  """NTK block by vector products, one ``x2`` example's ``k`` columns at a time.

  Column ``(i, j)`` is ``jvp(f(x1), vjp(f(x2_i))(e_j))``: as examples do not interact, the
  vector-Jacobian product needs only example ``i`` (one backward pass of one example instead of
  the whole ``x2`` chunk). ``x2`` examples are vmapped in groups of about
  ``_NVP_COLUMNS / (k n1)`` (per backend) so that memory stays bounded.
  """
  f1 = lambda p: apply_fn(p, x1)  # noqa: E731
  c1, k = jax.eval_shape(f1, params).shape

  def example_columns(xi):
    yi, vjp_i = jax.vjp(lambda p: apply_fn(p, xi[None]), params)

    def column(v):
      (ct,) = vjp_i(v[None])
      return jax.jvp(f1, (params,), (ct,))[1]  # (c1, k)

    return jax.vmap(column)(jnp.eye(k, dtype=yi.dtype))  # (k, c1, k)

  budget = _NVP_COLUMNS.get(jax.default_backend(), _NVP_COLUMNS_DEFAULT)
  group = max(1, min(x2.shape[0], budget // (k * c1)))
  cols = jax.lax.map(example_columns, x2, batch_size=group)  # (c2, k, c1, k)
  c2 = x2.shape[0]
  full = cols.reshape(c2 * k, c1 * k).T  # (c1 k, c2 k), sample-major
  if output == NtkOutput.FULL:
    return full
  return jnp.einsum("akbk->ab", full.reshape(c1, k, c2, k)) / k


@functools.partial(jax.jit, static_argnums=(4, 5, 6), donate_argnums=(0,))
def _put(kernel, block, r0, c0, rows: int, cols: int, transpose: bool):
  """Writes ``block[:rows, :cols]`` (or its transpose) into ``kernel`` at ``(r0, c0)``, in place
  (the kernel's buffer is donated)."""
  part = block[:rows, :cols]
  return jax.lax.dynamic_update_slice(kernel, part.T if transpose else part, (r0, c0))


def free_memory_bytes(device: Any = None) -> int:
  """Free memory of a device, for sizing caches and choosing between memory-hungry routes.

  Accelerators report it through ``device.memory_stats()`` (``bytes_limit - bytes_in_use``); for
  the host CPU it is Linux's ``MemAvailable`` (``/proc/meminfo``). Where neither is known, 4 GiB.

  Args:
    device: a ``jax.Device`` (default: the first device of the default backend).

  Returns:
    Free bytes.
  """
  device = jax.devices()[0] if device is None else device
  try:
    stats = device.memory_stats()
  except Exception:  # noqa: BLE001 -- backends without memory statistics
    stats = None
  if stats and "bytes_limit" in stats:
    return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
  try:
    with open("/proc/meminfo") as f:
      for line in f:
        if line.startswith("MemAvailable:"):
          return int(line.split()[1]) * 1024
  except OSError:
    pass
  return 4 << 30


# Relative rate of the NTK-vector-product passes (small matmuls inside a lax.map) to that of the
# Jacobian contraction (one large matmul per block), per backend; see ``choose_implementation``.
# CPU: benchmarks/bench_ntk.py (MLP 784-512-512-2, float32, 2 cores) timed NVP at 0.47x JC at
# n = 64 and 0.57x at n = 1024 where the model's flops are equal, i.e. a rate of about 2; the CNN
# (forward flops ~ 21 d) then gives NVP at ~10x JC, measured 7.6x at n = 64, 19x at n = 1024.
# Other backends: 1 (flops alone) until measured there.
_NVP_RELATIVE_RATE = {"cpu": 2.0}
_NVP_RELATIVE_RATE_DEFAULT = 1.0


class NtkCost(NamedTuple):
  """The cost model behind :attr:`NtkImplementation.AUTO` (floating-point operations).

  Attributes:
    implementation: the predicted faster implementation.
    jacobian_contraction: predicted flops of Jacobian contraction (Jacobians plus contraction).
    vector_products: predicted flops of NTK-vector products, divided by their relative rate on
      this backend.
    forward_flops: XLA's flop count of one forward pass on one example.
    params: number of parameters ``d``.
    jacobian_chunk_bytes: bytes of one chunk's Jacobian.
  """
  implementation: NtkImplementation
  jacobian_contraction: float
  vector_products: float
  forward_flops: float
  params: int
  jacobian_chunk_bytes: int


def choose_implementation(apply_fn: ApplyFn, params: Any, x1: Any, x2: Any = None, *,
                          chunk_size: int | None = None) -> NtkCost:
  """Predicts whether Jacobian contraction or NTK-vector products computes this kernel faster.

  With ``F`` the flops of one forward pass of one example (XLA's cost analysis), ``d``
  parameters, ``k`` outputs and ``B`` chunk blocks of ``c1 x c2`` examples (only the blocks on
  and above the diagonal when ``x2`` is None):

  * Jacobian contraction: each example's Jacobian costs about one forward and ``k`` backward
    passes, ``(1 + 2k) F``, and each block ``2 (c1 k)(c2 k) d`` flops of matrix products;
  * NTK-vector products: each of a block's ``c2 k`` columns is a backward pass of one example and
    a forward-mode pass over ``c1`` examples (its tangent part), about ``2F + 2F c1`` flops, run
    at ``_NVP_RELATIVE_RATE`` times the contraction's rate (measured per backend).

  For dense layers ``F ~ 2d``, so the flops are close (ratio ``2F / (k d)``) and the measured
  rates decide; convolutions reuse each weight at many positions (``F >> d``), which favours the
  contraction. Jacobian contraction
  is ruled out when one chunk's Jacobian (twice, for the intermediate of ``vmap(jacrev)``) would
  not fit in half of the free memory (:func:`free_memory_bytes`).

  Args:
    apply_fn: ``apply_fn(params, x) -> (batch, k)``.
    params: the parameters.
    x1: first inputs.
    x2: second inputs (None: the symmetric kernel of ``x1``).
    chunk_size: as in :func:`empirical_ntk_fn`.

  Returns:
    :class:`NtkCost` with the choice and the predicted costs.
  """
  x1 = jnp.asarray(x1)
  n1 = x1.shape[0]
  n2 = n1 if x2 is None else np.shape(x2)[0]
  one = jax.ShapeDtypeStruct((1, *x1.shape[1:]), x1.dtype)
  k = int(jax.eval_shape(apply_fn, params, one).shape[-1])
  try:
    cost = jax.jit(apply_fn).lower(params, one).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    forward = float(cost.get("flops", 0.0)) if cost else 0.0
  except Exception:  # noqa: BLE001 -- a backend without cost analysis: dense estimate below
    forward = 0.0
  d = sum(int(np.size(leaf)) for leaf in jax.tree_util.tree_leaves(params))
  forward = forward if forward > 0 else 2.0 * d
  c1 = min(n1, chunk_size or n1)
  c2 = min(n2, chunk_size or n2)
  b1, b2 = -(-n1 // c1), -(-n2 // c2)
  blocks = b1 * (b1 + 1) / 2 if x2 is None else b1 * b2
  jac = (n1 + (0 if x2 is None else n2)) * (1 + 2 * k) * forward
  jc = jac + blocks * 2.0 * (c1 * k) * (c2 * k) * d
  rate = _NVP_RELATIVE_RATE.get(jax.default_backend(), _NVP_RELATIVE_RATE_DEFAULT)
  nvp = blocks * c2 * k * (2.0 * forward + 2.0 * forward * c1) / rate
  itemsize = jnp.dtype(jax.tree_util.tree_leaves(params)[0].dtype).itemsize
  chunk_bytes = max(c1, c2) * k * d * itemsize
  fits = 2 * chunk_bytes <= free_memory_bytes() // 2
  choice = (NtkImplementation.JACOBIAN_CONTRACTION if fits and jc <= nvp
            else NtkImplementation.NTK_VECTOR_PRODUCTS)
  return NtkCost(choice, jc, nvp, forward, d, chunk_bytes)


def empirical_ntk_fn(apply_fn: ApplyFn, *,
                     implementation: NtkImplementation | str = NtkImplementation.JACOBIAN_CONTRACTION,
                     output: NtkOutput | str = NtkOutput.FULL,
                     chunk_size: int | None = None,
                     cache_bytes: int | None = None):
  """Factory for the empirical NTK of ``apply_fn``.

  Args:
    apply_fn: ``apply_fn(params, x) -> (batch, k)``; examples must not interact (no BatchNorm in
      training mode).
    implementation: a :class:`NtkImplementation` (or its name); ``AUTO`` decides per call with
      :func:`choose_implementation`.
    output: a :class:`NtkOutput` (or its name).
    chunk_size: at most this many examples per side are processed at once (``None``: all).
    cache_bytes: memory for keeping chunk Jacobians between blocks (Jacobian contraction only);
      ``None``: half of the device's free memory at call time (:func:`free_memory_bytes`);
      ``0``: recompute every column chunk's Jacobian for each row (least memory).

  Returns:
    ``ntk_fn(x1, x2, params)``: with ``x2=None`` the symmetric kernel of ``x1`` with itself.
    Shape ``(n1 k, n2 k)`` for ``FULL`` (sample-major), ``(n1, n2)`` for ``TRACE``.
  """
  check_apply_fn(apply_fn)
  implementation = _errors.as_enum("implementation", implementation, NtkImplementation)
  output = _errors.as_enum("output", output, NtkOutput)
  _check_chunk_size(chunk_size)
  if cache_bytes is not None:
    _errors.check_int("cache_bytes", cache_bytes, minimum=0)

  jac_leaves = jax.jit(functools.partial(_per_example_jacobian_leaves, apply_fn))
  contract = jax.jit(_contract, static_argnums=(2, 3))
  nvp = jax.jit(functools.partial(_nvp_block, apply_fn), static_argnums=(3,))

  def ntk_fn(x1, x2, params):
    x1 = _check_inputs("x1", x1)
    symmetric = x2 is None
    if not symmetric:
      x2 = _check_inputs("x2", x2)
      if x1.shape[1:] != x2.shape[1:]:
        _errors.fail("x2", f"examples of shape {x1.shape[1:]} (as x1)", f"{x2.shape[1:]}")
    _check_params("params", params)
    output_shape(apply_fn, params, x1[:1], "x1", x1.shape)
    out = jax.eval_shape(apply_fn, params, x1[:1])
    k = int(out.shape[-1])
    impl = implementation
    if impl == NtkImplementation.AUTO:
      impl = choose_implementation(apply_fn, params, x1, x2, chunk_size=chunk_size).implementation
    c1 = _chunks(x1, chunk_size)
    c2 = c1 if x2 is None else _chunks(x2, chunk_size)  # x2 is None exactly when symmetric
    b1 = _batching.chunk_bounds(x1.shape[0], chunk_size)
    b2 = b1 if x2 is None else _batching.chunk_bounds(x2.shape[0], chunk_size)
    per = k if output == NtkOutput.FULL else 1
    kernel = jnp.zeros((x1.shape[0] * per, (x1 if x2 is None else x2).shape[0] * per), out.dtype)

    # Column chunks whose Jacobians are kept: the last ones, which the symmetric loop below uses
    # most often (chunk j serves rows 0..j), as many as the budget holds.
    cached: dict[int, Any] = {}
    keep = 0
    if impl == NtkImplementation.JACOBIAN_CONTRACTION:
      leaves = jax.tree_util.tree_leaves(params)
      chunk_bytes = c2[0].shape[0] * k * sum(int(np.size(a)) for a in leaves) * \
          jnp.dtype(out.dtype).itemsize
      budget = free_memory_bytes() // 2 if cache_bytes is None else cache_bytes
      keep = min(len(c2), budget // max(chunk_bytes, 1))

    def column_jacobian(j):
      if j in cached:
        return cached[j]
      lb = jac_leaves(params, c2[j])
      if j >= len(c2) - keep:
        cached[j] = lb
      return lb

    for i, a in enumerate(c1):
      la = None
      if impl == NtkImplementation.JACOBIAN_CONTRACTION:
        la = column_jacobian(i) if symmetric else jac_leaves(params, a)
      (r0, r1) = b1[i]
      for j, b in enumerate(c2):
        if symmetric and j < i:
          continue
        if impl == NtkImplementation.JACOBIAN_CONTRACTION:
          block = contract(la, la if (symmetric and i == j) else column_jacobian(j), k, output)
        else:
          block = nvp(params, a, b, output)
        (s0, s1) = b2[j]
        rows, cols = (r1 - r0) * per, (s1 - s0) * per
        kernel = _put(kernel, block, r0 * per, s0 * per, rows, cols, False)
        if symmetric and j > i:
          kernel = _put(kernel, block, s0 * per, r0 * per, rows, cols, True)
    return kernel

  return ntk_fn


def jacobian_vector_product(apply_fn: ApplyFn, params: Any, x: jax.Array, tangent: Any
                            ) -> jax.Array:
  """Jacobian-vector product ``J(x) v`` (one forward-mode pass, no Jacobian stored).

  Args:
    apply_fn: ``apply_fn(params, x) -> (batch, k)``.
    params: the parameters ``w`` at which ``J`` is taken.
    x: inputs ``(n, ...)``.
    tangent: ``v``, a pytree with the structure and shapes of ``params``.

  Returns:
    ``J(x) v``, shape ``(n, k)``.
  """
  check_apply_fn(apply_fn)
  x = _check_inputs("x", x)
  _check_params("params", params)
  _check_same_tree("tangent", tangent, "params", params)
  _check_params("tangent", tangent)
  return jax.jvp(lambda p: apply_fn(p, x), (params,), (tangent,))[1]


def vector_jacobian_product(apply_fn: ApplyFn, params: Any, x: jax.Array, cotangent: jax.Array
                            ) -> Any:
  """Vector-Jacobian product ``J(x)^T a`` (one reverse-mode pass, no Jacobian stored).

  Args:
    apply_fn: ``apply_fn(params, x) -> (batch, k)``.
    params: the parameters ``w`` at which ``J`` is taken.
    x: inputs ``(n, ...)``.
    cotangent: ``a``, shape ``(n, k)`` or ``(n k,)`` (sample-major).

  Returns:
    ``J(x)^T a``, a pytree with the structure of ``params``.
  """
  check_apply_fn(apply_fn)
  x = _check_inputs("x", x)
  _check_params("params", params)
  shape = output_shape(apply_fn, params, x)
  if int(np.size(cotangent)) != shape[0] * shape[1]:
    _errors.fail("cotangent", f"shape {shape} or ({shape[0] * shape[1]},) (the outputs on x)",
                 f"shape {np.shape(cotangent)}")
  if not isinstance(cotangent, jax.core.Tracer):
    _errors.check_finite("cotangent", cotangent)
  y, vjp = jax.vjp(lambda p: apply_fn(p, x), params)
  (out,) = vjp(jnp.reshape(cotangent, y.shape).astype(y.dtype))
  return out


def cast_tree(tree: Any, dtype) -> Any:
  """Casts every floating leaf of ``tree`` to ``dtype`` (e.g. parameters to float64).

  Args:
    tree: a pytree of arrays.
    dtype: the floating dtype to cast to.

  Returns:
    ``tree`` with floating leaves in ``dtype``; integer and boolean leaves unchanged.
  """
  return jax.tree_util.tree_map(
      lambda a: a.astype(dtype) if jnp.issubdtype(jnp.asarray(a).dtype, jnp.floating) else a, tree)
