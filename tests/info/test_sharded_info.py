"""Leave-one-out and information in the weights from kernels sharded over 4 devices.

As in ``tests/ntk/test_sharded.py``: a subprocess per dtype with
``XLA_FLAGS=--xla_force_host_platform_device_count=4`` (set before JAX is imported) computes
every check and prints JSON (a fuller one for the slow tier; float64 in the default tier with
x64 on, float32 with x64 off). References: the same functions on one device with the
one-device kernels, and for the information in the weights also the dense ``d x d`` route (an independent
computation of the same eigenvalues). The subprocess inherits ``GBOUNDS_TEST_X64``.
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


def _worker(which: str, full: bool) -> dict:  # the subprocess: 4 forced CPU devices
  import jax
  x64 = os.environ.get("GBOUNDS_TEST_X64", "1") != "0"
  jax.config.update("jax_enable_x64", x64)
  jax.config.update("jax_numpy_dtype_promotion", "strict")
  jax.config.update("jax_numpy_rank_promotion", "raise")
  import jax.numpy as jnp

  import gbounds
  from gbounds import info, ntk

  assert jax.device_count() == DEVICES, jax.devices()
  mesh = ntk.row_mesh()
  out: dict = {"devices": jax.device_count(), "dtypes": [which]}
  for dtype in out["dtypes"]:
    res: dict = {}
    x = jax.random.normal(jax.random.key(0), (8, 5), dtype)   # n k = 16 rows, 4 per device
    xv = jax.random.normal(jax.random.key(1), (6, 5), dtype)  # m k = 12 rows, 3 per device
    y = jax.random.normal(jax.random.key(2), (8, 2), dtype)
    m = gbounds.as_model_fn(gbounds.models.MLP((8,), 2, activation="tanh", param_dtype=dtype),
                            example_input=x, key=0)
    f, p = m.apply_fn, ntk.cast_tree(m.params, dtype)
    theta = ntk.sharded_ntk_fn(f, mesh=mesh)(x, None, p)
    theta_v = ntk.sharded_ntk_fn(f, mesh=mesh)(xv, x, p)
    ref = ntk.empirical_ntk_fn(f)(x, None, p)
    ref_v = ntk.empirical_ntk_fn(f)(xv, x, p)
    res["inputs_sharded"] = ntk.is_row_sharded(theta, mesh) and ntk.is_row_sharded(theta_v, mesh)
    r0 = jnp.ravel(f(p, x) - y)
    kw: dict[str, Any] = dict(num_outputs=2, learning_rate=0.5 / float(jnp.max(jnp.abs(ref))), t=30.0,
              weight_decay=0.1)
    got, want = info.leave_one_out(theta, r0, **kw), info.leave_one_out(ref, r0, **kw)
    res["loo_coefficients"] = _rel(got.loo_coefficients, want.loo_coefficients)
    res["coefficients"] = _rel(got.coefficients, want.coefficients)
    got = info.sample_information_from_kernels(theta, r0, theta_heldout_train=theta_v, **kw)
    want = info.sample_information_from_kernels(ref, r0, theta_heldout_train=ref_v, **kw)
    res["si"] = _rel(got.si, want.si)
    res["fsi"] = _rel(got.fsi, want.fsi)
    if full and dtype == out["dtypes"][-1]:  # the model-level entry's mesh option: one dtype
      skw: dict[str, Any] = dict(learning_rate=kw["learning_rate"], t=30.0, weight_decay=0.1, x_heldout=xv)
      got = info.sample_information(f, p, x, y, mesh=mesh, **skw)
      want = info.sample_information(f, p, x, y, **skw)
      out["si_model"] = _rel(got.si, want.si)
      out["fsi_model"] = _rel(got.fsi, want.fsi)
    # Fisher: three layers with d_l = 96, 68, 15 and n m = 8 * 3 = 24 < d: the kernel route,
    # with Grams for the first two layers and a d_l x d_l block for the last
    c = gbounds.as_model_fn(gbounds.models.MLP((16, 4), 3, activation="tanh", param_dtype=dtype),
                            example_input=x, key=1)
    g, q = c.apply_fn, ntk.cast_tree(c.params, dtype)
    gram = info.fisher_gram(g, q, x, mesh=mesh)
    res["gram"] = _rel(gram, info.fisher_gram(g, q, x))
    res["gram_sharded"] = ntk.is_row_sharded(gram, mesh)
    if full and dtype == out["dtypes"][-1]:  # per-chunk label draws, fold_in(key, j)
      key = jax.random.key(5)
      sampled = info.fisher_gram(g, q, x, fisher="sampled", key=key, num_samples=2,
                                 chunk_size=4, scaling="mean", mesh=mesh)
      out["gram_sampled"] = _rel(sampled, info.fisher_gram(
          g, q, x, fisher="sampled", key=key, num_samples=2, chunk_size=4, scaling="mean"))
    # prior_scale 3: the curvature terms, not the norm term, dominate the information
    wkw: dict[str, Any] = dict(beta=1.0, prior_scale=3.0, form="exact")
    w_sh = info.information_in_weights(g, q, x, mesh=mesh, **wkw)
    w_one = info.information_in_weights(g, q, x, **wkw)
    refs = [("", w_one)]
    if full and dtype == out["dtypes"][-1]:
      refs.append(("_vs_dense", info.information_in_weights(g, q, x, exact_route="dense", **wkw)))
    for name, ref_w in refs:
      res["weight_info" + name] = max(
          _rel(getattr(w_sh, f), getattr(ref_w, f)) for f in ("total", "log_det", "trace_term"))
      res["weight_info_layers" + name] = max(
          _rel(w_sh.per_layer[k] - w_sh.norm_term, ref_w.per_layer[k] - ref_w.norm_term)
          for k in w_one.per_layer)
    res["num_layers"] = len(w_one.per_layer)
    res["log_det_share"] = float(w_sh.log_det / w_sh.total)
    out[dtype] = res
  errors: dict = {}
  for name, call in {
      "form": lambda: info.information_in_weights(g, q, x, beta=1.0, prior_scale=0.5,
                                                  form="diagonal", mesh=mesh),
      "rows": lambda: info.fisher_gram(g, q, x[:3], mesh=mesh),
      "mesh": lambda: info.fisher_gram(g, q, x, mesh=_any(4)),
  }.items():
    try:
      call()
      errors[name] = None
    except gbounds.InvalidInputError as e:
      errors[name] = str(e)
  out["errors"] = errors
  return out


@functools.lru_cache(maxsize=4)
def _results(dtype: str, full: bool = False) -> dict:
  """The checks in ``dtype`` (``full``: also the slow tier's: the model-level
  ``sample_information``, the sampled Fisher and the dense route)."""
  env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={DEVICES}",
             JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, __file__, dtype] + (["--full"] if full else []),
                        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-4000:]
  return json.loads(proc.stdout.strip().splitlines()[-1])


X64 = os.environ.get("GBOUNDS_TEST_X64", "1") != "0"
DEFAULT = "float64" if X64 else "float32"
# one subprocess per dtype; with x64 on, float32 (the default of the x64-off run) is slow tier
DTYPES = ([pytest.param("float32", marks=pytest.mark.slow), "float64"] if X64 else ["float32"])


@pytest.mark.parametrize("dtype", DTYPES)
def test_leave_one_out_accepts_sharded_kernels(dtype):
  r = _results(dtype)[dtype]
  assert r["inputs_sharded"]
  for name in ("loo_coefficients", "coefficients", "si", "fsi"):
    assert r[name] <= TOL[dtype], (name, r[name])


@pytest.mark.slow
def test_sample_information_with_a_mesh():
  r = _results(DEFAULT, full=True)
  tol = TOL[r["dtypes"][-1]]
  assert r["si_model"] <= tol and r["fsi_model"] <= tol


@pytest.mark.parametrize("dtype", DTYPES)
def test_fisher_gram_matches_one_device_and_is_sharded(dtype):
  r = _results(dtype)[dtype]
  assert r["gram_sharded"]
  assert r["gram"] <= TOL[dtype]


@pytest.mark.slow
def test_sampled_fisher_gram_draws_the_same_labels():
  r = _results(DEFAULT, full=True)
  assert r["gram_sampled"] <= TOL[r["dtypes"][-1]]


@pytest.mark.parametrize("dtype", DTYPES)
def test_weight_information_from_the_sharded_grams(dtype):
  r = _results(dtype)[dtype]
  assert r["num_layers"] == 3
  assert r["log_det_share"] > 0.5  # the curvature, not the weights' norm, is being compared
  assert r["weight_info"] <= TOL[dtype]
  assert r["weight_info_layers"] <= TOL[dtype]


@pytest.mark.slow
def test_weight_information_agrees_with_the_dense_route():
  # an independent computation: eigenvalues of the d x d Fisher, not of the Gram
  r = _results(DEFAULT, full=True)
  dtype = r["dtypes"][-1]
  tol = {"float32": 1e-4, "float64": 1e-10}[dtype]
  assert r[dtype]["weight_info_vs_dense"] <= tol
  assert r[dtype]["weight_info_layers_vs_dense"] <= tol


def test_bad_input_names_the_argument():
  e = _results(DEFAULT)["errors"]
  assert e["form"] is not None and e["form"].startswith("mesh:")
  assert e["rows"] is not None and e["rows"].startswith("x:") and "divisible" in e["rows"]
  assert e["mesh"] is not None and e["mesh"].startswith("mesh:")


if __name__ == "__main__":
  print(json.dumps(_worker(sys.argv[1], full="--full" in sys.argv)))
