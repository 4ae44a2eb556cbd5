"""An honest choice of K (issue #14, point 4): BIC, ICL, LOO and a sparse-Dirichlet fit side by side."""

import warnings

import numpy as np
import pandas as pd
import pytest

from bayesgmm.analysis import K_RULES, AnalysisSettings, KChoice, analyse
from bayesgmm.compare import KComparison
from bayesgmm.datasets import load_faithful, make_mixture
from bayesgmm.model import BayesianGMM
from bayesgmm.report import render_k_choice, render_selection

BASE = dict(covariance_types=("full",), method="advi", draws=40, seed=0, progressbar=False,
            fit_options={"n_iterations": 1500})
COLUMNS = ["bic", "icl", "elpd_loo", "se", "elpd_diff", "dse", "sparse_probability"]


@pytest.fixture(scope="module")
def three():
    """Three well-separated components."""
    X, _ = make_mixture(150, n_components=3, n_features=2, random_state=1, separation=10)
    return X


def _analyse(X, **settings):
    """analyse with tiny ADVI settings, and the K of every Bayesian fit it made, in order (sparse fit included)."""
    fitted = []
    fit = BayesianGMM.fit

    def counted(self, *args, **kwargs):
        fitted.append(self.n_components)
        return fit(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mp.setattr(BayesianGMM, "fit", counted)
        analysis = analyse(X, AnalysisSettings(**{**BASE, **settings}))
    return analysis, fitted


def test_every_criterion_finds_three_well_separated_components(three):
    analysis, fitted = _analyse(three, select=[1, 2, 3, 4, 5])
    choice = analysis.k_choice
    assert isinstance(choice, KChoice) and choice.rule == "loo" and choice.K == analysis.K == 3
    assert {choice.winners[c] for c in ("bic", "icl", "loo", "sparse")} == {3}
    assert choice.winners["bic_overall"] == choice.winners["icl_overall"] == (3, "full")
    assert list(choice.table.columns) == COLUMNS and list(choice.table.index) == [1, 2, 3, 4, 5]
    assert choice.table["elpd_loo"].notna().tolist() == [False, True, True, True, False]  # K = 2, 3, 4 only
    assert choice.table.loc[3, "sparse_probability"] > 0.5
    assert fitted == [2, 3, 4, 5] and choice.loo_extra == []  # neighbours, then the sparse fit (largest K)
    assert choice.sparse_idata.posterior.sizes["component"] == 5 and choice.sparse_alpha == 0.05
    assert not any("prefers" in note or "widen" in note for note in choice.notes)
    assert "LOO and EM&#x27;s BIC agree on K=3" in "".join(render_k_choice(analysis))


def test_loo_winner_at_the_edge_of_the_fitted_k_is_bracketed(three):
    # Only BIC's K is fitted at first (loo_neighbours=0): LOO's winner is at both edges of {3}, so K=4 is
    # fitted; K=3 then wins at the lower edge of {3, 4}, so K=2 is fitted; K=3 is then interior.
    analysis, fitted = _analyse(three, select=[2, 3, 4, 5], loo_neighbours=0)
    choice = analysis.k_choice
    assert fitted == [3, 4, 2, 5]  # then the sparse fit, once
    assert choice.loo_extra == [4, 2] and analysis.loo_ks == [2, 3, 4] and choice.K == 3
    assert any("K = 4, 2 were fitted too" in note for note in choice.notes)
    # At most loo_extra_fits extra fits: with one, the winner stays at the edge, and the notes say so.
    analysis, fitted = _analyse(three, select=[2, 3, 4, 5], loo_neighbours=0, loo_extra_fits=1, sparse_alpha=None)
    assert fitted == [3, 4] and analysis.k_choice.loo_extra == [4]
    assert any("loo_extra_fits" in note for note in analysis.k_choice.notes)
    assert analysis.k_choice.table["sparse_probability"].isna().all() and analysis.k_choice.winners["sparse"] is None


def test_a_winner_at_the_edge_of_the_grid_is_flagged(three):
    analysis, fitted = _analyse(three, select=[1, 2, 3])
    notes = analysis.k_choice.notes
    assert "BIC is still improving at K=3, the largest K tried: widen select." in notes
    assert any(note.startswith("LOO is still improving at K=3") for note in notes)
    assert fitted == [2, 3, 3]  # nothing beyond the grid's edge: K=2, 3 and the sparse fit of K=3
    html = "".join(render_selection(analysis))
    assert "widen select" in html and "EM BIC" in html and "LOO elpd" in html


def test_k_rule_and_the_k_settings_are_checked_before_anything_is_fitted(monkeypatch):
    import bayesgmm.analysis as analysis_module

    monkeypatch.setattr(analysis_module, "select_model", lambda *a, **k: pytest.fail("fitted before checking"))
    assert K_RULES == ("bic", "loo", "sparse") and AnalysisSettings().k_rule == "loo"
    with pytest.raises(ValueError, match="k_rule"):
        analyse(load_faithful(), AnalysisSettings(k_rule="aic"))
    with pytest.raises(ValueError, match="sparse_alpha"):
        analyse(load_faithful(), AnalysisSettings(k_rule="sparse", sparse_alpha=None))
    with pytest.raises(ValueError, match="sparse_alpha"):
        analyse(load_faithful(), AnalysisSettings(sparse_alpha=-1.0))
    with pytest.raises(ValueError, match="loo_extra_fits"):
        analyse(load_faithful(), AnalysisSettings(loo_extra_fits=-1))


def _fake_loo(rows):
    """A KComparison whose table ranks ``rows`` (K, elpd_diff, dse) in the order given."""
    table = pd.DataFrame(rows, columns=["K", "elpd_diff", "dse"]).set_index("K")
    table["em_bic"] = np.arange(len(table), 0, -1.0)
    return KComparison(table=table, idatas={}, em=None)


@pytest.mark.parametrize("diff, dse, expected", [(5.0, 2.0, 3), (3.0, 2.0, 2), (4.0, 2.0, 2)])
def test_the_loo_rule_overrules_bic_only_by_more_than_two_dse(diff, dse, expected):
    from bayesgmm.analysis import _apply_rule

    loo = _fake_loo([(3, 0.0, 0.0), (2, diff, dse), (1, 50.0, 5.0)])
    winners = {"bic": 2, "icl": 2, "loo": 3, "sparse": None}
    K, reason = _apply_rule("loo", winners, loo, None)
    assert K == expected and f"{diff / dse:.1f} standard errors" in reason
    assert _apply_rule("bic", winners, loo, None)[0] == 2


def test_the_loo_rule_does_not_overrule_bic_on_doubtful_loo():
    # wine's first 4 features: LOO preferred K=4 by 2.7 dse while K=4's posterior was
    # unreliable (R-hat 1.5, two modes) and ArviZ warned of high Pareto k: the report
    # chose K=4 and called it decisive.
    from bayesgmm.analysis import _apply_rule, _loo_doubts
    from bayesgmm.diagnostics import Verdict

    loo = _fake_loo([(3, 0.0, 0.0), (2, 5.0, 2.0), (1, 50.0, 5.0)])
    loo.table["warning"] = [False, True, False]
    winners = {"bic": 2, "icl": 2, "loo": 3, "sparse": None}
    ok, bad = Verdict(True, "reliable", [], [], {}), Verdict(False, "unreliable", ["R-hat 1.5"], [], {})
    doubts = _loo_doubts({1: bad, 2: ok, 3: bad}, loo)
    assert doubts == {1: "its posterior is unreliable", 2: "ArviZ warns of high Pareto k",
                      3: "its posterior is unreliable"}
    K, reason = _apply_rule("loo", winners, loo, None, doubts)
    assert K == 2 and "K=2 ArviZ warns of high Pareto k; for K=3 its posterior is unreliable" in reason
    assert "BIC's K=2 is kept" in reason
    # K=1's doubts do not matter: it is neither LOO's winner nor BIC's K.
    loo.table["warning"] = False
    assert _apply_rule("loo", winners, loo, None, _loo_doubts({1: bad, 2: ok, 3: ok}, loo))[0] == 3


def test_the_next_loo_k_stops_inside_or_at_the_grid_edge():
    from bayesgmm.analysis import _next_loo_k

    grid = [1, 2, 3, 4, 5]
    assert _next_loo_k(_fake_loo([(3, 0, 0), (2, 5, 1)]), {2: 0, 3: 0}, grid) == 4
    assert _next_loo_k(_fake_loo([(2, 0, 0), (3, 5, 1)]), {2: 0, 3: 0}, grid) == 1
    assert _next_loo_k(_fake_loo([(3, 0, 0), (2, 5, 1), (4, 5, 1)]), {2: 0, 3: 0, 4: 0}, grid) is None
    assert _next_loo_k(_fake_loo([(5, 0, 0), (4, 5, 1)]), {4: 0, 5: 0}, grid) is None  # the grid's edge
    assert _next_loo_k(None, {3: 0}, grid) == 4  # one fit: look upwards first


def test_iris_table_and_rule_are_reported():
    from sklearn.datasets import load_iris

    iris = load_iris(as_frame=True).data
    analysis, fitted = _analyse(iris, select=[1, 2, 3, 4], k_rule="sparse")
    choice = analysis.k_choice
    assert choice.rule == "sparse" and choice.K == choice.winners["sparse"] == analysis.K
    assert analysis.posterior.posterior.sizes["component"] == analysis.K in analysis.fits
    assert analysis.em is analysis.selection.estimators[(analysis.K, "full")]
    assert list(choice.table.columns) == COLUMNS and choice.table.index.tolist() == [1, 2, 3, 4]
    assert choice.table[["bic", "icl", "sparse_probability"]].notna().all().all()
    assert choice.table["elpd_loo"].notna().sum() == len(analysis.loo_ks) >= 2
    assert np.isclose(choice.table["sparse_probability"].sum(), 1.0)
    html = "".join(render_k_choice(analysis))
    assert "chosen by the &#x27;sparse&#x27; rule" in html and "P(K occupied, sparse fit)" in html
