"""All-n leave-one-out of the linearized network: ours vs per-example baselines, side by side.

For n = 1000 and 4000 (k = 1), discrete GD for t = 2000 steps of size 0.5 / lambda_max (SUM
loss, lambda = 0), on the kernel ``Theta = J J^T`` of random ReLU features of MNIST images
(``J = relu(X W) / sqrt(h)``, ``h = 2000``; float64):

* ours: :func:`gbounds.info.leave_one_out` with the default method (``AUTO``, which at finite t is
  ``LANCZOS``: one float64 eigendecomposition, then batched Lanczos with full
  reorthogonalisation in the eigenbasis for all n left-out examples, each row checked for
  convergence and recomputed exactly if it does not converge; the table reports how many were);
* per-example eigendecomposition (the public code's approach: a fresh decomposition of the
  masked kernel for each left-out example), and
* brute-force explicit GD retraining of the linearized model without each example (run in
  the dual, ``a <- a - eta (A_KK a + r_K)``, which is the weight-space GD ``w = w0 + J^T a``
  at ``O(n^2)`` instead of ``O(n d)`` per step: a conservative, faster-than-weight-space
  baseline).

The baselines are timed on a few left-out examples and EXTRAPOLATED linearly to all n (they
cost the same for every example); the table says so. Agreement of ours with both baselines
on the timed examples is reported. JSON goes to ``benchmarks/out/bench_sample_info.json``.

Run: ``.venv/bin/python benchmarks/bench_sample_info.py [--sizes 1000 4000]``.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import time

import jax

jax.config.update("jax_enable_x64", True)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import gbounds  # noqa: E402
from gbounds.ntk import phi_host  # noqa: E402


def kernel(n: int, h: int = 2000, seed: int = 0):
  x, _ = gbounds.data.load_mnist("test")
  rng = np.random.default_rng(seed)
  x = x[rng.choice(len(x), n, replace=False)].reshape(n, -1).astype(np.float64)
  w = rng.normal(size=(x.shape[1], h)) / np.sqrt(x.shape[1])
  j = np.maximum(x @ w, 0.0) / np.sqrt(h)
  j = np.concatenate([j, np.ones((n, 1))], axis=1)
  theta = j @ j.T
  y = rng.integers(0, 2, size=n).astype(np.float64)
  return jnp.asarray(theta), jnp.asarray(-y)  # f0 = 0: r0 = -y


def time_it(fn, *args):
  t0 = time.perf_counter()
  out = jax.block_until_ready(fn(*args))
  return out, time.perf_counter() - t0


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000])
  ap.add_argument("--steps", type=int, default=2000)
  ap.add_argument("--subset", type=int, nargs="+", default=[4, 2],
                  help="left-out examples timed for the baselines, per size")
  args = ap.parse_args()
  rows = []
  for n, s in zip(args.sizes, args.subset + [args.subset[-1]] * len(args.sizes)):
    theta, r0 = kernel(n)
    top = float(np.linalg.eigvalsh(np.asarray(theta))[-1])
    eta, t = 0.5 / top, args.steps
    kw = dict(learning_rate=eta, t=t)
    # Ours, all n (host numpy/LAPACK: nothing to compile, so one call).
    res, t_ours = time_it(lambda: gbounds.info.leave_one_out(theta, r0, **kw))
    idx = np.arange(s)
    # Baseline 1: per-example eigendecomposition of the reduced kernel (numpy/LAPACK, float64,
    # as the public code does per left-out example); the full-data solution is not timed.
    th_np, r_np = np.asarray(theta), np.asarray(r0)
    a_full = np.asarray(res.coefficients)

    def eigh_rows():
      out = []
      for i in idx:
        keep = np.arange(n) != i
        mu, v = np.linalg.eigh(th_np[np.ix_(keep, keep)])
        ph = phi_host(mu, learning_rate=eta, t=t)
        c = a_full.copy()
        c[keep] += v @ (ph * (v.T @ r_np[keep]))
        out.append(c)
      return np.stack(out)

    eig, t_eig = time_it(eigh_rows)
    # Baseline 2: explicit GD on the kept examples, t steps, per left-out example.
    amat = theta

    @jax.jit
    def gd_one(i):
      m = 1.0 - jax.nn.one_hot(i, n, dtype=theta.dtype)
      body = lambda _, a: a - eta * m * (amat @ (m * a) + m * r0)  # noqa: E731
      return jax.lax.fori_loop(0, t, body, jnp.zeros(n, theta.dtype))

    gd_full = jax.jit(lambda: jax.lax.fori_loop(
        0, t, lambda _, a: a - eta * (amat @ a + r0), jnp.zeros(n, theta.dtype)))
    jax.block_until_ready(gd_one(0))
    t0 = time.perf_counter()
    a_all = jax.block_until_ready(gd_full())
    gd_rows = [a_all - jax.block_until_ready(gd_one(int(i))) for i in idx]
    t_gd = time.perf_counter() - t0
    gd_rows = np.stack(gd_rows)
    c = np.asarray(res.loo_coefficients)[idx]
    scale = np.abs(c).max()
    err_eig = float(np.abs(c - np.asarray(eig)).max() / scale)
    err_gd = float(np.abs(c - gd_rows).max() / scale)
    t_eig_all = t_eig / s * n
    t_gd_all = t_gd / s * n
    rows.append(dict(n=n, steps=t, method=res.method.name.lower(),
                     krylov_steps=res.krylov_steps, krylov_error=float(res.krylov_error),
                     exact_fallbacks=int(res.exact_fallbacks), ours_s=t_ours,
                     eigh_timed=s, eigh_s_extrapolated=t_eig_all, gd_timed=s,
                     gd_s_extrapolated=t_gd_all, speedup_vs_eigh=t_eig_all / t_ours,
                     speedup_vs_gd=t_gd_all / t_ours, max_rel_diff_vs_eigh=err_eig,
                     max_rel_diff_vs_gd=err_gd))
    print(rows[-1], flush=True)
  hdr = (f"{'n':>5} {'ours (s)':>9} {'m':>4} {'fb':>4} {'eigh/ex (s, extrap.)':>21} "
         f"{'GD/ex (s, extrap.)':>19} {'x eigh':>8} {'x GD':>8} {'diff eigh':>9} {'diff GD':>9}")
  print(hdr)
  for r in rows:
    print(f"{r['n']:>5} {r['ours_s']:>9.2f} {r['krylov_steps']:>4} "
          f"{r['exact_fallbacks']:>4} "
          f"{r['eigh_s_extrapolated']:>21.1f} {r['gd_s_extrapolated']:>19.1f} "
          f"{r['speedup_vs_eigh']:>8.0f} {r['speedup_vs_gd']:>8.0f} "
          f"{r['max_rel_diff_vs_eigh']:>9.1e} {r['max_rel_diff_vs_gd']:>9.1e}")
  print("(baselines timed on the first few left-out examples and extrapolated linearly to all n;"
        " m: largest Lanczos order, fb: rows recomputed exactly)")
  out = pathlib.Path(__file__).parent / "out"
  out.mkdir(exist_ok=True)
  tmp = out / ".bench_sample_info.json.tmp"
  tmp.write_text(json.dumps({"device": jax.devices()[0].device_kind, "cpus": os.cpu_count(),
                             "rows": rows}, indent=2))
  os.replace(tmp, out / "bench_sample_info.json")


if __name__ == "__main__":
  main()
