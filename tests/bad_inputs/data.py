"""Bad inputs to the data loaders and helpers (gbounds.data): corrupt, truncated or
inconsistent IDX files written to a temporary directory, classes absent or repeated, splits and
sizes, and the Colored/Shuffled MNIST constructions."""

from __future__ import annotations

import gzip
import os
import pathlib
import tempfile

import numpy as np

import gbounds
from gbounds._src import errors as _errors
from tests.bad_inputs import Case

_E = _errors.InvalidInputError
_C = _errors.CorruptFileError
_FIX = r"delete (it|both) so that gbounds downloads"
_IMAGES = "t10k-images-idx3-ubyte.gz"
_LABELS = "t10k-labels-idx1-ubyte.gz"


def _idx(array: np.ndarray, *, dims: tuple[int, ...] | None = None, magic: bytes | None = None
         ) -> bytes:
  """Unsigned-byte IDX bytes of ``array`` (``dims``/``magic`` override the header)."""
  arr = np.asarray(array, np.uint8)
  dims = arr.shape if dims is None else dims
  head = magic if magic is not None else bytes([0, 0, 8, len(dims)])
  return head + b"".join(int(d).to_bytes(4, "big") for d in dims) + arr.tobytes()


_GOOD_IMAGES = _idx(np.arange(3 * 4 * 4).reshape(3, 4, 4) % 256)
_GOOD_LABELS = _idx(np.array([0, 1, 2]))


def _load(images: bytes = _GOOD_IMAGES, labels: bytes = _GOOD_LABELS, *, gz_images: bool = True,
          gz_labels: bool = True, folder: str = "mnist"):
  """Writes the pair into a fresh data directory and loads it (no download is attempted: both
  files exist)."""
  with tempfile.TemporaryDirectory() as d:
    sub = pathlib.Path(d) / folder
    sub.mkdir()
    (sub / _IMAGES).write_bytes(gzip.compress(images) if gz_images else images)
    (sub / _LABELS).write_bytes(gzip.compress(labels) if gz_labels else labels)
    if folder == "mnist":
      return gbounds.data.load_mnist("test", data_dir=d)
    return gbounds.data.load_fashion_mnist("test", data_dir=d)


def _truncated_gzip():
  blob = gzip.compress(_GOOD_IMAGES)
  with tempfile.TemporaryDirectory() as d:
    sub = pathlib.Path(d) / "mnist"
    sub.mkdir()
    (sub / _IMAGES).write_bytes(blob[:len(blob) // 2])
    (sub / _LABELS).write_bytes(gzip.compress(_GOOD_LABELS))
    return gbounds.data.load_mnist("test", data_dir=d)


def _empty_file():
  with tempfile.TemporaryDirectory() as d:
    sub = pathlib.Path(d) / "mnist"
    sub.mkdir()
    (sub / _IMAGES).write_bytes(b"")
    (sub / _LABELS).write_bytes(gzip.compress(_GOOD_LABELS))
    return gbounds.data.load_mnist("test", data_dir=d)


def _data_root() -> str:
  from tests.conftest import SHARED_DATA
  return os.environ.get("GBOUNDS_DATA_DIR") or os.path.abspath(SHARED_DATA)


_X = np.arange(12, dtype=np.float32).reshape(6, 2)
_Y = np.array([4, 9, 4, 9, 4, 9])
_Y10 = np.arange(10) % 2

CASES = [
    # ---- corrupt, truncated or inconsistent files (written to a temporary directory)
    Case("data/idx_truncated_gzip", "files", _truncated_gzip, _C,
         rf"{_IMAGES}: truncated .*{_FIX}"),
    Case("data/idx_plain_not_gzip", "files", lambda: _load(gz_images=False), _C,
         rf"{_IMAGES}: not readable as gzip.*{_FIX}"),
    Case("data/idx_empty_file", "files", _empty_file, _C, rf"{_IMAGES}: bad IDX magic"),
    Case("data/idx_bad_magic_float", "files",
         lambda: _load(_idx(np.zeros((3, 4, 4)), magic=bytes([0, 0, 0x0D, 3]))), _C,
         rf"{_IMAGES}: bad IDX magic number 00000d03.*{_FIX}"),
    Case("data/idx_header_count_above_payload", "files",
         lambda: _load(_idx(np.zeros((3, 4, 4)), dims=(5, 4, 4))), _C,
         rf"{_IMAGES}: truncated: the header declares shape \(5, 4, 4\)"),
    Case("data/idx_payload_above_header", "files",
         lambda: _load(_idx(np.zeros((3, 4, 4)), dims=(2, 4, 4))), _C,
         rf"{_IMAGES}: longer than its header says"),
    Case("data/idx_truncated_header", "files",
         lambda: _load(bytes([0, 0, 8, 3, 0, 0, 0, 3])), _C,
         rf"{_IMAGES}: truncated IDX header"),
    Case("data/idx_labels_with_image_rank", "files", lambda: _load(labels=_GOOD_IMAGES), _C,
         rf"{_LABELS}: an IDX header with 3 dimensions \(expected 1\)"),
    Case("data/idx_label_file_shorter_than_images", "files",
         lambda: _load(labels=_idx(np.array([0, 1]))), _C,
         rf"{_IMAGES} holds 3 images but .*{_LABELS} holds 2 labels.*{_FIX}"),
    Case("data/idx_label_out_of_range", "files",
         lambda: _load(labels=_idx(np.array([0, 1, 12]))), _C, rf"{_LABELS}: labels up to 12"),
    Case("data/idx_fashion_truncated_payload", "files",
         lambda: _load(labels=_idx(np.array([0, 1, 2]), dims=(4,)), folder="fashion-mnist"), _C,
         rf"fashion-mnist.{_LABELS}: truncated"),
    # ---- dataset names and options
    Case("data/load_dataset_name_not_str", "options", lambda: gbounds.data.load_dataset(7),
         _E, r"name: expected a dataset name"),
    Case("data/load_mnist_bad_split", "options",
         lambda: gbounds.data.load_mnist("validation"), _E, r"split: expected 'train' or 'test'"),
    Case("data/load_mnist1d_zero_samples", "sizes",
         lambda: gbounds.data.load_mnist1d(num_samples=0), _E, r"num_samples: expected a positive"),
    # ---- classes
    Case("data/binary_task_class_absent", "classes",
         lambda: gbounds.data.binary_task(_X, _Y, 4, 11), _E,
         r"classes \(negative, positive\): expected classes present in the dataset.*\[11\] absent"),
    Case("data/binary_task_same_class_twice", "classes",
         lambda: gbounds.data.binary_task(_X, _Y, 4, 4), _E,
         r"classes \(negative, positive\): expected distinct class labels"),
    Case("data/binary_task_mnist_4_vs_11", "classes",
         lambda: gbounds.data.binary_task(
             *gbounds.data.load_mnist("test", data_dir=_data_root()), 4, 11),
         _E, r"classes .*expected classes present in the dataset"),
    Case("data/select_classes_absent", "classes",
         lambda: gbounds.data.select_classes(_X, _Y, (9, 4, 7)), _E,
         r"classes: expected classes present.*\[7\] absent"),
    Case("data/select_classes_not_integers", "classes",
         lambda: gbounds.data.select_classes(_X, _Y, ("four", "nine")), _E,
         r"classes: expected a list of integer class labels"),
    Case("data/binary_task_empty", "empty", lambda: gbounds.data.binary_task(_X[:0], _Y[:0]), _E,
         r"y: expected a non-empty array"),
    Case("data/binary_task_lengths_differ", "shapes",
         lambda: gbounds.data.binary_task(_X, _Y[:4]), _E, r"x and y: expected the same size"),
    # ---- subsample and splits
    Case("data/subsample_lengths_differ", "shapes",
         lambda: gbounds.data.subsample(_X, _Y[:4], 2), _E, r"x and y: expected the same size"),
    Case("data/subsample_n_above_size", "sizes", lambda: gbounds.data.subsample(_X, _Y, 7), _E,
         r"n: expected an integer in \[1, 6\]"),
    Case("data/subsample_n_fractional", "sizes", lambda: gbounds.data.subsample(_X, _Y, 2.5), _E,
         r"n: expected an integer"),
    Case("data/subsample_balanced_class_too_small", "sizes",
         lambda: gbounds.data.subsample(np.zeros((5, 1)), np.array([0, 0, 0, 0, 1]), 4,
                                   balanced=True), _E,
         r"n: expected at most 2 x 1 for a balanced draw"),
    Case("data/split_fraction_two", "sizes",
         lambda: gbounds.data.train_test_split(_X, _Y, test_fraction=2.0), _E,
         r"test_fraction: expected values in the open interval \(0, 1\)"),
    Case("data/split_fraction_zero", "sizes",
         lambda: gbounds.data.train_test_split(_X, _Y, test_fraction=0.0), _E, r"test_fraction"),
    Case("data/split_fraction_rounds_to_empty", "sizes",
         lambda: gbounds.data.train_test_split(_X, _Y, test_fraction=0.01), _E,
         r"test_fraction: expected a fraction that leaves both sets non-empty"),
    Case("data/split_lengths_differ", "shapes",
         lambda: gbounds.data.train_test_split(_X, _Y[:3]), _E, r"x and y: expected the same size"),
    # ---- labels
    Case("data/label_noise_labels_above_classes", "labels",
         lambda: gbounds.data.inject_label_noise(_Y10 + 1, rate=0.1, num_classes=2), _E,
         r"y: expected class labels in \[0, 2\)"),
    Case("data/label_noise_fractional_labels", "labels",
         lambda: gbounds.data.inject_label_noise(np.array([0.5, 1.0]), rate=0.5), _E,
         r"y: expected integer class labels"),
    Case("data/label_noise_negative_labels", "labels",
         lambda: gbounds.data.inject_label_noise(np.array([-1, 0, 1]), rate=0.5), _E,
         r"y: expected class labels in \[0, inf\)"),
    Case("data/label_noise_empty", "empty",
         lambda: gbounds.data.inject_label_noise(np.array([], int), rate=0.1), _E,
         r"y: expected a non-empty array"),
    Case("data/label_noise_one_class", "sizes",
         lambda: gbounds.data.inject_label_noise(_Y10, rate=0.1, num_classes=1), _E,
         r"num_classes: expected an integer >= 2"),
    Case("data/label_noise_nan_rate", "nan",
         lambda: gbounds.data.inject_label_noise(_Y10, rate=float("nan")), _E, r"rate: expected"),
    Case("data/one_hot_label_out_of_range", "labels",
         lambda: gbounds.data.one_hot(np.array([0, 3]), 3), _E,
         r"y: expected class labels in \[0, 3\)"),
    # ---- Colored / Shuffled MNIST
    Case("data/colorize_color_not_binary", "labels",
         lambda: gbounds.data.colorize(np.zeros((2, 3, 3)), np.array([0, 2])), _E,
         r"colors: expected binary values"),
    Case("data/colorize_lengths_differ", "shapes",
         lambda: gbounds.data.colorize(np.zeros((2, 3, 3)), np.array([0])), _E,
         r"images and colors: expected the same size"),
    Case("data/colorize_images_rank", "shapes",
         lambda: gbounds.data.colorize(np.zeros((2, 3)), np.array([0, 1])), _E,
         r"images: expected an array of rank 3"),
    Case("data/colored_mnist_e_above_one", "probabilities",
         lambda: gbounds.data.colored_mnist(np.zeros((2, 3, 3)), np.array([1, 7]), e=1.5), _E,
         r"e: expected probabilities in \[0, 1\]"),
    Case("data/colored_mnist_nan_label_noise", "nan",
         lambda: gbounds.data.colored_mnist(np.zeros((2, 3, 3)), np.array([1, 7]), e=0.1,
                                            label_noise=float("nan")), _E,
         r"label_noise: expected probabilities"),
    Case("data/colored_mnist_lengths_differ", "shapes",
         lambda: gbounds.data.colored_mnist(np.zeros((2, 3, 3)), np.array([1, 7, 3]), e=0.1), _E,
         r"images and digits: expected the same size"),
    Case("data/shuffled_labels_beta_negative", "probabilities",
         lambda: gbounds.data.shuffled_labels(np.arange(4), beta=-0.5), _E,
         r"beta: expected probabilities"),
    Case("data/shuffled_labels_rank", "shapes",
         lambda: gbounds.data.shuffled_labels(np.zeros((2, 2), int), beta=0.5), _E,
         r"digits: expected an array of rank 1"),
    Case("data/shuffled_labels_zero_classes", "sizes",
         lambda: gbounds.data.shuffled_labels(np.arange(4), beta=0.5, num_classes=0), _E,
         r"num_classes: expected an integer >= 1"),
    Case("data/load_dataset_unknown_name", "options",
         lambda: gbounds.data.load_dataset("cifar100"), _E,
         r"name: expected a dataset name in \['mnist'"),
]
