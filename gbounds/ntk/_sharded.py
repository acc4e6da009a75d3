"""Kernels and Jacobians spread over the devices of a mesh, row band by row band.

A thin layer over the engine (:func:`empirical_ntk_fn`, :func:`jacobian_fn`): the rows of the
result are split into equal contiguous bands, one per device of a :class:`jax.sharding.Mesh`,
each band is computed on its device by the engine's own (chunked, eagerly checked) functions, and
the bands are joined, without a copy, into ONE global ``jax.Array`` whose rows are sharded over
the mesh (``NamedSharding(mesh, PartitionSpec(mesh.axis_names))``: rows over all mesh axes).

* Kernel: device ``p`` computes ``Theta(x1[band_p], x2)`` (``x2 = x1`` for the symmetric
  kernel). Equal bands of rows are balanced for a symmetric kernel too (every band is a full
  ``band x n2`` slab), at the price of the symmetry saving: on several devices every entry is
  contracted once, where one device (which runs the engine's symmetric kernel itself)
  contracts only the blocks on and above the diagonal, about half. The off-diagonal blocks
  ``(p, q)`` and ``(q, p)`` come from two contractions, so the result is symmetric up to
  round-off rather than bit for bit.
* Jacobian: device ``p`` computes the rows ``J(x)[band_p]``.

A band whose rows cut through an example (``FULL`` kernels and Jacobians have ``k`` rows per
example) differentiates the examples it touches and keeps its rows. The number of rows must be
a multiple of the number of devices (JAX shards only evenly); anything else is refused with a
:class:`gbounds.InvalidInputError`.

The devices work concurrently through JAX's asynchronous dispatch (one Python loop hands every
device its band; nothing waits for a result). The consumers accept the sharded array as is:
``jax.numpy`` and the dynamics (:func:`gradient_descent_mse`, :func:`gd_coefficients`) run on
it under XLA's sharding propagation, and the host-side leave-one-out of ``gbounds.info``
copies it to the host once (its float64 LAPACK algebra needs the whole matrix there).

Several hosts: call ``jax.distributed.initialize()`` in every process, then pass a global mesh,
e.g. ``jax.sharding.Mesh(np.array(jax.devices()), ("rows",))``: every process computes the
bands of its own (addressable) devices and the result is the same global array (a multi-host
mesh works the same way; it is not tested here). Each process must hold the full inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from gbounds._src import errors as _errors
from gbounds.ntk._empirical import (
  ApplyFn,
  NtkImplementation,
  NtkOutput,
  check_apply_fn,
  empirical_ntk_fn,
  jacobian_fn,
  output_shape,
)


def row_mesh(devices: Sequence[Any] | None = None) -> Mesh:
  """A one-axis mesh (axis ``"rows"``) over ``devices``, the default of every ``mesh=`` option.

  Args:
    devices: the devices (``None``: ``jax.local_devices()``, all devices of this process).

  Returns:
    ``Mesh(devices, ("rows",))``.
  """
  devs = list(jax.local_devices() if devices is None else devices)
  if not devs or not all(isinstance(d, jax.Device) for d in devs):
    _errors.fail("devices", "a non-empty sequence of jax.Device", repr(devices))
  if len(set(devs)) != len(devs):
    _errors.fail("devices", "distinct devices", repr(devs))
  return Mesh(np.array(devs), ("rows",), axis_types=(AxisType.Auto,))


def _auto_mesh(mesh: Any) -> Mesh:
  """``mesh`` (or :func:`row_mesh`) with every axis typed ``Auto``, so that XLA's sharding
  propagation may reshard the result freely (``Explicit`` axes would refuse ``K + K^T``)."""
  if mesh is None:
    return row_mesh()
  if not isinstance(mesh, Mesh):
    _errors.fail("mesh", "a jax.sharding.Mesh or None (all local devices)", type(mesh).__name__)
  return Mesh(mesh.devices, mesh.axis_names, axis_types=(AxisType.Auto,) * mesh.devices.ndim)


def row_sharding(mesh: Mesh | None = None) -> NamedSharding:
  """The sharding of every result here: leading axis (rows) split over all axes of ``mesh``.

  Args:
    mesh: a :class:`jax.sharding.Mesh` (``None``: :func:`row_mesh`, all local devices).

  Returns:
    ``NamedSharding(mesh, PartitionSpec(mesh.axis_names))`` (on the mesh with ``Auto`` axes).
  """
  m = _auto_mesh(mesh)
  return NamedSharding(m, PartitionSpec(tuple(m.axis_names)))


def map_row_bands(band_fn: Callable[[int, int, Any], Any], num_rows: int, *,
                  mesh: Mesh | None = None, name: str = "num_rows") -> Any:
  """Builds a row-sharded array band by band: ``band_fn(start, stop, device)`` per device.

  .. math:: R = \\begin{bmatrix} R_{[0, b)} \\\\ R_{[b, 2b)} \\\\ \\vdots \\end{bmatrix},
            \\qquad b = \\text{num\\_rows} / \\#\\text{devices}

  with band ``p`` computed on device ``p`` of the mesh (its addressable devices only, so every
  process of a multi-host mesh computes its own bands). Dispatch is asynchronous: the bands run
  concurrently.

  Args:
    band_fn: ``band_fn(start, stop, device)`` returns the rows ``[start, stop)`` (a pytree of
      arrays, each with leading axis ``stop - start``, the same trailing shapes for every band),
      computed on ``device``.
    num_rows: total rows, a multiple of the number of devices of ``mesh``.
    mesh: a :class:`jax.sharding.Mesh` (``None``: :func:`row_mesh`, all local devices).
    name: the argument an error names when ``num_rows`` does not split evenly.

  Returns:
    A pytree like ``band_fn``'s output of global ``jax.Array`` s, rows sharded by
    :func:`row_sharding`.
  """
  m = _auto_mesh(mesh)
  sharding = NamedSharding(m, PartitionSpec(tuple(m.axis_names)))
  p = m.devices.size
  if num_rows < 1 or num_rows % p:
    _errors.fail(name, f"a number of rows divisible by the {p} devices of the mesh (JAX shards "
                 "only evenly; add or drop examples, or use fewer devices)", f"{num_rows} rows")
  bands = []
  for device, index in sharding.addressable_devices_indices_map((num_rows,)).items():
    rows = index[0] if index is not None else None
    assert isinstance(rows, slice)  # a row sharding: every shard is a slice of rows
    start, stop, _ = rows.indices(num_rows)
    out = band_fn(start, stop, device)
    bands.append(jax.tree_util.tree_map(lambda a, d=device: jax.device_put(a, d), out))
  def join(*leaves):
    shape = (num_rows,) + tuple(leaves[0].shape[1:])
    return jax.make_array_from_single_device_arrays(shape, sharding, list(leaves))
  return jax.tree_util.tree_map(join, *bands)


def _covering(start: int, stop: int, per: int) -> tuple[int, int, slice]:
  """Examples ``[e0, e1)`` holding rows ``[start, stop)`` (``per`` rows each) and the slice of
  those examples' rows that is the band."""
  e0, e1 = start // per, -(-stop // per)
  return e0, e1, slice(start - e0 * per, stop - e0 * per)


def _check_batch(name: str, x: Any) -> None:
  if not hasattr(x, "shape") or np.ndim(x) < 2:
    _errors.fail(name, "a batch of inputs with a leading example axis (rank >= 2)",
                 f"{type(x).__name__} of shape {np.shape(x)}" if hasattr(x, "shape")
                 else type(x).__name__)
  _errors.check_nonempty(name, x)


def sharded_ntk_fn(apply_fn: ApplyFn, *, mesh: Mesh | None = None,
                   implementation: NtkImplementation | str = NtkImplementation.JACOBIAN_CONTRACTION,
                   output: NtkOutput | str = NtkOutput.FULL,
                   chunk_size: int | None = None) -> Callable[[Any, Any, Any], jax.Array]:
  """Factory for the empirical NTK with its rows sharded over the devices of ``mesh``.

  .. math:: \\Theta(x_1, x_2)_{[b_p]} = J(x_1)_{[b_p]}\\, J(x_2)^\\top \\quad\\text{on device } p

  (Jacot, Gabriel & Hongler, 2018), each band by :func:`empirical_ntk_fn` on its device: the
  same numbers as the one-device kernel up to round-off. On a mesh of one device it is the
  engine's kernel, placed on that device. Several hosts: ``jax.distributed.initialize()`` first
  and a global mesh (see the module docstring).

  Args:
    apply_fn: ``apply_fn(params, x) -> (batch, k)``.
    mesh: a :class:`jax.sharding.Mesh`; rows are split over all its axes (``None``:
      :func:`row_mesh`, all local devices).
    implementation: a :class:`NtkImplementation` (or its name), as in :func:`empirical_ntk_fn`.
    output: a :class:`NtkOutput` (or its name).
    chunk_size: at most this many examples per side at once, on each device.

  Returns:
    ``ntk_fn(x1, x2, params)`` (``x2=None``: the symmetric kernel of ``x1``): a global
    ``jax.Array`` of shape ``(n1 k, n2 k)`` (``FULL``) or ``(n1, n2)`` (``TRACE``), rows
    sharded by :func:`row_sharding`. The number of rows must divide evenly over the devices.
  """
  engine = empirical_ntk_fn(apply_fn, implementation=implementation, output=output,
                            chunk_size=chunk_size)  # checks every option
  output = _errors.as_enum("output", output, NtkOutput)
  the_mesh = _auto_mesh(mesh)

  def ntk_fn(x1, x2, params):
    _check_batch("x1", x1)
    if x2 is not None:
      _check_batch("x2", x2)
    k = int(output_shape(apply_fn, params, x1[:1], "x1", np.shape(x1))[-1])
    per = k if output == NtkOutput.FULL else 1
    n1 = int(np.shape(x1)[0])

    def band(start, stop, device):
      e0, e1, rows = _covering(start, stop, per)
      p_d = jax.device_put(params, device)
      if x2 is None and e0 == 0 and e1 == n1:  # one device: the engine's symmetric kernel
        return engine(jax.device_put(x1, device), None, p_d)
      cols = jax.device_put(x1 if x2 is None else x2, device)
      return engine(jax.device_put(x1[e0:e1], device), cols, p_d)[rows]

    return map_row_bands(band, n1 * per, mesh=the_mesh, name="x1")
  return ntk_fn


def sharded_jacobian_fn(apply_fn: ApplyFn, *, mesh: Mesh | None = None,
                        chunk_size: int | None = None) -> Callable[[Any, Any], jax.Array]:
  """Factory for the flattened per-example Jacobian with its rows sharded over ``mesh``.

  .. math:: J(x)_{(i k + c),\\,p} = \\partial f_c(w, x_i) / \\partial w_p

  each band of rows by :func:`jacobian_fn` on its device (one-device numbers up to round-off).
  Several hosts: ``jax.distributed.initialize()`` first and a global mesh (module docstring).

  Args:
    apply_fn: ``apply_fn(params, x) -> (batch, k)``.
    mesh: a :class:`jax.sharding.Mesh` (``None``: :func:`row_mesh`, all local devices).
    chunk_size: at most this many examples differentiated at once, on each device.

  Returns:
    ``jac(params, x)``: a global ``jax.Array`` ``(n k, d)`` (columns in
    ``ravel_pytree(params)`` order), rows sharded by :func:`row_sharding`; ``n k`` must divide
    evenly over the devices.
  """
  check_apply_fn(apply_fn)
  engine = jacobian_fn(apply_fn, chunk_size=chunk_size)
  the_mesh = _auto_mesh(mesh)

  def jac(params, x):
    _check_batch("x", x)
    k = int(output_shape(apply_fn, params, x[:1], "x", np.shape(x))[-1])

    def band(start, stop, device):
      e0, e1, rows = _covering(start, stop, k)
      return engine(jax.device_put(params, device), jax.device_put(x[e0:e1], device))[rows]

    return map_row_bands(band, int(np.shape(x)[0]) * k, mesh=the_mesh, name="x")
  return jac


def is_row_sharded(array: Any, mesh: Mesh | None = None) -> bool:
  """Whether ``array`` is a global array whose rows are split over every device of ``mesh``.

  Args:
    array: any value.
    mesh: the mesh (``None``: :func:`row_mesh`, all local devices).

  Returns:
    True when ``array`` is a ``jax.Array`` with one distinct row band per device of ``mesh``.
  """
  if not isinstance(array, jax.Array) or jnp.ndim(array) < 1:
    return False
  m = _auto_mesh(mesh)
  devices = set(m.devices.flat)
  if set(array.sharding.device_set) != devices:
    return False
  rows = {(s.index[0].indices(array.shape[0])[:2]) for s in array.global_shards}
  return len(rows) == len(devices) == array.sharding.num_devices
