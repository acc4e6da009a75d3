"""gbounds: how much a trained network memorized, and how large its generalization gap can be.

The public API is re-exported here, one symbol a line; implementations live in private
``_``-modules, one per method (see README.md for the map).
"""

from gbounds._errors import GBoundsError as GBoundsError
from gbounds._errors import InvalidInputError as InvalidInputError
from gbounds._errors import DataNotFoundError as DataNotFoundError
from gbounds._errors import ChecksumError as ChecksumError
from gbounds._errors import CorruptFileError as CorruptFileError
from gbounds._errors import StoreLockedError as StoreLockedError
from gbounds._errors import ConvergenceError as ConvergenceError

# Data (_data.py)
from gbounds._data import DATASETS as DATASETS
from gbounds._data import NoisyLabels as NoisyLabels
from gbounds._data import binary_task as binary_task
from gbounds._data import data_dir as data_dir
from gbounds._data import inject_label_noise as inject_label_noise
from gbounds._data import load_dataset as load_dataset
from gbounds._data import load_digits as load_digits
from gbounds._data import load_fashion_mnist as load_fashion_mnist
from gbounds._data import load_mnist as load_mnist
from gbounds._data import load_mnist1d as load_mnist1d
from gbounds._data import one_hot as one_hot
from gbounds._data import subsample as subsample
from gbounds._data import train_test_split as train_test_split

# Models (_models.py)
from gbounds._models import CNN as CNN
from gbounds._models import MLP as MLP
from gbounds._models import ConvStage as ConvStage
from gbounds._models import FCMI_STAGES as FCMI_STAGES
from gbounds._models import ModelFn as ModelFn
from gbounds._models import NnxCNN as NnxCNN
from gbounds._models import NnxMLP as NnxMLP
from gbounds._models import as_model_fn as as_model_fn
from gbounds._models import count_params as count_params
from gbounds._models import linen_params_to_nnx as linen_params_to_nnx

# Training (_train.py)
from gbounds._train import Loss as Loss
from gbounds._train import MapStrategy as MapStrategy
from gbounds._train import Optimizer as Optimizer
from gbounds._train import TrainConfig as TrainConfig
from gbounds._train import TrainResult as TrainResult
from gbounds._train import accuracy as accuracy
from gbounds._train import init_many as init_many
from gbounds._train import loss_fn as loss_fn
from gbounds._train import predict_many as predict_many
from gbounds._train import steps_for_epochs as steps_for_epochs
from gbounds._train import train as train
from gbounds._train import train_many as train_many

# NTK engine (_ntk.py) and linearized dynamics (_dynamics.py)
from gbounds._ntk import NtkImplementation as NtkImplementation
from gbounds._ntk import NtkOutput as NtkOutput
from gbounds._ntk import cast_tree as cast_tree
from gbounds._ntk import empirical_ntk_fn as empirical_ntk_fn
from gbounds._ntk import jacobian_fn as jacobian_fn
from gbounds._ntk import jacobian_vector_product as jacobian_vector_product
from gbounds._ntk import linearize as linearize
from gbounds._ntk import vector_jacobian_product as vector_jacobian_product
from gbounds._dynamics import Eigh as Eigh
from gbounds._dynamics import ExplicitResult as ExplicitResult
from gbounds._dynamics import LinearizedPredictions as LinearizedPredictions
from gbounds._dynamics import Time as Time
from gbounds._dynamics import gd_coefficients as gd_coefficients
from gbounds._dynamics import gradient_descent_mse as gradient_descent_mse
from gbounds._dynamics import linearized_weights as linearized_weights
from gbounds._dynamics import phi as phi
from gbounds._dynamics import train_linearized_explicit as train_linearized_explicit

# Sample information (_sample_info.py)
from gbounds._sample_info import Expansion as Expansion
from gbounds._sample_info import LeaveOneOut as LeaveOneOut
from gbounds._sample_info import LooConvention as LooConvention
from gbounds._sample_info import LooMethod as LooMethod
from gbounds._sample_info import SampleInfoSettings as SampleInfoSettings
from gbounds._sample_info import SampleInformation as SampleInformation
from gbounds._sample_info import leave_one_out as leave_one_out
from gbounds._sample_info import loo_weight_change as loo_weight_change
from gbounds._sample_info import projected_jacobian_fn as projected_jacobian_fn
from gbounds._sample_info import sample_information as sample_information
from gbounds._sample_info import sample_information_from_kernels as sample_information_from_kernels
from gbounds._sample_info import sgd_steady_state_si as sgd_steady_state_si
from gbounds._sample_info_experiments import LooCorrelation as LooCorrelation
from gbounds._sample_info_experiments import MislabeledDetection as MislabeledDetection
from gbounds._sample_info_experiments import PUBLISHED_TABLE1_MLP as PUBLISHED_TABLE1_MLP
from gbounds._sample_info_experiments import RetrainedLoo as RetrainedLoo
from gbounds._sample_info_experiments import SampleInfoReproduction as SampleInfoReproduction
from gbounds._sample_info_experiments import Summarisation as Summarisation
from gbounds._sample_info_experiments import data_summarisation as data_summarisation
from gbounds._sample_info_experiments import loo_correlation as loo_correlation
from gbounds._sample_info_experiments import mislabeled_detection as mislabeled_detection
from gbounds._sample_info_experiments import reproduce_sample_info as reproduce_sample_info
from gbounds._sample_info_experiments import retrain_leave_one_out as retrain_leave_one_out
# CMI bounds (_cmi.py, _kl.py) and supersample experiments (_supersample.py)
from gbounds._supersample import SupersampleDesign as SupersampleDesign
from gbounds._supersample import SupersampleResult as SupersampleResult
from gbounds._supersample import TargetEncoding as TargetEncoding
from gbounds._supersample import draw_supersamples as draw_supersamples
from gbounds._supersample import load_supersample_results as load_supersample_results
from gbounds._supersample import model_mesh as model_mesh
from gbounds._supersample import run_linearized_supersample as run_linearized_supersample
from gbounds._supersample import run_supersample as run_supersample
from gbounds._fcmi_experiments import PUBLISHED_FCMI as PUBLISHED_FCMI
from gbounds._fcmi_experiments import FcmiArchitecture as FcmiArchitecture
from gbounds._fcmi_experiments import FcmiProtocol as FcmiProtocol
from gbounds._fcmi_experiments import FcmiReproduction as FcmiReproduction
from gbounds._fcmi_experiments import FcmiRow as FcmiRow
from gbounds._fcmi_experiments import FcmiTable as FcmiTable
from gbounds._fcmi_experiments import SyntheticRow as SyntheticRow
from gbounds._fcmi_experiments import FcmiTraining as FcmiTraining
from gbounds._fcmi_experiments import cpu_scale_protocol as cpu_scale_protocol
from gbounds._fcmi_experiments import full_scale_protocol as full_scale_protocol
from gbounds._fcmi_experiments import make_classification_study as make_classification_study
from gbounds._fcmi_experiments import reproduce_fcmi as reproduce_fcmi
from gbounds._fcmi_experiments import run_fcmi_protocol as run_fcmi_protocol
from gbounds._fcmi_experiments import small_fcmi_experiment as small_fcmi_experiment
from gbounds._fcmi_experiments import small_protocol as small_protocol
from gbounds._kl import binary_kl as binary_kl
from gbounds._kl import kl_inverse_lower as kl_inverse_lower
from gbounds._kl import kl_inverse_upper as kl_inverse_upper
from gbounds._cmi import BoundResult as BoundResult
from gbounds._cmi import BoundsReport as BoundsReport
from gbounds._cmi import EcmiForm as EcmiForm
from gbounds._cmi import LdcmiForm as LdcmiForm
from gbounds._cmi import MeasuredGap as MeasuredGap
from gbounds._cmi import MIEstimator as MIEstimator
from gbounds._cmi import cmi_bounds as cmi_bounds
from gbounds._cmi import ecmi_bound as ecmi_bound
from gbounds._cmi import ecmi_kl_test_error as ecmi_kl_test_error
from gbounds._cmi import ecmi_linear_test_error as ecmi_linear_test_error
from gbounds._cmi import fcmi_bound as fcmi_bound
from gbounds._cmi import ldcmi_bound as ldcmi_bound
from gbounds._cmi import ldcmi_fast_rate_gap as ldcmi_fast_rate_gap
from gbounds._cmi import measured_gap as measured_gap
from gbounds._cmi import mutual_information_from_counts as mutual_information_from_counts
from gbounds._cmi import plugin_mutual_information as plugin_mutual_information
from gbounds._cmi import samplewise_mi as samplewise_mi
from gbounds._cmi import sqrt_bound as sqrt_bound
# PAC-Bayes (_pac_bayes.py)
from gbounds._pac_bayes import CATONI_GRID as CATONI_GRID
from gbounds._pac_bayes import SIGMA_GRID as SIGMA_GRID
from gbounds._pac_bayes import PacBayesCertificate as PacBayesCertificate
from gbounds._pac_bayes import SigmaSelection as SigmaSelection
from gbounds._pac_bayes import catoni_bound as catoni_bound
from gbounds._pac_bayes import gaussian_kl as gaussian_kl
from gbounds._pac_bayes import mc_error_upper_bound as mc_error_upper_bound
from gbounds._pac_bayes import mcallester_bound as mcallester_bound
from gbounds._pac_bayes import pac_bayes_certificate as pac_bayes_certificate
from gbounds._pac_bayes import pac_bayes_confidence as pac_bayes_confidence
from gbounds._pac_bayes import pac_bayes_kl_bound as pac_bayes_kl_bound
# Activation information (_capture.py, _activation_info.py)
from gbounds._capture import LayerInfo as LayerInfo
from gbounds._capture import available_layers as available_layers
from gbounds._capture import capture_activations as capture_activations
from gbounds._capture import stack_activations as stack_activations
from gbounds._activation_info import ActivationInformation as ActivationInformation
from gbounds._activation_info import Binning as Binning
from gbounds._activation_info import PairwiseMI as PairwiseMI
from gbounds._activation_info import activation_information as activation_information
from gbounds._activation_info import histogram_bin_indices as histogram_bin_indices
from gbounds._activation_info import ksg_mutual_information as ksg_mutual_information
from gbounds._activation_info import neuron_entropy as neuron_entropy
from gbounds._activation_info import pairwise_mutual_information as pairwise_mutual_information
from gbounds._activation_info import subsample_neurons as subsample_neurons
from gbounds._memorization_settings import MemorizationReproduction as MemorizationReproduction
from gbounds._memorization_settings import ModelRecord as ModelRecord
from gbounds._memorization_settings import Setting as Setting
from gbounds._memorization_settings import SettingsConfig as SettingsConfig
from gbounds._memorization_settings import SettingsResult as SettingsResult
from gbounds._memorization_settings import colored_mnist as colored_mnist
from gbounds._memorization_settings import model_selection_table as model_selection_table
from gbounds._memorization_settings import reproduce_activation_information as reproduce_activation_information
from gbounds._memorization_settings import run_setting as run_setting
from gbounds._memorization_settings import shuffled_labels as shuffled_labels
# Manifold geometry (_manifold.py)
from gbounds._manifold import AnchorSolution as AnchorSolution
from gbounds._manifold import DimensionFormula as DimensionFormula
from gbounds._manifold import DualSolver as DualSolver
from gbounds._manifold import ManifoldGeometry as ManifoldGeometry
from gbounds._manifold import anchor_geometry as anchor_geometry
from gbounds._manifold import class_manifolds as class_manifolds
from gbounds._manifold import manifold_geometry as manifold_geometry
from gbounds._manifold import solve_anchor_qp as solve_anchor_qp
from gbounds._rewind import PermutedLabelConfig as PermutedLabelConfig
from gbounds._rewind import PermutedLabelResult as PermutedLabelResult
from gbounds._rewind import layer_features as layer_features
from gbounds._rewind import permute_labels as permute_labels
from gbounds._rewind import permuted_label_experiment as permuted_label_experiment
from gbounds._rewind import rewind_layers as rewind_layers
# Weight information, LIMIT, supervision complexity (_weight_info.py, _limit.py, _supervision.py)
from gbounds._weight_info import FisherForm as FisherForm
from gbounds._weight_info import FisherType as FisherType
from gbounds._weight_info import KfacSharing as KfacSharing
from gbounds._weight_info import LossScaling as LossScaling
from gbounds._weight_info import WeightInformation as WeightInformation
from gbounds._weight_info import fisher_diagonal as fisher_diagonal
from gbounds._weight_info import fisher_matrix as fisher_matrix
from gbounds._weight_info import fisher_trace as fisher_trace
from gbounds._weight_info import information_from_spectrum as information_from_spectrum
from gbounds._weight_info import information_in_weights as information_in_weights
from gbounds._weight_info import information_lagrangian_posterior as information_lagrangian_posterior
from gbounds._weight_info import kfac_factors as kfac_factors
from gbounds._limit import AuxLoss as AuxLoss
from gbounds._limit import ClassifierStep as ClassifierStep
from gbounds._limit import NoiseParameterisation as NoiseParameterisation
from gbounds._limit import GradientSource as GradientSource
from gbounds._limit import LimitConfig as LimitConfig
from gbounds._limit import LimitNoise as LimitNoise
from gbounds._limit import LimitResult as LimitResult
from gbounds._limit import limit_gradients as limit_gradients
from gbounds._limit import train_limit as train_limit
from gbounds._supervision import KernelMarginBound as KernelMarginBound
from gbounds._supervision import SupervisionComplexity as SupervisionComplexity
from gbounds._supervision import kernel_margin_bound as kernel_margin_bound
from gbounds._supervision import supervision_complexity as supervision_complexity
from gbounds._weight_info_experiments import LimitMethod as LimitMethod
from gbounds._weight_info_experiments import LimitReproduction as LimitReproduction
from gbounds._weight_info_experiments import LimitRow as LimitRow
from gbounds._weight_info_experiments import SupervisionReproduction as SupervisionReproduction
from gbounds._weight_info_experiments import SupervisionRow as SupervisionRow
from gbounds._weight_info_experiments import reproduce_limit as reproduce_limit
from gbounds._weight_info_experiments import reproduce_supervision_complexity as reproduce_supervision_complexity
# Front door (_analyze.py, _reproduce.py)
from gbounds._analyze import Analysis as Analysis
from gbounds._analyze import AnalysisConfig as AnalysisConfig
from gbounds._analyze import AnalysisData as AnalysisData
from gbounds._analyze import BoundRow as BoundRow
from gbounds._analyze import SampleInfoRanking as SampleInfoRanking
from gbounds._analyze import analysis_data as analysis_data
from gbounds._analyze import analysis_report as analysis_report
from gbounds._analyze import analyze as analyze
from gbounds._analyze import default_data as default_data
from gbounds._analyze import load_checkpoint as load_checkpoint
from gbounds._analyze import load_module as load_module
from gbounds._analyze import save_checkpoint as save_checkpoint
from gbounds._analyze import write_analysis_report as write_analysis_report
from gbounds._reproduce import Reproduction as Reproduction
from gbounds._reproduce import list_targets as list_targets
from gbounds._reproduce import reproduce as reproduce

__version__ = "0.1.0"
