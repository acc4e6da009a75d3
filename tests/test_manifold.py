"""Tests of the MFTMA manifold geometry (gbounds/_manifold.py).

References are independent computations: scipy's NNLS, a brute-force enumeration of active
sets, the primal KKT conditions, numpy re-implementations of the PRX 2018 formulas on scipy
anchors, and the large-D mean-field relation alpha_M ~= (1 + R^-2) / D.
"""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import optimize

import gbounds


def _manifold_matrix(rng, d, m, *, scale=1.0, corr=0.0):
  """(D+1, M): random points (optionally correlated) with a last row of ones."""
  pts = rng.standard_normal((d, m)) * scale
  if corr:
    common = rng.standard_normal((d, 1)) * scale
    pts = np.sqrt(1 - corr) * pts + np.sqrt(corr) * common + 0.05 * rng.standard_normal((d, 3)) @ \
        rng.standard_normal((3, m))
  return np.concatenate([pts, np.ones((1, m))], axis=0)


def _primal_kkt(s, t, alpha, v, kappa):
  cons = v @ s + kappa  # s_j . v + kappa <= 0 (primal feasibility)
  return dict(
      stationarity=np.max(np.abs(v - (t - alpha @ s.T))),
      feasibility=np.max(np.maximum(cons, 0.0)),
      dual=np.max(np.maximum(-alpha, 0.0)),
      complementarity=np.max(np.abs(alpha * cons)))


@pytest.mark.parametrize("kappa", [0.0, 0.5])
@pytest.mark.parametrize("corr", [0.0, 0.9])
def test_dual_solution_satisfies_primal_kkt(kappa, corr):
  rng = np.random.default_rng(1)
  s = _manifold_matrix(rng, 30, 25, scale=0.7, corr=corr)
  t = rng.standard_normal((200, 31))
  sol = gbounds.solve_anchor_qp(s, t, kappa=kappa)
  kkt = _primal_kkt(s, t, np.asarray(sol.alpha), np.asarray(sol.v), kappa)
  for name, value in kkt.items():
    assert value < 1e-6, (name, value)
  assert np.max(np.asarray(sol.kkt_residual)) < 1e-6


def test_fista_alone_reaches_kkt_tolerance_on_well_conditioned_instances():
  rng = np.random.default_rng(2)
  s = _manifold_matrix(rng, 40, 20, scale=0.3)
  t = rng.standard_normal((50, 41))
  sol = gbounds.solve_anchor_qp(s, t, solver=gbounds.DualSolver.FISTA, n_iter=5000, tol=1e-9)
  kkt = _primal_kkt(s, t, np.asarray(sol.alpha), np.asarray(sol.v), 0.0)
  assert max(kkt.values()) < 1e-6


def test_matches_scipy_nnls_at_zero_margin():
  rng = np.random.default_rng(3)
  s = _manifold_matrix(rng, 9, 6)
  t = rng.standard_normal((40, 10))
  sol = jax.jit(gbounds.solve_anchor_qp)(s, t)
  for i in range(t.shape[0]):
    ref, _ = optimize.nnls(s, t[i])
    np.testing.assert_allclose(sol.alpha[i], ref, atol=1e-8)
    np.testing.assert_allclose(sol.v[i], t[i] - s @ ref, atol=1e-8)


def _brute_force_nnqp(gram, b):
  """Enumerates the free sets of min_{a >= 0} 1/2 a'Ga - b'a; returns the KKT point."""
  m = len(b)
  for size in range(m + 1):
    for free in itertools.combinations(range(m), size):
      a = np.zeros(m)
      if free:
        idx = list(free)
        a[idx] = np.linalg.solve(gram[np.ix_(idx, idx)], b[idx])
      g = gram @ a - b
      if np.all(a >= -1e-12) and np.all(g >= -1e-10):
        return a
  raise AssertionError("no KKT point found")


def test_matches_brute_force_active_sets_with_margin():
  rng = np.random.default_rng(4)
  kappa = 0.3
  s = _manifold_matrix(rng, 6, 5)
  t = rng.standard_normal((30, 7))
  sol = gbounds.solve_anchor_qp(s, t, kappa=kappa)
  gram = s.T @ s
  for i in range(t.shape[0]):
    ref = _brute_force_nnqp(gram, s.T @ t[i] + kappa)
    np.testing.assert_allclose(sol.alpha[i], ref, atol=1e-8)


def test_separated_samples_take_the_shortcut():
  rng = np.random.default_rng(5)
  s = _manifold_matrix(rng, 8, 6)
  # t = -c * (1, ..., 1 | big) makes every s_j . t very negative.
  t = np.concatenate([np.zeros(8), [-10.0]])[None]
  sol = gbounds.solve_anchor_qp(s, t, kappa=0.5)
  assert bool(sol.separated[0])
  np.testing.assert_array_equal(sol.alpha[0], 0.0)
  np.testing.assert_allclose(sol.v[0], t[0])
  np.testing.assert_allclose(sol.anchor[0], s[:, np.argmax(t[0] @ s)])


def test_anchor_qp_under_jit_and_vmap():
  rng = np.random.default_rng(6)
  ss = np.stack([_manifold_matrix(rng, 7, 5) for _ in range(3)])
  ts = rng.standard_normal((3, 11, 8))
  fn = jax.jit(jax.vmap(lambda s, t: gbounds.solve_anchor_qp(s, t, kappa=0.1).anchor))
  out = fn(ss, ts)
  for i in range(3):
    np.testing.assert_allclose(out[i], gbounds.solve_anchor_qp(ss[i], ts[i], kappa=0.1).anchor,
                               atol=1e-10)


def test_float32_solution_is_accurate_to_single_precision():
  rng = np.random.default_rng(7)
  s = _manifold_matrix(rng, 20, 15, scale=0.5).astype(np.float32)
  t = rng.standard_normal((64, 21)).astype(np.float32)
  sol = gbounds.solve_anchor_qp(s, t)
  assert sol.alpha.dtype == jnp.float32
  kkt = _primal_kkt(s.astype(np.float64), t.astype(np.float64), np.asarray(sol.alpha, np.float64),
                    np.asarray(sol.v, np.float64), 0.0)
  assert max(kkt.values()) < 1e-4


def _numpy_geometry(s, t, kappa):
  """PRX 2018 eqs. 16-17, 28, 29 (public-code dimension form) with scipy anchors."""
  d = s.shape[0] - 1
  anchors = []
  for ti in t:
    proj = ti @ s
    if proj.max() + kappa < 0:
      anchors.append(s[:, np.argmax(proj)])
      continue
    if kappa == 0:
      a, _ = optimize.nnls(s, ti)
    else:
      a = _brute_force_nnqp(s.T @ s, s.T @ ti + kappa)
    anchors.append(s @ a / a.sum())
  anc = np.array(anchors)
  field = np.maximum(np.sum(t * anc, 1) + kappa, 0) ** 2 / np.sum(anc ** 2, 1)
  cap = 1 / field.mean()
  dev = (anc - anc.mean(0))[:, :d] / anc[:, d:]
  rad = np.sqrt(np.mean(np.sum(dev ** 2, 1)))
  cos = np.sum(t[:, :d] * anc[:, :d], 1) / (np.linalg.norm(t[:, :d], axis=1) *
                                            np.linalg.norm(anc[:, :d], axis=1))
  dim = d * cos.mean() ** 2
  unit = anc[:, :d] / np.linalg.norm(anc[:, :d], axis=1, keepdims=True)
  dim_prx = np.mean(np.sum(t[:, :d] * unit, 1) ** 2)
  return cap, rad, dim, dim_prx


@pytest.mark.parametrize("kappa", [0.0, 0.2])
def test_anchor_geometry_matches_numpy_formulas(kappa):
  rng = np.random.default_rng(8)
  s = _manifold_matrix(rng, 6, 5, scale=0.8)
  t = rng.standard_normal((120, 7))
  cap, rad, dim, dim_prx = _numpy_geometry(s, t, kappa)
  got = jax.jit(lambda s_, t_: gbounds.anchor_geometry(s_, t_, kappa=kappa))(s, t)
  np.testing.assert_allclose(got[:3], (cap, rad, dim), rtol=1e-7)
  got2 = gbounds.anchor_geometry(s, t, kappa=kappa,
                                 dimension_formula="mean_squared_projection")
  np.testing.assert_allclose(got2[2], dim_prx, rtol=1e-7)


def _spheres(rng, p, m, n, radius):
  """P manifolds: m points on spheres of ``radius`` in random 10-dim subspaces around
  orthogonal unit centres (well separated for small radius)."""
  centres = np.linalg.qr(rng.standard_normal((n, p)))[0].T
  out = []
  for c in centres:
    basis = np.linalg.qr(rng.standard_normal((n, 10)))[0]
    u = rng.standard_normal((m, 10))
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    out.append(c + radius * u @ basis.T)
  return np.stack(out)


# The geometry tests share one shape, (P, M, N) = (4, 10, 40) with n_t = 50, so that the
# jitted pipeline compiles once for the default tier.
SHAPE, N_T = (4, 10, 40), 50


def test_capacity_rises_as_radius_falls_on_separated_spheres():
  rng = np.random.default_rng(9)
  caps, rads = [], []
  for r in (1.5, 0.6, 0.2):
    x = _spheres(rng, *SHAPE, r)
    g = gbounds.manifold_geometry(x, key=0, n_t=N_T, center_rank=0)
    caps.append(float(g.capacity))
    rads.append(float(g.radius))
  assert rads[0] > rads[1] > rads[2]
  assert caps[0] < caps[1] < caps[2]


@pytest.mark.slow
def test_large_dimension_mean_field_relation():
  rng = np.random.default_rng(10)
  x = rng.standard_normal((4, 40, 400))
  g = gbounds.manifold_geometry(x, key=1, n_t=300, center_rank=0)
  predicted = (1 + g.radius_per_manifold ** -2) / g.dimension_per_manifold
  np.testing.assert_allclose(g.capacity_per_manifold, predicted, rtol=0.10)


def test_invariant_to_point_order():
  rng = np.random.default_rng(11)
  x = rng.standard_normal(SHAPE)
  perm = np.stack([rng.permutation(SHAPE[1]) for _ in range(SHAPE[0])])
  xp = np.take_along_axis(x, perm[:, :, None], axis=1)
  a = gbounds.manifold_geometry(x, key=3, n_t=N_T, center_rank=0)
  b = gbounds.manifold_geometry(xp, key=3, n_t=N_T, center_rank=0)
  np.testing.assert_allclose(a.capacity_per_manifold, b.capacity_per_manifold, rtol=1e-8)
  np.testing.assert_allclose(a.radius_per_manifold, b.radius_per_manifold, rtol=1e-8)
  np.testing.assert_allclose(a.dimension_per_manifold, b.dimension_per_manifold, rtol=1e-8)


@pytest.mark.slow  # compiles the Stiefel optimiser (~10-20 s of XLA compile on CPU)
def test_invariant_to_manifold_order_and_center_subspace():
  rng = np.random.default_rng(12)
  p, m, n = SHAPE
  shared = rng.standard_normal(n)
  x = rng.standard_normal(SHAPE) + 3.0 * rng.standard_normal((p, 1, 1)) * shared
  t = rng.standard_normal((p, N_T, m + 1))
  perm = np.array([3, 0, 1, 2])
  kw = dict(center_rank=None, n_restarts=2, n_subspace_steps=50)
  a = gbounds.manifold_geometry(x, key=4, t=t, **kw)
  b = gbounds.manifold_geometry(x[perm], key=4, t=t[perm], **kw)
  assert a.center_rank == b.center_rank >= 1
  np.testing.assert_allclose(a.center_correlation, b.center_correlation, rtol=1e-8)
  np.testing.assert_allclose(a.capacity_per_manifold[perm], b.capacity_per_manifold, rtol=1e-6)
  np.testing.assert_allclose(a.radius_per_manifold[perm], b.radius_per_manifold, rtol=1e-6)
  # A strong shared direction: high centre correlation, much lower after removal.
  assert a.center_correlation > 0.5
  assert a.residual_correlation < 0.5 * a.center_correlation


def test_center_correlation_matches_direct_computation():
  rng = np.random.default_rng(13)
  p = SHAPE[0]
  x = rng.standard_normal(SHAPE) + rng.standard_normal((p, 1, SHAPE[2]))
  g = gbounds.manifold_geometry(x, key=0, n_t=N_T, center_rank=0)
  c = x.mean(1)
  c = c - c.mean(0)
  cos = (c @ c.T) / np.outer(np.linalg.norm(c, axis=1), np.linalg.norm(c, axis=1))
  expected = (np.abs(cos).sum() - p) / (p * (p - 1))
  np.testing.assert_allclose(g.center_correlation, expected, rtol=1e-10)
  np.testing.assert_allclose(g.residual_correlation, expected, rtol=1e-10)
  assert g.center_rank == 0


def test_random_projection_of_wide_layers():
  rng = np.random.default_rng(14)
  x = rng.standard_normal((4, 10, 120))
  g = gbounds.manifold_geometry(x, key=0, n_t=N_T, center_rank=0, max_features=40)
  assert np.all(np.isfinite(g.capacity_per_manifold))
  with pytest.raises(gbounds.InvalidInputError, match="fewer points per manifold"):
    gbounds.manifold_geometry(x, key=0, max_features=10)


def test_bad_input():
  rng = np.random.default_rng(15)
  x = rng.standard_normal((3, 10, 20))
  with pytest.raises(gbounds.InvalidInputError, match="at least 2 manifolds"):
    gbounds.manifold_geometry(x[:1], key=0)
  with pytest.raises(gbounds.InvalidInputError, match="M < N"):
    gbounds.manifold_geometry(rng.standard_normal((3, 20, 20)), key=0)
  bad = x.copy()
  bad[1, 2, 3] = np.nan
  with pytest.raises(gbounds.InvalidInputError, match="finite"):
    gbounds.manifold_geometry(bad, key=0)
  with pytest.raises(gbounds.InvalidInputError, match="kappa >= 0"):
    gbounds.manifold_geometry(x, key=0, kappa=-0.1)
  with pytest.raises(gbounds.InvalidInputError, match="rank 3"):
    gbounds.manifold_geometry(x[0], key=0)
  with pytest.raises(gbounds.InvalidInputError, match="samples of shape"):
    gbounds.manifold_geometry(x, key=0, t=np.zeros((3, 5, 7)))
  with pytest.raises(gbounds.InvalidInputError, match="solver"):
    gbounds.solve_anchor_qp(np.ones((3, 2)), np.ones(3), solver="newton")


def test_class_manifolds_groups_by_label():
  feats = np.arange(40, dtype=np.float32).reshape(20, 2)
  labels = np.repeat([0, 1], 10)
  x = gbounds.class_manifolds(feats, labels, n_per_class=4, key=0)
  assert x.shape == (2, 4, 2)
  assert np.all(x[0] < 20) and np.all(x[1] >= 20)
  with pytest.raises(gbounds.InvalidInputError, match="n_per_class"):
    gbounds.class_manifolds(feats, labels, n_per_class=11)


def test_cli_geometry(tmp_path):
  import json

  from gbounds.cli import main
  rng = np.random.default_rng(16)
  path = tmp_path / "x.npy"
  np.save(path, rng.standard_normal(SHAPE))
  assert main(["manifold", "geometry", "--input", str(path), "--n-t", str(N_T),
               "--center-rank", "0", "--out", str(tmp_path / "out")]) == 0
  res = json.loads((tmp_path / "out" / "geometry.json").read_text())
  direct = gbounds.manifold_geometry(np.load(path), key=0, n_t=N_T, center_rank=0)
  np.testing.assert_allclose(res["capacity"], direct.capacity, rtol=1e-10)
  assert res["shape"] == list(SHAPE)


@pytest.mark.slow
def test_manifold_notebook_executes(data_root, monkeypatch):
  nbformat = pytest.importorskip("nbformat")
  nbclient = pytest.importorskip("nbclient")
  import pathlib
  monkeypatch.setenv("GBOUNDS_DATA_DIR", data_root)
  path = pathlib.Path(__file__).resolve().parents[1] / "notebooks" / "manifold_geometry.ipynb"
  nb = nbformat.read(path, as_version=4)
  nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                          resources={"metadata": {"path": str(path.parent)}}).execute()
