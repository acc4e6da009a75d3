"""Paper reproductions and their registry."""

from gbounds.experiments._sample_info import LooCorrelation as LooCorrelation
from gbounds.experiments._sample_info import MislabeledDetection as MislabeledDetection
from gbounds.experiments._sample_info import PUBLISHED_TABLE1_MLP as PUBLISHED_TABLE1_MLP
from gbounds.experiments._sample_info import RetrainedLoo as RetrainedLoo
from gbounds.experiments._sample_info import SampleInfoReproduction as SampleInfoReproduction
from gbounds.experiments._sample_info import Summarisation as Summarisation
from gbounds.experiments._sample_info import data_summarisation as data_summarisation
from gbounds.experiments._sample_info import loo_correlation as loo_correlation
from gbounds.experiments._sample_info import mislabeled_detection as mislabeled_detection
from gbounds.experiments._sample_info import reproduce_sample_info as reproduce_sample_info
from gbounds.experiments._sample_info import retrain_leave_one_out as retrain_leave_one_out
from gbounds.experiments._fcmi import PUBLISHED_FCMI as PUBLISHED_FCMI
from gbounds.experiments._fcmi import FcmiArchitecture as FcmiArchitecture
from gbounds.experiments._fcmi import FcmiProtocol as FcmiProtocol
from gbounds.experiments._fcmi import FcmiReproduction as FcmiReproduction
from gbounds.experiments._fcmi import FcmiRow as FcmiRow
from gbounds.experiments._fcmi import FcmiTable as FcmiTable
from gbounds.experiments._fcmi import SyntheticRow as SyntheticRow
from gbounds.experiments._fcmi import FcmiTraining as FcmiTraining
from gbounds.experiments._fcmi import cpu_scale_protocol as cpu_scale_protocol
from gbounds.experiments._fcmi import full_scale_protocol as full_scale_protocol
from gbounds.experiments._fcmi import make_classification_study as make_classification_study
from gbounds.experiments._fcmi import reproduce_fcmi as reproduce_fcmi
from gbounds.experiments._fcmi import run_fcmi_protocol as run_fcmi_protocol
from gbounds.experiments._fcmi import small_fcmi_experiment as small_fcmi_experiment
from gbounds.experiments._fcmi import small_protocol as small_protocol
from gbounds.experiments._memorization import MemorizationReproduction as MemorizationReproduction
from gbounds.experiments._memorization import ModelRecord as ModelRecord
from gbounds.experiments._memorization import Setting as Setting
from gbounds.experiments._memorization import SettingsConfig as SettingsConfig
from gbounds.experiments._memorization import SettingsResult as SettingsResult
from gbounds.experiments._memorization import model_selection_table as model_selection_table
from gbounds.experiments._memorization import reproduce_activation_information as reproduce_activation_information
from gbounds.experiments._memorization import run_setting as run_setting
from gbounds.experiments._weight_info import LimitMethod as LimitMethod
from gbounds.experiments._weight_info import LimitReproduction as LimitReproduction
from gbounds.experiments._weight_info import LimitRow as LimitRow
from gbounds.experiments._weight_info import SupervisionReproduction as SupervisionReproduction
from gbounds.experiments._weight_info import SupervisionRow as SupervisionRow
from gbounds.experiments._weight_info import reproduce_limit as reproduce_limit
from gbounds.experiments._weight_info import reproduce_supervision_complexity as reproduce_supervision_complexity
from gbounds.experiments._registry import Reproduction as Reproduction
from gbounds.experiments._registry import list_targets as list_targets
from gbounds.experiments._registry import reproduce as reproduce

__all__ = [
    "LooCorrelation",
    "MislabeledDetection",
    "PUBLISHED_TABLE1_MLP",
    "RetrainedLoo",
    "SampleInfoReproduction",
    "Summarisation",
    "data_summarisation",
    "loo_correlation",
    "mislabeled_detection",
    "reproduce_sample_info",
    "retrain_leave_one_out",
    "PUBLISHED_FCMI",
    "FcmiArchitecture",
    "FcmiProtocol",
    "FcmiReproduction",
    "FcmiRow",
    "FcmiTable",
    "SyntheticRow",
    "FcmiTraining",
    "cpu_scale_protocol",
    "full_scale_protocol",
    "make_classification_study",
    "reproduce_fcmi",
    "run_fcmi_protocol",
    "small_fcmi_experiment",
    "small_protocol",
    "MemorizationReproduction",
    "ModelRecord",
    "Setting",
    "SettingsConfig",
    "SettingsResult",
    "model_selection_table",
    "reproduce_activation_information",
    "run_setting",
    "LimitMethod",
    "LimitReproduction",
    "LimitRow",
    "SupervisionReproduction",
    "SupervisionRow",
    "reproduce_limit",
    "reproduce_supervision_complexity",
    "Reproduction",
    "list_targets",
    "reproduce",
]
