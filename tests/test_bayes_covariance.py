"""The four covariance types of BayesianGMM: the model's density, recovery, scale invariance, layout.

Tiny data and few draws: every NUTS fit here takes a few seconds.
"""

import warnings

import numpy as np
import pymc as pm
import pytest
from scipy import stats
from scipy.optimize import linear_sum_assignment

from bayesgmm import BayesianGMM, GaussianMixtureEM, em_to_idata
from bayesgmm._posterior import parameters_dataset
from bayesgmm.bayes_covariance import BAYES_COVARIANCE_TYPES, get_bayes_covariance
from bayesgmm.datasets import make_mixture
from bayesgmm.fit_settings import FIT_DEFAULTS, fit_settings
from bayesgmm.pipeline import PreparedData, prepare_data

COV_TYPES = ["full", "diag", "tied", "spherical"]


def _match(estimates, truth):
    cost = ((estimates[:, None, :] - truth[None, :, :]) ** 2).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    return rows[np.argsort(cols)]


def _random_chol(rng, D, size=()):
    L = np.tril(rng.normal(scale=0.3, size=size + (D, D)), -1)
    return L + rng.uniform(0.5, 1.5, size + (D,))[..., None] * np.eye(D)


def _lkj_logp(packed, eta, D, sd_scale):
    """PyMC's own LKJCholeskyCov log-density, with its normaliser's sign corrected (see test_lkj)."""
    from pymc.distributions.multivariate import _lkj_normalizing_constant

    dist = pm.LKJCholeskyCov.dist(n=D, eta=eta, sd_dist=pm.HalfNormal.dist(sd_scale, shape=D), compute_corr=False)
    offset = -2 * float(_lkj_normalizing_constant(eta, D).eval()) if D > 1 else 0.0
    return float(pm.logp(dist, packed).eval()) + offset


def _random_latent(cov_type, rng, K, D):
    """A random value of the covariance latent and the (K, D, D) covariances it stands for."""
    if cov_type == "full":
        L = _random_chol(rng, D, (K,))
        return L[:, *np.tril_indices(D)], L @ L.transpose(0, 2, 1)
    if cov_type == "tied":
        L = _random_chol(rng, D)
        return L[np.tril_indices(D)], np.broadcast_to(L @ L.T, (K, D, D))
    if cov_type == "diag":
        sds = rng.uniform(0.5, 1.5, (K, D))
        return sds, np.stack([np.diag(s**2) for s in sds])
    sd = rng.uniform(0.5, 1.5, K)
    return sd, np.stack([s**2 * np.eye(D) for s in sd])


def _covariance_prior_logp(cov_type, value, priors, D):
    if cov_type == "full":
        return sum(_lkj_logp(v, priors.eta, D, priors.sd_scale) for v in value)
    if cov_type == "tied":
        return _lkj_logp(value, priors.eta, D, priors.sd_scale)
    return stats.halfnorm.logpdf(value, scale=priors.sd_scale).sum()  # diag and spherical: HalfNormal sds


# ------------------------------------------------------------- the model density
@pytest.mark.parametrize("likelihood", ["kernel", "graph"])
@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_model_logp_is_scipy_mixture_plus_priors(cov_type, likelihood):
    X, _ = make_mixture(50, n_components=3, n_features=3, random_state=1, separation=3)
    X = X * [1e-3, 1.0, 1e3]
    gmm = BayesianGMM(3, covariance_type=cov_type, priors={"alpha": [1.0, 2.0, 0.5], "eta": 1.7,
                                                            "mean_scale": 1.5, "sd_scale": 0.8})
    model = gmm.build_model(X, likelihood=likelihood)
    data = gmm.prepare(X)
    priors, K, D = gmm.priors, 3, 3
    for seed in range(3):
        rng = np.random.default_rng(seed)
        weights = rng.dirichlet(np.ones(K))
        means_z = rng.normal(size=(K, D))
        latent, cov_z = _random_latent(cov_type, rng, K, D)
        name = get_bayes_covariance(cov_type).latent
        for var, value in (("weights", weights), ("means_z", means_z), (name, latent)):
            model.set_initval(model[var], value)
        point = model.initial_point()  # the values above on the free (transformed) scale
        ours = model.compile_logp(jacobian=False)(point)
        mixture = sum(weights[k] * stats.multivariate_normal(means_z[k], cov_z[k]).pdf(data.Z) for k in range(K))
        expected = (np.log(mixture).sum()
                    + stats.dirichlet.logpdf(weights, priors.alpha_vector(K))
                    + stats.norm.logpdf(means_z, 0.0, priors.mean_scale).sum()
                    + _covariance_prior_logp(cov_type, latent, priors, D))
        assert ours == pytest.approx(expected, rel=1e-9, abs=1e-8)


@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_strategy_shapes_and_counts(cov_type):
    cov = get_bayes_covariance(cov_type)
    K, D = 3, 2
    model = BayesianGMM(K, covariance_type=cov_type).build_model(np.random.default_rng(0).normal(size=(30, D)))
    assert model.named_vars_to_dims[cov.latent] == cov.dims
    value = model.initial_point()[f"{cov.latent}_log__" if cov_type in ("diag", "spherical")
                                  else f"{cov.latent}_batched-cholesky-cov-packed__"]
    assert value.size == cov.n_parameters(K, D)
    rng = np.random.default_rng(1)
    latent, cov_z = _random_latent(cov_type, rng, K, D)
    chol = cov.cholesky(latent[None, None], K, D)
    assert chol.shape == (1, 1, K, D, D)
    np.testing.assert_allclose(chol[0, 0] @ chol[0, 0].transpose(0, 2, 1), cov_z, rtol=1e-12)
    np.testing.assert_allclose(cov.start(np.asarray(cov_z), np.full(K, 1 / K)), latent, rtol=1e-12)
    assert cov.jitter(latent, rng).shape == np.shape(latent)
    assert cov.draw_prior(rng, BayesianGMM(K).priors, K, D).shape == (K, D, D)


def test_unknown_covariance_type_lists_the_four():
    with pytest.raises(ValueError, match=r"covariance_type must be one of \['full', 'diag', 'tied', 'spherical'\]"):
        BayesianGMM(2, covariance_type="banded")
    with pytest.raises(ValueError, match="'full', 'diag', 'tied', 'spherical'"):
        get_bayes_covariance("banded")
    assert list(BAYES_COVARIANCE_TYPES) == COV_TYPES


# ------------------------------------------------------------------- NUTS fits
@pytest.fixture(scope="module", params=["tied", "spherical"])
def small_fit(request):
    cov_type = request.param
    X, truth = make_mixture(150, n_components=2, n_features=2, covariance_type=cov_type, random_state=3,
                            separation=7)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        idata = BayesianGMM(2, covariance_type=cov_type).fit(X, draws=200, tune=200, chains=2, random_seed=11,
                                                             progressbar=False)
    return cov_type, X, truth, idata


def test_nuts_recovers_truth_for_tied_and_spherical(small_fit):
    cov_type, X, truth, idata = small_fit
    post = idata.posterior
    means = post["means"].mean(("chain", "draw")).values
    sds = post["means"].std(("chain", "draw")).values
    order = _match(means, truth.means)
    assert np.all(np.abs(means[order] - truth.means) < 4 * sds[order] + 0.05)
    # the uniform layout: per-component cov, chol, stds (tied: the same matrix repeated)
    assert post["cov"].dims == ("chain", "draw", "component", "feature", "feature_bis")
    cov = post["cov"].values
    np.testing.assert_allclose(post["chol"].values @ np.swapaxes(post["chol"].values, -1, -2), cov, rtol=1e-10)
    if cov_type == "tied":
        np.testing.assert_array_equal(cov[:, :, 0], cov[:, :, 1])
        assert "corr" in post
    else:
        assert "corr" not in post
        scale = np.asarray(idata.attrs["data_scale"])
        ratio = np.diagonal(cov, axis1=-2, axis2=-1) / scale**2  # sigma_k^2 for every feature
        np.testing.assert_allclose(ratio[..., 0], ratio[..., 1], rtol=1e-10)
    assert idata.attrs["covariance_type"] == cov_type
    assert np.isfinite(idata.log_likelihood["obs"].values).all()


def test_relabel_and_summary_work_on_tied_and_spherical_fits(small_fit):
    from bayesgmm.labels import relabel
    from bayesgmm.summaries import summary

    cov_type, X, truth, idata = small_fit
    relabelled = relabel(idata)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # 400 draws: ESS notes
        table = summary(relabelled)
    assert table["means"].sizes["component"] == 2
    assert {"weights", "means", "stds"} <= set(table.data_vars)
    assert ("corr" in table.data_vars) == (cov_type == "tied")
    order = _match(table["means"].sel(metric="mean").values, truth.means)
    np.testing.assert_allclose(table["means"].sel(metric="mean").values[order], truth.means, atol=0.5)


@pytest.mark.parametrize("cov_type", ["tied", "spherical"])
def test_same_standardised_posterior_in_any_units(cov_type):
    X, _ = make_mixture(40, n_components=2, n_features=2, covariance_type=cov_type, random_state=0, separation=6)
    latent = get_bayes_covariance(cov_type).latent
    fits = []
    for factor in (np.ones(2), np.array([1e-100, 1e100])):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            fits.append(BayesianGMM(2, covariance_type=cov_type).fit(X * factor, draws=30, tune=30, chains=1,
                                                                     random_seed=4, progressbar=False))
    base, scaled = fits
    for name in ("weights", "means_z", latent):
        np.testing.assert_allclose(scaled.posterior[name].values, base.posterior[name].values, rtol=0, atol=1e-5)
    factor = np.array([1e-100, 1e100])
    np.testing.assert_allclose(scaled.posterior["cov"].values / np.outer(factor, factor),
                               base.posterior["cov"].values, rtol=1e-4, atol=1e-8)


# ------------------------------------------------------------------- starts
@pytest.mark.parametrize("cov_type", ["tied", "spherical"])
def test_start_from_an_em_fit_of_another_type(cov_type):
    from bayesgmm import inference

    X, _ = make_mixture(80, n_components=2, n_features=2, random_state=2, separation=6)
    em = GaussianMixtureEM(2, random_state=0).fit(X)  # full
    gmm = BayesianGMM(2, covariance_type=cov_type)
    data = gmm.prepare(X)
    start = inference.fitted_em_start(gmm.spec, em, data)
    cov_z = em.full_covariances_ / np.outer(data.scale, data.scale)
    order = np.argsort(em.means_[:, 0])
    if cov_type == "tied":
        w = start["weights"]
        L = np.zeros((2, 2))
        L[np.tril_indices(2)] = start["chol_cov_z"]
        np.testing.assert_allclose(L @ L.T, np.einsum("k,kde->de", w, cov_z[order]), rtol=1e-10)
    else:
        np.testing.assert_allclose(start["sd_z"] ** 2, np.diagonal(cov_z[order], axis1=1, axis2=2).mean(1))
    initvals, fitted = inference.em_start(gmm.spec, data, random_seed=0)
    assert fitted.covariance_type == cov_type and set(initvals) == {"weights", "means_z", gmm.spec.covariance.latent}


# -------------------------------------------------------------- prior draws
def test_prior_predictive_for_tied_and_spherical():
    priors = {"location": [0.0, 10.0], "scale": [1.0, 5.0]}
    tied = BayesianGMM(3, covariance_type="tied", priors=priors).sample_prior_predictive(50, random_seed=0)
    np.testing.assert_array_equal(tied["covariances"][0], tied["covariances"][2])
    spherical = BayesianGMM(3, covariance_type="spherical", priors=priors).sample_prior_predictive(50, random_seed=0)
    cov = spherical["covariances"]
    variances = np.diagonal(cov, axis1=1, axis2=2) / [1.0, 25.0]  # sigma_k^2 on the standardised scale
    np.testing.assert_allclose(variances[:, 0], variances[:, 1], rtol=1e-12)
    assert np.all(cov[:, 0, 1] == 0)
    assert tied["X"].shape == spherical["X"].shape == (50, 2)


# ---------------------------------------------------------- settings, layout
def test_fit_settings_merge_and_check():
    # The "auto" defaults are resolved for the sampler (PyMC's here: tests/conftest.py pins it).
    assert fit_settings() == {**FIT_DEFAULTS, "sampler": "pymc", "draws": 1000, "tune": 1000, "chains": 2}
    settings = fit_settings({"draws": 10, "chains": 3}, chains=4, target_accept=0.9)
    assert (settings["draws"], settings["chains"], settings["target_accept"]) == (10, 4, 0.9)
    with pytest.raises(TypeError, match="bogus"):
        fit_settings(bogus=1)
    with pytest.raises(ValueError, match="draws"):
        fit_settings(draws=0)
    with pytest.raises(TypeError, match="apply only to method='nuts'"):
        fit_settings(method="advi", target_accept=0.9)


def test_prepared_data_is_accepted_and_em_to_idata_uses_the_one_layout():
    X, _ = make_mixture(60, n_components=2, n_features=2, random_state=0, separation=6)
    data = prepare_data(X, n_components=2)
    assert isinstance(data, PreparedData) and BayesianGMM(2).prepare(data) is data
    em = GaussianMixtureEM(2, random_state=0).fit(X)
    idata = em_to_idata(em, X)
    cov = em.full_covariances_
    direct = parameters_dataset(em.weights_[None, None], em.means_[None, None],
                                np.linalg.cholesky(cov)[None, None], [0, 1])
    for name in ("weights", "means", "stds", "cov", "chol", "corr"):
        np.testing.assert_allclose(idata.posterior[name].values, direct[name].values)
    np.testing.assert_allclose(idata.posterior["cov"].values[0, 0], cov, rtol=1e-12)


def test_quiet_fits_print_nothing_and_no_full_adapt_warning(capfd):
    X, _ = make_mixture(40, n_components=2, n_features=2, random_state=0, separation=6)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        BayesianGMM(2, covariance_type="diag").fit(X, method="advi", draws=10, n_iterations=200, random_seed=0,
                                                   progressbar=False)
        BayesianGMM(2).fit(X, draws=10, tune=10, chains=1, random_seed=0, progressbar=False, mass_matrix="full")
    assert not [w for w in record if "QuadPotentialFullAdapt" in str(w.message)]
    captured = capfd.readouterr()
    assert "Finished" not in captured.err + captured.out
    assert "Interrupted" not in captured.err + captured.out
    assert "QuadPotentialFullAdapt" not in captured.err
