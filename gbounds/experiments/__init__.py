"""Paper reproductions and their registry (``gbounds reproduce``).

Each module reproduces one paper's tables or figures on top of the public API of the lower
layers; :func:`reproduce` runs a registered target by name.
"""

from gbounds.experiments._certificates import GOALS as CERTIFICATE_GOALS
from gbounds.experiments._certificates import TASKS as CERTIFICATE_TASKS
from gbounds.experiments._certificates import CertificatesStudy as CertificatesStudy
from gbounds.experiments._certificates import CertificateTaskResult as CertificateTaskResult
from gbounds.experiments._certificates import reproduce_certificates as reproduce_certificates
from gbounds.experiments._fcmi import PAPER_RECIPE as FCMI_PAPER_RECIPE
from gbounds.experiments._fcmi import PROTOCOLS as FCMI_PROTOCOLS
from gbounds.experiments._fcmi import PUBLISHED_FCMI as PUBLISHED_FCMI
from gbounds.experiments._fcmi import FcmiArchitecture as FcmiArchitecture
from gbounds.experiments._fcmi import FcmiProtocol as FcmiProtocol
from gbounds.experiments._fcmi import FcmiReproduction as FcmiReproduction
from gbounds.experiments._fcmi import FcmiRow as FcmiRow
from gbounds.experiments._fcmi import FcmiTable as FcmiTable
from gbounds.experiments._fcmi import FcmiTraining as FcmiTraining
from gbounds.experiments._fcmi import SyntheticRow as SyntheticRow
from gbounds.experiments._fcmi import binary_pool as binary_pool
from gbounds.experiments._fcmi import bound_vs_masks as bound_vs_masks
from gbounds.experiments._fcmi import cpu_scale_protocol as cpu_scale_protocol
from gbounds.experiments._fcmi import fashion_protocol as fashion_protocol
from gbounds.experiments._fcmi import full_scale_protocol as full_scale_protocol
from gbounds.experiments._fcmi import make_classification_study as make_classification_study
from gbounds.experiments._fcmi import paper_cnn_protocol as paper_cnn_protocol
from gbounds.experiments._fcmi import reproduce_fcmi as reproduce_fcmi
from gbounds.experiments._fcmi import run_fcmi_protocol as run_fcmi_protocol
from gbounds.experiments._fcmi import small_fcmi_experiment as small_fcmi_experiment
from gbounds.experiments._fcmi import small_protocol as small_protocol
from gbounds.experiments._fcmi import summarize as summarize
from gbounds.experiments._fcmi import training_steps as training_steps
from gbounds.experiments._fcmi import write_fcmi_figure as write_fcmi_figure
from gbounds.experiments._fcmi import write_table as write_table
from gbounds.experiments._main_job import front_door as front_door
from gbounds.experiments._main_job import ntk_analysis as ntk_analysis
from gbounds.experiments._main_job import run_main_job as run_main_job
from gbounds.experiments._memorization import COLORED_LEVELS as COLORED_LEVELS
from gbounds.experiments._memorization import PAPER_KENDALL_TAU as PAPER_KENDALL_TAU
from gbounds.experiments._memorization import SHUFFLED_LEVELS as SHUFFLED_LEVELS
from gbounds.experiments._memorization import MemorizationReproduction as MemorizationReproduction
from gbounds.experiments._memorization import ModelRecord as ModelRecord
from gbounds.experiments._memorization import Setting as Setting
from gbounds.experiments._memorization import SettingsConfig as SettingsConfig
from gbounds.experiments._memorization import SettingsResult as SettingsResult
from gbounds.experiments._memorization import level_tau_interval as level_tau_interval
from gbounds.experiments._memorization import model_selection_table as model_selection_table
from gbounds.experiments._memorization import (
    reproduce_activation_information as reproduce_activation_information,
)
from gbounds.experiments._memorization import result_to_json as result_to_json
from gbounds.experiments._memorization import run_setting as run_setting
from gbounds.experiments._published import AGREE as AGREE
from gbounds.experiments._published import DISAGREE as DISAGREE
from gbounds.experiments._published import NOT_COMPARABLE as NOT_COMPARABLE
from gbounds.experiments._published import PUBLISHED as PUBLISHED
from gbounds.experiments._published import UNCONFIRMED as UNCONFIRMED
from gbounds.experiments._published import VERDICTS as VERDICTS
from gbounds.experiments._published import Published as Published
from gbounds.experiments._published import PublishedTable as PublishedTable
from gbounds.experiments._published import Verdict as Verdict
from gbounds.experiments._published import published_markdown as published_markdown
from gbounds.experiments._published import published_table as published_table
from gbounds.experiments._published import verdict as verdict
from gbounds.experiments._registry import COLUMNS as REPRODUCTION_COLUMNS
from gbounds.experiments._registry import NO_DEFAULT as NO_DEFAULT
from gbounds.experiments._registry import TARGETS as TARGETS
from gbounds.experiments._registry import Comparison as Comparison
from gbounds.experiments._registry import Reproduction as Reproduction
from gbounds.experiments._registry import Target as Target
from gbounds.experiments._registry import check_overrides as check_overrides
from gbounds.experiments._registry import compare as compare
from gbounds.experiments._registry import list_targets as list_targets
from gbounds.experiments._registry import load_reproduction as load_reproduction
from gbounds.experiments._registry import planned_quantities as planned_quantities
from gbounds.experiments._registry import provenance as provenance
from gbounds.experiments._registry import reproduce as reproduce
from gbounds.experiments._registry import resolved_config as resolved_config
from gbounds.experiments._registry import target_keys as target_keys
from gbounds.experiments._sample_info import PAPER_MNIST_MEAN as PAPER_MNIST_MEAN
from gbounds.experiments._sample_info import PAPER_MNIST_STD as PAPER_MNIST_STD
from gbounds.experiments._sample_info import PUBLISHED_TABLE1_MLP as PUBLISHED_TABLE1_MLP
from gbounds.experiments._sample_info import LooCorrelation as LooCorrelation
from gbounds.experiments._sample_info import MislabeledDetection as MislabeledDetection
from gbounds.experiments._sample_info import PaperLooCorrelation as PaperLooCorrelation
from gbounds.experiments._sample_info import PearsonInterval as PearsonInterval
from gbounds.experiments._sample_info import RetrainedLoo as RetrainedLoo
from gbounds.experiments._sample_info import SampleInfoReproduction as SampleInfoReproduction
from gbounds.experiments._sample_info import Summarisation as Summarisation
from gbounds.experiments._sample_info import auroc as auroc
from gbounds.experiments._sample_info import data_summarisation as data_summarisation
from gbounds.experiments._sample_info import loo_correlation as loo_correlation
from gbounds.experiments._sample_info import mislabeled_detection as mislabeled_detection
from gbounds.experiments._sample_info import mlp_at_init as mlp_at_init
from gbounds.experiments._sample_info import mnist_4_vs_9 as mnist_4_vs_9
from gbounds.experiments._sample_info import pearson as pearson
from gbounds.experiments._sample_info import pearson_ci as pearson_ci
from gbounds.experiments._sample_info import precision_at as precision_at
from gbounds.experiments._sample_info import reproduce_sample_info as reproduce_sample_info
from gbounds.experiments._sample_info import (
    reproduce_sample_info_paper as reproduce_sample_info_paper,
)
from gbounds.experiments._sample_info import retrain_leave_one_out as retrain_leave_one_out
from gbounds.experiments._sample_info import retrain_mlp_leave_one_out as retrain_mlp_leave_one_out
from gbounds.experiments._sample_info import stable_learning_rate as stable_learning_rate
from gbounds.experiments._sample_info import torch_default_init as torch_default_init
from gbounds.experiments._weight_info import LimitMethod as LimitMethod
from gbounds.experiments._weight_info import LimitReproduction as LimitReproduction
from gbounds.experiments._weight_info import LimitRow as LimitRow
from gbounds.experiments._weight_info import SupervisionReproduction as SupervisionReproduction
from gbounds.experiments._weight_info import SupervisionRow as SupervisionRow
from gbounds.experiments._weight_info import reproduce_limit as reproduce_limit
from gbounds.experiments._weight_info import (
    reproduce_supervision_complexity as reproduce_supervision_complexity,
)

__all__ = [
    "AGREE",
    "DISAGREE",
    "NOT_COMPARABLE",
    "PUBLISHED",
    "UNCONFIRMED",
    "VERDICTS",
    "Published",
    "PublishedTable",
    "Verdict",
    "published_markdown",
    "published_table",
    "verdict",
    "REPRODUCTION_COLUMNS",
    "compare",
    "load_reproduction",
    "provenance",
    "planned_quantities",
    "resolved_config",
    "CERTIFICATE_GOALS",
    "CERTIFICATE_TASKS",
    "CertificatesStudy",
    "CertificateTaskResult",
    "reproduce_certificates",
    "auroc",
    "binary_pool",
    "check_overrides",
    "COLORED_LEVELS",
    "Comparison",
    "cpu_scale_protocol",
    "data_summarisation",
    "FcmiArchitecture",
    "FcmiProtocol",
    "FcmiReproduction",
    "FcmiRow",
    "FcmiTable",
    "FcmiTraining",
    "front_door",
    "full_scale_protocol",
    "LimitMethod",
    "LimitReproduction",
    "LimitRow",
    "list_targets",
    "loo_correlation",
    "LooCorrelation",
    "make_classification_study",
    "MemorizationReproduction",
    "mislabeled_detection",
    "MislabeledDetection",
    "mlp_at_init",
    "mnist_4_vs_9",
    "level_tau_interval",
    "model_selection_table",
    "ModelRecord",
    "NO_DEFAULT",
    "ntk_analysis",
    "PAPER_KENDALL_TAU",
    "pearson",
    "precision_at",
    "PUBLISHED_FCMI",
    "PUBLISHED_TABLE1_MLP",
    "reproduce",
    "reproduce_activation_information",
    "reproduce_fcmi",
    "reproduce_limit",
    "reproduce_sample_info",
    "reproduce_supervision_complexity",
    "Reproduction",
    "result_to_json",
    "retrain_leave_one_out",
    "RetrainedLoo",
    "run_fcmi_protocol",
    "run_main_job",
    "run_setting",
    "SampleInfoReproduction",
    "Setting",
    "SettingsConfig",
    "SettingsResult",
    "SHUFFLED_LEVELS",
    "small_fcmi_experiment",
    "small_protocol",
    "stable_learning_rate",
    "Summarisation",
    "summarize",
    "SupervisionReproduction",
    "SupervisionRow",
    "SyntheticRow",
    "Target",
    "target_keys",
    "TARGETS",
    "write_fcmi_figure",
    "write_table",
    "FCMI_PAPER_RECIPE",
    "FCMI_PROTOCOLS",
    "bound_vs_masks",
    "fashion_protocol",
    "paper_cnn_protocol",
    "training_steps",
    "PAPER_MNIST_MEAN",
    "PAPER_MNIST_STD",
    "PaperLooCorrelation",
    "PearsonInterval",
    "pearson_ci",
    "reproduce_sample_info_paper",
    "retrain_mlp_leave_one_out",
    "torch_default_init",
]
