"""Cost estimates before a Bayesian fit, and the warning before an expensive one."""

import warnings

import pytest
from sklearn.datasets import load_breast_cancer

from bayesgmm import BayesianGMM
from bayesgmm.cost import EXPENSIVE_FIT_SECONDS, ExpensiveFitWarning, estimate_cost
from bayesgmm.datasets import load_faithful


def test_parameter_counts_follow_the_covariance_structure():
    X = load_breast_cancer().data  # 569 rows, 30 features
    counts = {c: BayesianGMM(2, covariance_type=c).estimate_cost(X).n_parameters
              for c in ("full", "tied", "diag", "spherical")}
    # simplex 1 + means 60, then 2 x 465, 465, 2 x 30, 2
    assert counts == {"full": 991, "tied": 526, "diag": 121, "spherical": 63}


def test_thirty_full_features_are_flagged_and_cheaper_options_named(monkeypatch):
    import bayesgmm.inference as inference

    X = load_breast_cancer().data
    gmm = BayesianGMM(2)
    cost = gmm.estimate_cost(X)
    assert cost.expensive and cost.seconds > 10 * 60  # measured: not finished after 19 minutes
    with pytest.warns(ExpensiveFitWarning, match="diag.*advi") as record:
        def stop(*args, **kwargs):
            raise RuntimeError("stop")

        monkeypatch.setattr(inference, "fit_nuts", stop)  # stop before any sampling
        with pytest.raises(RuntimeError, match="stop"):
            gmm.fit(X, progressbar=False)
    assert "991" in str(record[0].message)


def test_small_fits_do_not_warn_and_cost_grows_with_draws():
    X = load_faithful()
    gmm = BayesianGMM(2)
    small = gmm.estimate_cost(X)
    assert not small.expensive and small.seconds < EXPENSIVE_FIT_SECONDS
    assert gmm.estimate_cost(X, draws=4000).seconds > small.seconds
    assert gmm.estimate_cost(X, method="advi").gradient_evaluations == 20_000
    with warnings.catch_warnings():
        warnings.simplefilter("error", ExpensiveFitWarning)
        gmm.fit(X, method="advi", draws=50, n_iterations=2000, progressbar=False, random_seed=0)


def test_estimate_cost_checks_its_settings():
    with pytest.raises(ValueError, match="draws"):
        BayesianGMM(2).estimate_cost(load_faithful(), draws=0)
    with pytest.raises(TypeError, match="bogus"):
        BayesianGMM(2).estimate_cost(load_faithful(), bogus=1)


def test_cost_is_monotone_in_rows_and_features():
    base = estimate_cost(20, 1000, 2, 3)
    assert estimate_cost(20, 10_000, 2, 3).seconds > base.seconds
    assert estimate_cost(20, 1000, 20, 3).gradient_seconds > base.gradient_seconds
    assert estimate_cost(5000, 1000, 2, 3).gradient_evaluations == 2 * 2000 * 1023  # capped at the tree depth
