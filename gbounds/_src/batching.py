"""One chunk/pad/map utility for every loop over examples or models.

Padding rule (the only one in gbounds): the last chunk is padded to the full chunk size by
repeating its **first** row, so that every chunk reuses one compiled program and the padding
never introduces values (zeros, NaN) the function has not already seen; the padded rows are
dropped from the result.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gbounds._src import errors as _errors

__all__ = ["chunk_bounds", "chunked_map", "pad_rows"]


def chunk_bounds(n: int, chunk_size: int | None) -> list[tuple[int, int]]:
  """``[(start, stop), ...]`` covering ``range(n)`` in chunks of at most ``chunk_size``.

  Args:
    n: number of rows.
    chunk_size: rows per chunk; ``None`` (or ``>= n``) means one chunk.

  Returns:
    The half-open ``(start, stop)`` bounds, in order.
  """
  if chunk_size is not None:
    _errors.check_int("chunk_size", chunk_size, minimum=1)
  if chunk_size is None or chunk_size >= n:
    return [(0, n)]
  return [(s, min(s + chunk_size, n)) for s in range(0, n, chunk_size)]


def pad_rows(x: Any, size: int) -> Any:
  """Pads the leading axis of every leaf of ``x`` to ``size`` by repeating its first row.

  Args:
    x: pytree of arrays sharing a leading axis of length ``<= size``.
    size: target length.

  Returns:
    The padded pytree (unchanged when already of length ``size``).
  """
  def pad(a):
    a = jnp.asarray(a) if not isinstance(a, np.ndarray) else a
    m = a.shape[0]
    if m == size:
      return a
    xp = np if isinstance(a, np.ndarray) else jnp
    return xp.concatenate([a, xp.repeat(a[:1], size - m, axis=0)], axis=0)
  return jax.tree.map(pad, x)


def iter_chunks(n: int, chunk_size: int | None) -> Iterator[tuple[int, int]]:
  """Iterates over :func:`chunk_bounds`."""
  yield from chunk_bounds(n, chunk_size)


def chunked_map(fn: Callable[..., Any], *arrays: Any, chunk_size: int | None,
                callback: Callable[[int, int], None] | None = None,
                concat: Callable[[Sequence[Any]], Any] | None = None) -> Any:
  """``fn(*arrays)`` evaluated chunk by chunk along the leading axis, padded to one shape.

  Args:
    fn: function of chunks of ``arrays`` whose outputs (a pytree) have the chunk as their leading
      axis; typically ``jax.jit``-compiled, so every chunk reuses one program.
    *arrays: pytrees of arrays sharing the leading axis ``n``.
    chunk_size: rows per chunk (``None``: one call on everything).
    callback: optional ``callback(done, total)`` after each chunk (``total = n``).
    concat: how to join the per-chunk outputs (default: concatenate every leaf on axis 0).

  Returns:
    The outputs of ``fn`` for all ``n`` rows, padding removed.
  """
  leaves = jax.tree.leaves(arrays)
  if not leaves:
    _errors.fail("arrays", "at least one array", "none")
  if any(np.ndim(a) == 0 for a in leaves):
    _errors.fail("arrays", "arrays with a leading axis", "a scalar")
  n = leaves[0].shape[0]
  if any(a.shape[0] != n for a in leaves):
    _errors.fail("arrays", "arrays sharing the leading axis",
                 f"leading sizes {sorted({a.shape[0] for a in leaves})}")
  bounds = chunk_bounds(n, chunk_size)
  size = bounds[0][1] - bounds[0][0]
  outs = []
  for start, stop in bounds:
    part = jax.tree.map(lambda a, s=start, e=stop: a[s:e], arrays)
    out = fn(*pad_rows(part, size))
    outs.append(jax.tree.map(lambda o, m=stop - start: o[:m], out))
    if callback is not None:
      callback(stop, n)
  if concat is not None:
    return concat(outs)
  if len(outs) == 1:
    return outs[0]
  return jax.tree.map(lambda *o: jnp.concatenate(o, axis=0), *outs)
