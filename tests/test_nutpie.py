"""nutpie's model with its C callbacks cached on disk (bayesgmm._nutpie)."""

import numpy as np
import pytest

nutpie = pytest.importorskip("nutpie")

from bayesgmm import BayesianGMM, _nutpie  # noqa: E402


@pytest.fixture(scope="module")
def model():
    rng = np.random.default_rng(3)
    X = np.concatenate([rng.normal(-2.0, 0.5, (20, 1)), rng.normal(2.0, 0.7, (20, 1))])
    return BayesianGMM(2, covariance_type="full").build_model(X, likelihood="graph")


def _draws(compiled, seed=5):
    trace = nutpie.sample(compiled, draws=30, tune=30, chains=2, seed=seed, progress_bar=False)
    return {name: trace.posterior[name].values for name in ("weights", "means_z", "chol_cov_z")}


def test_cached_compile_samples_what_nutpie_samples(model):
    from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS

    ours = _nutpie.compile_model(model)
    # Ours, not the fallback: both callbacks are registered with PyTensor's cache locator.
    assert ours.compiled_logp_func._pyfunc in CACHED_SRC_FUNCTIONS
    assert ours.compiled_expand_func._pyfunc in CACHED_SRC_FUNCTIONS
    theirs = nutpie.compile_pymc_model(model)
    a, b = _draws(ours), _draws(theirs)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name])
    # The log-density and gradient at a point, through the compiled callbacks.
    point = np.random.default_rng(0).normal(size=ours.n_dim)
    np.testing.assert_allclose(ours.logp_func(point)[0], theirs.logp_func(point)[0], rtol=1e-12)


def test_second_compile_loads_the_callbacks_from_disk(model):
    _nutpie.compile_model(model)  # compiles, or loads what an earlier process stored
    again = _nutpie.compile_model(model)
    assert again.compiled_logp_func.cache_hits == 1
    assert again.compiled_expand_func.cache_hits == 1


def test_a_model_the_cache_cannot_take_falls_back_to_nutpie(model, monkeypatch):
    def unavailable(*args, **kwargs):
        raise RuntimeError("PyTensor did not register the compiled log-density with its numba cache")

    calls = []

    def nutpie_compile(m, **kwargs):
        calls.append((m, kwargs))
        return "nutpie's own"

    monkeypatch.setattr(_nutpie, "_compile_cached", unavailable)
    monkeypatch.setattr(nutpie, "compile_pymc_model", nutpie_compile)
    start = {"weights": np.array([0.5, 0.5])}
    with pytest.warns(RuntimeWarning, match="could not be cached .RuntimeError: PyTensor did not register"):
        assert _nutpie.compile_model(model, initial_points=start) == "nutpie's own"
    [(m, kwargs)] = calls
    assert m is model and kwargs["initial_points"] is start and kwargs["jitter_rvs"] == set(model.free_RVs)


@pytest.mark.filterwarnings("ignore::bayesgmm.PosteriorDiagnosticsWarning")
@pytest.mark.filterwarnings("error::RuntimeWarning")  # no fallback
@pytest.mark.parametrize("scale", [1e-100, 1e100])
def test_fit_with_nutpie_uses_the_cached_callbacks(scale, monkeypatch):
    calls = []
    cached = _nutpie._compile_cached
    monkeypatch.setattr(_nutpie, "_compile_cached", lambda *args: calls.append(1) or cached(*args))
    rng = np.random.default_rng(1)
    X = np.concatenate([rng.normal(-2.0, 0.5, (15, 1)), rng.normal(2.0, 0.7, (15, 1))]) * scale
    idata = BayesianGMM(2, covariance_type="full").fit(X, sampler="nutpie", draws=40, tune=40, chains=2,
                                                       random_seed=2, progressbar=False)
    means = np.sort(idata.posterior["means"].values.mean(axis=(0, 1)).ravel()) / scale
    np.testing.assert_allclose(means, [-2.0, 2.0], atol=0.6)
    assert calls == [1]


def test_shared_arrays_of_any_rank_and_odd_names_are_read_through_user_data():
    arrays = {"X": np.zeros((3, 2)), "w": np.zeros(3, dtype=np.float32), "it's": np.zeros(())}
    extract, arguments = _nutpie._shared_reads(list(arrays), arrays)
    assert arguments == ", s0, s1, s2"
    assert "(shared['shape']['X'][0], shared['shape']['X'][1], ), np.dtype('<f8')" in extract
    assert "(shared['shape']['w'][0], ), np.dtype('<f4')" in extract
    assert "shared['data'][\"it's\"][()]), (), np.dtype('<f8')" in extract
    compile(_nutpie._LOGP_SOURCE.format(extract=extract, arguments=arguments), "<test>", "exec")  # valid Python
