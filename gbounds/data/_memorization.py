"""Colored MNIST and Shuffled MNIST: the controlled memorization settings of Bansal et al.

Bansal, Pruthi and Belinkov, "Measures of Information Reflect Memorization Patterns", NeurIPS 2022,
Sec. 4-5. Colored MNIST (after Arjovsky et al. 2019, "Invariant Risk Minimization"): binary label
``digit < 5`` flipped with probability ``label_noise``, the digit drawn in the channel of the
(noisy) label flipped with probability ``e`` (small ``e``: colour is a shortcut). Shuffled MNIST: a
fraction ``beta`` of the labels redrawn uniformly from all classes.
"""

from __future__ import annotations

import numpy as np

from gbounds._src import errors as _errors

__all__ = ["colored_mnist", "colorize", "shuffled_labels"]


def colorize(images: np.ndarray, colors: np.ndarray) -> np.ndarray:
  """(N, 14, 14) grey images and colours in {0, 1} -> (N, 14, 14, 2): the digit in channel
  ``color`` (0 red, 1 green), zeros in the other."""
  out = np.zeros((*images.shape, 2), np.float32)
  out[np.arange(len(images)), ..., colors] = images
  return out


def colored_mnist(images: np.ndarray, digits: np.ndarray, *, e: float, label_noise: float = 0.25,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """Colored MNIST (Arjovsky et al. 2019; Bansal et al. 2022): binary label ``digit < 5``
  flipped with probability ``label_noise``; colour = label flipped with probability ``e``."""
  _errors.check_probability("e", e)
  rng = np.random.default_rng(seed)
  y = (digits < 5).astype(np.int32)
  y = np.where(rng.random(len(y)) < label_noise, 1 - y, y).astype(np.int32)
  colors = np.where(rng.random(len(y)) < e, 1 - y, y)
  return colorize(images, colors), y


def shuffled_labels(digits: np.ndarray, *, beta: float, num_classes: int = 10,
                    seed: int = 0) -> np.ndarray:
  """Redraws a fraction ``beta`` of the labels (chosen at random) uniformly from all classes
  (a redrawn label may coincide with the true one)."""
  _errors.check_probability("beta", beta)
  rng = np.random.default_rng(seed)
  y = np.asarray(digits).astype(np.int32).copy()
  idx = rng.choice(len(y), size=int(round(beta * len(y))), replace=False)
  y[idx] = rng.integers(0, num_classes, size=idx.size)
  return y
