"""Bad arguments to the EM estimator and select_model: named, up front, never swallowed."""

import numpy as np
import pandas as pd
import pytest

from bayesgmm import GaussianMixtureEM, select_model

X = np.random.default_rng(0).normal(size=(30, 2))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"tol": np.nan}, ValueError, "tol"),
        ({"tol": np.inf}, ValueError, "tol"),
        ({"tol": "1e-3"}, TypeError, "tol"),
        ({"reg_covar": np.nan}, ValueError, "reg_covar"),
        ({"reg_covar": np.inf}, ValueError, "reg_covar"),
        ({"reg_covar": -1}, ValueError, "reg_covar"),
        ({"max_iter": -5}, ValueError, "max_iter"),
        ({"max_iter": 2.5}, TypeError, "max_iter"),
        ({"n_init": 0}, ValueError, "n_init"),
        ({"n_init": True}, TypeError, "n_init"),
        ({"n_threads": 0}, ValueError, "n_threads"),
        ({"random_state": -1}, ValueError, "random_state"),
        ({"random_state": "seed"}, ValueError, "random_state"),
        ({"n_components": 2.5}, TypeError, "n_components"),
    ],
)
def test_estimator_parameters(kwargs, error, match):
    with pytest.raises(error, match=match):
        GaussianMixtureEM(**kwargs).fit(X)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"n_components": [1, 2], "n_init": 0}, ValueError, "n_init"),
        ({"n_components": [1, 2], "tol": -1}, ValueError, "tol"),
        ({"n_components": [1, 2], "max_iter": -5}, ValueError, "max_iter"),
        ({"n_components": [1, 2], "reg_covar": -1}, ValueError, "reg_covar"),
        ({"n_components": [1, 2], "init_params": "bad"}, ValueError, "init_params"),
        ({"n_components": [1, 2], "random_state": -3}, ValueError, "random_state"),
        ({"n_components": 3}, TypeError, r"iterable .*range\(1, 10\)"),
        ({"n_components": "3"}, TypeError, "n_components"),
        ({"n_components": [1, 2.5]}, TypeError, "n_components"),
        ({"n_components": [0, 1]}, ValueError, "n_components"),
        ({"n_components": []}, ValueError, "at least one"),
        ({"n_components": [1, 40]}, ValueError, "exceed the number of samples"),
        ({"n_components": [1], "covariance_types": ["fulll"]}, ValueError, "covariance_type"),
        ({"n_components": [1], "covariance_types": []}, ValueError, "at least one"),
        ({"n_components": [1], "criterion": "aicc"}, ValueError, "criterion"),
        ({"n_components": [1], "n_jobs": 0}, ValueError, "n_jobs"),
        ({"n_components": [1], "banana": 1}, TypeError, "banana"),
    ],
)
def test_select_model_parameters_are_checked_before_any_fit(kwargs, error, match, monkeypatch):
    def no_fit(*args, **kw):
        raise AssertionError("fitted before checking its arguments")

    monkeypatch.setattr(GaussianMixtureEM, "fit", no_fit)
    with pytest.raises(error, match=match):
        select_model(X, **kwargs)


def test_select_model_takes_one_covariance_type_as_a_string():
    result = select_model(X, n_components=[1, 2], covariance_types="full")
    assert set(result.table["covariance_type"]) == {"full"}


@pytest.mark.parametrize(
    "data, match",
    [
        (pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": ["x", "y", "z"]}), "non-numeric column.*'b'"),
        (pd.DataFrame({"a": [1.0, 2.0, 3.0], "c": pd.Categorical(["x", "y", "x"])}), "non-numeric column.*'c'"),
        (np.array([[1.0, np.nan], [2.0, 3.0], [4.0, 5.0]]), "NaN"),
        (np.array([[1.0, np.inf], [2.0, 3.0], [4.0, 5.0]]), r"infinity in 1 of 3 rows .first: .0.., in feature.*'x1'"),
        (np.ones((1, 2)), "sample"),
    ],
)
def test_bad_data(data, match):
    with pytest.raises(ValueError, match=match):
        GaussianMixtureEM(1).fit(data)
    with pytest.raises(ValueError, match=match):
        select_model(data, n_components=[1])


@pytest.mark.parametrize("n_samples, error", [(0, ValueError), (-2, ValueError), (2.5, TypeError), (True, TypeError)])
def test_sample_size(n_samples, error):
    gm = GaussianMixtureEM(2, random_state=0).fit(X)
    with pytest.raises(error, match="n_samples"):
        gm.sample(n_samples)


def test_predict_needs_the_fitted_width_and_names():
    gm = GaussianMixtureEM(2, random_state=0).fit(pd.DataFrame(X, columns=["a", "b"]))
    with pytest.raises(ValueError, match="features"):
        gm.predict(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="feature names"):
        gm.predict(pd.DataFrame(X, columns=["b", "a"]))


@pytest.mark.parametrize(
    "data, error, match",
    [
        ("abc", TypeError, "X must be array-like"),
        ({"a": [1.0, 2.0, 3.0]}, TypeError, "got a dict"),
        ([[1.0, 2.0], [3.0]], ValueError, "rectangular"),
        ([["a", "b"], ["c", "d"], ["e", "f"]], ValueError, "non-numeric values"),
        (pd.DataFrame([[1.0, 2.0], [3.0, 4.0], [5.0, 7.0]], columns=["a", "a"]), ValueError, "duplicated column"),
    ],
)
def test_inputs_numpy_would_reject_without_naming_the_problem(data, error, match):
    with pytest.raises(error, match=match):
        GaussianMixtureEM(1).fit(data)
    gm = GaussianMixtureEM(1).fit(X)
    if not isinstance(data, pd.DataFrame):
        with pytest.raises(error, match=match):
            gm.predict(data)


@pytest.mark.parametrize("weights", ["a", ["a"] * 30])
def test_string_sample_weight_is_named(weights):
    with pytest.raises((TypeError, ValueError), match="sample_weight"):
        GaussianMixtureEM(1).fit(X, sample_weight=weights)


@pytest.mark.parametrize("kwargs, error", [({"warm_start": "yes"}, TypeError), ({"verbose": -1}, ValueError)])
def test_flags(kwargs, error):
    with pytest.raises(error, match=next(iter(kwargs))):
        GaussianMixtureEM(**kwargs).fit(X)
