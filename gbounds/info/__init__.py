"""Sample information, activation information and information in the weights."""

from gbounds.info._activation_info import ActivationInformation as ActivationInformation
from gbounds.info._activation_info import Binning as Binning
from gbounds.info._activation_info import PairwiseMI as PairwiseMI
from gbounds.info._activation_info import activation_information as activation_information
from gbounds.info._activation_info import histogram_bin_indices as histogram_bin_indices
from gbounds.info._activation_info import ksg_mutual_information as ksg_mutual_information
from gbounds.info._activation_info import neuron_entropy as neuron_entropy
from gbounds.info._activation_info import pairwise_mutual_information as pairwise_mutual_information
from gbounds.info._activation_info import subsample_neurons as subsample_neurons
from gbounds.info._sample_info import Expansion as Expansion
from gbounds.info._sample_info import LeaveOneOut as LeaveOneOut
from gbounds.info._sample_info import LooConvention as LooConvention
from gbounds.info._sample_info import LooMethod as LooMethod
from gbounds.info._sample_info import SampleInformation as SampleInformation
from gbounds.info._sample_info import SampleInfoSettings as SampleInfoSettings
from gbounds.info._sample_info import leave_one_out as leave_one_out
from gbounds.info._sample_info import loo_weight_change as loo_weight_change
from gbounds.info._sample_info import projected_jacobian_fn as projected_jacobian_fn
from gbounds.info._sample_info import sample_information as sample_information
from gbounds.info._sample_info import (
    sample_information_from_kernels as sample_information_from_kernels,
)
from gbounds.info._sample_info import sgd_steady_state_si as sgd_steady_state_si
from gbounds.info._weight_info import ExactRoute as ExactRoute
from gbounds.info._weight_info import FisherForm as FisherForm
from gbounds.info._weight_info import FisherType as FisherType
from gbounds.info._weight_info import KfacSharing as KfacSharing
from gbounds.info._weight_info import LossScaling as LossScaling
from gbounds.info._weight_info import WeightInformation as WeightInformation
from gbounds.info._weight_info import fisher_diagonal as fisher_diagonal
from gbounds.info._weight_info import fisher_gram as fisher_gram
from gbounds.info._weight_info import fisher_matrix as fisher_matrix
from gbounds.info._weight_info import fisher_trace as fisher_trace
from gbounds.info._weight_info import information_from_spectrum as information_from_spectrum
from gbounds.info._weight_info import information_in_weights as information_in_weights
from gbounds.info._weight_info import (
    information_lagrangian_posterior as information_lagrangian_posterior,
)
from gbounds.info._weight_info import kfac_factors as kfac_factors

__all__ = [
    "Expansion",
    "LeaveOneOut",
    "LooConvention",
    "LooMethod",
    "SampleInfoSettings",
    "SampleInformation",
    "leave_one_out",
    "loo_weight_change",
    "projected_jacobian_fn",
    "sample_information",
    "sample_information_from_kernels",
    "sgd_steady_state_si",
    "ActivationInformation",
    "Binning",
    "PairwiseMI",
    "activation_information",
    "histogram_bin_indices",
    "ksg_mutual_information",
    "neuron_entropy",
    "pairwise_mutual_information",
    "subsample_neurons",
    "FisherForm",
    "FisherType",
    "KfacSharing",
    "LossScaling",
    "WeightInformation",
    "ExactRoute",
    "fisher_diagonal",
    "fisher_gram",
    "fisher_matrix",
    "fisher_trace",
    "information_from_spectrum",
    "information_in_weights",
    "information_lagrangian_posterior",
    "kfac_factors",
]
