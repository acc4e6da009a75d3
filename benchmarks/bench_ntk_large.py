"""The full empirical NTK of an MLP at n = 20,000 (k = 2) on one CPU: time, peak memory, a check.

The kernel is ``(n k)^2`` float32 numbers (6.4 GB at n = 20,000, k = 2); the Jacobians of all n
examples would be ``n k P`` more (8.1 GB for the MLP 784-64-2 below). ``empirical_ntk_fn`` with
``chunk_size=C`` computes the kernel block by block, keeping chunk Jacobians between blocks only
within ``cache_bytes``: with ``cache_bytes=0`` nothing is kept (each row of blocks recomputes its
column chunks' Jacobians) and the peak is the kernel plus a few chunk Jacobians; with the default
(half the free memory) as many chunk Jacobians as fit are reused.

Each configuration runs in its own process (this script with ``--worker``) so that its peak
resident memory (``ru_maxrss``) is its own. Data: the first n Fashion-MNIST training images
(28x28x1, float32); model ``gbounds.models.MLP((hidden,), 2)`` at its initialisation.

Columns:
  seconds    wall time of one kernel call (compilation included: one call at this size).
  work GF/s  contraction flops actually performed / time: c (c + 1) / 2 blocks of 2 (C k)^2 P
             (c = n / C chunks, symmetric kernel); a lower bound on the contraction's rate, since
             the time includes the Jacobians and the kernel writes.
  % mm       work GF/s over the in-run float32 matmul rate.
  peak GiB   the worker's peak resident memory; ``kernel GiB`` is the result alone.
  check      max |ours - J_S J_S^T| / max |J_S J_S^T| over the rows and columns of 24 random
             examples S, the reference contracted in float64 with numpy from
             ``gbounds.ntk.jacobian_fn``.

Usage:
  .venv/bin/python benchmarks/bench_ntk_large.py                       # n = 20,000, two cache settings
  .venv/bin/python benchmarks/bench_ntk_large.py --n 4000 --caches 0    # a quick look
Writes benchmarks/out/bench_ntk_large.json.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np
from bench_util import matmul_gflops, peak_rss_gib, versions, write_json

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _worker(args) -> dict:
  import jax

  import gbounds

  x, _ = gbounds.data.load_fashion_mnist("train", data_dir=args.data_dir)
  x = np.asarray(x[: args.n], np.float32)
  model = gbounds.models.MLP((args.hidden,), 2)
  params = model.init(jax.random.key(0), x[:1])["params"]
  apply_fn = lambda p, u: model.apply({"params": p}, u)  # noqa: E731
  cache = None if args.cache == "default" else int(float(args.cache) * 2 ** 30)
  ntk_fn = gbounds.ntk.empirical_ntk_fn(apply_fn, chunk_size=args.chunk, cache_bytes=cache)
  t0 = time.perf_counter()
  kernel = jax.block_until_ready(ntk_fn(x, None, params))
  seconds = time.perf_counter() - t0
  peak = peak_rss_gib()
  d = sum(int(np.size(a)) for a in jax.tree_util.tree_leaves(params))
  k = 2
  # check: the rows and columns of a random subset against a float64 numpy contraction
  rng = np.random.default_rng(0)
  pick = np.sort(rng.choice(args.n, size=24, replace=False))
  flat = np.asarray(gbounds.ntk.jacobian_fn(apply_fn)(params, x[pick]), np.float64)  # (m k, d)
  ref = flat @ flat.T
  rows = (pick[:, None] * k + np.arange(k)).reshape(-1)
  ours = np.asarray(kernel)[np.ix_(rows, rows)].astype(np.float64)
  check = float(np.max(np.abs(ours - ref)) / np.max(np.abs(ref)))
  finite = bool(np.isfinite(np.asarray(kernel[:: max(1, args.n // 50)])).all())
  c = -(-args.n // args.chunk)
  work = c * (c + 1) / 2 * 2.0 * (args.chunk * k) ** 2 * d
  return dict(n=args.n, hidden=args.hidden, params=d, k=k, chunk=args.chunk, cache=args.cache,
              seconds=seconds, work_gflops=work / seconds / 1e9, peak_rss_gib=peak,
              kernel_gib=kernel.size * kernel.dtype.itemsize / 2 ** 30, check=check,
              finite=finite, dtype=str(kernel.dtype))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--n", type=int, default=20_000)
  parser.add_argument("--hidden", type=int, default=64)
  parser.add_argument("--chunk", type=int, default=1000)
  parser.add_argument("--caches", nargs="+", default=["0", "default"],
                      help="cache_bytes settings in GiB ('default': half the free memory)")
  parser.add_argument("--cache", default="default", help=argparse.SUPPRESS)
  parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
  parser.add_argument("--timeout", type=float, default=1800.0)
  parser.add_argument("--data-dir", default=os.environ.get(
      "GBOUNDS_DATA_DIR", str(ROOT.parent / "shared" / "data")))
  parser.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "bench_ntk_large.json"))
  args = parser.parse_args()
  if args.worker:
    write_json(args.worker, _worker(args))
    return

  rate0 = matmul_gflops()
  print(f"in-run float32 matmul rate (2048^2, median of 5): {rate0:.1f} GFLOP/s", flush=True)
  head = (f"{'n':>6} {'P':>7} {'chunk':>5} {'cache':>8} {'seconds':>8} {'work GF/s':>9} "
          f"{'% mm':>5} {'peak GiB':>8} {'kernel GiB':>10} {'check':>8}")
  print(head, flush=True)
  rows = []
  for cache in args.caches:
    with tempfile.TemporaryDirectory() as tmp:
      out = pathlib.Path(tmp) / "row.json"
      cmd = [sys.executable, __file__, "--worker", str(out), "--n", str(args.n), "--hidden",
             str(args.hidden), "--chunk", str(args.chunk), "--cache", cache, "--data-dir",
             args.data_dir]
      try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
        status = "ok" if proc.returncode == 0 and out.exists() else (
            "OOM" if proc.returncode in (-9, 137) else f"failed ({proc.returncode})")
      except subprocess.TimeoutExpired:
        status, proc = "timeout", None
      if status != "ok":
        tail = "" if proc is None else proc.stderr[-800:]
        print(f"{args.n:>6} {'':>7} {args.chunk:>5} {cache:>8} {status}\n{tail}", flush=True)
        rows.append(dict(n=args.n, chunk=args.chunk, cache=cache, status=status))
        continue
      row = json.loads(out.read_text())
    row["status"] = "ok"
    row["pct_matmul"] = 100 * row["work_gflops"] / rate0
    rows.append(row)
    print(f"{row['n']:>6} {row['params']:>7} {row['chunk']:>5} {cache:>8} {row['seconds']:>8.1f} "
          f"{row['work_gflops']:>9.1f} {row['pct_matmul']:>5.0f} {row['peak_rss_gib']:>8.2f} "
          f"{row['kernel_gib']:>10.2f} {row['check']:>8.1e}", flush=True)
  rate1 = matmul_gflops()
  print(f"matmul rate before / after: {rate0:.1f} / {rate1:.1f} GFLOP/s")
  path = write_json(args.out, dict(rows=rows, matmul_gflops_before=rate0,
                                   matmul_gflops_after=rate1, versions=versions(),
                                   command=" ".join(sys.argv)))
  print(f"wrote {path}")


if __name__ == "__main__":
  main()
