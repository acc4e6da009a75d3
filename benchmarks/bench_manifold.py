"""MFTMA on one layer: gbounds (batched dual NNQP in JAX) vs a per-sample scipy QP loop.

Reference setting of the public MFTMA README: random data, N = 5000 features, M = 50 points per
manifold, P = 100 manifolds, kappa = 0, n_t = 300 samples per manifold (30,000 QPs).

* ours: :func:`gbounds.geometry.manifold_geometry` end to end (projection, centres, centre subspace,
  anchors for all manifolds and samples, capacity/radius/dimension), float64, after one warm-up
  call (compile time reported separately); also the anchor-QP phase alone.
* baseline "scipy SLSQP": the straightforward loop the public code runs with cvxopt: for each
  manifold and each sample t, solve the primal QP ``min 1/2 |v|^2 - t.v s.t. S^T v <= -kappa``
  with ``scipy.optimize.minimize(method="SLSQP")`` (analytic gradients). Too slow to run on all
  30,000 QPs in a benchmark, so it runs on ``--baseline-manifolds`` manifolds (all ``n_t``
  samples each) and the time is scaled linearly to P manifolds (stated in the table).
* baseline "scipy nnls": the same per-sample loop on the dual with ``scipy.optimize.nnls``
  (kappa = 0 only), a much stronger baseline, run on all manifolds.

Both baselines use the same S matrices (built by gbounds' preprocessing) and the same t, and the
anchors are compared with ours. Writes ``benchmarks/out/bench_manifold.json``.

``--subspace-dim K`` replaces the random data by rank-deficient manifolds (each manifold's ``M``
points in a random ``K``-dim affine subspace, ``K < M - 1``; issue #11): then the anchor Gram
matrices are singular, and the check against scipy's NNLS (Lawson-Hanson, exact) is the point.

Usage: ``python benchmarks/bench_manifold.py [--quick] [--subspace-dim K]``.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import platform
import time

import jax

jax.config.update("jax_enable_x64", True)  # benchmark script (not library code): float64

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from bench_util import write_json  # noqa: E402
from scipy import optimize  # noqa: E402

import gbounds  # noqa: E402

# TODO(geometry): the baselines solve on exactly gbounds' preprocessed matrices, which only the
# private _manifold module of gbounds.geometry builds (_prepare, _center_subspace, _manifold_coordinates);
# replace once gbounds.geometry exports that preprocessing.
from gbounds.geometry import _manifold  # noqa: E402


def _s_matrices(x, key, center_rank):
  """The (P, M+1, M) matrices S the analysis solves on (same preprocessing as gbounds)."""
  p, m, n = x.shape
  k_proj, k_sub, k_t = jax.random.split(key, 3)
  xj, coords, basis, sv, rho0, t = _manifold._prepare(jnp.asarray(x), k_proj, k_t,
                                                      n_features=n, n_t=300)
  sub = _manifold._center_subspace(coords, basis, sv, rho0, key=k_sub, center_rank=center_rank,
                                   n_restarts=5, n_steps=200)

  def one(xm):
    xm = xm - (xm @ sub.basis) @ sub.basis.T
    c = jnp.mean(xm, axis=0)
    coords_m = _manifold._manifold_coordinates((xm - c) / jnp.linalg.norm(c))
    return jnp.concatenate([coords_m.T, jnp.ones((1, m))], axis=0)

  return np.asarray(jax.jit(jax.vmap(one))(xj)), np.asarray(t)


def _slsqp_anchor(s, t, kappa):
  proj = t @ s
  if proj.max() + kappa < 0:
    return s[:, np.argmax(proj)]
  cons = {"type": "ineq", "fun": lambda v: -(s.T @ v) - kappa, "jac": lambda v: -s.T}
  res = optimize.minimize(lambda v: 0.5 * v @ v - t @ v, t.copy(), jac=lambda v: v - t,
                          constraints=[cons], method="SLSQP",
                          options={"ftol": 1e-12, "maxiter": 500})
  v = res.x
  # Multipliers are not returned by SLSQP; recover the anchor from t - v = S alpha.
  alpha, _ = optimize.nnls(s, t - v)
  return s @ alpha / alpha.sum()


def _nnls_anchor(s, t):
  proj = t @ s
  if proj.max() < 0:
    return s[:, np.argmax(proj)]
  alpha, _ = optimize.nnls(s, t)
  return s @ alpha / alpha.sum()


def main():
  ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
  ap.add_argument("--quick", action="store_true", help="N=1000, P=20 smoke run")
  ap.add_argument("--baseline-manifolds", type=int, default=3)
  ap.add_argument("--subspace-dim", type=int, default=None,
                  help="rank-deficient manifolds: points in K-dim affine subspaces")
  ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "out"))
  args = ap.parse_args()
  n, m, p, n_t = (1000, 50, 20, 300) if args.quick else (5000, 50, 100, 300)
  rng = np.random.default_rng(0)
  if args.subspace_dim is None:
    x = rng.standard_normal((p, m, n))
  else:
    k = args.subspace_dim
    if not 1 <= k < m - 1:
      ap.error(f"--subspace-dim: expected an integer in [1, {m - 2}], got {k} instead.")
    x = (np.einsum("pmk,pkn->pmn", rng.standard_normal((p, m, k)),
                   rng.standard_normal((p, k, n)) / np.sqrt(k))
         + rng.standard_normal((p, 1, n)))
  key = jax.random.key(0)

  t0 = time.perf_counter()
  g = gbounds.geometry.manifold_geometry(x, key=key, n_t=n_t)
  jax.block_until_ready(g.capacity)
  first = time.perf_counter() - t0
  t0 = time.perf_counter()
  g = gbounds.geometry.manifold_geometry(x, key=key, n_t=n_t)
  jax.block_until_ready(g.capacity)
  ours_total = time.perf_counter() - t0

  s_all, t_all = _s_matrices(x, key, None)
  solve = jax.jit(jax.vmap(lambda s, t: gbounds.geometry.solve_anchor_qp(s, t).anchor))
  jax.block_until_ready(solve(s_all, t_all))
  t0 = time.perf_counter()
  anchors = np.asarray(jax.block_until_ready(solve(s_all, t_all)))
  ours_qp = time.perf_counter() - t0

  pb = min(args.baseline_manifolds, p)
  t0 = time.perf_counter()
  slsqp = np.array([[_slsqp_anchor(s_all[i], t_all[i, j], 0.0) for j in range(n_t)]
                    for i in range(pb)])
  slsqp_time = (time.perf_counter() - t0) * p / pb
  t0 = time.perf_counter()
  nnls = np.array([[_nnls_anchor(s_all[i], t_all[i, j]) for j in range(n_t)] for i in range(p)])
  nnls_time = time.perf_counter() - t0
  err_slsqp = float(np.max(np.abs(slsqp - anchors[:pb])))
  err_nnls = float(np.max(np.abs(nnls - anchors)))

  rows = [
      ("gbounds manifold_geometry (end to end)", ours_total, "all"),
      ("gbounds anchor QPs only (vmap FISTA+active set)", ours_qp, "all"),
      ("scipy SLSQP per-sample primal QP loop", slsqp_time, f"{pb} of {p} manifolds, x{p / pb:g}"),
      ("scipy nnls per-sample dual loop", nnls_time, "all"),
  ]
  data = "random" if args.subspace_dim is None else f"{args.subspace_dim}-dim subspaces"
  print(f"MFTMA one layer ({data}): N={n}, M={m}, P={p}, n_t={n_t} ({p * n_t} QPs), kappa=0, "
        f"float64, "
        f"{jax.devices()[0].platform} ({os.cpu_count()} cpus)")
  print(f"{'method':52s} {'seconds':>10s} {'speed-up of ours':>17s}  measured on")
  for name, sec, note in rows:
    print(f"{name:52s} {sec:10.2f} {sec / ours_total:16.1f}x  {note}")
  print(f"first call incl. compilation: {first:.1f} s")
  print(f"max |anchor difference| vs SLSQP: {err_slsqp:.2e}, vs nnls: {err_nnls:.2e}; "
        f"max KKT residual (ours): {float(g.max_kkt_residual):.1e}")
  ref = {"capacity": 0.04, "radius": 1.47, "dimension": 36.17, "center_correlation": 0.01}
  ours = {"capacity": float(g.capacity), "radius": float(g.radius),
          "dimension": float(g.dimension), "center_correlation": float(g.center_correlation)}
  print(f"{'quantity':20s} {'ours':>10s} {'README':>10s}"
        + ("" if args.subspace_dim is None else "  (README: random data only)"))
  for k, v in ours.items():
    print(f"{k:20s} {v:10.4f} {ref[k]:10.2f}")
  print(f"center_rank K = {g.center_rank} (README: 1)")
  out = pathlib.Path(args.out)
  out.mkdir(parents=True, exist_ok=True)
  payload = dict(setting=dict(N=n, M=m, P=p, n_t=n_t, kappa=0.0, dtype="float64",
                              subspace_dim=args.subspace_dim,
                              platform=jax.devices()[0].platform, cpus=os.cpu_count(),
                              machine=platform.machine()),
                 seconds={name: sec for name, sec, _ in rows}, notes={r[0]: r[2] for r in rows},
                 first_call_seconds=first, anchor_error=dict(slsqp=err_slsqp, nnls=err_nnls),
                 geometry=ours, reference_readme=ref, center_rank=g.center_rank,
                 max_kkt_residual=float(g.max_kkt_residual))
  name = "bench_manifold_quick" if args.quick else "bench_manifold"
  if args.subspace_dim is not None:
    name += f"_subspace{args.subspace_dim}"
  name += ".json"
  write_json(out / name, payload)


if __name__ == "__main__":
  main()
