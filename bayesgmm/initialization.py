"""Starting partitions for EM.

Each initialiser returns ``(rows, resp)``: the indices of the rows it used and
their (n_rows, K) responsibilities. The EM fitter turns them into starting
weights, means and covariances with its own M-step.
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import KMeans, kmeans_plusplus

#: Above this many rows the hierarchical initialisation works on a random subsample
#: (its cost grows with the square of the rows), as mclust does for large data.
HIERARCHICAL_MAX_SAMPLES = 2000


def _one_hot(labels: np.ndarray, n_components: int, dtype) -> np.ndarray:
    resp = np.zeros((labels.shape[0], n_components), dtype=dtype)
    resp[np.arange(labels.shape[0]), labels] = 1.0
    return resp


def init_kmeans(X, n_components, sample_weight, rng):
    labels = (
        KMeans(n_clusters=n_components, n_init=1, random_state=rng)
        .fit(X, sample_weight=sample_weight)
        .labels_
    )
    return np.arange(X.shape[0]), _one_hot(labels, n_components, X.dtype)


def init_kmeans_plusplus(X, n_components, sample_weight, rng):
    # As scikit-learn: the K seeds alone start the components.
    _, indices = kmeans_plusplus(X, n_components, sample_weight=sample_weight, random_state=rng)
    return indices, np.eye(n_components, dtype=X.dtype)


def init_random(X, n_components, sample_weight, rng):
    resp = rng.uniform(size=(X.shape[0], n_components)).astype(X.dtype)
    resp /= resp.sum(axis=1)[:, None]
    return np.arange(X.shape[0]), resp


def init_random_from_data(X, n_components, sample_weight, rng):
    candidates = np.flatnonzero(sample_weight > 0)
    indices = rng.choice(candidates, size=n_components, replace=False)
    return indices, np.eye(n_components, dtype=X.dtype)


def init_hierarchical(X, n_components, sample_weight, rng):
    rows = np.flatnonzero(sample_weight > 0)
    if rows.size > HIERARCHICAL_MAX_SAMPLES:
        rows = np.sort(rng.choice(rows, size=HIERARCHICAL_MAX_SAMPLES, replace=False))
    labels = ward_partition(_svd_whiten(X[rows], sample_weight[rows]), n_components, sample_weight[rows])
    return rows, _one_hot(labels, n_components, X.dtype)


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


def ward_partition(Z: np.ndarray, n_clusters: int, weights: np.ndarray) -> np.ndarray:
    """Weighted Ward agglomeration down to ``n_clusters`` groups.

    Ward's merge cost ``w_a w_b / (w_a + w_b) * ||c_a - c_b||^2`` is the decrease of the
    classification log-likelihood of a Gaussian mixture with equal spherical
    covariances (mclust's hierarchical ``EII`` model). Row weights act as
    multiplicities, so integer weights give the same partition as repeated rows.
    Uses nearest-neighbour bookkeeping: Ward's cost is reducible, so only the rows
    whose nearest neighbour took part in a merge need a new search.

    Returns
    -------
    labels : ndarray of shape (n_samples,)
        Group of each row, numbered 0..n_clusters-1.
    """
    n = Z.shape[0]
    centroids = np.array(Z, dtype=np.float64)
    sizes = np.asarray(weights, dtype=np.float64).copy()
    active = np.ones(n, dtype=bool)
    parent = np.arange(n)

    def costs_to(i: int) -> np.ndarray:
        dist = np.sum((centroids - centroids[i]) ** 2, axis=1)
        cost = sizes * sizes[i] / (sizes + sizes[i]) * dist
        cost[~active] = np.inf
        cost[i] = np.inf
        return cost

    best_cost = np.empty(n)
    best_partner = np.empty(n, dtype=np.intp)
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

    for _ in range(n - n_clusters):
        i = int(np.argmin(np.where(active, best_cost, np.inf)))
        j = int(best_partner[i])
        total = sizes[i] + sizes[j]
        centroids[i] = (sizes[i] * centroids[i] + sizes[j] * centroids[j]) / total
        sizes[i] = total
        active[j] = False
        parent[j] = i
        best_cost[j] = np.inf
        stale = np.flatnonzero(active & ((best_partner == i) | (best_partner == j)))
        for r in np.union1d(stale, [i]):
            cost = costs_to(r)
            best_partner[r] = np.argmin(cost)
            best_cost[r] = cost[best_partner[r]]

    # Follow parents to the surviving root of each row.
    roots = parent.copy()
    while True:
        nxt = roots[roots]
        if np.array_equal(nxt, roots):
            break
        roots = nxt
    _, labels = np.unique(roots, return_inverse=True)
    return labels
