"""Chunk/pad/map (gbounds._src.batching) against unchunked numpy computations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gbounds._src import batching
from gbounds._src.errors import InvalidInputError


@pytest.mark.parametrize("n,chunk,expected", [
    (10, 3, [(0, 3), (3, 6), (6, 9), (9, 10)]),
    (9, 3, [(0, 3), (3, 6), (6, 9)]),
    (5, None, [(0, 5)]),
    (5, 5, [(0, 5)]),
    (5, 100, [(0, 5)]),
    (1, 1, [(0, 1)]),
    (0, None, [(0, 0)]),
])
def test_chunk_bounds(n, chunk, expected):
  bounds = batching.chunk_bounds(n, chunk)
  assert bounds == expected
  assert list(batching.iter_chunks(n, chunk)) == expected
  covered = [i for s, e in bounds for i in range(s, e)]
  assert covered == list(range(n))


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "3"])
def test_chunk_size_validation(bad):
  with pytest.raises((InvalidInputError, TypeError, ValueError)) as info:
    batching.chunk_bounds(10, bad)
  assert "chunk_size" in str(info.value)


@pytest.mark.parametrize("bad", [0, -3])
def test_chunked_map_chunk_size_validation(bad):
  with pytest.raises(InvalidInputError, match="chunk_size"):
    batching.chunked_map(lambda x: x, np.ones((4, 2)), chunk_size=bad)


def test_pad_rows_repeats_first_row_numpy_and_jax():
  x = np.arange(6.0).reshape(3, 2)
  padded = batching.pad_rows(x, 5)
  assert isinstance(padded, np.ndarray)
  np.testing.assert_array_equal(padded, np.concatenate([x, x[:1], x[:1]]))
  padded_j = batching.pad_rows(jnp.asarray(x), 5)
  assert isinstance(padded_j, jax.Array)
  np.testing.assert_array_equal(np.asarray(padded_j), padded)


def test_pad_rows_pytree_and_no_op():
  tree = {"a": np.arange(3), "b": (np.ones((3, 2, 2)), jnp.zeros(3, jnp.int32))}
  out = batching.pad_rows(tree, 4)
  np.testing.assert_array_equal(out["a"], [0, 1, 2, 0])
  assert out["b"][0].shape == (4, 2, 2) and out["b"][1].shape == (4,)
  assert out["b"][1].dtype == jnp.int32
  same = batching.pad_rows(tree, 3)
  assert same["a"] is tree["a"]


def _reference(x, y):
  return {"sum": np.sum(x, axis=1) + y, "prod": x * 2.0}


@pytest.mark.parametrize("n,chunk", [(10, 3), (10, 4), (7, 7), (7, 1), (11, None), (5, 64)])
def test_chunked_map_equals_unchunked(n, chunk):
  rng = np.random.default_rng(n)
  x = rng.standard_normal((n, 4)).astype(np.float32)
  y = rng.standard_normal(n).astype(np.float32)
  fn = jax.jit(lambda a, b: {"sum": jnp.sum(a, axis=1) + b, "prod": a * 2.0})
  out = batching.chunked_map(fn, x, y, chunk_size=chunk)
  ref = _reference(x, y)
  assert out["sum"].shape == (n,) and out["prod"].shape == (n, 4)
  np.testing.assert_allclose(np.asarray(out["sum"]), ref["sum"], rtol=1e-6)
  np.testing.assert_allclose(np.asarray(out["prod"]), ref["prod"], rtol=1e-6)


def test_chunked_map_every_chunk_has_one_shape_and_padding_repeats_first_row():
  x = np.arange(10.0).reshape(10, 1)
  seen = []

  def fn(a):
    seen.append(np.asarray(a).copy())
    return a

  out = batching.chunked_map(fn, x, chunk_size=4)
  assert [s.shape for s in seen] == [(4, 1)] * 3
  np.testing.assert_array_equal(seen[-1][:, 0], [8.0, 9.0, 8.0, 8.0])
  np.testing.assert_array_equal(np.asarray(out), x)


def test_chunked_map_compiles_once():
  traces = []

  @jax.jit
  def fn(a):
    traces.append(a.shape)
    return a + 1

  batching.chunked_map(fn, np.zeros((13, 2), np.float32), chunk_size=5)
  assert traces == [(5, 2)]


def test_chunked_map_callback_sequence():
  calls = []
  batching.chunked_map(lambda a: a, np.zeros((10, 2)), chunk_size=3,
                       callback=lambda done, total: calls.append((done, total)))
  assert calls == [(3, 10), (6, 10), (9, 10), (10, 10)]
  calls.clear()
  batching.chunked_map(lambda a: a, np.zeros((4, 2)), chunk_size=None,
                       callback=lambda done, total: calls.append((done, total)))
  assert calls == [(4, 4)]


def test_chunked_map_custom_concat_and_non_array_outputs():
  x = np.arange(7.0)
  out = batching.chunked_map(lambda a: a * 3, x, chunk_size=3, concat=list)
  assert len(out) == 3
  np.testing.assert_array_equal(np.concatenate([np.asarray(o) for o in out]), x * 3)


def test_chunked_map_vmapped_fn_equals_vmap_over_all():
  """A per-row function mapped in chunks equals one vmap over every row (float64 if enabled)."""
  dtype = jnp.float64 if jax.config.jax_enable_x64 else jnp.float32
  rng = np.random.default_rng(0)
  w = rng.standard_normal((3, 3))
  x = jnp.asarray(rng.standard_normal((17, 3)), dtype)
  row = lambda v: jnp.tanh(jnp.asarray(w, dtype) @ v)  # noqa: E731
  out = batching.chunked_map(jax.jit(jax.vmap(row)), x, chunk_size=5)
  np.testing.assert_allclose(np.asarray(out), np.tanh(np.asarray(x) @ w.T), rtol=1e-5)


def test_chunked_map_needs_an_array():
  with pytest.raises(InvalidInputError, match="arrays"):
    batching.chunked_map(lambda: 0, chunk_size=2)


@pytest.mark.parametrize("chunk", [None, 4])
def test_chunked_map_refuses_arrays_of_different_lengths(chunk):
  x, y = np.arange(10.0), 10.0 * np.arange(9.0)
  with pytest.raises(InvalidInputError):
    batching.chunked_map(lambda a, b: a + b, x, y, chunk_size=chunk)
