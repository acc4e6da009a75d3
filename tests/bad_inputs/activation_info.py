"""Bad inputs to the activation-information estimators (histogram entropy, KSG mutual
information) and to the ``gbounds activation-info`` command.

Every API case fails in the argument checks, before anything is compiled. A CLI case calls
``gbounds.cli.main(argv)`` with stderr captured: exit status 2 raises :class:`CliExit2` with the
stderr text (one line naming the flag); any other status is returned, so a run that trains fails
the case.
"""

from __future__ import annotations

import numpy as np

from gbounds._src import errors as _errors
from gbounds.info import _activation_info as ai
from tests.bad_inputs import Case, CliExit2, run_cli

E = _errors.InvalidInputError
_A = np.random.default_rng(0).normal(size=(10, 3))


def _cli(*argv: str):
  return lambda: run_cli("activation-info", "--out", "/tmp/gbounds_bad_activation_info", *argv)


def _nan(a, where=(0, 0), value=np.nan):
  a = np.array(a, dtype=float)
  a[where] = value
  return a


CASES = [
    # --- histogram entropy
    Case("activation_info/entropy_rank1", "ranks", lambda: ai.neuron_entropy(np.ones(5)), E,
         r"activations: expected an array of rank 2"),
    Case("activation_info/entropy_none", "ranks", lambda: ai.neuron_entropy(None), E,
         r"activations: expected an array of rank 2, got NoneType"),
    Case("activation_info/entropy_no_rows", "empty", lambda: ai.neuron_entropy(np.ones((0, 3))),
         E, r"activations: expected a non-empty array along axis 0"),
    Case("activation_info/entropy_no_columns", "empty",
         lambda: ai.neuron_entropy(np.ones((4, 0))), E,
         r"activations: expected a non-empty array along axis 1"),
    Case("activation_info/entropy_nan", "nan", lambda: ai.neuron_entropy(_nan(_A)), E,
         r"activations: expected finite values"),
    Case("activation_info/entropy_inf", "nan",
         lambda: ai.neuron_entropy(_nan(_A, value=np.inf)), E,
         r"activations: expected finite values"),
    Case("activation_info/entropy_strings", "dtypes",
         lambda: ai.neuron_entropy(np.array([["a", "b"], ["c", "d"]])), E,
         r"activations: expected real numbers"),
    Case("activation_info/entropy_complex", "dtypes",
         lambda: ai.neuron_entropy(_A.astype(np.complex128)), E,
         r"activations: expected real numbers"),
    Case("activation_info/entropy_one_bin", "sizes", lambda: ai.neuron_entropy(_A, bins=1), E,
         r"bins: expected an integer in \[2, "),
    Case("activation_info/entropy_float_bins", "dtypes",
         lambda: ai.neuron_entropy(_A, bins=10.5), E, r"bins: expected an integer"),
    Case("activation_info/entropy_huge_bins", "sizes",
         lambda: ai.neuron_entropy(_A, bins=10 ** 9), E, r"bins: expected an integer in"),
    Case("activation_info/bin_indices_unknown_binning", "options",
         lambda: ai.histogram_bin_indices(_A, binning="quantile"), E,
         r"binning: expected one of \{global, per_neuron\}"),
    # --- KSG, one pair
    Case("activation_info/ksg_k_zero", "sizes",
         lambda: ai.ksg_mutual_information(_A[:, 0], _A[:, 1], k=0), E,
         r"k: expected an integer >= 1"),
    Case("activation_info/ksg_k_equals_samples", "sizes",
         lambda: ai.ksg_mutual_information(_A[:5, 0], _A[:5, 1], k=5), E,
         r"k: expected at most S - 1 = 4"),
    Case("activation_info/ksg_k_bool", "dtypes",
         lambda: ai.ksg_mutual_information(_A[:, 0], _A[:, 1], k=True), E,
         r"k: expected an integer"),
    Case("activation_info/ksg_lengths_differ", "shapes",
         lambda: ai.ksg_mutual_information(_A[:, 0], _A[:9, 1]), E,
         r"x and y: expected the same size"),
    Case("activation_info/ksg_y_rank2", "ranks",
         lambda: ai.ksg_mutual_information(_A[:, 0], _A[:, :2]), E,
         r"y: expected an array of rank 1"),
    Case("activation_info/ksg_empty", "empty",
         lambda: ai.ksg_mutual_information(np.zeros(0), np.zeros(0)), E,
         r"x: expected a non-empty array"),
    Case("activation_info/ksg_nan_y", "nan",
         lambda: ai.ksg_mutual_information(_A[:, 0], _nan(_A[:, 1], 3)), E,
         r"y: expected finite values"),
    Case("activation_info/ksg_negative_tie_noise", "options",
         lambda: ai.ksg_mutual_information(_A[:, 0], _A[:, 1], tie_noise=-1e-10), E,
         r"tie_noise: expected None or a number in \[0, 1\)"),
    Case("activation_info/ksg_string_tie_noise", "dtypes",
         lambda: ai.ksg_mutual_information(_A[:, 0], _A[:, 1], tie_noise="sklearn"), E,
         r"tie_noise: expected None or a finite number"),
    Case("activation_info/ksg_negative_seed", "sizes",
         lambda: ai.ksg_mutual_information(_A[:, 0], _A[:, 1], seed=-1), E,
         r"seed: expected an integer in \[0, "),
    # --- KSG, all pairs
    Case("activation_info/pairwise_one_neuron", "shapes",
         lambda: ai.pairwise_mutual_information(_A[:, :1]), E,
         r"activations: expected at least 2 neurons"),
    Case("activation_info/pairwise_too_few_inputs", "sizes",
         lambda: ai.pairwise_mutual_information(_A[:3]), E,
         r"k: expected at most S - 1 = 2"),
    Case("activation_info/pairwise_neuron_out_of_range", "sizes",
         lambda: ai.pairwise_mutual_information(_A, neurons=np.array([0, 3])), E,
         r"neurons: expected distinct column indices in \[0, 3\)"),
    Case("activation_info/pairwise_neuron_twice", "shapes",
         lambda: ai.pairwise_mutual_information(_A, neurons=np.array([1, 1])), E,
         r"neurons: expected distinct column indices"),
    Case("activation_info/pairwise_float_neurons", "dtypes",
         lambda: ai.pairwise_mutual_information(_A, neurons=np.array([0.0, 1.0])), E,
         r"neurons: expected a 1-D integer array"),
    Case("activation_info/pairwise_block_size_zero", "sizes",
         lambda: ai.pairwise_mutual_information(_A, block_size=0), E,
         r"block_size: expected an integer >= 1"),
    Case("activation_info/pairwise_progress_not_callable", "options",
         lambda: ai.pairwise_mutual_information(_A, progress="tqdm"), E,
         r"progress: expected None, a bool or a callable"),
    Case("activation_info/pairwise_callback_not_callable", "options",
         lambda: ai.pairwise_mutual_information(_A, callback="tqdm"), E,
         r"callback: expected None or a callable"),
    # --- aggregate and subsampling
    Case("activation_info/aggregate_one_mi_neuron", "sizes",
         lambda: ai.activation_information(_A, mi_neurons=1), E,
         r"mi_neurons: expected an integer >= 2"),
    Case("activation_info/aggregate_unknown_binning", "options",
         lambda: ai.activation_information(_A, binning="adaptive"), E, r"binning: expected one of"),
    Case("activation_info/aggregate_k_too_large", "sizes",
         lambda: ai.activation_information(_A, k=10), E, r"k: expected at most S - 1 = 9"),
    Case("activation_info/subsample_string_num", "dtypes",
         lambda: ai.subsample_neurons(10, "all"), E, r"num: expected an integer >= 2"),
    # --- gbounds activation-info (every case fails before training)
    Case("activation_info/cli_k_zero", "cli", _cli("--k", "0"), CliExit2,
         r"--k: expected an integer in \[1, 999\]"),
    Case("activation_info/cli_k_not_below_n_measure", "cli",
         _cli("--k", "50", "--n-measure", "50"), CliExit2, r"--k: expected an integer in \[1, 49\]"),
    Case("activation_info/cli_one_bin", "cli", _cli("--bins", "1"), CliExit2,
         r"--bins: expected an integer in \[2, "),
    Case("activation_info/cli_unknown_setting", "cli", _cli("--settings", "colored,permuted"),
         CliExit2, r"--settings: expected one of \{colored, shuffled\}"),
    Case("activation_info/cli_empty_settings", "cli", _cli("--settings", ","), CliExit2,
         r"--settings: expected a comma-separated subset"),
    Case("activation_info/cli_setting_twice", "cli", _cli("--settings", "colored,colored"),
         CliExit2, r"--settings: expected each setting at most once"),
    Case("activation_info/cli_too_many_held_out", "cli",
         _cli("--n-val", "3000", "--n-measure", "3000"), CliExit2,
         r"--n-measure: expected an integer in \[2, 2000\]"),
    Case("activation_info/cli_zero_seeds", "cli", _cli("--seeds", "0"), CliExit2,
         r"--seeds: expected an integer >= 1"),
    Case("activation_info/cli_one_mi_neuron", "cli", _cli("--mi-neurons", "1"), CliExit2,
         r"--mi-neurons: expected an integer >= 2"),
    Case("activation_info/cli_missing_data_dir", "cli",
         _cli("--data-dir", "/nonexistent/gbounds-data"), CliExit2,
         r"--data-dir: expected an existing directory"),
]
