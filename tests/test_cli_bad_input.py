"""Bad input to the command line (issue #12): every case ends with exit code 2 and a
one-line message naming the problem, or is handled correctly and said so on stderr."""

import logging
import warnings

import numpy as np
import pandas as pd
import pytest
from helpers import cli_error as _error
from helpers import run_cli as _run

import bayesgmm.cli as cli
from bayesgmm.cli import load_data

EM = ["--select", "1..2", "--covariance", "diag", "--quiet"]


def _frame(n=40, seed=0):
    rng = np.random.default_rng(seed)
    half = n // 2
    x = np.r_[rng.normal(0.0, 1.0, half), rng.normal(6.0, 1.0, n - half)]
    y = np.r_[rng.normal(0.0, 1.0, half), rng.normal(-4.0, 1.0, n - half)]
    return pd.DataFrame({"x": x.round(3), "y": y.round(3)})


@pytest.fixture()
def good(tmp_path):
    path = tmp_path / "good.csv"
    _frame().to_csv(path, index=False)
    return path


@pytest.fixture()
def no_fitting(monkeypatch):
    """Any fit is a test failure: the checks must come first."""
    def refuse(*args, **kwargs):
        raise AssertionError("a fit started before the input was checked")

    import bayesgmm.analysis
    import bayesgmm.model
    import bayesgmm.report
    import bayesgmm.selection

    monkeypatch.setattr(bayesgmm.selection, "select_model", refuse)
    monkeypatch.setattr(bayesgmm.model.BayesianGMM, "fit", refuse)
    monkeypatch.setattr(bayesgmm.analysis, "analyse", refuse)
    monkeypatch.setattr(bayesgmm.report, "build_report", refuse)


# ---------------------------------------------------------------- flag values
FLAG_CASES = [
    (["em", "{good}", "--components", "0"], "--components"),
    (["em", "{good}", "--components", "2.5"], "--components"),
    (["em", "{good}", "--select", "5-2"], "--select"),
    (["em", "{good}", "--select", "5..2"], "empty range"),
    (["em", "{good}", "--select", "0..3"], "positive"),
    (["em", "{good}", "--seed", "-1"], "--seed"),
    (["em", "{good}", "--seed", "abc"], "--seed"),
    (["em", "{good}", "--covariance", "bogus"], "--covariance"),
    (["em", "{good}", "--columns", ""], "--columns"),
    (["em", "{good}", "--columns", "x,x"], "more than once"),
    (["em", "{good}", "--columns", "x", "--drop", "y"], "not allowed with"),
    (["em", "{good}", "--bogus"], "unrecognized"),
    (["fit", "{good}", "--components", "0", "--out", "{out}"], "--components"),
    (["fit", "{good}", "--components", "2.5", "--out", "{out}"], "--components"),
    (["fit", "{good}", "--components", "2", "--draws", "-5", "--out", "{out}"], "--draws"),
    (["fit", "{good}", "--components", "2", "--draws", "0", "--out", "{out}"], "--draws"),
    (["fit", "{good}", "--components", "2", "--tune", "-1", "--out", "{out}"], "--tune"),
    (["fit", "{good}", "--components", "2", "--chains", "0", "--out", "{out}"], "--chains"),
    (["fit", "{good}", "--components", "2", "--target-accept", "1.5", "--out", "{out}"], "--target-accept"),
    (["fit", "{good}", "--components", "2", "--target-accept", "nan", "--out", "{out}"], "--target-accept"),
    (["fit", "{good}", "--components", "2", "--covariance", "bogus", "--out", "{out}"], "--covariance"),
    (["fit", "{good}", "--components", "2", "--sampler", "stan", "--out", "{out}"], "--sampler"),
    (["fit", "{good}", "--components", "2", "--method", "advi", "--sampler", "nutpie", "--out", "{out}"],
     "--sampler set"),
    (["report", "{good}", "--components", "2", "--method", "advi", "--target-accept", "0.9", "--out", "{out}"],
     "--target-accept set"),
    (["report", "{good}", "--components", "2", "--target-accept", "2", "--out", "{out}"], "--target-accept"),
    (["fit", "{good}", "--components", "2", "--covariance", "all", "--out", "{out}"], "--covariance"),
    (["fit", "{good}", "--components", "2", "--rounding", "whole", "--out", "{out}"], "--rounding"),
    (["fit", "{good}", "--components", "2", "--rounding", "-1", "--out", "{out}"], "--rounding"),
    (["report", "{good}", "--components", "2", "--rounding", "0.1,nan", "--out", "{out}"], "--rounding"),
    (["fit", "{good}", "--components", "2", "--method", "mcmc", "--out", "{out}"], "--method"),
    (["fit", "{good}", "--components", "2"], "--out"),
    (["report", "{good}", "--components", "-2", "--out", "{out}"], "--components"),
    (["report", "{good}", "--select", "1..x", "--out", "{out}"], "--select"),
    (["demo", "--draws", "0"], "--draws"),
    ([], "command"),
]


@pytest.mark.parametrize("argv, needle", FLAG_CASES, ids=[" ".join(a) for a, _ in FLAG_CASES])
def test_bad_flags_are_one_line_errors(argv, needle, good, tmp_path, capsys, no_fitting):
    argv = [a.format(good=good, out=tmp_path / "out.nc") for a in argv]
    assert needle in _error(argv, capsys)
    assert not (tmp_path / "out.nc").exists()


# ------------------------------------------------------------------ bad files
def _write(tmp_path, name, content):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


FILE_CASES = {
    "missing": (None, "no such file"),
    "directory": ("DIR", "directory"),
    "empty": ("", "empty"),
    "blank": ("\n\n  \n", "empty"),
    "header only": ("x,y\n", "no data rows"),
    "one row": ("x,y\n1.0,2.0\n", "only 1 usable data row"),
    "one numeric line": ("1.0,2.0\n", "only 1 usable data row"),
    "binary": (b"\xff\xfe\x00g\x00a\x00\n\x01", "not UTF-8"),
    "latin-1": ("gr\xf6\xdfe,y\n1,2\n3,4\n5,6\n".encode("latin-1"), "not UTF-8"),
    "text column": ("x,name\n1.0,a\n2.0,b\n3.0,c\n", "non-numeric column(s) ['name']"),
    "ragged": ("x,y\n1,2\n3,4,5\n6,7\n", "cannot read"),
    "infinite": ("x,y\n1,2\ninf,4\n5,6\n", "infinite"),
    "all ID": ("id,index\n1,0\n2,1\n3,2\n", "--columns"),
}


@pytest.mark.parametrize("case", list(FILE_CASES))
def test_bad_files_are_one_line_errors(case, tmp_path, capsys, no_fitting):
    content, needle = FILE_CASES[case]
    if content is None:
        path = tmp_path / "nope.csv"
    elif content == "DIR":
        path = tmp_path / "folder.csv"
        path.mkdir()
    else:
        path = _write(tmp_path, "data.csv", content)
    assert needle in _error(["em", path, *EM], capsys)


def test_text_column_suggests_columns_and_drop(tmp_path, capsys, no_fitting):
    path = _write(tmp_path, "t.csv", "x,y,label\n1,2,a\n3,4,b\n5,6,c\n")
    err = _error(["em", path, *EM], capsys)
    assert "--columns x,y" in err and "--drop label" in err and "'a' on line 2" in err


def test_a_repeated_column_name_is_refused(tmp_path, capsys, no_fitting):
    # pandas would rename the second "a" to "a.1" and fit both
    path = _write(tmp_path, "t.csv", "a,a,b\n1,2,3\n4,5,6\n7,8,9\n")
    err = _error(["em", path, *EM], capsys)
    assert "repeats the column name(s) ['a']" in err


def test_a_stray_text_value_is_located(tmp_path, capsys, no_fitting):
    path = _write(tmp_path, "t.csv", "x,y\n1,2\n3,?\n5,6\n")
    err = _error(["em", path, *EM], capsys)
    assert "['y']" in err and "'?' on line 3" in err


@pytest.mark.parametrize("option", ["--columns", "--drop"])
def test_unknown_column_names(option, good, capsys, no_fitting):
    err = _error(["em", good, option, "x,nope", *EM], capsys)
    assert option in err and "['nope']" in err and "['x', 'y']" in err


def test_missing_values_name_columns_and_counts(tmp_path, capsys, no_fitting):
    frame = _frame()
    frame.loc[[2, 5, 9], "y"] = np.nan
    frame.loc[[5], "x"] = np.nan
    path = tmp_path / "holes.csv"
    frame.to_csv(path, index=False)
    err = _error(["em", path, *EM], capsys)
    assert "4 missing value(s) in 3 row(s)" in err and "x (1), y (3)" in err and "--dropna" in err


def test_dropna_says_how_many_rows_it_dropped(tmp_path, monkeypatch, capsys):
    frame = _frame()
    frame.loc[[2, 5, 9], "y"] = np.nan
    path = tmp_path / "holes.csv"
    frame.to_csv(path, index=False)
    data, dropped = load_data(str(path), dropna=True)
    err = capsys.readouterr().err
    assert dropped == [2, 5, 9] and len(data) == 37
    assert "dropped 3 of 40 row(s)" in err and "37 remain" in err


def test_too_few_rows_after_dropna(tmp_path, capsys, no_fitting):
    path = _write(tmp_path, "d.csv", "x,y\n1,\n2,3\n,4\n")
    assert "only 1 usable data row" in _error(["em", path, "--dropna", *EM], capsys)


# ----------------------------------------------- delimiter, header, ID columns
def test_semicolon_decimal_comma_gives_the_same_fit(tmp_path, capsys):
    frame = _frame()
    comma = tmp_path / "comma.csv"
    frame.to_csv(comma, index=False)
    semi = tmp_path / "semi.csv"
    frame.to_csv(semi, index=False, sep=";", decimal=",")
    assert "," in semi.read_text().splitlines()[1]  # really decimal commas
    pd.testing.assert_frame_equal(load_data(str(semi))[0], load_data(str(comma))[0])
    assert "semicolon-separated with decimal commas" in capsys.readouterr().err
    code, out_comma, _ = _run(["em", comma, *EM], capsys)
    assert code == 0
    code, out_semi, err = _run(["em", semi, *EM], capsys)
    assert code == 0 and out_semi == out_comma
    assert "decimal commas" in err


@pytest.mark.parametrize("sep", ["\t", "|", ";"])
def test_other_delimiters(sep, tmp_path, capsys):
    frame = _frame()
    path = tmp_path / "d.csv"
    frame.to_csv(path, index=False, sep=sep)
    data, _ = load_data(str(path))
    pd.testing.assert_frame_equal(data, frame.astype(float))


def test_decimal_commas_mixed_with_points(tmp_path, capsys):
    path = _write(tmp_path, "m.csv", "x;y\n1,5;2\n2.5;3,25\n4;5\n")
    data, _ = load_data(str(path))
    assert data["x"].tolist() == [1.5, 2.5, 4.0] and data["y"].tolist() == [2.0, 3.25, 5.0]


def test_headerless_csv_keeps_every_row(tmp_path, capsys):
    frame = _frame()
    path = tmp_path / "noheader.csv"
    frame.to_csv(path, index=False, header=False)
    data, _ = load_data(str(path))
    err = capsys.readouterr().err
    assert len(data) == len(frame) and list(data.columns) == ["x0", "x1"]
    np.testing.assert_allclose(data.to_numpy(), frame.to_numpy())
    assert "no header line" in err
    semi = tmp_path / "noheader_semi.csv"
    frame.to_csv(semi, index=False, header=False, sep=";", decimal=",")
    np.testing.assert_allclose(load_data(str(semi))[0].to_numpy(), frame.to_numpy())


def test_single_column(tmp_path, capsys):
    path = _write(tmp_path, "one.csv", "x\n1.5\n2.5\n3.0\n")
    assert load_data(str(path))[0]["x"].tolist() == [1.5, 2.5, 3.0]


@pytest.mark.parametrize("how", ["pandas index", "id name", "counter"])
def test_id_column_is_not_fitted(how, tmp_path, capsys):
    frame = _frame()
    path = tmp_path / "ids.csv"
    if how == "pandas index":
        frame.to_csv(path)  # an unnamed first column 0..n-1
    elif how == "id name":
        frame.assign(ID=np.random.default_rng(1).permutation(len(frame)) + 100).to_csv(path, index=False)
    else:
        frame.insert(0, "n", np.arange(1, len(frame) + 1))
        frame.to_csv(path, index=False)
    code, out, err = _run(["em", path, *EM], capsys)
    assert code == 0 and "look like a row index or ID" in err
    means = out.split("means:")[1]
    assert "x" in means and "y" in means and "ID" not in means and "Unnamed" not in means and " n " not in means
    data, _ = load_data(str(path))
    assert list(data.columns) == ["x", "y"]


def test_columns_can_keep_an_id_like_column(tmp_path, capsys):
    frame = _frame().assign(id=np.arange(40))
    path = tmp_path / "ids.csv"
    frame.to_csv(path, index=False)
    assert list(load_data(str(path), columns="x,id")[0].columns) == ["x", "id"]
    assert list(load_data(str(path), drop="y")[0].columns) == ["x"]


def test_trailing_delimiter_is_ignored(tmp_path, capsys):
    path = _write(tmp_path, "t.csv", "x;y;\n1,5;2;\n2,5;3;\n4;5;\n")
    assert load_data(str(path))[0].shape == (3, 2)


# ---------------------------------------------------------------- outputs
OUT_CASES = {
    "folder missing": lambda tmp: tmp / "nope" / "out.nc",
    "out is a directory": lambda tmp: tmp,
    "parent is a file": lambda tmp: tmp / "good.csv" / "out.nc",
    "out is the data": lambda tmp: tmp / "good.csv",
}


@pytest.mark.parametrize("command", ["fit", "report"])
@pytest.mark.parametrize("case", list(OUT_CASES))
def test_bad_out_fails_before_fitting(case, command, good, tmp_path, capsys, no_fitting):
    out = OUT_CASES[case](tmp_path)
    force = ["--force"] if case == "out is the data" else []
    before = good.read_bytes()
    err = _error([command, good, "--components", "2", "--out", out, *force, "--quiet"], capsys)
    assert str(out) in err or "--out" in err
    assert good.read_bytes() == before


def test_failed_save_leaves_no_partial_file(good, tmp_path, monkeypatch, capsys):
    import bayesgmm.model

    def fake_fit(self, X, *args, **kwargs):
        return None

    def half_save(self, path):
        with open(path, "w") as handle:
            handle.write("half a netCDF")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(bayesgmm.model.BayesianGMM, "fit", fake_fit)
    monkeypatch.setattr(bayesgmm.model.BayesianGMM, "save", half_save)
    out = tmp_path / "fit.nc"
    assert "No space left" in _error(["fit", good, "--components", "2", "--out", out, "--quiet"], capsys)
    assert not out.exists()
    existing = tmp_path / "old.nc"
    existing.write_text("previous fit")
    _error(["fit", good, "--components", "2", "--out", existing, "--force", "--quiet"], capsys)
    assert existing.read_text() == "previous fit"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.csv", "old.nc"]


def test_failed_report_leaves_no_partial_file(good, tmp_path, monkeypatch, capsys):
    import bayesgmm.analysis
    import bayesgmm.report

    def broken(analysis):
        raise RuntimeError("plotting exploded")

    monkeypatch.setattr(bayesgmm.analysis, "analyse", lambda data, settings: "analysis")
    monkeypatch.setattr(bayesgmm.report, "render_report", broken)
    out = tmp_path / "r.html"
    code, _, err = _run(["report", good, "--components", "2", "--out", out, "--quiet"], capsys)
    assert code == 1 and "plotting exploded" in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.csv"]


def test_report_is_written_atomically_and_announced(good, tmp_path, monkeypatch, capsys):
    import bayesgmm.analysis
    import bayesgmm.report

    monkeypatch.setattr(bayesgmm.analysis, "analyse", lambda data, settings: "analysis")
    monkeypatch.setattr(bayesgmm.report, "render_report",
                        lambda analysis: "<html>ok</html>" if analysis == "analysis" else "wrong")
    out = tmp_path / "r.html"
    out.write_text("old")
    code, stdout, _ = _run(["report", good, "--components", "2", "--out", out, "--force", "--quiet"], capsys)
    assert code == 0 and out.read_text() == "<html>ok</html>" and str(out.resolve()) in stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["good.csv", "r.html"]


# ------------------------------------------------------------------ --quiet
def test_quiet_keeps_our_diagnostics_and_drops_library_noise(good, tmp_path, monkeypatch, capsys):
    import arviz as az
    import pymc  # noqa: F401  (its import sets the logger levels that the CLI must restore)

    import bayesgmm.model
    from bayesgmm.inference import warn_on_diagnostics

    seen, records = {}, []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    def fake_fit(self, X, *args, **kwargs):
        seen.update(kwargs)
        logging.getLogger("pymc").info("Sampling 2 chains for 1_000 tune and 1_000 draw iterations")
        logging.getLogger("pymc.sampling").warning("The rhat statistic is larger than 1.01")
        warnings.warn("some library deprecation", FutureWarning, stacklevel=2)
        warnings.warn("some library note", UserWarning, stacklevel=2)  # issued outside the package: dropped
        diverging = np.zeros((1, 10), dtype=bool)
        diverging[0, :3] = True
        warn_on_diagnostics(az.from_dict(posterior={"weights": np.ones((1, 10, 2))},
                                         sample_stats={"diverging": diverging}))
        return None

    monkeypatch.setattr(bayesgmm.model.BayesianGMM, "fit", fake_fit)
    monkeypatch.setattr(bayesgmm.model.BayesianGMM, "save", lambda self, path: open(path, "w").close())
    handler = Keep()
    logging.getLogger("pymc").addHandler(handler)
    level = logging.getLogger("pymc").level
    try:
        code, _, err = _run(["fit", good, "--components", "2", "--out", tmp_path / "f.nc", "--quiet",
                             "--target-accept", "0.9"], capsys)
    finally:
        logging.getLogger("pymc").removeHandler(handler)
    assert code == 0, err
    assert seen["progressbar"] is False and seen["target_accept"] == 0.9 and seen["sampler"] == "pymc"
    code, _, err = _run(["fit", good, "--components", "2", "--out", tmp_path / "h.nc", "--quiet",
                         "--sampler", "nutpie"], capsys)
    assert code == 0, err
    assert seen["sampler"] == "nutpie"
    assert "bayesgmm: warning: UNRELIABLE posterior: 3 divergent transitions" in err  # the verdict first
    assert "deprecation" not in err and "library note" not in err and records == []
    assert logging.getLogger("pymc").level == level  # restored afterwards
    # without --quiet the library's warnings are shown, one line each
    code, _, err = _run(["fit", good, "--components", "2", "--out", tmp_path / "g.nc"], capsys)
    assert code == 0 and "library note" in err and "3 divergent transitions" in err and "Traceback" not in err


def test_package_warning_origin_is_recognised():
    import bayesgmm.inference as inference

    assert cli._PACKAGE_DIR and inference.__file__.startswith(cli._PACKAGE_DIR)


def test_em_end_to_end_stays_quiet(good, capsys):
    code, out, err = _run(["em", good, *EM], capsys)
    assert code == 0 and "Chosen by BIC: K=2" in out
    assert err.strip() == ""
