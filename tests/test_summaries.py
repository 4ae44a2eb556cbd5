import warnings

import arviz as az
import numpy as np
import pytest

from bayesgmm import (
    BayesianGMM,
    GaussianMixtureEM,
    assignments,
    density_grid,
    effective_components,
    em_to_idata,
    marginal_density,
    predictive_density,
    relabel,
    sample_posterior_predictive,
    summary,
)
from bayesgmm.labels import _permute_idata


# ------------------------------------------------------------------- relabel
def test_relabel_recovers_randomly_permuted_draws_exactly(three_blob_fit):
    _, idata = three_blob_fit
    original = relabel(idata)
    n_draws = original.posterior.sizes["chain"] * original.posterior.sizes["draw"]
    rng = np.random.default_rng(0)
    scrambled = _permute_idata(original, np.array([rng.permutation(3) for _ in range(n_draws)]))
    assert not np.array_equal(scrambled.posterior["means"].values, original.posterior["means"].values)
    recovered = relabel(scrambled)
    for name in original.posterior.data_vars:  # every variable, latents included
        np.testing.assert_array_equal(recovered.posterior[name].values, original.posterior[name].values)
    counts = recovered.posterior.attrs["relabel_permuted_per_chain"]
    assert len(counts) == 2 and sum(counts) > 0
    # log-likelihood is label-invariant and untouched
    np.testing.assert_array_equal(recovered.log_likelihood["obs"].values, idata.log_likelihood["obs"].values)


def test_relabel_to_an_em_reference(three_blobs, three_blob_fit):
    X, _ = three_blobs
    _, idata = three_blob_fit
    em = GaussianMixtureEM(3, random_state=0).fit(X)
    aligned = relabel(idata, reference=em)
    post_means = aligned.posterior["means"].mean(("chain", "draw")).values
    np.testing.assert_allclose(post_means, em.means_, atol=0.5)
    by_means = relabel(idata, reference=em.means_)
    np.testing.assert_array_equal(by_means.posterior["means"].values, aligned.posterior["means"].values)
    with pytest.raises(ValueError, match="reference"):
        relabel(idata, reference=np.zeros((2, 2)))


@pytest.mark.slow
def test_label_switching_for_real():
    X = np.array([[0.0], [1.0], [10.0], [11.0], [12.0]])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # A component sd prior narrower than the default (0.2 x the data sd): with the
        # default, one broad component can cover both groups of 5 points, chains hop
        # between labellings within themselves, and raw R-hat stays near 1.
        idata = BayesianGMM(2, covariance_type="diag", priors={"sd_scale": 0.2}).fit(
            X, init="prior", chains=4, draws=1000, tune=1000, random_seed=4, progressbar=False)
    raw = float(az.rhat(idata.posterior[["means"]])["means"].max())
    fixed = float(az.rhat(relabel(idata).posterior[["means"]])["means"].max())
    assert raw > 1.1
    assert fixed < 1.01


def test_summary_is_xarray_with_invariant_checks(three_blob_fit):
    _, idata = three_blob_fit
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = summary(idata)
    assert {"weights", "means", "stds", "corr", "total_log_likelihood"} <= set(result.data_vars)
    assert {"mean", "r_hat", "ess_bulk"} <= set(result.metric.values.tolist())
    assert "max_rhat_pointwise_log_likelihood" in result.attrs
    assert "component" in result["means"].dims


def test_summary_warns_on_low_ess(three_blob_fit):
    _, idata = three_blob_fit  # 300 draws in all: bulk ESS is necessarily < 400
    with pytest.warns(UserWarning, match="ESS"):
        summary(idata)


def test_ordered_option_keeps_means_sorted(three_blobs):
    X, _ = three_blobs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = BayesianGMM(3, ordered="x0").fit(X, draws=100, tune=100, chains=2, random_seed=1, progressbar=False)
    means = idata.posterior["means"].sel(feature="x0").values
    assert np.all(np.diff(means, axis=-1) > 0)


# ---------------------------------------------------------------- assignments
def test_assignments_single_draw_equal_em(three_blobs):
    X, _ = three_blobs
    em = GaussianMixtureEM(3, random_state=0).fit(X)
    result = assignments(em_to_idata(em, X))
    np.testing.assert_allclose(result["probability"].values, em.predict_proba(X), atol=1e-10)
    np.testing.assert_array_equal(result["most_probable"].values, em.predict(X))
    new = np.array([[0.0, 0.0], [5.0, -3.0]])
    np.testing.assert_allclose(assignments(em_to_idata(em), new)["probability"].values, em.predict_proba(new),
                               atol=1e-10)


def test_assignments_properties(three_blob_fit, three_blobs):
    X, truth = three_blobs
    _, idata = three_blob_fit
    result = assignments(idata, hdi_prob=0.9)
    p = result["probability"]
    assert p.dims == ("obs_id", "component")
    np.testing.assert_allclose(p.sum("component"), 1.0, atol=1e-12)
    # An HDI need not contain the mean (skewed draws), but it is an ordered interval in [0, 1].
    assert bool(np.all(result["probability_lower"] <= result["probability_upper"]))
    assert float(result["probability_lower"].min()) >= 0 and float(result["probability_upper"].max()) <= 1
    assert float(result["uncertainty"].min()) >= 0 and float(result["uncertainty"].max()) <= 1
    # well separated blobs: assignments agree with the truth up to relabelling
    from sklearn.metrics import adjusted_rand_score

    assert adjusted_rand_score(truth.labels, result["most_probable"].values) > 0.95


def test_per_draw_responsibilities_sum_to_one(three_blob_fit, three_blobs):
    from scipy.special import logsumexp

    from bayesgmm._posterior import posterior_arrays
    from bayesgmm.density import component_log_prob

    X, _ = three_blobs
    _, idata = three_blob_fit
    arr = posterior_arrays(idata)
    lp = component_log_prob(X, np.log(arr["weights"]), arr["means"], arr["chol"])
    resp = np.exp(lp - logsumexp(lp, axis=2, keepdims=True))
    np.testing.assert_allclose(resp.sum(axis=2), 1.0, atol=1e-12)


# ---------------------------------------------------------------- densities
def test_predictive_density_integrates_to_one_1d():
    rng = np.random.default_rng(0)
    X = np.r_[rng.normal(0, 1, 60), rng.normal(6, 0.7, 40)][:, None]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = BayesianGMM(2).fit(X, draws=100, tune=100, chains=2, random_seed=0, progressbar=False)
    grid = np.linspace(-12, 18, 6001)[:, None]
    dens = predictive_density(idata, grid)
    assert abs(np.trapezoid(dens["density"].values, grid[:, 0]) - 1) < 1e-3
    assert np.all(dens["density_lower"] <= dens["density_upper"])


def test_predictive_density_integrates_to_one_2d(three_blobs, three_blob_fit):
    _, idata = three_blob_fit
    grid = density_grid(idata, n_points=300, margin=0.6)
    dens = predictive_density(idata, grid["points"])["density"].values.reshape(grid["shape"])
    area = np.trapezoid(np.trapezoid(dens, grid["axes"][1], axis=1), grid["axes"][0])
    assert abs(area - 1) < 1e-2


def test_marginal_density_integrates_and_matches_dims(three_blob_fit):
    _, idata = three_blob_fit
    pts = np.linspace(-60, 60, 4001)
    dens = marginal_density(idata, "x1", pts)
    assert abs(np.trapezoid(dens["density"].values, pts) - 1) < 1e-3


def test_sample_posterior_predictive_moments(three_blob_fit, three_blobs):
    X, _ = three_blobs
    _, idata = three_blob_fit
    new = sample_posterior_predictive(idata, 20_000, random_seed=0)
    assert new["X"].dims == ("sample", "feature")
    np.testing.assert_allclose(new["X"].mean("sample").values, X.mean(axis=0), atol=0.6)
    again = sample_posterior_predictive(idata, 20_000, random_seed=0)
    np.testing.assert_array_equal(new["X"].values, again["X"].values)


def test_effective_components_counts_weights():
    post = {"weights": np.array([[[0.5, 0.48, 0.02], [0.9, 0.06, 0.04]]])}
    idata = az.from_dict(posterior={**post, "means": np.zeros((1, 2, 3, 1)), "cov": np.ones((1, 2, 3, 1, 1))},
                         dims={"weights": ["component"], "means": ["component", "feature"],
                               "cov": ["component", "feature", "feature_bis"]})
    result = effective_components(idata, weight_threshold=0.05)
    np.testing.assert_array_equal(result["count"].values, [[2, 2]])
    assert float(result["probability"].sel(n_components=2)) == 1.0


# ---------------------------------------------------------------- bad input
def test_bad_input(three_blob_fit):
    _, idata = three_blob_fit
    with pytest.raises(ValueError, match="posterior"):
        assignments(az.from_dict(observed_data={"y": np.zeros(3)}))
    with pytest.raises(ValueError, match="features"):
        assignments(idata, np.zeros((4, 3)))
    with pytest.raises(ValueError, match="hdi_prob"):
        assignments(idata, hdi_prob=1.5)
    with pytest.raises(ValueError, match="hdi_prob"):
        predictive_density(idata, np.zeros((2, 2)), hdi_prob=0.0)
    with pytest.raises(ValueError, match="features"):
        predictive_density(idata, np.zeros((2, 5)))
    with pytest.raises(ValueError, match="n_samples"):
        sample_posterior_predictive(idata, 0)
