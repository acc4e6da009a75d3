"""Data loaders on the offline data directory, and the label helpers."""

import gzip
import os

import numpy as np
import pytest

import gbounds
from gbounds._src import errors as _errors
from gbounds.data import _datasets as _data


def test_mnist_test_split(data_root):
  x, y = gbounds.data.load_mnist("test", data_dir=data_root)
  assert x.shape == (10000, 28, 28, 1) and x.dtype == np.float32
  assert y.shape == (10000,) and y.dtype == np.int32
  assert 0.0 <= x.min() and x.max() <= 1.0
  # class counts stated in ../shared/data/README.md
  np.testing.assert_array_equal(np.bincount(y), [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974,
                                                 1009])
  # same pixels as reading the IDX bytes directly
  with gzip.open(os.path.join(data_root, "mnist", "t10k-images-idx3-ubyte.gz")) as f:
    raw = np.frombuffer(f.read(), np.uint8, offset=16).reshape(10000, 28, 28)
  np.testing.assert_array_equal((x[..., 0] * 255).round().astype(np.uint8), raw)


def test_binary_task_4_vs_9(data_root):
  x, y = gbounds.data.load_mnist("test", data_dir=data_root)
  xb, yb = gbounds.data.binary_task(x, y, 4, 9)
  assert len(yb) == 982 + 1009 == 1991
  assert set(np.unique(yb)) == {0, 1} and yb.sum() == 1009


def test_fashion_mnist(data_root):
  x, y = gbounds.data.load_fashion_mnist("test", data_dir=data_root)
  assert x.shape == (10000, 28, 28, 1)
  np.testing.assert_array_equal(np.bincount(y), [1000] * 10)


def test_env_var_is_used(data_root, monkeypatch):
  monkeypatch.setenv("GBOUNDS_DATA_DIR", data_root)
  assert str(gbounds.data.data_dir()) == data_root
  x, _ = gbounds.data.load_mnist("test")
  assert len(x) == 10000


def test_missing_file_without_network_names_directory(tmp_path, monkeypatch):
  def no_network(*args, **kwargs):
    raise OSError("network unreachable")
  monkeypatch.setattr(_data.urllib.request, "urlopen", no_network)
  with pytest.raises(gbounds.DataNotFoundError) as e:
    gbounds.data.load_mnist("train", data_dir=tmp_path)
  msg = str(e.value)
  assert str(tmp_path / "mnist") in msg and "train-images-idx3-ubyte.gz" in msg


def test_download_checks_checksum(tmp_path, monkeypatch):
  import io

  class Fake(io.BytesIO):
    def __enter__(self):
      return self

    def __exit__(self, *a):
      return False
  monkeypatch.setattr(_data.urllib.request, "urlopen", lambda *a, **k: Fake(b"not mnist"))
  with pytest.raises(gbounds.DataNotFoundError, match="md5 mismatch"):
    gbounds.data.load_mnist("train", data_dir=tmp_path)
  assert not any((tmp_path / "mnist").iterdir())  # nothing half-written left behind


def test_unknown_dataset_lists_valid():
  with pytest.raises(gbounds.InvalidInputError, match="mnist1d"):
    gbounds.data.load_dataset("cifar100")


def test_digits_and_mnist1d():
  x, y = gbounds.data.load_digits()
  assert x.shape == (1797, 8, 8, 1) and x.max() <= 1.0
  x1, y1 = gbounds.data.load_mnist1d(num_samples=200)
  assert x1.ndim == 2 and x1.shape[1] == 40 and len(y1) == len(x1)
  x2, _ = gbounds.data.load_mnist1d(num_samples=200)
  np.testing.assert_array_equal(x1, x2)


def test_label_noise_records_flips():
  y = np.arange(1000) % 10
  noisy = gbounds.data.inject_label_noise(y, rate=0.1, num_classes=10, seed=3)
  assert noisy.flipped.sum() == 100
  np.testing.assert_array_equal(noisy.flipped, noisy.labels != y)
  np.testing.assert_array_equal(noisy.clean, y)
  again = gbounds.data.inject_label_noise(y, rate=0.1, num_classes=10, seed=3)
  np.testing.assert_array_equal(noisy.labels, again.labels)
  binary = gbounds.data.inject_label_noise(np.zeros(50, int), rate=0.2, num_classes=2)
  assert binary.labels.sum() == 10
  with pytest.raises(gbounds.InvalidInputError, match="rate"):
    gbounds.data.inject_label_noise(y, rate=1.5)


def test_subsample_and_split():
  x = np.arange(100)[:, None].astype(np.float32)
  y = np.arange(100) % 2
  xs, ys = gbounds.data.subsample(x, y, 20, seed=1, balanced=True)
  assert len(np.unique(xs)) == 20 and ys.sum() == 10
  xtr, ytr, xte, yte = gbounds.data.train_test_split(x, y, test_fraction=0.25)
  assert len(xte) == 25 and len(np.intersect1d(xtr, xte)) == 0
  with pytest.raises(gbounds.InvalidInputError, match="n"):
    gbounds.data.subsample(x, y, 101)


def _write_pair(root, images: bytes, labels: bytes):
  d = root / "mnist"
  d.mkdir(parents=True, exist_ok=True)
  (d / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(images))
  (d / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(labels))
  return d


def _idx_bytes(arr, dims=None):
  arr = np.asarray(arr, np.uint8)
  dims = arr.shape if dims is None else dims
  return (bytes([0, 0, 8, len(dims)]) + b"".join(int(v).to_bytes(4, "big") for v in dims)
          + arr.tobytes())


def test_small_idx_pair_reads_back_exactly(tmp_path):
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, size=(5, 3, 2), dtype=np.uint8)
  labels = np.array([3, 0, 9, 1, 1], np.uint8)
  _write_pair(tmp_path, _idx_bytes(images), _idx_bytes(labels))
  x, y = gbounds.data.load_mnist("test", data_dir=tmp_path)
  np.testing.assert_array_equal(x[..., 0], images.astype(np.float32) / np.float32(255))
  np.testing.assert_array_equal(y, labels.astype(np.int32))


def test_corrupt_files_name_the_file_and_the_fix(tmp_path):
  d = _write_pair(tmp_path, _idx_bytes(np.zeros((4, 2, 2))), _idx_bytes([0, 1, 2]))
  with pytest.raises(_errors.CorruptFileError) as e:
    gbounds.data.load_mnist("test", data_dir=tmp_path)
  msg = str(e.value)
  assert str(d / "t10k-images-idx3-ubyte.gz") in msg and str(d / "t10k-labels-idx1-ubyte.gz") in msg
  assert "4 images" in msg and "3 labels" in msg and "Delete both" in msg
  # a truncated download (first half of the gzip stream)
  blob = gzip.compress(_idx_bytes(np.zeros((3, 2, 2))))
  (d / "t10k-images-idx3-ubyte.gz").write_bytes(blob[: len(blob) // 2])
  with pytest.raises(_errors.CorruptFileError, match=r"t10k-images-idx3-ubyte.gz: truncated.*md5"):
    gbounds.data.load_mnist("test", data_dir=tmp_path)
  assert isinstance(e.value, ValueError)  # CorruptFileError is a ValueError (and GBoundsError)


def test_select_classes_relabels_in_the_given_order():
  x = np.arange(8)[:, None]
  y = np.array([4, 9, 7, 4, 9, 7, 1, 1])
  xs, ys = _data.select_classes(x, y, (9, 4, 7))
  np.testing.assert_array_equal(xs[:, 0], [0, 1, 2, 3, 4, 5])
  np.testing.assert_array_equal(ys, [1, 0, 2, 1, 0, 2])  # 9 -> 0, 4 -> 1, 7 -> 2
  xb, yb = gbounds.data.binary_task(x, y, 4, 9)
  xs2, ys2 = _data.select_classes(x, y, (4, 9))
  np.testing.assert_array_equal(xb, xs2)
  np.testing.assert_array_equal(yb, ys2)
  with pytest.raises(gbounds.InvalidInputError, match=r"classes: expected distinct.*\[4\]"):
    _data.select_classes(x, y, (4, 9, 4))


def test_helpers_unchanged_on_valid_input():
  """The checks change no number: the same draws as the plain numpy recipe."""
  x = np.arange(40, dtype=np.float32)[:, None]
  y = np.arange(40) % 4
  xtr, ytr, xte, yte = gbounds.data.train_test_split(x, y, test_fraction=0.3, seed=5)
  perm = np.random.default_rng(5).permutation(40)
  np.testing.assert_array_equal(xte[:, 0], perm[:12])
  np.testing.assert_array_equal(xtr[:, 0], perm[12:])
  xs, ys = gbounds.data.subsample(x, y, 7, seed=2)
  np.testing.assert_array_equal(xs[:, 0], np.random.default_rng(2).choice(40, 7, replace=False))
  noisy = gbounds.data.inject_label_noise(y.astype(np.float64), rate=0.25, num_classes=4, seed=1)
  rng = np.random.default_rng(1)
  idx = rng.choice(40, size=10, replace=False)
  expect = y.copy()
  expect[idx] = (y[idx] + rng.integers(1, 4, size=10)) % 4
  np.testing.assert_array_equal(noisy.labels, expect)
  np.testing.assert_array_equal(_data.one_hot(np.array([2, 0]), 3), [[0, 0, 1], [1, 0, 0]])


def test_enums_and_names_load_the_same(data_root):
  a = gbounds.data.load_dataset(gbounds.data.Dataset.MNIST, gbounds.data.Split.TEST,
                                data_dir=data_root)
  b = gbounds.data.load_dataset("mnist", "test", data_dir=data_root)
  c = gbounds.data.load_mnist(gbounds.data.Split.TEST, data_dir=data_root)
  for u, v in zip(a, b):
    np.testing.assert_array_equal(u, v)
  for u, v in zip(a, c):
    np.testing.assert_array_equal(u, v)
  assert gbounds.data.DATASETS == tuple(d.value for d in gbounds.data.Dataset)
  with pytest.raises(gbounds.InvalidInputError, match="split:"):
    gbounds.data.load_mnist("validation", data_dir=data_root)


def test_noisy_labels_round_trip():
  import json
  r = gbounds.data.inject_label_noise(np.arange(20) % 4, rate=0.25, seed=3)
  back = gbounds.data.NoisyLabels.from_dict(json.loads(json.dumps(r.to_dict())))
  assert type(back) is gbounds.data.NoisyLabels
  np.testing.assert_array_equal(back.labels, r.labels)
  np.testing.assert_array_equal(back.clean, r.clean)
  np.testing.assert_array_equal(back.flipped, r.flipped)
  assert back.rate == r.rate and back.seed == r.seed
  assert int(r.flipped.sum()) == 5


def test_select_classes_is_public_and_matches_binary_task():
  rng = np.random.default_rng(0)
  y = rng.integers(0, 10, 200).astype(np.int32)
  x = rng.random((200, 3)).astype(np.float32)
  xs, ys = gbounds.data.select_classes(x, y, (4, 9))
  xb, yb = gbounds.data.binary_task(x, y, 4, 9)
  np.testing.assert_array_equal(xs, xb)
  np.testing.assert_array_equal(ys, yb)
