"""EM results do not depend on the units of the features (issue: robust on every data scale)."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import adjusted_rand_score

from bayesgmm import GaussianMixtureEM, select_model
from bayesgmm.datasets import load_faithful, make_mixture
from bayesgmm.scaling import FeatureScaling

COV_TYPES = ["full", "tied", "diag", "spherical"]
INITS = ["auto", "hierarchical", "kmeans", "k-means++", "random", "random_from_data"]

X_BASE, _ = make_mixture(80, n_components=2, n_features=2, random_state=3, separation=4)
Z_BASE = (X_BASE - X_BASE.mean(axis=0)) / X_BASE.std(axis=0)


def _fit(X, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return GaussianMixtureEM(2, random_state=0, tol=1e-8, max_iter=500, **kwargs).fit(X)


@settings(max_examples=40, deadline=None)
@given(
    cov_type=st.sampled_from(COV_TYPES),
    init=st.sampled_from(INITS),
    n_init=st.sampled_from([1, 5]),
    log_scales=st.lists(st.floats(-150, 150), min_size=2, max_size=2),
    offsets=st.lists(st.floats(-1e6, 1e6), min_size=2, max_size=2),
)
def test_em_is_equivariant_under_rescaling_and_shifting(cov_type, init, n_init, log_scales, offsets):
    scale = 10.0 ** np.array(log_scales)
    X = (Z_BASE + np.array(offsets)) * scale  # offsets in units of the spread
    ref = _fit(Z_BASE, covariance_type=cov_type, init_params=init, n_init=n_init)
    fit = _fit(X, covariance_type=cov_type, init_params=init, n_init=n_init)
    # Same log-likelihood up to the change of units (the Jacobian sum log scale).
    assert fit.lower_bound_ + np.log(scale).sum() == pytest.approx(ref.lower_bound_, rel=1e-6, abs=1e-6)
    assert adjusted_rand_score(ref.labels_, fit.labels_) == 1.0
    # Parameters map back through the change of units (restarts that tie may order
    # the components differently: match them through the shared partition).
    order = [np.bincount(ref.labels_[fit.labels_ == k], minlength=2).argmax() for k in range(2)]
    np.testing.assert_allclose(fit.means_ / scale - np.array(offsets), ref.means_[order], atol=1e-5)
    np.testing.assert_allclose(fit.full_covariances_ / np.outer(scale, scale), ref.full_covariances_[order],
                               rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(fit.predict_proba(X), ref.predict_proba(Z_BASE)[:, order], atol=1e-6)
    np.testing.assert_allclose(fit.score_samples(X) + np.log(scale).sum(), ref.score_samples(Z_BASE),
                               rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("init", ["k-means++", "random_from_data", "kmeans", "random"])
def test_large_values_fit_with_every_start(init):
    # Regression: k-means++ starts failed with "ill-defined empirical covariance" at ~1e5.
    X = load_faithful().to_numpy()
    small = _fit(X, init_params=init, n_init=3)
    big = _fit(X * 1e5, init_params=init, n_init=3)
    assert adjusted_rand_score(small.labels_, big.labels_) == 1.0
    np.testing.assert_allclose(big.means_ / 1e5, small.means_, rtol=1e-6)


@pytest.mark.parametrize("factor", [1e-150, 1e-12, 1e-6, 1e150])
def test_extreme_magnitudes_give_finite_equivariant_fits(factor):
    ref = _fit(Z_BASE)
    fit = _fit(Z_BASE * factor)
    assert not fit.degenerate_
    assert adjusted_rand_score(ref.labels_, fit.labels_) == 1.0
    for name in ("weights_", "means_", "covariances_", "precisions_", "precisions_cholesky_"):
        assert np.all(np.isfinite(getattr(fit, name))), name


@pytest.mark.parametrize("factor", [1e-300, 1e-160, 1e160, 1e300])
def test_unrepresentable_scale_is_a_clear_error(factor):
    with pytest.raises(ValueError, match="float64"):
        _fit(Z_BASE * factor)


def test_feature_with_no_resolution_is_a_clear_error():
    X = Z_BASE.copy()
    X[:, 0] = 1e9 + 1e-5 * X[:, 0]  # a relative spread of 1e-14: a few float64 steps
    with pytest.raises(ValueError, match="resolve"):
        _fit(X)


def test_degenerate_check_is_relative_to_the_feature_spread():
    # Raw breast_cancer: the smallest feature variance is 7e-6; an absolute floor
    # flagged 33 of 36 fits (a single Gaussian too) as collapsed.
    from sklearn.datasets import load_breast_cancer

    X = load_breast_cancer().data
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = select_model(X, n_components=[1, 2], covariance_types=["diag", "full"], random_state=0)
    assert not result.table.loc[result.table["n_components"] == 1, "degenerate"].any()
    z = (X - X.mean(axis=0)) / X.std(axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        std = select_model(z, n_components=[1, 2], covariance_types=["diag", "full"], random_state=0)
    assert result.table["degenerate"].tolist() == std.table["degenerate"].tolist()
    assert result.best_params_ == std.best_params_


def test_mixed_scales_select_what_standardised_data_select():
    X = Z_BASE * np.array([1e9, 1e-9])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        raw = select_model(X, n_components=range(1, 4), random_state=0)
        std = select_model(Z_BASE, n_components=range(1, 4), random_state=0)
    assert raw.best_params_ == std.best_params_
    np.testing.assert_allclose(raw.table["bic"] + 2 * len(X) * np.log([1e9, 1e-9]).sum(), std.table["bic"],
                               rtol=1e-6)


def test_tiny_sample_weights_do_not_change_the_fit():
    ref = _fit(Z_BASE)
    fit = GaussianMixtureEM(2, random_state=0, tol=1e-8, max_iter=500).fit(
        Z_BASE, sample_weight=np.full(len(Z_BASE), 1e-310))
    np.testing.assert_allclose(fit.weights_, ref.weights_, rtol=1e-8)
    assert fit.weights_.sum() == pytest.approx(1.0)


def test_max_iter_zero_reports_the_starting_log_likelihood():
    from sklearn.exceptions import ConvergenceWarning

    with pytest.warns(ConvergenceWarning, match="max_iter=0"):
        gm = GaussianMixtureEM(2, max_iter=0, random_state=0).fit(Z_BASE)
    assert np.isfinite(gm.lower_bound_)
    assert gm.lower_bound_ == pytest.approx(gm.score(Z_BASE), rel=1e-10)


@pytest.mark.parametrize("change", [{"n_components": 3}, {"covariance_type": "diag"}])
def test_warm_start_after_changing_the_shape_starts_cold(change):
    gm = GaussianMixtureEM(2, warm_start=True, random_state=0).fit(Z_BASE)
    gm.set_params(**change).fit(Z_BASE)
    assert gm.means_.shape[0] == gm.n_components
    assert np.all(np.isfinite(gm.covariances_))


def test_feature_scaling_survives_float64_limits():
    # Squares of these values leave float64; the centre and spread must not.
    X = np.array([[1e-150, 1e150], [3e-150, -1e150], [2e-150, 0.0]])
    scaling = FeatureScaling.from_data(X)
    np.testing.assert_allclose(scaling.centre, [2e-150, 0.0], atol=1e-160)
    np.testing.assert_allclose(scaling.scale, [np.sqrt(2 / 3) * 1e-150, np.sqrt(2 / 3) * 1e150])
    Z = scaling.transform(X)
    assert np.all(np.isfinite(Z))
    np.testing.assert_allclose(Z.std(axis=0), 1.0)
    np.testing.assert_allclose(scaling.inverse_transform(Z), X, rtol=1e-12)
