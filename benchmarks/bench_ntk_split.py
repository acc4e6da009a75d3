"""Where the Jacobian-contraction NTK spends its time, against the in-run matmul rate.

The acceptance goal of issue 14 asks the Jacobian contraction to run at >= 70 % of the
machine's matmul rate (contraction flops over wall time, Jacobians included). This script
splits one symmetric kernel (MLP 784-512-512-2, float32, random inputs, n examples in chunks of
C) into its two parts and times each one, interleaved with the square-matmul rate:

* ``jacobians``: the ``n / C`` chunk Jacobians (``vmap(jacrev)``, one array per parameter leaf,
  as the engine does), each written to fresh memory;
* ``contraction``: the ``c (c + 1) / 2`` blocks on and above the diagonal, each the sum over
  leaves of ``J_a J_b^T`` (the engine's leaf-by-leaf contraction);
* ``flattened``: the same blocks as one product of flattened ``(C k, P)`` Jacobians (the
  alternative the issue suggests), Jacobians included;
* ``engine``: ``gbounds.ntk.empirical_ntk_fn`` (JACOBIAN_CONTRACTION) on the same inputs;
* products of a ``(m, P)`` and an ``(m', P)`` matrix for larger blocks than the chunk allows.

Fractions are of the square 2048 x 2048 matmul rate measured just before each part. The
leaf-by-leaf pieces are written here (four lines each) rather than imported, so the script uses
the public API only; ``engine`` checks that they match the library's kernel (relative
difference printed).

Usage:
  .venv/bin/python benchmarks/bench_ntk_split.py                # n = 1024, C = 256 (~3 min)
  .venv/bin/python benchmarks/bench_ntk_split.py --n 512 --chunk 128
Writes benchmarks/out/bench_ntk_split.json.
"""

from __future__ import annotations

import argparse
import functools
import pathlib
import sys

import jax
import jax.numpy as jnp
from bench_util import matmul_gflops, timed_median, write_json
from jax.flatten_util import ravel_pytree

import gbounds

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _timed(fn, repeats: int) -> float:
  return timed_median(fn, repeats)[1]


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--n", type=int, default=1024)
  parser.add_argument("--chunk", type=int, default=256)
  parser.add_argument("--repeats", type=int, default=2)
  parser.add_argument("--out", default=str(ROOT / "benchmarks" / "out" / "bench_ntk_split.json"))
  args = parser.parse_args(sys.argv[1:] if argv is None else argv)
  n, chunk = args.n, args.chunk
  if n % chunk:
    parser.error("--n must be a multiple of --chunk")

  model = gbounds.models.MLP(hidden=(512, 512), out=2)
  x = jax.random.normal(jax.random.key(0), (n, 784), jnp.float32)
  mf = gbounds.models.as_model_fn(model, example_input=x[:1])
  apply_fn, params = mf.apply_fn, mf.params
  flat0, unravel = ravel_pytree(params)
  p, k = int(flat0.size), 2
  chunks = [x[i:i + chunk] for i in range(0, n, chunk)]
  c = len(chunks)
  blocks = [(i, j) for i in range(c) for j in range(i, c)]
  work = len(blocks) * 2.0 * (chunk * k) ** 2 * p

  @jax.jit
  def leaf_jacobians(xc):
    jac = jax.vmap(jax.jacrev(lambda w, xi: apply_fn(w, xi[None])[0]), in_axes=(None, 0))(
        params, xc)
    return [a.reshape(a.shape[0] * a.shape[1], -1) for a in jax.tree_util.tree_leaves(jac)]

  @jax.jit
  def leaf_block(la, lb):
    return sum(a @ b.T for a, b in zip(la, lb))

  @jax.jit
  def flat_jacobian(xc):
    single = lambda w, xi: apply_fn(unravel(w), xi[None])[0]  # noqa: E731
    return jax.vmap(jax.jacrev(single), in_axes=(None, 0))(flat0, xc).reshape(-1, p)

  flat_block = jax.jit(lambda a, b: a @ b.T)
  engine = gbounds.ntk.empirical_ntk_fn(apply_fn, implementation="JACOBIAN_CONTRACTION",
                                        chunk_size=chunk)

  rows = []

  def record(name, seconds, flops):
    rate = matmul_gflops()
    frac = flops / seconds / 1e9 / rate if flops else None
    rows.append({"part": name, "seconds": seconds, "flops": flops, "matmul_gflops": rate,
                 "fraction_of_matmul": frac})
    print(f"{name:<34} {seconds:8.2f} s  {'-' if frac is None else f'{frac:5.2f}':>5} of "
          f"{rate:6.1f} GFLOP/s", flush=True)

  print(f"jax {jax.__version__} on {jax.default_backend()}, MLP 784-512-512-2 (P = {p:,}), "
        f"n = {n}, chunk {chunk}, {len(blocks)} blocks, median of {args.repeats}", flush=True)
  print(f"{'part':<34} {'time':>10}  fraction of the in-run matmul rate", flush=True)
  jacs: list = []

  def all_jacobians():
    jacs.clear()
    jacs.extend(leaf_jacobians(xc) for xc in chunks)
    return jacs
  record("jacobians (leaf by leaf)", _timed(all_jacobians, args.repeats), 0.0)
  record("contraction (leaf by leaf)", _timed(
      lambda: [leaf_block(jacs[i], jacs[j]) for i, j in blocks], args.repeats), work)

  def leafwise_kernel():
    js = [leaf_jacobians(xc) for xc in chunks]
    return [leaf_block(js[i], js[j]) for i, j in blocks]
  record("jacobians + contraction (leaves)", _timed(leafwise_kernel, args.repeats), work)

  def flattened_kernel():
    js = [flat_jacobian(xc) for xc in chunks]
    return [flat_block(js[i], js[j]) for i, j in blocks]
  record("jacobians + contraction (flattened)", _timed(flattened_kernel, args.repeats), work)
  record("engine (empirical_ntk_fn, JC)", _timed(lambda: engine(x, None, params), args.repeats),
         work)
  jacs.clear()

  for m1, m2 in ((chunk * k, chunk * k), (chunk * k, 4 * chunk * k), (2 * chunk * k, 2 * chunk * k)):
    a = jax.random.normal(jax.random.key(1), (m1, p), jnp.float32)
    b = jax.random.normal(jax.random.key(2), (m2, p), jnp.float32)
    record(f"product ({m1}, P) x ({m2}, P)^T", _timed(functools.partial(flat_block, a, b),
                                                      args.repeats), 2.0 * m1 * m2 * p)
    del a, b

  # The leaf-by-leaf pieces written here must give the library's kernel.
  js = [leaf_jacobians(xc) for xc in chunks]
  ref = engine(x, None, params)
  diff = max(float(jnp.max(jnp.abs(leaf_block(js[i], js[j]) - ref[i * chunk * k:(i + 1) * chunk * k,
                                                                   j * chunk * k:(j + 1) * chunk * k])))
             for i, j in blocks) / float(jnp.max(jnp.abs(ref)))
  print(f"largest relative difference, pieces vs engine: {diff:.1e}", flush=True)
  out = write_json(args.out, {"n": n, "chunk": chunk, "params": p, "k": k, "blocks": len(blocks),
                              "contraction_flops": work, "rows": rows,
                              "pieces_vs_engine_max_rel_diff": diff, "jax": jax.__version__,
                              "backend": jax.default_backend()})
  print(f"wrote {out}")
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
