"""The analyze pipeline, checkpoints and reports."""

from gbounds.analysis._analyze import Analysis as Analysis
from gbounds.analysis._analyze import AnalysisConfig as AnalysisConfig
from gbounds.analysis._analyze import AnalysisData as AnalysisData
from gbounds.analysis._analyze import BoundRow as BoundRow
from gbounds.analysis._analyze import SampleInfoRanking as SampleInfoRanking
from gbounds.analysis._analyze import analysis_data as analysis_data
from gbounds.analysis._analyze import analysis_report as analysis_report
from gbounds.analysis._analyze import analyze as analyze
from gbounds.analysis._analyze import default_data as default_data
from gbounds.analysis._analyze import load_checkpoint as load_checkpoint
from gbounds.analysis._analyze import load_module as load_module
from gbounds.analysis._analyze import save_checkpoint as save_checkpoint
from gbounds.analysis._analyze import write_analysis_report as write_analysis_report

__all__ = [
    "Analysis",
    "AnalysisConfig",
    "AnalysisData",
    "BoundRow",
    "SampleInfoRanking",
    "analysis_data",
    "analysis_report",
    "analyze",
    "default_data",
    "load_checkpoint",
    "load_module",
    "save_checkpoint",
    "write_analysis_report",
]
