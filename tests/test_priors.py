"""The generative prior option: Priors(location=..., scale=...) and BayesianGMM.sample_prior_predictive."""

import warnings

import numpy as np
import pytest
from scipy import stats

from bayesgmm import BayesianGMM, Priors


# --------------------------------------------------------------------------- checks
@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"location": np.nan}, ValueError, r"priors\['location'\].*finite"),
        ({"location": [0.0, np.inf]}, ValueError, r"priors\['location'\]"),
        ({"location": []}, ValueError, r"priors\['location'\].*empty"),
        ({"location": [[0.0, 1.0]]}, ValueError, r"priors\['location'\].*1-D"),
        ({"location": "0"}, TypeError, r"priors\['location'\]"),
        ({"location": [0.0, None]}, TypeError, r"priors\['location'\]"),
        ({"location": True}, TypeError, r"priors\['location'\]"),
        ({"scale": 0}, ValueError, r"priors\['scale'\].*positive"),
        ({"scale": [1.0, -2.0]}, ValueError, r"priors\['scale'\].*positive"),
        ({"scale": np.nan}, ValueError, r"priors\['scale'\]"),
        ({"scale": 1e-200}, ValueError, r"priors\['scale'\].*1e-152"),
        ({"scale": [1.0, "2"]}, TypeError, r"priors\['scale'\]"),
    ],
)
def test_location_and_scale_are_checked(kwargs, error, match):
    with pytest.raises(error, match=match):
        Priors(**kwargs)
    with pytest.raises(error, match=match):
        BayesianGMM(2, priors=kwargs)


def test_location_and_scale_are_normalised_and_serialised():
    priors = Priors.from_config({"location": np.array([1, 2]), "scale": np.float32(3.0)})
    assert priors.location == (1.0, 2.0) and priors.scale == 3.0 and priors.generative
    assert priors.location_vector(2).tolist() == [1.0, 2.0]
    assert priors.scale_vector(3).tolist() == [3.0, 3.0, 3.0]
    assert priors.to_dict()["location"] == [1.0, 2.0]
    assert Priors.from_config(priors.to_dict()) == priors
    assert not Priors().generative and not Priors(location=0.0).generative
    assert Priors().location_vector(2) is None
    with pytest.raises(ValueError, match=r"priors\['location'\] has 2 values but the data have 3"):
        priors.location_vector(3)


# ---------------------------------------------------------------------- the model
def test_fixed_location_and_scale_replace_the_data_scaling():
    X = np.random.default_rng(0).normal([5.0, -3.0], [2.0, 0.5], size=(40, 2))
    gmm = BayesianGMM(2, priors={"location": [4.0, -2.0], "scale": [1.0, 0.25]})
    model = gmm.build_model(X)
    np.testing.assert_array_equal(gmm._scaling["centre"], [4.0, -2.0])
    np.testing.assert_array_equal(gmm._scaling["scale"], [1.0, 0.25])
    np.testing.assert_allclose(model["X"].get_value(), (X - [4.0, -2.0]) / [1.0, 0.25], rtol=1e-12)
    # Only one of them fixed: the other is the data's.
    gmm = BayesianGMM(2, priors={"scale": 2.0})
    gmm.build_model(X)
    np.testing.assert_allclose(gmm._scaling["centre"], X.mean(0), rtol=1e-12)
    np.testing.assert_array_equal(gmm._scaling["scale"], [2.0, 2.0])


def test_wrong_number_of_values_is_refused_before_fitting():
    X = np.random.default_rng(0).normal(size=(30, 3))
    gmm = BayesianGMM(2, priors={"location": [0.0, 0.0], "scale": 1.0})
    with pytest.raises(ValueError, match=r"priors\['location'\] has 2 values but the data have 3"):
        gmm.fit(X, draws=5, tune=5, chains=1, progressbar=False)
    with pytest.raises(ValueError, match=r"priors\['location'\] has 2 values"):
        gmm.build_model(X)


def test_data_far_from_a_fixed_prior_warns():
    X = np.random.default_rng(0).normal(1e4, 1e3, size=(30, 1))
    with pytest.warns(UserWarning, match="far outside the prior.*units"):
        BayesianGMM(2, priors={"location": 0.0, "scale": 1.0}).build_model(X)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        BayesianGMM(2, priors={"location": 1e4, "scale": 1e3}).build_model(X)


def test_fixed_prior_is_kept_by_save_and_load(tmp_path):
    X = np.random.default_rng(1).normal([0.0, 10.0], [1.0, 3.0], size=(40, 2))
    priors = {"location": [0.0, 10.0], "scale": [1.0, 3.0]}
    gmm = BayesianGMM(2, covariance_type="diag", priors=priors)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = gmm.fit(X, draws=20, tune=20, chains=1, random_seed=0, progressbar=False)
    assert idata.attrs["data_centre"] == [0.0, 10.0] and idata.attrs["data_scale"] == [1.0, 3.0]
    path = tmp_path / "fit.nc"
    gmm.save(path)
    loaded = BayesianGMM.load(path)
    assert loaded.priors == gmm.priors and loaded.priors.location == (0.0, 10.0)
    assert loaded.config == gmm.config
    np.testing.assert_array_equal(loaded._scaling["centre"], [0.0, 10.0])
    np.testing.assert_array_equal(loaded._scaling["scale"], [1.0, 3.0])
    BayesianGMM.load(path, priors=priors)  # the expected config matches
    with pytest.raises(ValueError, match="different model.*priors"):
        BayesianGMM.load(path, priors={"location": [0.0, 11.0], "scale": [1.0, 3.0]})
    with pytest.raises(ValueError, match="different model.*priors"):
        BayesianGMM.load(path, priors={})  # the default (data-derived) prior is another model


# -------------------------------------------------------------------- prior draws
def test_sample_prior_predictive_needs_a_generative_prior():
    with pytest.raises(ValueError, match="needs a generative prior.*location.*scale"):
        BayesianGMM(2).sample_prior_predictive(10, n_features=1)
    with pytest.raises(ValueError, match=r"needs a generative prior.*\['scale'\]"):
        BayesianGMM(2, priors={"location": 0.0}).sample_prior_predictive(10, n_features=1)
    gmm = BayesianGMM(2, priors={"location": 0.0, "scale": 1.0})
    with pytest.raises(ValueError, match="pass n_features"):
        gmm.sample_prior_predictive(10)
    with pytest.raises(ValueError, match="n_samples"):
        gmm.sample_prior_predictive(0, n_features=1)
    with pytest.raises(ValueError, match="different lengths"):
        BayesianGMM(2, priors={"location": [0.0, 1.0], "scale": [1.0]}).sample_prior_predictive(5)
    with pytest.raises(ValueError, match="does not match"):
        BayesianGMM(2, priors={"location": [0.0, 1.0], "scale": 1.0}).sample_prior_predictive(5, n_features=3)


@pytest.mark.parametrize("cov_type", ["full", "diag"])
def test_sample_prior_predictive_shapes_seed_and_units(cov_type):
    unit = BayesianGMM(3, cov_type, priors={"location": 0.0, "scale": 1.0})
    draw = unit.sample_prior_predictive(200, n_features=2, random_seed=5)
    assert draw["X"].shape == (200, 2) and draw["labels"].shape == (200,)
    assert draw["weights"].shape == (3,) and draw["means"].shape == (3, 2) and draw["covariances"].shape == (3, 2, 2)
    assert draw["weights"].sum() == pytest.approx(1.0)
    assert np.all(np.linalg.eigvalsh(draw["covariances"]) > 0)
    if cov_type == "diag":
        assert np.all(draw["covariances"][:, 0, 1] == 0)
    again = unit.sample_prior_predictive(200, n_features=2, random_seed=5)
    np.testing.assert_array_equal(draw["X"], again["X"])
    # In other units: x = location + scale * z, exactly, for the same seed.
    loc, scale = np.array([10.0, -5.0]), np.array([2.0, 0.1])
    other = BayesianGMM(3, cov_type, priors={"location": loc, "scale": scale}).sample_prior_predictive(
        200, random_seed=5)
    np.testing.assert_allclose(other["X"], loc + scale * draw["X"], rtol=1e-12)
    np.testing.assert_allclose(other["means"], loc + scale * draw["means"], rtol=1e-12)
    np.testing.assert_allclose(other["covariances"], np.outer(scale, scale) * draw["covariances"], rtol=1e-12,
                               atol=1e-300)
    np.testing.assert_array_equal(other["labels"], draw["labels"])


def test_ordered_prior_draws_are_sorted():
    gmm = BayesianGMM(3, priors={"location": 0.0, "scale": 1.0}, ordered=1)
    for seed in range(5):
        means = gmm.sample_prior_predictive(5, n_features=2, random_seed=seed)["means"]
        assert np.all(np.diff(means[:, 1]) > 0)


@pytest.mark.parametrize("cov_type", ["full", "diag"])
def test_prior_draws_follow_the_pymc_model(cov_type):
    """The NumPy prior draws have the distribution the PyMC model declares."""
    import pymc as pm

    priors = {"location": 0.0, "scale": 1.0, "alpha": 0.7, "eta": 3.0, "mean_scale": 1.5, "sd_scale": 0.8}
    gmm = BayesianGMM(2, cov_type, priors=priors)
    model = gmm.build_model(np.random.default_rng(0).normal(size=(10, 2)))
    names = ["weights", "means_z", "chol_cov_z" if cov_type == "full" else "sds_z"]
    n = 1500
    with model, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prior = pm.sample_prior_predictive(draws=n, var_names=names, random_seed=1).prior
    theirs_w = prior["weights"].values[0, :, 0]
    theirs_mu = prior["means_z"].values[0, :, 0, 0]
    if cov_type == "full":
        packed = prior["chol_cov_z"].values[0, :, 0]  # component 0: L00, L10, L11
        theirs_sd0 = np.abs(packed[:, 0])
        theirs_sd1 = np.hypot(packed[:, 1], packed[:, 2])
        theirs_corr = packed[:, 1] / theirs_sd1
    else:
        theirs_sd0, theirs_sd1 = prior["sds_z"].values[0, :, 0, 0], prior["sds_z"].values[0, :, 0, 1]
    draws = [gmm.sample_prior_predictive(1, n_features=2, random_seed=s) for s in range(n)]
    ours_w = np.array([d["weights"][0] for d in draws])
    ours_mu = np.array([d["means"][0, 0] for d in draws])
    cov = np.array([d["covariances"][0] for d in draws])
    ours_sd0, ours_sd1 = np.sqrt(cov[:, 0, 0]), np.sqrt(cov[:, 1, 1])
    pairs = [(ours_w, theirs_w), (ours_mu, theirs_mu), (ours_sd0, theirs_sd0), (ours_sd1, theirs_sd1)]
    if cov_type == "full":
        pairs.append((cov[:, 0, 1] / (ours_sd0 * ours_sd1), theirs_corr))
    for ours, theirs in pairs:
        assert stats.ks_2samp(ours, theirs).pvalue > 1e-3
    # And the draws match the priors' own scales.
    assert np.std(ours_mu) == pytest.approx(1.5, rel=0.1)
    assert np.mean(ours_w) == pytest.approx(0.5, abs=0.03)
