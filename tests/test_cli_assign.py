"""``bayesgmm assign``, ``fit/report --assignments``, ``report --posterior``, ``--standardize`` and
``fit --covariance`` (issue #14, points 3 and 6): per-row assignments as CSV, columns matched by name."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from helpers import cli_error as _error
from helpers import run_cli as _run

from bayesgmm.cli import main
from bayesgmm.datasets import load_faithful

FIT = ["--components", "2", "--method", "advi", "--draws", "50", "--seed", "0", "--quiet"]
BASE_COLUMNS = ["row", "most_probable", "max_probability", "uncertainty", "p_0", "p_1", "log_density"]


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    """Old Faithful as CSV, a saved ADVI fit of it and the fit's --assignments CSV (with intervals)."""
    folder = tmp_path_factory.mktemp("assign")
    data = load_faithful()
    data.to_csv(folder / "train.csv", index=False)
    code = main(["fit", str(folder / "train.csv"), *FIT, "--out", str(folder / "fit.nc"),
                 "--assignments", str(folder / "train_assign.csv"), "--intervals"])
    assert code == 0
    return folder


@pytest.fixture()
def no_fitting(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a fit started before the input was checked")

    import bayesgmm.analysis
    import bayesgmm.model

    monkeypatch.setattr(bayesgmm.model.BayesianGMM, "fit", refuse)
    monkeypatch.setattr(bayesgmm.analysis, "analyse", refuse)


def _check_table(table, n_rows, intervals=False, id_name="row"):
    columns = [id_name, *BASE_COLUMNS[1:]]
    if intervals:
        columns[-1:-1] = ["p_0_lower", "p_0_upper", "p_1_lower", "p_1_upper"]
    assert list(table.columns) == columns
    assert len(table) == n_rows
    p = table[["p_0", "p_1"]].to_numpy()
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-9)
    assert ((p >= 0) & (p <= 1)).all()
    np.testing.assert_array_equal(table["most_probable"], p.argmax(axis=1))
    np.testing.assert_allclose(table["max_probability"], p.max(axis=1))
    assert table["uncertainty"].between(0, 1).all()
    assert np.isfinite(table["log_density"]).all()
    if intervals:
        for k in (0, 1):
            assert (table[f"p_{k}_lower"] <= table[f"p_{k}"] + 1e-12).all()
            assert (table[f"p_{k}"] <= table[f"p_{k}_upper"] + 1e-12).all()


# --------------------------------------------------------------- fit --assignments
def test_fit_assignments_csv_content(fitted):
    table = pd.read_csv(fitted / "train_assign.csv")
    _check_table(table, 272, intervals=True)
    np.testing.assert_array_equal(table["row"], np.arange(272))
    # the two eruption types: short ones in one component, long ones in the other
    data = load_faithful()
    short = data["eruptions"] < 3
    assert table.loc[short, "most_probable"].nunique() == 1 and table.loc[~short, "most_probable"].nunique() == 1
    assert table.loc[short, "most_probable"].iloc[0] != table.loc[~short, "most_probable"].iloc[0]


def test_fit_assignments_agree_with_the_saved_fit(fitted):
    from bayesgmm import BayesianGMM

    table = pd.read_csv(fitted / "train_assign.csv")
    model = BayesianGMM.load(fitted / "fit.nc")
    data = load_faithful()
    np.testing.assert_allclose(table[["p_0", "p_1"]], model.predict_proba(data), rtol=1e-12)
    np.testing.assert_allclose(table["log_density"], model.score_samples(data), rtol=1e-12)


# ------------------------------------------------------------------------- assign
def test_assign_on_the_training_rows_gives_the_fit_assignments(fitted, tmp_path, capsys):
    out = tmp_path / "a.csv"
    code, stdout, _ = _run(["assign", fitted / "fit.nc", fitted / "train.csv", "--out", out, "--intervals"], capsys)
    assert code == 0 and str(out.resolve()) in stdout and "272 rows" in stdout
    pd.testing.assert_frame_equal(pd.read_csv(out), pd.read_csv(fitted / "train_assign.csv"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv"]  # no temporary file left


def test_assign_matches_columns_by_name(fitted, tmp_path, capsys):
    new = load_faithful().iloc[::7].reset_index(drop=True)
    new.to_csv(tmp_path / "new.csv", index=False)
    new[["waiting", "eruptions"]].to_csv(tmp_path / "reordered.csv", index=False)
    new[["waiting", "eruptions"]].to_csv(tmp_path / "reordered_semi.csv", index=False, sep=";", decimal=",")
    outs = []
    for name in ("new", "reordered", "reordered_semi"):
        out = tmp_path / f"{name}_out.csv"
        assert _run(["assign", fitted / "fit.nc", tmp_path / f"{name}.csv", "--out", out], capsys)[0] == 0
        outs.append(pd.read_csv(out))
    _check_table(outs[0], len(new))
    pd.testing.assert_frame_equal(outs[1], outs[0])
    pd.testing.assert_frame_equal(outs[2], outs[0])


def test_assign_uses_an_id_column_and_dropna_keeps_row_ids(fitted, tmp_path, capsys):
    new = load_faithful().head(8).assign(sample_id=[f"s{i}" for i in range(8)])
    new = new[["sample_id", "waiting", "eruptions"]]
    new.to_csv(tmp_path / "ids.csv", index=False)
    out = tmp_path / "ids_out.csv"
    code, _, err = _run(["assign", fitted / "fit.nc", tmp_path / "ids.csv", "--out", out], capsys)
    assert code == 0 and "'sample_id'" in err
    table = pd.read_csv(out)
    _check_table(table, 8, id_name="sample_id")
    assert table["sample_id"].tolist() == [f"s{i}" for i in range(8)]
    # --drop of the ID column: rows are numbered instead
    out2 = tmp_path / "noid.csv"
    assert _run(["assign", fitted / "fit.nc", tmp_path / "ids.csv", "--drop", "sample_id", "--out", out2],
                capsys)[0] == 0
    assert pd.read_csv(out2)["row"].tolist() == list(range(8))
    # missing values: refused, or with --dropna the remaining rows keep their numbers
    holes = load_faithful().head(6)
    holes.loc[[1, 4], "waiting"] = np.nan
    holes.to_csv(tmp_path / "holes.csv", index=False)
    assert "--dropna" in _error(["assign", fitted / "fit.nc", tmp_path / "holes.csv", "--out", tmp_path / "h.csv"],
                                capsys)
    assert _run(["assign", fitted / "fit.nc", tmp_path / "holes.csv", "--dropna", "--out", tmp_path / "h.csv"],
                capsys)[0] == 0
    assert pd.read_csv(tmp_path / "h.csv")["row"].tolist() == [0, 2, 3, 5]


def test_assign_one_row(fitted, tmp_path, capsys):
    (tmp_path / "one.csv").write_text("waiting,eruptions\n80,4.5\n")
    out = tmp_path / "one_out.csv"
    assert _run(["assign", fitted / "fit.nc", tmp_path / "one.csv", "--out", out], capsys)[0] == 0
    _check_table(pd.read_csv(out), 1)


def test_assign_missing_and_extra_columns(fitted, tmp_path, capsys, no_fitting):
    data = load_faithful().head(10)
    data[["waiting"]].to_csv(tmp_path / "missing.csv", index=False)
    err = _error(["assign", fitted / "fit.nc", tmp_path / "missing.csv", "--out", tmp_path / "o.csv"], capsys)
    assert "lacks the fit's feature column(s) ['eruptions']" in err
    data.assign(colour=["red"] * 10, depth=np.arange(10) * 0.5).to_csv(tmp_path / "extra.csv", index=False)
    err = _error(["assign", fitted / "fit.nc", tmp_path / "extra.csv", "--out", tmp_path / "o.csv"], capsys)
    assert "['colour', 'depth']" in err and "--drop colour,depth" in err and "--columns eruptions,waiting" in err
    err = _error(["assign", fitted / "fit.nc", tmp_path / "extra.csv", "--columns", "waiting", "--out",
                  tmp_path / "o.csv"], capsys)
    assert "['eruptions']" in err and "left out by --columns" in err
    err = _error(["assign", fitted / "fit.nc", tmp_path / "extra.csv", "--drop", "nope", "--out",
                  tmp_path / "o.csv"], capsys)
    assert "--drop: unknown column(s) ['nope']" in err
    assert not (tmp_path / "o.csv").exists()
    for picks in (["--drop", "colour,depth"], ["--columns", "waiting,eruptions"]):
        out = tmp_path / f"ok{picks[0]}.csv"
        assert _run(["assign", fitted / "fit.nc", tmp_path / "extra.csv", *picks, "--out", out], capsys)[0] == 0
        _check_table(pd.read_csv(out), 10)


def test_assign_force(fitted, tmp_path, capsys):
    out = tmp_path / "a.csv"
    out.write_text("keep me")
    err = _error(["assign", fitted / "fit.nc", fitted / "train.csv", "--out", out], capsys)
    assert "--force" in err and out.read_text() == "keep me"
    assert _run(["assign", fitted / "fit.nc", fitted / "train.csv", "--out", out, "--force"], capsys)[0] == 0
    _check_table(pd.read_csv(out), 272)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv"]


def test_assign_bad_inputs(fitted, tmp_path, capsys):
    fit, train = fitted / "fit.nc", fitted / "train.csv"
    out = tmp_path / "o.csv"
    assert "no such file" in _error(["assign", tmp_path / "nope.nc", train, "--out", out], capsys)
    assert "directory" in _error(["assign", tmp_path, train, "--out", out], capsys)
    assert "bayesgmm fit" in _error(["assign", train, train, "--out", out], capsys)  # a CSV is not a fit
    damaged = tmp_path / "damaged.nc"
    damaged.write_bytes(fit.read_bytes()[:-100])
    assert "damaged" in _error(["assign", damaged, train, "--out", out], capsys)
    assert "no such file" in _error(["assign", fit, tmp_path / "nope.csv", "--out", out], capsys)
    assert "input fit" in _error(["assign", fit, train, "--out", fit, "--force"], capsys)
    assert "data file" in _error(["assign", fit, train, "--out", train, "--force"], capsys)
    assert "does not exist" in _error(["assign", fit, train, "--out", tmp_path / "no" / "o.csv"], capsys)
    assert "--hdi-prob" in _error(["assign", fit, train, "--out", out, "--intervals", "--hdi-prob", "1.5"], capsys)
    assert "only with --intervals" in _error(["assign", fit, train, "--out", out, "--hdi-prob", "0.9"], capsys)
    assert "--out" in _error(["assign", fit, train], capsys)
    assert "unrecognized" in _error(["assign", fit, train, "--out", out, "--standardize"], capsys)
    assert not out.exists()
    for name, text in (("text.csv", "waiting,eruptions\n80,abc\n70,3\n"), ("inf.csv", "waiting,eruptions\n80,inf\n"),
                       ("empty.csv", "waiting,eruptions\n")):
        (tmp_path / name).write_text(text)
        _error(["assign", fit, tmp_path / name, "--out", out], capsys)
    assert not out.exists()
    assert fit.exists() and train.exists()


def test_assign_hdi_prob_changes_only_the_intervals(fitted, tmp_path, capsys):
    args = ["assign", fitted / "fit.nc", fitted / "train.csv", "--intervals"]
    assert _run([*args, "--out", tmp_path / "a94.csv"], capsys)[0] == 0
    assert _run([*args, "--hdi-prob", "0.5", "--out", tmp_path / "a50.csv"], capsys)[0] == 0
    wide, narrow = pd.read_csv(tmp_path / "a94.csv"), pd.read_csv(tmp_path / "a50.csv")
    pd.testing.assert_frame_equal(wide[BASE_COLUMNS], narrow[BASE_COLUMNS])
    assert (narrow["p_0_upper"] - narrow["p_0_lower"] <= wide["p_0_upper"] - wide["p_0_lower"] + 1e-12).all()


def test_assign_errors_are_one_line_in_a_subprocess(fitted, tmp_path):
    load_faithful()[["waiting"]].to_csv(tmp_path / "missing.csv", index=False)
    proc = subprocess.run([sys.executable, "-m", "bayesgmm", "assign", str(fitted / "fit.nc"),
                           str(tmp_path / "missing.csv"), "--out", str(tmp_path / "o.csv")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("bayesgmm: error:")


# ------------------------------------------------------------- --assignments checks
@pytest.mark.parametrize("command", ["fit", "report"])
def test_assignments_option_checked_before_fitting(command, fitted, tmp_path, capsys, no_fitting):
    train = fitted / "train.csv"
    out = tmp_path / "out.x"
    existing = tmp_path / "existing.csv"
    existing.write_text("keep me")
    base = [command, train, "--components", "2", "--quiet", "--out", out]
    assert "--force" in _error([*base, "--assignments", existing], capsys)
    assert existing.read_text() == "keep me"
    assert "same file" in _error([*base, "--assignments", out], capsys)
    assert "data file" in _error([*base, "--assignments", train, "--force"], capsys)
    assert "does not exist" in _error([*base, "--assignments", tmp_path / "no" / "a.csv"], capsys)
    assert "--assignments is empty" in _error([*base, "--assignments", " "], capsys)
    assert "only with --assignments" in _error([*base, "--intervals"], capsys)
    assert "only with --assignments" in _error([*base, "--hdi-prob", "0.9"], capsys)
    assert "only with --intervals" in _error([*base, "--assignments", tmp_path / "a.csv", "--hdi-prob", "0.9"],
                                             capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing.csv"]


# ------------------------------------------------------------------- --standardize
def test_standardize_is_a_note_and_fits_the_raw_data(fitted, tmp_path, capsys):
    """fit --standardize, then assign on raw new rows: the labels of the fit without it."""
    code, _, err = _run(["fit", fitted / "train.csv", *FIT, "--standardize", "--out", tmp_path / "std.nc",
                         "--assignments", tmp_path / "std_train.csv"], capsys)
    assert code == 0 and "--standardize is no longer needed" in err
    new = load_faithful().iloc[3::5]
    new.to_csv(tmp_path / "new.csv", index=False)
    for fit, out in ((tmp_path / "std.nc", tmp_path / "std_new.csv"), (fitted / "fit.nc", tmp_path / "raw_new.csv")):
        assert _run(["assign", fit, tmp_path / "new.csv", "--out", out], capsys)[0] == 0
    std, raw = pd.read_csv(tmp_path / "std_new.csv"), pd.read_csv(tmp_path / "raw_new.csv")
    np.testing.assert_array_equal(std["most_probable"], raw["most_probable"])
    np.testing.assert_allclose(std[["p_0", "p_1"]], raw[["p_0", "p_1"]], atol=1e-6)
    from bayesgmm import BayesianGMM

    means = BayesianGMM.load(tmp_path / "std.nc").idata_.posterior["means"].mean(("chain", "draw")).values
    assert means.max() > 50  # in the data's units (waiting ~ 55..80 minutes), not standardised
    training = pd.read_csv(tmp_path / "std_train.csv")
    base = pd.read_csv(fitted / "train_assign.csv")
    np.testing.assert_array_equal(training["most_probable"], base["most_probable"])


def test_em_standardize_note_and_same_table(tmp_path, capsys):
    path = tmp_path / "d.csv"
    load_faithful().to_csv(path, index=False)
    code, plain, _ = _run(["em", path, "--select", "1..3", "--covariance", "diag", "--quiet"], capsys)
    assert code == 0
    code, standardized, err = _run(["em", path, "--select", "1..3", "--covariance", "diag", "--quiet",
                                    "--standardize"], capsys)
    assert code == 0 and standardized == plain and "no longer needed" in err


# --------------------------------------------------------------- fit --covariance
@pytest.mark.parametrize("covariance", ["tied", "spherical"])
def test_fit_accepts_every_covariance_type(covariance, tmp_path, capsys):
    from bayesgmm import BayesianGMM

    load_faithful().iloc[::3].to_csv(tmp_path / "d.csv", index=False)
    out = tmp_path / "fit.nc"
    code, _, err = _run(["fit", tmp_path / "d.csv", *FIT, "--covariance", covariance, "--out", out,
                         "--assignments", tmp_path / "a.csv"], capsys)
    assert code == 0, err
    assert BayesianGMM.load(out).covariance_type == covariance
    _check_table(pd.read_csv(tmp_path / "a.csv"), len(load_faithful().iloc[::3]))


# ----------------------------------------------------------------- report
def test_report_assignments_csv(tmp_path, capsys):
    load_faithful().to_csv(tmp_path / "d.csv", index=False)
    out, csv = tmp_path / "r.html", tmp_path / "a.csv"
    code, stdout, err = _run(["report", tmp_path / "d.csv", *FIT, "--out", out, "--assignments", csv,
                              "--intervals"], capsys)
    assert code == 0, err
    assert out.exists() and str(csv.resolve()) in stdout
    table = pd.read_csv(csv)
    _check_table(table, 272, intervals=True)
    short = load_faithful()["eruptions"] < 3
    assert table.loc[short, "most_probable"].nunique() == 1 and table.loc[~short, "most_probable"].nunique() == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "d.csv", "r.html"]


def test_report_posterior_checks_its_inputs(fitted, tmp_path, capsys):
    fit, train = fitted / "fit.nc", fitted / "train.csv"
    out = tmp_path / "r.html"
    load_faithful().head(50).to_csv(tmp_path / "other.csv", index=False)
    load_faithful()[["waiting"]].to_csv(tmp_path / "missing.csv", index=False)
    base = ["report", "--posterior", fit, "--out", out, "--quiet"]
    assert "not the data" in _error([*base, tmp_path / "other.csv"], capsys)
    assert "['eruptions']" in _error([*base, tmp_path / "missing.csv"], capsys)
    assert "does not match the saved fit" in _error([*base, train, "--components", "3"], capsys)
    assert "--select" in _error([*base, train, "--select", "1..3"], capsys)
    assert "--draws" in _error([*base, train, "--draws", "10"], capsys)
    assert "--sampler, --target-accept cannot" in _error([*base, train, "--sampler", "nutpie", "--target-accept",
                                                          "0.9"], capsys)
    assert "no such file" in _error(["report", "--posterior", tmp_path / "nope.nc", train, "--out", out], capsys)
    assert "input fit" in _error(["report", "--posterior", fit, train, "--out", fit, "--force"], capsys)
    assert not out.exists()


def test_report_posterior_uses_the_saved_fit(fitted, tmp_path, capsys, monkeypatch):
    """The report of a saved fit: nothing is sampled again."""
    import bayesgmm.model

    out = tmp_path / "r.html"
    args = ["report", "--posterior", fitted / "fit.nc", fitted / "train.csv", "--out", out, "--quiet"]
    monkeypatch.setattr(bayesgmm.model.BayesianGMM, "fit",
                        lambda *a, **k: pytest.fail("report --posterior sampled again"))
    code, _, err = _run([*args, "--assignments", tmp_path / "a.csv"], capsys)
    assert code == 0, err
    assert out.exists()
    _check_table(pd.read_csv(tmp_path / "a.csv"), 272)


def test_report_posterior_passes_the_fit_to_analyse(fitted, tmp_path, capsys, monkeypatch):
    """The call the CLI makes when analyse accepts precomputed fits: K, type and the saved posterior."""
    import bayesgmm.analysis
    import bayesgmm.report
    from bayesgmm import BayesianGMM

    calls = []

    def fake_analyse(X, settings=None, *, models=None):
        calls.append((X, settings, models))
        return "analysis"

    monkeypatch.setattr(bayesgmm.analysis, "analyse", fake_analyse)
    monkeypatch.setattr(bayesgmm.report, "render_report", lambda analysis: "<html>saved fit</html>")
    reordered = load_faithful()[["waiting", "eruptions"]]
    reordered.to_csv(tmp_path / "reordered.csv", index=False)
    out = tmp_path / "r.html"
    code, _, err = _run(["report", "--posterior", fitted / "fit.nc", tmp_path / "reordered.csv", "--out", out,
                         "--quiet"], capsys)
    assert code == 0, err
    assert out.read_text() == "<html>saved fit</html>"
    (X, settings, models), = calls
    assert list(X.columns) == ["eruptions", "waiting"]  # the fit's order
    assert settings.n_components == 2 and settings.ks == [2] and settings.covariance_types == ("full",)
    assert settings.method == "advi" and settings.draws == 50
    saved = BayesianGMM.load(fitted / "fit.nc").idata_
    assert list(models) == [2]
    np.testing.assert_array_equal(models[2].idata_.posterior["means"].values, saved.posterior["means"].values)
