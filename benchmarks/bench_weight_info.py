"""Information in the weights: our exact / diagonal / K-FAC forms vs a naive numpy baseline, the
two routes of the exact form (``d x d`` Fisher vs ``(n k) x (n k)`` Gram), and the exact form on
an MNIST MLP.

Parts (``--part``, default ``all``):

* ``forms``: baseline = the dense per-example Jacobian (``jax.jacrev`` of the whole batch), the
  Fisher ``sum_i J_i^T (diag p_i - p_i p_i^T) J_i`` in numpy and the log-det / inverse form of the
  KL (``slogdet`` + ``inv``), i.e. the formula as written; ours: chunked per-example Jacobians and
  the spectral closed form. Each timing is the second call (compiled), median of 3.
* ``routes``: ``form="exact"`` with ``exact_route`` forced to ``dense`` and to ``kernel`` and left
  on ``auto``, on one MLP at two sample sizes (``n k < d`` and ``n k > d``); second call
  (compiled), median of ``--reps``. Ratios matter, not the absolute seconds.
* ``mnist``: MLP 784-256-256-10 (float32) briefly trained on ``--mnist-n`` MNIST test-split images,
  exact information (auto route: the kernel one) on the same images, one call (compilation
  included); peak memory = ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` (peak resident set of the
  whole process, so run this part alone: ``--part mnist``), with the resident set before the call.
* ``big``: the kernel route at ``d`` about 1e6 (MLP 784-1024-128-10) on ``--big-n`` images, to
  measure the ``n``-independent memory of the chunked Jacobian rows (run alone too).

Every part records the in-run float32 matmul rate (2048 x 2048, median of 5) beside its figures.

Usage: ``GBOUNDS_DATA_DIR=... python benchmarks/bench_weight_info.py [--part all] [--n 200]
[--hidden 16] [--mnist-n 1000]``; writes ``benchmarks/out/bench_weight_info[_PART].json``.
"""

from __future__ import annotations

import argparse
import pathlib
import resource
import time

import jax
import jax.numpy as jnp
import numpy as np
from bench_util import matmul_gflops, peak_rss_gib, timed_median, versions, write_json
from jax.flatten_util import ravel_pytree

import gbounds


def _time(fn, reps=3):
  return timed_median(fn, reps)[1]


def _current_rss_gib() -> float:
  try:
    with open("/proc/self/statm") as f:
      return int(f.read().split()[1]) * resource.getpagesize() / 2 ** 30
  except OSError:
    return float("nan")


def forms(args):
  x = jax.random.normal(jax.random.key(0), (args.n, args.inputs))
  mf = gbounds.models.as_model_fn(gbounds.models.MLP(hidden=(args.hidden,), out=10),
                                  example_input=x[:2], key=0)
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
  print(f"[forms] n={args.n}, d={d}, backend={jax.default_backend()}")
  print("| method | seconds | information (nats) |\n|---|---|---|")
  for name, t, v in rows:
    print(f"| {name} | {t:.3f} | {v:.2f} |")
  return dict(n=args.n, d=d, rows=[dict(method=a, seconds=b, nats=c) for a, b, c in rows])


def routes(args):
  """Dense vs kernel route of the exact form, where both fit."""
  out = []
  for n in args.route_n:
    x = jax.random.normal(jax.random.key(0), (n, args.route_inputs))
    mf = gbounds.models.as_model_fn(gbounds.models.MLP(hidden=(args.route_hidden,), out=10),
                                    example_input=x[:2], key=0)
    d = gbounds.models.count_params(mf.params)
    res = {}
    for route in ("dense", "kernel", "auto"):
      fn = lambda route=route: gbounds.info.information_in_weights(  # noqa: E731
          mf.apply_fn, mf.params, x, beta=1.0, prior_scale=1.0, form="exact", chunk_size=50,
          exact_route=route)
      r = fn()
      res[route] = dict(seconds=_time(lambda fn=fn: fn().total, reps=args.reps),
                        nats=float(r.total), log_det=float(r.log_det))
    rel = abs(res["kernel"]["log_det"] / res["dense"]["log_det"] - 1)
    fastest = min(res["dense"]["seconds"], res["kernel"]["seconds"])
    out.append(dict(n=n, nk=10 * n, d=d, routes=res,
                    dense_over_kernel=res["dense"]["seconds"] / res["kernel"]["seconds"],
                    auto_over_fastest=res["auto"]["seconds"] / fastest,
                    log_det_rel_diff=rel))
  rate = matmul_gflops()
  print(f"[routes] float32, MLP {args.route_inputs}-{args.route_hidden}-10, "
        f"backend={jax.default_backend()}, matmul {rate:.0f} GFLOP/s")
  print("| n | n k | d | dense s | kernel s | auto s | dense/kernel | auto/fastest |"
        " log-det rel. diff |\n|---|---|---|---|---|---|---|---|---|")
  for o in out:
    r = o["routes"]
    print(f"| {o['n']} | {o['nk']} | {o['d']} | {r['dense']['seconds']:.3f} | "
          f"{r['kernel']['seconds']:.3f} | {r['auto']['seconds']:.3f} | "
          f"{o['dense_over_kernel']:.2f} | {o['auto_over_fastest']:.2f} | "
          f"{o['log_det_rel_diff']:.1e} |")
  return dict(matmul_gflops=rate, cases=out, reps=args.reps)


def _train(mf, x, y, steps, lr):
  """A few full-batch gradient steps on the cross-entropy (plain SGD)."""
  def loss(p):
    logp = jax.nn.log_softmax(mf.apply_fn(p, x))
    return -jnp.mean(jnp.take_along_axis(logp, y[:, None], axis=1))

  step = jax.jit(lambda p: jax.tree.map(lambda w, g: w - lr * g, p, jax.grad(loss)(p)))
  params = mf.params
  for _ in range(steps):
    params = step(params)
  acc = float(jnp.mean(jnp.argmax(mf.apply_fn(params, x), -1) == y))
  return params, acc


def mnist(args):
  """Exact information of an MLP 784-256-256-10 on MNIST test images (the kernel route)."""
  rate0 = matmul_gflops()
  xs, ys = gbounds.data.load_mnist("test")
  x, y = jnp.asarray(xs[:args.mnist_n]), jnp.asarray(ys[:args.mnist_n])
  mf = gbounds.models.as_model_fn(gbounds.models.MLP(hidden=(256, 256), out=10),
                                  example_input=x[:2], key=0)
  d = gbounds.models.count_params(mf.params)
  params, acc = _train(mf, x, y, args.train_steps, 0.1)
  rss_before, peak_before = _current_rss_gib(), peak_rss_gib()
  t = time.perf_counter()
  r = gbounds.info.information_in_weights(mf.apply_fn, params, x, beta=1.0, prior_scale=0.1,
                                          form="exact")
  jax.block_until_ready(r.total)
  seconds = time.perf_counter() - t
  peak = peak_rss_gib()
  rate1 = matmul_gflops()
  size = 10 * args.mnist_n
  # one float32 eigh of the (n k) x (n k) size, to split the time for the extrapolation
  a = jax.random.normal(jax.random.key(1), (size, size // 4), jnp.float32)
  g = a @ a.T
  t = time.perf_counter()
  jax.block_until_ready(jnp.linalg.eigh(g)[0])
  eigh_s = time.perf_counter() - t
  res = dict(n=args.mnist_n, nk=size, d=d, train_accuracy=acc, train_steps=args.train_steps,
             seconds=seconds, eigh_seconds_one=eigh_s, peak_rss_gib=peak,
             rss_before_gib=rss_before, peak_rss_before_gib=peak_before,
             matmul_gflops_before=rate0, matmul_gflops_after=rate1,
             total_nats=float(r.total), log_det=float(r.log_det),
             trace_term=float(r.trace_term), norm_term=float(r.norm_term),
             fisher_trace=float(r.fisher_trace),
             per_layer={k: float(v) for k, v in r.per_layer.items()},
             memory_measure="resource.getrusage(RUSAGE_SELF).ru_maxrss (process peak RSS)")
  print(f"[mnist] MLP 784-256-256-10 float32, n={args.mnist_n} test images, d={d}, k=10, "
        f"n k={size}, backend={jax.default_backend()}, train acc {acc:.3f}")
  print("| n | n k | d | seconds (incl. compile) | one eigh (n k) s | peak RSS GiB | RSS before "
        "GiB | matmul GFLOP/s before/after | information nats |\n|---|---|---|---|---|---|---|---|---|")
  print(f"| {args.mnist_n} | {size} | {d} | {seconds:.1f} | {eigh_s:.1f} | {peak:.2f} | "
        f"{rss_before:.2f} | {rate0:.0f}/{rate1:.0f} | {float(r.total):.2f} |")
  print("per layer:", {k: round(v, 2) for k, v in res["per_layer"].items()})
  return res


def big(args):
  """Kernel route at d ~ 1e6: the memory of the chunked Jacobian rows (independent of n)."""
  rate = matmul_gflops()
  xs, _ = gbounds.data.load_mnist("test")
  x = jnp.asarray(xs[:args.big_n])
  mf = gbounds.models.as_model_fn(gbounds.models.MLP(hidden=(1024, 128), out=10),
                                  example_input=x[:2], key=0)
  d = gbounds.models.count_params(mf.params)
  rss_before = _current_rss_gib()
  t = time.perf_counter()
  r = gbounds.info.information_in_weights(mf.apply_fn, mf.params, x, beta=1.0, prior_scale=0.1,
                                          form="exact")
  jax.block_until_ready(r.total)
  seconds = time.perf_counter() - t
  peak = peak_rss_gib()
  res = dict(n=args.big_n, nk=10 * args.big_n, d=d, seconds=seconds, peak_rss_gib=peak,
             rss_before_gib=rss_before, matmul_gflops=rate, total_nats=float(r.total),
             memory_measure="resource.getrusage(RUSAGE_SELF).ru_maxrss (process peak RSS)")
  print(f"[big] MLP 784-1024-128-10 float32, n={args.big_n}, d={d}, matmul {rate:.0f} GFLOP/s")
  print("| n | n k | d | seconds | peak RSS GiB | RSS before GiB |\n|---|---|---|---|---|---|")
  print(f"| {args.big_n} | {10 * args.big_n} | {d} | {seconds:.1f} | {peak:.2f} | "
        f"{rss_before:.2f} |")
  return res


def main():
  ap = argparse.ArgumentParser()
  ap.add_argument("--part", choices=("forms", "routes", "mnist", "big", "all"), default="all")
  ap.add_argument("--n", type=int, default=200)
  ap.add_argument("--hidden", type=int, default=16)
  ap.add_argument("--inputs", type=int, default=64)
  ap.add_argument("--route-n", type=int, nargs="+", default=[20, 200])
  ap.add_argument("--route-inputs", type=int, default=32)
  ap.add_argument("--route-hidden", type=int, default=32)
  ap.add_argument("--reps", type=int, default=3)
  ap.add_argument("--mnist-n", type=int, default=1000)
  ap.add_argument("--train-steps", type=int, default=100)
  ap.add_argument("--big-n", type=int, default=50)
  args = ap.parse_args()
  parts = ("forms", "routes", "mnist", "big") if args.part == "all" else (args.part,)
  fns = dict(forms=forms, routes=routes, mnist=mnist, big=big)
  result = {p: fns[p](args) for p in parts}
  result.update(backend=jax.default_backend(), versions=versions(), args=vars(args))
  name = "bench_weight_info.json" if args.part == "all" else f"bench_weight_info_{args.part}.json"
  path = write_json(pathlib.Path(__file__).parent / "out" / name, result)
  print(f"wrote {path}")


if __name__ == "__main__":
  main()
