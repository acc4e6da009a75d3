"""Reports on disk: JSON, CSV tables, PNG figures and one self-contained HTML page.

A :class:`Report` is a title, a JSON-able payload and a list of :class:`ReportSection` s, each
with paragraphs, :class:`ReportTable` s and :class:`ReportFigure` s (PNG bytes). :func:`write_report` writes

* ``report.json``: the payload (every number of the analysis);
* ``<table>.csv``: one file per table (cells that a spreadsheet would evaluate as formulas are
  prefixed with ``'``, see :func:`csv_cell`);
* ``<figure>.png``: one file per figure (file names from table and figure names made safe by
  :func:`safe_file_stem`: they never leave ``out_dir``);
* ``report.html``: all sections, with the PNGs embedded as base64 ``data:`` URIs, so the page
  is one file that opens anywhere (no network, no neighbouring files).

Every file is written atomically (temporary file in the same directory, then ``os.replace``):
a reader, or a rerun after a crash, never sees a half-written file.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import html
import io
import math
import os
import pathlib
import re
from collections.abc import Sequence
from typing import Any

from gbounds._src import io as _io
from gbounds._src import results as _results


@dataclasses.dataclass(frozen=True)
class ReportTable:
  """A named table of a report: written as ``<name>.csv``, shown in the HTML page.

  Attributes:
    name: file stem of the CSV (made safe by :func:`safe_file_stem`).
    title: caption.
    columns: column names.
    rows: sequences aligned with ``columns``; floats shown with 4 digits.
    note: a note printed under the table.
  """
  name: str
  title: str
  columns: tuple[str, ...]
  rows: tuple[tuple[Any, ...], ...]
  note: str = ""

  @classmethod
  def of(cls, name: str, table: _results.Table, *, note: str = "") -> ReportTable:
    """A report table from a :class:`gbounds.Table` (its title becomes the caption).

    Args:
      name: file stem of the CSV.
      table: the :class:`gbounds.Table`.
      note: a note printed under the table.

    Returns:
      The :class:`ReportTable`.
    """
    return cls(name, table.title, tuple(table.columns), tuple(table.rows), note)

  def table(self) -> _results.Table:
    """This table as a :class:`gbounds.Table`.

    Returns:
      ``Table(columns, rows, title)``.
    """
    return _results.Table(tuple(self.columns), tuple(tuple(r) for r in self.rows), self.title)


@dataclasses.dataclass(frozen=True)
class ReportFigure:
  """A PNG figure of a report (``png`` holds the encoded bytes).

  Attributes:
    name: file stem of the PNG.
    title: caption title.
    png: the PNG bytes (:func:`gbounds._src.io.figure_png`).
    caption: caption text.
  """
  name: str
  title: str
  png: bytes
  caption: str = ""

  @classmethod
  def of(cls, name: str, title: str, fig: Any, caption: str = "") -> ReportFigure:
    """Renders a matplotlib ``Figure`` (built without pyplot) into a report figure.

    Args:
      name: file stem of the PNG.
      title: caption title.
      fig: a ``matplotlib.figure.Figure`` (e.g. from ``gbounds._src.io.new_figure``).
      caption: caption text.

    Returns:
      The :class:`ReportFigure`.
    """
    return cls(name, title, _io.figure_png(fig), caption)


@dataclasses.dataclass(frozen=True)
class ReportSection:
  """One section of a report.

  Attributes:
    title: heading.
    paragraphs: text paragraphs.
    tables: :class:`ReportTable` s.
    figures: :class:`ReportFigure` s.
    preformatted: a preformatted text block.
  """
  title: str
  paragraphs: tuple[str, ...] = ()
  tables: tuple[ReportTable, ...] = ()
  figures: tuple[ReportFigure, ...] = ()
  preformatted: str = ""


@dataclasses.dataclass(frozen=True)
class Report:
  """A report: a title, a JSON-able payload (``report.json``) and its sections.

  Attributes:
    title: page title.
    payload: what ``report.json`` holds.
    sections: the :class:`ReportSection` s, in order.
  """
  title: str
  payload: dict
  sections: tuple[ReportSection, ...]


@dataclasses.dataclass(frozen=True)
class ReportFiles:
  """Paths written by :func:`write_report`."""
  json: pathlib.Path
  html: pathlib.Path
  csv: tuple[pathlib.Path, ...]
  png: tuple[pathlib.Path, ...]


# The names of earlier versions, used by gbounds.experiments until it switches to the public
# names above (ReportTable, ReportFigure, ReportSection, gbounds._src.io.figure_png).
Table = ReportTable
Figure = ReportFigure
Section = ReportSection
figure_png = _io.figure_png


def _fmt(v: Any) -> str:
  if isinstance(v, bool):
    return "yes" if v else "no"
  if isinstance(v, float):
    if math.isnan(v):
      return "n/a"
    if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
      return f"{v:.3e}"
    return f"{v:.4f}"
  return str(v)


# A cell a spreadsheet would read as a formula starts with one of these (OWASP, "CSV Injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def csv_cell(v: Any) -> Any:
  """One CSV cell: floats as ``repr`` (exact round trip), text that a spreadsheet would run as
  a formula (starting with ``= + - @``, tab or CR) prefixed with ``'`` as OWASP recommends.
  Numbers, and text that is a plain number such as ``-0.5``, stay numbers. CR line breaks in
  text become LF.

  Args:
    v: the cell value.

  Returns:
    The value to hand to ``csv.writer``.
  """
  if isinstance(v, float):
    return repr(v)
  if isinstance(v, (bool, int)) or v is None:
    return v
  s = str(v)
  if s.startswith(_FORMULA_START) and not _PLAIN_NUMBER.fullmatch(s):
    s = "'" + s
  # A bare CR is not quoted by the csv module under a "\n" line terminator and would split the
  # row in a reader: line breaks inside text become "\n" (which is quoted).
  return s.replace("\r\n", "\n").replace("\r", "\n")


def table_csv(table: ReportTable) -> str:
  """The table as CSV text (header first; cells through :func:`csv_cell`).

  Args:
    table: a :class:`ReportTable`.

  Returns:
    The CSV text.
  """
  buf = io.StringIO()
  w = csv.writer(buf, lineterminator="\n")
  w.writerow([csv_cell(c) for c in table.columns])
  for row in table.rows:
    w.writerow([csv_cell(v) for v in row])
  return buf.getvalue()


_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


def safe_file_stem(name: str, default: str = "item") -> str:
  """A file name stem made from a user-supplied name that cannot leave its directory: path
  separators and every other character outside ``[A-Za-z0-9._-]`` become ``_``, leading dots
  are dropped (no ``..``, no hidden files), and the result is at most 100 characters.

  Args:
    name: the user-supplied name.
    default: the stem when nothing of ``name`` is left.

  Returns:
    The safe stem.
  """
  stem = _UNSAFE_NAME.sub("_", str(name)).lstrip(".")[:100].strip()
  return stem or default


def _file_in(out: pathlib.Path, name: str, suffix: str, used: set[str], default: str
             ) -> pathlib.Path:
  stem = safe_file_stem(name, default)
  base, k = stem, 2
  while stem.lower() + suffix in used:  # two tables with one name would overwrite each other
    stem, k = f"{base}_{k}", k + 1
  used.add(stem.lower() + suffix)
  path = out / f"{stem}{suffix}"
  if path.parent.resolve() != out.resolve():  # belt and braces: never outside out_dir
    raise ValueError(f"report file {path} would leave the output directory {out}")
  return path


def format_table(table: ReportTable) -> str:
  """Fixed-width text rendering (for terminals).

  Args:
    table: a :class:`ReportTable`.

  Returns:
    The aligned text, header and rule first.
  """
  cells = [list(table.columns)] + [[_fmt(v) for v in row] for row in table.rows]
  left = [[True] * len(table.columns)] + [[isinstance(v, str) for v in row]
                                          for row in table.rows]
  widths = [max(len(r[j]) for r in cells) for j in range(len(table.columns))]
  lines = []
  for i, r in enumerate(cells):
    lines.append("  ".join(c.ljust(w) if left[i][j] else c.rjust(w)
                           for j, (c, w) in enumerate(zip(r, widths))).rstrip())
    if i == 0:
      lines.append("  ".join("-" * w for w in widths))
  return "\n".join(lines)


_CSS = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; }
table { border-collapse: collapse; margin: .8em 0; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: right; }
th { background: #f2f2f2; } td:first-child, th:first-child { text-align: left; }
figure { display: inline-block; margin: .5em 1em .5em 0; vertical-align: top; }
figcaption { font-size: .85em; color: #555; max-width: 560px; }
pre { background: #f7f7f7; padding: .8em; overflow-x: auto; font-size: .85em; }
.note { font-size: .85em; color: #555; }
"""


def data_uri(png: bytes) -> str:
  """A ``data:`` URI embedding PNG bytes.

  Args:
    png: the PNG bytes.

  Returns:
    ``"data:image/png;base64,..."``.
  """
  return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def render_html(report: Report) -> str:
  """The whole report as one HTML page; figures embedded as base64 data URIs.

  Args:
    report: the :class:`Report`.

  Returns:
    The HTML text.
  """
  e = html.escape
  out = ["<!DOCTYPE html>", "<html lang='en'><head><meta charset='utf-8'>",
         f"<title>{e(report.title)}</title><style>{_CSS}</style></head><body>",
         f"<h1>{e(report.title)}</h1>"]
  for sec in report.sections:
    out.append(f"<section><h2>{e(sec.title)}</h2>")
    for p in sec.paragraphs:
      out.append(f"<p>{e(p)}</p>")
    if sec.preformatted:
      out.append(f"<pre>{e(sec.preformatted)}</pre>")
    for t in sec.tables:
      out.append(f"<h3>{e(t.title)}</h3><table id='table-{e(t.name)}'><thead><tr>")
      out.extend(f"<th>{e(c)}</th>" for c in t.columns)
      out.append("</tr></thead><tbody>")
      for row in t.rows:
        out.append("<tr>" + "".join(f"<td>{e(_fmt(v))}</td>" for v in row) + "</tr>")
      out.append("</tbody></table>")
      if t.note:
        out.append(f"<p class='note'>{e(t.note)}</p>")
    for f in sec.figures:
      out.append(f"<figure><img id='fig-{e(f.name)}' alt='{e(f.title)}' "
                 f"src='{data_uri(f.png)}'><figcaption><b>{e(f.title)}.</b> "
                 f"{e(f.caption)}</figcaption></figure>")
    out.append("</section>")
  out.append("</body></html>")
  return "\n".join(out) + "\n"


def write_report(report: Report, out_dir: str | os.PathLike) -> ReportFiles:
  """Writes JSON, CSV, PNG and the self-contained HTML page to ``out_dir`` (atomically).

  Args:
    report: the :class:`Report`.
    out_dir: the output directory (created if needed).

  Returns:
    :class:`ReportFiles` naming every file written.
  """
  out = pathlib.Path(out_dir)
  out.mkdir(parents=True, exist_ok=True)
  csvs, pngs = [], []
  used = {"report.json", "report.html"}
  for sec in report.sections:
    for t in sec.tables:
      p = _file_in(out, t.name, ".csv", used, "table")
      _io.atomic_write_text(p, table_csv(t))
      csvs.append(p)
    for f in sec.figures:
      p = _file_in(out, f.name, ".png", used, "figure")
      _io.atomic_write_bytes(p, f.png)
      pngs.append(p)
  js = out / "report.json"
  _io.atomic_write_json(js, report.payload)
  page = out / "report.html"
  _io.atomic_write_text(page, render_html(report))
  return ReportFiles(js, page, tuple(csvs), tuple(pngs))


def tables_text(tables: Sequence[ReportTable]) -> str:
  """Titled fixed-width renderings of ``tables``, separated by blank lines.

  Args:
    tables: :class:`ReportTable` s.

  Returns:
    The text.
  """
  return "\n\n".join(f"{t.title}\n{format_table(t)}" for t in tables)
