"""Tests of gbounds.ntk._sharded: the kernel and the Jacobian with rows sharded over 4 devices.

The device count must be set before JAX is imported, so a subprocess per dtype (this file run
as a script with ``XLA_FLAGS=--xla_force_host_platform_device_count=4``) computes every check
and prints them as JSON; the tests read them. References are independent of the sharded code: the
one-device engine (itself tested against brute force in ``test_empirical.py``) and, for the
Jacobian, ``J J^T`` against the kernel. The subprocess inherits ``GBOUNDS_TEST_X64``: the default
tier checks float64 with x64 on and float32 with x64 off (the float32 run with x64 on is slow
tier: each subprocess compiles the engine for 4 devices).
"""

from __future__ import annotations

import functools
import json
import os
import pathlib
import subprocess
import sys
from typing import Any

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEVICES = 4
TOL = {"float32": 1e-6, "float64": 1e-12}


def _rel(a, b) -> float:
  import numpy as np
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


def _any(value: Any) -> Any:
  """``value`` typed ``Any``: a wrong argument on purpose."""
  return value


def _worker(which: str) -> dict:  # runs in the subprocess, with 4 forced CPU devices
  import jax
  x64 = os.environ.get("GBOUNDS_TEST_X64", "1") != "0"
  jax.config.update("jax_enable_x64", x64)
  jax.config.update("jax_numpy_dtype_promotion", "strict")
  jax.config.update("jax_numpy_rank_promotion", "raise")
  import jax.numpy as jnp
  import numpy as np

  import gbounds
  from gbounds import ntk

  assert jax.device_count() == DEVICES, jax.devices()
  out: dict = {"devices": jax.device_count()}
  one = ntk.row_mesh(jax.devices()[:1])
  for dtype in [which]:  # one dtype per subprocess
    x = jax.random.normal(jax.random.key(0), (10, 5), dtype)   # 10 k = 20 rows: 5 per device
    x2 = jax.random.normal(jax.random.key(1), (6, 5), dtype)
    xt = jax.random.normal(jax.random.key(2), (8, 5), dtype)   # TRACE: 8 rows, 2 per device
    m = gbounds.as_model_fn(gbounds.models.MLP((8,), 2, activation="tanh", param_dtype=dtype),
                            example_input=x, key=0)
    f, p = m.apply_fn, ntk.cast_tree(m.params, dtype)
    res: dict = {}
    sym = ntk.sharded_ntk_fn(f, chunk_size=3)(x, None, p)
    ref_sym = ntk.empirical_ntk_fn(f)(x, None, p)
    res["kernel_sym"] = _rel(sym, ref_sym)
    res["kernel_sym_sharded"] = ntk.is_row_sharded(sym)
    res["kernel_sym_shards"] = sorted(s.data.shape[0] for s in sym.addressable_shards)
    cross = ntk.sharded_ntk_fn(f)(x, x2, p)
    res["kernel_cross"] = _rel(cross, ntk.empirical_ntk_fn(f)(x, x2, p))
    res["kernel_cross_sharded"] = ntk.is_row_sharded(cross)
    res["kernel_cross_shape"] = list(cross.shape)
    tr = ntk.sharded_ntk_fn(f, output="trace")(xt, x2, p)
    res["kernel_trace"] = _rel(tr, ntk.empirical_ntk_fn(f, output="trace")(xt, x2, p))
    res["kernel_trace_sharded"] = ntk.is_row_sharded(tr)
    single = ntk.sharded_ntk_fn(f, mesh=one)(x, None, p)
    res["kernel_one_device"] = _rel(single, ref_sym)
    res["kernel_one_device_devices"] = len(single.sharding.device_set)
    jac = ntk.sharded_jacobian_fn(f, chunk_size=4)(p, x)
    jref = ntk.jacobian_fn(f)(p, x)
    res["jacobian"] = _rel(jac, jref)
    res["jacobian_sharded"] = ntk.is_row_sharded(jac)
    res["jacobian_gram_vs_kernel"] = _rel(np.asarray(jref) @ np.asarray(jref).T, ref_sym)
    res["kernel_dtype"] = str(sym.dtype)
    # the dynamics consume the sharded kernel as is (XLA's sharding propagation)
    y = jax.random.normal(jax.random.key(3), (10, 2), dtype)
    f0 = f(p, x)
    kw: dict[str, Any] = dict(learning_rate=0.5 / float(jnp.max(jnp.abs(ref_sym))), t=50.0, weight_decay=0.1)
    got = ntk.gradient_descent_mse(sym, y, f0, **kw)
    want = ntk.gradient_descent_mse(ref_sym, y, f0, **kw)
    res["gd_mse_train"] = _rel(got.train, want.train)
    out[dtype] = res
  errors: dict = {}
  for name, call in {
      "rows": lambda: ntk.sharded_ntk_fn(f)(x[:3], None, p),
      "mesh": lambda: ntk.sharded_ntk_fn(f, mesh=_any("cpu"))(x, None, p),
      "x1": lambda: ntk.sharded_ntk_fn(f)(x[0], None, p),
      "chunk": lambda: ntk.sharded_jacobian_fn(f, chunk_size=0),
  }.items():
    try:
      call()
      errors[name] = None
    except gbounds.InvalidInputError as e:
      errors[name] = str(e)
  out["errors"] = errors
  return out


@functools.lru_cache(maxsize=2)
def _results(dtype: str) -> dict:
  env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={DEVICES}",
             JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, __file__, dtype], cwd=ROOT, env=env,
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-4000:]
  return json.loads(proc.stdout.strip().splitlines()[-1])


X64 = os.environ.get("GBOUNDS_TEST_X64", "1") != "0"
DEFAULT = "float64" if X64 else "float32"
# one subprocess per dtype; with x64 on, float32 (the default of the x64-off run) is slow tier
DTYPES = ([pytest.param("float32", marks=pytest.mark.slow), "float64"] if X64 else ["float32"])


def test_worker_saw_four_devices():
  assert _results(DEFAULT)["devices"] == DEVICES


@pytest.mark.parametrize("dtype", DTYPES)
def test_kernels_match_one_device_and_are_sharded(dtype):
  r = _results(dtype)[dtype]
  for name in ("kernel_sym", "kernel_cross", "kernel_one_device"):
    assert r[name] <= TOL[dtype], (name, r[name])
  assert r["kernel_sym_sharded"] and r["kernel_cross_sharded"]
  assert r["kernel_sym_shards"] == [5, 5, 5, 5]  # 20 rows, one band of 5 per device
  assert r["kernel_cross_shape"] == [20, 12]
  assert r["kernel_one_device_devices"] == 1
  assert r["kernel_dtype"] == dtype


@pytest.mark.parametrize("dtype", DTYPES)
def test_jacobian_matches_one_device_and_is_sharded(dtype):
  r = _results(dtype)[dtype]
  assert r["jacobian"] <= TOL[dtype]
  assert r["jacobian_sharded"]
  assert r["jacobian_gram_vs_kernel"] <= 10 * TOL[dtype]


@pytest.mark.parametrize("dtype", DTYPES)
def test_dynamics_accept_the_sharded_kernel(dtype):
  r = _results(dtype)[dtype]
  # float32: the eigendecomposition amplifies the kernel's last-bit differences a little
  tol = {"float32": 1e-5, "float64": 1e-11}[dtype]
  assert r["gd_mse_train"] <= tol


@pytest.mark.parametrize("dtype", DTYPES)
def test_trace_kernel_matches_one_device_and_is_sharded(dtype):
  r = _results(dtype)[dtype]
  assert r["kernel_trace"] <= TOL[dtype]
  assert r["kernel_trace_sharded"]


def test_bad_input_names_the_argument():
  e = _results(DEFAULT)["errors"]
  assert e["rows"] is not None and e["rows"].startswith("x1:") and "divisible by the 4" in e["rows"]
  assert e["mesh"] is not None and e["mesh"].startswith("mesh:")
  assert e["x1"] is not None and e["x1"].startswith("x1:")
  assert e["chunk"] is not None and e["chunk"].startswith("chunk_size:")


def test_is_row_sharded_can_say_no():
  import jax.numpy as jnp
  import numpy as np

  from gbounds import ntk
  assert not ntk.is_row_sharded(np.zeros((4, 4)))
  mesh = ntk.row_mesh()
  assert ntk.is_row_sharded(jnp.zeros((4, 4)), mesh)  # one device here: its single band


if __name__ == "__main__":
  print(json.dumps(_worker(sys.argv[1])))
