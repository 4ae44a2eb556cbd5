import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from sklearn.utils.estimator_checks import check_clustering, parametrize_with_checks

from bayesgmm import DegenerateFitWarning, GaussianMixtureEM
from bayesgmm.datasets import load_faithful, make_mixture

COV_TYPES = ["full", "tied", "diag", "spherical"]


@parametrize_with_checks(
    [GaussianMixtureEM()],
    expected_failed_checks=lambda est: {
        # check_clustering asks a default-constructed clusterer to recover three blobs.
        # A mixture's default is one component (as scikit-learn's GaussianMixture and
        # mclust's smallest model), which cannot; the same check passes with
        # n_components=3 in test_check_clustering_with_three_components below.
        "check_clustering": "default n_components=1 cannot recover 3 blobs",
        # Its data have 27 rows with a positive weight for 30 features: a full covariance
        # is refused there (see test_linearly_dependent_features_are_refused_for_matrix_covariances);
        # the same check passes with diag covariances below.
        "check_sample_weight_equivalence_on_dense_data": "fewer rows than features for a full covariance",
    },
)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def test_check_clustering_with_three_components():
    check_clustering("GaussianMixtureEM", GaussianMixtureEM(n_components=3, random_state=0))


def test_sample_weight_equivalence_with_diag_covariances():
    from sklearn.utils.estimator_checks import check_sample_weight_equivalence_on_dense_data

    check_sample_weight_equivalence_on_dense_data("GaussianMixtureEM", GaussianMixtureEM(covariance_type="diag"))


@pytest.fixture(scope="module")
def overlapping():
    X, truth = make_mixture(400, n_components=3, n_features=3, random_state=1, separation=3)
    return X, truth


@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_agrees_with_sklearn(overlapping, cov_type):
    # On standardised data, where our units (reg_covar relative to each feature's
    # variance, spherical on the standardised scale) coincide with scikit-learn's.
    X, _ = overlapping
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    start = GaussianMixture(3, covariance_type=cov_type, init_params="random", max_iter=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start.fit(X)
        init = dict(
            weights_init=start.weights_, means_init=start.means_, precisions_init=start.precisions_,
            tol=1e-6, max_iter=300,
        )
        ref = GaussianMixture(3, covariance_type=cov_type, **init).fit(X)
        ours = GaussianMixtureEM(3, covariance_type=cov_type, acceleration=None, **init).fit(X)
    assert ours.n_iter_ == ref.n_iter_
    assert ours.lower_bound_ == pytest.approx(ref.lower_bound_, rel=1e-8, abs=0)
    np.testing.assert_allclose(ours.means_, ref.means_, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(ours.covariances_, ref.covariances_, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(ours.predict_proba(X), ref.predict_proba(X), atol=1e-8)


@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_probabilistic_properties(overlapping, cov_type):
    X, _ = overlapping
    gm = GaussianMixtureEM(3, covariance_type=cov_type, random_state=0, tol=1e-8, max_iter=200)
    labels = gm.fit_predict(X)
    resp = gm.predict_proba(X)
    np.testing.assert_allclose(resp.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_array_equal(gm.predict(X), resp.argmax(axis=1))
    np.testing.assert_array_equal(labels, gm.predict(X))
    np.testing.assert_array_equal(labels, gm.labels_)
    refit = GaussianMixtureEM(3, covariance_type=cov_type, random_state=0, tol=1e-8, max_iter=200).fit(X)
    np.testing.assert_array_equal(labels, refit.predict(X))
    # EM never decreases the likelihood.
    assert np.all(np.diff(gm.lower_bounds_) >= -1e-10)
    assert gm.score(X) == pytest.approx(gm.score_samples(X).mean())


@pytest.mark.parametrize("init_params", ["kmeans", "k-means++", "random", "random_from_data", "hierarchical"])
def test_more_inits_never_worse(overlapping, init_params):
    X, _ = overlapping
    one = GaussianMixtureEM(3, init_params=init_params, random_state=3, tol=1e-6).fit(X)
    many = GaussianMixtureEM(3, init_params=init_params, random_state=3, tol=1e-6, n_init=5).fit(X)
    assert many.lower_bound_ >= one.lower_bound_ - 1e-12


@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_sample_moments_match(cov_type):
    X, truth = make_mixture(2000, n_components=2, n_features=2, covariance_type=cov_type, random_state=0)
    gm = GaussianMixtureEM(2, covariance_type=cov_type, random_state=0).fit(X)
    draws, comp = gm.sample(200_000)
    assert draws.shape == (200_000, 2)
    np.testing.assert_allclose(np.bincount(comp) / len(comp), gm.weights_, atol=5e-3)
    mixture_mean = gm.weights_ @ gm.means_
    np.testing.assert_allclose(draws.mean(axis=0), mixture_mean, atol=0.05)
    full = gm.full_covariances_
    for k in range(2):
        np.testing.assert_allclose(np.cov(draws[comp == k].T), full[k], atol=0.06)


@pytest.mark.parametrize("cov_type, expected", [("spherical", 13), ("diag", 21), ("tied", 26), ("full", 41)])
def test_parameter_counts(cov_type, expected):
    X, _ = make_mixture(200, n_components=2, n_features=5, random_state=0)
    gm = GaussianMixtureEM(2, covariance_type=cov_type, random_state=0).fit(X)
    assert gm.n_parameters() == expected
    n = X.shape[0]
    loglik = gm.score_samples(X).sum()
    assert gm.bic(X) == pytest.approx(-2 * loglik + expected * np.log(n))
    assert gm.aic(X) == pytest.approx(-2 * loglik + 2 * expected)
    resp = gm.predict_proba(X)
    assert gm.icl(X) == pytest.approx(gm.bic(X) - 2 * np.log(resp.max(axis=1)).sum())
    assert gm.icl(X) >= gm.bic(X)


@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_integer_weights_equal_repeated_rows(overlapping, cov_type):
    X, _ = overlapping
    rng = np.random.default_rng(0)
    weights = rng.integers(0, 4, size=X.shape[0])
    repeated = np.repeat(X, weights, axis=0)
    kw = dict(covariance_type=cov_type, tol=1e-8, max_iter=500, init_params="hierarchical")
    # The hierarchical (weighted Ward) start is itself weight-equivalent.
    a = GaussianMixtureEM(3, **kw).fit(X, sample_weight=weights)
    b = GaussianMixtureEM(3, **kw).fit(repeated)
    np.testing.assert_allclose(a.weights_, b.weights_, rtol=1e-7)
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(a.covariances_, b.covariances_, rtol=1e-7, atol=1e-9)
    assert a.lower_bound_ == pytest.approx(b.lower_bound_, rel=1e-9)


def test_float32_path(overlapping):
    X, _ = overlapping
    gm64 = GaussianMixtureEM(3, random_state=0).fit(X)
    gm32 = GaussianMixtureEM(3, random_state=0).fit(X.astype(np.float32))
    assert gm32.means_.dtype == np.float32
    # Same optimum; the multi-start may order the components differently.
    order32, order64 = np.argsort(gm32.means_[:, 0]), np.argsort(gm64.means_[:, 0])
    np.testing.assert_allclose(gm32.means_[order32], gm64.means_[order64], rtol=1e-3, atol=1e-3)
    assert gm32.lower_bound_ == pytest.approx(gm64.lower_bound_, rel=1e-5)


def test_chunked_pass_matches_single_chunk(monkeypatch):
    import bayesgmm.em as em

    X, _ = make_mixture(3000, n_components=4, n_features=3, random_state=2)
    # One start, plain EM: rounding-level differences between the chunkings must not
    # be amplified by the start's selection or by accepting or rejecting a jump.
    kw = dict(random_state=0, init_params="hierarchical", acceleration=None)
    big = GaussianMixtureEM(4, n_threads=1, **kw).fit(X)
    monkeypatch.setattr(em, "_CHUNK_BYTES", 4096)  # many small chunks, on two threads
    small = GaussianMixtureEM(4, n_threads=2, **kw).fit(X)
    assert small.n_iter_ == big.n_iter_
    np.testing.assert_allclose(small.means_, big.means_, rtol=1e-10)
    np.testing.assert_allclose(small.predict_proba(X), big.predict_proba(X), atol=1e-10)


def test_warm_start_continues(overlapping):
    X, _ = overlapping
    gm = GaussianMixtureEM(3, max_iter=2, warm_start=True, random_state=0, tol=1e-10)
    with pytest.warns(ConvergenceWarning):
        gm.fit(X)
    first = gm.lower_bound_
    with pytest.warns(ConvergenceWarning):
        gm.fit(X)
    assert gm.lower_bound_ >= first


# --------------------------------------------------------------- degenerate fits
def test_collapsed_component_is_flagged():
    rng = np.random.default_rng(0)
    blob = rng.normal(size=(150, 2))
    ties = np.tile([[6.0, 6.0]], (30, 1))  # 30 identical points: a spurious maximum
    X = np.vstack([blob, ties])
    with pytest.warns(DegenerateFitWarning, match="collapsed"):
        gm = GaussianMixtureEM(2, random_state=0).fit(X)
    assert gm.degenerate_
    assert gm.degenerate_components_.size == 1
    for name in ("weights_", "means_", "covariances_", "precisions_"):
        assert np.all(np.isfinite(getattr(gm, name)))


@pytest.mark.parametrize("value", [0.0, 0.1, 3.0, -1e-200, 1e200])
def test_constant_column_is_refused_by_name(value):
    # Every component's variance there would be the reg_covar floor: a "collapsed"
    # component in every fit (K=1 included) and the same large term in every model's
    # log-likelihood but the spherical ones. The mean of 150 values 0.1 is not exactly 0.1:
    # still "constant", not "varies by only".
    X = np.column_stack([np.random.default_rng(1).normal(size=150), np.full(150, value)])
    for cov in ("full", "diag", "spherical"):
        with pytest.raises(ValueError, match=r"\['x1'\] are constant.*VarianceThreshold"):
            GaussianMixtureEM(1, covariance_type=cov, random_state=0).fit(X)


def test_column_constant_over_the_weighted_rows_is_refused():
    X = np.column_stack([np.random.default_rng(1).normal(size=50), np.r_[np.full(49, 2.0), 7.0]])
    GaussianMixtureEM(1, random_state=0).fit(X)  # the last row varies it
    with pytest.raises(ValueError, match=r"\['x1'\] are constant"):
        GaussianMixtureEM(2, random_state=0).fit(X, sample_weight=np.r_[np.ones(49), 0.0])


@pytest.mark.parametrize("scale", [1e-100, 1.0, 1e100])
def test_linearly_dependent_features_are_refused_for_matrix_covariances(scale):
    # A total beside its parts, or one length in two units: every component's covariance
    # sat at the reg_covar floor along that direction, so every full or tied fit (K=1
    # included) was "degenerate", and select_model chose K=8 diag on iris with such a
    # column (K=2 full without it).
    from sklearn.datasets import load_iris

    X = load_iris().data
    for extra, involved in ((X[:, 0] + X[:, 1], "'x0', 'x1', 'x4'"), (2.54 * X[:, 2], "'x2', 'x4'")):
        Xd = np.column_stack([X, extra]) * scale
        for cov in ("full", "tied"):
            with pytest.raises(ValueError, match=rf"Features \[{involved}\] are \(nearly\) linearly dependent"):
                GaussianMixtureEM(1, covariance_type=cov, random_state=0).fit(Xd)
        for cov in ("diag", "spherical"):  # per-feature variances are not affected
            assert not GaussianMixtureEM(2, covariance_type=cov, random_state=0).fit(Xd).degenerate_


def test_fewer_rows_than_features_are_refused_for_matrix_covariances():
    X = np.random.default_rng(0).normal(size=(12, 8))
    with pytest.raises(ValueError, match="need more rows with a positive weight than features"):
        GaussianMixtureEM(1, random_state=0).fit(X, sample_weight=np.r_[np.ones(8), np.zeros(4)])
    GaussianMixtureEM(1, random_state=0).fit(X)  # 12 rows: fine
    GaussianMixtureEM(1, covariance_type="diag", random_state=0).fit(X[:5])


def test_rank_check_refuses_only_where_a_single_component_would_collapse():
    # The cut-off is reg_covar (K=1's covariance reaches the collapse floor, 2 reg_covar,
    # exactly when the data's smallest correlation eigenvalue is below reg_covar): features
    # correlated at 0.9999 with an eigenvalue of about 1.5e-6 still fit, as before.
    rng = np.random.default_rng(0)
    x, z = rng.normal(size=(2, 2000))
    X = np.column_stack([x, x + np.sqrt(3e-6) * rng.normal(size=2000), z])
    for cov in ("full", "tied"):
        assert not GaussianMixtureEM(1, covariance_type=cov, random_state=0).fit(X).degenerate_
    with pytest.raises(ValueError, match="below reg_covar=1.0e-05"):
        GaussianMixtureEM(1, reg_covar=1e-5, random_state=0).fit(X)


def test_rank_check_counts_only_weighted_rows_on_large_data():
    # More than 10,000 rows: the rows checked are every k-th of those with a positive
    # weight (every k-th of all rows gave "0 rows for 3 features" here).
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30_000, 3))
    weights = (np.arange(30_000) % 3 != 0).astype(float)
    GaussianMixtureEM(1, random_state=0, max_iter=5).fit(X, sample_weight=weights)


def test_duplicated_points_fit():
    X = np.repeat(np.array([[0.0, 0.0], [1.0, 2.0], [5.0, 5.0]]), 10, axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gm = GaussianMixtureEM(3, random_state=0).fit(X)
    assert np.all(np.isfinite(gm.means_)) and np.all(np.isfinite(gm.covariances_))
    assert gm.degenerate_


# --------------------------------------------------------------------- bad input
X_OK = np.random.default_rng(0).normal(size=(20, 2))


@pytest.mark.parametrize(
    "X, kwargs, match",
    [
        (np.array([[0.0, np.nan]] * 5), {}, "NaN"),
        (np.array([[0.0, np.inf]] * 5), {}, r"infinity in 5 of 5 rows.*, in feature\(s\) \['x1'\]"),
        (np.arange(10.0), {}, "2D"),
        (np.empty((0, 2)), {}, "0 sample"),
        (X_OK[:3], {"n_components": 4}, "n_samples >= n_components"),
        (X_OK, {"covariance_type": "banana"}, "covariance_type"),
        (X_OK, {"init_params": "banana"}, "init_params"),
        (X_OK, {"n_components": 2, "means_init": np.zeros((3, 2))}, "means_init"),
        (X_OK, {"n_components": 2, "weights_init": [0.2, 0.2]}, "weights_init"),
        (X_OK, {"n_components": 2, "precisions_init": np.ones((2, 3))}, "precisions_init"),
        (X_OK, {"n_components": 2, "covariance_type": "diag", "precisions_init": -np.ones((2, 2))},
         "positive definite"),
        (X_OK, {"n_components": 0}, "n_components"),
        (X_OK, {"tol": -1}, "tol"),
    ],
)
def test_bad_input_is_a_clear_value_error(X, kwargs, match):
    with pytest.raises(ValueError, match=match):
        GaussianMixtureEM(**kwargs).fit(X)


def test_string_n_components_is_a_type_error():
    with pytest.raises(TypeError, match="n_components"):
        GaussianMixtureEM(n_components="3").fit(X_OK)


@pytest.mark.parametrize(
    "weights, match",
    [(-np.ones(20), "non-negative"), (np.zeros(20), "all zero"), (np.ones(5), "shape")],
)
def test_bad_sample_weight(weights, match):
    with pytest.raises(ValueError, match=match):
        GaussianMixtureEM(2).fit(X_OK, sample_weight=weights)


def test_wrong_number_of_features_at_predict():
    gm = GaussianMixtureEM(2, random_state=0).fit(X_OK)
    with pytest.raises(ValueError, match="features"):
        gm.predict(np.zeros((3, 5)))


@settings(max_examples=25, deadline=None)
@given(
    n=st.integers(8, 60),
    d=st.integers(1, 3),
    k=st.integers(1, 3),
    cov_type=st.sampled_from(COV_TYPES),
    seed=st.integers(0, 10_000),
)
def test_random_data_never_gives_nan(n, d, k, cov_type, seed):
    X = np.random.default_rng(seed).normal(size=(n, d)) * 10.0 ** np.random.default_rng(seed).integers(-3, 4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            gm = GaussianMixtureEM(k, covariance_type=cov_type, random_state=seed).fit(X)
        except ValueError as err:  # allowed only with the reg_covar advice
            assert "reg_covar" in str(err)
            return
    resp = gm.predict_proba(X)
    np.testing.assert_allclose(resp.sum(axis=1), 1.0, atol=1e-10)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        assert np.all(np.isfinite(getattr(gm, name)))


# ------------------------------------------------------------ acceleration, starts
@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_squarem_reaches_the_plain_em_optimum_in_fewer_passes(overlapping, cov_type):
    X, _ = overlapping
    start = GaussianMixtureEM(3, covariance_type=cov_type, init_params="random", max_iter=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        start.fit(X)
    init = dict(weights_init=start.weights_, means_init=start.means_, precisions_init=start.precisions_,
                tol=1e-9, max_iter=5000, covariance_type=cov_type)
    plain = GaussianMixtureEM(3, acceleration=None, **init).fit(X)
    fast = GaussianMixtureEM(3, acceleration="squarem", **init).fit(X)
    assert fast.lower_bound_ == pytest.approx(plain.lower_bound_, rel=1e-7)
    np.testing.assert_allclose(fast.means_, plain.means_, atol=1e-3)
    assert fast.n_iter_ < plain.n_iter_
    assert np.all(np.diff(fast.lower_bounds_) >= -1e-12)  # the safeguard keeps it monotone


@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_default_start_reaches_the_best_of_the_classic_starts_on_faithful(cov_type):
    from sklearn.cluster import KMeans

    X = load_faithful().to_numpy()
    X = (X - X.mean(axis=0)) / X.std(axis=0)  # where spherical means the same for scikit-learn
    # Optima, not stopping points, are compared: at tol=1e-6 two fits of the same optimum
    # can stop a few 1e-6 per row apart (faithful K=4 diag), so every fit runs to 1e-9.
    tol = 1e-9
    for k in (2, 3, 4):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ours = GaussianMixtureEM(k, covariance_type=cov_type, random_state=0, tol=tol).fit(X)
            others = [
                GaussianMixtureEM(k, covariance_type=cov_type, init_params="hierarchical", tol=tol).fit(X),
                GaussianMixtureEM(k, covariance_type=cov_type, acceleration=None, tol=tol, random_state=0,
                                  means_init=KMeans(k, n_init=10, random_state=0).fit(X).cluster_centers_).fit(X),
                GaussianMixture(k, covariance_type=cov_type, tol=tol, max_iter=5000, random_state=0).fit(X),
            ]
        best = max(m.score(X) for m in others)
        assert ours.score(X) >= best - 1e-6, (k, ours.score(X), [m.score(X) for m in others])


@pytest.mark.parametrize("cov_type", COV_TYPES)
def test_one_component_default_start_is_the_closed_form_fit(cov_type):
    # K=1 has one optimum, the weighted mean and covariance: the default start is that
    # M-step alone (no short runs), and EM only confirms it.
    X = load_faithful().to_numpy()
    weights = np.random.default_rng(0).uniform(0.5, 2.0, len(X))
    model = GaussianMixtureEM(1, covariance_type=cov_type, random_state=0).fit(X, sample_weight=weights)
    mean = weights @ X / weights.sum()
    assert model.n_iter_ <= 2
    np.testing.assert_allclose(model.means_[0], mean, rtol=1e-12)
    if cov_type == "full":
        centred = X - mean
        cov = (centred * weights[:, None]).T @ centred / weights.sum()
        np.testing.assert_allclose(model.covariances_[0], cov, rtol=1e-5)  # reg_covar adds ~1e-6


def test_row_log_sum_exp_is_scipys():
    from scipy.special import logsumexp

    from bayesgmm.em import _log_sum_exp_rows

    rng = np.random.default_rng(0)
    values = np.vstack([rng.normal(scale=300, size=(50, 7)), [[-np.inf] * 7], [[np.inf] + [0.0] * 6],
                        [[np.nan] + [1.0] * 6], [[1e308] * 7], [[-1e308] + [0.0] * 6]])
    with np.errstate(all="ignore"):
        expected = logsumexp(values, axis=1)
    np.testing.assert_allclose(_log_sum_exp_rows(values.copy()), expected, rtol=1e-14)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("cov_type", ["full", "tied", "diag", "spherical"])
def test_shared_second_moment_is_the_second_moment_of_repeated_residuals(cov_type, dtype):
    # The start's pass: every component sees the same residuals, so the per-type
    # shortcut must equal the generic (rows, K, D) computation.
    from bayesgmm.covariance import get_covariance_type

    rng = np.random.default_rng(1)
    y = rng.normal(size=(200, 5)).astype(dtype)
    resp = (rng.dirichlet(np.ones(4), size=200) * rng.uniform(0.5, 2.0, (200, 1))).astype(dtype)
    cov = get_covariance_type(cov_type)
    generic = cov.second_moment(resp[:, :, None] * y[:, None, :], np.broadcast_to(y[:, None, :], (200, 4, 5)))
    shared = cov.shared_second_moment(resp, y)
    assert shared.shape == generic.shape
    np.testing.assert_allclose(shared, generic, rtol=1e-12 if dtype == np.float64 else 2e-5,
                               atol=1e-12 if dtype == np.float64 else 1e-4)
