"""Quiet by default: no warning a user cannot act on, and the deprecated names still work (but say so)."""

import warnings
from importlib import metadata

import arviz as az
import numpy as np
import pandas as pd
import pytest

import bayesgmm
from bayesgmm import (
    GaussianMixtureEM,
    assess,
    assignments,
    effective_components,
    em_to_idata,
    relabel,
    select_model,
    summary,
)
from bayesgmm import plotting as bp


def _one_component_posterior(n_chains=2, n_draws=500, seed=0):
    """A hand-made K=1, D=1 posterior: the weight is 1 in every draw (constant)."""
    rng = np.random.default_rng(seed)
    shape = (n_chains, n_draws)
    X = rng.normal(size=(20, 1))
    means = rng.normal(0, 0.1, shape + (1, 1))
    cov = rng.uniform(0.9, 1.1, shape + (1, 1, 1))
    mu, var = means[..., 0, 0, None], cov[..., 0, 0, 0, None]  # (chain, draw, 1)
    loglik = -0.5 * (X[None, None, :, 0] - mu) ** 2 / var - 0.5 * np.log(2 * np.pi * var)
    return az.from_dict(
        posterior={"weights": np.ones(shape + (1,)), "means": means, "cov": cov},
        log_likelihood={"obs": loglik},
        sample_stats={"diverging": np.zeros(shape, dtype=bool), "energy": rng.normal(size=shape)},
        observed_data={"obs": X},
        dims={"weights": ["component"], "means": ["component", "feature"],
              "cov": ["component", "feature", "feature_bis"], "obs": ["obs_id", "feature"]},
    )


def test_em_on_a_dataframe_does_not_warn_about_its_own_feature_names():
    rng = np.random.default_rng(0)
    X = pd.DataFrame(np.vstack([rng.normal(0, 1, (100, 2)), rng.normal(6, 1, (100, 2))]), columns=["a", "b"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        em = GaussianMixtureEM(2, random_state=0).fit(X)
        em.predict(X)
        em.predict_proba(X)
        em.score_samples(X)
        em.criteria(X)
        em.sample(5)
    assert list(em.feature_names_in_) == ["a", "b"]


def test_select_model_on_a_dataframe_keeps_its_feature_names():
    rng = np.random.default_rng(0)
    X = pd.DataFrame(np.vstack([rng.normal(0, 1, (100, 2)), rng.normal(6, 1, (100, 2))]), columns=["a", "b"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        best = select_model(X, n_components=[1, 2], covariance_types=["full"]).best_estimator_
        best.predict(X)  # used to warn: fitted without feature names
    assert list(best.feature_names_in_) == ["a", "b"]


def test_one_component_summaries_and_diagnostics_are_quiet():
    idata = _one_component_posterior()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        verdict = assess(idata)
        table = summary(idata)
        assignments(idata)
        effective_components(idata)
        relabel(idata)
        one_chain = summary(idata.sel(chain=[0]))
    assert verdict.reliable
    weight = table["weights"].sel(metric=["mean", "sd", "ess_bulk", "r_hat"]).values.ravel()
    np.testing.assert_array_equal(weight, [1.0, 0.0, 1000.0, 1.0])  # exact, not ArviZ's NaN
    assert one_chain["weights"].sel(metric="r_hat").item() == 1.0
    assert np.isfinite(table["means"].values).all()


def test_one_draw_summary_is_quiet():
    X = np.random.default_rng(1).normal(size=(50, 1))
    idata = em_to_idata(GaussianMixtureEM(1, random_state=0).fit(X), X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = summary(idata)
    assert table["means"].sel(metric="sd").item() == 0.0
    assert "not computed" in table.attrs["diagnostics"]


def test_version_comes_from_the_package_metadata():
    assert bayesgmm.__version__ == metadata.version("bayesgmm")


# ----------------------------------------------------------------- deprecated names
def test_effective_components_threshold_is_weight_threshold():
    idata = _one_component_posterior(n_draws=20)
    new = effective_components(idata, weight_threshold=0.5)
    with pytest.warns(DeprecationWarning, match="weight_threshold"):
        old = effective_components(idata, threshold=0.5)
    assert old.identical(new)
    assert float(new["hdi_lower"]) == float(new["lower"]) == 1.0 and new.attrs["weight_threshold"] == 0.5
    with pytest.raises(TypeError, match="weight_threshold only"):
        effective_components(idata, weight_threshold=0.2, threshold=0.5)


def test_plot_uncertainty_threshold_is_probability_threshold():
    import matplotlib.pyplot as plt

    assign = assignments(_one_component_posterior(n_draws=20))
    with pytest.warns(DeprecationWarning, match="probability_threshold"):
        ax = bp.plot_uncertainty(assign, threshold=0.7)
    assert ax.lines[0].get_xdata()[0] == 0.7
    plt.close("all")


def test_plot_trace_does_not_relabel_and_relabel_draws_is_deprecated():
    import matplotlib.pyplot as plt

    idata = _one_component_posterior(n_draws=20)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bp.plot_trace(idata, var_names="means")  # a constant K=1 weight has no density to draw
        bp.plot_trace(idata, var_names="means", relabel_draws=False)
    with pytest.warns(DeprecationWarning, match="relabel"):
        bp.plot_trace(idata, var_names="means", relabel_draws=True)
    plt.close("all")


def test_only_pytensors_known_fusion_failure_is_hidden():
    """pytensor#2145's logged traceback is dropped; any other rewrite failure is still logged."""
    import logging

    from bayesgmm._pytensor_setup import _KnownFusionFailure

    record = logging.LogRecord("pytensor.graph.rewriting.basic", logging.ERROR, __file__, 1, "Traceback:", None, None)

    def elemwise_to_scalar():
        return {}["mu"]

    def other_rewrite():
        return {}["mu"]

    keep = []
    for fn in (elemwise_to_scalar, other_rewrite):
        try:
            fn()
        except KeyError:
            keep.append(_KnownFusionFailure().filter(record))
    assert keep == [False, True]
    assert _KnownFusionFailure().filter(record)  # no exception being handled: logged
