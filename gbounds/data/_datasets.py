"""Dataset loaders with a fixed, documented preprocessing.

Every loader returns numpy arrays ``(x, y)``:

* images as ``float32`` in ``[0, 1]`` (pixel / 255), shape ``(N, H, W, 1)`` (NHWC, the Flax
  convention); ``load_digits`` scales its 0..16 pixels by 1/16 and returns ``(N, 8, 8, 1)``;
  ``load_mnist1d`` returns ``(N, 40)`` float32 sequences as its generator makes them;
* labels as ``int32`` class indices.

Files are looked up in the data directory: the ``data_dir`` argument, else the
``GBOUNDS_DATA_DIR`` environment variable, else ``~/.cache/gbounds``. Inside it each dataset
has a folder (``mnist/``, ``fashion-mnist/``) holding the canonical IDX ``.gz`` files. A file that
is absent is downloaded from its canonical URL and verified against the md5 of the canonical
``.gz`` file; files already present are only checked to be valid gzip-compressed IDX (a
non-gzip, truncated or inconsistent file, or image and label files of different lengths, raise
:class:`gbounds.CorruptFileError` naming the file and the fix: delete it to re-download it);
with no network, the error names the directory and the files expected.

Class selections (:func:`binary_task`, :func:`select_classes`) require distinct classes that
occur in the labels, and the splitting helpers require ``x`` and ``y`` of the same length.
"""

from __future__ import annotations

import dataclasses
import enum
import gzip
import hashlib
import os
import pathlib
import shutil
import tempfile
import urllib.request
import zlib

import numpy as np

from gbounds._src import errors as _errors
from gbounds._src import results as _results

ENV_VAR = "GBOUNDS_DATA_DIR"

# Downloads are verified against the md5 of the canonical .gz files. Files already present
# (e.g. the re-compressed copies in ../shared/data) are trusted and only checked to be valid IDX.
_MNIST_URLS = ("https://ossci-datasets.s3.amazonaws.com/mnist/",
               "https://storage.googleapis.com/cvdf-datasets/mnist/")
_FASHION_URLS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)

_FILES: dict[str, dict[str, str]] = {
    # md5 of the .gz files as published upstream.
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
}

class Dataset(enum.StrEnum):
  """The datasets :func:`load_dataset` knows (value: the name accepted as a string)."""
  MNIST = "mnist"                  # :func:`load_mnist`
  FASHION_MNIST = "fashion_mnist"  # :func:`load_fashion_mnist`
  DIGITS = "digits"                # :func:`load_digits` (scikit-learn's 8x8 digits)
  MNIST1D = "mnist1d"              # :func:`load_mnist1d`


class Split(enum.StrEnum):
  """A split of an IDX dataset (value: the name accepted as a string)."""
  TRAIN = "train"  # the 60,000-example training files (``train-*``)
  TEST = "test"    # the 10,000-example test files (``t10k-*``)


DATASETS = tuple(d.value for d in Dataset)


def data_dir(path: str | os.PathLike | None = None) -> pathlib.Path:
  """Resolves the data directory: argument, then ``$GBOUNDS_DATA_DIR``, then the user cache.

  Args:
    path: an explicit directory, or ``None``.

  Returns:
    ``path`` (``~`` expanded) if given, else ``$GBOUNDS_DATA_DIR`` if set, else
    ``~/.cache/gbounds``.
  """
  if path is not None:
    return pathlib.Path(path).expanduser()
  env = os.environ.get(ENV_VAR)
  if env:
    return pathlib.Path(env).expanduser()
  return pathlib.Path.home() / ".cache" / "gbounds"


def _md5(path: pathlib.Path) -> str:
  h = hashlib.md5()
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
  return h.hexdigest()


def _download(folder: str, name: str, dest: pathlib.Path) -> None:
  urls = _MNIST_URLS if folder == "mnist" else _FASHION_URLS
  errors = []
  dest.parent.mkdir(parents=True, exist_ok=True)
  for base in urls:
    try:
      with urllib.request.urlopen(base + name, timeout=30) as r, tempfile.NamedTemporaryFile(
          dir=dest.parent, delete=False) as tmp:
        shutil.copyfileobj(r, tmp)
      tmp_path = pathlib.Path(tmp.name)
      if _md5(tmp_path) != _FILES[folder][name]:
        tmp_path.unlink()
        raise _errors.ChecksumError(f"{base + name}: md5 mismatch")
      os.replace(tmp_path, dest)
      return
    except (OSError, _errors.ChecksumError) as e:  # try the next mirror
      errors.append(f"{base + name}: {e}")
  raise _errors.DataNotFoundError(
      f"{name} is not in {dest.parent} and could not be downloaded "
      f"({'; '.join(errors)}). Place the files {sorted(_FILES[folder])} in {dest.parent} "
      f"or set {ENV_VAR} to a directory that holds {folder}/.")


def _ensure(folder: str, name: str, root: pathlib.Path) -> pathlib.Path:
  path = root / folder / name
  if not path.exists():
    _download(folder, name, path)
  return path


def _corrupt(path: pathlib.Path, problem: str) -> _errors.CorruptFileError:
  """The error for a damaged data file: names the file, the problem and the fix."""
  md5 = _FILES.get(path.parent.name, {}).get(path.name)
  check = f" (the canonical file has md5 {md5})" if md5 else ""
  return _errors.CorruptFileError(
      f"{path}: {problem}. It is not a valid gzip-compressed IDX file{check}: delete it so that "
      f"gbounds downloads it again, or replace it with a good copy.")


def _read_idx(path: pathlib.Path, *, ndim: int | None = None) -> np.ndarray:
  """Reads a gzip-compressed unsigned-byte IDX file; a damaged file raises
  :class:`gbounds.CorruptFileError` naming it (``ndim``: the expected number of dimensions)."""
  path = pathlib.Path(path)
  try:
    with gzip.open(path, "rb") as f:
      raw = f.read()
  except (OSError, EOFError, zlib.error) as e:  # BadGzipFile is an OSError
    kind = "truncated" if isinstance(e, EOFError) else "not readable as gzip"
    raise _corrupt(path, f"{kind} ({type(e).__name__}: {e})") from e
  if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 8:
    raise _corrupt(path, f"bad IDX magic number {raw[:4].hex() or '(empty)'} (expected "
                         f"00000801 or 00000803: unsigned bytes)")
  rank = raw[3]
  if rank < 1 or (ndim is not None and rank != ndim):
    raise _corrupt(path, f"an IDX header with {rank} dimensions (expected "
                         f"{ndim if ndim is not None else 'at least 1'})")
  header = 4 + 4 * rank
  if len(raw) < header:
    raise _corrupt(path, f"truncated IDX header ({len(raw)} of {header} bytes)")
  dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(rank))
  expected = int(np.prod(dims, dtype=np.int64))
  got = len(raw) - header
  if got != expected:
    what = "truncated" if got < expected else "longer than its header says"
    raise _corrupt(path, f"{what}: the header declares shape {dims} ({expected} bytes of data), "
                         f"the file holds {got}")
  return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def _as_split(split: Split | str) -> Split:
  if isinstance(split, Split):
    return split
  if isinstance(split, str) and split in {m.value for m in Split}:
    return Split(split)
  _errors.fail("split", "'train' or 'test'", repr(split))


def _load_idx_pair(folder: str, split: Split | str, root) -> tuple[np.ndarray, np.ndarray]:
  split = _as_split(split)
  prefix = "train" if split is Split.TRAIN else "t10k"
  root = data_dir(root)
  image_path = _ensure(folder, f"{prefix}-images-idx3-ubyte.gz", root)
  label_path = _ensure(folder, f"{prefix}-labels-idx1-ubyte.gz", root)
  images = _read_idx(image_path, ndim=3)
  labels = _read_idx(label_path, ndim=1)
  if len(images) != len(labels):
    raise _errors.CorruptFileError(
        f"{image_path} holds {len(images)} images but {label_path} holds {len(labels)} labels: "
        f"one of them is truncated or from another split. Delete both so that gbounds "
        f"downloads them again, or replace them with good copies.")
  if labels.size and labels.max() >= 10:
    raise _corrupt(label_path, f"labels up to {labels.max()} (expected class labels 0..9)")
  x = (images.astype(np.float32) / 255.0)[..., None]
  return x, labels.astype(np.int32)


def load_mnist(split: Split | str = Split.TEST, *, data_dir: str | os.PathLike | None = None
               ) -> tuple[np.ndarray, np.ndarray]:
  """MNIST digits (LeCun et al. 1998), read from the IDX files of the data directory.

  Args:
    split: :class:`Split` or its name (``"train"``: 60,000 examples; ``"test"``: 10,000).
    data_dir: the data directory (see :func:`data_dir`); files are under ``mnist/``.

  Returns:
    ``(x, y)``: ``x`` float32 ``(N, 28, 28, 1)`` in [0, 1] (pixel / 255), ``y`` int32 in 0..9.

  Raises:
    DataNotFoundError: a file is absent and cannot be downloaded.
    CorruptFileError: a file is not valid gzip-compressed IDX.
  """
  return _load_idx_pair("mnist", split, data_dir)


# duplicates: each loader documents the same (split, data_dir) arguments; the download/checksum
# logic is shared.
def load_fashion_mnist(split: Split | str = Split.TRAIN, *,
                       data_dir: str | os.PathLike | None = None
                       ) -> tuple[np.ndarray, np.ndarray]:
  """Fashion-MNIST (Xiao et al. 2017), read from the IDX files of the data directory.

  Args:
    split: :class:`Split` or its name (``"train"``: 60,000 examples; ``"test"``: 10,000).
    data_dir: the data directory (see :func:`data_dir`); files are under ``fashion-mnist/``.

  Returns:
    ``(x, y)``: ``x`` float32 ``(N, 28, 28, 1)`` in [0, 1] (pixel / 255), ``y`` int32 in 0..9.

  Raises:
    DataNotFoundError: a file is absent and cannot be downloaded.
    CorruptFileError: a file is not valid gzip-compressed IDX.
  """
  return _load_idx_pair("fashion-mnist", split, data_dir)


def load_digits() -> tuple[np.ndarray, np.ndarray]:
  """scikit-learn's bundled 8x8 digits (1,797 examples; no files, no data directory).

  Returns:
    ``(x, y)``: ``x`` float32 ``(1797, 8, 8, 1)`` in [0, 1] (pixel / 16), ``y`` int32 in 0..9.
  """
  try:
    from sklearn.datasets import load_digits as _sk_digits
  except ImportError as e:  # pragma: no cover
    raise ImportError("load_digits needs scikit-learn: pip install 'gbounds[extras]'") from e
  d = _sk_digits()
  # sklearn's stub types the call as `Bunch | tuple`; without return_X_y it is always a Bunch.
  x = (d.images.astype(np.float32) / 16.0)[..., None]  # pyright: ignore[reportAttributeAccessIssue]
  return x, d.target.astype(np.int32)  # pyright: ignore[reportAttributeAccessIssue]


def load_mnist1d(*, num_samples: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """MNIST-1D (Greydanus 2020), generated by the ``mnist1d`` package (no files).

  Args:
    num_samples: the generator's ``num_samples`` (train and test parts are concatenated).
    seed: the generator's seed.

  Returns:
    ``(x, y)``: ``x`` float32 ``(N, 40)``, ``y`` int32 in 0..9.
  """
  if isinstance(num_samples, bool) or int(num_samples) != num_samples or num_samples < 1:
    _errors.fail("num_samples", "a positive integer", repr(num_samples))
  try:
    from mnist1d.data import get_dataset_args, make_dataset
  except ImportError as e:  # pragma: no cover
    raise ImportError("load_mnist1d needs mnist1d: pip install 'gbounds[extras]'") from e
  args = get_dataset_args()
  # mnist1d's ObjectView sets its attributes through __dict__, which pyright cannot see.
  args.num_samples = int(num_samples)  # pyright: ignore[reportAttributeAccessIssue]
  args.seed = int(seed)  # pyright: ignore[reportAttributeAccessIssue]
  d = make_dataset(args)
  x = np.concatenate([d["x"], d["x_test"]]).astype(np.float32)
  y = np.concatenate([d["y"], d["y_test"]]).astype(np.int32)
  return x, y


def load_dataset(name: Dataset | str, split: Split | str = Split.TEST, *,
                 data_dir: str | os.PathLike | None = None) -> tuple[np.ndarray, np.ndarray]:
  """Loads a dataset by name.

  Args:
    name: a :class:`Dataset` or its name (one of :data:`DATASETS`; case and ``-``/``_``
      ignored).
    split: :class:`Split` or its name, for MNIST and Fashion-MNIST (ignored by ``digits`` and
      ``mnist1d``, which have one pool).
    data_dir: the data directory (see :func:`data_dir`).

  Returns:
    ``(x, y)`` as the dataset's loader returns them.

  Raises:
    InvalidInputError: an unknown name.
  """
  if isinstance(name, Dataset):
    dataset = name
  else:
    if not isinstance(name, str):
      _errors.fail("name", f"a dataset name in {list(DATASETS)}", repr(name))
    key = name.strip().lower().replace("-", "_")
    if key not in DATASETS:
      _errors.fail("name", f"a dataset name in {list(DATASETS)}", repr(name))
    dataset = Dataset(key)
  if dataset is Dataset.MNIST:
    return load_mnist(split, data_dir=data_dir)
  if dataset is Dataset.FASHION_MNIST:
    return load_fashion_mnist(split, data_dir=data_dir)
  if dataset is Dataset.DIGITS:
    return load_digits()
  return load_mnist1d()


def _check_xy(x: np.ndarray, y: np.ndarray) -> None:
  _errors.check_rank("y", y, 1)
  _errors.check_nonempty("y", y)
  if np.ndim(x) < 1:
    _errors.fail("x", "an array with a leading example axis", f"shape {np.shape(x)}")
  _errors.check_same_leading(("x", "y"), x, y)


def _check_classes(y: np.ndarray, classes, name: str = "classes") -> tuple[int, ...]:
  """``classes`` as distinct ints that all occur in ``y`` (else a clear error naming ``name``)."""
  try:
    arr = np.asarray(classes)
    ok = arr.ndim == 1 and arr.size > 0 and (
        arr.dtype.kind in "iu" or (arr.dtype.kind == "f" and np.all(arr == np.round(arr))))
  except (TypeError, ValueError):
    ok = False
  if not ok:
    _errors.fail(name, "a list of integer class labels", repr(classes))
  cls = tuple(int(c) for c in arr)
  if len(set(cls)) != len(cls):
    dup = sorted({c for c in cls if cls.count(c) > 1})
    _errors.fail(name, "distinct class labels", f"{list(cls)} (repeated: {dup})")
  present = set(np.unique(y).tolist())
  missing = [c for c in cls if c not in present]
  if missing:
    _errors.fail(name, f"classes present in the dataset (labels {sorted(present)})",
                 f"{list(cls)} ({missing} absent)")
  return cls


def select_classes(x: np.ndarray, y: np.ndarray, classes) -> tuple[np.ndarray, np.ndarray]:
  """Keeps the examples of ``classes`` and relabels class ``classes[j]`` as ``j``.

  ``classes`` must be distinct labels that all occur in ``y`` (an absent or repeated class
  would silently give a task with fewer classes than asked for). ``select_classes(x, y, (4, 9))``
  equals :func:`binary_task` ``(x, y, 4, 9)``.

  Args:
    x: examples, ``(N, ...)``.
    y: integer labels, ``(N,)``.
    classes: the distinct class labels to keep, in the order of their new labels.

  Returns:
    ``(x_kept, y_new)`` with ``y_new`` int32 in ``[0, len(classes))``, in the original order.

  Raises:
    InvalidInputError: mismatched lengths, or repeated or absent classes.
  """
  x, y = np.asarray(x), np.asarray(y)
  _check_xy(x, y)
  cls = _check_classes(y, classes)
  keep = np.isin(y, cls)
  lookup = {c: j for j, c in enumerate(cls)}
  relabel = np.array([lookup[int(v)] for v in y[keep]], dtype=np.int32)
  return x[keep], relabel


def binary_task(x: np.ndarray, y: np.ndarray, negative: int = 4, positive: int = 9
                ) -> tuple[np.ndarray, np.ndarray]:
  """Keeps classes ``negative`` and ``positive`` and relabels them 0 and 1 (e.g. MNIST 4-vs-9).

  Both classes must occur in ``y`` and differ (else :class:`gbounds.InvalidInputError` naming
  ``classes``: a missing or repeated class would silently give a one-class task).

  Args:
    x: examples, ``(N, ...)``.
    y: integer labels, ``(N,)``.
    negative: the class relabelled 0.
    positive: the class relabelled 1.

  Returns:
    ``(x_kept, y01)`` in the original order, ``y01`` int32 (1 where the label was ``positive``).
  """
  _check_xy(x, np.asarray(y))
  _check_classes(np.asarray(y), (negative, positive), "classes (negative, positive)")
  keep = (y == negative) | (y == positive)
  return x[keep], (y[keep] == positive).astype(np.int32)


@dataclasses.dataclass(frozen=True)
class NoisyLabels(_results.ResultMixin):
  """Labels after noise injection (:func:`inject_label_noise`).

  Attributes:
    labels: the noisy labels, int32 ``(N,)``.
    clean: the labels before noise, int32 ``(N,)``.
    flipped: bool ``(N,)``, True where ``labels[i] != clean[i]``.
    rate: the requested fraction of flips.
    seed: the numpy seed of the draw.
  """
  labels: np.ndarray
  clean: np.ndarray
  flipped: np.ndarray
  rate: float
  seed: int


def _int_labels(name: str, y, num_classes: int | None = None) -> np.ndarray:
  """``y`` as int64 class labels, checked to be whole numbers in ``[0, num_classes)``."""
  arr = np.asarray(y)
  whole = arr.dtype.kind in "iu" or (
      arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)))
  if not whole:
    _errors.fail(name, "integer class labels", f"dtype {arr.dtype}")
  arr = arr.astype(np.int64)
  hi = np.inf if num_classes is None else num_classes
  if arr.size and (arr.min() < 0 or arr.max() >= hi):
    rng = "[0, inf)" if num_classes is None else f"[0, {num_classes}) (num_classes = {num_classes})"
    _errors.fail(name, f"class labels in {rng}", f"labels in [{arr.min()}, {arr.max()}]")
  return arr


def inject_label_noise(y: np.ndarray, *, rate: float, num_classes: int | None = None,
                       seed: int = 0) -> NoisyLabels:
  """Flips exactly ``round(rate * N)`` labels, each to a different class chosen uniformly.

  Args:
    y: int class labels, shape (N,), in ``[0, num_classes)``.
    rate: fraction of labels to flip, in [0, 1].
    num_classes: number of classes (default ``max(y) + 1``, at least 2).
    seed: numpy seed; the same seed gives the same flips.

  Returns:
    :class:`NoisyLabels` (``flipped.sum() == round(rate * N)``).

  Raises:
    InvalidInputError: labels not whole numbers in range, ``rate`` outside [0, 1].
  """
  y = np.asarray(y)
  _errors.check_rank("y", y, 1)
  _errors.check_nonempty("y", y)
  _errors.check_probability("rate", rate)
  if num_classes is not None:
    _errors.check_int("num_classes", num_classes, 2)
  y = _int_labels("y", y)
  k = int(num_classes if num_classes is not None else max(int(y.max()) + 1, 2))
  _int_labels("y", y, k)
  rng = np.random.default_rng(seed)
  idx = rng.choice(y.size, size=int(round(rate * y.size)), replace=False)
  noisy = y.copy()
  noisy[idx] = (y[idx] + rng.integers(1, k, size=idx.size)) % k
  flipped = noisy != y
  return NoisyLabels(noisy.astype(np.int32), y.astype(np.int32), flipped, float(rate), int(seed))


def subsample(x: np.ndarray, y: np.ndarray, n: int, *, seed: int = 0,
              balanced: bool = False) -> tuple[np.ndarray, np.ndarray]:
  """Draws ``n`` examples without replacement (optionally class-balanced).

  Args:
    x: examples, ``(N, ...)``.
    y: labels, ``(N,)``.
    n: number of examples to draw, in ``[1, N]``.
    seed: numpy seed.
    balanced: split the ``n`` draws as evenly as possible over the classes present in ``y``
      (then shuffled).

  Returns:
    ``(x_sub, y_sub)``, ``n`` rows each.

  Raises:
    InvalidInputError: ``n`` out of range, or too few examples of a class for a balanced draw.
  """
  _check_xy(x, np.asarray(y))
  n = _errors.check_int("n", n, 1, len(y))
  rng = np.random.default_rng(seed)
  if not balanced:
    idx = rng.choice(len(y), size=n, replace=False)
  else:
    yy = np.asarray(y)
    classes, counts = np.unique(yy, return_counts=True)
    per = np.array_split(np.arange(n), len(classes))
    short = [(int(c), int(k), len(p)) for c, k, p in zip(classes, counts, per) if len(p) > k]
    if short:
      c, k, want = short[0]
      _errors.fail("n", f"at most {len(classes)} x {int(counts.min())} for a balanced draw "
                   f"(class {c} has {k} examples, {want} wanted)", n)
    idx = np.concatenate([rng.choice(np.flatnonzero(yy == c), size=len(p), replace=False)
                          for c, p in zip(classes, per)])
    idx = rng.permutation(idx)
  return x[idx], y[idx]


def one_hot(y: np.ndarray, num_classes: int) -> np.ndarray:
  """One-hot rows of integer labels.

  Args:
    y: integer labels in ``[0, num_classes)``, ``(N,)``.
    num_classes: number of classes (columns).

  Returns:
    float32 ``(N, num_classes)``, 1 in column ``y[i]`` of row ``i``.
  """
  num_classes = _errors.check_int("num_classes", num_classes, 1)
  return np.eye(num_classes, dtype=np.float32)[_int_labels("y", y, num_classes)]


def train_test_split(x, y, *, test_fraction: float = 0.5, seed: int = 0):
  """Random split into (x_train, y_train, x_test, y_test).

  ``round(test_fraction * N)`` examples go to the test set; both sets must be non-empty
  (``test_fraction`` in (0, 1)).

  Args:
    x: examples, ``(N, ...)``.
    y: labels, ``(N,)``.
    test_fraction: fraction of examples in the test set, in (0, 1).
    seed: numpy seed of the permutation.

  Returns:
    ``(x_train, y_train, x_test, y_test)``.

  Raises:
    InvalidInputError: mismatched lengths, or a fraction that leaves a set empty.
  """
  _check_xy(x, np.asarray(y))
  _errors.check_open_unit_interval("test_fraction", test_fraction)
  n_test = int(round(test_fraction * len(y)))
  if not 0 < n_test < len(y):
    _errors.fail("test_fraction", f"a fraction that leaves both sets non-empty with "
                 f"{len(y)} examples", f"{test_fraction} ({n_test} test examples)")
  rng = np.random.default_rng(seed)
  perm = rng.permutation(len(y))
  te, tr = perm[:n_test], perm[n_test:]
  return x[tr], y[tr], x[te], y[te]
