import warnings

import arviz as az
import numpy as np
import pymc as pm
import pytest
from scipy.optimize import linear_sum_assignment
from scipy.stats import multivariate_normal

from bayesgmm import BayesianGMM, Priors
from bayesgmm.datasets import make_mixture
from bayesgmm.inference import warn_on_diagnostics


def _match(estimates, truth):
    """Permutation of estimated components that best matches the truth."""
    cost = ((estimates[:, None, :] - truth[None, :, :]) ** 2).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    return rows[np.argsort(cols)]


@pytest.fixture(scope="module")
def small_data():
    X, truth = make_mixture(150, n_components=2, n_features=2, random_state=3, separation=7)
    return X, truth


@pytest.fixture(scope="module")
def nuts_fit(small_data):
    X, _ = small_data
    model = BayesianGMM(2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = model.fit(X, draws=200, tune=200, chains=2, random_seed=11, progressbar=False)
    return model, idata


# ---------------------------------------------------------------- the likelihood
@pytest.mark.parametrize("likelihood", ["kernel", "graph"])
@pytest.mark.parametrize("cov_type", ["full", "diag"])
def test_likelihood_matches_scipy(cov_type, likelihood):
    X, _ = make_mixture(60, n_components=3, n_features=3, random_state=0, separation=3)
    X = X * [1e-2, 1.0, 1e2]  # units must not matter (wider spans defeat scipy's PD check)
    gmm = BayesianGMM(3, covariance_type=cov_type)
    model = gmm.build_model(X, likelihood=likelihood)
    rng = np.random.default_rng(1)
    K, D = 3, 3
    weights = rng.dirichlet(np.ones(K))
    means_z = rng.normal(size=(K, D))
    centre, scale = gmm._scaling["centre"], gmm._scaling["scale"]  # X's mean and sd
    np.testing.assert_allclose(centre, X.mean(0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(scale, X.std(0), rtol=1e-12)
    values = {"weights": weights, "means_z": means_z}
    if cov_type == "full":
        chol_z = np.tril(rng.normal(scale=0.3, size=(K, D, D)), -1) + np.einsum("kd,de->kde",
                                                                            rng.uniform(0.5, 1.5, (K, D)), np.eye(D))
        values["chol_cov_z"] = chol_z[:, *np.tril_indices(D)]
    else:
        sds = rng.uniform(0.5, 1.5, size=(K, D))
        values["sds_z"] = sds
        chol_z = np.stack([np.diag(s) for s in sds])
    fixed = pm.do(model, values)
    ours = fixed.compile_logp(vars=[fixed["obs"]], sum=True)({})
    chol = scale[:, None] * chol_z
    cov = chol @ chol.transpose(0, 2, 1)
    means = centre + scale * means_z
    density = sum(weights[k] * multivariate_normal(means[k], cov[k]).pdf(X) for k in range(K))
    # The model is declared on z = (x - centre) / scale: its log-density lacks the
    # Jacobian -N * sum(log scale), a constant that leaves the posterior unchanged.
    assert ours - X.shape[0] * np.log(scale).sum() == pytest.approx(np.log(density).sum(), rel=1e-9)


def test_model_structure(small_data):
    X, _ = small_data
    model = BayesianGMM(2, priors={"alpha": 0.5}).build_model(X)
    assert set(model.coords) >= {"obs_id", "component", "feature", "feature_bis"}
    assert model.named_vars_to_dims["obs"] == ("obs_id", "feature")
    assert "X" in model.named_vars  # data in pm.Data, so new X can be swapped in
    np.testing.assert_allclose(model["weights"].owner.inputs[-1].eval(), [0.5, 0.5])


# ---------------------------------------------------------------------- NUTS
def test_nuts_recovers_truth(small_data, nuts_fit):
    # The truth *in this sample* (cluster proportions and cluster means) must lie inside
    # the 94% intervals; coverage of the population values is a probabilistic statement,
    # checked over many datasets in test_nuts_interval_coverage (slow).
    X, truth = small_data
    _, idata = nuts_fit
    post = idata.posterior
    order = _match(post["means"].mean(("chain", "draw")).values, truth.means)
    hdi = az.hdi(post[["weights", "means"]], hdi_prob=0.94)
    observed_weights = np.bincount(truth.labels, minlength=2) / len(truth.labels)
    for k_true, k in enumerate(order):
        low, high = hdi["weights"].sel(component=k).values
        assert low <= observed_weights[k_true] <= high
        cluster_mean = X[truth.labels == k_true].mean(axis=0)
        for j in range(2):
            low, high = hdi["means"].sel(component=k).isel(feature=j).values
            assert low <= cluster_mean[j] <= high
            assert abs(truth.means[k_true, j] - post["means"].sel(component=k).isel(feature=j).mean()) < 0.5


@pytest.mark.slow
def test_nuts_interval_coverage():
    hits, total = 0, 0
    for seed in range(12):
        X, truth = make_mixture(200, n_components=2, n_features=2, random_state=100 + seed, separation=6)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            idata = BayesianGMM(2).fit(X, draws=400, tune=400, chains=2, random_seed=seed, progressbar=False)
        post = idata.posterior
        order = _match(post["means"].mean(("chain", "draw")).values, truth.means)
        hdi = az.hdi(post["means"], hdi_prob=0.94)["means"].values  # (K, D, 2)
        inside = (hdi[order, :, 0] <= truth.means) & (truth.means <= hdi[order, :, 1])
        hits += inside.sum()
        total += inside.size
    assert hits / total >= 0.85  # nominal 0.94; 48 intervals


def test_result_groups_and_dims(nuts_fit, small_data):
    X, _ = small_data
    _, idata = nuts_fit
    assert {"posterior", "sample_stats", "observed_data", "log_likelihood"} <= set(idata.groups())
    assert idata.log_likelihood["obs"].dims == ("chain", "draw", "obs_id")
    post = idata.posterior
    assert post["means"].dims == ("chain", "draw", "component", "feature")
    assert post["cov"].dims == ("chain", "draw", "component", "feature", "feature_bis")
    for name in ("weights", "stds", "corr", "chol"):
        assert name in post
    np.testing.assert_allclose(post["weights"].sum("component"), 1.0)
    np.testing.assert_allclose(np.diagonal(post["corr"].values, axis1=-2, axis2=-1), 1.0)
    np.testing.assert_allclose(idata.observed_data["obs"].values, X)


def test_loo_and_summary_work_out_of_the_box(nuts_fit):
    _, idata = nuts_fit
    loo = az.loo(idata)
    assert np.isfinite(loo.elpd_loo)
    summary = az.summary(idata, var_names=["weights", "means"])
    assert {"mean", "r_hat", "ess_bulk"} <= set(summary.columns)


def test_same_seed_same_draws(small_data, nuts_fit):
    X, _ = small_data
    _, first = nuts_fit
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        again = BayesianGMM(2).fit(X, draws=200, tune=200, chains=2, random_seed=11, progressbar=False)
    np.testing.assert_array_equal(first.posterior["means"].values, again.posterior["means"].values)


# ------------------------------------------------------------------ save / load
def test_save_load_round_trip(nuts_fit, tmp_path):
    model, idata = nuts_fit
    path = tmp_path / "fit.nc"
    model.save(path)
    loaded = BayesianGMM.load(path, n_components=2, covariance_type="full")
    assert loaded.config == model.config
    a = az.summary(idata, var_names=["weights", "means"])
    b = az.summary(loaded.idata_, var_names=["weights", "means"])
    assert a.equals(b)


def test_load_refuses_mismatch_and_tampering(nuts_fit, tmp_path):
    model, _ = nuts_fit
    path = tmp_path / "fit.nc"
    model.save(path)
    with pytest.raises(ValueError, match="n_components: file has 2, expected 3"):
        BayesianGMM.load(path, n_components=3)
    with pytest.raises(ValueError, match="priors"):
        BayesianGMM.load(path, priors={"eta": 5.0})
    loaded = az.from_netcdf(path)
    loaded.attrs["bayesgmm_config"] = loaded.attrs["bayesgmm_config"].replace('"n_components": 2', '"n_components": 3')
    loaded.to_netcdf(str(tmp_path / "tampered.nc"))
    with pytest.raises(ValueError, match="checksum"):
        BayesianGMM.load(tmp_path / "tampered.nc")
    az.from_dict(posterior={"a": np.zeros((1, 5))}).to_netcdf(str(tmp_path / "other.nc"))
    with pytest.raises(ValueError, match="not written by BayesianGMM"):
        BayesianGMM.load(tmp_path / "other.nc")


# ---------------------------------------------------------------------- ADVI
def test_advi_recovers_means_and_keeps_history():
    X, truth = make_mixture(3000, n_components=3, n_features=2, random_state=5, separation=8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = BayesianGMM(3, covariance_type="diag").fit(X, method="advi", draws=200, random_seed=0,
                                                          progressbar=False)
    means = idata.posterior["means"].mean(("chain", "draw")).values
    order = _match(means, truth.means)
    np.testing.assert_allclose(means[order], truth.means, atol=0.15)
    history = idata.fit_history
    assert history["loss"].dims == ("iteration",)
    assert history.attrs["converged"] == 1
    assert idata.log_likelihood["obs"].shape[-1] == 3000


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "X, kwargs, match",
    [
        (np.array([[0.0, np.nan]] * 5), {}, "NaN"),
        (np.array([[0.0, np.inf]] * 5), {}, "infinity"),
        (np.arange(10.0), {}, "2D"),
        (np.random.default_rng(0).normal(size=(3, 2)), {"K": 4}, "n_samples >= n_components"),
        (np.random.default_rng(0).normal(size=(20, 2)), {"method": "gibbs"}, "method"),
        (np.random.default_rng(0).normal(size=(20, 2)), {"sampler": "stan"}, "sampler"),
        (np.random.default_rng(0).normal(size=(20, 2)), {"init": "kmeans"}, "init"),
        (np.random.default_rng(0).normal(size=(20, 2)), {"draws": 0}, "draws"),
        (np.random.default_rng(0).normal(size=(20, 2)), {"mass_matrix": "dense"}, "mass_matrix"),
        (np.random.default_rng(0).normal(size=(20, 2)), {"warmup_start": "map"}, "warmup_start"),
        (np.column_stack([np.arange(20.0), np.ones(20)]), {}, "constant"),
    ],
)
def test_bad_input_fails_before_compiling(X, kwargs, match, monkeypatch):
    def no_build(*args, **kw):  # pragma: no cover - reaching it is the failure
        raise AssertionError("model was built before the input was validated")

    monkeypatch.setattr(BayesianGMM, "build_model", no_build)
    K = kwargs.pop("K", 2)
    with pytest.raises(ValueError, match=match):
        BayesianGMM(K).fit(X, progressbar=False, **kwargs)


def test_missing_backend_is_a_clear_error(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "numpyro" else real(name, *a))
    with pytest.raises(ImportError, match="numpyro"):
        BayesianGMM(2, covariance_type="diag").fit(np.random.default_rng(0).normal(size=(20, 2)), sampler="numpyro")


def test_numpyro_starts_from_our_jittered_em_start_only(monkeypatch):
    """PyMC's JAX path would jitter the start again by up to one data sd: the cause of wrong modes."""
    from bayesgmm import inference

    seen = {}

    def fake_sample(**kwargs):
        seen.update(kwargs)
        raise RuntimeError("stop")

    monkeypatch.setattr(inference, "check_sampler", lambda sampler: None)
    monkeypatch.setattr(pm, "sample", fake_sample)
    with pytest.raises(RuntimeError, match="stop"):
        BayesianGMM(2).fit(make_mixture(60, 2, 2, random_state=0)[0], sampler="numpyro", chains=2, random_seed=0)
    assert seen["nuts_sampler"] == "numpyro" and seen["nuts_sampler_kwargs"]["jitter"] is False
    assert len(seen["initvals"]) == 2


@pytest.mark.parametrize("covariance_type", ["full", "tied"])
def test_numpyro_agrees_with_pymc_on_full_and_tied(covariance_type):
    pytest.importorskip("numpyro")
    from bayesgmm import relabel

    X, truth = make_mixture(300, 3, 2, random_state=0, separation=8)
    posts = []
    for sampler in ("pymc", "numpyro"):
        idata = BayesianGMM(3, covariance_type=covariance_type).fit(
            X, sampler=sampler, draws=300, tune=300, chains=2, random_seed=1, progressbar=False)
        posts.append(relabel(idata, reference=truth.means).posterior)
    for name in ("weights", "means", "stds"):
        mean = [p[name].mean(("chain", "draw")).values for p in posts]
        sd = [p[name].std(("chain", "draw")).values for p in posts]
        assert np.all(np.abs(mean[1] - mean[0]) <= 0.5 * sd[0]), name
        assert np.all((sd[1] / sd[0] > 0.5) & (sd[1] / sd[0] < 2)), name


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"covariance_type": "tri"}, ValueError, "covariance_type.*'full', 'diag', 'tied', 'spherical'"),
        ({"priors": {"etaa": 2}}, ValueError, "Unknown prior"),
        ({"priors": {"eta": -1}}, ValueError, "eta"),
        ({"priors": {"alpha": [1, 1, 1]}}, ValueError, "alpha"),
        ({"priors": "flat"}, TypeError, "priors"),
    ],
)
def test_bad_config(kwargs, error, match):
    with pytest.raises(error, match=match):
        BayesianGMM(2, **kwargs)


def test_priors_merge_over_defaults():
    priors = Priors.from_config({"alpha": 0.3})
    assert priors.eta == Priors().eta and priors.alpha == 0.3
    assert priors.alpha_vector(4).tolist() == [0.3] * 4


def test_diagnostic_warnings_say_what_to_do():
    rng = np.random.default_rng(0)
    idata = az.from_dict(
        posterior={
            "weights": rng.dirichlet([1, 1], size=(2, 50)),
            "means": np.stack([rng.normal(0, 1, (50, 2, 2)), rng.normal(5, 1, (50, 2, 2))]),
        },
        sample_stats={"diverging": np.r_[np.ones(3), np.zeros(97)].reshape(2, 50).astype(bool)},
        dims={"weights": ["component"], "means": ["component", "feature"]},
    )
    with pytest.warns(UserWarning) as record:
        warn_on_diagnostics(idata)
    messages = " ".join(str(w.message) for w in record)
    assert "3 divergent transitions" in messages and "target_accept" in messages
    assert "R-hat" in messages and "relabel" in messages


def test_latents_have_static_shapes_for_jax():
    # The JAX backend (sampler="numpyro") cannot differentiate through dynamic shapes.
    model = BayesianGMM(3).build_model(np.random.default_rng(0).normal(size=(30, 2)))
    assert model.rvs_to_values[model["chol_cov_z"]].type.shape == (3, 3)


def test_graph_likelihood_compiles_with_jax():
    pytest.importorskip("jax")
    X = np.random.default_rng(0).normal(size=(30, 2))
    model = BayesianGMM(2).build_model(X, likelihood="graph")
    point = model.initial_point()
    reference = model.compile_dlogp()(point)
    np.testing.assert_allclose(model.compile_dlogp(mode="JAX")(point), reference, rtol=1e-8, atol=1e-10)


def test_fit_starts_from_a_fitted_em_without_refitting(monkeypatch):
    """init=<fitted GaussianMixtureEM>: the start is that fit moved to the standardised scale, EM is not refitted."""
    from bayesgmm import GaussianMixtureEM, inference
    from bayesgmm.datasets import load_faithful

    X = load_faithful().to_numpy()[:120]
    em = GaussianMixtureEM(2, random_state=0).fit(X)
    monkeypatch.setattr(inference, "em_start", lambda *a, **k: pytest.fail("EM was fitted again"))
    gmm = BayesianGMM(2, covariance_type="diag")
    gmm.fit(X, draws=20, tune=20, chains=1, random_seed=1, progressbar=False, init=em)
    assert gmm.em_ is em
    data = gmm._prepare(X)
    start = inference.fitted_em_start(gmm.spec, em, data)
    order = np.argsort(em.means_[:, 0])
    np.testing.assert_allclose(start["means_z"], (em.means_[order] - data.centre) / data.scale)
    assert data.rounded  # Old Faithful's values are rounded: the start is the latent, EM's less the rounding error
    np.testing.assert_allclose(start["sds_z"] ** 2, np.diagonal(em.full_covariances_[order], axis1=1, axis2=2)
                               / data.scale**2 - data.noise_variance_z)
    with pytest.raises(ValueError, match="n_components=3"):
        BayesianGMM(3).fit(X, init=em, draws=5, tune=5, chains=1)
    with pytest.raises(ValueError, match="not been fitted"):
        BayesianGMM(2).fit(X, init=GaussianMixtureEM(2))
    with pytest.raises(TypeError, match="init must be"):
        BayesianGMM(2).fit(X, init=3)
