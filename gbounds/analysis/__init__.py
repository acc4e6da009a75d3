"""The analyze pipeline, checkpoints and reports."""

from gbounds.analysis._analyze import MIN_PART_EXAMPLES as MIN_PART_EXAMPLES
from gbounds.analysis._analyze import Analysis as Analysis
from gbounds.analysis._analyze import AnalysisConfig as AnalysisConfig
from gbounds.analysis._analyze import AnalysisData as AnalysisData
from gbounds.analysis._analyze import BoundRow as BoundRow
from gbounds.analysis._analyze import PacBayesMethod as PacBayesMethod
from gbounds.analysis._analyze import PriorChoice as PriorChoice
from gbounds.analysis._analyze import SampleInfoRanking as SampleInfoRanking
from gbounds.analysis._analyze import analysis_data as analysis_data
from gbounds.analysis._analyze import analysis_report as analysis_report
from gbounds.analysis._analyze import analyze as analyze
from gbounds.analysis._analyze import check_output_dir as check_output_dir
from gbounds.analysis._analyze import default_data as default_data
from gbounds.analysis._analyze import load_checkpoint as load_checkpoint
from gbounds.analysis._analyze import load_module as load_module
from gbounds.analysis._analyze import prior_choice as prior_choice
from gbounds.analysis._analyze import save_checkpoint as save_checkpoint
from gbounds.analysis._analyze import write_analysis_report as write_analysis_report
from gbounds.analysis._report import Report as Report
from gbounds.analysis._report import ReportFigure as ReportFigure
from gbounds.analysis._report import ReportFiles as ReportFiles
from gbounds.analysis._report import ReportSection as ReportSection
from gbounds.analysis._report import ReportTable as ReportTable
from gbounds.analysis._report import csv_cell as csv_cell
from gbounds.analysis._report import format_table as format_table
from gbounds.analysis._report import render_html as render_html
from gbounds.analysis._report import safe_file_stem as safe_file_stem
from gbounds.analysis._report import table_csv as table_csv
from gbounds.analysis._report import tables_text as tables_text
from gbounds.analysis._report import write_report as write_report

__all__ = [
    "MIN_PART_EXAMPLES",
    "PacBayesMethod",
    "PriorChoice",
    "prior_choice",
    "Analysis",
    "AnalysisConfig",
    "AnalysisData",
    "BoundRow",
    "SampleInfoRanking",
    "analysis_data",
    "analysis_report",
    "analyze",
    "check_output_dir",
    "default_data",
    "load_checkpoint",
    "load_module",
    "save_checkpoint",
    "write_analysis_report",
    "Report",
    "ReportFigure",
    "ReportFiles",
    "ReportSection",
    "ReportTable",
    "csv_cell",
    "format_table",
    "render_html",
    "safe_file_stem",
    "table_csv",
    "tables_text",
    "write_report",
]
