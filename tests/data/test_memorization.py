"""Tests for gbounds.data._memorization: Colored MNIST and Shuffled MNIST construction."""

import numpy as np
import pytest

import gbounds.data as gd
from gbounds import InvalidInputError


def test_colorize_puts_digit_in_one_channel():
  img = np.random.default_rng(0).random((4, 14, 14)).astype(np.float32)
  colors = np.array([0, 1, 1, 0])
  out = gd.colorize(img, colors)
  assert out.shape == (4, 14, 14, 2) and out.dtype == np.float32
  for i, c in enumerate(colors):
    np.testing.assert_array_equal(out[i, ..., c], img[i])
    np.testing.assert_array_equal(out[i, ..., 1 - c], 0)


def test_colorize_refusals():
  img = np.zeros((3, 5, 5), np.float32)
  with pytest.raises(InvalidInputError, match="colors:"):
    gd.colorize(img, np.array([0, 2, 1]))
  with pytest.raises(InvalidInputError, match="colors"):
    gd.colorize(img, np.array([0, 1]))
  with pytest.raises(InvalidInputError, match="images:"):
    gd.colorize(np.zeros((3, 5)), np.array([0, 1, 1]))


def test_colored_mnist_matches_its_definition():
  """Independent recomputation of the two documented draws (label flip, then colour flip)."""
  rng = np.random.default_rng(5)
  digits = rng.integers(0, 10, 500)
  img = rng.random((500, 6, 6)).astype(np.float32)
  x, y = gd.colored_mnist(img, digits, e=0.3, label_noise=0.2, seed=9)
  ref = np.random.default_rng(9)
  clean = (digits < 5).astype(np.int32)
  y_ref = np.where(ref.random(500) < 0.2, 1 - clean, clean)
  color = np.where(ref.random(500) < 0.3, 1 - y_ref, y_ref)
  np.testing.assert_array_equal(y, y_ref)
  assert y.dtype == np.int32
  np.testing.assert_array_equal(x[np.arange(500), ..., color], img)
  np.testing.assert_array_equal(x[np.arange(500), ..., 1 - color], 0)


def test_colored_mnist_rates():
  n = 20000
  rng = np.random.default_rng(1)
  digits = rng.integers(0, 10, n)
  img = rng.random((n, 4, 4)).astype(np.float32)
  for e in (0.0, 0.25, 0.5):
    x, y = gd.colored_mnist(img, digits, e=e, label_noise=0.25, seed=2)
    color = (x[..., 1].sum(axis=(1, 2)) > 0).astype(int)
    assert abs(np.mean(y != (digits < 5)) - 0.25) < 0.015
    assert abs(np.mean(color != y) - e) < 0.015
  with pytest.raises(InvalidInputError, match="e:"):
    gd.colored_mnist(img, digits, e=1.5)
  with pytest.raises(InvalidInputError, match="label_noise:"):
    gd.colored_mnist(img, digits, e=0.1, label_noise=-0.1)
  with pytest.raises(InvalidInputError, match="images, digits|digits"):
    gd.colored_mnist(img, digits[:-1], e=0.1)


def test_shuffled_labels_fraction_and_determinism():
  digits = np.random.default_rng(3).integers(0, 10, 10000)
  for beta in (0.0, 0.5, 1.0):
    y = gd.shuffled_labels(digits, beta=beta, seed=4)
    assert y.dtype == np.int32 and y.shape == digits.shape
    assert abs(np.mean(y != digits) - beta * 0.9) < 0.02  # a redraw keeps its label w.p. 1/10
    np.testing.assert_array_equal(y, gd.shuffled_labels(digits, beta=beta, seed=4))
  assert set(np.unique(gd.shuffled_labels(digits, beta=1.0, num_classes=3))) <= {0, 1, 2}


def test_shuffled_labels_refusals():
  with pytest.raises(InvalidInputError, match="beta:"):
    gd.shuffled_labels(np.arange(5), beta=2.0)
  with pytest.raises(InvalidInputError, match="digits:"):
    gd.shuffled_labels(np.zeros((2, 2), int), beta=0.5)
  with pytest.raises(InvalidInputError, match="num_classes:"):
    gd.shuffled_labels(np.arange(5), beta=0.5, num_classes=0)
