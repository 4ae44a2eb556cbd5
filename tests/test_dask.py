"""Out-of-core / distributed EM on dask collections equals the in-memory fit."""

import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

da = pytest.importorskip("dask.array")
dd = pytest.importorskip("dask.dataframe")
distributed = pytest.importorskip("distributed")
import dask  # noqa: E402

import bayesgmm._dask  # noqa: E402
from bayesgmm import GaussianMixtureEM, select_model  # noqa: E402
from bayesgmm.datasets import make_mixture  # noqa: E402

RTOL = 1e-10
FITTED = ("weights_", "means_", "covariances_", "precisions_cholesky_", "lower_bounds_")


@pytest.fixture(scope="module")
def data():
    X, _ = make_mixture(800, n_components=3, n_features=4, random_state=1, separation=3)
    return X


@pytest.fixture(scope="module")
def client():
    # A real scheduler and two single-threaded workers (in this process: worker processes
    # would spend longer importing the package than the fits take on two cores).
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        yield client


def _fit(X, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return GaussianMixtureEM(**params).fit(X)


def assert_same_fit(ours, ref):
    assert ours.n_iter_ == ref.n_iter_
    assert ours.converged_ == ref.converged_
    assert ours.lower_bound_ == pytest.approx(ref.lower_bound_, rel=RTOL, abs=0)
    for name in FITTED:
        np.testing.assert_allclose(getattr(ours, name), getattr(ref, name), rtol=RTOL, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(ours.scaling_.centre, ref.scaling_.centre, rtol=RTOL)
    np.testing.assert_allclose(ours.scaling_.scale, ref.scaling_.scale, rtol=RTOL)


@pytest.mark.parametrize("cov_type", ["full", "diag"])
def test_local_cluster_equals_in_memory(client, data, cov_type):
    # Fewer rows than the start's sample: the default (hierarchical) start sees every row.
    params = dict(n_components=3, covariance_type=cov_type, random_state=0, tol=1e-8, max_iter=200)
    ref = _fit(data, **params)
    Xd = da.from_array(data, chunks=(300, 2))  # uneven row blocks, split columns
    ours = _fit(Xd, **params)
    assert_same_fit(ours, ref)
    labels = ours.labels_
    assert isinstance(labels, da.Array)
    np.testing.assert_array_equal(labels.compute(), ref.labels_)
    assert ours.bic(Xd) == pytest.approx(ref.bic(data), rel=RTOL)
    assert client.run(lambda: 1)  # the workers are alive (ran the fit)


@pytest.mark.parametrize("cov_type", ["tied", "spherical"])
def test_threaded_sampled_start_and_zarr(tmp_path, monkeypatch, cov_type):
    # More rows than the start's sample (made small here): the same start given explicitly,
    # the data read block by block from a Zarr store on disk.
    monkeypatch.setattr(bayesgmm._dask, "START_SAMPLE_ROWS", 1000)
    X, _ = make_mixture(3000, n_components=3, n_features=3, random_state=2, separation=3)
    start = _fit(X[:500], n_components=3, covariance_type=cov_type, random_state=0, max_iter=3)
    params = dict(n_components=3, covariance_type=cov_type, tol=1e-8, max_iter=100, weights_init=start.weights_,
                  means_init=start.means_, precisions_init=start.precisions_)
    if "acceleration" in GaussianMixtureEM().get_params():
        # The extrapolation also reads the start's covariances, which the initialiser sets
        # (from the sample) and precisions_init does not override: compare plain EM.
        params["acceleration"] = None
    ref = _fit(X, **params)
    da.from_array(X, chunks=(700, 3)).to_zarr(str(tmp_path / "X.zarr"))
    Xd = da.from_zarr(str(tmp_path / "X.zarr"))
    with dask.config.set(scheduler="threads"):
        ours = _fit(Xd, **params)
        assert_same_fit(ours, ref)
        assert ours.score(Xd) == pytest.approx(ref.score(X), rel=RTOL)
    # With the default start, the sample gives a start close enough to reach the same optimum.
    sampled = _fit(Xd, n_components=3, covariance_type=cov_type, random_state=0, tol=1e-8, max_iter=300)
    assert sampled.lower_bound_ == pytest.approx(ref.lower_bound_, rel=1e-6)


def test_predictions_are_lazy_dask_arrays(data):
    params = dict(n_components=3, init_params="k-means++", random_state=0)
    ref = _fit(data, **params)
    ours = _fit(da.from_array(data, chunks=300), **params)
    Xd = da.from_array(data, chunks=333)
    results = {"predict": ours.predict(Xd), "predict_proba": ours.predict_proba(Xd),
               "score_samples": ours.score_samples(Xd)}
    for name, value in results.items():
        assert isinstance(value, da.Array), name
        np.testing.assert_allclose(value.compute(), getattr(ref, name)(data), rtol=RTOL, atol=1e-14, err_msg=name)
    assert results["predict_proba"].shape == (data.shape[0], 3)
    for name, value in ours.criteria(Xd).items():
        assert value == pytest.approx(ref.criteria(data)[name], rel=RTOL), name
    assert ours.score(Xd) == pytest.approx(ref.score(data), rel=RTOL)
    # An estimator fitted in memory predicts on dask input as well.
    np.testing.assert_array_equal(ref.predict(Xd).compute(), ref.predict(data))


def test_dataframe_keeps_feature_names_and_weights(data):
    frame = pd.DataFrame(data, columns=["a", "b", "c", "d"])
    w = np.random.RandomState(0).uniform(0.1, 2.0, data.shape[0])
    params = dict(n_components=3, covariance_type="full", init_params="k-means++", random_state=0, tol=1e-8)
    ref = _fit(frame, **params)
    ours = _fit(dd.from_pandas(frame, npartitions=3), **params)  # partition lengths unknown to dask
    assert list(ours.feature_names_in_) == ["a", "b", "c", "d"]
    assert_same_fit(ours, ref)
    np.testing.assert_array_equal(ours.predict(dd.from_pandas(frame, npartitions=2)).compute(), ref.labels_)
    with pytest.raises(ValueError, match="feature names should match"):
        ours.predict(dd.from_pandas(frame.rename(columns={"a": "z"}), npartitions=2))
    # Weights as a dask array, with blocks that differ from the data's.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref_w = GaussianMixtureEM(**params).fit(data, sample_weight=w)
        ours_w = GaussianMixtureEM(**params).fit(da.from_array(data, chunks=(300, 4)),
                                                 sample_weight=da.from_array(w, chunks=250))
    assert_same_fit(ours_w, ref_w)


def test_nan_and_bad_weights_give_clear_errors(data):
    X = data.copy()
    X[7, 2] = np.nan
    X[600, 0] = np.inf
    Xd = da.from_array(X, chunks=500)  # nothing is computed before the first reduction
    with pytest.raises(ValueError, match=r"NaN or infinite values \(2 row"):
        GaussianMixtureEM(2).fit(Xd)
    fitted = _fit(da.from_array(data, chunks=500), n_components=2, random_state=0)
    labels = fitted.predict(Xd)  # lazy: the error comes when the block is computed
    with pytest.raises(ValueError, match="NaN or infinite"):
        labels.compute()
    with pytest.raises(ValueError, match="non-negative"):
        GaussianMixtureEM(2).fit(da.from_array(data, chunks=500), sample_weight=-np.ones(data.shape[0]))
    with pytest.raises(ValueError, match="n_samples >= n_components"):
        GaussianMixtureEM(5).fit(da.from_array(data[:4], chunks=2))
    with pytest.raises(ValueError, match="numeric"):
        GaussianMixtureEM(2).fit(dd.from_pandas(pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": list("xyz")}),
                                                npartitions=1))


def test_select_model_on_dask_array(data):
    grid = dict(n_components=[1, 3], covariance_types=["full", "diag"], random_state=0, max_iter=200)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = select_model(data[:400], **grid)
        ours = select_model(da.from_array(data[:400], chunks=150), **grid)
    assert ours.best_params_ == ref.best_params_
    np.testing.assert_allclose(ours.table["bic"], ref.table["bic"], rtol=RTOL)


def test_dask_stays_optional_at_import():
    code = "import sys, bayesgmm, bayesgmm.selection; assert 'dask' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.parametrize("value", [0.1, 3.0])
def test_constant_column_is_refused_out_of_core_too(value):
    X = np.column_stack([np.random.default_rng(1).normal(size=1000), np.full(1000, value)])
    with pytest.raises(ValueError, match=r"\['x1'\] are constant"):
        GaussianMixtureEM(2, random_state=0).fit(da.from_array(X, chunks=(300, 2)))


def test_column_constant_over_the_weighted_rows_is_named_constant_out_of_core():
    # The moments' spread of a column constant only where the weight is positive came out
    # at 6e-17, not 0: the message said "varies by only", where in memory it says "constant".
    X = np.column_stack([np.random.default_rng(1).normal(size=1000), np.r_[np.full(999, 0.1), 7.0]])
    weights = np.r_[np.ones(999), 0.0]
    for data in (X, da.from_array(X, chunks=(300, 2))):
        with pytest.raises(ValueError, match=r"\['x1'\] are constant"):
            GaussianMixtureEM(2, random_state=0).fit(data, sample_weight=da.from_array(weights, chunks=300))
