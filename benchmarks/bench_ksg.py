"""All-pairs KSG mutual information: gbounds (blocked JAX) vs a per-pair numpy/scipy baseline.

256 neurons x 2,000 inputs (32,640 pairs), k = 3, Chebyshev norm. The baseline is the usual
per-pair implementation (as in the public code of Bansal et al. 2022): a cKDTree in the joint
space for the k-th neighbour distance and two 1-D cKDTrees for the marginal counts strictly
inside it. The baseline is timed on a random subset of pairs and extrapolated to all pairs
(said so in the output); both implementations are checked to agree on that subset.

``--ties`` benchmarks post-ReLU activations instead (a shifted ReLU on the same neurons, about a
third of each neuron's inputs at exactly 0): gbounds then breaks the ties with its tiny seeded
noise, and the baseline is given the same tie-broken columns (plain KSG-1 on tied data is off by
up to several nats), so the agreement check still compares like with like.

Usage: python benchmarks/bench_ksg.py [--neurons 256] [--samples 2000] [--baseline-pairs 200]
                                      [--ties]
Both are timed in wall-clock seconds and in process CPU seconds (user + system, all threads:
gbounds runs XLA on every core, the baseline on one), since the 2-core machines these runs are
made on are shared; the in-run float32 matmul rate is printed beside them.

Writes benchmarks/out/bench_ksg.json (bench_ksg_ties.json with --ties).
"""

import argparse
import os
import pathlib
import time

import bench_util
import jax
import jax.numpy as jnp
import numpy as np
from scipy.spatial import cKDTree  # pyright: ignore[reportAttributeAccessIssue]
from scipy.special import digamma

import gbounds

# TODO(info): the baseline breaks ties exactly as gbounds does, which only the private
# _activation_info module of gbounds.info exposes (_noise_scale, _column_keys, _break_ties_jit); replace
# once gbounds.info exports its tie-breaking.
from gbounds.info import _activation_info as _activation_info


def ksg_baseline(x, y, k=3):
  s = x.size
  xy = np.stack([x, y], axis=1)
  eps = cKDTree(xy).query(xy, k + 1, p=np.inf)[0][:, -1]
  r = np.nextafter(eps, 0)  # strictly inside
  nx = cKDTree(x[:, None]).query_ball_point(x[:, None], r, p=np.inf, return_length=True) - 1
  ny = cKDTree(y[:, None]).query_ball_point(y[:, None], r, p=np.inf, return_length=True) - 1
  return digamma(s) + digamma(k) - np.mean(digamma(nx + 1) + digamma(ny + 1))


def activations(n, s, seed=0):
  """Pre-activations of a random 3-layer MLP on MNIST-like Gaussian inputs: correlated,
  heavy-ish tailed neurons (a realistic workload)."""
  rng = np.random.default_rng(seed)
  h = rng.normal(size=(s, 196))
  for _ in range(2):
    h = np.maximum(h @ rng.normal(size=(h.shape[1], 256)) / np.sqrt(h.shape[1]), 0)
  return (h @ rng.normal(size=(256, n)) / 16.0).astype(np.float32)


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--neurons", type=int, default=256)
  ap.add_argument("--samples", type=int, default=2000)
  ap.add_argument("--baseline-pairs", type=int, default=200)
  ap.add_argument("--block-size", type=int, default=256)
  ap.add_argument("--ties", action="store_true",
                  help="post-ReLU activations (a third of each neuron's inputs at 0)")
  args = ap.parse_args()
  a = activations(args.neurons, args.samples)
  if args.ties:
    a = np.maximum(a - np.quantile(a, 1 / 3, axis=0), 0).astype(np.float32)
  li, lj = np.triu_indices(args.neurons, 1)
  total = li.size

  gflops = bench_util.matmul_gflops()
  # ours: compile once on a small problem of the same block shape, then time all pairs
  warm = gbounds.info.pairwise_mutual_information(a[:, :24], block_size=args.block_size)
  jax.block_until_ready(warm.values)
  c0, t0 = time.process_time(), time.perf_counter()
  ours = gbounds.info.pairwise_mutual_information(a, block_size=args.block_size)
  jax.block_until_ready(ours.values)
  t_ours, c_ours = time.perf_counter() - t0, time.process_time() - c0

  rng = np.random.default_rng(1)
  sub = rng.choice(total, size=min(args.baseline_pairs, total), replace=False)
  # the baseline gets the columns gbounds analyses: tie-broken where a column has ties
  scale = _activation_info._noise_scale(a.dtype, None)
  keys = _activation_info._column_keys(0, np.arange(args.neurons))
  a64 = np.asarray(_activation_info._break_ties_jit(
      jnp.asarray(a.T), keys, jnp.asarray(scale, a.dtype))[0]).T.astype(np.float64)
  c0, t0 = time.process_time(), time.perf_counter()
  base = np.array([ksg_baseline(a64[:, li[p]], a64[:, lj[p]]) for p in sub])
  t_sub, c_sub = time.perf_counter() - t0, time.process_time() - c0
  t_base, c_base = t_sub / sub.size * total, c_sub / sub.size * total
  err = float(np.max(np.abs(np.asarray(ours.values)[sub] - base)))

  rows = [("gbounds blocked JAX (all pairs, measured)", t_ours, c_ours),
          (f"per-pair cKDTree (extrapolated from {sub.size} random pairs)", t_base, c_base)]
  print(f"all-pairs KSG MI: {args.neurons} neurons x {args.samples} inputs = {total} pairs, k=3, "
        f"{'post-ReLU (tied) ' if args.ties else ''}"
        f"backend {jax.default_backend()}, {os.cpu_count()} CPUs, "
        f"in-run float32 matmul {gflops:.0f} GFLOP/s, load average {os.getloadavg()[0]:.1f}")
  print(f"{'implementation':<58} {'seconds':>8} {'ms/pair':>8} {'CPU s':>8} {'CPU ms/pair':>11}")
  for name, t, c in rows:
    print(f"{name:<58} {t:8.1f} {t / total * 1e3:8.3f} {c:8.1f} {c / total * 1e3:11.3f}")
  print(f"speed-up: {t_base / t_ours:.1f}x wall-clock, {c_base / c_ours:.1f}x in CPU time   "
        f"max |difference| on the baseline subset: {err:.2e} nats (float32 activations; "
        "baseline in float64)")
  out = pathlib.Path(__file__).parent / "out"
  bench_util.write_json(out / ("bench_ksg_ties.json" if args.ties else "bench_ksg.json"), {
      "neurons": args.neurons, "samples": args.samples, "pairs": total, "ties": args.ties,
      "ours_seconds": t_ours, "ours_cpu_seconds": c_ours,
      "baseline_seconds_extrapolated": t_base, "baseline_cpu_seconds_extrapolated": c_base,
      "baseline_pairs_timed": int(sub.size), "baseline_seconds_on_subset": t_sub,
      "speedup": t_base / t_ours, "speedup_cpu_time": c_base / c_ours,
      "max_abs_difference": err, "matmul_gflops": gflops, "load_average": os.getloadavg()[0],
      "backend": jax.default_backend(), "cpus": os.cpu_count(),
      "versions": bench_util.versions()})


if __name__ == "__main__":
  main()
