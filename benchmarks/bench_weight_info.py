"""Information in the weights: our exact / diagonal / K-FAC forms vs a naive numpy baseline.

Baseline: the dense per-example Jacobian (``jax.jacrev`` of the whole batch), the Fisher
``sum_i J_i^T (diag p_i - p_i p_i^T) J_i`` in numpy, and the log-det / inverse form of the KL
(``slogdet`` + ``inv``), i.e. the formula as written. Ours: chunked per-example Jacobians and the
spectral closed form. Each timing is the second call (compiled), median of 3.

Usage: ``python benchmarks/bench_weight_info.py [--n 200] [--hidden 16]``; writes
``benchmarks/out/bench_weight_info.json``.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import time

import jax
import numpy as np
from jax.flatten_util import ravel_pytree

import gbounds


def _time(fn, reps=3):
  fn()
  ts = []
  for _ in range(reps):
    t = time.perf_counter()
    jax.block_until_ready(fn())
    ts.append(time.perf_counter() - t)
  return statistics.median(ts)


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--n", type=int, default=200)
  ap.add_argument("--hidden", type=int, default=16)
  ap.add_argument("--inputs", type=int, default=64)
  args = ap.parse_args()
  x = jax.random.normal(jax.random.key(0), (args.n, args.inputs))
  mf = gbounds.models.as_model_fn(gbounds.models.MLP(hidden=(args.hidden,), out=10), example_input=x[:2], key=0)
  d = gbounds.models.count_params(mf.params)
  beta, lam = 1.0, 1.0

  def baseline():
    flat, unravel = ravel_pytree(mf.params)
    jac = np.asarray(jax.jacrev(lambda w: mf.apply_fn(unravel(w), x))(flat), np.float64)
    p = np.asarray(jax.nn.softmax(mf.apply_fn(mf.params, x)), np.float64)
    h = sum(jac[i].T @ (np.diag(p[i]) - np.outer(p[i], p[i])) @ jac[i] for i in range(args.n))
    m = h + beta / lam ** 2 * np.eye(d)
    w = np.asarray(flat, np.float64)
    return (0.5 * np.linalg.slogdet(m)[1] + d / 2 * np.log(lam ** 2 / beta) - d / 2
            + (w @ w + beta * np.trace(np.linalg.inv(m))) / (2 * lam ** 2))

  rows = []
  ref = float(baseline())
  rows.append(("baseline (dense Jacobian, numpy slogdet+inv)", _time(baseline), ref))
  for form in ("exact", "diagonal", "kfac"):
    fn = lambda form=form: gbounds.info.information_in_weights(  # noqa: E731
        mf.apply_fn, mf.params, x, beta=beta, prior_scale=lam, form=form, chunk_size=100).total
    rows.append((f"ours: {form}", _time(fn), float(fn())))
  print(f"n={args.n}, d={d}, backend={jax.default_backend()}")
  print("| method | seconds | information (nats) |\n|---|---|---|")
  for name, t, v in rows:
    print(f"| {name} | {t:.3f} | {v:.2f} |")
  out = pathlib.Path(__file__).parent / "out"
  out.mkdir(exist_ok=True)
  (out / "bench_weight_info.json").write_text(json.dumps(
      dict(n=args.n, d=d, rows=[dict(method=a, seconds=b, nats=c) for a, b, c in rows]), indent=2))


if __name__ == "__main__":
  main()
