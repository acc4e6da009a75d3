"""Throughput of the sharded NTK and Jacobian against the number of devices (1, 2, 4).

``gbounds.ntk.sharded_ntk_fn`` (the symmetric FULL kernel of ``n`` inputs, ``(n k)^2``
entries) and ``gbounds.ntk.sharded_jacobian_fn`` (``n k`` rows) on forced CPU devices: one
subprocess per device count, each with ``XLA_FLAGS=--xla_force_host_platform_device_count=P``
(the flag must be set before JAX starts). Model: MLP in-128-128-k (tanh), random float32
inputs. Timing: one warm-up call (compilation, reported as ``first_s``), then the median of
``--repeats`` calls, each ending in ``jax.block_until_ready``. Each worker also reports the
in-run matmul rate on its first device (``bench_util.matmul_gflops``) and its peak RSS.

Columns: ``entries/s`` = kernel entries ``(n k)^2`` / time; ``rows/s`` = Jacobian rows / time;
``speedup`` against one device of the same run; ``GF/s`` = the nominal contraction flops
``2 (n k)^2 d`` / kernel time.

What the table can and cannot show: forced host devices are not separate hardware. On a
machine with C cores they share those cores (XLA's CPU backend already spreads ONE device's
matmuls over all of them), so the figures measure the cost of the row-band layer (per-device
compilation, the repeated column Jacobians, the loss of the symmetry saving: with P > 1 every
kernel entry is contracted, with P = 1 the engine contracts only the upper block triangle)
and whether the bands overlap at all, not the speedup of P real accelerators; expect
``speedup <= 1`` on 2 cores. On P real devices the kernel's contraction is split P ways.

Usage:
  .venv/bin/python benchmarks/bench_devices.py                     # n = 256, k = 4, ~1-2 min
  .venv/bin/python benchmarks/bench_devices.py --n 128 --repeats 2
Writes benchmarks/out/bench_devices.json.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys

from bench_util import matmul_gflops, peak_rss_gib, timed_median, versions, write_json

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out" / "bench_devices.json"


def worker(args) -> dict:
  """One device count (this process was started with that many forced CPU devices)."""
  import jax
  import jax.numpy as jnp

  import gbounds
  from gbounds import ntk

  devices = jax.device_count()
  x = jax.random.normal(jax.random.key(0), (args.n, args.inputs), jnp.float32)
  model = gbounds.as_model_fn(gbounds.models.MLP((128, 128), args.k, activation="tanh"),
                              example_input=x, key=0)
  f, p = model.apply_fn, model.params
  d = sum(int(v.size) for v in jax.tree_util.tree_leaves(p))
  kernel_fn = ntk.sharded_ntk_fn(f, chunk_size=args.chunk)
  jac_fn = ntk.sharded_jacobian_fn(f, chunk_size=args.chunk)
  k_first, k_time = timed_median(lambda: kernel_fn(x, None, p), args.repeats)
  j_first, j_time = timed_median(lambda: jac_fn(p, x), args.repeats)
  kernel = kernel_fn(x, None, p)
  assert ntk.is_row_sharded(kernel), kernel.sharding
  rows = args.n * args.k
  return {"devices": devices, "n": args.n, "k": args.k, "d": d, "chunk": args.chunk,
          "kernel_first_s": k_first, "kernel_s": k_time, "entries_per_s": rows ** 2 / k_time,
          "kernel_gflops": 2 * rows ** 2 * d / k_time / 1e9,
          "jacobian_first_s": j_first, "jacobian_s": j_time, "rows_per_s": rows / j_time,
          "shards": len(kernel.addressable_shards), "matmul_gflops": matmul_gflops(),
          "peak_rss_gib": peak_rss_gib()}


def main() -> None:
  parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
  parser.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4])
  parser.add_argument("--n", type=int, default=256, help="inputs (a multiple of every count)")
  parser.add_argument("--k", type=int, default=4, help="outputs")
  parser.add_argument("--inputs", type=int, default=32, help="input dimension")
  parser.add_argument("--chunk", type=int, default=64, help="chunk_size per device")
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.worker:
    print(json.dumps(worker(args)))
    return

  results = []
  for count in args.devices:
    env = dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={count}",
               JAX_PLATFORMS="cpu")
    cmd = [sys.executable, __file__, "--worker", "--n", str(args.n), "--k", str(args.k),
           "--inputs", str(args.inputs), "--chunk", str(args.chunk), "--repeats",
           str(args.repeats)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
      print(f"devices={count}: failed\n{proc.stderr[-2000:]}", file=sys.stderr)
      continue
    results.append(json.loads(proc.stdout.strip().splitlines()[-1]))

  base = next((r for r in results if r["devices"] == 1), None)
  print(f"sharded NTK / Jacobian, MLP {args.inputs}-128-128-{args.k}, n = {args.n}, "
        f"chunk {args.chunk}, float32, forced CPU devices on {os.cpu_count()} cores")
  head = (f"{'devices':>7} {'kernel s':>9} {'first s':>8} {'entries/s':>10} {'GF/s':>6} "
          f"{'speedup':>7} {'jac s':>7} {'rows/s':>9} {'speedup':>7} {'matmul GF/s':>11}")
  print(head)
  for r in results:
    ks = base["kernel_s"] / r["kernel_s"] if base else float("nan")
    js = base["jacobian_s"] / r["jacobian_s"] if base else float("nan")
    print(f"{r['devices']:>7} {r['kernel_s']:>9.3f} {r['kernel_first_s']:>8.2f} "
          f"{r['entries_per_s']:>10.3g} {r['kernel_gflops']:>6.1f} {ks:>7.2f} "
          f"{r['jacobian_s']:>7.3f} {r['rows_per_s']:>9.3g} {js:>7.2f} "
          f"{r['matmul_gflops']:>11.1f}")
  rate = matmul_gflops()
  print(f"in-run matmul rate (this process, one device): {rate:.1f} GF/s; peak RSS of the "
        f"workers: {max((r['peak_rss_gib'] for r in results), default=float('nan')):.2f} GiB")
  print("forced devices share the same cores: this measures the row-band layer's overhead, "
        "not the speedup of real devices (see the module docstring)")
  write_json(OUT, {"config": vars(args), "cpu_count": os.cpu_count(), "matmul_gflops": rate,
                   "results": results, "versions": versions()})
  print(f"wrote {OUT}")


if __name__ == "__main__":
  main()
