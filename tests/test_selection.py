import warnings

import numpy as np
import pandas as pd
import pytest
from joblib import cpu_count

from bayesgmm import DegenerateFitWarning, GaussianMixtureEM, select_model
from bayesgmm.covariance import get_covariance_type
from bayesgmm.datasets import load_faithful


@pytest.fixture(scope="module")
def faithful():
    return load_faithful().to_numpy()


@pytest.fixture(scope="module")
def faithful_selection(faithful):
    return select_model(faithful, n_components=range(1, 10), random_state=0)


def test_faithful_bic_picks_tied_three_as_mclust(faithful_selection):
    result = faithful_selection
    assert result.best_params_ == {"n_components": 3, "covariance_type": "tied"}
    table = result.table
    assert len(table) == 36
    assert set(table.columns) >= {
        "n_components", "covariance_type", "log_likelihood", "n_parameters",
        "bic", "aic", "icl", "converged", "degenerate",
    }
    best = table.loc[table["rank"] == 1].iloc[0]
    assert (best["n_components"], best["covariance_type"]) == (3, "tied")
    # mclust: EEE,3 with log-likelihood -1126.36 and BIC 2314.39 (its sign flipped).
    assert best["log_likelihood"] == pytest.approx(-1126.36, abs=0.1)


def test_faithful_full_three_reaches_the_optimum(faithful_selection, faithful):
    full3 = faithful_selection.estimators[(3, "full")]
    assert full3.score_samples(faithful).sum() >= -1127.199


def test_collapsed_faithful_fit_would_win_bic_and_is_flagged(faithful, faithful_selection):
    # The trap: a diag/5 fit with one component on the 14 eruptions whose waiting time is
    # exactly 83 minutes drives that variance to the floor (1e-6 of its variance). Its BIC beats every
    # proper fit, so a chooser that does not detect collapse picks it.
    ties = faithful[:, 1] == 83
    assert ties.sum() == 14
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base = GaussianMixtureEM(4, covariance_type="diag", tol=1e-6, max_iter=1000).fit(faithful)
    means = np.vstack([base.means_, faithful[ties].mean(axis=0)])
    weights = np.r_[base.weights_ * (1 - 14 / 272), 14 / 272]
    precisions = np.vstack([base.precisions_, [1 / faithful[ties, 0].var(), 1e4]])
    with pytest.warns(DegenerateFitWarning):
        collapsed = GaussianMixtureEM(
            5, covariance_type="diag", means_init=means, weights_init=weights,
            precisions_init=precisions, tol=1e-6, max_iter=1000,
        ).fit(faithful)
    assert collapsed.degenerate_ and collapsed.degenerate_components_.tolist() == [4]
    assert collapsed.covariances_[4, 1] < 2e-6 * faithful[:, 1].var()  # reg_covar is relative
    chosen = faithful_selection.best_estimator_
    assert collapsed.bic(faithful) < chosen.bic(faithful) - 20
    assert not chosen.degenerate_


def test_degenerate_fits_are_listed_and_excluded():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(200, 2)), rng.normal(size=(200, 2)) + 6, np.tile([[3.0, -4.0]], (25, 1))])
    with pytest.warns(DegenerateFitWarning, match="excluded"):
        result = select_model(X, n_components=range(1, 5), covariance_types=("full", "diag"), random_state=0)
    table = result.table
    assert table["degenerate"].any()
    assert table.loc[table["degenerate"], "rank"].isna().all()
    assert not result.best_estimator_.degenerate_


def test_criteria_and_parallel_agree(faithful):
    seq = select_model(faithful, n_components=range(1, 4), covariance_types=("full", "tied"), criterion="icl",
                       progressbar=True, random_state=0, n_jobs=1)
    par = select_model(
        faithful, n_components=range(1, 4), covariance_types=("full", "tied"), criterion="icl", n_jobs=2,
        random_state=0,
    )
    assert seq.best_params_ == par.best_params_
    np.testing.assert_allclose(seq.table["icl"], par.table["icl"])
    assert isinstance(seq.best_estimator_, GaussianMixtureEM)


def test_default_threads_give_the_sequential_result_to_the_bit(faithful):
    # Small in-memory data: the default fits the grid on one thread per core. Every fit has its own seed
    # and the shared partition cache returns what a fit would compute, so nothing may depend on the order.
    from bayesgmm.selection import _grid_threads

    X = faithful * [1e-100, 1e100]
    assert _grid_threads(None, X, 36) == min(cpu_count(), 36)
    seq = select_model(X, n_components=range(1, 7), random_state=3, n_jobs=1)
    par = select_model(X, n_components=range(1, 7), random_state=3, n_jobs=4)  # more threads than cores
    pd.testing.assert_frame_equal(seq.table, par.table)
    for key, model in seq.estimators.items():
        np.testing.assert_array_equal(model.means_, par.estimators[key].means_)


def test_grid_threads_default_to_the_cores_for_data_in_memory_up_to_a_size():
    import dask.array as da

    from bayesgmm.selection import _GRID_THREADS_MAX_VALUES, _grid_threads

    assert _grid_threads(3, np.zeros((10, 2)), 36) == 3
    assert _grid_threads(-1, np.zeros((10, 2)), 36) == -1
    assert _grid_threads(None, np.zeros((200_000, 10)), 36) == min(cpu_count(), 36)
    assert _grid_threads(None, np.zeros((200_000, 10)), 1) == 1  # one fit: its passes use the cores
    # Every fit in flight holds a copy of X: large data runs one fit at a time.
    assert _grid_threads(None, np.zeros((_GRID_THREADS_MAX_VALUES // 10 + 1, 10)), 36) == 1
    assert _grid_threads(None, da.zeros((200, 2), chunks=50), 36) == 1  # dask's scheduler shares the blocks


def test_threaded_grid_is_reproducible_from_numpys_global_seed(faithful):
    # random_state=None: one seed for the grid is drawn from NumPy's global generator before the
    # threads start, so np.random.seed makes the table reproducible (fits drawing in turn would not).
    tables = []
    for _ in range(2):
        np.random.seed(0)  # noqa: NPY002 - the legacy global generator is what random_state=None uses
        tables.append(select_model(faithful, n_components=range(1, 7)).table)
    pd.testing.assert_frame_equal(*tables)


def test_an_error_in_one_fit_is_raised_after_the_others_end(faithful, monkeypatch):
    import time

    from bayesgmm import selection

    ended = []

    def fit_one(X, k, cov_type, params):
        if k == 1:
            raise RuntimeError("boom")
        time.sleep(0.05)
        ended.append(k)
        return real(X, k, cov_type, params)

    real = selection._fit_one
    monkeypatch.setattr(selection, "_fit_one", fit_one)
    with pytest.raises(RuntimeError, match="boom"):
        select_model(faithful, n_components=range(1, 5), covariance_types=("full", "diag"), n_jobs=2)
    assert sorted(ended) == [2, 2, 3, 3, 4, 4]  # the warning filters were held until then


def test_threaded_grid_of_data_in_several_chunks_equals_the_sequential_one():
    # 12,000 rows: above the compiled runs' 10,000, so each fit's last run passes over chunks of rows
    # (on one thread inside the grid's threads); the multi-start's runs are compiled on a subsample.
    from bayesgmm.datasets import make_mixture

    X, _ = make_mixture(12_000, n_components=3, n_features=12, random_state=0)
    X = np.asarray(X) * np.logspace(-100, 100, 12)
    kw = dict(n_components=[2, 9], covariance_types=("full", "diag"), random_state=0)
    seq = select_model(X, n_jobs=1, **kw)
    par = select_model(X, **kw)
    pd.testing.assert_frame_equal(seq.table, par.table)
    assert seq.best_estimator_.n_threads is None and par.best_estimator_.n_threads is None  # reset after the grid
    from bayesgmm.em import _COMPILED_RUN_ROWS

    model = GaussianMixtureEM(9, covariance_type="full")
    model._cov = get_covariance_type("full")
    assert model._data_compiles(X[:_COMPILED_RUN_ROWS]) and not model._data_compiles(X)


def test_threaded_grid_restores_the_blas_thread_limit(faithful):
    # The limit is process-wide; fits entering and leaving it on several threads must not leave it set.
    from threadpoolctl import threadpool_info

    before = [(lib["filepath"], lib["num_threads"]) for lib in threadpool_info()]
    select_model(faithful, n_components=range(1, 5), random_state=0, n_jobs=2)
    GaussianMixtureEM(2).fit(faithful)
    assert [(lib["filepath"], lib["num_threads"]) for lib in threadpool_info()] == before


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_table_criteria_are_those_of_a_separate_pass(faithful, dtype):
    # The table takes them from the fit's last pass, not from a pass of its own: the same numbers to the bit.
    X = np.asarray(faithful, dtype=dtype) * [1e-100, 1e100] if dtype == np.float64 else np.asarray(faithful, dtype)
    result = select_model(X, n_components=range(1, 4), random_state=0)
    assert len(result.table) == 12
    for _, row in result.table.iterrows():
        model = result.estimators[(row["n_components"], row["covariance_type"])]
        for name, value in model.criteria(X).items():
            assert row[name] == value, (row["n_components"], row["covariance_type"], name)


def test_training_criteria_only_after_an_in_memory_fit(faithful):
    da = pytest.importorskip("dask.array")
    X = np.asarray(faithful, dtype=float)
    model = GaussianMixtureEM(2, random_state=0).fit(X)
    assert model._training_criteria() == model.criteria(X)
    model.fit(da.from_array(X, chunks=100))  # a refit out of core forgets the in-memory sums
    with pytest.raises(ValueError, match="in-memory fit"):
        model._training_criteria()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"criterion": "waic"}, "criterion"),
        ({"covariance_types": ("full", "banana")}, "covariance_type"),
        ({"n_components": []}, "at least one"),
        ({"n_components": [0, 1]}, "n_components"),
    ],
)
def test_select_model_bad_input(faithful, kwargs, match):
    with pytest.raises(ValueError, match=match), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        select_model(faithful, **kwargs)


def test_partition_cache_changes_no_result(monkeypatch):
    """select_model reuses k-means partitions across covariance types: the same table as without."""
    import bayesgmm.initialization as init

    X = np.vstack([np.random.default_rng(3).normal(c, 1.0, (60, 2)) for c in (0.0, 4.0, 8.0)])
    with_cache = select_model(X, n_components=[2, 3], random_state=0).table
    assert len(init._PARTITION_CACHE) > 0
    init._PARTITION_CACHE.clear()
    monkeypatch.setattr(init, "_PARTITION_CACHE_SIZE", 0)
    without = select_model(X, n_components=[2, 3], random_state=0).table
    pd.testing.assert_frame_equal(with_cache, without)


def test_select_model_refuses_constant_columns_up_front():
    # Raw digits: 3 of its 64 pixels are 0 in every image. Before, every full, diag and
    # tied fit was "degenerate" (even K=1) and the grid chose among spherical fits alone.
    from sklearn.datasets import load_digits

    with pytest.raises(ValueError, match=r"\['x0', 'x32', 'x39'\] are constant") as info:
        select_model(load_digits().data, n_components=[1, 2])
    assert "Every fit" not in str(info.value)
    frame = pd.DataFrame({"a": np.random.default_rng(0).normal(size=30), "flat": 1.0})
    with pytest.raises(ValueError, match=r"\['flat'\] are constant"):
        select_model(frame, n_components=[1, 2])


def test_select_model_says_when_every_fit_failed():
    # Not "degenerate or failed; use fewer components or raise reg_covar": each fit's own error.
    from bayesgmm.selection import _choose

    table = pd.DataFrame({"n_components": [1, 2], "covariance_type": "full", "degenerate": False,
                          "error": ["boom", "boom"], "bic": np.nan})
    with pytest.raises(ValueError, match=r"^Every fit in the grid failed: boom$"):
        _choose(table, {}, "bic")


def test_select_model_warns_about_failed_fits_and_chooses_among_the_rest():
    from sklearn.datasets import load_iris

    X = load_iris().data
    X = np.column_stack([X, X[:, 0] + X[:, 1]])
    with pytest.warns(UserWarning, match=r"6 fit\(s\) failed and were excluded: K=1 full.*linearly dependent"):
        result = select_model(X, n_components=[1, 2, 3], random_state=0)
    assert result.best_params_["covariance_type"] in ("diag", "spherical")
    assert (result.table["error"] != "").sum() == 6
