import base64
import io
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import find_chromium as _chromium

from bayesgmm.cli import main
from bayesgmm.datasets import load_faithful
from bayesgmm.report import SECTIONS

FAITHFUL = str(Path(__file__).parents[1] / "bayesgmm" / "data" / "faithful.csv")


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.images, self.tags = [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if "id" in attrs:
            self.ids.append(attrs["id"])
        if tag == "img":
            self.images.append(attrs["src"])


@pytest.fixture(scope="module")
def report_path(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "report.html"
    code = main(["report", FAITHFUL, "--select", "2..4", "--draws", "100", "--tune", "100", "--out", str(out),
                 "--quiet"])
    assert code == 0
    return out


def test_report_has_every_section_and_decodable_images(report_path):
    text = report_path.read_text()
    parser = _Collector()
    parser.feed(text)
    assert [key for key, _ in SECTIONS] == [i for i in parser.ids if i in dict(SECTIONS)]
    assert len(parser.images) >= 6
    from matplotlib.image import imread

    for src in parser.images:
        assert src.startswith("data:image/png;base64,")
        image = imread(io.BytesIO(base64.b64decode(src.split(",", 1)[1])), format="png")
        assert image.shape[0] > 50 and image.shape[1] > 50
    assert "http://" not in text.replace("http://www.w3.org", "") and "<script" not in text  # nothing fetched
    for needle in ("LOO", "BIC", "R-hat", "Adjusted Rand index", "Priors", "Package versions", "seed"):
        assert needle in text
    # What priors["rounding"] = "auto" found on Old Faithful: whole minutes of waiting.
    assert "rounding used" in text and re.search(r"eruptions: 0\.017, waiting: 1\b", text)


def test_report_renders_in_headless_chromium(report_path, tmp_path):
    browser = _chromium()
    if browser is None:
        pytest.skip("Chromium is not installed and could not be installed here (make/.ci/run install it)")
    shot = tmp_path / "shot.png"
    proc = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
         "--window-size=1200,2000", f"--screenshot={shot}", report_path.as_uri()],
        capture_output=True, text=True, timeout=120,
    )
    assert shot.exists(), proc.stderr[-2000:]
    console_errors = [line for line in proc.stderr.splitlines() if "CONSOLE" in line and "ERROR" in line.upper()]
    assert not console_errors, console_errors
    from matplotlib.image import imread

    pixels = imread(str(shot))
    assert pixels.std() > 0.02  # not blank: text, tables and figures


# ------------------------------------------------------------------ bad input
def _run(args, capsys):
    code = main(args)
    err = capsys.readouterr().err.strip().splitlines()
    return code, err[-1] if err else ""


@pytest.fixture()
def files(tmp_path):
    frame = load_faithful().head(40)
    text = frame.assign(name=["a"] * 40)
    text.to_csv(tmp_path / "text.csv", index=False)
    holes = frame.copy()
    holes.iloc[[3, 7], 1] = np.nan
    holes.to_csv(tmp_path / "holes.csv", index=False)
    frame.head(2).to_csv(tmp_path / "tiny.csv", index=False)
    (tmp_path / "bad.csv").write_bytes(b"\xff\xfe\x00garbage\x00\n\x01")
    return tmp_path


def test_non_numeric_columns_named_and_columns_suggested(files, capsys):
    code, err = _run(["em", str(files / "text.csv")], capsys)
    assert code == 2 and "non-numeric column(s) ['name']" in err and "--columns eruptions,waiting" in err
    assert main(["em", str(files / "text.csv"), "--columns", "eruptions,waiting", "--select", "1..2",
                 "--quiet"]) == 0


def test_missing_values_refused_unless_dropna(files, capsys, tmp_path):
    code, err = _run(["em", str(files / "holes.csv")], capsys)
    assert code == 2 and "2 missing value(s) in 2 row(s)" in err and "--dropna" in err and "5, 9" in err
    assert main(["em", str(files / "holes.csv"), "--dropna", "--select", "1..2", "--quiet"]) == 0


def test_dropped_rows_are_reported_in_html(files, tmp_path):
    out = tmp_path / "r.html"
    code = main(["report", str(files / "holes.csv"), "--dropna", "--components", "2", "--method", "advi",
                 "--draws", "50", "--out", str(out), "--quiet"])
    assert code == 0
    assert "2 row(s) with missing values were dropped" in out.read_text()


def test_too_few_rows_unreadable_and_missing_files(files, capsys):
    code, err = _run(["em", str(files / "tiny.csv"), "--components", "3"], capsys)
    assert code == 2 and "2 rows but up to 3 components" in err
    code, err = _run(["em", str(files / "nope.csv")], capsys)
    assert code == 2 and "no such file" in err
    code, err = _run(["em", str(files / "bad.csv")], capsys)
    assert code == 2 and "cannot read" in err or "non-numeric" in err


def test_existing_output_is_not_overwritten(files, capsys):
    out = files / "existing.html"
    out.write_text("keep me")
    code, err = _run(["report", FAITHFUL, "--components", "2", "--out", str(out)], capsys)
    assert code == 2 and "--force" in err
    assert out.read_text() == "keep me"
    out_nc = files / "existing.nc"
    out_nc.write_text("keep me too")
    code, err = _run(["fit", FAITHFUL, "--components", "2", "--out", str(out_nc)], capsys)
    assert code == 2 and out_nc.read_text() == "keep me too"


def test_errors_are_one_line_without_traceback(files):
    proc = subprocess.run([sys.executable, "-m", "bayesgmm", "em", str(files / "holes.csv")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_fit_writes_a_loadable_posterior(tmp_path):
    from bayesgmm import BayesianGMM

    out = tmp_path / "fit.nc"
    assert main(["fit", FAITHFUL, "--components", "2", "--method", "advi", "--draws", "50", "--out", str(out),
                 "--rounding", "0.001,1", "--quiet"]) == 0
    loaded = BayesianGMM.load(out, n_components=2)
    assert loaded.idata_.posterior.sizes["component"] == 2
    np.testing.assert_allclose(loaded.idata_.attrs["data_rounding"], [0.001, 1.0])
    assert loaded.priors.rounding == (0.001, 1.0)


def test_em_command_prints_table(capsys):
    assert main(["em", FAITHFUL, "--select", "1..4", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"Chosen by BIC: K=3, covariance=tied", out)
    assert isinstance(pd.read_csv(FAITHFUL), pd.DataFrame)
