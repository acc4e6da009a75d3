"""neural-tangents 0.6.5 reference computations, run INSIDE the pinned environment `.venv-nt`.

Created by `scripts/nt_env.sh` (jax 0.4.30, flax 0.8.5, neural-tangents installed with --no-deps).
This file must not import gbounds: it is the independent side of the parity test
(`tests/ntk/test_nt_parity.py`) and of the benchmark (`benchmarks/bench_ntk.py`).

The model is rebuilt here from plain `jax.lax` primitives (not from gbounds' Flax modules) and
takes the same parameter pytree as gbounds' Linen `MLP` / `CNN`:

* MLP: flatten; per hidden layer `x @ kernel + bias`, activation; `head`.
* CNN: per stage a NHWC/HWIO convolution (stride, symmetric integer padding or 'SAME'/'VALID')
  plus bias, activation; flatten (NHWC order); dense hidden layers; `head`.

Usage:
  python scripts/nt_reference.py --selfcheck
  python scripts/nt_reference.py IN.npz OUT        # IN has `spec` (a JSON string) and arrays

`spec["mode"]`:

* "parity": IN holds `x_train`, optionally `x_test`, parameters as `param/<layer>/<name>`, and
  optionally `y_train` (n, k) with `k_train_train` (n, n, k, k), `k_test_train`, `f0_train`,
  `f0_test` for the predictions (if the kernels are absent the reference's own Jacobian-contraction
  kernel is used, and if f0 is absent the reference model's outputs). OUT (an .npz) receives
  `f_train`, `f_test`; for each implementation name I in `spec["implementations"]`:
  `ntk_train_train/I` (n, n, k, k) and `ntk_test_train/I` (m, n, k, k) with `trace_axes=()`, and
  `ntk_trace_train_train/I` (n, n), the default `trace_axes=(-1,)` kernel (mean over outputs);
  and, with `y_train`, `fx_train_t` (T, n, k) and `fx_test_t` (T, m, k) from
  `nt.predict.gradient_descent_mse(k, y_train, learning_rate, trace_axes=())` at
  `spec["t"]` (a list; `null` means t = infinity, computed by nt's Cholesky path).
* "bench": IN holds `x` and the parameters; OUT (a JSON file) receives, for
  `spec["implementation"]`, the compile+first-run time and `spec["repeats"]` timings of the full
  (n, n, k, k) kernel `ntk_fn(x, None, params)`, jitted; with `spec["batch_size"]` the kernel is
  computed through `nt.batch(ntk_fn, batch_size)` (nt's chunking over inputs). An allocation
  failure is reported as status "OOM".
"""

import json
import sys
import time
import types

# neural_tangents/__init__.py imports `experimental`, which imports TensorFlow and tf2jax; neither
# is installed (nor needed for the empirical kernels and `predict`). A stub keeps it from loading.
sys.modules.setdefault("neural_tangents.experimental",
                       types.ModuleType("neural_tangents.experimental"))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import neural_tangents as nt  # noqa: E402
import numpy as np  # noqa: E402

_ACTIVATIONS = {
    "relu": jax.nn.relu, "tanh": jnp.tanh, "gelu": jax.nn.gelu, "erf": jax.scipy.special.erf,
    "identity": lambda x: x,
}


def _dense(p, x):
  return x @ p["kernel"] + p["bias"]


def _conv(p, x, stride, padding):
  pad = padding if isinstance(padding, str) else [(padding, padding), (padding, padding)]
  y = jax.lax.conv_general_dilated(x, p["kernel"], window_strides=(stride, stride), padding=pad,
                                   dimension_numbers=("NHWC", "HWIO", "NHWC"))
  return y + p["bias"]


def make_apply_fn(model):
  """`apply_fn(params, x) -> (n, k)` for a model spec (see the module docstring)."""
  act = _ACTIVATIONS[model.get("activation", "relu")]
  kind = model["kind"]
  if kind == "mlp":
    hidden = list(model["hidden"])

    def apply_fn(params, x):
      x = x.reshape((x.shape[0], -1))
      for i in range(len(hidden)):
        x = act(_dense(params[f"dense{i}"], x))
      return _dense(params["head"], x)
  elif kind == "cnn":
    stages = [tuple(s) for s in model["stages"]]  # (channels, kernel, stride, padding)
    dense = list(model["dense"])

    def apply_fn(params, x):
      for i, (_, _, stride, padding) in enumerate(stages):
        x = act(_conv(params[f"conv{i}"], x, stride, padding))
      x = x.reshape((x.shape[0], -1))
      for i in range(len(dense)):
        x = act(_dense(params[f"dense{i}"], x))
      return _dense(params["head"], x)
  else:
    raise ValueError(f"model kind: expected 'mlp' or 'cnn', got {kind!r} instead.")
  return apply_fn


def unflatten_params(arrays):
  """`{"param/<layer>/<name>": array}` -> `{layer: {name: jnp.array}}`."""
  params = {}
  for key, value in arrays.items():
    if key.startswith("param/"):
      _, layer, name = key.split("/")
      params.setdefault(layer, {})[name] = jnp.asarray(value)
  return params


def _implementation(name):
  return getattr(nt.NtkImplementation, name)


def parity(spec, arrays):
  params = unflatten_params(arrays)
  apply_fn = make_apply_fn(spec["model"])
  x_train = jnp.asarray(arrays["x_train"])
  x_test = jnp.asarray(arrays["x_test"]) if "x_test" in arrays else None
  out = {"f_train": np.asarray(apply_fn(params, x_train))}
  if x_test is not None:
    out["f_test"] = np.asarray(apply_fn(params, x_test))
  for name in spec["implementations"]:
    full = jax.jit(nt.empirical_ntk_fn(apply_fn, trace_axes=(), vmap_axes=0,
                                       implementation=_implementation(name)))
    traced = jax.jit(nt.empirical_ntk_fn(apply_fn, vmap_axes=0,
                                         implementation=_implementation(name)))
    out[f"ntk_train_train/{name}"] = np.asarray(full(x_train, None, params))
    out[f"ntk_trace_train_train/{name}"] = np.asarray(traced(x_train, None, params))
    if x_test is not None:
      out[f"ntk_test_train/{name}"] = np.asarray(full(x_test, x_train, params))
  if "y_train" in arrays:
    y_train = jnp.asarray(arrays["y_train"])
    k_tt = jnp.asarray(arrays.get("k_train_train", out["ntk_train_train/JACOBIAN_CONTRACTION"]))
    k_st = arrays.get("k_test_train", out.get("ntk_test_train/JACOBIAN_CONTRACTION"))
    f0_train = jnp.asarray(arrays.get("f0_train", out["f_train"]))
    f0_test = arrays.get("f0_test", out.get("f_test"))
    predict_fn = nt.predict.gradient_descent_mse(k_tt, y_train,
                                                 learning_rate=float(spec["learning_rate"]),
                                                 trace_axes=())
    fx_train, fx_test = [], []
    for t in spec["t"]:
      if f0_test is None:
        tr = predict_fn(t, f0_train)
        te = None
      else:
        tr, te = predict_fn(t, f0_train, jnp.asarray(f0_test), jnp.asarray(k_st))
      fx_train.append(np.asarray(tr))
      if te is not None:
        fx_test.append(np.asarray(te))
    out["fx_train_t"] = np.stack(fx_train)
    if fx_test:
      out["fx_test_t"] = np.stack(fx_test)
  return out


def _is_oom(err):
  text = f"{type(err).__name__}: {err}"
  return any(s in text for s in ("RESOURCE_EXHAUSTED", "Out of memory", "out of memory",
                                 "MemoryError", "Failed to allocate", "bad_alloc"))


def bench(spec, arrays):
  params = unflatten_params(arrays)
  apply_fn = make_apply_fn(spec["model"])
  x = jnp.asarray(arrays["x"])
  name = spec["implementation"]
  kernel_fn = nt.empirical_ntk_fn(apply_fn, trace_axes=(), vmap_axes=0,
                                  implementation=_implementation(name))
  batch_size = spec.get("batch_size")
  if batch_size:
    kernel_fn = nt.batch(kernel_fn, batch_size=int(batch_size), device_count=0)
  else:
    kernel_fn = jax.jit(kernel_fn)
  result = {"implementation": name, "n": int(x.shape[0]), "batch_size": batch_size,
            "backend": jax.default_backend(), "jax": jax.__version__, "nt": nt.__version__}
  try:
    start = time.perf_counter()
    k = jax.block_until_ready(kernel_fn(x, None, params))
    result["first_s"] = time.perf_counter() - start
    result["shape"] = list(k.shape)
    result["trace"] = float(jnp.einsum("iicc->", k))  # sum of the diagonal, to compare
    del k
    times = []
    for _ in range(int(spec.get("repeats", 3))):
      start = time.perf_counter()
      jax.block_until_ready(kernel_fn(x, None, params))
      times.append(time.perf_counter() - start)
    result["times_s"] = times
    result["status"] = "ok"
  except Exception as err:  # noqa: BLE001 -- report, do not crash the benchmark driver
    result["status"] = "OOM" if _is_oom(err) else "error"
    result["error"] = f"{type(err).__name__}: {str(err)[:500]}"
  return result


def selfcheck():
  assert "tensorflow" not in sys.modules, "TensorFlow was imported"
  model = {"kind": "mlp", "hidden": [3]}
  rng = np.random.default_rng(0)
  params = {"dense0": {"kernel": jnp.asarray(rng.normal(size=(4, 3)), jnp.float32),
                       "bias": jnp.zeros(3, jnp.float32)},
            "head": {"kernel": jnp.asarray(rng.normal(size=(3, 2)), jnp.float32),
                     "bias": jnp.zeros(2, jnp.float32)}}
  x = jnp.asarray(rng.normal(size=(5, 4)), jnp.float32)
  apply_fn = make_apply_fn(model)
  kernels = [nt.empirical_ntk_fn(apply_fn, trace_axes=(), vmap_axes=0,
                                 implementation=_implementation(name))(x, None, params)
             for name in ("JACOBIAN_CONTRACTION", "NTK_VECTOR_PRODUCTS")]
  err = float(jnp.max(jnp.abs(kernels[0] - kernels[1])) / jnp.max(jnp.abs(kernels[0])))
  assert kernels[0].shape == (5, 5, 2, 2) and err < 1e-5, (kernels[0].shape, err)
  import flax  # noqa: PLC0415 -- pinned in the environment; check that it imports
  import flax.linen  # noqa: F401, PLC0415
  print(f"nt_reference selfcheck ok: jax {jax.__version__}, neural-tangents {nt.__version__}, "
        f"flax {flax.__version__}, numpy {np.__version__}, no TensorFlow")


def main(argv):
  if argv == ["--selfcheck"]:
    selfcheck()
    return 0
  if len(argv) != 2:
    print(__doc__, file=sys.stderr)
    return 2
  with np.load(argv[0]) as data:
    arrays = {k: data[k] for k in data.files}
  spec = json.loads(str(arrays.pop("spec")))
  if spec["mode"] == "parity":
    np.savez(argv[1], **parity(spec, arrays))
  elif spec["mode"] == "bench":
    with open(argv[1], "w") as f:
      json.dump(bench(spec, arrays), f, indent=1)
  else:
    raise ValueError(f"spec['mode']: expected 'parity' or 'bench', got {spec['mode']!r} instead.")
  return 0


if __name__ == "__main__":
  sys.exit(main(sys.argv[1:]))
