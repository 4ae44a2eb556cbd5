"""The report reads well at 2, 13 and 30 features: narrow tables, few pairs, a size budget, and a browser check.

One tiny ADVI analysis per dataset (module fixture), rendered once: bundled Old
Faithful (2 features), scikit-learn's wine (13) and breast_cancer (30).
"""

import re
import subprocess
import time
import warnings
from html.parser import HTMLParser

import numpy as np
import pytest
from helpers import find_chromium as _chromium

from bayesgmm import report
from bayesgmm.analysis import AnalysisSettings, analyse
from bayesgmm.datasets import load_faithful

#: The report of 30 features must stay under this many bytes.
SIZE_BUDGET = 3_000_000
#: The most columns any table of the report may have.
MAX_COLUMNS = 10


def _data(name):
    if name == "faithful":
        return load_faithful()
    from sklearn import datasets

    return {"wine": datasets.load_wine, "breast_cancer": datasets.load_breast_cancer}[name](as_frame=True).data


@pytest.fixture(scope="module")
def reports():
    """name -> (analysis, html, render seconds), one tiny ADVI analysis per dataset."""
    out = {}
    for name in ("faithful", "wine", "breast_cancer"):
        settings = AnalysisSettings(select=[1, 2, 3], covariance_types=("diag",), method="advi", draws=60,
                                    seed=1, progressbar=False, fit_options={"n_iterations": 600}, source=name,
                                    sparse_alpha=None, loo_extra_fits=0)  # the layout, not the choice of K
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            analysis = analyse(_data(name), settings)
            start = time.perf_counter()
            text = report.render_report(analysis)
        out[name] = (analysis, text, time.perf_counter() - start)
    return out


class _Tables(HTMLParser):
    """Every table: its column count, its rows, whether it sits in a <details>, and the section it is in."""

    def __init__(self):
        super().__init__()
        self.tables, self.section, self.details, self.stack = [], None, 0, []
        self.figcaptions, self._caption = [], None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.section = attrs.get("id")
        elif tag == "details":
            self.details += 1
        elif tag == "table":
            self.stack.append({"section": self.section, "collapsed": self.details > 0, "rows": [], "cols": 0})
        elif tag == "tr" and self.stack:
            self.stack[-1]["rows"].append([])
        elif tag in ("td", "th") and self.stack and self.stack[-1]["rows"]:
            self.stack[-1]["rows"][-1].append("")
        elif tag == "figcaption":
            self._caption = ""

    def handle_endtag(self, tag):
        if tag == "details":
            self.details -= 1
        elif tag == "table" and self.stack:
            table = self.stack.pop()
            table["rows"] = [[cell.strip() for cell in row] for row in table["rows"]]
            table["cols"] = max((len(r) for r in table["rows"]), default=0)
            self.tables.append(table)
        elif tag == "figcaption":
            self.figcaptions.append(self._caption)
            self._caption = None

    def handle_data(self, data):
        if self.stack and self.stack[-1]["rows"] and self.stack[-1]["rows"][-1]:
            self.stack[-1]["rows"][-1][-1] += data
        if self._caption is not None:
            self._caption += data


def _parse(text):
    parser = _Tables()
    parser.feed(text)
    return parser


@pytest.mark.parametrize("name", ["faithful", "wine", "breast_cancer"])
def test_tables_stay_narrow_and_long_ones_collapse(reports, name):
    analysis, text, _ = reports[name]
    parser = _parse(text)
    assert parser.tables
    own = ("overview", "clusters", "uncertain", "em-vs-posterior", "appendix")  # all sections: the browser test
    wide = [(t["section"], t["cols"]) for t in parser.tables if t["cols"] > MAX_COLUMNS and t["section"] in own]
    assert not wide, wide
    # every visible table of the report's own sections is short; the rest is collapsed
    for table in parser.tables:
        if table["section"] in ("clusters", "uncertain", "em-vs-posterior") and not table["collapsed"]:
            assert len(table["rows"]) <= 1 + report._ROWS_SHOWN + 3, (table["section"], len(table["rows"]))
    D = len(analysis.names)
    if D > report._FEW_FEATURES:
        assert "<details" in text


def test_em_vs_posterior_shows_the_largest_differences_first(reports):
    analysis, text, _ = reports["breast_cancer"]
    parser = _parse(text)
    tables = [t for t in parser.tables if t["section"] == "em-vs-posterior"]
    visible, hidden = [t for t in tables if not t["collapsed"]], [t for t in tables if t["collapsed"]]
    assert len(visible) == 1 and len(hidden) == 1
    header = visible[0]["rows"][0]
    col = header.index("|EM - mean| / HDI width")
    inside = header.index("EM in HDI")

    def keys(table):
        return [(row[inside] == "True", float(row[col])) for row in table["rows"][1:]]

    shown, rest = keys(visible[0]), keys(hidden[0])
    assert len(shown) == report._ROWS_SHOWN
    assert len(shown) + len(rest) == len(analysis.versus.table)
    ordered = shown + rest  # outside the interval first, then by decreasing difference
    assert ordered == sorted(ordered, key=lambda k: (k[0], -k[1]))


def test_thirty_features_within_size_and_time_budget(reports):
    analysis, text, seconds = reports["breast_cancer"]
    assert len(analysis.names) == 30
    assert len(text.encode()) < SIZE_BUDGET, f"{len(text.encode()) / 1e6:.2f} MB"
    assert seconds < 60, f"render took {seconds:.1f} s"
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', text)
    assert 5 <= len(images) <= 12
    assert max(len(i) for i in images) < 600_000  # no single giant figure


def test_pairs_show_the_most_separating_features_with_names(reports):
    analysis, text, _ = reports["breast_cancer"]
    captions = " ".join(_parse(text).figcaptions)
    ranking = report._ranking(analysis)
    top = list(ranking.index[: report._PAIRS_FEATURES])
    assert f"Pairs of the {report._PAIRS_FEATURES} most separating of the 30 features," in captions
    for name in top:
        assert name in captions
    assert "principal components of the standardised data" in captions
    assert "feature 0" not in text and "feature 1" not in text
    # wine: all features named; faithful: the scatter of both
    assert "Pairs of the 4 most separating of the 13 features," in " ".join(_parse(reports["wine"][1]).figcaptions)
    assert "Clusters: posterior ellipses" in reports["faithful"][1]


# ------------------------------------------------------------------ browser
_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync"]

#: Appended to a copy of the report (the report itself has no script): writes the page's widths into the DOM.
_PROBE = """<script>window.addEventListener('load', function () {
  var d = document.documentElement, body = document.body.getBoundingClientRect().right, over = 0;
  document.querySelectorAll('table, img, figure').forEach(function (e) {
    over = Math.max(over, e.getBoundingClientRect().right - body); });
  var m = document.createElement('pre'); m.id = 'layout-metrics';
  m.textContent = 'scroll=' + d.scrollWidth + ' client=' + d.clientWidth + ' over=' + Math.ceil(over);
  document.body.appendChild(m); });</script>"""

WIDTH, HEIGHT = 1280, 4000


@pytest.mark.parametrize("name", ["faithful", "wine", "breast_cancer"])
def test_report_screenshot_is_full_and_no_wider_than_the_window(reports, name, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("Chromium is not installed (scripts/ensure_chromium.sh installs it; make/.ci/run call it)")
    _, text, _ = reports[name]
    page = tmp_path / "report.html"
    page.write_text(text)
    shot = tmp_path / "shot.png"
    proc = subprocess.run([browser, *_FLAGS, f"--user-data-dir={tmp_path / 'profile'}",
                           f"--window-size={WIDTH},{HEIGHT}", f"--screenshot={shot}", page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert shot.exists(), proc.stderr[-2000:]
    from matplotlib.image import imread

    pixels = imread(str(shot))[..., :3]
    assert pixels.shape[:2] == (HEIGHT, WIDTH)
    ink = (pixels < 0.9).any(axis=-1)  # not white
    # not blank: text, tables or figures in every band of the first 3000 pixels
    bands = [float(ink[top:top + 500].mean()) for top in range(0, 3000, 500)]
    assert min(bands) > 0.005, bands
    # nothing drawn in the page's right margin (the body is 1100 px wide, centred; the last 20 px: scrollbar)
    assert float(ink[:, WIDTH - 60:WIDTH - 20].mean()) < 0.002

    probe = tmp_path / "probe.html"
    probe.write_text(text.replace("</body>", _PROBE + "</body>"))
    proc = subprocess.run([browser, *_FLAGS, f"--user-data-dir={tmp_path / 'profile2'}",
                           f"--window-size={WIDTH},{HEIGHT}", "--virtual-time-budget=5000", "--dump-dom",
                           probe.as_uri()], capture_output=True, text=True, timeout=120)
    found = re.search(r"scroll=(\d+) client=(\d+) over=(-?\d+)", proc.stdout)
    assert found, proc.stderr[-2000:]
    scroll, client, over = map(int, found.groups())
    assert scroll <= client, f"page is {scroll} px wide in a {client} px window"
    assert over <= 1, f"a table or figure reaches {over} px past the page's content"


def test_feature_ranking_orders_a_separating_feature_first():
    from bayesgmm import plotting

    rng = np.random.default_rng(0)
    import pandas as pd

    frame = pd.DataFrame({"noise": rng.normal(0, 1000, 200), "split": np.r_[rng.normal(0, 1, 100),
                                                                          rng.normal(8, 1, 100)]})
    from bayesgmm import GaussianMixtureEM

    em = GaussianMixtureEM(2, covariance_type="diag", random_state=0).fit(frame)
    ranking = plotting.feature_ranking(em)
    assert list(ranking.index) == ["split", "noise"]
    assert ranking.loc["split", "separation"] > 10 > ranking.loc["noise", "separation"]
