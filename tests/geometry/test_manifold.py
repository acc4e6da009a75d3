"""Tests of the MFTMA manifold geometry (gbounds/geometry/_manifold.py).

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
from gbounds._src.errors import ConvergenceError


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


@pytest.mark.x64  # float64 tolerances (KKT 1e-6, rtol 1e-7..1e-10)
@pytest.mark.parametrize("kappa", [0.0, 0.5])
@pytest.mark.parametrize("corr", [0.0, 0.9])
def test_dual_solution_satisfies_primal_kkt(kappa, corr):
  rng = np.random.default_rng(1)
  s = _manifold_matrix(rng, 30, 25, scale=0.7, corr=corr)
  t = rng.standard_normal((200, 31))
  sol = gbounds.geometry.solve_anchor_qp(s, t, kappa=kappa)
  kkt = _primal_kkt(s, t, np.asarray(sol.alpha), np.asarray(sol.v), kappa)
  for name, value in kkt.items():
    assert value < 1e-6, (name, value)
  assert np.max(np.asarray(sol.kkt_residual)) < 1e-6


@pytest.mark.x64  # float64 tolerances (KKT 1e-6, rtol 1e-7..1e-10)
def test_fista_alone_reaches_kkt_tolerance_on_well_conditioned_instances():
  rng = np.random.default_rng(2)
  s = _manifold_matrix(rng, 40, 20, scale=0.3)
  t = rng.standard_normal((50, 41))
  sol = gbounds.geometry.solve_anchor_qp(s, t, solver=gbounds.geometry.DualSolver.FISTA, n_iter=5000, tol=1e-9)
  kkt = _primal_kkt(s, t, np.asarray(sol.alpha), np.asarray(sol.v), 0.0)
  assert max(kkt.values()) < 1e-6


@pytest.mark.x64  # float64 tolerances (KKT 1e-6, rtol 1e-7..1e-10)
def test_matches_scipy_nnls_at_zero_margin():
  rng = np.random.default_rng(3)
  s = _manifold_matrix(rng, 9, 6)
  t = rng.standard_normal((40, 10))
  sol = jax.jit(gbounds.geometry.solve_anchor_qp)(s, t)
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


@pytest.mark.x64  # float64 tolerances (KKT 1e-6, rtol 1e-7..1e-10)
def test_matches_brute_force_active_sets_with_margin():
  rng = np.random.default_rng(4)
  kappa = 0.3
  s = _manifold_matrix(rng, 6, 5)
  t = rng.standard_normal((30, 7))
  sol = gbounds.geometry.solve_anchor_qp(s, t, kappa=kappa)
  gram = s.T @ s
  for i in range(t.shape[0]):
    ref = _brute_force_nnqp(gram, s.T @ t[i] + kappa)
    np.testing.assert_allclose(sol.alpha[i], ref, atol=1e-8)


def test_separated_samples_take_the_shortcut():
  rng = np.random.default_rng(5)
  s = _manifold_matrix(rng, 8, 6)
  # t = -c * (1, ..., 1 | big) makes every s_j . t very negative.
  t = np.concatenate([np.zeros(8), [-10.0]])[None]
  sol = gbounds.geometry.solve_anchor_qp(s, t, kappa=0.5)
  assert bool(sol.separated[0])
  np.testing.assert_array_equal(sol.alpha[0], 0.0)
  np.testing.assert_allclose(sol.v[0], t[0])
  np.testing.assert_allclose(sol.anchor[0], s[:, np.argmax(t[0] @ s)])


def test_anchor_qp_under_jit_and_vmap():
  rng = np.random.default_rng(6)
  ss = np.stack([_manifold_matrix(rng, 7, 5) for _ in range(3)])
  ts = rng.standard_normal((3, 11, 8))
  fn = jax.jit(jax.vmap(lambda s, t: gbounds.geometry.solve_anchor_qp(s, t, kappa=0.1).anchor))
  out = fn(ss, ts)
  for i in range(3):
    np.testing.assert_allclose(out[i], gbounds.geometry.solve_anchor_qp(ss[i], ts[i], kappa=0.1).anchor,
                               atol=1e-10)


def test_float32_solution_is_accurate_to_single_precision():
  rng = np.random.default_rng(7)
  s = _manifold_matrix(rng, 20, 15, scale=0.5).astype(np.float32)
  t = rng.standard_normal((64, 21)).astype(np.float32)
  sol = gbounds.geometry.solve_anchor_qp(s, t)
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


@pytest.mark.x64  # float64 tolerances (KKT 1e-6, rtol 1e-7..1e-10)
@pytest.mark.parametrize("kappa", [0.0, 0.2])
def test_anchor_geometry_matches_numpy_formulas(kappa):
  rng = np.random.default_rng(8)
  s = _manifold_matrix(rng, 6, 5, scale=0.8)
  t = rng.standard_normal((120, 7))
  cap, rad, dim, dim_prx = _numpy_geometry(s, t, kappa)
  got = jax.jit(lambda s_, t_: gbounds.geometry.anchor_geometry(s_, t_, kappa=kappa))(s, t)
  np.testing.assert_allclose(got[:3], (cap, rad, dim), rtol=1e-7)
  got2 = gbounds.geometry.anchor_geometry(s, t, kappa=kappa,
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
    g = gbounds.geometry.manifold_geometry(x, key=0, n_t=N_T, center_rank=0)
    caps.append(float(g.capacity))
    rads.append(float(g.radius))
  assert rads[0] > rads[1] > rads[2]
  assert caps[0] < caps[1] < caps[2]


@pytest.mark.slow
def test_large_dimension_mean_field_relation():
  rng = np.random.default_rng(10)
  x = rng.standard_normal((4, 40, 400))
  g = gbounds.geometry.manifold_geometry(x, key=1, n_t=300, center_rank=0)
  predicted = (1 + g.radius_per_manifold ** -2) / g.dimension_per_manifold
  np.testing.assert_allclose(g.capacity_per_manifold, predicted, rtol=0.10)


@pytest.mark.x64  # float64 tolerances (KKT 1e-6, rtol 1e-7..1e-10)
def test_invariant_to_point_order():
  rng = np.random.default_rng(11)
  x = rng.standard_normal(SHAPE)
  perm = np.stack([rng.permutation(SHAPE[1]) for _ in range(SHAPE[0])])
  xp = np.take_along_axis(x, perm[:, :, None], axis=1)
  a = gbounds.geometry.manifold_geometry(x, key=3, n_t=N_T, center_rank=0)
  b = gbounds.geometry.manifold_geometry(xp, key=3, n_t=N_T, center_rank=0)
  np.testing.assert_allclose(a.capacity_per_manifold, b.capacity_per_manifold, rtol=1e-8)
  np.testing.assert_allclose(a.radius_per_manifold, b.radius_per_manifold, rtol=1e-8)
  np.testing.assert_allclose(a.dimension_per_manifold, b.dimension_per_manifold, rtol=1e-8)


@pytest.mark.x64  # float64 tolerances (KKT 1e-6, rtol 1e-7..1e-10)
@pytest.mark.slow  # compiles the Stiefel optimiser (~10-20 s of XLA compile on CPU)
def test_invariant_to_manifold_order_and_center_subspace():
  rng = np.random.default_rng(12)
  p, m, n = SHAPE
  shared = rng.standard_normal(n)
  x = rng.standard_normal(SHAPE) + 3.0 * rng.standard_normal((p, 1, 1)) * shared
  t = rng.standard_normal((p, N_T, m + 1))
  perm = np.array([3, 0, 1, 2])
  kw = dict(center_rank=None, n_restarts=2, n_subspace_steps=50)
  a = gbounds.geometry.manifold_geometry(x, key=4, t=t, **kw)
  b = gbounds.geometry.manifold_geometry(x[perm], key=4, t=t[perm], **kw)
  assert a.center_rank == b.center_rank >= 1
  np.testing.assert_allclose(a.center_correlation, b.center_correlation, rtol=1e-8)
  np.testing.assert_allclose(a.capacity_per_manifold[perm], b.capacity_per_manifold, rtol=1e-6)
  np.testing.assert_allclose(a.radius_per_manifold[perm], b.radius_per_manifold, rtol=1e-6)
  # A strong shared direction: high centre correlation, much lower after removal.
  assert a.center_correlation > 0.5
  assert a.residual_correlation < 0.5 * a.center_correlation


@pytest.mark.x64  # float64 tolerances (KKT 1e-6, rtol 1e-7..1e-10)
def test_center_correlation_matches_direct_computation():
  rng = np.random.default_rng(13)
  p = SHAPE[0]
  x = rng.standard_normal(SHAPE) + rng.standard_normal((p, 1, SHAPE[2]))
  g = gbounds.geometry.manifold_geometry(x, key=0, n_t=N_T, center_rank=0)
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
  g = gbounds.geometry.manifold_geometry(x, key=0, n_t=N_T, center_rank=0, max_features=40)
  assert np.all(np.isfinite(g.capacity_per_manifold))
  with pytest.raises(gbounds.InvalidInputError, match="fewer points per manifold"):
    gbounds.geometry.manifold_geometry(x, key=0, max_features=10)


def test_bad_input():
  rng = np.random.default_rng(15)
  x = rng.standard_normal((3, 10, 20))
  with pytest.raises(gbounds.InvalidInputError, match="at least 2 manifolds"):
    gbounds.geometry.manifold_geometry(x[:1], key=0)
  with pytest.raises(gbounds.InvalidInputError, match="M < N"):
    gbounds.geometry.manifold_geometry(rng.standard_normal((3, 20, 20)), key=0)
  bad = x.copy()
  bad[1, 2, 3] = np.nan
  with pytest.raises(gbounds.InvalidInputError, match="finite"):
    gbounds.geometry.manifold_geometry(bad, key=0)
  with pytest.raises(gbounds.InvalidInputError, match="kappa >= 0"):
    gbounds.geometry.manifold_geometry(x, key=0, kappa=-0.1)
  with pytest.raises(gbounds.InvalidInputError, match="rank 3"):
    gbounds.geometry.manifold_geometry(x[0], key=0)
  with pytest.raises(gbounds.InvalidInputError, match="samples of shape"):
    gbounds.geometry.manifold_geometry(x, key=0, t=np.zeros((3, 5, 7)))
  with pytest.raises(gbounds.InvalidInputError, match="solver"):
    gbounds.geometry.solve_anchor_qp(np.ones((3, 2)), np.ones(3), solver="newton")


# ----------------------------------------------------------------------------- rank-deficient


def _rank_deficient(kind, rng):
  """(D+1, M) with a row of ones whose Gram matrix G = S^T S is singular."""
  if kind == "subspace":  # 12 points in a 4-dim linear subspace of R^12
    pts = rng.standard_normal((12, 4)) @ rng.standard_normal((4, 12)) / 2
  elif kind == "duplicates":  # 6 distinct points in R^10, each twice
    pts = np.repeat(rng.standard_normal((10, 6)), 2, axis=1)
  elif kind == "more_points_than_dims":  # 15 points in R^5 (+ ones: D + 1 = 6 < M)
    pts = rng.standard_normal((5, 15))
  else:
    raise ValueError(kind)
  return np.concatenate([pts, np.ones((1, pts.shape[1]))], axis=0)


def _exact_anchor(s, t, kappa):
  """Exact anchor by scipy's NNLS (Lawson-Hanson), certified by its own KKT conditions.

  With a last row of ones, kappa sum(alpha) = kappa (S alpha)_{D+1}, so the dual
  1/2 ||S alpha - t||^2 - kappa sum(alpha) is 1/2 ||S alpha - (t + kappa e_{D+1})||^2 + const:
  an NNLS problem. v = t - S alpha is unique even when alpha is not; so is the anchor.
  """
  tk = t.copy()
  tk[-1] += kappa
  a, _ = optimize.nnls(s, tk, maxiter=100 * s.shape[1])
  g = s.T @ (s @ a - tk)
  assert np.all(a >= 0) and np.all(g >= -1e-9) and np.max(np.abs(a * g)) < 1e-9
  proj = t @ s
  if a.sum() == 0:
    assert proj.max() + kappa <= 0
    return t, s[:, np.argmax(proj)]
  return t - s @ a, s @ a / a.sum()


def _geometry_from_anchors(t, anc, kappa):
  """PRX 2018 eqs. 16-17, 28 and the public-code dimension (numpy)."""
  d = t.shape[1] - 1
  field = np.maximum(np.sum(t * anc, 1) + kappa, 0) ** 2 / np.sum(anc ** 2, 1)
  dev = (anc - anc.mean(0))[:, :d] / anc[:, d:]
  cos = np.sum(t[:, :d] * anc[:, :d], 1) / (np.linalg.norm(t[:, :d], axis=1) *
                                            np.linalg.norm(anc[:, :d], axis=1))
  return 1 / field.mean(), np.sqrt(np.mean(np.sum(dev ** 2, 1))), d * cos.mean() ** 2


RANK_DEFICIENT = ("subspace", "duplicates", "more_points_than_dims")


@pytest.mark.x64  # float64 tolerances (KKT 1e-6, rtol 1e-7..1e-10)
@pytest.mark.parametrize("kappa", [0.0, 0.3])
@pytest.mark.parametrize("kind", RANK_DEFICIENT)
def test_rank_deficient_anchors_match_exact_nnls(kind, kappa):
  rng = np.random.default_rng(20)
  s = _rank_deficient(kind, rng)
  assert np.linalg.matrix_rank(s.T @ s) < s.shape[1]
  t = rng.standard_normal((150, s.shape[0]))
  sol = gbounds.geometry.solve_anchor_qp(s, t, kappa=kappa)
  v_ref, anc_ref = zip(*(_exact_anchor(s, ti, kappa) for ti in t))
  np.testing.assert_allclose(sol.v, np.array(v_ref), rtol=0, atol=1e-6)
  np.testing.assert_allclose(sol.anchor, np.array(anc_ref), rtol=0, atol=1e-6)
  # The reported residual is the dual KKT residual of the returned alpha (recomputed here).
  alpha = np.asarray(sol.alpha)
  assert np.all(alpha >= 0)
  g = alpha @ (s.T @ s) - (t @ s + kappa)
  np.testing.assert_allclose(sol.kkt_residual, np.max(np.abs(np.minimum(alpha, g)), 1),
                             rtol=0, atol=1e-12)
  assert np.max(sol.kkt_residual) < 1e-9
  cap, rad, dim = _geometry_from_anchors(t, np.array(anc_ref), kappa)
  got = gbounds.geometry.anchor_geometry(s, t, kappa=kappa)
  np.testing.assert_allclose(got[:3], (cap, rad, dim), rtol=1e-6)


def test_rank_deficient_anchors_in_float32():
  rng = np.random.default_rng(20)
  s = _rank_deficient("subspace", rng)
  t = rng.standard_normal((150, s.shape[0]))
  sol = gbounds.geometry.solve_anchor_qp(s.astype(np.float32), t.astype(np.float32))
  assert sol.anchor.dtype == jnp.float32
  ref = np.array([_exact_anchor(s, ti, 0.0)[1] for ti in t])
  np.testing.assert_allclose(np.asarray(sol.anchor, np.float64), ref, rtol=0, atol=1e-3)


def _svd_s_matrices(x):
  """The (P, M+1, M) anchor-problem matrices, built independently of gbounds (numpy SVD):
  global centring, each manifold centred and scaled by its centre's norm, coordinates U Sigma
  along decreasing singular values (null axes exactly 0), columns signed so that their sums of
  cubes are positive, a row of ones appended."""
  xg = x - x.mean(axis=(0, 1))
  out = []
  for xm in xg:
    c = xm.mean(0)
    u, sv, _ = np.linalg.svd((xm - c) / np.linalg.norm(c), full_matrices=False)
    coords = u * np.where(sv > 1e-7 * sv[0], sv, 0.0)
    coords *= np.where(np.sum(coords ** 3, 0) < 0, -1.0, 1.0)
    out.append(np.concatenate([coords.T, np.ones((1, len(xm)))], axis=0))
  return np.stack(out)


@pytest.mark.x64  # float64 tolerances (KKT 1e-6, rtol 1e-7..1e-10)
def test_manifold_geometry_on_rank_deficient_manifolds_matches_exact_anchors():
  rng = np.random.default_rng(21)
  p, m, n = SHAPE
  centres = 2.0 * rng.standard_normal((p, 1, n))
  x = np.stack([
      rng.standard_normal((m, 3)) @ rng.standard_normal((3, n)),            # 3-dim subspace
      np.repeat(rng.standard_normal((5, n)), 2, axis=0),                     # duplicated points
      np.repeat(rng.standard_normal((3, n)), [5, 3, 2], axis=0),             # 3 distinct points
      rng.standard_normal((m, n)),                                           # full rank
  ]) + centres
  t = rng.standard_normal((p, N_T, m + 1))
  for kappa in (0.0, 0.25):
    g = gbounds.geometry.manifold_geometry(x, key=0, t=t, center_rank=0, kappa=kappa)
    ref = []
    for s, tp in zip(_svd_s_matrices(x), t):
      anc = np.array([_exact_anchor(s, ti, kappa)[1] for ti in tp])
      ref.append(_geometry_from_anchors(tp, anc, kappa))
    cap, rad, dim = np.array(ref).T
    np.testing.assert_allclose(g.capacity_per_manifold, cap, rtol=1e-6)
    np.testing.assert_allclose(g.radius_per_manifold, rad, rtol=1e-6)
    np.testing.assert_allclose(g.dimension_per_manifold, dim, rtol=1e-6)
    np.testing.assert_allclose(g.capacity, 1 / np.mean(1 / cap), rtol=1e-6)
    assert float(g.max_kkt_residual) < 1e-9


def test_manifold_geometry_with_fifty_points_in_low_dimensional_subspaces():
  # The setting of issue #11: M = 50 points in 5- and 10-dim subspaces and 25 duplicated pairs.
  # The earlier solver accepted non-finite active-set candidates here and fell back to the
  # best-aligned point: capacity 1 %, radius 4 %, dimension 7 % off while reporting KKT
  # residuals below 1e-7.
  rng = np.random.default_rng(1)
  p, m, n, n_t = 3, 50, 60, 100
  x = np.stack([rng.standard_normal((m, 5)) @ rng.standard_normal((5, n)),
                np.repeat(rng.standard_normal((25, n)), 2, axis=0),
                rng.standard_normal((m, 10)) @ rng.standard_normal((10, n))])
  x += 2.0 * rng.standard_normal((p, 1, n))
  t = rng.standard_normal((p, n_t, m + 1))
  g = gbounds.geometry.manifold_geometry(x, key=0, t=t, center_rank=0)
  ref = []
  for s, tp in zip(_svd_s_matrices(x), t):
    assert np.linalg.matrix_rank(s) < m
    anc = np.array([_exact_anchor(s, ti, 0.0)[1] for ti in tp])
    ref.append(_geometry_from_anchors(tp, anc, 0.0))
  cap, rad, dim = np.array(ref).T
  # float64: 1e-6; float32 (x64 off): a few ulps more (the radius came out 1.05e-6 off once),
  # still four orders below the 1 to 7 % errors of the earlier solver.
  rtol = 1e-6 if np.asarray(g.radius_per_manifold).dtype == np.float64 else 1e-5
  np.testing.assert_allclose(g.capacity_per_manifold, cap, rtol=rtol)
  np.testing.assert_allclose(g.radius_per_manifold, rad, rtol=rtol)
  np.testing.assert_allclose(g.dimension_per_manifold, dim, rtol=rtol)


def test_kkt_residual_counts_non_finite_as_infinite():
  from gbounds.geometry import _manifold as _manifold
  res = jax.jit(_manifold._kkt_residual)
  assert np.isinf(res(jnp.array([np.nan, 1.0]), jnp.array([0.0, 0.0])))
  assert np.isinf(res(jnp.array([0.5, 1.0]), jnp.array([-np.inf, 0.0])))
  assert np.isinf(res(jnp.array([np.inf, 1.0]), jnp.array([1.0, 0.0])))
  np.testing.assert_allclose(res(jnp.array([0.5, 0.0]), jnp.array([0.0, -0.25])), 0.25)


def test_unconverged_qp_raises_instead_of_returning():
  rng = np.random.default_rng(22)
  s = _rank_deficient("subspace", rng)
  t = rng.standard_normal((20, s.shape[0]))
  kw = dict(solver="fista", n_iter=10)
  with pytest.raises(ConvergenceError, match=r"KKT residual .* sample index \(\d+,\)"):
    gbounds.geometry.solve_anchor_qp(s, t, **kw)
  with pytest.raises(Exception, match="anchor QP did not converge"):
    jax.block_until_ready(jax.jit(lambda s_, t_: gbounds.geometry.solve_anchor_qp(s_, t_, **kw).v)(s, t))
  with pytest.raises(ConvergenceError, match="KKT residual"):
    gbounds.geometry.anchor_geometry(s, t, **kw)
  sol = gbounds.geometry.solve_anchor_qp(s, t, check=False, **kw)
  assert np.max(sol.kkt_residual) > 1e-7  # returned as is, and the residual shows it


def test_unconverged_manifold_geometry_names_the_manifold():
  rng = np.random.default_rng(23)
  x = rng.standard_normal(SHAPE) + 2.0 * rng.standard_normal((SHAPE[0], 1, SHAPE[2]))
  with pytest.raises(ConvergenceError, match=r"\(manifold, sample\) \(\d+, \d+\)"):
    gbounds.geometry.manifold_geometry(x, key=0, n_t=N_T, center_rank=0, solver="fista", n_iter=10)


def test_cli_user_errors_exit_2_with_one_line_naming_the_flag(tmp_path, capsys):
  from gbounds.cli import main
  path = tmp_path / "x.npy"
  np.save(path, np.random.default_rng(24).standard_normal(SHAPE))
  cases = [
      (["manifold", "geometry", "--input", str(path), "--kappa", "-0.5"], "--kappa"),
      (["manifold", "geometry", "--input", str(tmp_path / "missing.npy")], "--input"),
      (["manifold", "permuted-labels", "--quick", "--n-per-manifold", "1"], "--n-per-manifold"),
      (["manifold", "permuted-labels", "--quick", "--epochs", "3", "--rewind-epoch", "5"],
       "--rewind-epoch"),
  ]
  for argv, flag in cases:
    assert main(argv + ["--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"error: {flag}:" in err[0], err


def test_class_manifolds_groups_by_label():
  feats = np.arange(40, dtype=np.float32).reshape(20, 2)
  labels = np.repeat([0, 1], 10)
  x = gbounds.geometry.class_manifolds(feats, labels, n_per_class=4, key=0)
  assert x.shape == (2, 4, 2)
  assert np.all(x[0] < 20) and np.all(x[1] >= 20)
  with pytest.raises(gbounds.InvalidInputError, match="n_per_class"):
    gbounds.geometry.class_manifolds(feats, labels, n_per_class=11)


@pytest.mark.x64  # float64 tolerances (KKT 1e-6, rtol 1e-7..1e-10)
def test_cli_geometry(tmp_path):
  import json

  from gbounds.cli import main
  rng = np.random.default_rng(16)
  path = tmp_path / "x.npy"
  np.save(path, rng.standard_normal(SHAPE))
  assert main(["manifold", "geometry", "--input", str(path), "--n-t", str(N_T),
               "--center-rank", "0", "--out", str(tmp_path / "out")]) == 0
  res = json.loads((tmp_path / "out" / "geometry.json").read_text())
  direct = gbounds.geometry.manifold_geometry(np.load(path), key=0, n_t=N_T, center_rank=0)
  np.testing.assert_allclose(res["capacity"], direct.capacity, rtol=1e-10)
  assert res["shape"] == list(SHAPE)


@pytest.mark.slow
def test_manifold_notebook_executes(data_root, monkeypatch):
  nbformat = pytest.importorskip("nbformat")
  nbclient = pytest.importorskip("nbclient")
  import pathlib
  monkeypatch.setenv("GBOUNDS_DATA_DIR", data_root)
  path = pathlib.Path(__file__).resolve().parents[2] / "notebooks" / "manifold_geometry.ipynb"
  nb = nbformat.read(path, as_version=4)
  nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                          resources={"metadata": {"path": str(path.parent)}}).execute()


def test_results_round_trip_through_json():
  import json
  rng = np.random.default_rng(25)
  s = _manifold_matrix(rng, 6, 5)
  sol = gbounds.geometry.solve_anchor_qp(s, rng.standard_normal((4, 7)))
  back = gbounds.geometry.AnchorSolution.from_dict(json.loads(json.dumps(sol.to_dict())))
  for a, b in zip(back, sol):
    np.testing.assert_array_equal(a, np.asarray(b))
  g = gbounds.geometry.manifold_geometry(_spheres(rng, *SHAPE, 0.5), key=0, n_t=N_T,
                                         center_rank=0)
  back = gbounds.geometry.ManifoldGeometry.from_dict(json.loads(json.dumps(g.to_dict())))
  assert back.center_rank == g.center_rank == 0
  for a, b in zip(back, g):
    np.testing.assert_array_equal(a, np.asarray(b))


def test_float64_without_64_bit_types_is_refused_and_the_default_follows_jax():
  x = np.random.default_rng(26).standard_normal((3, 4, 12)) + np.arange(3.0)[:, None, None]
  with jax.enable_x64(False):
    with pytest.raises(gbounds.InvalidInputError, match="dtype: .*64-bit"):
      gbounds.geometry.manifold_geometry(x, key=0, dtype=np.float64)
    g = gbounds.geometry.manifold_geometry(x, key=0, n_t=8, center_rank=0)  # float64 data
  assert g.capacity_per_manifold.dtype == np.float32
