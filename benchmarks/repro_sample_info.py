"""Reproduction of Harutyunyan et al. (ICLR 2021), Table 1 (MLP column).

Two modes:

* default: the CPU-scale run of :func:`gbounds.experiments.reproduce_sample_info` (width 128,
  n = 100, 500 steps, 100 retrained networks, plus mislabeled-example detection); writes
  ``benchmarks/out/repro_sample_info.json``.
* ``--precision-check``: float64 against float32 retraining at the paper's setting (one
  example, ``--precision-steps`` steps); writes ``benchmarks/out/repro_sample_info_precision.json``.
* ``--paper OUT_DIR``: the paper's configuration (:func:`gbounds.experiments.
  reproduce_sample_info_paper`: width 1024, n = 1000, 2000 full-batch steps at lr 1e-3 on the
  mean loss, l2 coefficient 0 or 1), linearized leave-one-out for all n and exact float64
  retraining of a random subset, Pearson r with Fisher and bootstrap 95% intervals. Resumable:
  rerun the same command to continue; ``--budget-min`` stops before a chunk that would not
  finish in time. Writes ``OUT_DIR/result.json``, ``OUT_DIR/per_example.csv`` and a benchmark
  JSON ``OUT_DIR/bench.json`` (matmul rate, peak RSS).

Run: ``.venv/bin/python benchmarks/repro_sample_info.py [--n 100 --width 128 --steps 500]`` or
``nice -n 10 .venv/bin/python benchmarks/repro_sample_info.py --paper /work/runs_sinfo/paper
--retrained 100 --budget-min 40``.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
from typing import Any

import jax
from bench_util import matmul_gflops, peak_rss_gib, write_json

import gbounds


def _paper(args) -> None:
  jax.config.update("jax_enable_x64", True)
  gflops = matmul_gflops()
  print(f"matmul rate at start: {gflops:.1f} GFLOP/s", flush=True)
  res = gbounds.experiments.reproduce_sample_info_paper(
      args.paper, num_retrained=args.retrained, chunk_size=args.chunk,
      l2_coef=args.l2_coef, n_heldout=args.heldout_paper, matmul_dtype=args.matmul_dtype,
      time_budget_s=None if args.budget_min is None else 60.0 * args.budget_min,
      log=lambda s: print(s, flush=True))
  print(res.table())
  print(f"pooled coordinates of w - w_-i: r = {res.weights_elementwise:.4f}")
  print("settings:", res.settings)
  write_json(pathlib.Path(args.paper) / "bench.json", dict(
      result=res.to_dict(), matmul_gflops_start=gflops,
      matmul_gflops_end=matmul_gflops(), peak_rss_gib=peak_rss_gib(),
      command=" ".join(sys.argv)))


def _precision_check(args) -> None:
  """float64 vs float32 leave-one-out retraining at the paper's setting (``--precision-steps``
  steps, SUM convention so that the generic trainer runs the same recipe)."""
  import time

  import jax.numpy as jnp
  import numpy as np

  ex = gbounds.experiments
  jax.config.update("jax_enable_x64", True)
  x, y, xh, _ = ex.mnist_4_vs_9(1000, args.heldout_paper, seed=0)
  norm = lambda a: (np.asarray(a, np.float64) - ex.PAPER_MNIST_MEAN) / ex.PAPER_MNIST_STD  # noqa: E731
  x, y, xh = norm(x), np.asarray(y, np.float64), norm(xh)
  apply_fn, p32 = ex.mlp_at_init(1024, 0, x.astype(np.float32))
  p64 = ex.torch_default_init(jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), p32),
                              0)
  kw: dict[str, Any] = dict(learning_rate=1e-6, steps=args.precision_steps, x_heldout=xh,
                            progress=False)
  idx = [5]
  rows = {}
  for name, run in (
      ("float64 (reference)", lambda: ex.retrain_mlp_leave_one_out(p64, x, y, idx, **kw)),
      ("float32 products", lambda: ex.retrain_mlp_leave_one_out(p64, x, y, idx,
                                                                matmul_dtype="float32", **kw)),
      ("float32 training (retrain_leave_one_out)", lambda: ex.retrain_leave_one_out(
          apply_fn, jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float32), p64),
          x.astype(np.float32), y.astype(np.float32)[:, None], idx,
          **dict(kw, x_heldout=xh.astype(np.float32))))):
    t0 = time.perf_counter()
    rows[name] = (run(), time.perf_counter() - t0)
  ref = rows["float64 (reference)"][0]
  rel = lambda a, b: float(np.linalg.norm(a - b) / np.linalg.norm(b))  # noqa: E731
  print(f"example {idx[0]}, {args.precision_steps} steps: relative error of w - w_-i and of the "
        "held-out f - f_-i against float64")
  out = {}
  for name, (res, secs) in rows.items():
    e_w = rel(res.weight_change, ref.weight_change)
    e_f = rel(res.heldout_prediction_change, ref.heldout_prediction_change)
    out[name] = dict(weight_change_rel_err=e_w, prediction_change_rel_err=e_f, seconds=secs)
    print(f"  {name:<42} {e_w:10.3e} {e_f:10.3e}  {secs:6.1f} s")
  write_json(pathlib.Path(__file__).parent / "out" / "repro_sample_info_precision.json",
             dict(rows=out, steps=args.precision_steps, example=idx[0],
                  matmul_gflops=matmul_gflops(), command=" ".join(sys.argv)))


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--n", type=int, default=100)
  ap.add_argument("--heldout", type=int, default=200)
  ap.add_argument("--width", type=int, default=128)
  ap.add_argument("--steps", type=int, default=500)
  ap.add_argument("--lr-fraction", type=float, default=0.5)
  ap.add_argument("--retrained", type=int, default=100)
  ap.add_argument("--weight-decays", type=float, nargs="+", default=[0.0])
  ap.add_argument("--mislabeled-n", type=int, default=300)
  ap.add_argument("--paper", metavar="OUT_DIR", default=None,
                  help="run the paper's configuration into OUT_DIR (resumable)")
  ap.add_argument("--chunk", type=int, default=4, help="--paper: networks per compiled call")
  ap.add_argument("--l2-coef", type=float, default=0.0, help="--paper: 0 or 1 (mean loss)")
  ap.add_argument("--heldout-paper", type=int, default=500, help="--paper: held-out examples")
  ap.add_argument("--matmul-dtype", default="float64", help="--paper: float64 or float32")
  ap.add_argument("--budget-min", type=float, default=None, help="--paper: time budget")
  ap.add_argument("--precision-check", action="store_true",
                  help="float64 vs float32 leave-one-out retraining at the paper's setting")
  ap.add_argument("--precision-steps", type=int, default=200)
  args = ap.parse_args()
  if args.precision_check:
    _precision_check(args)
    return
  if args.paper:
    _paper(args)
    return
  res = gbounds.experiments.reproduce_sample_info(
      n_train=args.n, n_heldout=args.heldout, width=args.width, steps=args.steps,
      lr_fraction=args.lr_fraction, num_retrained=args.retrained,
      weight_decays=tuple(args.weight_decays), mislabeled_n=args.mislabeled_n, log=print)
  print(f"{'quantity':<34} {'ours':>8} {'paper (n=1000, 1024 units)':>27}")
  for key, val in res.ours.items():
    pub = res.published.get(key)
    print(f"{key:<34} {val:>8.4f} {'' if pub is None else f'{pub:.3f}':>27}")
  print("settings:", res.settings)
  out = pathlib.Path(__file__).parent / "out"
  res.save_json(out / "repro_sample_info.json")


if __name__ == "__main__":
  main()
