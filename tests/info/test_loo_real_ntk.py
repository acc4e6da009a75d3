"""Leave-one-out on the NTKs of real networks on real data, against one eigendecomposition per
left-out set, and on singular kernels against brute-force minimum-norm retraining.

Issue #11: plain batched Lanczos was off by up to 1e4 (float64) on the NTK of an MLP on MNIST
4-vs-9 while reporting convergence; its errors depended on the chunk size; float32 results
were unrelated to the truth; AUTO returned wrong values on singular kernels at t = inf.

References here never call gbounds' leave-one-out code: for each left-out example ``i`` the
reduced kernel ``Theta_KK`` (rows and columns of ``i`` removed) gets its own
``scipy.linalg.eigh``, and ``phi_t(Theta_KK + lambda I) r_K`` is evaluated from it with the
closed form written out below (``numpy.linalg.lstsq`` for the singular cases).

Kernels: gbounds' own MLP (784-128-1) and CNN at initialisation, NTK by gbounds' engine, on
MNIST 4-vs-9 test images from ``GBOUNDS_DATA_DIR``. Nothing is cached on disk.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

import gbounds
from gbounds.data import _datasets as _data
from gbounds.info import _sample_info as si
from gbounds.models import _networks as _models
from gbounds.ntk import _empirical as _ntk

# ----------------------------------------------------------------------------- kernels


@functools.lru_cache(maxsize=8)
def _kernel(arch: str, n: int, dtype: str, data_root: str):
  x, y = _data.binary_task(*_data.load_mnist("test", data_dir=data_root))
  x, y = _data.subsample(x, y, n, seed=0)
  dt = jnp.dtype(dtype)
  xs = jnp.asarray(x, dt).reshape(n, 28, 28, 1)
  if arch == "mlp":
    model = _models.MLP((128,), 1, param_dtype=jnp.float64)
  else:
    model = _models.CNN(out=1, param_dtype=jnp.float64)
  # the same network in both precisions: float64 initial weights, rounded for float32
  m = _models.as_model_fn(model, example_input=jnp.asarray(xs[:1], jnp.float64), key=0)
  params = _ntk.cast_tree(m.params, dt)
  theta = np.asarray(_ntk.empirical_ntk_fn(m.apply_fn, chunk_size=250)(xs, None, params))
  assert theta.dtype == dt
  f0 = np.asarray(m.apply_fn(params, xs)).reshape(-1)
  r0 = (f0 - y.astype(dt)).astype(dt)
  return theta, r0


@functools.lru_cache(maxsize=8)
def _reduced_eighs(arch, n, dtype, data_root, rows):
  """One eigendecomposition of the reduced kernel Theta_KK per left-out example (float64)."""
  theta, _ = _kernel(arch, n, dtype, data_root)
  th = np.asarray(theta, np.float64)
  th = 0.5 * (th + th.T)
  out = []
  for i in rows:
    keep = np.arange(n) != i
    out.append(scipy.linalg.eigh(th[np.ix_(keep, keep)]))
  return out


def _phi_ref(mu, eta, t, rcond):
  """phi_t(mu) = (1 - (1 - eta mu)^t) / mu (t GD steps), 1/mu at t = inf (pseudo-inverse)."""
  mu = np.maximum(mu, 0.0)
  out = np.empty_like(mu)
  if np.isinf(t):
    big = mu > rcond * mu.max()
    out[big] = 1.0 / mu[big]
    out[~big] = 0.0
    return out
  pos = mu > 0
  with np.errstate(divide="ignore"):  # eta mu = 1 exactly: log1p(-1) = -inf, (1 - 1)^t = 0
    out[pos] = -np.expm1(t * np.log1p(-eta * mu[pos])) / mu[pos]
  out[~pos] = eta * t
  return out


def _reference(arch, n, dtype, data_root, rows, *, eta, t, lam):
  """c_i = a - embed(a^(-i)) for i in rows, from one eigh per left-out set; and a."""
  theta, r0 = _kernel(arch, n, dtype, data_root)
  th = 0.5 * (np.asarray(theta, np.float64) + np.asarray(theta, np.float64).T)
  r = np.asarray(r0, np.float64)
  mu, v = scipy.linalg.eigh(th)
  a = -v @ (_phi_ref(mu + lam, eta, t, np.finfo(float).eps * n * 10) * (v.T @ r))
  out = []
  for i, (mu_k, v_k) in zip(rows, _reduced_eighs(arch, n, dtype, data_root, rows)):
    keep = np.arange(n) != i
    a_loo = -v_k @ (_phi_ref(mu_k + lam, eta, t, np.finfo(float).eps * (n - 1) * 10)
                    * (v_k.T @ r[keep]))
    c = a.copy()
    c[keep] -= a_loo
    out.append(c)
  return th, np.stack(out)


def _assert_close(c, c_ref, theta64, tol, label):
  c = np.asarray(c, np.float64)
  err = np.linalg.norm(c - c_ref, axis=1) / np.linalg.norm(c_ref, axis=1)
  assert err.max() <= tol, f"{label}: coefficients off by {err.max():.3g} (tol {tol})"
  dw = np.einsum("bi,ij,bj->b", c, theta64, c)
  dw_ref = np.einsum("bi,ij,bj->b", c_ref, theta64, c_ref)
  rel = np.abs(dw - dw_ref) / dw_ref
  assert rel.max() <= tol, f"{label}: ||w - w_-i||^2 off by {rel.max():.3g} (tol {tol})"


def _check_setting(arch, n, dtype, data_root, *, t, lam, rows, methods, chunks, tol,
                   all_rows=False):
  theta, r0 = _kernel(arch, n, dtype, data_root)
  top = np.linalg.eigvalsh(np.asarray(theta, np.float64))[-1] + lam
  eta = 1.0 / top
  th64, c_ref = _reference(arch, n, dtype, data_root, rows, eta=eta, t=t, lam=lam)
  for method in methods:
    for chunk in chunks:
      idx = None if (all_rows and method != "eigh") else np.asarray(rows)
      res = si.leave_one_out(jnp.asarray(theta), jnp.asarray(r0), learning_rate=eta, t=t,
                             weight_decay=lam, method=method, indices=idx, chunk_size=chunk)
      assert res.loo_coefficients.dtype == jnp.dtype(dtype)
      c = np.asarray(res.loo_coefficients)
      c = c[np.asarray(rows)] if idx is None else c
      _assert_close(c, c_ref, th64, tol, f"{arch} n={n} {dtype} t={t} lam={lam} {method} "
                                         f"chunk={chunk}")


def _rows(n, count, seed=1):
  return tuple(int(i) for i in np.sort(np.random.default_rng(seed).choice(n, count, False)))


# ----------------------------------------------------------------------------- default tier


@pytest.mark.x64  # the kernels come from a float64 network
@pytest.mark.parametrize("t", [2000, np.inf])
def test_mlp_n250_float64_all_rows(data_root, t):
  """The issue's case: MLP 784-128-1, n = 250, eta = 1 / lambda_max, lambda = 0, all rows."""
  _check_setting("mlp", 250, "float64", data_root, t=t, lam=0.0, rows=_rows(250, 16),
                 methods=["auto"], chunks=[64], tol=1e-6, all_rows=True)


@pytest.mark.x64  # the kernels come from a float64 network
def test_mlp_n250_float32_mode(data_root):
  """float32 kernel in, float32 out; the algebra is float64 (the reference: float64 algebra on
  the same float32 kernel). Also within 1e-3 of the float64 network's answer."""
  rows = _rows(250, 12)
  _check_setting("mlp", 250, "float32", data_root, t=2000, lam=0.0, rows=rows,
                 methods=["auto"], chunks=[None], tol=1e-3)


@pytest.mark.x64  # the kernels come from a float64 network
def test_mlp_n250_lanczos_chunk_size_independent(data_root):
  theta, r0 = _kernel("mlp", 250, "float64", data_root)
  eta = 1.0 / np.linalg.eigvalsh(theta)[-1]
  rows = np.asarray(_rows(250, 24))
  outs = [np.asarray(si.leave_one_out(theta, r0, learning_rate=eta, t=2000, method="lanczos",
                                      indices=rows, chunk_size=c).loo_coefficients)
          for c in (1, 5, 512)]
  scale = np.linalg.norm(outs[0], axis=1)
  for o in outs[1:]:
    assert np.max(np.linalg.norm(o - outs[0], axis=1) / scale) < 1e-9


@pytest.mark.x64  # the kernels come from a float64 network
def test_float32_mode_does_not_need_x64(data_root):
  """With x64 off (the JAX default) a float32 kernel still gets float64 algebra."""
  theta, r0 = _kernel("mlp", 250, "float32", data_root)
  rows = _rows(250, 6)
  eta = 1.0 / np.linalg.eigvalsh(np.asarray(theta, np.float64))[-1]
  th64, c_ref = _reference("mlp", 250, "float32", data_root, rows, eta=eta, t=2000, lam=0.0)
  previous = jax.config.jax_enable_x64
  jax.config.update("jax_enable_x64", False)
  try:
    res = si.leave_one_out(jnp.asarray(theta), jnp.asarray(r0), learning_rate=eta, t=2000,
                           indices=np.asarray(rows))
    c = np.asarray(res.loo_coefficients)
    assert c.dtype == np.float32
  finally:
    jax.config.update("jax_enable_x64", previous)
  _assert_close(c, c_ref, th64, 1e-5, "x64 off")


# ----------------------------------------------------------------------------- slow tier

_SETTINGS = [(2000, 0.0), (2000, 10.0), (np.inf, 0.0), (np.inf, 10.0)]
_SLOW_CASES = [("mlp", 250, 24), ("mlp", 1000, 12), ("cnn", 250, 24), ("cnn", 1000, 12)]


@functools.lru_cache(maxsize=8)
def _references(arch, n, dtype, data_root, rows):
  """Every setting's reference from one eigendecomposition per left-out set (cached)."""
  theta, r0 = _kernel(arch, n, dtype, data_root)
  th = 0.5 * (np.asarray(theta, np.float64) + np.asarray(theta, np.float64).T)
  r = np.asarray(r0, np.float64)
  mu, v = scipy.linalg.eigh(th)
  out = {}
  full = {}
  for t, lam in _SETTINGS:
    eta = 1.0 / (mu[-1] + lam)
    full[t, lam] = eta, -v @ (_phi_ref(mu + lam, eta, t, np.finfo(float).eps * n * 10)
                              * (v.T @ r))
    out[t, lam] = []
  for i in rows:
    keep = np.arange(n) != i
    mu_k, v_k = scipy.linalg.eigh(th[np.ix_(keep, keep)])
    proj = v_k.T @ r[keep]
    for (t, lam), (eta, a) in full.items():
      a_loo = -v_k @ (_phi_ref(mu_k + lam, eta, t, np.finfo(float).eps * (n - 1) * 10) * proj)
      c = a.copy()
      c[keep] -= a_loo
      out[t, lam].append(c)
  return th, {key: (full[key][0], np.stack(val)) for key, val in out.items()}


@pytest.mark.slow
@pytest.mark.parametrize("setting", range(len(_SETTINGS)),
                         ids=[f"t{t}-lam{lam:g}" for t, lam in _SETTINGS])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("arch,n,count", _SLOW_CASES)
def test_real_ntk_every_method_and_chunk(data_root, arch, n, count, dtype, setting):
  """MLP and CNN, n = 250 and 1,000, float64 (1e-6) and float32 mode (1e-3), every method,
  two chunk sizes; ``count`` random left-out examples against one eigh per left-out set."""
  rows = _rows(n, count)
  tol = 1e-6 if dtype == "float64" else 1e-3
  t, lam = _SETTINGS[setting]
  theta, r0 = _kernel(arch, n, dtype, data_root)
  th64, refs = _references(arch, n, dtype, data_root, rows)
  eta, c_ref = refs[t, lam]
  methods = ["auto", "lanczos"] + (["downdate"] if np.isinf(t) else [])
  for method, chunk, sub in ([(m, c, slice(None)) for m in methods for c in (5, None)]
                             + [("eigh", 2, slice(0, 2))]):
    res = si.leave_one_out(jnp.asarray(theta), jnp.asarray(r0), learning_rate=eta, t=t,
                           weight_decay=lam, method=method, indices=np.asarray(rows)[sub],
                           chunk_size=chunk)
    assert res.loo_coefficients.dtype == jnp.dtype(dtype)
    _assert_close(res.loo_coefficients, c_ref[sub], th64, tol,
                  f"{arch} n={n} {dtype} t={t} lam={lam} {method} chunk={chunk}")


@pytest.mark.slow
def test_float32_mode_against_the_float64_network(data_root):
  """float32 mode vs the float64 network's kernel (the float32 kernel's own rounding included)."""
  rows = _rows(250, 20)
  for t, lam in _SETTINGS:
    th32, r32 = _kernel("mlp", 250, "float32", data_root)
    th64, c_ref = _reference("mlp", 250, "float64", data_root, rows,
                             eta=1.0 / (np.linalg.eigvalsh(_kernel("mlp", 250, "float64",
                                                                   data_root)[0])[-1] + lam),
                             t=t, lam=lam)
    eta = 1.0 / (np.linalg.eigvalsh(_kernel("mlp", 250, "float64", data_root)[0])[-1] + lam)
    res = si.leave_one_out(jnp.asarray(th32), jnp.asarray(r32), learning_rate=eta, t=t,
                           weight_decay=lam, indices=np.asarray(rows))
    _assert_close(res.loo_coefficients, c_ref, th64, 1e-3, f"f32 vs f64 network t={t} lam={lam}")


# ----------------------------------------------------------------------------- singular kernels


def _singular_problem(kind: str, seed: int, k: int = 1):
  rng = np.random.default_rng(seed)
  n = int(rng.integers(8, 16))
  if kind == "wide":  # n k > d: Theta = J J^T of rank d
    d = int(rng.integers(3, n * k - 1))
    j = rng.normal(size=(n * k, d))
  elif kind == "duplicates":  # duplicated inputs: identical rows of J
    d = 3 * n * k
    j = rng.normal(size=(n * k, d))
    for _ in range(2):
      a, b = rng.choice(n, 2, replace=False)
      j[b * k:(b + 1) * k] = j[a * k:(a + 1) * k]
  else:  # near-singular: singular values of J down to 1e-4 (eigenvalues 1e-8 relative)
    d = 2 * n * k
    u, _ = np.linalg.qr(rng.normal(size=(n * k, n * k)))
    w, _ = np.linalg.qr(rng.normal(size=(d, n * k)))
    s = np.logspace(0, -4, n * k)
    j = (u * s) @ w.T
  r0 = rng.normal(size=n * k)
  return j, r0, n


def _min_norm_retraining(j, r0, n, k):
  """w - w_-i by brute force: minimum-norm least squares with and without each example."""
  full = -np.linalg.lstsq(j, r0, rcond=None)[0]
  out = []
  for i in range(n):
    keep = np.ones(n * k, bool)
    keep[i * k:(i + 1) * k] = False
    out.append(full + np.linalg.lstsq(j[keep], r0[keep], rcond=None)[0])
  return np.stack(out)


@pytest.mark.x64  # the kernels come from a float64 network
@pytest.mark.parametrize("kind", ["wide", "duplicates", "near_singular"])
@pytest.mark.parametrize("k", [1, 2])
def test_singular_kernels_equal_min_norm_retraining(kind, k):
  """t = inf, lambda = 0, every method: equal to retraining to 1e-6, or a clear error."""
  for seed in range(20 if k == 1 else 5):
    j, r0, n = _singular_problem(kind, seed, k)
    ref = _min_norm_retraining(j, r0, n, k)
    scale = np.linalg.norm(ref, axis=1).max()
    theta = j @ j.T
    eta = 1.0 / np.linalg.eigvalsh(theta)[-1]
    for method in ("auto", "eigh", "lanczos", "downdate"):
      for time in ("discrete", "continuous"):
        try:
          res = si.leave_one_out(theta, r0, num_outputs=k, learning_rate=eta, t=np.inf,
                                 time=time, method=method)
        except gbounds.InvalidInputError as e:
          assert method == "downdate" and kind != "near_singular", (method, kind, e)
          assert "method" in str(e)
          continue
        dw = np.asarray(res.loo_coefficients) @ j
        err = np.linalg.norm(dw - ref, axis=1).max() / scale
        assert err < 1e-6, (kind, seed, method, time, err)


# ----------------------------------------------------------------------------- conventions


@pytest.mark.x64  # the kernels come from a float64 network
def test_mean_convention_equals_explicit_gd_with_the_mean_loss_recipe():
  """MEAN: the n - 1 example runs use lr_mean = eta n and lambda_mean = lambda / n unchanged,
  i.e. summed-loss eta n/(n-1) and lambda (n-1)/n; checked by explicit GD in weight space."""
  rng = np.random.default_rng(3)
  n, d, steps, lam = 9, 14, 40, 0.4
  j = rng.normal(size=(n, d))
  r0 = rng.normal(size=n)
  eta = 0.5 / (np.linalg.eigvalsh(j @ j.T)[-1] + lam)

  def gd(jm, rm, lr, wd):
    w = np.zeros(d)
    for _ in range(steps):
      w = w - lr * (jm.T @ (jm @ w + rm) + wd * w)
    return w

  full = gd(j, r0, eta, lam)
  for conv, lr_loo, wd_loo in (("sum", eta, lam), ("mean", eta * n / (n - 1), lam * (n - 1) / n)):
    ref = np.stack([full - gd(np.delete(j, i, 0), np.delete(r0, i), lr_loo, wd_loo)
                    for i in range(n)])
    for method in ("auto", "lanczos", "eigh"):
      res = si.leave_one_out(j @ j.T, r0, learning_rate=eta, t=steps, weight_decay=lam,
                             method=method, convention=conv)
      np.testing.assert_allclose(np.asarray(res.loo_coefficients) @ j, ref, rtol=0,
                                 atol=1e-10 * np.abs(ref).max())
  with pytest.raises(gbounds.InvalidInputError, match="convention"):
    si.leave_one_out(j @ j.T, r0, learning_rate=eta, t=steps, convention="median")


@pytest.mark.x64  # the kernels come from a float64 network
@pytest.mark.parametrize("t", [50, np.inf])
def test_divergent_learning_rate_is_rejected(t):
  rng = np.random.default_rng(0)
  j = rng.normal(size=(6, 10))
  theta, r0 = j @ j.T, rng.normal(size=6)
  top = np.linalg.eigvalsh(theta)[-1]
  for method in ("auto", "lanczos", "eigh"):
    with pytest.raises(gbounds.InvalidInputError, match="learning_rate"):
      si.leave_one_out(theta, r0, learning_rate=2.2 / top, t=t, method=method)
  # MEAN: eta n/(n-1) must also be stable for the leave-one-out runs
  with pytest.raises(gbounds.InvalidInputError, match="learning_rate"):
    si.leave_one_out(theta, r0, learning_rate=1.9 / top, t=t, convention="mean")
  si.leave_one_out(theta, r0, learning_rate=1.9 / top, t=t)  # stable under SUM
  si.leave_one_out(theta, r0, learning_rate=5.0 / top, t=t, time="continuous")
