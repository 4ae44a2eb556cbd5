"""Bad input to the summaries, relabelling, comparisons and plots (issue #12).

Every invalid argument must raise a ``TypeError``/``ValueError`` that names it, before
any computation; and no valid input may give a NaN or silently wrong answer.
"""

import warnings
from types import SimpleNamespace

import arviz as az
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from bayesgmm import (  # noqa: E402
    BayesianGMM,
    GaussianMixtureEM,
    assignments,
    compare_fits,
    compare_k,
    density_grid,
    effective_components,
    em_to_idata,
    marginal_density,
    predictive_density,
    relabel,
    sample_posterior_predictive,
    summary,
)
from bayesgmm import compare as compare_module  # noqa: E402
from bayesgmm import plotting as bp  # noqa: E402
from bayesgmm.datasets import make_mixture  # noqa: E402


@pytest.fixture(scope="module")
def fit():
    """One tiny NUTS fit on a named DataFrame, shared by every test here."""
    X, _ = make_mixture(40, n_components=2, n_features=2, random_state=0, separation=6)
    df = pd.DataFrame(X, columns=["a", "b"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = BayesianGMM(2).fit(df, draws=50, tune=50, chains=1, random_seed=0, progressbar=False)
    em = GaussianMixtureEM(2, random_state=0).fit(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # 3 components on 2 clusters: one collapses, as wanted here
        em3 = GaussianMixtureEM(3, random_state=0).fit(X)
    return SimpleNamespace(X=X, df=df, idata=idata, em=em, em3=em3, em_idata=em_to_idata(em, X),
                           assign=assignments(idata, df))


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _no_posterior():
    return az.from_dict(observed_data={"obs": np.zeros((3, 2))})


def _no_means(idata):
    return az.InferenceData(posterior=idata.posterior[["weights", "cov"]])


# (label, call(ctx), exception, message fragment)
IDATA_FUNCTIONS = [
    ("summary", lambda c, i: summary(i)),
    ("assignments", lambda c, i: assignments(i, c.X)),
    ("predictive_density", lambda c, i: predictive_density(i, c.X)),
    ("density_grid", lambda c, i: density_grid(i)),
    ("marginal_density", lambda c, i: marginal_density(i, 0, c.X[:, 0])),
    ("sample_posterior_predictive", lambda c, i: sample_posterior_predictive(i, 5)),
    ("effective_components", lambda c, i: effective_components(i)),
    ("relabel", lambda c, i: relabel(i)),
    ("compare_fits", lambda c, i: compare_fits(c.em, i, c.X)),
    ("plot_weights", lambda c, i: bp.plot_weights(i)),
    ("plot_trace", lambda c, i: bp.plot_trace(i)),
    ("plot_clusters", lambda c, i: bp.plot_clusters(c.X, c.assign, idata=i)),
]


@pytest.mark.parametrize("call", [f for _, f in IDATA_FUNCTIONS], ids=[n for n, _ in IDATA_FUNCTIONS])
@pytest.mark.parametrize(
    "bad, error, match",
    [
        (lambda c: None, TypeError, "InferenceData"),
        (lambda c: {"posterior": 1}, TypeError, "InferenceData"),
        (lambda c: c.X, TypeError, "InferenceData"),
        (lambda c: _no_posterior(), ValueError, "posterior"),
        (lambda c: _no_means(c.idata), ValueError, "means"),
    ],
    ids=["None", "dict", "array", "no-posterior", "no-means"],
)
def test_idata_must_be_a_mixture_posterior(fit, call, bad, error, match):
    idata = bad(fit)
    if idata is None and call is IDATA_FUNCTIONS[-1][1]:
        pytest.skip("idata=None is plot_clusters' default: no ellipses")
    with pytest.raises(error, match=match):
        call(fit, idata)


PROBABILITY_FUNCTIONS = [
    ("summary.hdi_prob", lambda c, v: summary(c.idata, hdi_prob=v)),
    ("assignments.hdi_prob", lambda c, v: assignments(c.idata, hdi_prob=v)),
    ("predictive_density.hdi_prob", lambda c, v: predictive_density(c.idata, c.X, hdi_prob=v)),
    ("marginal_density.hdi_prob", lambda c, v: marginal_density(c.idata, 0, c.X[:, 0], hdi_prob=v)),
    ("effective_components.hdi_prob", lambda c, v: effective_components(c.idata, hdi_prob=v)),
    ("effective_components.weight_threshold", lambda c, v: effective_components(c.idata, weight_threshold=v)),
    ("compare_fits.threshold", lambda c, v: compare_fits(c.em, c.idata, c.X, threshold=v)),
    ("compare_fits.hdi_prob", lambda c, v: compare_fits(c.em, c.idata, c.X, hdi_prob=v)),
    ("plot_uncertainty.probability_threshold", lambda c, v: bp.plot_uncertainty(c.assign, probability_threshold=v)),
]


@pytest.mark.parametrize("call", [f for _, f in PROBABILITY_FUNCTIONS], ids=[n for n, _ in PROBABILITY_FUNCTIONS])
@pytest.mark.parametrize(
    "value, error",
    [(0.0, ValueError), (1.0, ValueError), (5.0, ValueError), (-0.1, ValueError), (np.nan, ValueError),
     ("0.9", TypeError), (True, TypeError), (None, TypeError)],
    ids=["0", "1", "5", "negative", "nan", "str", "bool", "None"],
)
def test_probabilities_outside_0_1(fit, call, value, error):
    with pytest.raises(error, match=r"hdi_prob|threshold"):
        call(fit, value)


POINT_FUNCTIONS = [
    ("assignments", lambda c, X: assignments(c.idata, X)),
    ("predictive_density", lambda c, X: predictive_density(c.idata, X)),
    ("compare_fits.X", lambda c, X: compare_fits(c.em, c.idata, X)),
    ("compare_fits.X_test", lambda c, X: compare_fits(c.em, c.idata, c.X, X_test=X)),
    ("em_to_idata", lambda c, X: em_to_idata(c.em, X)),
]


def _with_nan(X):
    X = X.copy()
    X[3, 1] = np.nan
    return X


def _with_inf(X):
    X = X.copy()
    X[0, 0] = -np.inf
    return X


@pytest.mark.parametrize("call", [f for _, f in POINT_FUNCTIONS], ids=[n for n, _ in POINT_FUNCTIONS])
@pytest.mark.parametrize(
    "bad, error, match",
    [
        (lambda c: c.X[:, :1], ValueError, "features"),
        (lambda c: np.c_[c.X, c.X], ValueError, "features"),
        (lambda c: _with_nan(c.X), ValueError, r"NaN.*\[3\]"),
        (lambda c: _with_inf(c.X), ValueError, r"infinity in 1 of \d+ rows .first: .0.."),
        (lambda c: c.X.astype(str).astype(object) + "x", TypeError, "real numbers"),
        (lambda c: np.array([["a", "b"], ["c", "d"]]), TypeError, "real numbers"),
        (lambda c: c.X[:, 0], ValueError, "2-D"),
        (lambda c: c.X[None], ValueError, "2-D"),
        (lambda c: np.empty((0, 2)), ValueError, "no rows"),
        (lambda c: [[1.0, 2.0], [3.0]], ValueError, "rectangular"),
        (lambda c: "data.csv", TypeError, "array-like"),
        (lambda c: c.df.assign(c=1.0), ValueError, "unexpected \\['c'\\]"),
        (lambda c: c.df.rename(columns={"b": "z"}), ValueError, "missing \\['b'\\]"),
        (lambda c: c.df.assign(b="x"), TypeError, "'b'"),
    ],
    ids=["narrow", "wide", "nan", "inf", "object-str", "str", "1-D", "3-D", "empty", "ragged", "path",
         "extra-column", "wrong-name", "str-column"],
)
def test_bad_points(fit, call, bad, error, match):
    if call is POINT_FUNCTIONS[4][1]:  # em_to_idata: the EM fit has no feature names
        fit = SimpleNamespace(**{**vars(fit), "em": GaussianMixtureEM(2, random_state=0).fit(fit.df)})
    with pytest.raises(error, match=match):
        call(fit, bad(fit))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"n_points": 0}, ValueError, "n_points"),
        ({"n_points": -5}, ValueError, "n_points"),
        ({"n_points": 1}, ValueError, "n_points"),
        ({"n_points": 2.5}, TypeError, "n_points"),
        ({"n_points": 20.0}, TypeError, "n_points"),
        ({"n_points": "20"}, TypeError, "n_points"),
        ({"n_points": True}, TypeError, "n_points"),
        ({"n_points": 10**6}, ValueError, "n_points"),
        ({"margin": -1}, ValueError, "margin"),
        ({"margin": np.nan}, ValueError, "margin"),
        ({"margin": np.inf}, ValueError, "margin"),
        ({"margin": "0.1"}, TypeError, "margin"),
        ({"features": [0, 0]}, ValueError, "exactly once"),
        ({"features": ["a", "a"]}, ValueError, "exactly once"),
        ({"features": [0, 2]}, ValueError, "out of range"),
        ({"features": [-1, 0]}, ValueError, "out of range"),
        ({"features": ["a", "zzz"]}, ValueError, "'zzz' is not a feature"),
        ({"features": [0]}, ValueError, "exactly once"),
        ({"features": [0, 1, 1]}, ValueError, "exactly once"),
        ({"features": [0.0, 1.0]}, TypeError, "features"),
        ({"features": "ab"}, TypeError, "features"),
        ({"features": 1}, TypeError, "features"),
    ],
)
def test_density_grid_bad_arguments(fit, kwargs, error, match):
    with pytest.raises(error, match=match):
        density_grid(fit.idata, **kwargs)


def test_density_grid_needs_training_data_and_at_most_2_features(fit):
    bare = az.InferenceData(posterior=fit.idata.posterior)
    with pytest.raises(ValueError, match="observed_data"):
        density_grid(bare)
    X3, _ = make_mixture(30, n_components=2, n_features=3, random_state=0)
    idata3 = em_to_idata(GaussianMixtureEM(2, random_state=0).fit(X3), X3)
    with pytest.raises(ValueError, match="marginal_density"):
        density_grid(idata3)


@pytest.mark.parametrize(
    "feature, points, error, match",
    [
        (2, None, ValueError, "out of range"),
        (-1, None, ValueError, "out of range"),
        ("zzz", None, ValueError, "'zzz' is not a feature"),
        (1.0, None, TypeError, "feature"),
        (True, None, TypeError, "feature"),
        (None, None, TypeError, "feature"),
        (0, "2-D", ValueError, "1-D"),
        (0, [[1.0, 2.0, 3.0]], ValueError, "1-D"),
        (0, [1.0, np.nan], ValueError, "NaN"),
        (0, ["a", "b"], TypeError, "real numbers"),
        (0, [], ValueError, "no rows"),
        (0, 3.0, ValueError, "2-D"),
    ],
)
def test_marginal_density_bad_arguments(fit, feature, points, error, match):
    if points is None:
        points = np.linspace(-3, 3, 5)
    elif isinstance(points, str):
        points = fit.X
    with pytest.raises(error, match=match):
        marginal_density(fit.idata, feature, points)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"n_samples": 0}, ValueError, "n_samples"),
        ({"n_samples": -1}, ValueError, "n_samples"),
        ({"n_samples": 2.5}, TypeError, "n_samples"),
        ({"n_samples": 10.0}, TypeError, "n_samples"),
        ({"n_samples": "10"}, TypeError, "n_samples"),
        ({"n_samples": None}, TypeError, "n_samples"),
        ({"n_samples": 5, "random_seed": -1}, ValueError, "random_seed"),
        ({"n_samples": 5, "random_seed": 2.5}, TypeError, "random_seed"),
        ({"n_samples": 5, "random_seed": "0"}, TypeError, "random_seed"),
        ({"n_samples": 5, "random_seed": True}, TypeError, "random_seed"),
    ],
)
def test_sample_posterior_predictive_bad_arguments(fit, kwargs, error, match):
    n = kwargs.pop("n_samples")
    with pytest.raises(error, match=match):
        sample_posterior_predictive(fit.idata, n, **kwargs)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda c: relabel(c.idata, max_iter=-1), ValueError, "max_iter"),
        (lambda c: relabel(c.idata, max_iter=2.5), TypeError, "max_iter"),
        (lambda c: relabel(c.idata, max_iter=None), TypeError, "max_iter"),
        (lambda c: relabel(c.idata, reference=np.zeros((3, 2))), ValueError, "reference"),
        (lambda c: relabel(c.idata, reference=np.full((2, 2), np.nan)), ValueError, "reference"),
        (lambda c: relabel(c.idata, reference="em"), TypeError, "reference"),
        (lambda c: relabel(c.idata, reference=[["a", "b"], ["c", "d"]]), TypeError, "reference"),
        (lambda c: relabel(c.idata, reference=GaussianMixtureEM(2)), ValueError, "not fitted"),
        (lambda c: relabel(c.idata, reference=c.em3), ValueError,
         "3 components"),
        (lambda c: summary(c.idata, relabel_draws="yes"), ValueError, "relabel_draws"),
        (lambda c: assignments(c.idata, relabel_draws=1), ValueError, "relabel_draws"),
    ],
)
def test_relabel_bad_arguments(fit, call, error, match):
    with pytest.raises(error, match=match):
        call(fit)


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda c: compare_fits("em", c.idata, c.X), TypeError, "GaussianMixtureEM"),
        (lambda c: compare_fits(GaussianMixtureEM(2), c.idata, c.X), ValueError, "not fitted"),
        (lambda c: compare_fits(c.em3, c.idata, c.X), ValueError,
         "components"),
        (lambda c: em_to_idata("em"), TypeError, "GaussianMixtureEM"),
        (lambda c: em_to_idata(GaussianMixtureEM(2)), ValueError, "not fitted"),
    ],
)
def test_em_argument(fit, call, error, match):
    with pytest.raises(error, match=match):
        call(fit)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"n_components": [1, 2.5]}, TypeError, "n_components"),
        ({"n_components": [1.0, 2.0]}, TypeError, "n_components"),
        ({"n_components": 3}, TypeError, "n_components"),
        ({"n_components": "12"}, TypeError, "n_components"),
        ({"n_components": []}, ValueError, "n_components"),
        ({"n_components": [0, 1]}, ValueError, "n_components"),
        ({"n_components": [1, 1000]}, ValueError, "n_components"),
        ({"n_components": [1, True]}, TypeError, "n_components"),
        ({"covariance_type": "bogus"}, ValueError, "covariance_type"),
        ({"method": "mcmc"}, ValueError, "method"),
        ({"draws": 0}, ValueError, "draws"),
        ({"draws": 10.5}, TypeError, "draws"),
        ({"tune": -1}, ValueError, "tune"),
        ({"chains": 0}, ValueError, "chains"),
        ({"random_seed": -1}, ValueError, "random_seed"),
        ({"random_seed": 1.5}, TypeError, "random_seed"),
        ({"sparse_alpha": 0}, ValueError, "sparse_alpha"),
        ({"sparse_alpha": np.nan}, ValueError, "sparse_alpha"),
        ({"threshold": 5.0}, ValueError, "threshold"),
        ({"progressbar": "no"}, TypeError, "progressbar"),
    ],
)
def test_compare_k_validates_before_fitting(fit, monkeypatch, kwargs, error, match):
    def no_fitting(*args, **kw):
        raise AssertionError("compare_k fitted before validating its arguments")

    monkeypatch.setattr(compare_module, "select_model", no_fitting)
    monkeypatch.setattr(compare_module, "BayesianGMM", no_fitting)
    kwargs = {"n_components": [1, 2], **kwargs}
    with pytest.raises(error, match=match):
        compare_k(fit.X, **kwargs)
    with pytest.raises(ValueError, match="NaN"):
        compare_k(_with_nan(fit.X), [1, 2])


def _selection_table():
    return pd.DataFrame({"covariance_type": ["full", "full"], "n_components": [1, 2], "degenerate": [False, False],
                         "bic": [10.0, 5.0], "icl": [11.0, 6.0], "aic": [9.0, 4.0]})


def _density_2d(c):
    return predictive_density(c.idata, c.X[:5])


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda c: bp.plot_clusters(c.X, c.assign, features=(0, 0)), ValueError, "different"),
        (lambda c: bp.plot_clusters(c.X, c.assign, features=(0, 5)), ValueError, "features"),
        (lambda c: bp.plot_clusters(c.X, c.assign, features=(0, 1.5)), TypeError, "features"),
        (lambda c: bp.plot_clusters(c.X, c.assign, features="ab"), TypeError, "features"),
        (lambda c: bp.plot_clusters(c.X, c.assign, features=(0, 1, 2)), TypeError, "features"),
        (lambda c: bp.plot_clusters(c.X, c.assign, n_draws=-1), ValueError, "n_draws"),
        (lambda c: bp.plot_clusters(c.X[:10], c.assign), ValueError, "rows"),
        (lambda c: bp.plot_clusters(c.X, c.assign.drop_vars("most_probable")), ValueError, "most_probable"),
        (lambda c: bp.plot_clusters(c.X, c.X), TypeError, "assignment"),
        (lambda c: bp.plot_clusters(_with_nan(c.X), c.assign), ValueError, "NaN"),
        (lambda c: bp.plot_clusters(c.X[:, :1], c.assign), ValueError, "2 features"),
        (lambda c: bp.plot_clusters(c.X, c.assign, em=GaussianMixtureEM(2)), ValueError, "not fitted"),
        (lambda c: bp.plot_clusters(c.X, c.assign, ax="left"), TypeError, "ax"),
        (lambda c: bp.plot_density_1d(_density_2d(c)), ValueError, "1-D"),
        (lambda c: bp.plot_density_1d(c.X), TypeError, "density"),
        (lambda c: bp.plot_density_1d(marginal_density(c.idata, 0, [0.0, 1.0]), em_density=[1.0]), ValueError,
         "em_density"),
        (lambda c: bp.plot_density_1d(marginal_density(c.idata, 0, [0.0, 1.0]), em_density=[1.0, np.nan]),
         ValueError, "em_density"),
        (lambda c: bp.plot_density_1d(marginal_density(c.idata, 0, [0.0, 1.0]), X=c.X), ValueError, "1-D"),
        (lambda c: bp.plot_pairs(c.X, c.assign, {9: None}), ValueError, "marginals"),
        (lambda c: bp.plot_pairs(c.X, c.assign, [1, 2]), TypeError, "marginals"),
        (lambda c: bp.plot_pairs(c.X, c.assign, {}, fig="f"), TypeError, "fig"),
        (lambda c: bp.plot_weights(c.idata, em=c.em3), ValueError,
         "components"),
        (lambda c: bp.plot_uncertainty(c.X), TypeError, "assignment"),
        (lambda c: bp.plot_selection(_selection_table(), criterion="foo"), ValueError, "criterion"),
        (lambda c: bp.plot_selection(_selection_table(), criterion="loo"), ValueError, "criterion"),
        (lambda c: bp.plot_selection(c.X), TypeError, "table"),
        (lambda c: bp.plot_selection(pd.DataFrame({"n_components": [1]})), ValueError, "covariance_type"),
        (lambda c: bp.plot_loo(pd.DataFrame({"n_components": [1]})), ValueError, "elpd_loo"),
        (lambda c: bp.plot_trace(c.idata, var_names="nope"), ValueError, "nope"),
        (lambda c: bp.plot_trace(c.idata, var_names=[1]), TypeError, "var_names"),
        (lambda c: bp.plot_trace(c.idata, relabel_draws="no"), ValueError, "relabel_draws"),
    ],
)
def test_plot_bad_arguments(fit, call, error, match):
    with pytest.raises(error, match=match):
        call(fit)


def test_invalid_posterior_values_are_refused(fit):
    post = fit.idata.posterior
    bad_cov = post["cov"].copy(data=post["cov"].values * -1.0)
    not_pd = az.InferenceData(posterior=post[["weights", "means"]].assign(cov=bad_cov))
    with pytest.raises(ValueError, match="positive definite"):
        predictive_density(not_pd, fit.X)
    bad_w = az.InferenceData(posterior=post.assign(weights=post["weights"] * 0.5))
    with pytest.raises(ValueError, match="sum to 1"):
        assignments(bad_w, fit.X)
    nan_means = az.InferenceData(posterior=post.assign(means=post["means"].where(post["means"] > 1e9)))
    with pytest.raises(ValueError, match="NaN"):
        relabel(nan_means)


# ------------------------------------------------------------ wrong answers fixed
def test_density_grid_axis_order_is_a_transpose(fit):
    straight = density_grid(fit.idata, n_points=7)
    swapped = density_grid(fit.idata, n_points=7, features=["b", "a"])
    assert swapped["features"] == ["b", "a"] and straight["features"] == ["a", "b"]
    np.testing.assert_array_equal(swapped["axes"][0], straight["axes"][1])
    d0 = predictive_density(fit.idata, straight["points"])["density"].values.reshape(straight["shape"])
    d1 = predictive_density(fit.idata, swapped["points"])["density"].values.reshape(swapped["shape"])
    np.testing.assert_allclose(d1, d0.T, rtol=1e-12)
    # points are always in the data's column order: column 0 runs along feature "a"'s axis
    assert set(swapped["points"][:, 0]) == set(straight["axes"][0])
    by_index = density_grid(fit.idata, n_points=7, features=[1, 0])
    np.testing.assert_array_equal(by_index["points"], swapped["points"])


def test_marginal_density_accepts_a_single_column(fit):
    grid = np.linspace(-5, 5, 11)
    flat = marginal_density(fit.idata, "b", grid)["density"].values
    column = marginal_density(fit.idata, 1, grid[:, None])["density"].values
    np.testing.assert_array_equal(flat, column)
    framed = marginal_density(fit.idata, "b", pd.DataFrame({"b": grid}))["density"].values
    np.testing.assert_array_equal(flat, framed)
    with pytest.raises(ValueError, match="missing"):
        marginal_density(fit.idata, "b", pd.DataFrame({"a": grid}))


def test_dataframe_columns_are_matched_by_name(fit):
    straight = assignments(fit.idata, fit.df)["probability"].values
    reordered = assignments(fit.idata, fit.df[["b", "a"]])["probability"].values
    np.testing.assert_array_equal(straight, reordered)
    np.testing.assert_array_equal(straight, assignments(fit.idata, fit.X)["probability"].values)
    dens = predictive_density(fit.idata, fit.df[["b", "a"]])
    np.testing.assert_array_equal(dens["coordinates"].values, fit.X)


def test_dataframe_on_an_unnamed_fit_warns_and_matches_by_position(fit):
    idata = fit.em_idata  # features 0, 1 (no names): matched by position, silently right
    np.testing.assert_allclose(assignments(idata, fit.df)["probability"].values, fit.em.predict_proba(fit.X),
                               atol=1e-10)
    post = idata.posterior.assign_coords(feature=["x0", "x1"], feature_bis=["x0", "x1"])
    placeholder = az.InferenceData(posterior=post)
    with pytest.warns(UserWarning, match="without feature names"):
        assignments(placeholder, fit.df)


def test_em_to_idata_keeps_names_and_reorders_columns(fit):
    em = GaussianMixtureEM(2, random_state=0).fit(fit.df)
    idata = em_to_idata(em, fit.df[["b", "a"]])
    assert list(idata.posterior.feature.values) == ["a", "b"]
    np.testing.assert_array_equal(idata.observed_data["obs"].values, fit.X)


def test_compare_fits_refuses_features_in_another_order(fit):
    em_swapped = GaussianMixtureEM(2, random_state=0).fit(fit.df[["b", "a"]])
    with pytest.raises(ValueError, match="same order"):
        compare_fits(em_swapped, fit.idata, fit.X)
    em_named = GaussianMixtureEM(2, random_state=0).fit(fit.df)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no sklearn feature-name warning either
        result = compare_fits(em_named, fit.idata, fit.df[["b", "a"]], X_test=fit.df)
    assert result.adjusted_rand_index > 0.9


def test_compare_k_rejects_a_float_k_instead_of_truncating(fit):
    with pytest.raises(TypeError, match="2.5"):
        compare_k(fit.X, [1, 2.5])


def test_no_nan_from_a_one_draw_posterior(fit):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no R-hat/ESS warnings either: there is nothing to diagnose
        result = summary(fit.em_idata)
    for name in result.data_vars:
        assert not np.isnan(result[name].values).any(), name
    assert "r_hat" not in result.metric.values and "diagnostics" in result.attrs
    assert float(result["weights"].sel(metric="sd").max()) == 0.0


def test_no_nan_for_a_one_component_posterior(fit):
    X = fit.X[:20]
    em = GaussianMixtureEM(1, random_state=0).fit(X)
    one = em_to_idata(em, X)
    post = one.posterior
    rng = np.random.default_rng(0)
    draws = post.isel(chain=[0, 0], draw=[0] * 8).assign_coords(chain=[0, 1], draw=np.arange(8))
    draws = draws.assign(means=draws["means"] + rng.normal(0, 0.01, draws["means"].shape))
    idata = az.InferenceData(posterior=draws)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = summary(idata)
    weights = result["weights"]
    assert not np.isnan(weights.values).any()
    assert float(weights.sel(metric="r_hat").max()) == 1.0 and float(weights.sel(metric="sd").max()) == 0.0
    assert not np.isnan(result["means"].values).any()
    assert not np.isnan(assignments(idata, X)["probability"].values).any()


def test_no_nan_summary_from_one_chain(fit):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # low ESS
        result = summary(fit.idata)
    for name in result.data_vars:
        assert not np.isnan(result[name].values).any(), name
    assert {"r_hat", "ess_bulk"} <= set(result.metric.values)
    assert float(result["means"].sel(metric="r_hat").max()) < 1.2


@pytest.mark.parametrize("scale", [1e10, 1e200, 1.7e308])
def test_far_points_give_limits_not_nan(fit, scale):
    far = np.array([[scale, -scale], [-scale, scale], [scale, scale]])
    result = assignments(fit.idata, far)
    prob = result["probability"].values
    assert np.isfinite(prob).all()
    np.testing.assert_allclose(prob.sum(axis=1), 1.0)
    assert np.isfinite(result["uncertainty"].values).all()
    dens = predictive_density(fit.idata, far)
    assert not np.isnan(dens["density"].values).any() and (dens["density"].values >= 0).all()
    assert not np.isnan(dens["log_density"].values).any()


def test_far_point_goes_to_the_nearest_component():
    # Two unit-variance components at -1 and +1: far right belongs to the right one.
    post = {"weights": np.array([[[0.9, 0.1]]]), "means": np.array([[[[-1.0], [1.0]]]]),
            "cov": np.ones((1, 1, 2, 1, 1))}
    dims = {"weights": ["component"], "means": ["component", "feature"],
            "cov": ["component", "feature", "feature_bis"]}
    idata = az.from_dict(posterior=post, dims=dims)
    prob = assignments(idata, np.array([[1e200], [-1e200]]))["probability"].values
    np.testing.assert_array_equal(prob, [[0.0, 1.0], [1.0, 0.0]])


def test_marginal_density_with_only_cholesky_factors(fit):
    post = fit.idata.posterior
    chol_only = az.InferenceData(posterior=post.drop_vars("cov"))
    grid = np.linspace(-4, 4, 9)
    np.testing.assert_allclose(marginal_density(chol_only, "a", grid)["density"].values,
                               marginal_density(fit.idata, "a", grid)["density"].values, rtol=1e-10)


def test_valid_extremes_still_work(fit):
    assert density_grid(fit.idata, n_points=2, margin=0)["points"].shape == (4, 2)
    assert sample_posterior_predictive(fit.idata, 1, random_seed=np.random.default_rng(0))["X"].shape == (1, 2)
    assert sample_posterior_predictive(fit.idata, np.int64(3), random_seed=np.int64(1))["X"].shape == (3, 2)
    assert relabel(fit.idata, max_iter=0).posterior.sizes == fit.idata.posterior.sizes
    one_row = assignments(fit.idata, fit.X[:1])["probability"].values
    assert one_row.shape == (1, 2)
    ax = bp.plot_uncertainty(fit.assign, probability_threshold=np.float64(0.5))
    assert ax.get_legend() is not None
