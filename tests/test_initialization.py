"""EM's starting partitions: the compiled k-means++ and k-means, and cuts of the hierarchical tree."""

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.datasets import load_iris, load_wine

from bayesgmm._kmeans import kmeans_labels, kmeans_plusplus_seeds, n_uniforms
from bayesgmm.initialization import _svd_whiten, cut_tree, init_kmeans, init_kmeans_plusplus, ward_merges


def _standardised(loader):
    X = loader().data
    return (X - X.mean(axis=0)) / X.std(axis=0)


def _inertia(X, w, labels):
    total = 0.0
    for k in np.unique(labels):
        rows = labels == k
        centre = w[rows] @ X[rows] / w[rows].sum()
        total += w[rows] @ ((X[rows] - centre) ** 2).sum(axis=1)
    return total


@pytest.mark.parametrize("loader, K", [(load_iris, 3), (load_iris, 5), (load_wine, 3), (load_wine, 4)])
def test_best_of_10_matches_scikit_learn(loader, K):
    # The same algorithm as scikit-learn's KMeans(n_init=10): over several seeds, the
    # inertia it reaches is as good as scikit-learn's (the global optimum on these data).
    X = _standardised(loader)
    w = np.ones(len(X))
    rng = np.random.RandomState(0)
    ours = min(_inertia(X, w, kmeans_labels(X, w, K, 10, rng.random_sample(10 * n_uniforms(K)))) for _ in range(3))
    theirs = min(KMeans(K, n_init=10, random_state=s).fit(X).inertia_ for s in range(3))
    assert ours <= theirs * (1 + 1e-9)


def test_lloyd_ends_at_a_fixed_point_with_weights():
    X = _standardised(load_wine)
    w = np.random.default_rng(1).uniform(0.1, 3.0, len(X))
    K = 4
    labels = kmeans_labels(X, w, K, 1, np.random.RandomState(2).random_sample(n_uniforms(K)))
    assert set(labels) == set(range(K))  # no empty cluster
    centres = np.array([w[labels == k] @ X[labels == k] / w[labels == k].sum() for k in range(K)])
    nearest = ((X[:, None, :] - centres[None]) ** 2).sum(axis=2).argmin(axis=1)
    np.testing.assert_array_equal(nearest, labels)


def test_seeds_avoid_zero_weight_rows_and_are_distinct():
    X = _standardised(load_iris)
    w = np.ones(len(X))
    w[::2] = 0.0
    for seed in range(20):
        seeds = kmeans_plusplus_seeds(X, w, 6, np.random.RandomState(seed).random_sample(n_uniforms(6)))
        assert np.all(w[seeds] > 0)
        assert len(set(seeds)) == 6


def test_identical_rows_give_valid_labels():
    X = np.ones((30, 2))
    labels = kmeans_labels(X, np.ones(30), 3, 10, np.random.RandomState(0).random_sample(10 * n_uniforms(3)))
    assert labels.shape == (30,) and labels.min() >= 0 and labels.max() < 3


@pytest.mark.parametrize("initializer", [init_kmeans, init_kmeans_plusplus])
def test_random_state_moves_on_independently_of_the_data(initializer):
    # The partition cache relies on it: a call draws the same numbers whatever the data.
    a, b = np.random.RandomState(5), np.random.RandomState(5)
    X = _standardised(load_iris)
    initializer(X, 3, np.ones(len(X)), a)
    initializer(X[:40] * 3.0, 3, np.ones(40), b)
    assert a.random_sample() == b.random_sample()
    again = initializer(X, 3, np.ones(len(X)), np.random.RandomState(5))
    np.testing.assert_array_equal(again[1], initializer(X, 3, np.ones(len(X)), np.random.RandomState(5))[1])


def _reference_cut(merges, n_rows, n_clusters):
    # Plain union-find, groups numbered as np.unique numbers their roots.
    parent = list(range(n_rows))

    def root(i):
        while parent[i] != i:
            i = parent[i]
        return i

    for i, j in merges[: n_rows - n_clusters]:
        parent[root(j)] = root(i)
    return np.unique([root(i) for i in range(n_rows)], return_inverse=True)[1]


def test_tree_cuts_match_a_plain_union_find_and_are_nested():
    X = _standardised(load_wine)
    w = np.ones(len(X))
    merges = ward_merges(_svd_whiten(X, w), w)
    previous = np.zeros(len(X), dtype=int)
    for K in range(1, 12):
        labels = cut_tree(merges, len(X), K)
        np.testing.assert_array_equal(labels, _reference_cut(merges, len(X), K))
        assert sorted(set(labels)) == list(range(K))
        assert all(len(set(previous[labels == k])) == 1 for k in range(K))  # inside one group of K-1
        previous = labels
    assert cut_tree(merges, len(X), len(X)).tolist() == list(range(len(X)))


def test_overflowing_distances_still_give_valid_seeds_and_labels():
    # Potentials that overflow to inf must not leave buffers unwritten.
    X = np.array([[1e200, 0.0], [-1e200, 0.0], [0.0, 1e200], [0.0, 0.0], [1.0, 1.0]])
    labels = kmeans_labels(X, np.ones(5), 3, 2, np.random.RandomState(0).random_sample(2 * n_uniforms(3)))
    assert labels.min() >= 0 and labels.max() < 3
    seeds = kmeans_plusplus_seeds(X, np.ones(5), 3, np.random.RandomState(0).random_sample(n_uniforms(3)))
    assert seeds.min() >= 0 and seeds.max() < 5


def _reference_ward(Z, weights):
    """Ward by brute force: at each step the cheapest pair of groups (NumPy's arithmetic and tie order)."""
    centroids, sizes = np.array(Z, dtype=float), np.array(weights, dtype=float)
    active = np.ones(len(Z), dtype=bool)
    merges = []
    for _ in range(len(Z) - 1):
        best = (np.inf, -1, -1)
        for i in np.flatnonzero(active):
            cost = sizes * sizes[i] / (sizes + sizes[i]) * np.sum((centroids - centroids[i]) ** 2, axis=1)
            cost[~active] = np.inf
            cost[i] = np.inf
            j = int(np.argmin(cost))
            if cost[j] < best[0]:
                best = (cost[j], i, j)
        _, i, j = best
        merges.append((i, j))
        total = sizes[i] + sizes[j]
        centroids[i] = (sizes[i] * centroids[i] + sizes[j] * centroids[j]) / total
        sizes[i] = total
        active[j] = False
    return np.array(merges)


@pytest.mark.parametrize("n_features", [1, 3, 7, 8, 20, 130])  # below 8: summed across groups
def test_compiled_ward_merges_match_brute_force(n_features):
    # 130 features: NumPy halves rows above 128 values when summing; the compiled
    # distances follow it, so near-ties break the same way.
    rng = np.random.default_rng(n_features)
    Z = rng.normal(size=(60, n_features))
    weights = rng.integers(1, 4, 60).astype(float)
    ours, reference = ward_merges(Z, weights), _reference_ward(Z, weights)

    def groups(merges, k):  # the partition into k groups, numbered by first row
        labels = cut_tree(merges, len(Z), k)
        _, first = np.unique(labels, return_index=True)
        return np.argsort(np.argsort(first))[labels]

    # Which member names a merge may differ (the first costs come from BLAS, rounded
    # otherwise), so the partitions at every level are compared.
    for k in range(1, len(Z) + 1):
        np.testing.assert_array_equal(groups(ours, k), groups(reference, k), err_msg=f"{k} groups")


def test_compiled_pairwise_sum_is_numpys():
    from bayesgmm.initialization import _pairwise_sum

    rng = np.random.default_rng(0)
    for n in [0, 1, 7, 8, 9, 16, 127, 128, 129, 300, 1025]:
        values = rng.normal(size=n) ** 2 * 10 ** rng.uniform(-3, 3, n)
        assert _pairwise_sum(values) == np.sum(values), n


def test_shared_digest_finds_the_same_cached_partitions(monkeypatch):
    # Inside shared_data_digest the rows are hashed once; the keys are the same as
    # outside, so a partition computed outside is found inside (and for a copy).
    from bayesgmm import initialization as init

    X = _standardised(load_iris)
    w = np.ones(len(X))
    init._PARTITION_CACHE.clear()
    calls = []
    real = init.kmeans_labels
    monkeypatch.setattr(init, "kmeans_labels", lambda *args: calls.append(1) or real(*args))
    _, outside = init_kmeans(X, 3, w, np.random.RandomState(0))
    with init.shared_data_digest(X, w):
        _, inside = init_kmeans(X, 3, w, np.random.RandomState(0))
        _, copy = init_kmeans(X.copy(), 3, w.copy(), np.random.RandomState(0))
        _, other = init_kmeans(X, 3, w, np.random.RandomState(1))
    assert len(calls) == 2  # the first call and the new seed's
    np.testing.assert_array_equal(outside, inside)
    np.testing.assert_array_equal(outside, copy)
    assert other.shape == outside.shape
