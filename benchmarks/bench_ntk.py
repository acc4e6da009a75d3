"""Empirical NTK: gbounds vs neural-tangents 0.6.5, side by side in one run.

Same model, parameters, data (MNIST 4-vs-9, the first n test images, 28x28x1, float32) and chunk
size; both implementations (JACOBIAN_CONTRACTION, NTK_VECTOR_PRODUCTS); n = 256 and 1024; the full
kernel of x with itself (``ntk_fn(x, None, params)``: our (nk, nk) sample-major, nt's
``trace_axes=()`` (n, n, k, k), ``vmap_axes=0``). Models: MLP 784-512-512-2 (665,602 parameters)
and CNN conv32/4s2-conv32/4s2-conv64/3s2-fc128-fc2 (109,570).

Timing: one warm-up call (compilation included, reported as ``first_s``), then the median of
``--repeats`` calls. neural-tangents runs in the pinned environment `.venv-nt`
(`scripts/nt_env.sh`), one subprocess per case (`scripts/nt_reference.py`, "bench" mode), so an
out-of-memory failure of one case (an allocation error, or the process killed) is reported as
"OOM" and the run goes on. Ours also runs one subprocess per case (this script with
``--worker``); a side that exceeds ``--timeout`` seconds for a case is reported as "timeout". With ``--chunk C`` both sides process at most C examples per side at
once: ours through ``chunk_size=C``, nt through ``nt.batch(ntk_fn, batch_size=C)``.

Columns:
  ratio     = nt time / our time (> 1: ours is faster).
  GF/s      = 2 (nk)^2 P / time, the nominal flops of the full contraction J J^T over wall time
              (the same numerator for both sides and both implementations, so it is a normalised
              speed; for NTK_VECTOR_PRODUCTS no contraction is performed).
  work GF/s = the contraction flops our JACOBIAN_CONTRACTION actually performs / time: for the
              symmetric kernel with c = ceil(n / C) chunks only the c (c + 1) / 2 blocks on and above
              the block diagonal are contracted, 2 (C k)^2 P each (unchunked: one block, the full
              2 (nk)^2 P). Both GF/s are lower bounds on the contraction's own rate: the time
              includes computing the Jacobians.

Usage:
  .venv/bin/python benchmarks/bench_ntk.py                 # everything (about 20-30 min on 2 cores)
  .venv/bin/python benchmarks/bench_ntk.py --sizes 256 --models mlp --repeats 1
Writes benchmarks/out/bench_ntk.json.
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
from bench_util import matmul_gflops, peak_rss_gib, write_json

import gbounds

ROOT = pathlib.Path(__file__).resolve().parents[1]
NT_PYTHON = ROOT / ".venv-nt" / "bin" / "python"
IMPLEMENTATIONS = ("JACOBIAN_CONTRACTION", "NTK_VECTOR_PRODUCTS", "AUTO")
SHORT = {"JACOBIAN_CONTRACTION": "JC", "NTK_VECTOR_PRODUCTS": "NVP", "AUTO": "auto"}

CNN_STAGES = (gbounds.models.ConvStage(32, 4, 2, 1), gbounds.models.ConvStage(32, 4, 2, 1),
              gbounds.models.ConvStage(64, 3, 2, 0))
MODELS = {
    "mlp": (gbounds.models.MLP(hidden=(512, 512), out=2),
            {"kind": "mlp", "hidden": [512, 512], "activation": "relu"}),
    "cnn": (gbounds.models.CNN(stages=CNN_STAGES, dense=(128,), out=2),
            {"kind": "cnn", "activation": "relu", "dense": [128],
             "stages": [[s.channels, s.kernel, s.stride, s.padding] for s in CNN_STAGES]}),
}

_OOM_MARKERS = ("RESOURCE_EXHAUSTED", "Out of memory", "out of memory", "MemoryError",
                "Failed to allocate", "bad_alloc")


def _is_oom(err: BaseException) -> bool:
  text = f"{type(err).__name__}: {err}"
  return any(m in text for m in _OOM_MARKERS)


def time_ours(apply_fn, params, x, implementation: str, chunk: int | None, repeats: int) -> dict:
  ntk_fn = gbounds.ntk.empirical_ntk_fn(apply_fn, implementation=implementation, chunk_size=chunk)
  result = {}
  if implementation == "AUTO":
    cost = gbounds.ntk.choose_implementation(apply_fn, params, x, chunk_size=chunk)
    result["chose"] = cost.implementation.name
    result["cost_model"] = {"jacobian_contraction_flops": cost.jacobian_contraction,
                            "vector_products_flops": cost.vector_products,
                            "forward_flops": cost.forward_flops}
  try:
    start = time.perf_counter()
    kernel = jax.block_until_ready(ntk_fn(x, None, params))
    result["first_s"] = time.perf_counter() - start
    k = kernel.shape[0] // x.shape[0]
    result["trace"] = float(jnp.trace(kernel))
    result["shape"] = list(kernel.shape)
    del kernel
    times = []
    for _ in range(repeats):
      start = time.perf_counter()
      jax.block_until_ready(ntk_fn(x, None, params))
      times.append(time.perf_counter() - start)
    result.update(times_s=times, status="ok", k=k, peak_rss_gib=peak_rss_gib())
  except Exception as err:  # noqa: BLE001 -- report and go on
    result.update(status="OOM" if _is_oom(err) else "error",
                  error=f"{type(err).__name__}: {str(err)[:300]}")
  return result


def run_ours(workdir: pathlib.Path, model_name: str, n: int, implementation: str,
             chunk: int | None, args) -> dict:
  """Times ours in a fresh subprocess (this script with --worker), so that a case that runs out
  of memory or past ``--timeout`` is reported and the run goes on."""
  dst = workdir / "ours.json"
  if dst.exists():
    dst.unlink()
  cmd = [sys.executable, __file__, "--worker", model_name, str(n), implementation,
         str(chunk or 0), str(args.repeats), args.data_dir, str(dst)]
  env = dict(os.environ)
  env.pop("JAX_ENABLE_X64", None)
  try:
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.timeout)
  except subprocess.TimeoutExpired:
    return {"status": "timeout", "error": f"over {args.timeout:.0f} s"}
  if proc.returncode != 0 or not dst.exists():
    oom = proc.returncode in (-9, 137) or any(m in proc.stderr for m in _OOM_MARKERS)
    return {"status": "OOM" if oom else "error",
            "error": f"exit {proc.returncode}: {proc.stderr[-300:]}"}
  return json.loads(dst.read_text())


def _worker(argv) -> int:
  model_name, n, implementation, chunk, repeats, data_dir, dst = argv
  x, params, apply_fn = _problem(model_name, int(n), data_dir)
  result = time_ours(apply_fn, params, jnp.asarray(x), implementation, int(chunk) or None,
                     int(repeats))
  pathlib.Path(dst).write_text(json.dumps(result))
  return 0


def _problem(model_name: str, n: int, data_dir: str):
  """The first n MNIST 4-vs-9 test images and the model's parameters (Linen init, key 0)."""
  x_all, _ = gbounds.data.binary_task(*gbounds.data.load_mnist("test", data_dir=data_dir))
  x = x_all[:n].astype(np.float32)
  module, _ = MODELS[model_name]
  mf = gbounds.models.as_model_fn(module, example_input=jnp.asarray(x[:1]), key=0)
  apply_fn, params = mf.apply_fn, mf.params
  return x, params, apply_fn


def time_nt(workdir: pathlib.Path, model_spec: dict, params, x: np.ndarray, implementation: str,
            chunk: int | None, repeats: int, timeout: float) -> dict:
  src, dst = workdir / "in.npz", workdir / "out.json"
  spec = {"mode": "bench", "model": model_spec, "implementation": implementation,
          "repeats": repeats, "batch_size": chunk}
  flat = {f"param/{layer}/{name}": np.asarray(v, np.float32)
          for layer, leaves in params.items() for name, v in leaves.items()}
  np.savez(src, spec=json.dumps(spec), x=x, **flat)
  if dst.exists():
    dst.unlink()
  env = dict(os.environ, JAX_PLATFORMS="cpu")
  env.pop("JAX_ENABLE_X64", None)
  try:
    proc = subprocess.run([str(NT_PYTHON), str(ROOT / "scripts" / "nt_reference.py"), str(src),
                           str(dst)], cwd=ROOT, capture_output=True, text=True, env=env,
                          timeout=timeout)
  except subprocess.TimeoutExpired:
    return {"status": "timeout", "error": f"over {timeout:.0f} s"}
  if proc.returncode != 0 or not dst.exists():
    killed = proc.returncode in (-9, 137)
    oom = killed or any(m in proc.stderr for m in _OOM_MARKERS)
    return {"status": "OOM" if oom else "error",
            "error": f"exit {proc.returncode}: {proc.stderr[-300:]}"}
  return json.loads(dst.read_text())


def _flops(n: int, k: int, p: int, chunk: int | None) -> tuple[float, float]:
  nominal = 2.0 * (n * k) ** 2 * p
  if chunk is None or chunk >= n:
    return nominal, nominal
  c = -(-n // chunk)
  return nominal, c * (c + 1) / 2 * 2.0 * (chunk * k) ** 2 * p


def _fmt_time(r: dict) -> str:
  return f"{statistics.median(r['times_s']):8.2f}" if r.get("status") == "ok" else f"{r['status']:>8}"


def _summarise(model_name: str, n: int, case: list[dict]) -> dict:
  """Per (model, n): our fastest implementation and our AUTO choice against neural-tangents'
  faster implementation, and whether AUTO picked our faster one."""
  ours = {r["implementation"]: r["ours_median_s"] for r in case if r["ours_median_s"]}
  nt = {r["implementation"]: r["nt_median_s"] for r in case if r["nt_median_s"]}
  auto = next((r for r in case if r["implementation"] == "AUTO"), None)
  fixed = {k: v for k, v in ours.items() if k != "AUTO"}
  best_ours = min(fixed, key=fixed.__getitem__) if fixed else None
  best_nt = min(nt, key=nt.__getitem__) if nt else None
  chose = auto["ours"].get("chose") if auto else None
  out = {"model": model_name, "n": n, "ours_best": best_ours, "nt_best": best_nt,
         "auto_chose": chose, "auto_picked_faster": (chose == best_ours) if chose and best_ours
         else None}
  if best_nt and "AUTO" in ours:
    out["auto_speedup_vs_nt_best"] = nt[best_nt] / ours["AUTO"]
  if best_nt and best_ours:
    out["best_speedup_vs_nt_best"] = nt[best_nt] / fixed[best_ours]
  sp = out.get("auto_speedup_vs_nt_best")
  out["line"] = (f"  -> {model_name} n={n}: ours fastest {SHORT.get(best_ours or '', '-')}, auto "
                 f"chose {SHORT.get(chose or '', '-')} ({'right' if out['auto_picked_faster'] else 'WRONG' if out['auto_picked_faster'] is False else '-'}); "
                 f"nt fastest {SHORT.get(best_nt or '', '-')}; auto vs nt's fastest: "
                 f"{'-' if sp is None else f'{sp:.2f}x'}")
  return out


def main(argv=None) -> int:
  argv = sys.argv[1:] if argv is None else argv
  if argv[:1] == ["--worker"]:
    return _worker(argv[1:])
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
  parser.add_argument("--sizes", nargs="+", type=int, default=[256, 1024])
  parser.add_argument("--implementations", nargs="+", default=list(IMPLEMENTATIONS),
                      choices=list(IMPLEMENTATIONS))
  parser.add_argument("--chunk", type=int, default=256,
                      help="examples per side at once, both libraries (0: unchunked)")
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--timeout", type=float, default=600.0,
                      help="seconds per case and side (warm-up and repeats together)")
  parser.add_argument("--skip-nt", action="store_true", help="time ours only")
  parser.add_argument("--data-dir", default=os.environ.get(
      "GBOUNDS_DATA_DIR", str(ROOT.parent / "shared" / "data")))
  parser.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "bench_ntk.json"))
  args = parser.parse_args(argv)
  chunk = args.chunk or None

  if not args.skip_nt:
    subprocess.run(["bash", str(ROOT / "scripts" / "nt_env.sh")], cwd=ROOT, check=True)
  print(f"jax {jax.__version__} on {jax.default_backend()} ({os.cpu_count()} CPUs), float32, "
        f"chunk {chunk}, median of {args.repeats} after a warm-up", flush=True)

  rate0 = matmul_gflops()
  print(f"in-run float32 matmul rate (2048^2, median of 5): {rate0:.1f} GFLOP/s", flush=True)
  rows, summary = [], []
  header = (f"{'model':5} {'P':>8} {'n':>5} {'impl':4} {'ours s':>8} {'nt s':>8} {'ratio':>6} "
            f"{'ours GF/s':>9} {'nt GF/s':>8} {'work GF/s':>9} {'% mm':>5} {'peak GiB':>8} "
            f"{'trace rel':>9}")
  lines = [header]
  print(header, flush=True)

  def f(v, spec):
    return format(v, spec) if v is not None else format("-", ">" + spec.split(".")[0])

  def save():
    write_json(args.out, {"config": vars(args), "jax": jax.__version__,
                          "backend": jax.default_backend(), "matmul_gflops_before": rate0,
                          "rows": rows, "summary": summary, "table": lines})

  with tempfile.TemporaryDirectory() as tmp:
    for model_name in args.models:
      _, model_spec = MODELS[model_name]
      for n in args.sizes:
        x, params, _ = _problem(model_name, n, args.data_dir)
        p = gbounds.models.count_params(params)
        case = []
        for impl in args.implementations:
          ours = run_ours(pathlib.Path(tmp), model_name, n, impl, chunk, args)
          nt = ({"status": "skipped"} if args.skip_nt or impl == "AUTO" else
                time_nt(pathlib.Path(tmp), model_spec, params, x, impl, chunk, args.repeats,
                        args.timeout))
          k = 2
          nominal, work = _flops(n, k, p, chunk)
          row = {"model": model_name, "params": p, "n": n, "k": k, "implementation": impl,
                 "chunk": chunk, "nominal_flops": nominal, "ours": ours, "nt": nt}
          t_ours = statistics.median(ours["times_s"]) if ours.get("status") == "ok" else None
          t_nt = statistics.median(nt["times_s"]) if nt.get("status") == "ok" else None
          row["ours_median_s"], row["nt_median_s"] = t_ours, t_nt
          row["ratio_nt_over_ours"] = t_nt / t_ours if t_ours and t_nt else None
          row["ours_gflops"] = nominal / t_ours / 1e9 if t_ours else None
          row["nt_gflops"] = nominal / t_nt / 1e9 if t_nt else None
          contracted = "JACOBIAN_CONTRACTION" in (impl, ours.get("chose"))
          row["ours_work_gflops"] = work / t_ours / 1e9 if t_ours and contracted else None
          row["work_fraction_of_matmul"] = (row["ours_work_gflops"] / rate0
                                            if row["ours_work_gflops"] else None)
          row["trace_rel_diff"] = (abs(ours["trace"] - nt["trace"]) / abs(nt["trace"])
                                   if t_ours and t_nt else None)
          rows.append(row)
          case.append(row)
          label = SHORT[impl] + ("" if impl != "AUTO" else
                                 "=" + SHORT.get(ours.get("chose", ""), "?"))
          pct = row["work_fraction_of_matmul"]
          line = (f"{model_name:5} {p:8d} {n:5d} {label:8} {_fmt_time(ours)} "
                  f"{_fmt_time(nt)} {f(row['ratio_nt_over_ours'], '6.2f')} "
                  f"{f(row['ours_gflops'], '9.1f')} {f(row['nt_gflops'], '8.1f')} "
                  f"{f(row['ours_work_gflops'], '9.1f')} {f(pct and 100 * pct, '5.0f')} "
                  f"{f(ours.get('peak_rss_gib'), '8.2f')} {f(row['trace_rel_diff'], '9.1e')}")
          lines.append(line)
          print(line, flush=True)
          save()
        summary.append(_summarise(model_name, n, case))
        print(summary[-1]["line"], flush=True)
        lines.append(summary[-1]["line"])
        save()
  rate1 = matmul_gflops()
  lines.append(f"matmul rate before / after: {rate0:.1f} / {rate1:.1f} GFLOP/s")
  print(lines[-1])
  save()
  write_json(args.out, {**json.loads(pathlib.Path(args.out).read_text()),
                        "matmul_gflops_after": rate1})
  print(f"wrote {args.out}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
