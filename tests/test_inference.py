"""NUTS set-up: the on-disk cache of the compiled log-density, the Laplace mass matrix, adaptation choice."""

import warnings
from pathlib import Path

import numpy as np
import pytest
from pymc.blocking import DictToArrayBijection

from bayesgmm import BayesianGMM, _compile_cache
from bayesgmm.datasets import make_mixture
from bayesgmm.inference import laplace_covariance, nuts_adaptation


@pytest.fixture
def cache_in_tmp(tmp_path, monkeypatch):
    monkeypatch.setattr(_compile_cache, "cache_dir", lambda: tmp_path)
    monkeypatch.delenv("BAYESGMM_COMPILE_CACHE", raising=False)
    return tmp_path


def _model_and_point(X, seed=0):
    gmm = BayesianGMM(2)
    model = gmm.build_model(X)
    start = model.initial_point()
    rng = np.random.default_rng(seed)
    point = DictToArrayBijection.map({k: v + rng.normal(0, 0.2, v.shape) for k, v in start.items()}).data
    return gmm, model, start, point


def test_cached_function_is_reused_and_sees_the_new_data(cache_in_tmp):
    X1, _ = make_mixture(120, 2, 2, random_state=0, separation=5)
    X2, _ = make_mixture(80, 2, 2, random_state=1, separation=3)
    X2 = X2 * 100 + 7  # other units: the model sees them standardised
    gmm, model1, start, point = _model_and_point(X1)
    key = _compile_cache.cache_key(gmm.config, 2)
    first = _compile_cache.logp_dlogp_function(model1, key, start)
    assert [f.stem for f in cache_in_tmp.glob("*.pkl")] == [key]

    _, model2, start2, _ = _model_and_point(X2)
    loaded = _compile_cache.logp_dlogp_function(model2, key, start2)
    fresh = model2.logp_dlogp_function(ravel_inputs=True, initial_point=start2)
    (lp_loaded, g_loaded), (lp_fresh, g_fresh) = loaded(point, extra_vars={}), fresh(point, extra_vars={})
    assert lp_loaded == pytest.approx(lp_fresh, rel=1e-12)
    np.testing.assert_allclose(g_loaded, g_fresh, rtol=1e-10)
    # and the first function (and its model) still sees its own data
    assert first(point, extra_vars={})[0] == pytest.approx(
        model1.logp_dlogp_function(ravel_inputs=True, initial_point=start)(point, extra_vars={})[0], rel=1e-12)


def test_data_are_not_pickled(tmp_path, monkeypatch):
    sizes = []
    for n in (100, 100_000):  # 1.6 MB more data
        monkeypatch.setattr(_compile_cache, "cache_dir", lambda n=n: tmp_path / str(n))
        X, _ = make_mixture(n, 2, 2, random_state=0, separation=5)
        gmm, model, start, _ = _model_and_point(X)
        _compile_cache.logp_dlogp_function(model, "k", start, use_cache=True)
        sizes.append((tmp_path / str(n) / "k.pkl").stat().st_size)
    assert abs(sizes[1] - sizes[0]) < 10_000
    # the model's own (standardised) data are restored
    assert float(model["X"].get_value()[0, 0]) == gmm._standardise(X)[0, 0]


def test_key_changes_with_the_model():
    base = BayesianGMM(2).config
    keys = {
        _compile_cache.cache_key(base, 2),
        _compile_cache.cache_key(base, 3),
        _compile_cache.cache_key(BayesianGMM(3).config, 2),
        _compile_cache.cache_key(BayesianGMM(2, priors={"eta": 3}).config, 2),
        _compile_cache.cache_key(BayesianGMM(2, covariance_type="diag").config, 2),
    }
    assert len(keys) == 5


def test_corrupt_entry_is_rebuilt_with_a_warning(cache_in_tmp):
    X, _ = make_mixture(60, 2, 2, random_state=0, separation=5)
    gmm, model, start, point = _model_and_point(X)
    key = _compile_cache.cache_key(gmm.config, 2)
    (cache_in_tmp / f"{key}.pkl").write_bytes(b"not a pickle")
    with pytest.warns(RuntimeWarning, match="unreadable compile cache"):
        func = _compile_cache.logp_dlogp_function(model, key, start)
    assert np.isfinite(func(point, extra_vars={})[0])
    assert (cache_in_tmp / f"{key}.pkl").stat().st_size > 100  # replaced by a good entry


def test_cache_can_be_switched_off(cache_in_tmp, monkeypatch):
    monkeypatch.setenv("BAYESGMM_COMPILE_CACHE", "0")
    X, _ = make_mixture(60, 2, 2, random_state=0, separation=5)
    gmm, model, start, _ = _model_and_point(X)
    _compile_cache.logp_dlogp_function(model, _compile_cache.cache_key(gmm.config, 2), start)
    assert not list(cache_in_tmp.iterdir())


def test_laplace_covariance_of_a_gaussian():
    precision = np.array([[4.0, 1.0], [1.0, 3.0]])
    mode = np.array([0.5, -1.0])

    def logp_dlogp(x, extra_vars=None):
        d = x - mode
        return -0.5 * d @ precision @ d, -precision @ d

    np.testing.assert_allclose(laplace_covariance(logp_dlogp, mode + 0.1), np.linalg.inv(precision), rtol=1e-6)

    def saddle(x, extra_vars=None):
        return 0.0, np.array([-x[0], x[1]])

    assert laplace_covariance(saddle, np.zeros(2)) is None


@pytest.mark.parametrize("K, D, expected", [(3, 2, "adapt_full"), (8, 10, "adapt_diag")])
def test_auto_mass_matrix_is_dense_only_for_small_models(K, D, expected):
    assert nuts_adaptation(BayesianGMM(K).spec, D, "auto", jitter=False) == expected
    assert nuts_adaptation(BayesianGMM(K).spec, D, "diag", jitter=True) == "jitter+adapt_diag"


def test_nuts_options_reach_the_step_and_the_sampler():
    X, _ = make_mixture(60, 2, 2, random_state=0, separation=6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = BayesianGMM(2).fit(X, draws=20, tune=20, chains=1, random_seed=0, progressbar=False,
                                   target_accept=0.95, max_treedepth=4, mass_matrix="diag", warmup_start="identity")
    assert int(idata.sample_stats["tree_depth"].max()) <= 4
    assert idata.posterior.sizes["draw"] == 20


def test_identity_warmup_start_skips_the_laplace_approximation(monkeypatch):
    from bayesgmm import inference

    def fail(*args):  # pragma: no cover - reaching it is the failure
        raise AssertionError("Laplace approximation computed for warmup_start='identity'")

    monkeypatch.setattr(inference, "laplace_covariance", fail)
    X, _ = make_mixture(60, 2, 2, random_state=0, separation=6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = BayesianGMM(2).fit(X, draws=10, tune=10, chains=1, random_seed=0, progressbar=False,
                                   warmup_start="identity")
    assert idata.posterior.sizes["draw"] == 10


def test_key_follows_every_module_of_the_package(tmp_path, monkeypatch):
    import shutil

    package = tmp_path / "pkg"
    shutil.copytree(Path(_compile_cache.__file__).parent, package, ignore=shutil.ignore_patterns("__pycache__", "data"))
    monkeypatch.setattr(_compile_cache, "__file__", str(package / "_compile_cache.py"))
    before = _compile_cache.cache_key(BayesianGMM(2).config, 2)
    with open(package / "_lkj.py", "a") as fh:  # a module model.py only imports
        fh.write("\n# changed\n")
    assert _compile_cache.cache_key(BayesianGMM(2).config, 2) != before


def _fit_counting_runs(monkeypatch, diverging_first: int, **settings):
    """Fit with the first NUTS run forced to show ``diverging_first`` divergent draws; the runs' target_accepts."""
    from bayesgmm import inference

    real, calls = inference._sample_pymc, []

    def sample(*args, **kwargs):
        calls.append(kwargs.get("target_accept"))
        idata = real(*args, **kwargs)
        if len(calls) == 1:
            diverging = idata.sample_stats["diverging"].values
            diverging.flat[:diverging_first] = True
        return idata

    monkeypatch.setattr(inference, "_sample_pymc", sample)
    X, _ = make_mixture(60, 2, 2, random_state=0, separation=6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = BayesianGMM(2).fit(X, draws=20, tune=20, chains=1, random_seed=0, progressbar=False, **settings)
    return idata, calls


def test_divergent_run_is_sampled_again_at_a_higher_target_accept(monkeypatch):
    from bayesgmm.diagnostics import assess
    from bayesgmm.inference import RETRY_TARGET_ACCEPT

    idata, calls = _fit_counting_runs(monkeypatch, diverging_first=5)
    assert calls == [None, RETRY_TARGET_ACCEPT]
    assert idata.attrs["first_run_divergences"] == 5
    n_second = idata.attrs["second_run_divergences"]
    # The run with fewer divergent transitions is the one returned.
    assert idata.attrs["kept_run"] == ("second" if n_second <= 5 else "first")
    assert int(idata.sample_stats["diverging"].sum()) == min(n_second, 5)
    assert any("sampled twice: 5 divergent transitions" in note for note in assess(idata).notes)


def test_no_retry_when_the_run_is_clean_or_the_user_chose(monkeypatch):
    _, calls = _fit_counting_runs(monkeypatch, diverging_first=0)
    assert calls == [None]
    _, calls = _fit_counting_runs(monkeypatch, diverging_first=5, target_accept=0.9)
    assert calls == [0.9]
    idata, calls = _fit_counting_runs(monkeypatch, diverging_first=5, retry_on_divergence=False)
    assert calls == [None] and "first_run_divergences" not in idata.attrs


def test_retry_setting_is_checked():
    X, _ = make_mixture(30, 2, 2, random_state=0)
    with pytest.raises(TypeError, match="retry_on_divergence must be True or False"):
        BayesianGMM(2).fit(X, retry_on_divergence="yes")


def test_dispersed_starts_put_chains_at_different_em_optima():
    from bayesgmm.inference import dispersed_starts, em_start

    X, _ = make_mixture(90, 2, 3, random_state=1, separation=1.5)  # overlapping: several EM optima
    gmm = BayesianGMM(3)
    data = gmm.prepare(X)
    best, _ = em_start(gmm.spec, data, 0)
    starts = dispersed_starts(gmm.spec, data, best, 4, random_seed=0)
    assert len(starts) == 4 and starts[0] is best
    assert all(set(s) == set(best) for s in starts)
    assert dispersed_starts(gmm.spec, data, best, 4, random_seed=0)[1]["means_z"].tolist() == \
        starts[1]["means_z"].tolist()  # reproducible
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = gmm.fit(X, init="em_dispersed", draws=10, tune=10, chains=2, cores=1, random_seed=0,
                        progressbar=False)
    assert idata.posterior.sizes["chain"] == 2


def test_a_degenerate_em_optimum_is_not_a_chain_start(monkeypatch):
    # A k-means++ seed whose EM collapses a component onto one point (weight 1/N, sd at
    # the reg_covar floor) made NUTS fail to start in SBC; such a start is replaced by the best.
    from bayesgmm import inference

    X, _ = make_mixture(90, 2, 3, random_state=1, separation=1.5)
    gmm = BayesianGMM(3)
    data = gmm.prepare(X)
    best, _ = inference.em_start(gmm.spec, data, 0)
    real_fit = inference.GaussianMixtureEM.fit

    def collapsing_fit(self, X, *args, **kwargs):
        fitted = real_fit(self, X, *args, **kwargs)
        fitted.degenerate_ = True
        return fitted

    monkeypatch.setattr(inference.GaussianMixtureEM, "fit", collapsing_fit)
    starts = inference.dispersed_starts(gmm.spec, data, best, 3, random_seed=0)
    assert len(starts) == 3 and all(start is best for start in starts)


@pytest.mark.parametrize("settings, match", [
    ({"method": "advi"}, "method='advi' has no chains"),
    ({"sampler": "nutpie"}, "needs sampler='pymc' or 'numpyro'"),
])
def test_dispersed_starts_are_refused_where_there_are_no_chains_to_disperse(settings, match):
    X, _ = make_mixture(30, 2, 2, random_state=0)
    with pytest.raises(ValueError, match=match):
        BayesianGMM(2).fit(X, init="em_dispersed", **settings)


# ------------------------------------------------- the importance-sampling check of ADVI
#: The posterior sd of every unconstrained coordinate in the hand-set model below.
_POSTERIOR_SD = 2.0


def _standard_normal_approximation(method: str, sd: float):
    """A PyMC approximation set by hand to N(0, sd^2) on a model whose posterior is N(0, 2^2) unconstrained.

    The model has no data: ``mu`` (2 values) is normal and ``s`` is log-normal, so
    ``log s`` (PyMC's unconstrained value) is normal only with the log transform's
    Jacobian counted.
    """
    import pymc as pm

    with pm.Model() as model:
        pm.Normal("mu", 0.0, _POSTERIOR_SD, shape=2)
        pm.LogNormal("s", 0.0, _POSTERIOR_SD)
        vi = pm.ADVI() if method == "advi" else pm.FullRankADVI()
    group = vi.approx.groups[0]
    inverse_softplus = np.log(np.expm1(sd))
    group.params_dict["mu"].set_value(np.zeros(3))
    if method == "advi":
        group.params_dict["rho"].set_value(np.full(3, inverse_softplus))
    else:  # PyMC maps the factor's diagonal through softplus
        factor = np.zeros((3, 3))
        factor[np.diag_indices(3)] = inverse_softplus
        group.params_dict["L_tril"].set_value(factor[np.tril_indices(3)])
    return vi.approx, model


@pytest.mark.parametrize("method", ["advi", "fullrank_advi"])
def test_importance_ratios_are_constant_where_the_approximation_is_the_posterior(method):
    from bayesgmm.inference import importance_log_ratios, importance_pareto_k

    approx, model = _standard_normal_approximation(method, _POSTERIOR_SD)
    ratios = importance_log_ratios(approx, model, 500, 0)
    # Constant only with the Jacobian of s's log transform and q's own normalisation.
    assert ratios.shape == (500,) and np.ptp(ratios) < 1e-9 and abs(ratios.mean()) < 1e-6
    # Too narrow an approximation gives heavy-tailed ratios (tail index 1 - 0.3^2 = 0.91);
    # too wide a one bounded ratios.
    narrow, _ = _standard_normal_approximation(method, 0.3 * _POSTERIOR_SD)
    assert importance_pareto_k(narrow, model, 4000, 0) > 0.7
    wide, _ = _standard_normal_approximation(method, 2.0 * _POSTERIOR_SD)
    assert importance_pareto_k(wide, model, 4000, 0) < 0.5


def test_importance_check_draws_shrink_on_large_data():
    from bayesgmm.inference import importance_check_draws, pareto_k_threshold

    assert importance_check_draws(300) == 4000 and importance_check_draws(20_000) == 2000
    assert importance_check_draws(10**7) == 1000
    assert pareto_k_threshold(4000) == pytest.approx(0.7) and pareto_k_threshold(1000) == pytest.approx(2 / 3)


def test_minibatch_advi_is_checked_on_every_row(monkeypatch):
    from bayesgmm import assess, inference

    X, _ = make_mixture(400, 2, 2, random_state=0, separation=8)
    seen = []
    check = inference.importance_pareto_k
    monkeypatch.setattr(inference, "importance_pareto_k",
                        lambda approx, model, *a: seen.append(model) or check(approx, model, *a))
    idata = BayesianGMM(2).fit(X, method="advi", batch_size=100, draws=50, random_seed=0, progressbar=False)
    attrs = idata.fit_history.attrs
    assert attrs["batch_size"] == 100 and np.isfinite(attrs["pareto_k"])
    # The minibatch model's log-density is random: the check builds the full-data model.
    (model,) = seen
    assert [tuple(rv.shape.eval())[0] for rv in model.observed_RVs] == [400]
    # Beyond the row limit the check is skipped, and the verdict says so.
    monkeypatch.setattr(inference, "IMPORTANCE_CHECK_MAX_ROWS", 300)
    idata = BayesianGMM(2).fit(X, method="advi", batch_size=100, draws=50, random_seed=0, progressbar=False)
    assert np.isnan(idata.fit_history.attrs["pareto_k"]) and len(seen) == 1
    assert any("not computed" in note for note in assess(idata).notes)


def test_a_non_finite_log_density_fails_the_importance_check(monkeypatch):
    from bayesgmm import inference

    ratios = np.zeros(100)
    ratios[3] = np.nan  # the model's log-density failed at a draw of q
    monkeypatch.setattr(inference, "importance_log_ratios", lambda *a: ratios)
    assert inference.importance_pareto_k(None, None, 100, 0) == np.inf
