"""Relabelling methods and their diagnostics (issue #14, point 2): the default cross-entropy matching and
Stephens' KL algorithm, compared on label-switching posteriors; per-draw ambiguity flags."""

import warnings

import arviz as az
import numpy as np
import pytest

from bayesgmm import BayesianGMM, GaussianMixtureEM, em_to_idata, relabel
from bayesgmm.datasets import load_faithful, make_mixture
from bayesgmm.labels import _permute_idata

METHODS = ("cross_entropy", "stephens")


def _fit(X, K, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = BayesianGMM(K, **kwargs.pop("model", {}))
        return model.fit(X, draws=100, tune=100, chains=2, progressbar=False, **kwargs)


@pytest.fixture(scope="module")
def switching_fit():
    """notebooks/04_label_switching.py's data, small: the two chains settle in different labellings."""
    X = np.array([[0.0], [1.0], [10.0], [11.0], [12.0]])
    idata = _fit(X, 2, model={"covariance_type": "diag", "priors": {"sd_scale": 0.2}}, init="prior",
                 random_seed=1)
    chain_means = idata.posterior["means"].mean("draw").values[..., 0]  # (chain, component)
    if np.argmin(chain_means[0]) == np.argmin(chain_means[1]):
        # Both chains found the same labelling (seed 1 gave different ones): swap the second chain's
        # labels, as a sampler that had settled in the other mode would have.
        n_draw = idata.posterior.sizes["draw"]
        idata = _permute_idata(idata, np.array([[0, 1]] * n_draw + [[1, 0]] * n_draw))
    return X, idata


@pytest.fixture(scope="module")
def scrambled(three_blob_fit):
    """Three well-separated blobs with every draw's labels randomly permuted: switching everywhere."""
    _, idata = three_blob_fit
    n_draws = idata.posterior.sizes["chain"] * idata.posterior.sizes["draw"]
    rng = np.random.default_rng(0)
    return _permute_idata(idata, np.array([rng.permutation(3) for _ in range(n_draws)]))


def _max_rhat(idata):
    return float(az.rhat(idata.posterior[["means"]])["means"].max())


def _consistent(idata):
    """Every draw's component k is nearest (in means) to the posterior-mean component k."""
    means = idata.posterior["means"].transpose("chain", "draw", "component", "feature").values
    means = means.reshape(-1, *means.shape[2:])
    centre = means.mean(axis=0)
    dist = ((means[:, :, None, :] - centre[None, None]) ** 2).sum(-1)  # (S, k, k')
    return bool(np.all(dist.argmin(axis=2) == np.arange(means.shape[1])))


@pytest.mark.parametrize("method", METHODS)
def test_both_methods_undo_real_label_switching(switching_fit, method):
    X, idata = switching_fit
    assert _max_rhat(idata) > 1.1  # the chains disagree about which label is which
    fixed = relabel(idata, method=method)
    means = fixed.posterior["means"].values[..., 0]  # (chain, draw, component)
    assert np.all(means[..., 0] < means[..., 1])  # no draw left switched
    assert _max_rhat(fixed) < 1.05
    fraction = fixed.posterior.attrs["relabel_ambiguous_fraction"]
    flags = fixed.sample_stats["relabel_ambiguous"]
    assert flags.dims == ("chain", "draw") and flags.dtype == bool
    assert fraction == pytest.approx(float(flags.mean()))
    assert fraction < 0.05  # two groups 10 apart: hardly any draw is hard to label
    ratio = fixed.sample_stats["relabel_cost_ratio"].values
    assert np.all((ratio >= 0) & (ratio <= 1))
    assert fixed.posterior.attrs["relabel_method"] == method
    assert "diverging" in fixed.sample_stats  # the sampler's statistics are kept


def test_methods_agree_on_scrambled_draws(three_blob_fit, scrambled):
    _, idata = three_blob_fit
    assert not _consistent(scrambled)
    results = {m: relabel(scrambled, method=m) for m in METHODS}
    for method, fixed in results.items():
        assert _consistent(fixed), method
        assert _max_rhat(fixed) < 1.05
        # Same labels whatever the sampler's order: scrambling the draws changes nothing.
        np.testing.assert_array_equal(fixed.posterior["means"].values,
                                      relabel(idata, method=method).posterior["means"].values)
        assert fixed.posterior.attrs["relabel_ambiguous_fraction"] == 0.0
    np.testing.assert_array_equal(results["stephens"].posterior["means"].values,
                                  results["cross_entropy"].posterior["means"].values)
    assert results["stephens"].posterior.attrs["relabel_iterations"] >= 1


def test_ambiguous_draws_are_flagged_and_compared():
    """K = 3 on two overlapping groups: the spare component makes some draws hard to label."""
    X, _ = make_mixture(80, n_components=2, n_features=2, random_state=1, separation=3)
    idata = _fit(X, 3, random_seed=3)
    out = {m: relabel(idata, method=m) for m in METHODS}
    fractions = {m: r.posterior.attrs["relabel_ambiguous_fraction"] for m, r in out.items()}
    print(f"ambiguous fraction by method: {fractions}")
    assert fractions["cross_entropy"] > 0.05
    for m, fixed in out.items():
        ratio = fixed.sample_stats["relabel_cost_ratio"].values
        # The flag is the ratio against the threshold; a stricter threshold flags fewer draws.
        np.testing.assert_array_equal(fixed.sample_stats["relabel_ambiguous"].values, ratio > 0.5)
        loose = relabel(idata, method=m, ambiguity_threshold=0.2).posterior.attrs["relabel_ambiguous_fraction"]
        strict = relabel(idata, method=m, ambiguity_threshold=0.9).posterior.attrs["relabel_ambiguous_fraction"]
        assert loose >= fractions[m] >= strict
    # Both are permutations of the same draws: label-invariant quantities agree.
    for name in ("weights", "means"):
        np.testing.assert_allclose(np.sort(out["stephens"].posterior[name].values, axis=2).sum(),
                                   np.sort(out["cross_entropy"].posterior[name].values, axis=2).sum())


def test_identical_components_are_a_tie():
    """A draw whose two components coincide can be labelled either way: ratio 1, flagged."""
    means = np.array([[[[0.0], [5.0]], [[2.0], [2.0]], [[5.0], [0.1]]]])  # draw 1: both at 2
    post = {"weights": np.full((1, 3, 2), 0.5), "means": means, "cov": np.ones((1, 3, 2, 1, 1))}
    dims = {"weights": ["component"], "means": ["component", "feature"],
            "cov": ["component", "feature", "feature_bis"]}
    idata = az.from_dict(posterior=post, dims=dims)
    X = np.array([[0.0], [0.3], [4.8], [5.2]])
    for method in METHODS:
        fixed = relabel(idata, method=method, X=X if method == "stephens" else None)
        flags = fixed.sample_stats["relabel_ambiguous"].values[0]
        np.testing.assert_array_equal(flags, [False, True, False])
        assert fixed.sample_stats["relabel_cost_ratio"].values[0, 1] == pytest.approx(1.0)
        assert fixed.posterior.attrs["relabel_ambiguous_fraction"] == pytest.approx(1 / 3)


def test_single_component_and_em_posteriors():
    X = load_faithful().to_numpy()
    one = relabel(em_to_idata(GaussianMixtureEM(1, random_state=0).fit(X), X), method="stephens")
    assert one.sample_stats["relabel_cost_ratio"].values.item() == 0.0
    assert one.posterior.attrs["relabel_ambiguous_fraction"] == 0.0
    two = relabel(em_to_idata(GaussianMixtureEM(2, random_state=0).fit(X), X), method="stephens")
    assert two.posterior.sizes == {"chain": 1, "draw": 1, "component": 2, "feature": 2, "feature_bis": 2}


def test_default_is_unchanged_and_diagnostics_round_trip(three_blob_fit, tmp_path):
    _, idata = three_blob_fit
    default = relabel(idata)
    explicit = relabel(idata, method="cross_entropy")
    for name in idata.posterior.data_vars:
        np.testing.assert_array_equal(default.posterior[name].values, explicit.posterior[name].values)
    assert set(default.posterior.data_vars) == set(idata.posterior.data_vars)
    assert "relabel_ambiguous" not in idata.sample_stats  # the input is not modified
    path = tmp_path / "fit.nc"
    default.to_netcdf(str(path))
    loaded = az.from_netcdf(str(path))
    np.testing.assert_array_equal(loaded.sample_stats["relabel_ambiguous"].values,
                                  default.sample_stats["relabel_ambiguous"].values)
    assert loaded.posterior.attrs["relabel_method"] == "cross_entropy"


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"method": "ecr"}, ValueError, "method"),
        ({"X": np.zeros((3, 2))}, ValueError, "stephens"),
        ({"ambiguity_threshold": 0}, ValueError, "ambiguity_threshold"),
        ({"ambiguity_threshold": 1.5}, ValueError, "ambiguity_threshold"),
        ({"ambiguity_threshold": "high"}, TypeError, "ambiguity_threshold"),
        ({"method": "stephens", "X": np.zeros((3, 5))}, ValueError, "features"),
        ({"method": "stephens", "X": "data.csv"}, TypeError, "X"),
    ],
)
def test_bad_arguments(three_blob_fit, kwargs, error, match):
    _, idata = three_blob_fit
    with pytest.raises(error, match=match):
        relabel(idata, **kwargs)


def test_stephens_needs_the_data():
    X = load_faithful().to_numpy()
    idata = em_to_idata(GaussianMixtureEM(2, random_state=0).fit(X))  # no observed_data
    with pytest.raises(ValueError, match="X is required"):
        relabel(idata, method="stephens")
    assert relabel(idata, method="stephens", X=X).posterior.attrs["relabel_method"] == "stephens"
