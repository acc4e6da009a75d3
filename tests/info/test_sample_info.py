"""Tests of gbounds.info._sample_info against brute-force retraining of the linearized network.

The references here never use the closed forms: leave-one-out weights come from explicit
gradient descent on the linearized model in weight space (discrete time), from the exact
solution of the linear ODE via ``scipy.linalg.expm`` of an augmented matrix (continuous time),
or from a direct least-squares / linear solve (``t = inf``).
"""

import dataclasses
import functools
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
from flax import linen as nn
from jax.flatten_util import ravel_pytree

import gbounds
from gbounds._src import numerics
from gbounds.info import _sample_info as si
from tests import model_twins

N_TRAIN = 40


class _Tiny(nn.Module):
  width: int
  out: int

  @nn.compact
  def __call__(self, x):
    x = jnp.tanh(nn.Dense(self.width, param_dtype=jnp.float64)(x))
    return nn.Dense(self.out, param_dtype=jnp.float64)(x)


@functools.cache
def _problem(k, width=24, n=N_TRAIN, seed=0):
  rng = np.random.default_rng(seed)
  x = rng.normal(size=(n, 3))
  xv = rng.normal(size=(7, 3))
  y = rng.normal(size=(n, k))
  model = _Tiny(width, k)
  params = model.init(jax.random.key(seed), jnp.asarray(x[:1]))["params"]
  apply_fn = lambda p, xx: model.apply({"params": p}, xx)  # noqa: E731
  flat0, unravel = ravel_pytree(params)
  jac = lambda xx: np.asarray(jax.jit(jax.jacfwd(  # noqa: E731
      lambda w: apply_fn(unravel(w), xx).reshape(-1)))(flat0))
  j, jv = jac(jnp.asarray(x)), jac(jnp.asarray(xv))
  f0 = np.asarray(apply_fn(params, jnp.asarray(x))).reshape(-1)
  return apply_fn, params, x, y, xv, j, jv, f0


def _brute_force_deltas(j, r0, k, *, eta, t, lam, time):
  """``w_-i - w0`` for every i (rows), and ``w - w0`` (last row), by direct retraining."""
  nk, d = j.shape
  n = nk // k
  masks = np.ones((n + 1, nk))
  for i in range(n):
    masks[i, i * k:(i + 1) * k] = 0.0
  out = np.zeros((n + 1, d))
  for row, m in enumerate(masks):
    jm, rm = j * m[:, None], r0 * m
    h = jm.T @ jm + lam * np.eye(d)
    g = jm.T @ rm
    if np.isinf(t):
      if lam > 0:
        out[row] = -np.linalg.solve(h, g)
      else:
        out[row] = -np.linalg.lstsq(jm, rm, rcond=None)[0]
    elif time == "continuous":
      aug = np.zeros((d + 1, d + 1))
      aug[:d, :d] = -eta * h
      aug[:d, d] = -eta * g
      out[row] = (scipy.linalg.expm(aug * t) @ np.r_[np.zeros(d), 1.0])[:d]
    else:
      delta = np.zeros(d)
      for _ in range(int(t)):
        delta = delta - eta * (jm.T @ (jm @ delta + rm) + lam * delta)
      out[row] = delta
  return out[:n], out[n]


def _eta(j, lam):
  return 0.9 / (np.linalg.eigvalsh(j @ j.T)[-1] + lam)


_DEFAULT_TIER = {(1, "discrete", 0.0, 150), (2, "continuous", 0.3, 40.0),
                 (2, "discrete", 0.0, np.inf), (1, "discrete", 0.3, np.inf)}
CASES = [pytest.param(k, time, lam, t,
                      marks=() if (k, time, lam, t) in _DEFAULT_TIER else pytest.mark.slow)
         for k in (1, 2) for lam in (0.0, 0.3)
         for time, t in (("discrete", 150), ("continuous", 40.0), ("discrete", np.inf))]


@pytest.mark.x64  # builds a float64 network or kernel
@pytest.mark.parametrize("k,time,lam,t", CASES)
def test_loo_equals_brute_force_retraining(k, time, lam, t):
  apply_fn, params, x, y, xv, j, jv, f0 = _problem(k)
  eta = _eta(j, lam)
  res = si.sample_information(apply_fn, params, x, y, learning_rate=eta, t=t, weight_decay=lam,
                              time=time, x_heldout=xv, sigma=0.5, fsi_sigma=2.0)
  d_loo, d_full = _brute_force_deltas(j, f0 - y.reshape(-1), k, eta=eta, t=t, lam=lam, time=time)
  dw_ref = d_full[None, :] - d_loo  # w - w_-i
  dw = res.loo_coefficients @ j  # J^T c_i
  scale = np.abs(dw_ref).max()
  np.testing.assert_array_less(np.abs(dw - dw_ref).max() / scale, 1e-8)
  # Weights through the engine's VJP (never forms J).
  tree = si.loo_weight_change(apply_fn, params, x, res.loo_coefficients[:5])
  flat = jax.vmap(lambda p: ravel_pytree(p)[0])(tree)
  np.testing.assert_allclose(flat, dw_ref[:5], rtol=0, atol=1e-8 * scale)
  # Derived per-example quantities.
  sq_ref = np.sum(dw_ref ** 2, axis=1)
  np.testing.assert_allclose(res.weight_change_sq, sq_ref, rtol=1e-8, atol=1e-10 * sq_ref.max())
  np.testing.assert_allclose(res.si, sq_ref / (2 * 0.25), rtol=1e-8, atol=1e-10 * sq_ref.max())
  dv_ref = (dw_ref @ jv.T).reshape(N_TRAIN, len(xv), k)
  dv_scale = np.abs(dv_ref).max()
  np.testing.assert_array_less(np.abs(res.heldout_prediction_change - dv_ref).max() / dv_scale,
                               1e-8)
  dself_ref = np.stack([(j[i * k:(i + 1) * k] @ dw_ref[i]) for i in range(N_TRAIN)])
  np.testing.assert_allclose(res.self_prediction_change, dself_ref, rtol=0,
                             atol=1e-8 * np.abs(dself_ref).max())
  fsi_ref = np.sum(dv_ref ** 2, axis=(1, 2)) / (2 * 4.0 * len(xv))
  np.testing.assert_allclose(res.fsi, fsi_ref, rtol=1e-7, atol=1e-10 * fsi_ref.max())


@pytest.mark.x64  # builds a float64 network or kernel
def test_engine_explicit_trainer_agrees_for_a_few_examples():
  k, lam, t = 2, 0.3, 60
  apply_fn, params, x, y, _, j, _, _ = _problem(k)
  eta = _eta(j, lam)
  res = si.sample_information(apply_fn, params, x, y, learning_rate=eta, t=t, weight_decay=lam)
  full = gbounds.ntk.train_linearized_explicit(apply_fn, params, x, y, learning_rate=eta, t=t,
                                           weight_decay=lam)
  w_full = ravel_pytree(full.params)[0]
  for i in (0, 17):
    keep = np.arange(N_TRAIN) != i
    loo = gbounds.ntk.train_linearized_explicit(apply_fn, params, x[keep], y[keep],
                                            learning_rate=eta, t=t, weight_decay=lam)
    ref = w_full - ravel_pytree(loo.params)[0]
    np.testing.assert_allclose(res.loo_coefficients[i] @ j, ref, rtol=0,
                               atol=1e-8 * np.abs(ref).max())


@pytest.mark.x64  # builds a float64 network or kernel
@pytest.mark.parametrize("k", [1, 2])
def test_methods_agree(k):
  _, _, _, y, _, j, _, f0 = _problem(k)
  theta, r0 = j @ j.T, f0 - y.reshape(-1)
  common = dict(num_outputs=k, learning_rate=_eta(j, 0.2), weight_decay=0.2)
  for t in (70, np.inf):
    ref = si.leave_one_out(theta, r0, t=t, method="eigh", **common).loo_coefficients
    scale = np.abs(ref).max()
    methods = ["lanczos"] + (["downdate"] if np.isinf(t) else [])
    for m in methods:
      c = si.leave_one_out(theta, r0, t=t, method=m, **common).loo_coefficients
      np.testing.assert_array_less(np.abs(c - ref).max() / scale, 1e-9)


@pytest.mark.x64  # builds a float64 network or kernel
def test_fsi_prediction_form_equals_weight_space_form():
  k = 2
  apply_fn, params, x, y, xv, _, _, _ = _problem(k)
  res = si.sample_information(apply_fn, params, x, y, learning_rate=4e-3, t=50, x_heldout=xv)
  dw = si.loo_weight_change(apply_fn, params, x, res.loo_coefficients)
  # Weight-space form: 1/(2 sigma^2 m) Dw^T J_val^T J_val Dw, with J_val Dw by a JVP.
  jvp = jax.vmap(lambda t_: gbounds.ntk.jacobian_vector_product(apply_fn, params, jnp.asarray(xv), t_))
  df = np.asarray(jvp(dw))
  fsi_w = np.sum(df ** 2, axis=(1, 2)) / (2 * 1.0 * len(xv))
  np.testing.assert_allclose(res.fsi, fsi_w, rtol=1e-9)


@pytest.mark.x64  # builds a float64 network or kernel
@pytest.mark.parametrize("time,t", [("discrete", 80), ("discrete", np.inf)])
def test_permutation_invariance(time, t):
  k = 2
  apply_fn, params, x, y, xv, _, _, _ = _problem(k)
  kw = dict(learning_rate=4e-3, t=t, weight_decay=0.1, time=time, x_heldout=xv)
  a = si.sample_information(apply_fn, params, x, y, **kw)
  perm = np.random.default_rng(1).permutation(N_TRAIN)
  b = si.sample_information(apply_fn, params, x[perm], y[perm], **kw)
  inv = np.argsort(perm)
  np.testing.assert_allclose(b.weight_change_sq[inv], a.weight_change_sq, rtol=1e-8)
  np.testing.assert_allclose(b.fsi[inv], a.fsi, rtol=1e-8)
  np.testing.assert_allclose(b.self_prediction_change[inv], a.self_prediction_change,
                             rtol=1e-8, atol=1e-12)


@pytest.mark.x64  # builds a float64 network or kernel
def test_indices_subset_matches_all():
  k = 1
  apply_fn, params, x, y, xv, _, _, _ = _problem(k)
  kw = dict(learning_rate=4e-3, t=30, x_heldout=xv)
  full = si.sample_information(apply_fn, params, x, y, **kw)
  sub = si.sample_information(apply_fn, params, x, y, indices=[3, 0, 39], **kw)
  np.testing.assert_array_equal(sub.indices, [3, 0, 39])
  np.testing.assert_allclose(sub.fsi, full.fsi[[3, 0, 39]], rtol=1e-9)


@pytest.mark.x64  # builds a float64 network or kernel
def test_leave_one_out_under_jit():
  k = 2
  _, _, _, y, _, j, _, f0 = _problem(k)
  theta, r0 = jnp.asarray(j @ j.T), jnp.asarray(f0 - y.reshape(-1))
  eta = _eta(j, 0.1)
  for method, t, steps in (("lanczos", 60, 2 * len(r0)), ("eigh", 60, None),
                           ("downdate", np.inf, None)):
    fn = functools.partial(si.leave_one_out, num_outputs=k, learning_rate=eta, t=t,
                           weight_decay=0.1, method=method, krylov_steps=steps)
    eager = fn(theta, r0).loo_coefficients
    jitted = jax.jit(lambda a, b: fn(a, b).loo_coefficients)(theta, r0)
    np.testing.assert_allclose(jitted, eager, rtol=1e-10, atol=1e-12 * np.abs(eager).max())


@pytest.mark.x64  # builds a float64 network or kernel
def test_sgd_steady_state_si_matches_scipy_lyapunov():
  k, lam, b = 1, 0.05, 8
  apply_fn, params, x, y, _, _, _, f0 = _problem(k, width=4)
  res = si.sample_information(apply_fn, params, x, y, learning_rate=4e-3, t=100,
                              weight_decay=lam, sgd_batch_size=b)
  _, _, _, _, _, j, _, _ = _problem(k, width=4)
  nk, d = j.shape
  n = nk // k
  assert d < n  # H and Lambda full rank: Sigma well-conditioned
  a = res.coefficients
  resid = (f0 - y.reshape(-1)) + j @ (j.T @ a)
  g = j * resid[:, None]
  lam_cov = np.cov(g.T, bias=True)
  h = j.T @ j + lam * np.eye(d)
  sigma = scipy.linalg.solve_continuous_lyapunov(h, 4e-3 * n * n / b * lam_cov)
  dw = res.loo_coefficients @ j
  ref = 0.5 * np.einsum("id,id->i", dw, np.linalg.solve(sigma, dw.T).T)
  np.testing.assert_allclose(res.si_sgd, ref, rtol=1e-6)


@pytest.mark.x64  # builds a float64 network or kernel
def test_projected_jacobian_is_orthonormal_sketch():
  apply_fn, params, x, _, _, j, _, _ = _problem(1)
  d = j.shape[1]
  exact = si.projected_jacobian_fn(apply_fn, projection_dim=None)(params, jnp.asarray(x))
  np.testing.assert_allclose(exact, j, rtol=1e-12, atol=1e-14)
  # A linear model f(w, x) = x . w has J = X, so J P^T with X = I_d recovers P^T: P P^T = I.
  lin = lambda p, xx: (xx @ p["w"])[:, None]  # noqa: E731
  lin_params = {"w": jnp.zeros(d)}
  pt = np.asarray(si.projected_jacobian_fn(lin, projection_dim=30, seed=3)(lin_params,
                                                                            jnp.eye(d)))
  assert pt.shape == (d, 30)
  np.testing.assert_allclose(pt.T @ pt, np.eye(30), atol=1e-12)
  assert np.count_nonzero(pt) == d  # one bucket per parameter


@pytest.mark.x64  # builds a float64 network or kernel
def test_trained_expansion_point():
  k = 1
  apply_fn, params, x, y, _, _, _, _ = _problem(k)
  trained = jax.tree_util.tree_map(lambda p: p + 0.05, params)
  res = si.sample_information(apply_fn, params, x, y, learning_rate=4e-3, t=40,
                              expansion="trained", trained_params=trained)
  flat_t, unravel = ravel_pytree(trained)
  jt = np.asarray(jax.jacfwd(lambda w: apply_fn(unravel(w), jnp.asarray(x)).reshape(-1))(flat_t))
  f_start = (np.asarray(apply_fn(trained, jnp.asarray(x))).reshape(-1)
             + jt @ (ravel_pytree(params)[0] - flat_t))
  d_loo, d_full = _brute_force_deltas(jt, f_start - y.reshape(-1), k, eta=4e-3, t=40, lam=0.0,
                                      time="discrete")
  ref = d_full[None] - d_loo
  np.testing.assert_allclose(res.loo_coefficients @ jt, ref, rtol=0,
                             atol=1e-8 * np.abs(ref).max())
  assert res.settings.expansion == "trained"


@pytest.mark.x64  # builds a float64 network or kernel
def test_save_json_and_csv(tmp_path):
  apply_fn, params, x, y, xv, _, _, _ = _problem(1)
  res = si.sample_information(apply_fn, params, x, y, learning_rate=4e-3, t=20, x_heldout=xv)
  res.save_json(tmp_path / "si.json")
  res.save_csv(tmp_path / "si.csv")
  loaded = si.SampleInformation.load_json(tmp_path / "si.json")
  assert isinstance(loaded, si.SampleInformation)
  np.testing.assert_allclose(loaded.fsi, res.fsi)
  assert loaded.settings.n == N_TRAIN
  assert loaded.loo_coefficients is None  # the default file holds the per-example columns only
  raw = json.loads((tmp_path / "si.json").read_text())
  np.testing.assert_allclose(raw["examples"]["fsi"], res.fsi)  # the file format is unchanged
  assert raw["settings"]["n"] == N_TRAIN
  rows = (tmp_path / "si.csv").read_text().strip().splitlines()
  assert len(rows) == N_TRAIN + 1 and rows[0].startswith("index,weight_change_sq,si,fsi")


def _assert_same_result(a, b):
  assert type(a) is type(b) and a.settings == b.settings
  for f in dataclasses.fields(a):
    va, vb = getattr(a, f.name), getattr(b, f.name)
    if f.name == "settings":
      continue
    if va is None or vb is None:
      assert va is None and vb is None, f.name
    else:
      assert np.asarray(va).dtype == np.asarray(vb).dtype, f.name
      np.testing.assert_array_equal(np.asarray(va), np.asarray(vb), err_msg=f.name)


@pytest.mark.x64  # builds a float64 network or kernel
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sample_information_to_dict_round_trip(tmp_path, dtype):
  """to_dict/from_dict (through JSON text) and save_json(full=True)/load_json give back an equal
  result, arrays in their dtype; table() is a gbounds.Table of the per-example columns."""
  _, _, _, y, xv, j, jv, f0 = _problem(2)
  theta = (j @ j.T).astype(dtype)
  res = si.sample_information_from_kernels(theta, (f0 - y.reshape(-1)).astype(dtype),
                                           num_outputs=2, learning_rate=1e-3, t=30,
                                           theta_heldout_train=(jv @ j.T).astype(dtype))
  again = si.SampleInformation.from_dict(json.loads(json.dumps(res.to_dict())))
  _assert_same_result(res, again)
  res.save_json(tmp_path / "full.json", full=True)
  _assert_same_result(res, si.SampleInformation.load_json(tmp_path / "full.json"))
  table = res.table()
  assert isinstance(table, gbounds.Table)
  assert table.columns == ("index", "weight_change_sq", "si", "fsi", "self_prediction_change_0",
                           "self_prediction_change_1")
  assert len(table.rows) == N_TRAIN
  np.testing.assert_array_equal(table.column("si"), res.si)
  np.testing.assert_array_equal(table.column("self_prediction_change_1"),
                                res.self_prediction_change[:, 1])


def test_load_json_reads_files_of_earlier_versions(tmp_path):
  """A file in the format written before load_json returned a SampleInformation (settings
  without the later fields, per-example columns) loads with its columns and settings."""
  old = {"settings": {"n": 3, "num_outputs": 1, "learning_rate": 0.1, "t": 10.0,
                      "weight_decay": 0.0, "time": "discrete", "sigma": 1.0, "fsi_sigma": 1.0,
                      "num_heldout": 0, "method": "auto", "expansion": "initial",
                      "sgd_batch_size": None, "projection_dim": None, "projection_seed": 0,
                      "krylov_steps": 8, "krylov_error": 1e-13},
         "examples": {"index": [0, 1, 2], "weight_change_sq": [1.0, 2.0, 3.0],
                      "si": [0.5, 1.0, 1.5], "self_prediction_change_0": [0.1, 0.2, 0.3]}}
  (tmp_path / "old.json").write_text(json.dumps(old))
  res = si.SampleInformation.load_json(tmp_path / "old.json")
  assert isinstance(res, si.SampleInformation)
  np.testing.assert_array_equal(res.indices, [0, 1, 2])
  np.testing.assert_array_equal(res.si, [0.5, 1.0, 1.5])
  np.testing.assert_array_equal(res.self_prediction_change, [[0.1], [0.2], [0.3]])
  assert res.fsi is None and res.si_sgd is None and res.loo_coefficients is None
  assert res.settings.convention == "sum" and res.settings.krylov_steps == 8
  assert res.table().columns == ("index", "weight_change_sq", "si", "self_prediction_change_0")


@pytest.mark.x64  # builds a float64 network or kernel
def test_leave_one_out_to_dict_round_trip():
  _, _, _, y, _, j, _, f0 = _problem(1)
  res = si.leave_one_out(j @ j.T, f0 - y.reshape(-1), learning_rate=1e-3, t=25)
  again = si.LeaveOneOut.from_dict(json.loads(json.dumps(res.to_dict())))
  assert again.method == res.method and isinstance(again.method, si.LooMethod)
  assert again.krylov_steps == res.krylov_steps
  assert again.exact_fallbacks == res.exact_fallbacks
  for f in ("coefficients", "loo_coefficients", "krylov_error"):
    np.testing.assert_array_equal(np.asarray(getattr(again, f)), np.asarray(getattr(res, f)))


def test_nnx_and_linen_twins_give_the_same_sample_information():
  """The same network as a Linen module with params, its NNX twin, and a ModelFn."""
  t = model_twins.mlp_twins(n=10)
  y = np.asarray(t.y)
  kw = dict(learning_rate=1e-2, t=50, weight_decay=1e-3, x_heldout=t.x[:3])
  a = si.sample_information(t.linen, t.linen_params, t.x, y, **kw)
  b = si.sample_information(t.nnx, x_train=t.x, y_train=y, **kw)
  c = si.sample_information(gbounds.models.ModelFn(
      lambda p, x: t.linen.apply({"params": p}, x), t.linen_params), x_train=t.x, y_train=y, **kw)
  for other in (b, c):
    for f in ("si", "fsi", "weight_change_sq", "self_prediction_change", "loo_coefficients"):
      ref = np.asarray(getattr(a, f))
      np.testing.assert_allclose(getattr(other, f), ref, rtol=2e-4,
                                 atol=2e-4 * np.abs(ref).max(), err_msg=f)
  dw_linen = si.loo_weight_change(t.linen, t.linen_params, t.x, a.loo_coefficients[:2])
  dw_nnx = si.loo_weight_change(t.nnx, None, t.x, a.loo_coefficients[:2])
  np.testing.assert_allclose(np.asarray(dw_nnx["head"]["kernel"][...]),
                             dw_linen["head"]["kernel"], rtol=1e-5, atol=1e-6)


@pytest.mark.x64  # builds a float64 network or kernel
def test_bad_input():
  apply_fn, params, x, y, xv, j, _, f0 = _problem(1)
  kw = dict(learning_rate=4e-3, t=10)
  with pytest.raises(gbounds.InvalidInputError, match="x_heldout"):
    si.sample_information(apply_fn, params, x, y, x_heldout=np.zeros((3, 5)), **kw)
  for bad in (0.0, -1.0):
    with pytest.raises(gbounds.InvalidInputError, match="sigma"):
      si.sample_information(apply_fn, params, x, y, sigma=bad, **kw)
    with pytest.raises(gbounds.InvalidInputError, match="fsi_sigma"):
      si.sample_information(apply_fn, params, x, y, fsi_sigma=bad, **kw)
  with pytest.raises(gbounds.InvalidInputError, match="at least 2"):
    si.sample_information(apply_fn, params, x[:1], y[:1], **kw)
  with pytest.raises(gbounds.InvalidInputError, match="indices"):
    si.sample_information(apply_fn, params, x, y, indices=[0, N_TRAIN], **kw)
  with pytest.raises(gbounds.InvalidInputError, match="indices"):
    si.sample_information(apply_fn, params, x, y, indices=[-1], **kw)
  y_nan = y.copy()
  y_nan[3] = np.nan
  with pytest.raises(gbounds.InvalidInputError, match="y_train"):
    si.sample_information(apply_fn, params, x, y_nan, **kw)
  with pytest.raises(gbounds.InvalidInputError, match="y_train"):
    si.sample_information(apply_fn, params, x, y[:-1], **kw)
  with pytest.raises(gbounds.InvalidInputError, match="trained_params"):
    si.sample_information(apply_fn, params, x, y, expansion="trained", **kw)
  theta = j @ j.T
  with pytest.raises(gbounds.InvalidInputError, match="method"):
    si.leave_one_out(theta, f0 - y[:, 0], t=10, learning_rate=4e-3, method="downdate")
  with pytest.raises(gbounds.InvalidInputError, match="at least 2"):
    si.leave_one_out(theta[:1, :1], f0[:1], t=10, learning_rate=4e-3)
  with pytest.raises(gbounds.InvalidInputError, match="theta_heldout_train"):
    si.sample_information_from_kernels(theta, f0 - y[:, 0], learning_rate=4e-3, t=10,
                                       theta_heldout_train=np.zeros((3, 7)))
  with pytest.raises(gbounds.InvalidInputError, match="projection_dim"):
    si.sample_information(apply_fn, params, x, y, projection_dim=0, **kw)
  with pytest.raises(gbounds.InvalidInputError, match="sgd_batch_size"):
    si.sample_information(apply_fn, params, x, y, sgd_batch_size=0, **kw)



def test_host_eigh_under_a_local_x64_context():
  """float64 eigh inside ``with jax.enable_x64(True)`` while x64 is globally off (the notebook case).

  The host callback runs in another thread, where the local context does not hold. (The SGD
  steady-state SI uses the shared ``gbounds._src.numerics.eigh``, host LAPACK on the CPU.)
  """
  rng = np.random.default_rng(0)
  m = rng.normal(size=(3, 6, 6))
  m = m + np.swapaxes(m, 1, 2)
  ref_w, ref_v = np.linalg.eigh(m)
  previous = jax.config.jax_enable_x64
  jax.config.update("jax_enable_x64", False)
  try:
    with jax.enable_x64(True):
      host = lambda a: tuple(numerics.eigh(a, backend=numerics.EighBackend.HOST))  # noqa: E731
      w, v = jax.jit(jax.vmap(host))(jnp.asarray(m))
      assert w.dtype == jnp.float64 and v.dtype == jnp.float64
      w, v = np.asarray(w), np.asarray(v)
  finally:
    jax.config.update("jax_enable_x64", previous)
  np.testing.assert_allclose(w, ref_w, rtol=1e-12, atol=1e-12)
  np.testing.assert_allclose(np.abs(np.einsum("bij,bij->bj", v, ref_v)), 1.0, rtol=1e-10)


@pytest.mark.x64  # builds a float64 network or kernel
def test_float32_kernels_get_float64_algebra_and_float32_results():
  """sample_information_from_kernels on a float32 kernel equals the float64 computation on the
  same (float32-rounded) kernel, returned as float32; likewise under jit."""
  k = 1
  _, _, _, y, xv, j, jv, f0 = _problem(k)
  theta32 = (j @ j.T).astype(np.float32)
  tv32 = (jv @ j.T).astype(np.float32)
  r32 = (f0 - y.reshape(-1)).astype(np.float32)
  eta = 0.9 / np.linalg.eigvalsh(theta32.astype(np.float64))[-1]
  kw = dict(learning_rate=eta, t=300)
  got = si.sample_information_from_kernels(theta32, r32, theta_heldout_train=tv32, **kw)
  ref = si.sample_information_from_kernels(theta32.astype(np.float64), r32.astype(np.float64),
                                           theta_heldout_train=tv32.astype(np.float64), **kw)
  assert got.fsi.dtype == np.float32 and got.loo_coefficients.dtype == np.float32
  assert got.settings.dtype == "float32"
  np.testing.assert_allclose(got.weight_change_sq, ref.weight_change_sq, rtol=1e-5)
  np.testing.assert_allclose(got.fsi, ref.fsi, rtol=1e-5)
  jitted = jax.jit(lambda a, b: si.leave_one_out(a, b, method="lanczos", **kw).loo_coefficients)
  c = np.asarray(jitted(jnp.asarray(theta32), jnp.asarray(r32)))
  assert c.dtype == np.float32
  np.testing.assert_allclose(c, ref.loo_coefficients, rtol=0,
                             atol=1e-5 * np.abs(ref.loo_coefficients).max())
