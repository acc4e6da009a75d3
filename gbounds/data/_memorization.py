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
  """Draws grey images in one of two colour channels (Colored MNIST's input).

  Args:
    images: grey images ``(N, H, W)`` (Bansal et al. use 14x14).
    colors: ``(N,)`` channel of each image, in {0, 1} (0 red, 1 green).

  Returns:
    float32 ``(N, H, W, 2)``: image ``i`` in channel ``colors[i]``, zeros in the other.

  Raises:
    InvalidInputError: ``images`` not of rank 3, or ``colors`` not one 0/1 value per image.
  """
  images, colors = np.asarray(images), np.asarray(colors)
  _errors.check_rank("images", images, 3)
  _errors.check_rank("colors", colors, 1)
  _errors.check_same_leading(("images", "colors"), images, colors)
  _errors.check_binary("colors", colors)
  colors = colors.astype(np.int64)
  out = np.zeros((*images.shape, 2), np.float32)
  out[np.arange(len(images)), ..., colors] = images
  return out


def colored_mnist(images: np.ndarray, digits: np.ndarray, *, e: float, label_noise: float = 0.25,
                  seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """Colored MNIST (Arjovsky et al. 2019; Bansal, Pruthi and Belinkov 2022, Sec. 4).

  The binary label is ``digit < 5``, flipped with probability ``label_noise``; the colour is the
  (noisy) label, flipped with probability ``e``. Draws (numpy, ``seed``): first the label flips,
  then the colour flips, one uniform per example each.

  Args:
    images: grey images ``(N, H, W)``.
    digits: ``(N,)`` digit labels 0..9.
    e: colour-flip probability in [0, 1] (small: colour is a shortcut to the label).
    label_noise: label-flip probability in [0, 1].
    seed: numpy seed.

  Returns:
    ``(x, y)``: ``x`` float32 ``(N, H, W, 2)`` (:func:`colorize`), ``y`` int32 in {0, 1}.

  Raises:
    InvalidInputError: ``e`` or ``label_noise`` outside [0, 1], or mismatched shapes.
  """
  _errors.check_probability("e", e)
  _errors.check_probability("label_noise", label_noise)
  images, digits = np.asarray(images), np.asarray(digits)
  _errors.check_rank("digits", digits, 1)
  _errors.check_same_leading(("images", "digits"), images, digits)
  rng = np.random.default_rng(seed)
  y = (digits < 5).astype(np.int32)
  y = np.where(rng.random(len(y)) < label_noise, 1 - y, y).astype(np.int32)
  colors = np.where(rng.random(len(y)) < e, 1 - y, y)
  return colorize(images, colors), y


def shuffled_labels(digits: np.ndarray, *, beta: float, num_classes: int = 10,
                    seed: int = 0) -> np.ndarray:
  """Shuffled MNIST labels (Bansal, Pruthi and Belinkov 2022, Sec. 5).

  ``round(beta * N)`` labels, chosen uniformly without replacement, are redrawn uniformly from
  all ``num_classes`` classes (a redrawn label may coincide with the true one).

  Args:
    digits: ``(N,)`` integer labels.
    beta: fraction of labels to redraw, in [0, 1].
    num_classes: number of classes to draw from.
    seed: numpy seed.

  Returns:
    int32 ``(N,)`` labels.

  Raises:
    InvalidInputError: ``beta`` outside [0, 1], ``digits`` not of rank 1, or ``num_classes`` < 1.
  """
  _errors.check_probability("beta", beta)
  _errors.check_rank("digits", digits, 1)
  num_classes = _errors.check_int("num_classes", num_classes, 1)
  rng = np.random.default_rng(seed)
  y = np.asarray(digits).astype(np.int32).copy()
  idx = rng.choice(len(y), size=int(round(beta * len(y))), replace=False)
  y[idx] = rng.integers(0, num_classes, size=idx.size)
  return y
