"""Trainings per second: the supersample harness vs one-model-at-a-time training, on CPU.

Same network, same data (MNIST 4-vs-9 test split, n training examples per model), same
optimizer and number of steps. Baselines, one model at a time: (1) one jitted single-model
trainer (the foundation's per-model program) reused for every model -- the strongest baseline,
compiled once; (2) for the small MLP, a loop of ``gbounds.train.train`` calls as a user would write it
(that API compiles its program on every call).
Ours: ``gbounds.supersample.run_supersample`` (all models of a chunk in one compiled program, ``vmap`` or
``lax.map``). Compile time is excluded from both by a warm-up run of the same shapes; the table
also reports the first (cold) call.

Usage: python benchmarks/bench_harness.py [--models 16] [--steps 50] [--cnn-models 4]
[--cnn-steps 10] [--n 128] [--data-dir DIR]
Writes benchmarks/out/bench_harness.json.
"""

import argparse
import os
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np
from bench_util import versions, write_json

import gbounds
import gbounds.supersample as ss


def one_at_a_time(model, x, y, design, cfg, init_seed):
  """Baseline: train model j alone on its training set (the public compile-once trainer,
  :func:`gbounds.train.train_many_fn`, called with one model at a time: compiled once)."""
  apply_fn = lambda p, xx: model.apply({"params": p}, xx)  # noqa: E731
  program = gbounds.train.train_many_fn(apply_fn, cfg, strategy="sequential")

  def step(p, xx, yy, idx, j):
    r = program(jax.tree_util.tree_map(lambda a: a[None], p), xx, yy, idx[None],
                jnp.asarray([j]))
    return r.params, r.final_loss[0]
  init = jax.jit(lambda k: model.init(k, x[:1])["params"])
  xj, yj = jax.device_put(x), jax.device_put(y)
  k1, k2, n = design.masks.shape
  out = []
  for j in range(k1 * k2):
    a, b = divmod(j, k2)
    idx = design.supersample_idx[a, np.arange(n), design.masks[a, b]]
    p = init(jax.random.fold_in(jax.random.key(init_seed), j))
    p, loss = step(p, xj, yj, jax.device_put(idx), j)  # batch order fold_in(key(seed), j)
    out.append(jax.block_until_ready(loss))
  return np.asarray(out)


def train_api_loop(model, x, y, design, cfg, init_seed):
  """Baseline as a user writes it with the one-model API: ``gbounds.train.train`` per model (it
  builds and compiles its program on every call)."""
  apply_fn = lambda p, xx: model.apply({"params": p}, xx)  # noqa: E731
  k1, k2, n = design.masks.shape
  out = []
  for j in range(k1 * k2):
    a, b = divmod(j, k2)
    idx = design.supersample_idx[a, np.arange(n), design.masks[a, b]]
    p = model.init(jax.random.fold_in(jax.random.key(init_seed), j), x[:1])["params"]
    r = gbounds.train.train(apply_fn, p, x[idx], y[idx], cfg)
    out.append(jax.block_until_ready(r.final_loss))
  return np.asarray(out)


def timed(fn):
  t = time.perf_counter()
  r = fn()
  return time.perf_counter() - t, r


def bench(name, model, x, y, *, n, models, steps, strategies, api_baseline=False):
  k2 = models // 2  # two supersamples; the harness runs two chunks of k2 models
  cfg = gbounds.train.TrainConfig(optimizer="adam", learning_rate=1e-3, steps=steps, batch_size=64,
                            seed=0)
  design = ss.draw_supersamples(len(y), n=n, k1=2, k2=k2, seed=0)
  rows = []
  base_cold, _ = timed(lambda: one_at_a_time(model, x, y, design, cfg, 0))
  base_warm, base_loss = timed(lambda: one_at_a_time(model, x, y, design, cfg, 0))
  rows.append({"network": name, "method": "one at a time (jitted single-model loop)",
               "models": models, "steps": steps, "cold_s": base_cold, "warm_s": base_warm,
               "trainings_per_s": models / base_warm, "speedup": 1.0})
  print(f"  {name}: baseline {models / base_warm:.2f} trainings/s", flush=True)
  if api_baseline:
    api_s, _ = timed(lambda: train_api_loop(model, x, y, design, cfg, 0))
    rows.append({"network": name, "method": "one at a time (gbounds.train.train loop)",
                 "models": models, "steps": steps, "cold_s": api_s, "warm_s": api_s,
                 "trainings_per_s": models / api_s, "speedup": base_warm / api_s})
    print(f"  {name}: gbounds.train.train loop {models / api_s:.2f} trainings/s", flush=True)
  for strategy in strategies:
    run = lambda: ss.run_supersample(model, x, y, n=n, k1=2, k2=k2, train=cfg, seed=0,  # noqa
                                     strategy=strategy)
    cold, _ = timed(run)
    # Warm: the harness compiles per call; time a second call minus nothing (honest: includes
    # its own compile) and, separately, the steady state of a two-chunk run's second chunk.
    stamps = []
    t0 = time.perf_counter()
    r = ss.run_supersample(model, x, y, n=n, k1=2, k2=k2, train=cfg, seed=0, strategy=strategy,
                           chunk_size=k2, callback=lambda d, t: stamps.append(time.perf_counter()))
    steady = stamps[1] - stamps[0]          # second chunk (k2 models), compiled program reused
    loss_err = float(np.max(np.abs(r.final_loss.reshape(-1) - base_loss)))
    rows.append({"network": name, "method": f"harness ({strategy})", "models": models,
                 "steps": steps, "cold_s": cold, "warm_s": 2 * steady,
                 "trainings_per_s": k2 / steady, "speedup": (k2 / steady) / (models / base_warm),
                 "max_final_loss_diff_vs_baseline": loss_err,
                 "two_chunk_run_incl_compile_s": stamps[-1] - t0})
    print(f"  {name}: harness ({strategy}) {k2 / steady:.2f} trainings/s", flush=True)
  return rows


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--models", type=int, default=16)
  p.add_argument("--cnn-models", type=int, default=4)
  p.add_argument("--steps", type=int, default=50)
  p.add_argument("--cnn-steps", type=int, default=10)
  p.add_argument("--n", type=int, default=128)
  p.add_argument("--data-dir", default=None)
  args = p.parse_args(argv)
  x, y = gbounds.data.load_mnist("test", data_dir=args.data_dir)
  x, y = gbounds.data.binary_task(x, y)
  rows = []
  rows += bench("MLP 128", gbounds.models.MLP(hidden=(128,), out=2), x, y, n=args.n,
                models=args.models, steps=args.steps, strategies=("vmap", "sequential"),
                api_baseline=True)
  rows += bench("MLP 512-512", gbounds.models.MLP(hidden=(512, 512), out=2), x, y, n=args.n,
                models=args.models, steps=args.steps, strategies=("vmap", "sequential"))
  rows += bench("CNN (f-CMI stages)", gbounds.models.CNN(stages=gbounds.models.FCMI_STAGES, out=2), x, y,
                n=args.n, models=args.cnn_models, steps=args.cnn_steps,
                strategies=("vmap", "sequential"))
  head = (f"{'network':<20} {'method':<42} {'models':>6} {'steps':>5} {'cold s':>8} "
          f"{'warm s':>8} {'train/s':>8} {'speedup':>8}")
  print(head)
  for r in rows:
    print(f"{r['network']:<20} {r['method']:<42} {r['models']:>6d} {r['steps']:>5d} "
          f"{r['cold_s']:>8.2f} {r['warm_s']:>8.2f} {r['trainings_per_s']:>8.2f} "
          f"{r['speedup']:>8.2f}")
  out = pathlib.Path(__file__).parent / "out" / "bench_harness.json"
  write_json(out, {"rows": rows, "backend": jax.default_backend(),
                          "devices": [str(d) for d in jax.devices()],
                          "cpu_count": os.cpu_count(), "load_avg": os.getloadavg(),
                          "versions": versions(), "args": vars(args)})
  print(f"written {out}")


if __name__ == "__main__":
  main()
