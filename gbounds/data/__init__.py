"""Dataset loaders, class selections, splits, label noise, Colored/Shuffled MNIST.

Every loader returns numpy ``(x, y)`` (``x`` float32, ``y`` int32 class labels). Files are read
from the data directory: the ``data_dir=`` argument, else ``$GBOUNDS_DATA_DIR``, else
``~/.cache/gbounds`` (:func:`data_dir`). Dataset and split choices are the enums
:class:`Dataset` and :class:`Split` (their string values are accepted too).
"""

from gbounds.data._datasets import DATASETS as DATASETS
from gbounds.data._datasets import Dataset as Dataset
from gbounds.data._datasets import NoisyLabels as NoisyLabels
from gbounds.data._datasets import Split as Split
from gbounds.data._datasets import binary_task as binary_task
from gbounds.data._datasets import data_dir as data_dir
from gbounds.data._datasets import inject_label_noise as inject_label_noise
from gbounds.data._datasets import load_dataset as load_dataset
from gbounds.data._datasets import load_digits as load_digits
from gbounds.data._datasets import load_fashion_mnist as load_fashion_mnist
from gbounds.data._datasets import load_mnist as load_mnist
from gbounds.data._datasets import load_mnist1d as load_mnist1d
from gbounds.data._datasets import one_hot as one_hot
from gbounds.data._datasets import select_classes as select_classes
from gbounds.data._datasets import subsample as subsample
from gbounds.data._datasets import train_test_split as train_test_split
from gbounds.data._memorization import colored_mnist as colored_mnist
from gbounds.data._memorization import colorize as colorize
from gbounds.data._memorization import shuffled_labels as shuffled_labels

__all__ = [
    "DATASETS",
    "Dataset",
    "NoisyLabels",
    "Split",
    "binary_task",
    "colored_mnist",
    "colorize",
    "data_dir",
    "inject_label_noise",
    "load_dataset",
    "load_digits",
    "load_fashion_mnist",
    "load_mnist",
    "load_mnist1d",
    "one_hot",
    "select_classes",
    "shuffled_labels",
    "subsample",
    "train_test_split",
]
