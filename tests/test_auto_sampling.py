"""The defaults: sampler="auto" (nutpie where installed) and draws="auto" (sample until reliable)."""

import importlib.util
import warnings

import numpy as np
import pytest

from bayesgmm import BayesianGMM, inference
from bayesgmm.datasets import make_mixture
from bayesgmm.diagnostics import assess
from bayesgmm.fit_settings import SAMPLER_DEFAULTS, SAMPLER_ENV, fit_settings


@pytest.fixture
def unpinned(monkeypatch):
    """The user's defaults: without the suite's BAYESGMM_SAMPLER=pymc (tests/conftest.py)."""
    monkeypatch.delenv(SAMPLER_ENV, raising=False)


def test_auto_is_nutpie_with_its_settings(unpinned):
    settings = fit_settings()
    assert settings["sampler"] == "nutpie"
    assert {k: settings[k] for k in ("draws", "tune", "chains", "target_accept")} == SAMPLER_DEFAULTS["nutpie"]
    assert fit_settings(settings) == settings  # resolving twice changes nothing


def test_environment_variable_chooses(monkeypatch):
    monkeypatch.setenv(SAMPLER_ENV, "pymc")
    settings = fit_settings()
    assert (settings["sampler"], settings["draws"], settings["tune"], settings["chains"]) == ("pymc", 1000, 1000, 2)
    assert "target_accept" not in settings  # PyMC's own default, and the retry on divergences stays on
    monkeypatch.setenv(SAMPLER_ENV, "stan")
    with pytest.raises(ValueError, match="BAYESGMM_SAMPLER must be one of"):
        fit_settings()


def test_given_settings_win(unpinned):
    settings = fit_settings(draws=300, tune=100, chains=2, target_accept=0.9)
    assert (settings["draws"], settings["tune"], settings["chains"], settings["target_accept"]) == (300, 100, 2, 0.9)
    assert fit_settings(sampler="pymc", draws="auto")["draws"] == 1000


def test_auto_outside_nutpie(unpinned, monkeypatch):
    assert fit_settings(init="em_dispersed")["sampler"] == "pymc"  # a start per chain: nutpie cannot
    advi = fit_settings(method="advi")
    assert advi["draws"] == 1000 and "target_accept" not in advi
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "nutpie" else real(name, *a))
    assert fit_settings()["sampler"] == "pymc"


@pytest.mark.parametrize(("name", "value"), [("draws", "many"), ("draws", 0), ("tune", "longer"), ("tune", -1),
                                             ("chains", 0), ("chains", 2.5), ("sampler", "stan")])
def test_bad_values_named(name, value):
    with pytest.raises((ValueError, TypeError), match=name):
        fit_settings({name: value})


@pytest.mark.parametrize(("sampler", "options", "error", "match"), [
    ("nutpie", {"drawz": 10}, TypeError, r"unexpected keyword.*\['drawz'\].*sampler='nutpie'.*maxdepth"),
    ("nutpie", {"early_max_treedepth": 3}, TypeError, "early_max_treedepth"),  # PyMC's step only
    ("nutpie", {"save_warmup": False}, TypeError, "save_warmup.*draws='auto'"),  # the automatic draws count it
    ("nutpie", {"max_treedepth": 8, "maxdepth": 8}, TypeError, "not both"),
    ("nutpie", {"max_treedepth": 0}, ValueError, "max_treedepth.*>= 1"),
    ("numpyro", {"max_treedepth": 8}, TypeError,
     r"sampler='numpyro'.*\['blas_cores', 'cores', 'nuts', 'quiet', 'target_accept'\]"),
    ("numpyro", {"nuts": {"max_treedepth": 8}}, TypeError, "takes only target_accept"),
    ("numpyro", {"quiet": "yes"}, TypeError, "quiet"),
])
def test_options_another_sampler_does_not_take_are_refused_up_front(sampler, options, error, match):
    # nutpie used to set any keyword on its settings object, an AttributeError after the model compiled;
    # PyMC drops numpyro's unknown keywords silently.
    with pytest.raises(error, match=match):
        fit_settings(sampler=sampler, **options)


def test_nutpie_takes_its_own_options_and_pymcs_tree_depth(unpinned):
    settings = fit_settings(max_treedepth=8, store_divergences=True, target_accept=0.9)
    assert settings["sampler"] == "nutpie" and "max_treedepth" not in settings
    assert (settings["maxdepth"], settings["store_divergences"], settings["target_accept"]) == (8, True, 0.9)
    assert fit_settings(draws=100, save_warmup=False)["save_warmup"] is False  # fixed draws: nutpie's own
    X = np.random.default_rng(0).normal(size=(40, 2))
    with pytest.raises(TypeError, match="drawz"):  # from fit too, before anything compiles
        BayesianGMM(2).fit(X, drawz=10)


def test_numpyro_takes_what_pymc_passes_on():
    settings = fit_settings(sampler="numpyro", quiet=True, blas_cores=1, nuts={"target_accept": 0.9}, cores=2)
    assert (settings["quiet"], settings["blas_cores"], settings["nuts"], settings["cores"]) == (
        True, 1, {"target_accept": 0.9}, 2)


# ------------------------------------------------------------ sampling until reliable
@pytest.fixture(scope="module")
def two_blobs():
    X, _ = make_mixture(100, n_components=2, n_features=2, random_state=3, separation=8)
    return X


def _fit(X, seed=0, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return BayesianGMM(2).fit(X, random_seed=seed, progressbar=False, **kwargs)


def test_stops_at_the_first_reliable_checkpoint(two_blobs, unpinned, monkeypatch):
    monkeypatch.setattr(inference, "AUTO_DRAWS_CHECKPOINTS", (300, 600, 1200, 2400))
    idata = _fit(two_blobs)
    checked = list(np.atleast_1d(idata.attrs["auto_draws_checked"]))
    assert idata.attrs["sampler"] == "nutpie" and idata.attrs["auto_draws_stop"] == "reliable"
    assert idata.posterior.sizes["chain"] == 4 and idata.posterior.sizes["draw"] == checked[-1]
    assert checked == [300, 600, 1200, 2400][:len(checked)]
    assert assess(idata).reliable
    for n_draws in checked[:-1]:  # every earlier look was judged unreliable
        assert not assess(idata.isel(draw=slice(0, n_draws))).reliable
    assert any("stopped at the first reliable verdict" in note for note in assess(idata).notes)


def test_limit_reached_is_said_and_reproducible(two_blobs, unpinned, monkeypatch):
    # 4 chains x 20 draws cannot reach a bulk ESS of 400: the run stops at the last checkpoint.
    monkeypatch.setattr(inference, "AUTO_DRAWS_CHECKPOINTS", (10, 20))
    first, second = _fit(two_blobs, seed=4), _fit(two_blobs, seed=4)
    assert first.attrs["auto_draws_stop"] == "limit"
    assert list(np.atleast_1d(first.attrs["auto_draws_checked"])) == [10, 20]
    assert first.posterior.sizes["draw"] == 20
    verdict = assess(first)
    assert not verdict.reliable and any("stopped at its limit" in note for note in verdict.notes)
    # Each chain's draws depend on the seed only, not on when the run was paused.
    np.testing.assert_array_equal(first.posterior["means"].values, second.posterior["means"].values)


def test_sparse_dirichlet_fit_takes_fixed_draws_for_auto(monkeypatch):
    # Its emptied components wander over the prior, so its verdict never passes: "auto"
    # would always run to the limit. It takes SPARSE_AUTO_DRAWS instead; a number is kept.
    from bayesgmm import compare

    seen = {}

    def fake_fit(X, k, covariance_type, em, settings, priors=None):
        seen.update(settings)
        return "fit"

    monkeypatch.setattr(compare, "_fit_one_k", fake_fit)
    monkeypatch.setattr(compare, "effective_components", lambda fit, weight_threshold: "counts")
    assert compare.sparse_dirichlet_fit(None, 6, "full", None, {"draws": "auto"}, 0.05) == ("counts", "fit")
    assert seen["draws"] == compare.SPARSE_AUTO_DRAWS
    compare.sparse_dirichlet_fit(None, 6, "full", None, {"draws": 300}, 0.05)
    assert seen["draws"] == 300
