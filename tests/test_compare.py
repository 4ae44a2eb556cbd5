import warnings

import numpy as np
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


@pytest.mark.parametrize("shift", [-1000.0, 1000.0])
def test_compare_k_stacking_weights_do_not_depend_on_the_units(shift):
    # In data units every pointwise log-density carries -D log(units): at 1e-100 units
    # ArviZ's stacking weights overflowed to equal weights for every K.
    import arviz as az

    from bayesgmm.compare import _centred_log_likelihoods

    rng = np.random.default_rng(0)
    better = rng.normal(-1.0, 0.3, (2, 200, 30))
    worse = better - rng.uniform(0, 0.5, 30)

    def fits(offset):
        return {k: az.from_dict(posterior={"x": np.zeros((2, 200))}, log_likelihood={"obs": ll + offset})
                for k, ll in ((2, better), (3, worse))}

    reference = az.compare(fits(0.0), ic="loo")["weight"]
    weights = az.compare(_centred_log_likelihoods(fits(shift)), ic="loo")["weight"]
    np.testing.assert_allclose(weights.sort_index().to_numpy(), reference.sort_index().to_numpy(), atol=1e-6)
    assert reference[2] > 0.99
