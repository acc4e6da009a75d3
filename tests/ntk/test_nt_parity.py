"""Parity of gbounds' NTK engine and linearized dynamics with neural-tangents 0.6.5 (float32).

neural-tangents does not import on our JAX, so it runs in its own pinned environment `.venv-nt`
(created by `scripts/nt_env.sh`: jax 0.4.30, flax 0.8.5, neural-tangents --no-deps, no
TensorFlow) through `scripts/nt_reference.py`, which rebuilds the network from `jax.lax`
primitives and receives the very parameters of our Linen `MLP` / `CNN` as arrays.

Compared, with the relative error ``max |ours - nt| / max |nt|`` below 1e-5:

* the full kernel (nt's ``trace_axes=()``, ``(n1, n2, k, k)`` -> transposed ``(0, 2, 1, 3)`` and
  reshaped to our sample-major ``(n1 k, n2 k)``), train-train (symmetric path) and test-train,
  for both implementations, unchunked and chunked;
* the traced kernel (nt's default ``trace_axes=(-1,)``, the mean over outputs);
* ``gradient_descent_mse`` train and test predictions for continuous time, fed the same kernel:
  nt's mean loss with ``learning_rate=eta_nt`` is our summed loss with ``eta_nt / N``,
  ``N = y_train.size``.

The environment is created on first use (about 1.5 minutes, PyPI needed); if that is impossible the
tests are skipped with the installer's message, except under CI (``CI`` set), where they fail.
"""

import json
import os
import pathlib
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gbounds

pytestmark = pytest.mark.slow

ROOT = pathlib.Path(__file__).resolve().parents[2]
NT_PYTHON = ROOT / ".venv-nt" / "bin" / "python"
IMPLEMENTATIONS = ("JACOBIAN_CONTRACTION", "NTK_VECTOR_PRODUCTS")
RTOL = 1e-5
N_TRAIN, N_TEST, CHUNK = 32, 12, 12


def _rel_err(ours, ref):
  ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
  assert ours.shape == ref.shape, (ours.shape, ref.shape)
  return float(np.max(np.abs(ours - ref)) / np.max(np.abs(ref)))


def _sample_major(k4):
  """nt's ``(n1, n2, k, k)`` -> ``(n1 k, n2 k)``."""
  n1, n2, k, _ = k4.shape
  return np.transpose(k4, (0, 2, 1, 3)).reshape(n1 * k, n2 * k)


@pytest.fixture(scope="module")
def nt_env():
  proc = subprocess.run(["bash", str(ROOT / "scripts" / "nt_env.sh")], cwd=ROOT,
                        capture_output=True, text=True)
  if proc.returncode != 0:
    reason = ("scripts/nt_env.sh could not create the neural-tangents environment .venv-nt: "
              + (proc.stderr or proc.stdout)[-2000:])
    if os.environ.get("CI"):
      pytest.fail(reason)
    pytest.skip(reason)
  return NT_PYTHON


def _run_reference(nt_python, tmp_path, spec, arrays):
  src, dst = tmp_path / "in.npz", tmp_path / "out.npz"
  np.savez(src, spec=json.dumps(spec), **arrays)
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env.pop("JAX_ENABLE_X64", None)
  proc = subprocess.run([str(nt_python), str(ROOT / "scripts" / "nt_reference.py"), str(src),
                         str(dst)], cwd=ROOT, capture_output=True, text=True, env=env)
  assert proc.returncode == 0, f"nt_reference.py failed:\n{proc.stderr[-4000:]}"
  with np.load(dst) as out:
    return {k: out[k] for k in out.files}


def _flat_params(params):
  return {f"param/{layer}/{name}": np.asarray(v, np.float32)
          for layer, leaves in params.items() for name, v in leaves.items()}


MODELS = {
    # (gbounds module, reference spec)
    "mlp": (gbounds.models.MLP(hidden=(256, 128), out=2, activation="tanh"),
            {"kind": "mlp", "hidden": [256, 128], "activation": "tanh"}),
    "cnn": (gbounds.models.CNN(out=2, activation="relu"),
            {"kind": "cnn", "activation": "relu", "dense": [128],
             "stages": [[s.channels, s.kernel, s.stride, s.padding]
                        for s in gbounds.models.CNN().stages]}),
}


@pytest.fixture(scope="module", params=sorted(MODELS))
def case(request, nt_env, data_root, tmp_path_factory):
  """Our model, data and kernels, and the reference's outputs for the same parameters."""
  module, model_spec = MODELS[request.param]
  x, y = gbounds.data.binary_task(*gbounds.data.load_mnist("test", data_dir=data_root))
  rng = np.random.default_rng(0)
  idx = rng.choice(len(y), N_TRAIN + N_TEST, replace=False)
  x_train, x_test = x[idx[:N_TRAIN]], x[idx[N_TRAIN:]]
  y_train = gbounds.data.one_hot(y[idx[:N_TRAIN]], 2) - 0.5
  mf = gbounds.as_model_fn(module, example_input=jnp.asarray(x_train[:1]), key=0)
  apply_fn, params = mf.apply_fn, mf.params
  # Flax initialises biases at zero; perturb every leaf so that no gradient is trivially zero.
  leaves, treedef = jax.tree_util.tree_flatten(params)
  keys = jax.random.split(jax.random.key(1), len(leaves))
  params = jax.tree_util.tree_unflatten(treedef, [
      (leaf + 0.1 * jax.random.normal(k, leaf.shape, jnp.float32)).astype(jnp.float32)
      for leaf, k in zip(leaves, keys)])

  ours = {"f_train": np.asarray(apply_fn(params, x_train)),
          "f_test": np.asarray(apply_fn(params, x_test))}
  for name in IMPLEMENTATIONS:
    for chunk in (None, CHUNK):
      full = gbounds.ntk.empirical_ntk_fn(apply_fn, implementation=name, chunk_size=chunk)
      trace = gbounds.ntk.empirical_ntk_fn(apply_fn, implementation=name, output="TRACE",
                                       chunk_size=chunk)
      ours[name, chunk, "train"] = np.asarray(full(x_train, None, params))
      ours[name, chunk, "test"] = np.asarray(full(x_test, x_train, params))
      ours[name, chunk, "trace"] = np.asarray(trace(x_train, None, params))
  theta = ours["JACOBIAN_CONTRACTION", None, "train"]
  theta_test = ours["JACOBIAN_CONTRACTION", None, "test"]
  k = y_train.shape[1]

  # Times spanning the spectrum: nt's exponent is mu * eta_nt * t / N.
  n_out = y_train.size
  mu = np.linalg.eigvalsh(theta.astype(np.float64))
  eta_nt = 1.0
  times = [0.0] + [float(c * n_out / (eta_nt * mu[-1])) for c in (0.3, 3.0, 30.0, 300.0)]

  spec = {"mode": "parity", "model": model_spec, "implementations": list(IMPLEMENTATIONS),
          "learning_rate": eta_nt, "t": times}
  arrays = {"x_train": x_train, "x_test": x_test, "y_train": y_train,
            "k_train_train": theta.reshape(N_TRAIN, k, N_TRAIN, k).transpose(0, 2, 1, 3),
            "k_test_train": theta_test.reshape(N_TEST, k, N_TRAIN, k).transpose(0, 2, 1, 3),
            "f0_train": ours["f_train"], "f0_test": ours["f_test"], **_flat_params(params)}
  ref = _run_reference(nt_env, tmp_path_factory.mktemp(request.param), spec, arrays)
  return dict(name=request.param, ours=ours, ref=ref, times=times, eta=eta_nt / n_out,
              theta=theta, theta_test=theta_test, y_train=y_train, apply_fn=apply_fn,
              params=params, x_train=x_train)


def test_same_network(case):
  """The reference's lax rebuild computes the same function as our Linen module."""
  assert _rel_err(case["ours"]["f_train"], case["ref"]["f_train"]) < RTOL
  assert _rel_err(case["ours"]["f_test"], case["ref"]["f_test"]) < RTOL


@pytest.mark.parametrize("chunk", [None, CHUNK])
@pytest.mark.parametrize("ref_impl", IMPLEMENTATIONS)
@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_full_kernel(case, impl, ref_impl, chunk):
  ours, ref = case["ours"], case["ref"]
  err_train = _rel_err(ours[impl, chunk, "train"],
                       _sample_major(ref[f"ntk_train_train/{ref_impl}"]))
  err_test = _rel_err(ours[impl, chunk, "test"], _sample_major(ref[f"ntk_test_train/{ref_impl}"]))
  assert err_train < RTOL and err_test < RTOL, (err_train, err_test)


@pytest.mark.parametrize("chunk", [None, CHUNK])
@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_trace_kernel(case, impl, chunk):
  err = _rel_err(case["ours"][impl, chunk, "trace"],
                 case["ref"][f"ntk_trace_train_train/{impl}"])
  assert err < RTOL, err


def test_reference_kernel_shape(case):
  k = case["y_train"].shape[1]
  assert case["ref"]["ntk_train_train/JACOBIAN_CONTRACTION"].shape == (N_TRAIN, N_TRAIN, k, k)
  assert case["ref"]["ntk_test_train/JACOBIAN_CONTRACTION"].shape == (N_TEST, N_TRAIN, k, k)


@pytest.mark.parametrize("jit", [False, True])
def test_gradient_descent_mse(case, jit):
  """Continuous-time predictions with nt's learning rate converted to our summed loss."""
  def predict(theta, y, f0, theta_test, f0_test, t):
    return gbounds.ntk.gradient_descent_mse(theta, y, f0, learning_rate=case["eta"], t=t,
                                        time=gbounds.ntk.Time.CONTINUOUS,
                                        theta_test_train=theta_test, f0_test=f0_test)
  if jit:
    predict = jax.jit(predict)
  ref_train, ref_test = case["ref"]["fx_train_t"], case["ref"]["fx_test_t"]
  assert ref_train.shape == (len(case["times"]), *case["y_train"].shape)
  moved = 0.0
  for i, t in enumerate(case["times"]):
    out = predict(jnp.asarray(case["theta"]), jnp.asarray(case["y_train"], jnp.float32),
                  jnp.asarray(case["ours"]["f_train"]), jnp.asarray(case["theta_test"]),
                  jnp.asarray(case["ours"]["f_test"]), jnp.float32(t))
    assert out.train.dtype == jnp.float32
    err_train = _rel_err(out.train, ref_train[i])
    err_test = _rel_err(out.test, ref_test[i])
    assert err_train < RTOL and err_test < RTOL, (t, err_train, err_test)
    moved = max(moved, _rel_err(case["ours"]["f_train"], ref_train[i]))
  assert moved > 0.1  # the times chosen do train the model


if __name__ == "__main__":
  sys.exit(pytest.main([__file__, "-m", "slow", "-q", "-p", "no:xdist"]))
