"""Compiled k-means++ seeding and Lloyd's k-means for EM's starting partitions.

The algorithms are scikit-learn's (``kmeans_plusplus`` with ``2 + log(K)`` local
trials per seed; ``KMeans`` with Lloyd iterations, its tolerance of 1e-4 times the
mean feature variance on the centres' total squared shift, empty clusters moved to
the rows farthest from their centres, the best of ``n_init`` runs by inertia), with
one difference: an empty cluster never moves to a row of weight 0 (scikit-learn's can,
and then stays empty around a duplicate centre). They
are written here rather than called because the default "small EM" start asks for
13 partitions per fit on data of a few hundred rows: scikit-learn's per-call
validation and thread set-up then cost 1-5 ms a call, 37% of ``select_model``'s
time on iris, where the arithmetic takes tens of microseconds.

Every random number is drawn from the caller's generator before the compiled part
runs (one uniform for the first seed, ``2 + log(K)`` per further seed), so the
generator moves on by the same amount whatever the data, and a cached partition
can be keyed by those numbers.
"""

from __future__ import annotations

import numpy as np
from numba import njit

#: scikit-learn's KMeans defaults.
KMEANS_MAX_ITER = 300
KMEANS_TOL = 1e-4
# Reassociation lets the sums over features vectorise; the data are finite (validated).
_FASTMATH = {"nsz", "arcp", "contract", "reassoc"}


def n_local_trials(n_clusters: int) -> int:
    """Candidates tried per k-means++ seed after the first (scikit-learn's and Arthur & Vassilvitskii's rule)."""
    return 2 + int(np.log(n_clusters))


def n_uniforms(n_clusters: int) -> int:
    """Uniform random numbers one k-means++ seeding consumes."""
    return 1 + (n_clusters - 1) * n_local_trials(n_clusters)


@njit(nogil=True, cache=True, fastmath=_FASTMATH)
def _sq_dist(X, n, c):  # pragma: no cover - compiled
    total = 0.0
    for d in range(X.shape[1]):
        diff = X[n, d] - c[d]
        total += diff * diff
    return total


@njit(nogil=True, cache=True)
def _copy(source, target):  # pragma: no cover - compiled
    # target[:] = source as a loop: numba's slice assignment took seconds to compile.
    for i in range(source.shape[0]):
        target[i] = source[i]


@njit(nogil=True, cache=True)
def _first_reaching(cum, value, strictly):  # pragma: no cover - compiled
    # np.searchsorted(cum, value, side="right" if strictly else "left"), clipped to the last row.
    lo, hi = 0, cum.shape[0]
    while lo < hi:
        mid = (lo + hi) // 2
        if cum[mid] > value or (not strictly and cum[mid] == value):
            hi = mid
        else:
            lo = mid + 1
    return min(lo, cum.shape[0] - 1)


@njit(nogil=True, cache=True, fastmath=_FASTMATH)
def _plusplus(X, w, uniforms, n_clusters, trials, seeds):  # pragma: no cover - compiled
    """k-means++ seeds (row indices) into ``seeds``, from ``1 + (K-1)*trials`` uniforms."""
    n = X.shape[0]
    cum = np.empty(n)
    total = 0.0
    for i in range(n):
        total += w[i]
        cum[i] = total
    seeds[0] = _first_reaching(cum, uniforms[0] * total, True)
    closest = np.empty(n)
    for i in range(n):
        closest[i] = _sq_dist(X, i, X[seeds[0]])
    candidate = np.empty(n)
    best = np.empty(n)
    for c in range(1, n_clusters):
        pot = 0.0
        for i in range(n):
            pot += w[i] * closest[i]
            cum[i] = pot
        best_pot = np.inf
        best_id = 0
        for t in range(trials):
            cid = _first_reaching(cum, uniforms[1 + (c - 1) * trials + t] * pot, False)
            cand_pot = 0.0
            for i in range(n):
                candidate[i] = min(closest[i], _sq_dist(X, i, X[cid]))
                cand_pot += w[i] * candidate[i]
            if t == 0 or cand_pot < best_pot:  # the first always: potentials may overflow to inf
                best_pot = cand_pot
                best_id = cid
                _copy(candidate, best)
        seeds[c] = best_id
        _copy(best, closest)


@njit(nogil=True, cache=True, fastmath=_FASTMATH)
def _assign(X, centres, labels, dist):  # pragma: no cover - compiled
    """Nearest centre of every row; returns whether any label changed."""
    changed = False
    for i in range(X.shape[0]):
        best_k = 0
        best_d = np.inf
        for k in range(centres.shape[0]):
            d = _sq_dist(X, i, centres[k])
            if d < best_d:
                best_d = d
                best_k = k
        if labels[i] != best_k:
            changed = True
            labels[i] = best_k
        dist[i] = best_d
    return changed


@njit(nogil=True, cache=True, fastmath=_FASTMATH)
def _lloyd(X, w, centres, labels, max_iter, tol):  # pragma: no cover - compiled
    """Lloyd's iterations from ``centres`` (updated in place); returns the weighted inertia."""
    n, n_features = X.shape
    K = centres.shape[0]
    dist = np.empty(n)
    for i in range(n):
        labels[i] = -1
    _assign(X, centres, labels, dist)
    for _ in range(max_iter):
        sums = np.zeros((K, n_features))
        mass = np.zeros(K)
        for i in range(n):
            mass[labels[i]] += w[i]
            for d in range(n_features):
                sums[labels[i], d] += w[i] * X[i, d]
        # An empty cluster takes the row farthest from its centre (scikit-learn's rule).
        taken = np.zeros(n, dtype=np.bool_)
        for k in range(K):
            if mass[k] > 0:
                continue
            far, far_d = -1, -1.0
            for i in range(n):
                if not taken[i] and w[i] > 0 and dist[i] > far_d:
                    far, far_d = i, dist[i]
            if far < 0:
                continue
            taken[far] = True
            old = labels[far]
            mass[old] -= w[far]
            mass[k] = w[far]
            for d in range(n_features):
                sums[old, d] -= w[far] * X[far, d]
                sums[k, d] = w[far] * X[far, d]
        shift = 0.0
        for k in range(K):
            if mass[k] <= 0:
                continue
            for d in range(n_features):
                new = sums[k, d] / mass[k]
                shift += (new - centres[k, d]) ** 2
                centres[k, d] = new
        changed = _assign(X, centres, labels, dist)
        if not changed or shift <= tol:
            break
    inertia = 0.0
    for i in range(n):
        inertia += w[i] * dist[i]
    return inertia


@njit(nogil=True, cache=True, fastmath=_FASTMATH)
def _kmeans(X, w, uniforms, n_clusters, n_init, trials, max_iter, tol, best_labels):  # pragma: no cover
    """Best of ``n_init`` (k-means++ then Lloyd) runs by inertia, its labels into ``best_labels``."""
    per_run = 1 + (n_clusters - 1) * trials
    seeds = np.empty(n_clusters, dtype=np.int64)
    labels = np.empty(X.shape[0], dtype=np.int64)
    best_inertia = np.inf
    centres = np.empty((n_clusters, X.shape[1]))
    for r in range(n_init):
        _plusplus(X, w, uniforms[r * per_run:(r + 1) * per_run], n_clusters, trials, seeds)
        for k in range(n_clusters):
            for d in range(X.shape[1]):
                centres[k, d] = X[seeds[k], d]
        inertia = _lloyd(X, w, centres, labels, max_iter, tol)
        if r == 0 or inertia < best_inertia:
            best_inertia = inertia
            _copy(labels, best_labels)


def kmeans_plusplus_seeds(X: np.ndarray, sample_weight: np.ndarray, n_clusters: int,
                          uniforms: np.ndarray) -> np.ndarray:
    """Row indices of ``n_clusters`` k-means++ seeds.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    sample_weight : ndarray of shape (n_samples,)
        Non-negative. Rows of weight 0 are not chosen while rows of positive weight
        remain at a positive distance from the seeds (as in scikit-learn, a row of
        weight 0 can be chosen once they are all seeds or duplicates of seeds).
    n_clusters : int
    uniforms : ndarray of shape (n_uniforms(n_clusters),)
        Uniform draws on [0, 1).
    """
    seeds = np.empty(n_clusters, dtype=np.int64)
    _plusplus(np.ascontiguousarray(X, dtype=np.float64), np.asarray(sample_weight, dtype=np.float64),
              np.asarray(uniforms, dtype=np.float64), n_clusters, n_local_trials(n_clusters), seeds)
    return seeds


def kmeans_labels(X: np.ndarray, sample_weight: np.ndarray, n_clusters: int, n_init: int,
                  uniforms: np.ndarray) -> np.ndarray:
    """Labels of the best of ``n_init`` k-means runs (k-means++ seeds, then Lloyd's iterations).

    ``uniforms`` has ``n_init * n_uniforms(n_clusters)`` draws on [0, 1).
    """
    X = np.ascontiguousarray(X, dtype=np.float64)
    w = np.asarray(sample_weight, dtype=np.float64)
    # scikit-learn's tolerance: relative to the data's mean (unweighted) feature variance.
    tol = float(np.mean(np.var(X, axis=0))) * KMEANS_TOL
    labels = np.empty(X.shape[0], dtype=np.int64)
    _kmeans(X, w, np.asarray(uniforms, dtype=np.float64), n_clusters, n_init, n_local_trials(n_clusters),
            KMEANS_MAX_ITER, tol, labels)
    return labels
