import warnings

import pytest

from bayesgmm import BayesianGMM, GaussianMixtureEM, compare_fits, compare_k, em_to_idata
from bayesgmm.datasets import make_mixture


def test_em_and_posterior_agree_on_a_clear_large_sample():
    X, _ = make_mixture(600, n_components=2, n_features=2, random_state=11, separation=10)
    X_test, _ = make_mixture(200, n_components=2, n_features=2, random_state=11, separation=10)
    em = GaussianMixtureEM(2, random_state=0).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = BayesianGMM(2).fit(X, draws=300, tune=300, chains=2, random_seed=2, progressbar=False)
    result = compare_fits(em, idata, X, X_test=X_test)
    assert result.all_em_in_hdi, result.table[~result.table["em_in_hdi"]]
    assert result.adjusted_rand_index > 0.99
    assert set(result.table["parameter"]) == {"weight", "mean", "sd", "corr"}
    assert len(result.table) == 2 * (1 + 2 + 2 + 1)
    lp = result.log_predictive
    assert abs(lp["em"] - lp["posterior"]) < 0.05  # same predictive quality when they agree


def test_em_and_posterior_disagree_on_a_small_overlapping_sample():
    X, _ = make_mixture(16, n_components=2, n_features=2, random_state=2, separation=2.5)
    em = GaussianMixtureEM(2, random_state=0).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = BayesianGMM(2).fit(X, draws=300, tune=300, chains=2, random_seed=3, progressbar=False)
    result = compare_fits(em, idata, X)
    # EM is confident about every row; the posterior is not.
    assert len(result.uncertain) >= 5
    assert result.uncertain["posterior_probability"].min() < 0.8
    assert result.adjusted_rand_index < 0.9 or not result.all_em_in_hdi


def test_compare_fits_bad_input():
    X, _ = make_mixture(60, n_components=2, n_features=2, random_state=0)
    em = GaussianMixtureEM(3, random_state=0).fit(X)
    idata = em_to_idata(GaussianMixtureEM(2, random_state=0).fit(X), X)
    with pytest.raises(ValueError, match="components"):
        compare_fits(em, idata, X)
    with pytest.raises(ValueError, match="threshold"):
        compare_fits(em, idata, X, threshold=2)


@pytest.mark.slow
def test_compare_k_ranks_the_true_k_first():
    X, _ = make_mixture(240, n_components=3, n_features=2, random_state=5, separation=8)
    result = compare_k(X, range(1, 5), draws=300, tune=300, random_seed=0, sparse_alpha=0.05)
    assert result.best_loo == 3 or 3 in result.within_one_se()
    assert result.best_bic == 3
    assert {"elpd_loo", "se", "em_bic", "em_icl"} <= set(result.table.columns)
    assert float(result.sparse["mean"]) == pytest.approx(3, abs=0.5)


def test_compare_k_table_shape_small():
    X, _ = make_mixture(80, n_components=2, n_features=2, random_state=5, separation=8)
    result = compare_k(X, [1, 2], method="advi", draws=100, random_seed=0)
    assert list(sorted(result.table["n_components"])) == [1, 2]
    assert result.best_bic == 2
    assert result.best_loo == 2
