"""Mutual-information estimators, CMI bounds, kl inverses, PAC-Bayes bounds and certificates
(an optimised Gaussian posterior with a learnt or data-free prior: :func:`certify`), and kernel
bounds."""

from gbounds.bounds._certify import PRIOR_SCALE_GRID as PRIOR_SCALE_GRID
from gbounds.bounds._certify import CertifyConfig as CertifyConfig
from gbounds.bounds._certify import GaussianPosterior as GaussianPosterior
from gbounds.bounds._certify import PosteriorCertificate as PosteriorCertificate
from gbounds.bounds._certify import PosteriorInit as PosteriorInit
from gbounds.bounds._certify import PosteriorOptimizer as PosteriorOptimizer
from gbounds.bounds._certify import PriorKind as PriorKind
from gbounds.bounds._certify import PriorScalePoint as PriorScalePoint
from gbounds.bounds._certify import ScaleGranularity as ScaleGranularity
from gbounds.bounds._certify import ScaleSummary as ScaleSummary
from gbounds.bounds._certify import bounded_cross_entropy as bounded_cross_entropy
from gbounds.bounds._certify import certify as certify
from gbounds.bounds._certify import gaussian_kl_isotropic as gaussian_kl_isotropic
from gbounds.bounds._cmi import BoundName as BoundName
from gbounds.bounds._cmi import BoundResult as BoundResult
from gbounds.bounds._cmi import BoundsReport as BoundsReport
from gbounds.bounds._cmi import EcmiForm as EcmiForm
from gbounds.bounds._cmi import LdcmiForm as LdcmiForm
from gbounds.bounds._cmi import MeasuredGap as MeasuredGap
from gbounds.bounds._cmi import MIEstimator as MIEstimator
from gbounds.bounds._cmi import cmi_bounds as cmi_bounds
from gbounds.bounds._cmi import ecmi_bound as ecmi_bound
from gbounds.bounds._cmi import ecmi_kl_test_error as ecmi_kl_test_error
from gbounds.bounds._cmi import ecmi_linear_test_error as ecmi_linear_test_error
from gbounds.bounds._cmi import fcmi_bound as fcmi_bound
from gbounds.bounds._cmi import ldcmi_bound as ldcmi_bound
from gbounds.bounds._cmi import ldcmi_fast_rate_gap as ldcmi_fast_rate_gap
from gbounds.bounds._cmi import measured_gap as measured_gap
from gbounds.bounds._cmi import mutual_information_from_counts as mutual_information_from_counts
from gbounds.bounds._cmi import plugin_mutual_information as plugin_mutual_information
from gbounds.bounds._cmi import samplewise_mi as samplewise_mi
from gbounds.bounds._cmi import sqrt_bound as sqrt_bound
from gbounds.bounds._kl import binary_kl as binary_kl
from gbounds.bounds._kl import kl_inverse_lower as kl_inverse_lower
from gbounds.bounds._kl import kl_inverse_upper as kl_inverse_upper
from gbounds.bounds._objectives import Objective as Objective
from gbounds.bounds._objectives import heldout_bound as heldout_bound
from gbounds.bounds._objectives import mc_term as mc_term
from gbounds.bounds._objectives import objective_value as objective_value
from gbounds.bounds._objectives import optimal_lambda as optimal_lambda
from gbounds.bounds._pac_bayes import CATONI_GRID as CATONI_GRID
from gbounds.bounds._pac_bayes import SIGMA_GRID as SIGMA_GRID
from gbounds.bounds._pac_bayes import CertificateName as CertificateName
from gbounds.bounds._pac_bayes import PacBayesCertificate as PacBayesCertificate
from gbounds.bounds._pac_bayes import SigmaSelection as SigmaSelection
from gbounds.bounds._pac_bayes import catoni_bound as catoni_bound
from gbounds.bounds._pac_bayes import gaussian_kl as gaussian_kl
from gbounds.bounds._pac_bayes import mc_error_upper_bound as mc_error_upper_bound
from gbounds.bounds._pac_bayes import mcallester_bound as mcallester_bound
from gbounds.bounds._pac_bayes import pac_bayes_certificate as pac_bayes_certificate
from gbounds.bounds._pac_bayes import pac_bayes_confidence as pac_bayes_confidence
from gbounds.bounds._pac_bayes import pac_bayes_kl_bound as pac_bayes_kl_bound
from gbounds.bounds._supervision import KernelMarginBound as KernelMarginBound
from gbounds.bounds._supervision import SupervisionComplexity as SupervisionComplexity
from gbounds.bounds._supervision import kernel_margin_bound as kernel_margin_bound
from gbounds.bounds._supervision import supervision_complexity as supervision_complexity

__all__ = [
    "PRIOR_SCALE_GRID",
    "CertifyConfig",
    "GaussianPosterior",
    "PosteriorCertificate",
    "PosteriorInit",
    "PosteriorOptimizer",
    "PriorKind",
    "PriorScalePoint",
    "ScaleGranularity",
    "ScaleSummary",
    "bounded_cross_entropy",
    "certify",
    "gaussian_kl_isotropic",
    "Objective",
    "heldout_bound",
    "mc_term",
    "objective_value",
    "optimal_lambda",
    "binary_kl",
    "kl_inverse_lower",
    "kl_inverse_upper",
    "BoundName",
    "BoundResult",
    "BoundsReport",
    "EcmiForm",
    "LdcmiForm",
    "MeasuredGap",
    "MIEstimator",
    "cmi_bounds",
    "ecmi_bound",
    "ecmi_kl_test_error",
    "ecmi_linear_test_error",
    "fcmi_bound",
    "ldcmi_bound",
    "ldcmi_fast_rate_gap",
    "measured_gap",
    "mutual_information_from_counts",
    "plugin_mutual_information",
    "samplewise_mi",
    "sqrt_bound",
    "CATONI_GRID",
    "SIGMA_GRID",
    "CertificateName",
    "PacBayesCertificate",
    "SigmaSelection",
    "catoni_bound",
    "gaussian_kl",
    "mc_error_upper_bound",
    "mcallester_bound",
    "pac_bayes_certificate",
    "pac_bayes_confidence",
    "pac_bayes_kl_bound",
    "KernelMarginBound",
    "SupervisionComplexity",
    "kernel_margin_bound",
    "supervision_complexity",
]
