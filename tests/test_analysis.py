"""Analyse once, render after (issue #10): the report path computes every quantity once."""

import sys
import warnings
from html.parser import HTMLParser

import numpy as np
import pytest

import bayesgmm
from bayesgmm import GaussianMixtureEM, compare_fits, compare_k
from bayesgmm.analysis import AnalysisSettings, ClusteringAnalysis, analyse
from bayesgmm.datasets import load_faithful
from bayesgmm.report import SECTIONS, ReportSettings, build_report, render_report

# Full and diagonal covariances only, so the test does not depend on which types the Bayesian model fits.
TINY = dict(select=[1, 2, 3], covariance_types=("full", "diag"), method="advi", draws=40, seed=0,
            progressbar=False, fit_options={"n_iterations": 1500})


class _Ids(HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids, self.images = [], 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.append(attrs["id"])
        self.images += tag == "img"


def _sections(text):
    parser = _Ids()
    parser.feed(text)
    return [i for i in parser.ids if i in dict(SECTIONS)], parser.images


def _wrap_everywhere(monkeypatch, function, calls):
    """Count every call of ``function``, under whatever name any bayesgmm module holds it."""
    def counted(*args, **kwargs):
        calls.append(args[0] if args else None)
        return function(*args, **kwargs)

    for name, module in list(sys.modules.items()):
        if name == "bayesgmm" or name.startswith("bayesgmm."):
            for attr, value in list(vars(module).items()):
                if value is function:
                    monkeypatch.setattr(module, attr, counted)


@pytest.fixture(scope="module")
def counted_analysis():
    """One analysis of Old Faithful with every EM fit, relabel and assignments call counted."""
    em_fits, relabels, assigns, grid_done = [], [], [], []
    with pytest.MonkeyPatch.context() as mp:
        fit = GaussianMixtureEM.fit

        def counted_fit(self, *args, **kwargs):
            em_fits.append((self.n_components, self.covariance_type, bool(grid_done)))
            return fit(self, *args, **kwargs)

        mp.setattr(GaussianMixtureEM, "fit", counted_fit)
        import bayesgmm.analysis as analysis_module

        select = analysis_module.select_model

        def select_then_mark(*args, **kwargs):
            result = select(*args, **kwargs)
            grid_done.append(True)
            return result

        mp.setattr(analysis_module, "select_model", select_then_mark)
        _wrap_everywhere(mp, bayesgmm.labels.relabel, relabels)
        _wrap_everywhere(mp, bayesgmm.summaries.assignments, assigns)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            analysis = analyse(load_faithful(), AnalysisSettings(**TINY))
            counts_after_analysis = (len(em_fits), len(relabels), len(assigns))
            text = render_report(analysis)
    return analysis, text, em_fits, relabels, assigns, counts_after_analysis


def test_em_is_fitted_once_per_grid_cell_and_never_again(counted_analysis):
    analysis, _, em_fits, *_ = counted_analysis
    grid = [(k, c) for c in TINY["covariance_types"] for k in TINY["select"]]
    assert sorted((k, c) for k, c, _ in em_fits) == sorted(grid)
    assert not any(after_grid for *_, after_grid in em_fits)  # the Bayesian fits start from the grid's fits
    assert analysis.K in analysis.fits and len(analysis.fits) >= 2  # LOO had neighbours to fit
    for k, model in analysis.models.items():
        assert model.em_ is analysis.selection.estimators[(k, analysis.covariance_type)]


def test_relabel_and_assignments_run_once_per_bayesian_fit(counted_analysis):
    analysis, _, _, relabels, assigns, _ = counted_analysis
    # The posterior the report shows is aligned and assigned once; its LOO neighbours enter LOO
    # (label-invariant) and their verdicts, which relabel each at most once. fit itself does not
    # assess (check_diagnostics=False): analyse assesses the aligned posterior.
    ids = [id(idata) for idata in relabels]
    assert len(set(ids)) == len(ids) and id(analysis.idata) in ids
    assert set(ids) <= {id(idata) for idata in analysis.fits.values()}
    assert set(analysis.verdicts) == set(analysis.fits) and analysis.verdict is analysis.verdicts[analysis.K]
    assert len(assigns) == 1 and assigns[0] is analysis.posterior
    unsure = analysis.assignments["max_probability"].values < analysis.settings.threshold
    differ = analysis.em.predict(analysis.X) != analysis.assignments["most_probable"].values
    assert len(analysis.versus.uncertain) == int((unsure | differ).sum())  # from the same assignments


def test_rendering_computes_nothing(counted_analysis):
    _, text, em_fits, relabels, assigns, counts_after_analysis = counted_analysis
    assert (len(em_fits), len(relabels), len(assigns)) == counts_after_analysis
    assert _sections(text)[0] == [key for key, _ in SECTIONS]


def test_analysis_keeps_names_and_follows_the_chosen_k(counted_analysis):
    analysis, text, *_ = counted_analysis
    assert isinstance(analysis, ClusteringAnalysis)
    assert analysis.names == ["eruptions", "waiting"]
    assert list(analysis.posterior.posterior.feature.values) == analysis.names  # no patching needed
    best = analysis.selection.best_estimator_
    choice = analysis.k_choice
    # K is the rule's choice (default "loo": BIC's K unless LOO beats it by more than 2 dse); the covariance
    # type is EM's winner's, and the EM fit shown is the grid's fit of that K and type.
    assert choice.rule == "loo" and analysis.K == choice.K and choice.winners["bic"] == best.n_components
    assert analysis.covariance_type == best.covariance_type
    assert analysis.em is analysis.selection.estimators[(analysis.K, best.covariance_type)]
    assert analysis.posterior.posterior.sizes["component"] == analysis.K
    assert all(model.covariance_type == best.covariance_type for model in analysis.models.values())
    assert sorted(analysis.loo.idatas) == analysis.loo_ks
    assert analysis.loo.idatas[analysis.K] is analysis.fits[analysis.K]
    assert "eruptions" in text and "LOO ranks K" in text
    _, images = _sections(text)
    assert images >= 6


def test_build_report_is_analyse_then_render(monkeypatch):
    calls = []
    import bayesgmm.report as report

    monkeypatch.setattr(report, "analyse", lambda data, settings: calls.append((data, settings)) or "analysis")
    monkeypatch.setattr(report, "render_report", lambda analysis: f"<html>{analysis}</html>")
    settings = ReportSettings(n_components=2)
    assert build_report("data", settings) == "<html>analysis</html>" and calls == [("data", settings)]
    assert ReportSettings is AnalysisSettings


def test_settings_are_checked_before_anything_is_fitted(monkeypatch):
    import bayesgmm.analysis as analysis_module

    monkeypatch.setattr(analysis_module, "select_model", lambda *a, **k: pytest.fail("fitted before checking"))
    with pytest.raises(ValueError, match="draws"):
        analyse(load_faithful(), AnalysisSettings(draws=0))
    with pytest.raises(ValueError, match="threshold"):
        analyse(load_faithful(), AnalysisSettings(threshold=2.0))
    with pytest.raises(ValueError, match="n_components"):
        analyse(load_faithful().head(3), AnalysisSettings(select=[1, 5]))
    with pytest.raises(ValueError, match="repeats"):
        analyse(load_faithful().set_axis(["a", "a"], axis=1), AnalysisSettings())


def test_single_k_nuts_report_has_every_section():
    settings = AnalysisSettings(n_components=2, covariance_types=("full",), draws=30, tune=30, chains=2,
                                progressbar=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        analysis = analyse(load_faithful(), settings)
        text = render_report(analysis)
    assert analysis.loo is None and list(analysis.fits) == [2]
    assert _sections(text)[0] == [key for key, _ in SECTIONS]
    assert "R-hat" in text and "LOO compares nothing" in text


def test_compare_k_and_compare_fits_reuse_what_they_are_given(counted_analysis, monkeypatch):
    analysis = counted_analysis[0]
    import bayesgmm.compare as compare_module

    monkeypatch.setattr(compare_module, "select_model", lambda *a, **k: pytest.fail("EM grid fitted again"))
    monkeypatch.setattr(compare_module, "relabel", lambda *a, **k: pytest.fail("relabelled again"))
    monkeypatch.setattr(compare_module, "assign_points", lambda *a, **k: pytest.fail("assigned again"))
    monkeypatch.setattr(compare_module.BayesianGMM, "fit", lambda *a, **k: pytest.fail("Bayes fitted again"))
    result = compare_k(None, fits=analysis.fits, em=analysis.selection, covariance_type=analysis.covariance_type)
    assert list(result.table.index) == list(analysis.loo.table.index)
    assert all(isinstance(k, int) for k in result.idatas)
    with pytest.warns(DeprecationWarning, match="K="):
        assert result.idatas[f"K={analysis.K}"] is analysis.fits[analysis.K]
    versus = compare_fits(analysis.em, analysis.posterior, aligned=True, assignments=analysis.assignments)
    assert versus.adjusted_rand_index == analysis.versus.adjusted_rand_index
    np.testing.assert_allclose(versus.table["posterior_mean"], analysis.versus.table["posterior_mean"])
    with pytest.raises(ValueError, match="aligned=True"):
        compare_fits(analysis.em, analysis.posterior, assignments=analysis.assignments)


def test_demo_prints_and_renders_one_analysis(counted_analysis, monkeypatch, tmp_path, capsys):
    import bayesgmm.analysis as analysis_module
    import bayesgmm.report as report_module
    from bayesgmm.cli import main

    analysis = counted_analysis[0]
    analysed, rendered = [], []
    monkeypatch.setattr(analysis_module, "analyse", lambda data, settings: analysed.append(settings) or analysis)
    render = report_module.render_report
    monkeypatch.setattr(report_module, "render_report", lambda a: rendered.append(a) or render(a))
    monkeypatch.setattr(report_module, "build_report", lambda *a: pytest.fail("the demo analysed twice"))
    out = tmp_path / "demo.html"
    assert main(["demo", "--draws", "25", "--quiet", "--out", str(out)]) == 0
    assert len(analysed) == 1 and analysed[0].draws == analysed[0].tune == 25
    assert len(rendered) == 1 and rendered[0] is analysis and out.read_text().startswith("<!DOCTYPE html>")
    printed = capsys.readouterr().out
    assert analysis.verdict.headline() in printed and f"K={analysis.K}" in printed
    assert f"{float(analysis.summary['weights'].sel(metric='mean')[0]):.3f}" in printed


def test_compare_k_sparse_fit_starts_from_the_grid_and_keeps_the_old_key():
    from bayesgmm.datasets import make_mixture

    X, _ = make_mixture(60, n_components=2, n_features=2, random_state=5, separation=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = compare_k(X, [1, 2], method="advi", draws=30, random_seed=0, sparse_alpha=0.5,
                           fit_options={"n_iterations": 800})
    assert sorted(result.idatas) == [1, 2] and result.best_bic == 2
    assert result.sparse is not None and result.sparse_idata.posterior.sizes["component"] == 2
    with pytest.warns(DeprecationWarning, match="sparse_idata"):
        assert result.idatas["sparse"] is result.sparse_idata
    with pytest.raises(ValueError, match="X is needed"):
        compare_k(None, [1, 2, 3], fits=dict(result.idatas), em=result.em)


def test_precomputed_models_are_checked_before_anything_is_fitted(monkeypatch):
    from bayesgmm import BayesianGMM
    from bayesgmm import analysis as analysis_module

    monkeypatch.setattr(analysis_module, "select_model", lambda *a, **k: pytest.fail("fitted before checking"))
    data = load_faithful()
    with pytest.raises(TypeError, match="models must be a dict"):
        analyse(data, AnalysisSettings(**TINY), models=[1])
    with pytest.raises(TypeError, match=r"models\[2\] must be a fitted BayesianGMM"):
        analyse(data, AnalysisSettings(**TINY), models={2: BayesianGMM(2)})


def test_cli_report_refuses_an_unknown_k_rule(tmp_path, capsys):
    from bayesgmm.cli import main

    load_faithful().to_csv(tmp_path / "d.csv", index=False)
    assert main(["report", str(tmp_path / "d.csv"), "--k-rule", "aic", "--out", str(tmp_path / "r.html")]) == 2
    assert "--k-rule" in capsys.readouterr().err


def test_the_fits_ahead_and_their_rough_cost_are_said_before_the_first_starts(monkeypatch, capsys):
    # A report on 178 x 4 data ran 11-12 minutes with nothing said about how long it would take.
    import pandas as pd

    import bayesgmm.analysis as analysis_module
    from bayesgmm import BayesianGMM
    from bayesgmm.fit_settings import AUTO_DRAWS_CHECKPOINTS

    data = pd.DataFrame(load_faithful())
    auto = AnalysisSettings(fit_options={"sampler": "nutpie"}).fit_kwargs()
    assert auto["draws"] == "auto"
    low, high = analysis_module._cost_range(BayesianGMM(3), data, auto)
    assert low == BayesianGMM(3).estimate_cost(data, **auto).seconds
    assert high == BayesianGMM(3).estimate_cost(data, **{**auto, "draws": AUTO_DRAWS_CHECKPOINTS[-1]}).seconds > low
    fixed = {**auto, "draws": 500}
    assert analysis_module._cost_range(BayesianGMM(3), data, fixed) == (BayesianGMM(3).estimate_cost(
        data, **fixed).seconds,) * 2
    plan = analysis_module._plan(data, "full", [2, 3], 4, auto, None)
    assert plan.startswith("Bayesian fits to make: K=2, 3 (full covariance) and a sparse-Dirichlet fit of K=4, "
                           "roughly ")
    # A range: "auto" samples on where the posterior mixes slowly.
    assert " to " in plan.split("roughly ")[1].split(" in all")[0]
    assert " to " not in analysis_module._plan(data, "full", [2, 3], 4, fixed, None).split("roughly ")[1].split(
        " in all")[0]

    assert "Quicker" not in plan  # under the expensive-fit threshold
    from sklearn.datasets import load_diabetes

    slow = analysis_module._plan(load_diabetes(as_frame=True).data, "full", [1, 2, 3, 4], 6, auto, None)
    assert "Quicker, and approximate: method='advi' (--method advi), roughly " in slow

    class Stop(Exception):
        pass

    def stop(*args, **kwargs):
        raise Stop

    monkeypatch.setattr(analysis_module, "_bayesian_fit", stop)
    with pytest.raises(Stop):
        analyse(load_faithful(), AnalysisSettings(**{**TINY, "progressbar": True}))
    assert "Bayesian fits to make: K=1, 2, 3 (" in capsys.readouterr().err
