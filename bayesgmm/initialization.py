"""Starting partitions for EM.

Each initialiser returns ``(rows, resp)``: the indices of the rows it used and
their (n_rows, K) responsibilities. The EM fitter turns them into starting
weights, means and covariances with its own M-step.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
from collections import OrderedDict

import numpy as np
from numba import njit

from ._kmeans import kmeans_labels, kmeans_plusplus_seeds, n_uniforms

#: Above this many rows the hierarchical initialisation works on a random subsample
#: (its cost grows with the square of the rows), as mclust does for large data.
HIERARCHICAL_MAX_SAMPLES = 2000


def _one_hot(labels: np.ndarray, n_components: int, dtype) -> np.ndarray:
    resp = np.zeros((labels.shape[0], n_components), dtype=dtype)
    resp[np.arange(labels.shape[0]), labels] = 1.0
    return resp


# k-means partitions and k-means++ seeds by (data, K, method, the random numbers the
# call draws): select_model fits every K for each covariance type from the same seed,
# and the partitions do not depend on the covariance type, so the 3 other types reuse
# them. The numbers are drawn before the lookup, so the generator moves on the same
# whether the partition is computed or found.
_PARTITION_CACHE: OrderedDict[bytes, np.ndarray] = OrderedDict()
_PARTITION_CACHE_SIZE = 256
_PARTITION_LOCK = threading.Lock()


def _uniforms(rng, size: int) -> np.ndarray:
    return rng.random_sample(size) if isinstance(rng, np.random.RandomState) else rng.random(size)


def _data_digest(X, sample_weight) -> bytes:
    return hashlib.blake2b(
        b"".join([np.ascontiguousarray(X).tobytes(), np.ascontiguousarray(sample_weight).tobytes(),
                  str((X.shape, X.dtype.str)).encode()]), digest_size=16).digest()


_SHARED_DIGEST = threading.local()


@contextlib.contextmanager
def shared_data_digest(X: np.ndarray, sample_weight: np.ndarray):
    """Inside the block, partitions of these very arrays reuse one digest of their values.

    The multi-start asks for 13 partitions of the same rows; hashing the rows for
    each was ~5% of select_model's time on digits. The arrays must not change
    inside the block.
    """
    previous = getattr(_SHARED_DIGEST, "current", None)
    _SHARED_DIGEST.current = (X, sample_weight, _data_digest(X, sample_weight))
    try:
        yield
    finally:
        _SHARED_DIGEST.current = previous


def _cached_partition(compute, X, sample_weight, uniforms, tag: str) -> np.ndarray:
    """``compute()`` (an int array), or its cached result when the same call was made before."""
    shared = getattr(_SHARED_DIGEST, "current", None)
    if shared is not None and shared[0] is X and shared[1] is sample_weight:
        digest = shared[2]
    else:
        digest = _data_digest(X, sample_weight)
    key = hashlib.blake2b(b"".join([digest, tag.encode(), uniforms.tobytes()]), digest_size=16).digest()
    with _PARTITION_LOCK:
        hit = _PARTITION_CACHE.get(key)
        if hit is not None:
            _PARTITION_CACHE.move_to_end(key)
            return hit
    result = compute()
    result.setflags(write=False)
    with _PARTITION_LOCK:
        _PARTITION_CACHE[key] = result
        while len(_PARTITION_CACHE) > _PARTITION_CACHE_SIZE:
            _PARTITION_CACHE.popitem(last=False)
    return result


def partition_kmeans(X, n_components, sample_weight, rng, n_init: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Every row and its k-means group (the best of ``n_init`` runs)."""
    uniforms = _uniforms(rng, n_init * n_uniforms(n_components))
    found = _cached_partition(lambda: kmeans_labels(X, sample_weight, n_components, n_init, uniforms),
                              X, sample_weight, uniforms, f"kmeans{n_components},{n_init}")
    return np.arange(X.shape[0]), found


def partition_kmeans_best_of_10(X, n_components, sample_weight, rng):
    return partition_kmeans(X, n_components, sample_weight, rng, n_init=10)


def partition_kmeans_plusplus(X, n_components, sample_weight, rng):
    """The K k-means++ seeds, one row per group (as scikit-learn, the seeds alone start the components)."""
    uniforms = _uniforms(rng, n_uniforms(n_components))
    indices = _cached_partition(lambda: kmeans_plusplus_seeds(X, sample_weight, n_components, uniforms),
                                X, sample_weight, uniforms, f"k-means++{n_components}")
    return indices, np.arange(n_components)


def partition_hierarchical(X, n_components, sample_weight, rng):
    """The rows of the Ward tree and their groups where it is cut to ``n_components``."""
    rows, merges = hierarchical_tree(X, sample_weight, rng)
    return rows, cut_tree(merges, rows.size, n_components)


def with_one_hot(partition):
    """An initialiser, ``(rows, responsibilities)``, from a hard ``partition``, ``(rows, groups)``."""

    def initializer(X, n_components, sample_weight, rng):
        rows, groups = partition(X, n_components, sample_weight, rng)
        return rows, _one_hot(groups, n_components, X.dtype)

    initializer.__name__ = partition.__name__.replace("partition_", "init_")
    return initializer


init_kmeans = with_one_hot(partition_kmeans)
init_kmeans_best_of_10 = with_one_hot(partition_kmeans_best_of_10)
init_kmeans_plusplus = with_one_hot(partition_kmeans_plusplus)
init_hierarchical = with_one_hot(partition_hierarchical)


def init_random(X, n_components, sample_weight, rng):
    resp = rng.uniform(size=(X.shape[0], n_components)).astype(X.dtype)
    resp /= resp.sum(axis=1)[:, None]
    return np.arange(X.shape[0]), resp


def init_random_from_data(X, n_components, sample_weight, rng):
    candidates = np.flatnonzero(sample_weight > 0)
    indices = rng.choice(candidates, size=n_components, replace=False)
    return indices, np.eye(n_components, dtype=X.dtype)


#: Hard partitions, ``(rows, groups)``, of the starts the multi-start draws: its
#: compiled path turns them into starting parameters without (rows, K) responsibilities.
PARTITIONS = {
    "hierarchical": partition_hierarchical,
    "kmeans": partition_kmeans,
    "kmeans-best-of-10": partition_kmeans_best_of_10,
    "k-means++": partition_kmeans_plusplus,
}

INITIALIZERS = {
    "hierarchical": init_hierarchical,
    "kmeans": init_kmeans,
    "k-means++": init_kmeans_plusplus,
    "random": init_random,
    "random_from_data": init_random_from_data,
}


def _svd_whiten(X: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Centre and sphere the data (mclust's default ``hcUse = "SVD"`` transform)."""
    X = np.asarray(X, dtype=np.float64)
    w = weights / weights.sum()
    centred = X - w @ X
    cov = (centred * w[:, None]).T @ centred
    eigval, eigvec = np.linalg.eigh(cov)
    keep = eigval > 1e-12 * max(eigval.max(), np.finfo(float).tiny)
    if not np.any(keep):  # every row identical: nothing to sphere
        return centred
    return centred @ (eigvec[:, keep] / np.sqrt(eigval[keep]))


# The tree does not depend on K or the covariance type: select_model's grid and
# repeated fits on the same data cut one tree (keyed by the rows' bytes).
_TREE_CACHE: OrderedDict[bytes, np.ndarray] = OrderedDict()
_TREE_CACHE_SIZE = 8
_TREE_LOCK = threading.Lock()


def hierarchical_tree(X: np.ndarray, sample_weight: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
    """Rows used and the full Ward merge sequence on their centred, sphered values.

    Returns
    -------
    rows : ndarray of shape (n_rows,)
        Rows with positive weight (a random subsample above ``HIERARCHICAL_MAX_SAMPLES``).
    merges : ndarray of shape (n_rows - 1, 2)
        Positions (into ``rows``) of two members of the groups merged at each step,
        in order; :func:`cut_tree` replays them down to any number of groups.
    """
    rows = np.flatnonzero(sample_weight > 0)
    if rows.size > HIERARCHICAL_MAX_SAMPLES:
        rows = np.sort(rng.choice(rows, size=HIERARCHICAL_MAX_SAMPLES, replace=False))
    Xr, wr = np.ascontiguousarray(X[rows], dtype=np.float64), np.ascontiguousarray(sample_weight[rows], np.float64)
    key = _data_digest(Xr, wr)
    with _TREE_LOCK:
        if key in _TREE_CACHE:
            _TREE_CACHE.move_to_end(key)
            return rows, _TREE_CACHE[key]
    # Our own weighted Ward, not SciPy's faster linkage: ties (repeated rows) must
    # break the same way with integer weights as with repeated rows.
    merges = ward_merges(_svd_whiten(Xr, wr), wr)
    with _TREE_LOCK:
        _TREE_CACHE[key] = merges
        while len(_TREE_CACHE) > _TREE_CACHE_SIZE:
            _TREE_CACHE.popitem(last=False)
    return rows, merges


def cut_tree(merges: np.ndarray, n_rows: int, n_clusters: int) -> np.ndarray:
    """Groups (0..n_clusters-1) after the first ``n_rows - n_clusters`` merges.

    Groups are numbered in the order of their roots' row numbers (as
    ``np.unique(roots, return_inverse=True)`` numbers them). Compiled: select_model
    cuts the tree for every K and covariance type, and a Python union-find over
    2,000 rows took a tenth of the grid's time on digits.
    """
    labels = np.empty(n_rows, dtype=np.int64)
    _cut_tree(np.ascontiguousarray(merges, dtype=np.int64), n_rows, n_clusters, labels)
    return labels


@njit(nogil=True, cache=True)
def _root(parent, i):  # pragma: no cover - compiled
    while parent[i] != i:
        parent[i] = parent[parent[i]]
        i = parent[i]
    return i


@njit(nogil=True, cache=True)
def _cut_tree(merges, n_rows, n_clusters, labels):  # pragma: no cover - compiled
    parent = np.arange(n_rows)
    for step in range(n_rows - n_clusters):
        keep = _root(parent, merges[step, 0])
        parent[_root(parent, merges[step, 1])] = keep
    number = np.full(n_rows, -1)
    for i in range(n_rows):
        labels[i] = _root(parent, i)
        number[labels[i]] = 0
    count = 0
    for r in range(n_rows):  # roots in increasing order
        if number[r] == 0:
            number[r] = count
            count += 1
    for i in range(n_rows):
        labels[i] = number[labels[i]]


def ward_merges(Z: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted Ward agglomeration down to one group; the merge sequence.

    Ward's merge cost ``w_a w_b / (w_a + w_b) * ||c_a - c_b||^2`` is the decrease of the
    classification log-likelihood of a Gaussian mixture with equal spherical
    covariances (mclust's hierarchical ``EII`` model). Row weights act as
    multiplicities, so integer weights give the same partition as repeated rows.
    Uses nearest-neighbour bookkeeping: Ward's cost is reducible, so only the rows
    whose nearest neighbour took part in a merge need a new search.

    Returns
    -------
    merges : ndarray of shape (n_samples - 1, 2)
        The two member rows whose groups merge, step by step.
    """
    n = Z.shape[0]
    centroids = np.array(Z, dtype=np.float64)
    sizes = np.asarray(weights, dtype=np.float64).copy()
    best_cost = np.empty(n)
    best_partner = np.empty(n, dtype=np.int64)
    if centroids.shape[1] < 8:
        # Every row's cheapest partner with the merge loop's own costs (compiled): the
        # BLAS blocks below were two thirds of the tree's time on digits_pca5.
        _first_partners_few(np.ascontiguousarray(centroids.T), sizes, best_cost, best_partner)
    else:  # by blocks of rows with BLAS: ||a - b||^2 expanded
        sq_norms = np.sum(centroids**2, axis=1)
        block = 512
        for start in range(0, n, block):
            stop = min(start + block, n)
            dist = sq_norms[start:stop, None] + sq_norms[None, :] - 2 * centroids[start:stop] @ centroids.T
            np.maximum(dist, 0.0, out=dist)
            cost = sizes[start:stop, None] * sizes[None, :] / (sizes[start:stop, None] + sizes[None, :]) * dist
            cost[np.arange(stop - start), np.arange(start, stop)] = np.inf
            best_partner[start:stop] = np.argmin(cost, axis=1)
            best_cost[start:stop] = cost[np.arange(stop - start), best_partner[start:stop]]
    merges = np.empty((max(n - 1, 0), 2), dtype=np.int64)
    # The merges themselves are compiled: in Python they were a third of select_model's
    # time on digits (1,797 rows).
    _ward_merge_steps(centroids, sizes, best_cost, best_partner, merges)
    return merges


@njit(nogil=True, cache=True)
def _pairwise_block(values, start, n):  # pragma: no cover - compiled
    # NumPy's sum of at most 128 contiguous values: sequential below 8, else 8 accumulators.
    if n < 8:
        total = 0.0
        for i in range(start, start + n):
            total += values[i]
        return total
    r0, r1, r2, r3 = values[start], values[start + 1], values[start + 2], values[start + 3]
    r4, r5, r6, r7 = values[start + 4], values[start + 5], values[start + 6], values[start + 7]
    i = 8
    while i < n - n % 8:
        k = start + i
        r0 += values[k]
        r1 += values[k + 1]
        r2 += values[k + 2]
        r3 += values[k + 3]
        r4 += values[k + 4]
        r5 += values[k + 5]
        r6 += values[k + 6]
        r7 += values[k + 7]
        i += 8
    total = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        total += values[start + i]
        i += 1
    return total


@njit(nogil=True, cache=True)
def _pairwise_sum(values):  # pragma: no cover - compiled
    # NumPy's summation order for a contiguous row (pairwise), so that the distances,
    # and the merges where two costs nearly tie, are NumPy's. Above 128 values NumPy
    # halves the row recursively; done here with an explicit stack, because numba
    # cannot load a cached recursive function (it crashed).
    n = values.size
    if n <= 128:
        return _pairwise_block(values, 0, n)
    frame_start = np.empty(64, dtype=np.int64)
    frame_n = np.empty(64, dtype=np.int64)
    frame_phase = np.zeros(64, dtype=np.int64)
    results = np.empty(64)
    frame_start[0], frame_n[0], frame_phase[0] = 0, n, 0
    frames, n_results = 1, 0
    while frames > 0:
        f = frames - 1
        size = frame_n[f]
        if size <= 128:
            results[n_results] = _pairwise_block(values, frame_start[f], size)
            n_results += 1
            frames -= 1
            continue
        half = size // 2
        half -= half % 8
        if frame_phase[f] == 0:  # the left half first
            frame_phase[f] = 1
            frame_start[frames], frame_n[frames], frame_phase[frames] = frame_start[f], half, 0
            frames += 1
        elif frame_phase[f] == 1:  # then the right half
            frame_phase[f] = 2
            frame_start[frames], frame_n[frames], frame_phase[frames] = frame_start[f] + half, size - half, 0
            frames += 1
        else:  # left + right
            n_results -= 1
            results[n_results - 1] = results[n_results - 1] + results[n_results]
            frames -= 1
    return results[0]


@njit(nogil=True, cache=True)
def _ward_costs_to(centroids, sizes, active, i, out, squares):  # pragma: no cover - compiled
    # Ward's cost of merging every group with group i (inf for inactive groups and i itself).
    n, n_features = centroids.shape
    for r in range(n):
        if not active[r] or r == i:
            out[r] = np.inf
            continue
        for d in range(n_features):
            diff = centroids[r, d] - centroids[i, d]
            squares[d] = diff * diff
        out[r] = sizes[r] * sizes[i] / (sizes[r] + sizes[i]) * _pairwise_sum(squares)


@njit(nogil=True, cache=True)
def _ward_costs_to_few(columns, sizes, active, i, out, sums):  # pragma: no cover - compiled
    # _ward_costs_to for fewer than 8 features, where NumPy sums a row's squares in
    # order: the same sums, grown one feature at a time across all groups (columns
    # is the centroids transposed, (D, n)), so that the loop over groups vectorises.
    n_features, n = columns.shape
    for r in range(n):
        sums[r] = 0.0
    for d in range(n_features):
        centre = columns[d, i]
        for r in range(n):
            diff = columns[d, r] - centre
            sums[r] += diff * diff
    for r in range(n):
        if active[r] and r != i:
            out[r] = sizes[r] * sizes[i] / (sizes[r] + sizes[i]) * sums[r]
        else:
            out[r] = np.inf


@njit(nogil=True, cache=True)
def _first_partners_few(columns, sizes, best_cost, best_partner):  # pragma: no cover - compiled
    # Each row's cheapest partner and its cost, as _ward_merge_steps searches them.
    n = columns.shape[1]
    active = np.ones(n, dtype=np.bool_)
    cost = np.empty(n)
    sums = np.empty(n)
    for r in range(n):
        _ward_costs_to_few(columns, sizes, active, r, cost, sums)
        best = _first_argmin(cost)
        best_partner[r] = best
        best_cost[r] = cost[best]


@njit(nogil=True, cache=True)
def _first_argmin(values):  # pragma: no cover - compiled
    best = 0
    for r in range(1, values.size):
        if values[r] < values[best]:
            best = r
    return best


@njit(nogil=True, cache=True)
def _ward_merge_steps(centroids, sizes, best_cost, best_partner, merges):  # pragma: no cover - compiled
    n, n_features = centroids.shape
    active = np.ones(n, dtype=np.bool_)
    cost = np.empty(n)
    squares = np.empty(n_features)
    few = n_features < 8
    columns = np.ascontiguousarray(centroids.T) if few else np.empty((0, 0))
    sums = np.empty(n)
    for step in range(n - 1):
        i = _first_argmin(best_cost)  # a merged-away group's cost is inf
        j = best_partner[i]
        merges[step, 0] = i
        merges[step, 1] = j
        total = sizes[i] + sizes[j]
        for d in range(n_features):
            centroids[i, d] = (sizes[i] * centroids[i, d] + sizes[j] * centroids[j, d]) / total
            if few:
                columns[d, i] = centroids[i, d]
        sizes[i] = total
        active[j] = False
        best_cost[j] = np.inf
        # Ward's cost is reducible: only i and the groups whose partner was i or j need a new search.
        for r in range(n):
            if active[r] and (r == i or best_partner[r] == i or best_partner[r] == j):
                if few:
                    _ward_costs_to_few(columns, sizes, active, r, cost, sums)
                else:
                    _ward_costs_to(centroids, sizes, active, r, cost, squares)
                best = _first_argmin(cost)
                best_partner[r] = best
                best_cost[r] = cost[best]
