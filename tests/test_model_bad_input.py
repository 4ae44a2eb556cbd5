"""Bad input to BayesianGMM: every argument, the data, the data's scale, and saved files.

Argument and data errors must be raised before any PyMC model is built or
compiled (the fits are replaced by functions that fail the test); the fits
that do run are tiny.
"""

import os
import warnings

import arviz as az
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bayesgmm import BayesianGMM, inference
from bayesgmm.datasets import make_mixture


@pytest.fixture(scope="module")
def X40():
    X, _ = make_mixture(40, n_components=2, n_features=2, random_state=0, separation=6)
    return X


@pytest.fixture
def no_fitting(monkeypatch):
    """Fail the test if a model is built or a sampler is started."""

    def fail(*args, **kwargs):  # pragma: no cover - reaching it is the failure
        raise AssertionError("a model was built or fitted before the input was validated")

    monkeypatch.setattr(BayesianGMM, "build_model", fail)
    monkeypatch.setattr(inference, "fit_nuts", fail)
    monkeypatch.setattr(inference, "fit_vi", fail)
    monkeypatch.setattr(inference, "em_start", fail)


# --------------------------------------------------------------- constructor
@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"n_components": 0}, ValueError, "n_components"),
        ({"n_components": -2}, ValueError, "n_components"),
        ({"n_components": 2.5}, TypeError, "n_components"),
        ({"n_components": True}, TypeError, "n_components"),
        ({"n_components": "2"}, TypeError, "n_components"),
        ({"covariance_type": "tri"}, ValueError, "covariance_type.*'full', 'diag', 'tied', 'spherical'.*'tri'"),
        ({"covariance_type": None}, ValueError, "covariance_type"),
        ({"priors": {"alpha": np.nan}}, ValueError, r"priors\['alpha'\].*nan"),
        ({"priors": {"alpha": 0}}, ValueError, r"priors\['alpha'\].*positive"),
        ({"priors": {"alpha": -1.0}}, ValueError, r"priors\['alpha'\]"),
        ({"priors": {"alpha": np.inf}}, ValueError, r"priors\['alpha'\].*finite"),
        ({"priors": {"alpha": []}}, ValueError, r"priors\['alpha'\].*empty"),
        ({"priors": {"alpha": ["a", "b"]}}, TypeError, r"priors\['alpha'\]"),
        ({"priors": {"alpha": [1.0, np.nan]}}, ValueError, r"priors\['alpha'\]"),
        ({"priors": {"alpha": [1.0, 1.0, 1.0]}}, ValueError, "alpha.*3 values.*n_components is 2"),
        ({"priors": {"eta": 0}}, ValueError, r"priors\['eta'\]"),
        ({"priors": {"eta": np.nan}}, ValueError, r"priors\['eta'\]"),
        ({"priors": {"eta": "2"}}, TypeError, r"priors\['eta'\]"),
        ({"priors": {"mean_scale": np.inf}}, ValueError, r"priors\['mean_scale'\]"),
        ({"priors": {"sd_scale": -1}}, ValueError, r"priors\['sd_scale'\]"),
        ({"priors": {"sd_scale": True}}, TypeError, r"priors\['sd_scale'\]"),
        ({"priors": {"sd_dist": "cauchy"}}, ValueError, "sd_dist.*halfnormal"),
        ({"priors": {"sd_dist": ["halfnormal"]}}, TypeError, "sd_dist"),
        ({"priors": {"etaa": 2}}, ValueError, "Unknown prior.*etaa"),
        ({"priors": "flat"}, TypeError, "priors must be a dict"),
        ({"ordered": -1}, ValueError, "ordered.*-1"),
        ({"ordered": 1.5}, TypeError, "ordered"),
        ({"ordered": ""}, ValueError, "ordered"),
        ({"ordered": None}, TypeError, "ordered"),
        ({"ordered": [0]}, TypeError, "ordered"),
    ],
)
def test_bad_constructor_argument(kwargs, error, match):
    kwargs = {"n_components": 2, **kwargs}
    with pytest.raises(error, match=match):
        BayesianGMM(**kwargs)


def test_good_constructor_values_are_normalised():
    model = BayesianGMM(np.int64(2), priors={"alpha": np.array(0.5), "eta": 3}, ordered=np.bool_(True))
    assert model.n_components == 2 and model.ordered is True
    assert model.priors.alpha == 0.5 and model.priors.eta == 3.0
    assert BayesianGMM(2, ordered=np.int64(1)).ordered == 1


# ---------------------------------------------------------------- fit arguments
@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"method": "gibbs"}, ValueError, "method.*'nuts', 'advi', 'fullrank_advi'.*'gibbs'"),
        ({"method": None}, ValueError, "method"),
        ({"draws": 0}, ValueError, "draws.*>= 1.*0"),
        ({"draws": -5}, ValueError, "draws"),
        ({"draws": 10.0}, TypeError, "draws.*integer"),
        ({"draws": True}, TypeError, "draws"),
        ({"draws": "100"}, TypeError, "draws"),
        ({"tune": -1}, ValueError, "tune.*>= 0"),
        ({"tune": 1.5}, TypeError, "tune"),
        ({"chains": 0}, ValueError, "chains.*>= 1"),
        ({"chains": 2.0}, TypeError, "chains"),
        ({"random_seed": -1}, ValueError, "random_seed.*>= 0"),
        ({"random_seed": 2**40}, ValueError, "random_seed.*<= 4294967295"),
        ({"random_seed": 1.5}, TypeError, "random_seed"),
        ({"random_seed": "1"}, TypeError, "random_seed"),
        ({"progressbar": "yes"}, TypeError, "progressbar.*True or False"),
        ({"init": "kmeans"}, ValueError, "init.*'em', 'em_dispersed', 'prior'"),
        ({"sampler": "stan"}, ValueError, "sampler.*'pymc', 'nutpie', 'numpyro'"),
        ({"mass_matrix": "dense"}, ValueError, "mass_matrix"),
        ({"warmup_start": "map"}, ValueError, "warmup_start"),
        ({"log_likelihood": "yes"}, ValueError, "log_likelihood"),
        ({"log_likelihood": 2}, ValueError, "log_likelihood"),
        ({"method": "advi", "n_iterations": 0}, ValueError, "n_iterations.*>= 1"),
        ({"method": "advi", "n_iterations": -3}, ValueError, "n_iterations"),
        ({"method": "advi", "n_iterations": 1e4}, TypeError, "n_iterations"),
        ({"method": "advi", "learning_rate": 0}, ValueError, "learning_rate.*> 0"),
        ({"method": "advi", "learning_rate": -0.01}, ValueError, "learning_rate"),
        ({"method": "advi", "learning_rate": np.nan}, ValueError, "learning_rate.*nan"),
        ({"method": "advi", "learning_rate": np.inf}, ValueError, "learning_rate"),
        ({"method": "advi", "learning_rate": "0.1"}, TypeError, "learning_rate"),
        ({"method": "advi", "batch_size": 0}, ValueError, "batch_size.*>= 1"),
        ({"method": "advi", "batch_size": -5}, ValueError, "batch_size"),
        ({"method": "advi", "batch_size": 2.5}, TypeError, "batch_size"),
        ({"method": "advi", "batch_size": "all"}, ValueError, "batch_size.*'auto'"),
        ({"method": "advi", "batch_size": 41}, ValueError, r"batch_size.*number of rows of X \(40\).*41"),
        ({"batch_size": 10}, ValueError, "batch_size.*only to method='advi'"),
        ({"method": "advi", "target_accept": 0.9}, TypeError, "apply only to method='nuts'"),
        ({"target_accept": 0.0}, ValueError, r"target_accept.*\(0, 1\)"),
        ({"target_accept": 1.0}, ValueError, "target_accept"),
        ({"target_accept": 1.5}, ValueError, "target_accept"),
        ({"target_accept": -0.2}, ValueError, "target_accept"),
        ({"target_accept": np.nan}, ValueError, "target_accept"),
        ({"target_accept": "high"}, TypeError, "target_accept"),
        ({"max_treedepth": 0}, ValueError, "max_treedepth.*>= 1"),
        ({"max_treedepth": 2.5}, TypeError, "max_treedepth"),
        ({"early_max_treedepth": 0}, ValueError, "early_max_treedepth"),
        ({"cores": 0}, ValueError, "cores.*>= 1"),
        ({"cores": -1}, ValueError, "cores"),
        ({"step_scale": 0}, ValueError, "step_scale"),
        ({"k": 0.3}, ValueError, "k"),
        ({"nuts": {"target_accept": 2}}, ValueError, r"nuts\['target_accept'\]"),
        ({"nuts": {"bogus": 1}}, TypeError, "nuts.*bogus"),
        ({"nuts": 0.9}, TypeError, "nuts must be a dict"),
        ({"bogus_option": 1}, TypeError, "unexpected keyword.*bogus_option"),
        ({"step": object()}, TypeError, "sets.*step"),
        ({"initvals": {}}, TypeError, "sets.*initvals"),
        ({"ordered_bad": None, "n_components": 2}, TypeError, "ordered_bad"),
    ],
)
def test_bad_fit_argument_fails_before_building(X40, no_fitting, kwargs, error, match):
    kwargs = {"progressbar": False, **kwargs}
    K = kwargs.pop("n_components", 2)
    with pytest.raises(error, match=match):
        BayesianGMM(K).fit(X40, **kwargs)


@pytest.mark.parametrize("ordered, match", [(5, r"ordered=5 is out of range.*0\.\.1"), ("zz", "'zz' is not a feature")])
def test_ordered_must_name_a_feature(X40, no_fitting, ordered, match):
    with pytest.raises(ValueError, match=match):
        BayesianGMM(2, ordered=ordered).fit(X40, progressbar=False)


def test_ordered_feature_names_must_not_clash(no_fitting):
    X = pd.DataFrame(np.random.default_rng(0).normal(size=(40, 2)), columns=["a", "a_ordered"])
    with pytest.raises(ValueError, match="clashing"):
        BayesianGMM(2, ordered="a").fit(X, progressbar=False)


def test_argument_errors_come_before_data_errors(no_fitting):
    with pytest.raises(ValueError, match="draws"):
        BayesianGMM(2).fit(np.full((5, 2), np.nan), draws=0)


# ------------------------------------------------------------------------- data
def _frame(**columns):
    rng = np.random.default_rng(1)
    base = {"a": rng.normal(size=40), "b": rng.normal(size=40)}
    return pd.DataFrame({**base, **columns})


_rng = np.random.default_rng(2)


@pytest.mark.parametrize(
    "X, error, match",
    [
        (_frame(colour=["red", "blue"] * 20), ValueError, "non-numeric column.*'colour'"),
        (_frame(kind=pd.Categorical(["x", "y"] * 20)), ValueError, "non-numeric column.*'kind'.*category"),
        (_frame(when=pd.date_range("2020", periods=40)), ValueError, "non-numeric column.*'when'"),
        (_frame(mixed=[1.0, "2"] * 20), ValueError, "non-numeric column.*'mixed'"),
        (_frame(z=np.r_[np.nan, np.ones(39)]), ValueError, r"NaN.*1 of 40 rows.*\[0\].*\['z'\]"),
        (_frame(z=pd.array([None] + list(range(39)), dtype="Int64")), ValueError, "NaN"),
        (_frame(z=np.r_[np.ones(38), np.inf, -np.inf]), ValueError, r"infinity.*2 of 40 rows.*\[38, 39\]"),
        (_frame(z=np.full(40, 3.0)), ValueError, r"\['z'\] are constant"),
        (pd.DataFrame(_rng.normal(size=(40, 2)), columns=["a", "a"]), ValueError, "duplicated column names"),
        (pd.Series(_rng.normal(size=40)), ValueError, "Series.*to_frame"),
        (_rng.normal(size=40), ValueError, r"2D.*1D.*reshape\(-1, 1\)"),
        (_rng.normal(size=(10, 2, 2)), ValueError, "2D.*3D"),
        (np.empty((0, 2)), ValueError, "empty"),
        (np.empty((10, 0)), ValueError, "empty"),
        (_rng.normal(size=(40, 2)) + 1j, ValueError, "complex"),
        ([[1.0, 2.0], [3.0]], ValueError, "rectangular"),
        (np.array([["1", "a"], ["2", "b"]] * 20), ValueError, "column 0 holds non-numeric"),
        (np.array([[1.0, 2.0]]), ValueError, "n_samples >= n_components|at least 2 rows"),
        (_rng.normal(size=(1, 2)), ValueError, "n_samples >= n_components"),
        (np.column_stack([np.arange(40.0), np.full(40, np.nan)]), ValueError, "never dropped silently"),
        # float64 cannot hold the covariances in these units: a clear error, not "constant"
        (_rng.normal(size=(40, 2)) * [1.0, 1e-300], ValueError, "standard deviation of .*e-30.*Rescale"),
        (_rng.normal(size=(40, 2)) * [1.0, 1e200], ValueError, "standard deviation of .*e\\+20.*Rescale"),
        (np.column_stack([_rng.normal(size=40), 1e9 + 1e-5 * _rng.normal(size=40)]), ValueError,
         "float64 cannot resolve"),
    ],
)
def test_bad_data_is_refused_before_building(no_fitting, X, error, match):
    with pytest.raises(error, match=match):
        BayesianGMM(2).fit(X, progressbar=False)


@pytest.mark.parametrize("scale", [1e-100, 1.0, 1e100])
def test_linearly_dependent_features_are_refused_for_correlated_covariances(no_fitting, scale):
    # As EM refuses them (the EM start could not fit them, and the covariances' posterior
    # would press against singular matrices): before, the fit warned that the EM start
    # failed and sampled from the prior's point.
    from sklearn.datasets import load_iris

    X = load_iris().data
    Xd = np.column_stack([X, X[:, 0] + X[:, 1]]) * scale
    for cov in ("full", "tied"):
        with pytest.raises(ValueError, match=r"Features \['x0', 'x1', 'x4'\] are \(nearly\) linearly dependent.*"
                                             r"below 1e-06, the default reg_covar of the EM fit that starts"):
            BayesianGMM(2, cov).fit(Xd, progressbar=False)
    for cov in ("diag", "spherical"):  # per-feature sds are not affected
        BayesianGMM(2, cov).prepare(Xd)
    # Judged on the correlation matrix, not on the data standardised by a fixed prior scale
    # (at 1000x the data's sd, iris's eigenvalues fell below the cut-off and it was refused).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "X lies far outside the prior": intended here
        BayesianGMM(2, priors={"location": X.mean(0) * scale, "scale": X.std(0) * 1000 * scale}).prepare(X * scale)
    with pytest.raises(ValueError, match="need more rows with a positive weight than features"):
        BayesianGMM(1).prepare(_rng.normal(size=(6, 6)))
    BayesianGMM(1, "diag").prepare(_rng.normal(size=(6, 6)))


def test_em_start_uses_the_cut_off_of_the_rank_check(monkeypatch):
    from bayesgmm.bayes_covariance import EM_START_REG_COVAR

    seen = {}
    original = inference.GaussianMixtureEM.fit

    def spy(self, X, *args, **kwargs):
        seen["reg_covar"] = self.reg_covar
        return original(self, X, *args, **kwargs)

    monkeypatch.setattr(inference.GaussianMixtureEM, "fit", spy)
    model = BayesianGMM(2)
    inference.em_start(model.spec, model.prepare(make_mixture(60, 2, 2, random_state=0)[0]), 0)
    assert seen["reg_covar"] == EM_START_REG_COVAR


def test_numeric_object_and_nullable_columns_are_accepted():
    X = _frame(obj=pd.Series(np.arange(40.0), dtype=object), nullable=pd.array(range(40), dtype="Int64"))
    data = BayesianGMM(2, "diag")._prepare(X)  # two equal columns: diag, since full refuses them
    assert data.names == ["a", "b", "obj", "nullable"]
    np.testing.assert_array_equal(data.X[:, 2], np.arange(40.0))


@pytest.mark.parametrize("factor", [1e-150, 1e-100, 1e-6, 1e6, 1e100, 1e150])
def test_standardised_data_do_not_depend_on_units(X40, factor):
    base = BayesianGMM(2)._prepare(X40)
    scaled = BayesianGMM(2)._prepare(X40 * factor)
    np.testing.assert_allclose(scaled.Z, base.Z, rtol=0, atol=1e-13)
    np.testing.assert_allclose(scaled.scale / factor, base.scale, rtol=1e-13)
    # with an offset of 1e6 spreads, float64 keeps ~10 digits of the deviations
    offset = BayesianGMM(2)._prepare(X40 * factor + 1e6 * factor * X40.std(0))
    np.testing.assert_allclose(offset.Z, base.Z, rtol=0, atol=1e-8)


@settings(max_examples=60, deadline=None)
@given(exponents=st.lists(st.floats(-150, 150), min_size=2, max_size=2),
       offsets=st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=2))
def test_property_model_sees_the_same_data_in_any_units(exponents, offsets):
    # The model (and the EM start) see only the standardised data, so equal Z means
    # the same posterior on the standardised scale (checked with fits below).
    X, _ = make_mixture(40, n_components=2, n_features=2, random_state=0, separation=6)
    scale = 10.0 ** np.array(exponents)
    moved = X * scale + np.array(offsets) * X.std(0) * scale
    base, other = BayesianGMM(2)._prepare(X), BayesianGMM(2)._prepare(moved)
    np.testing.assert_allclose(other.Z, base.Z, rtol=0, atol=1e-8)
    np.testing.assert_allclose(other.scale, base.scale * scale, rtol=1e-8)


def test_power_of_two_rescaling_gives_identical_standardised_data(X40):
    base = BayesianGMM(2)._prepare(X40)
    scaled = BayesianGMM(2)._prepare(X40 * np.array([2.0**-480, 2.0**470]))
    np.testing.assert_array_equal(scaled.Z, base.Z)


# ------------------------------------------------------------ scale equivariance
_SCALE = np.array([1e-150, 3e149])
_OFFSET = np.array([-2e-144, 5e155])  # about 1e6 spreads


def _fit(X, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return BayesianGMM(2).fit(X, random_seed=4, progressbar=False, **kwargs)


@pytest.mark.parametrize("method", ["advi", "nuts"])
def test_posterior_is_equivariant_under_rescaling(X40, method):
    kwargs = dict(method="advi", draws=20, n_iterations=200) if method == "advi" else dict(draws=30, tune=30,
                                                                                           chains=1)
    base = _fit(X40, **kwargs)
    exact = _fit(X40 * np.array([2.0**-400, 2.0**300]), **kwargs)
    moved = _fit(X40 * _SCALE + _OFFSET, **kwargs)
    latents = ["weights", "means_z", "chol_cov_z"]
    for name in latents:  # power-of-two units: the same numbers exactly
        np.testing.assert_array_equal(exact.posterior[name].values, base.posterior[name].values)
    for name in latents:  # any units and offsets: the same up to the rounding of the data
        np.testing.assert_allclose(moved.posterior[name].values, base.posterior[name].values, rtol=0, atol=1e-5)
    post, ref = moved.posterior, base.posterior
    np.testing.assert_allclose((post["means"].values - _OFFSET) / _SCALE, ref["means"].values, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(post["cov"].values / np.outer(_SCALE, _SCALE), ref["cov"].values, rtol=1e-4,
                               atol=1e-5)
    np.testing.assert_allclose(post["corr"].values, ref["corr"].values, atol=1e-5)
    # the pointwise log-likelihood is in data units: it moves by -sum(log s)
    shift = np.log(_SCALE).sum()
    # (as close as the latents above, which may differ by 1e-5 after the data's rounding)
    np.testing.assert_allclose(moved.log_likelihood["obs"].values + shift, base.log_likelihood["obs"].values,
                               rtol=0, atol=1e-4)
    assert np.all(np.isfinite(post["cov"].values))


# ------------------------------------------------------------------- save / load
@pytest.fixture(scope="module")
def tiny_fit(X40):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = BayesianGMM(2, covariance_type="diag")
        model.fit(X40, method="advi", draws=20, n_iterations=100, random_seed=0, progressbar=False)
    return model


@pytest.fixture
def saved(tiny_fit, tmp_path):
    path = tmp_path / "fit.nc"
    tiny_fit.save(path)
    return path


def test_save_back_to_the_same_path(tiny_fit, saved):
    loaded = BayesianGMM.load(saved)
    loaded.save(saved)  # the loaded file is closed: overwriting it works
    again = BayesianGMM.load(saved)
    again.save(saved)
    assert sorted(os.listdir(saved.parent)) == ["fit.nc"]  # no temporary file left behind
    final = BayesianGMM.load(saved, n_components=2, covariance_type="diag")
    for group in tiny_fit.idata_.groups():
        assert final.idata_[group].equals(tiny_fit.idata_[group])
    np.testing.assert_array_equal(final._scaling["scale"], tiny_fit._scaling["scale"])
    os.remove(saved)  # nothing holds the file open


def test_failed_save_leaves_the_old_file_and_no_partial_one(tiny_fit, saved, monkeypatch):
    before = saved.read_bytes()

    def broken(self, *args, **kwargs):
        with open(args[0], "ab") as fh:
            fh.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(az.InferenceData, "to_netcdf", broken)
    with pytest.raises(OSError, match="disk full"):
        tiny_fit.save(saved)
    assert saved.read_bytes() == before
    assert sorted(os.listdir(saved.parent)) == ["fit.nc"]


def _damage(path, how):
    data = bytearray(path.read_bytes())
    n = len(data)
    if how == "truncate_half":
        data = data[: n // 2]
    elif how == "truncate_tail":
        data = data[:-100]
    elif how == "truncate_head":
        data = data[:600]
    elif how == "empty":
        data = b""
    elif how == "zero_start":
        data[:4096] = bytes(4096)
    elif how == "zero_block":
        data[n // 3: n // 3 + 4096] = bytes(len(data[n // 3: n // 3 + 4096]))
    elif how.startswith("flip_"):
        i = int(n * float(how.split("_")[1]))
        data[i] ^= 0x01
    elif how == "text":
        data = b"this is not a netCDF file\n" * 100
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["truncate_half", "truncate_tail", "truncate_head", "empty", "zero_start",
                                 "zero_block", "flip_0.5", "flip_0.25", "flip_0.75", "flip_0.001", "text"])
def test_damaged_file_is_refused(saved, how):
    _damage(saved, how)
    with pytest.raises(ValueError, match="damaged"):
        BayesianGMM.load(saved)


def test_altered_data_are_refused_even_when_rewritten_as_valid_netcdf(saved, tmp_path):
    idata = BayesianGMM.load(saved).idata_
    idata.posterior["weights"].values[0, 0, 0] += 1e-9
    idata.to_netcdf(str(tmp_path / "edited.nc"))  # keeps the attributes, checksums included
    with pytest.raises(ValueError, match="do not match their checksum"):
        BayesianGMM.load(tmp_path / "edited.nc")


def test_file_rewritten_by_arviz_unchanged_still_loads(saved, tmp_path):
    idata = BayesianGMM.load(saved).idata_
    idata.to_netcdf(str(tmp_path / "copy.nc"))  # no user block: the data checksum is what is verified
    assert BayesianGMM.load(tmp_path / "copy.nc").n_components == 2


def test_bad_paths(tiny_fit, tmp_path):
    with pytest.raises(FileNotFoundError, match="No saved fit"):
        BayesianGMM.load(tmp_path / "missing.nc")
    with pytest.raises(FileNotFoundError, match="directory"):
        BayesianGMM.load(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        tiny_fit.save(tmp_path / "no" / "such" / "dir" / "fit.nc")
    with pytest.raises(IsADirectoryError):
        tiny_fit.save(tmp_path)
    with pytest.raises(TypeError, match="path"):
        tiny_fit.save(3)
    with pytest.raises(ValueError, match="call fit"):
        BayesianGMM(2).save(tmp_path / "x.nc")
    with pytest.raises(TypeError, match="Unknown expected config"):
        BayesianGMM.load(tmp_path / "missing.nc", n_component=2)


def test_diverging_advi_says_to_lower_the_learning_rate(X40):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(FloatingPointError, match="learning_rate=1e\\+08.*smaller learning_rate"):
            BayesianGMM(2).fit(X40, method="advi", learning_rate=1e8, n_iterations=300, draws=10,
                               random_seed=0, progressbar=False)
