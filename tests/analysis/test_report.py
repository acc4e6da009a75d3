"""The self-contained HTML report renders its figures in headless Chromium (Debian's ``chromium``).

The page written by :func:`gbounds.analysis._report.write_report` is copied next to a probe script that
records, for every ``<img>``, ``img.complete && img.naturalWidth > 0`` into the DOM; Chromium
loads it with ``--dump-dom`` (the DOM after scripts ran) and ``--screenshot``. The test checks
that every image decoded, that the screenshot is a PNG with visible content, and that the page
needs no neighbouring files (it is opened from an otherwise empty directory).
"""

import json
import re
import shutil
import subprocess

import numpy as np
import pytest

import gbounds.analysis as rp
from gbounds._src.io import new_figure

_PROBE = """
<script>
window.addEventListener('load', function () {
  var imgs = Array.prototype.slice.call(document.images);
  var ok = imgs.map(function (im) { return im.complete && im.naturalWidth > 0; });
  var out = document.createElement('pre');
  out.id = 'probe';
  out.textContent = 'PROBE' + JSON.stringify({n: imgs.length, ok: ok,
      widths: imgs.map(function (im) { return im.naturalWidth; })}) + 'END';
  document.body.appendChild(out);
});
</script>
"""


def _chromium():
  for name in ("chromium", "chromium-browser", "google-chrome"):
    path = shutil.which(name)
    if path:
      return path
  return None


def _report():
  figs = []
  for i in range(2):
    fig, ax = new_figure(figsize=(4, 3))
    ax.plot(np.arange(10), np.arange(10) ** (i + 1), "o-", color="tab:red")
    ax.set_title(f"figure {i}")
    figs.append(rp.ReportFigure.of(f"fig{i}", f"Figure {i}", fig, "a caption"))
  table = rp.ReportTable("t", "A table", ("name", "value"), (("a", 0.5), ("b", float("nan"))))
  return rp.Report("HTML test", {"x": 1}, (rp.ReportSection("Section", ("text",), (table,),
                                                            tuple(figs)),))


def test_html_is_self_contained(tmp_path):
  files = rp.write_report(_report(), tmp_path)
  page = files.html.read_text()
  assert page.count("data:image/png;base64,") == 2
  assert not re.search(r"src=['\"](?!data:)", page)  # no external sources
  assert json.loads(files.json.read_text()) == {"x": 1}
  assert (tmp_path / "t.csv").read_text().splitlines()[0] == "name,value"


def test_chromium_renders_the_figures(tmp_path):
  exe = _chromium()
  if exe is None:
    pytest.skip("chromium not installed (scripts/ensure_chromium.sh installs it as root)")
  files = rp.write_report(_report(), tmp_path / "report")
  view = tmp_path / "view"
  view.mkdir()
  page = files.html.read_text().replace("</body>", _PROBE + "</body>")
  (view / "page.html").write_text(page)
  url = (view / "page.html").as_uri()
  common = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--no-first-run", "--hide-scrollbars", "--window-size=1200,1600",
            "--virtual-time-budget=5000"]
  dom = subprocess.run(common + ["--dump-dom", url], capture_output=True, text=True,
                       timeout=120)
  m = re.search(r"PROBE(\{.*?\})END", dom.stdout)
  assert m, f"probe not found; stderr: {dom.stderr[-2000:]}"
  probe = json.loads(m.group(1))
  assert probe["n"] == 2 and all(probe["ok"]), probe
  assert all(w > 100 for w in probe["widths"])
  shot = tmp_path / "shot.png"
  subprocess.run(common + [f"--screenshot={shot}", url], capture_output=True, timeout=120)
  assert shot.exists() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  import matplotlib.image as mpimg
  img = mpimg.imread(shot)
  assert img.shape[0] > 500 and img.shape[1] > 500
  # The red curves of the figures are on screen: some strongly red pixels.
  red = (img[..., 0] > 0.7) & (img[..., 1] < 0.35) & (img[..., 2] < 0.35)
  assert red.sum() > 50


def test_csv_cells_that_look_like_formulas_are_escaped(tmp_path):
  import csv
  import io
  evil = ("=HYPERLINK(\"http://x\")", "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "\tx", "\rx")
  rows = tuple((s, -0.5) for s in evil) + (("-0.5", 3), ("plain", float("nan")))
  t = rp.ReportTable("t", "T", ("=name", "value"), rows)
  text = rp.table_csv(t)
  back = list(csv.reader(io.StringIO(text, newline="")))
  assert back[0] == ["'=name", "value"]
  for (s, v), got in zip(rows, back[1:]):
    if isinstance(s, str) and s[0] in "=+-@\t\r" and s != "-0.5":
      assert got[0] == "'" + s.replace("\r", "\n")  # OWASP: a leading quote makes it text
    else:
      assert got[0] == s
    assert float(got[1]) == v or (np.isnan(v) and got[1] == "nan")  # numbers stay numbers
  assert back[1][1] == "-0.5"


@pytest.mark.parametrize("name", ["../x", "../../etc/passwd", "/tmp/abs_name", "a/../../b",
                                  "..", ".hidden", "", "sub\\..\\win"])
def test_file_names_from_user_names_stay_in_the_output_directory(tmp_path, name):
  out = tmp_path / "out"
  fig, _ = new_figure(figsize=(1, 1))
  t = rp.ReportTable(name, "T", ("a",), ((1.0,),))
  rep = rp.Report("r", {}, (rp.ReportSection(name, (), (t, t),
                                             (rp.ReportFigure.of(name, "F", fig),)),))
  files = rp.write_report(rep, out)
  written = sorted(p.name for p in out.iterdir())
  assert len(files.csv) == 2 and len(set(files.csv)) == 2  # same name twice: both kept
  for p in (*files.csv, *files.png):
    assert p.parent == out and p.exists() and not p.name.startswith(".")
  # Nothing was written anywhere else under tmp_path.
  assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
  assert "report.json" in written and "report.html" in written
