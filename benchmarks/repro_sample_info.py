"""Reproduction of Harutyunyan et al. (ICLR 2021), Table 1 (MLP column), at CPU scale.

Pearson r between the linearized (closed-form, all n at once) and the actually retrained
leave-one-out change of a one-hidden-layer ReLU MLP on MNIST 4-vs-9, for >= 100 retrained
leave-one-out networks, plus mislabeled-example detection AUROC (10% label noise, F-SI).
The same run is available as :func:`gbounds.experiments.reproduce_sample_info`.

Run: ``.venv/bin/python benchmarks/repro_sample_info.py [--n 100 --width 128 --steps 500]``;
writes ``benchmarks/out/repro_sample_info.json``.
"""

from __future__ import annotations

import argparse
import pathlib

import gbounds


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
  args = ap.parse_args()
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
