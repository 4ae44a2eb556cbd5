"""Partition-level summaries: which rows belong together, and how sure we are.

Per-point assignment probabilities (:func:`bayesgmm.assignments`) do not say how
different the plausible *partitions* of the data are. Following Wade and
Ghahramani (2018, "Bayesian cluster analysis: point estimation and credible balls",
Bayesian Analysis 13(2)), this module summarises the posterior over partitions:

- :func:`draw_allocations`: one partition per posterior draw, each row's cluster
  drawn from that draw's responsibilities ``p(z_n = k | x_n, draw)``;
- :func:`similarity_matrix`: the posterior similarity (co-clustering) matrix
  ``P(z_i = z_j | data)``, memory bounded, with a documented sampled approximation
  for many rows;
- :func:`point_partition`: the partition minimising the posterior expected
  Variation of Information (VI) or Binder loss, found by a SALSO-style greedy
  search (Dahl, Johnson and Müller 2022) with random restarts, the draws
  themselves as candidates;
- :func:`credible_ball`: the credible ball around it, with its horizontal and
  vertical bounds;
- :func:`occupied_clusters`: the posterior of the number of occupied clusters;
- :func:`partition_summary`: all of the above in one call;
- :func:`partition_distance`: the VI or Binder distance between two partitions;
- :func:`plot_similarity`: the similarity heatmap ordered by the point estimate.

Partitions are label-invariant: no relabelling is needed (or done). Distances are
in bits for VI (log base 2, as in Wade and Ghahramani) and, for Binder's loss (equal
costs), the fraction of the N (N - 1) / 2 pairs of rows on which two partitions
disagree (together in one, apart in the other).

The core functions work on NumPy arrays; those taking an ``InferenceData`` return
xarray objects with named dims (``draw``, ``obs_id``, ``obs_id_bis``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import xarray as xr

from ._posterior import check_idata, posterior_arrays
from ._validation import check_integer_param, check_probability, check_seed
from .labels import responsibility_blocks, training_points

__all__ = [
    "draw_allocations",
    "similarity_matrix",
    "point_partition",
    "credible_ball",
    "occupied_clusters",
    "partition_summary",
    "partition_distance",
    "plot_similarity",
]

#: Loss functions: exact posterior expectations over draws ("VI", "binder") and
#: Wade and Ghahramani's lower bound of the expected VI from the similarity matrix.
LOSSES = ("VI", "VI_lb", "binder")
#: Elements of the (points, draws x components) float32 block multiplied at once (~32 MB).
_GEMM_ELEMENTS = 8_000_000
_LOG2 = float(np.log(2.0))


# ============================================================== compiled kernels
# Loss functions written through f(n) on cluster sizes and contingency counts:
#   N * VI(c, c')     = sum_k f(n_k) + sum_l f(m_l) - 2 sum_kl f(n_kl),   f(x) = x log x
#   Binder(c, c')     = sum_k f(n_k) + sum_l f(m_l) - 2 sum_kl f(n_kl),   f(x) = x^2 / 2
# (Binder: pairs together in one partition and apart in the other.) Moving one
# item into cluster k changes the expectation over draws s by
#   g(n_k) - (2 / S) sum_s g(n^s_{k, l_s}),  with g(x) = f(x + 1) - f(x)
# where l_s is the item's cluster in draw s: O(S K) per item, no N x N matrix.

@numba.njit(cache=True, nogil=True)
def _choose_slot(delta, n, top, prefer, max_k, d_new):
    """The slot whose loss change ``delta[k]`` is lowest among the occupied slots 0..top-1.

    Ties keep ``prefer`` (the item's current cluster), then the lowest slot. A new
    cluster, changing the loss by ``d_new``, wins when it does better and ``max_k``
    allows one more: the first empty slot (``prefer`` first), else ``top``.
    Shared by the two greedy searches below.
    """
    best = -1
    best_d = np.inf
    empty = -1
    if prefer >= 0:
        if n[prefer] > 0:
            best = prefer
            best_d = delta[prefer]
        else:
            empty = prefer
    occupied = 0
    for k in range(top):
        if n[k] == 0:
            if empty < 0:
                empty = k
            continue
        occupied += 1
        d = delta[k]
        if best < 0 or d < best_d - 1e-12 * (1.0 + abs(best_d)):
            best = k
            best_d = d
    if max_k <= 0 or occupied < max_k:
        if best < 0 or d_new < best_d - 1e-12 * (1.0 + abs(best_d)):
            best = empty if empty >= 0 else top
    return best


@numba.njit(cache=True, nogil=True)
def _best_counts(A, T, n, g, i, prefer, max_k, acc):
    """Cluster for item i (removed from the counts) minimising the expected loss; ``cap`` = grow the arrays."""
    S = A.shape[0]
    cap = n.shape[0]
    top = 0  # slots in use: 0..top-1
    for k in range(cap):
        acc[k] = 0.0
        if n[k] > 0:
            top = k + 1
    for s in range(S):
        row = T[s, A[s, i]]
        for k in range(top):  # empty slots add g(0) = 0 (VI) or a value that is never read
            acc[k] += g[row[k]]
    scale = 2.0 / S
    for k in range(top):  # acc becomes the loss change of joining slot k
        acc[k] = g[n[k]] - scale * acc[k]
    return _choose_slot(acc, n, cap, prefer, max_k, -g[0])  # a new cluster: g(0) - (2 / S) * S * g(0)


@numba.njit(cache=True, nogil=True)
def _greedy_counts(A, L, g, order, labels0, max_sweeps, max_k):
    """Sequential allocation (items with label -1, in ``order``) then sweeps, on the exact expected loss.

    A: (S, N) draws' labels in 0..L-1. Returns (labels, sweeps run).
    """
    S, N = A.shape
    labels = labels0.copy()
    cap = 8
    for i in range(N):
        if labels[i] + 2 > cap:
            cap = labels[i] + 2
    n = np.zeros(cap, np.int64)
    T = np.zeros((S, L, cap), np.int32)
    for i in range(N):
        k = labels[i]
        if k >= 0:
            n[k] += 1
            for s in range(S):
                T[s, A[s, i], k] += 1
    acc = np.zeros(cap)
    sweeps = 0
    for sweep in range(max_sweeps + 1):
        changed = 0
        for t in range(order.shape[0]):
            i = order[t]
            a = labels[i]
            if sweep == 0 and a >= 0:
                continue  # the first pass only places unallocated items
            if a >= 0:
                n[a] -= 1
                for s in range(S):
                    T[s, A[s, i], a] -= 1
            b = _best_counts(A, T, n, g, i, a, max_k, acc)
            if b >= cap:  # grow
                new_cap = cap * 2
                T2 = np.zeros((S, L, new_cap), np.int32)
                T2[:, :, :cap] = T
                T = T2
                n2 = np.zeros(new_cap, np.int64)
                n2[:cap] = n
                n = n2
                acc = np.zeros(new_cap)
                cap = new_cap
            labels[i] = b
            n[b] += 1
            for s in range(S):
                T[s, A[s, i], b] += 1
            if b != a:
                changed += 1
        if sweep > 0:
            sweeps = sweep
            if changed == 0:
                break
    return labels, sweeps


@numba.njit(cache=True, nogil=True)
def _draw_distances(c, Kc, A, L, binder):
    """f-sums of the distance between partition c (labels 0..Kc-1) and every draw (rows of A, labels 0..L-1).

    Returns (S,) values of sum_k f(n_k) + sum_l f(m_l) - 2 sum_kl f(n_kl).
    """
    S, N = A.shape
    nk = np.zeros(Kc)
    for i in range(N):
        nk[c[i]] += 1.0
    base = 0.0
    for k in range(Kc):
        x = nk[k]
        if x > 0:
            base += 0.5 * x * x if binder else x * np.log(x)
    out = np.empty(S)
    M = np.zeros((Kc, L))
    m = np.zeros(L)
    for s in range(S):
        M[:, :] = 0.0
        m[:] = 0.0
        for i in range(N):
            M[c[i], A[s, i]] += 1.0
            m[A[s, i]] += 1.0
        total = base
        for l in range(L):
            x = m[l]
            if x > 0:
                total += 0.5 * x * x if binder else x * np.log(x)
        for k in range(Kc):
            for l in range(L):
                x = M[k, l]
                if x > 0:
                    total -= 2.0 * (0.5 * x * x if binder else x * np.log(x))
        out[s] = total
    return out


@numba.njit(cache=True, nogil=True)
def _best_psm(P, labels, n, ssum, i, prefer, max_k, vi, acc, gain, top):
    """Cluster for item i (unallocated) under a similarity-matrix loss; returns (cluster, sum of P[i, j] in it)."""
    N = P.shape[0]
    for k in range(top + 1):
        acc[k] = 0.0
        gain[k] = 0.0
    for j in range(N):
        k = labels[j]
        if k < 0 or j == i:
            continue
        p = P[i, j]
        if vi:
            if p == 0.0:
                continue  # adds nothing (common between well-separated clusters)
            acc[k] += p
            gain[k] += np.log1p(p / ssum[j])
        else:
            acc[k] += 1.0 - 2.0 * p
    if vi:  # gain becomes the loss change of joining cluster k (Binder's is acc itself)
        for k in range(top):
            x = n[k]
            if x > 0:
                gain[k] = (x + 1) * np.log(x + 1) - x * np.log(x) - 2.0 * (np.log1p(acc[k]) + gain[k])
    best = _choose_slot(gain if vi else acc, n, top, prefer, max_k, 0.0)  # a new cluster changes the loss by 0
    return best, (acc[best] if best < top else 0.0)


@numba.njit(cache=True, nogil=True)
def _greedy_psm(P, vi, order, labels0, max_sweeps, max_k):
    """As :func:`_greedy_counts`, for Binder's loss or the VI lower bound from a similarity matrix P (N, N).

    The sweep loop is not shared with :func:`_greedy_counts`: each updates its own
    state in place (contingency tables there, per-item similarity sums here), and one
    compiled loop over both would need a state object numba cannot inline as cheaply.
    """
    N = P.shape[0]
    labels = labels0.copy()
    n = np.zeros(N + 1, np.int64)
    top = 0
    for i in range(N):
        if labels[i] >= 0:
            n[labels[i]] += 1
            if labels[i] + 1 > top:
                top = labels[i] + 1
    ssum = np.ones(N)  # VI: sum_{j in i's cluster} P[i, j], itself included (P[i, i] = 1)
    if vi:
        for i in range(N):
            if labels[i] >= 0:
                for j in range(N):
                    if j != i and labels[j] == labels[i]:
                        ssum[i] += P[i, j]
    acc = np.zeros(N + 1)
    gain = np.zeros(N + 1)
    sweeps = 0
    for sweep in range(max_sweeps + 1):
        changed = 0
        for t in range(order.shape[0]):
            i = order[t]
            a = labels[i]
            if sweep == 0 and a >= 0:
                continue
            if a >= 0:
                n[a] -= 1
                labels[i] = -1
                if vi:
                    for j in range(N):
                        if labels[j] == a:
                            ssum[j] -= P[i, j]
            b, inside = _best_psm(P, labels, n, ssum, i, a, max_k, vi, acc, gain, top)
            if b >= top:
                top = b + 1
            labels[i] = b
            n[b] += 1
            if vi:
                for j in range(N):
                    if j != i and labels[j] == b:
                        ssum[j] += P[i, j]
                ssum[i] = 1.0 + inside
            if b != a:
                changed += 1
        if sweep > 0:
            sweeps = sweep
            if changed == 0:
                break
    return labels, sweeps


@numba.njit(cache=True, nogil=True)
def _cluster_sums(P, c, K):
    """C[i, k] = sum of P[i, j] over the rows j != i of cluster k."""
    N = P.shape[0]
    C = np.zeros((N, K))
    for i in range(N):
        for j in range(N):
            if j != i:
                C[i, c[j]] += P[i, j]
    return C


@numba.njit(cache=True, nogil=True)
def _psm_loss(c, Kc, P, vi):
    """VI lower bound (nats x N) or expected Binder loss (pairs) of partition c from the similarity matrix P."""
    N = P.shape[0]
    if vi:
        nk = np.zeros(Kc)
        for i in range(N):
            nk[c[i]] += 1.0
        total = 0.0
        for i in range(N):
            row = 0.0
            inside = 0.0
            for j in range(N):
                p = 1.0 if j == i else P[i, j]
                row += p
                if c[j] == c[i]:
                    inside += p
            total += np.log(nk[c[i]]) + np.log(row) - 2.0 * np.log(inside)
        return total
    total = 0.0
    for i in range(N):
        for j in range(i + 1, N):
            p = P[i, j]
            total += (1.0 - p) if c[i] == c[j] else p
    return total


# ============================================================== argument checks
def _check_loss(loss) -> str:
    if isinstance(loss, str):
        for option in LOSSES:
            if loss.lower() == option.lower():
                return option
    raise ValueError(f"loss must be one of {list(LOSSES)!r}, got {loss!r}.")


def _labels_array(values, name: str, ndim: int) -> np.ndarray:
    """Non-negative integer labels (integral floats accepted) of the given number of dims."""
    if values is None or isinstance(values, (str, bytes, dict, set)):
        raise TypeError(f"{name} must be an array of integer cluster labels, got {type(values).__name__}.")
    try:
        arr = np.asarray(values)
    except ValueError as err:
        raise ValueError(f"{name} must be a rectangular array of labels: {err}") from None
    if arr.dtype.kind == "b":
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must hold integer cluster labels, got dtype {arr.dtype}.")
    if arr.ndim != ndim:
        shape = "(n_draws, n_points)" if ndim == 2 else "(n_points,)"
        raise ValueError(f"{name} must be {ndim}-D of shape {shape}, got shape {arr.shape}.")
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}).")
    if arr.dtype.kind == "f":
        if not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)):
            raise ValueError(f"{name} must hold integer cluster labels; found non-integer or non-finite values.")
    if arr.min() < 0:
        raise ValueError(f"{name} must hold non-negative cluster labels, found {arr.min()}.")
    return arr.astype(np.int64)


def _compact_rows(A: np.ndarray) -> tuple[np.ndarray, int]:
    """Labels renumbered 0..L-1 (one numbering for all rows; partitions are unchanged)."""
    values, inverse = np.unique(A, return_inverse=True)
    return inverse.reshape(A.shape).astype(np.int32), int(values.size)


def _check_allocations(allocations, name: str = "allocations") -> tuple[np.ndarray, np.ndarray]:
    """(S, N) integer labels and the rows' ids, from a DataArray (dims draw, obs_id) or an array."""
    if isinstance(allocations, xr.Dataset):
        if "allocations" not in allocations:
            raise TypeError(f"{name} must be allocations (a DataArray with dims ('draw', 'obs_id') or an integer "
                            "array), got a Dataset without an 'allocations' variable.")
        allocations = allocations["allocations"]
    if isinstance(allocations, xr.DataArray):
        if set(allocations.dims) != {"draw", "obs_id"}:
            raise ValueError(f"{name} must have dims ('draw', 'obs_id') (as draw_allocations returns), got "
                             f"{allocations.dims}.")
        allocations = allocations.transpose("draw", "obs_id")
        ids = np.asarray(allocations["obs_id"].values)
        return _labels_array(allocations.values, name, 2), ids
    arr = _labels_array(allocations, name, 2)
    return arr, np.arange(arr.shape[1])


def _check_point(point, n_points: int, name: str = "point") -> np.ndarray:
    if isinstance(point, xr.DataArray) and point.ndim == 1:
        point = point.values
    arr = _labels_array(point, name, 1)
    if arr.shape[0] != n_points:
        raise ValueError(f"{name} has {arr.shape[0]} labels but the allocations have {n_points} rows.")
    return arr


def _check_psm(psm, name: str = "psm") -> tuple[np.ndarray, np.ndarray]:
    """A square similarity matrix with values in [0, 1] (float), and its rows' ids."""
    ids = None
    if isinstance(psm, xr.DataArray):
        if psm.ndim != 2:
            raise ValueError(f"{name} must be 2-D (obs_id, obs_id_bis), got dims {psm.dims}.")
        if psm.dims[0] in psm.coords:
            ids = np.asarray(psm[psm.dims[0]].values)
        psm = psm.values
    if psm is None or isinstance(psm, (str, bytes, dict, set)):
        raise TypeError(f"{name} must be a square array of co-clustering probabilities, got {type(psm).__name__}.")
    arr = np.asarray(psm)
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}.")
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1] or arr.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty square matrix (n_points, n_points), got shape {arr.shape}.")
    if arr.dtype.kind != "f":
        arr = arr.astype(np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values.")
    if arr.min() < -1e-6 or arr.max() > 1 + 1e-6:
        raise ValueError(f"{name} must hold probabilities in [0, 1], found values in [{arr.min():g}, {arr.max():g}].")
    n = arr.shape[0]
    rng = np.random.default_rng(0)  # spot-check symmetry without an N x N temporary
    i, j = rng.integers(0, n, size=(2, min(n * n, 100_000)))
    if np.any(np.abs(arr[i, j] - arr[j, i]) > 1e-4):
        raise ValueError(f"{name} must be symmetric (a posterior similarity matrix).")
    if np.any(np.abs(np.diagonal(arr) - 1.0) > 1e-4):
        raise ValueError(f"{name} must have ones on its diagonal (every row is clustered with itself).")
    return arr, (np.arange(n) if ids is None else ids)


def _rng(random_seed) -> np.random.Generator:
    return np.random.default_rng(check_seed(random_seed))


def _check_n_draws(n_draws, name: str = "n_draws"):
    return None if n_draws is None else check_integer_param(n_draws, name, minimum=1)


# ============================================================== NumPy core
def _canonical(labels: np.ndarray) -> np.ndarray:
    """Labels 0..K-1 by decreasing cluster size (ties: first appearance)."""
    values, first, inverse, counts = np.unique(labels, return_index=True, return_inverse=True, return_counts=True)
    rank = np.lexsort((first, -counts))  # clusters in their new order
    new = np.empty(values.size, dtype=np.int64)
    new[rank] = np.arange(values.size)
    return new[inverse.ravel()]


def n_clusters_per_draw(A: np.ndarray) -> np.ndarray:
    """Number of distinct labels in every row of an (S, N) integer array."""
    A, L = _compact_rows(A)
    seen = np.zeros((A.shape[0], L), dtype=bool)
    seen[np.arange(A.shape[0])[:, None], A] = True
    return seen.sum(axis=1)


def expected_loss_draws(c: np.ndarray, A: np.ndarray, loss: str, *, n_labels: int | None = None) -> np.ndarray:
    """Distance (VI in bits, or Binder as a fraction of pairs) from partition ``c`` (N,) to every row of ``A`` (S, N).

    ``n_labels``: A already holds labels 0..n_labels-1 (int32), skipping their renumbering.
    """
    N = c.shape[0]
    c = np.unique(c, return_inverse=True)[1].ravel().astype(np.int64)
    if n_labels is None:
        A, n_labels = _compact_rows(A)
    raw = _draw_distances(c, int(c.max()) + 1, A, n_labels, loss == "binder")
    if loss == "binder":
        return raw / (N * (N - 1) / 2) if N > 1 else np.zeros_like(raw)
    return np.maximum(raw, 0.0) / (N * _LOG2)


def psm_loss(c: np.ndarray, P: np.ndarray, loss: str) -> float:
    """VI lower bound (bits) or expected Binder loss (fraction of pairs) of partition ``c`` from similarity ``P``."""
    N = c.shape[0]
    c = np.unique(c, return_inverse=True)[1].ravel().astype(np.int64)
    raw = _psm_loss(c, int(c.max()) + 1, P, loss == "VI_lb")
    if loss == "VI_lb":
        return float(raw / (N * _LOG2))
    return float(raw / (N * (N - 1) / 2)) if N > 1 else 0.0


def _gram_update(P: np.ndarray, R: np.ndarray) -> None:
    """P += R R^T in place on P's lower triangle (BLAS syrk: half the work, no N x N temporary)."""
    from scipy.linalg.blas import ssyrk

    ssyrk(1.0, R, beta=1.0, c=P.T, trans=0, lower=0, overwrite_c=1)  # P.T's upper = P's lower triangle


def _finish_similarity(P: np.ndarray, n_draws: int) -> np.ndarray:
    """Lower triangle of summed products to the symmetric mean, in place, in blocks of rows."""
    N = P.shape[0]
    step = max(1, _GEMM_ELEMENTS // max(1, N))
    for i0 in range(0, N, step):
        i1 = min(N, i0 + step)
        P[i0:i1, i0:i1] = np.tril(P[i0:i1, i0:i1]) + np.tril(P[i0:i1, i0:i1], -1).T
        P[:i0, i0:i1] = P[i0:i1, :i0].T
    P /= n_draws
    np.clip(P, 0.0, 1.0, out=P)
    np.fill_diagonal(P, 1.0)
    return P


def _allocations_core(X: np.ndarray, arrays: dict, rng: np.random.Generator, *,
                      similarity: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """(S, N) labels: per draw, each row's component drawn from that draw's responsibilities.

    With ``similarity``, the Rao-Blackwellised similarity matrix from the same
    responsibilities, float32: the mean over draws of ``sum_k r_ik r_jk`` (1 on the diagonal);
    else None.
    """
    S, K, _ = arrays["means"].shape
    N = X.shape[0]
    out = np.empty((S, N), dtype=np.int16 if K < 2**15 else np.int32)
    P = np.zeros((N, N), dtype=np.float32) if similarity else None
    block = max(1, _GEMM_ELEMENTS // max(1, N * K))
    for s0 in range(0, S, block):
        idx = np.arange(s0, min(S, s0 + block))
        u = rng.random((idx.size, N))
        R = np.empty((N, idx.size, K), dtype=np.float32) if similarity else None
        for ds, ps, resp in responsibility_blocks(X, _subset_arrays(arrays, idx)):
            cum = np.cumsum(resp, axis=2)
            out[s0 + ds.start:s0 + ds.stop, ps] = (cum[..., :-1] < u[ds, ps, None]).sum(axis=2)
            if similarity:
                R[ps, ds] = np.swapaxes(resp, 0, 1)
        if similarity:
            _gram_update(P, R.reshape(N, -1))
    if similarity:
        _finish_similarity(P, S)
    return out, P


def _subset_arrays(arrays: dict, idx: np.ndarray) -> dict:
    return {name: value[idx] for name, value in arrays.items() if value is not None}


def _psm_from_allocations(A: np.ndarray) -> np.ndarray:
    """Fraction of draws in which rows i and j share a label: mean over draws of one-hot products, float32."""
    A, L = _compact_rows(A)
    S, N = A.shape
    P = np.zeros((N, N), dtype=np.float32)
    block = max(1, _GEMM_ELEMENTS // max(1, N * L))
    rows = np.arange(N)
    for s0 in range(0, S, block):
        sub = A[s0:s0 + block]
        onehot = np.zeros((N, sub.shape[0], L), dtype=np.float32)
        onehot[rows[:, None], np.arange(sub.shape[0])[None, :], sub.T] = 1.0
        _gram_update(P, onehot.reshape(N, -1))  # counts: exact in float32 up to 2**24 draws
    return _finish_similarity(P, S)


def _loss_f(loss: str, N: int) -> np.ndarray:
    """f(x) of the loss (see the kernels above) for sizes up to two merged clusters."""
    x = np.arange(2 * N + 2, dtype=np.float64)
    return 0.5 * x * x if loss == "binder" else x * np.log(np.where(x > 0, x, 1.0))


class _DrawsLoss:
    """The expected VI over the draws ``A`` (S, N), exactly: the greedy moves, the loss and the merge gains."""

    def __init__(self, A: np.ndarray, loss: str, max_sweeps: int, max_clusters: int):
        self.A, self.L = _compact_rows(A)
        self.S, self.N = self.A.shape
        self.loss, self.max_sweeps, self.max_clusters = loss, max_sweeps, max_clusters
        self.f = _loss_f(loss, self.N)
        self.g = np.diff(self.f)  # g[x] = f(x + 1) - f(x)
        self.draw_rows = np.arange(self.S)[:, None] * self.L + self.A  # (S, N) flat (draw, label) index

    def run(self, order, labels0, n_sweeps=None):
        n_sweeps = self.max_sweeps if n_sweeps is None else n_sweeps
        return _greedy_counts(self.A, self.L, self.g, order, labels0, n_sweeps, self.max_clusters)

    def evaluate(self, c) -> float:
        return float(expected_loss_draws(c, self.A, self.loss, n_labels=self.L).mean())

    def merge_deltas(self, c, K) -> np.ndarray:
        """delta[k1, k2] (k1 < k2, inf elsewhere): the loss change of merging clusters k1 and k2."""
        S, L, f = self.S, self.L, self.f
        counts = np.bincount((self.draw_rows * K + c[None, :]).ravel(), minlength=S * L * K).reshape(S * L, K)
        n = np.bincount(c, minlength=K)
        f_counts = f[counts].sum(axis=0)
        delta = np.full((K, K), np.inf)
        for k1 in range(K):
            for k2 in range(k1 + 1, K):
                cross = f[counts[:, k1] + counts[:, k2]].sum() - f_counts[k1] - f_counts[k2]
                delta[k1, k2] = f[n[k1] + n[k2]] - f[n[k1]] - f[n[k2]] - 2.0 / S * cross
        return delta


class _SimilarityLoss:
    """Binder's loss or the VI lower bound from the similarity matrix ``P`` (N, N): as :class:`_DrawsLoss`."""

    def __init__(self, P: np.ndarray, loss: str, max_sweeps: int, max_clusters: int):
        self.P = np.ascontiguousarray(P)
        self.N = self.P.shape[0]
        self.loss, self.vi, self.max_sweeps, self.max_clusters = loss, loss == "VI_lb", max_sweeps, max_clusters
        self.f = _loss_f(loss, self.N)

    def run(self, order, labels0, n_sweeps=None):
        n_sweeps = self.max_sweeps if n_sweeps is None else n_sweeps
        return _greedy_psm(self.P, self.vi, order, labels0, n_sweeps, self.max_clusters)

    def evaluate(self, c) -> float:
        return psm_loss(c, self.P, self.loss)

    def merge_deltas(self, c, K) -> np.ndarray:
        N, f = self.N, self.f
        C = _cluster_sums(self.P, c, K)  # (N, K): sum of P[i, j] over j != i in cluster k
        onehot = np.zeros((N, K))
        onehot[np.arange(N), c] = 1.0
        n = onehot.sum(axis=0)
        if self.vi:
            G = np.log1p(C / (1.0 + C[np.arange(N), c])[:, None])
            M = onehot.T @ G
            delta = f[(n[:, None] + n[None, :]).astype(int)] - f[n.astype(int)][:, None] \
                - f[n.astype(int)][None, :] - 2.0 * (M + M.T)
        else:
            delta = np.outer(n, n) - 2.0 * (onehot.T @ C)
        delta[np.tril_indices(K)] = np.inf
        return delta


def _merge_while_better(problem, labels, value):
    """Merge the best pair of clusters while that lowers the loss. Returns (labels, value, changed)."""
    changed = False
    while labels.max() >= 1:
        K = int(labels.max()) + 1
        delta = problem.merge_deltas(labels, K)
        k1, k2 = np.unravel_index(np.argmin(delta), delta.shape)
        if not delta[k1, k2] < -1e-9 * (1.0 + abs(value)):
            break
        cand = labels.copy()
        cand[cand == k2] = k1
        cand = _canonical(cand)
        v = problem.evaluate(cand)
        if not v < value - 1e-12 * (1.0 + abs(value)):
            break
        labels, value, changed = cand, v, True
    return labels, value, changed


def _zealous(problem, labels, value, rng, max_zealous: int):
    """Dahl et al.'s zealous updates: dissolve a cluster, reallocate its items, keep when the loss drops."""
    changed = False
    for k in rng.permutation(int(labels.max()) + 1)[:max_zealous]:
        if k > labels.max():
            continue
        members = np.flatnonzero(labels == k)
        labels0 = labels.copy()
        labels0[members] = -1
        cand, _ = problem.run(rng.permutation(members).astype(np.int64), labels0, 0)  # reallocate them only
        cand = _canonical(cand)
        v = problem.evaluate(cand)
        if v < value - 1e-12 * (1.0 + abs(value)):
            labels, value, changed = cand, v, True
    return labels, value, changed


def _greedy_run(problem, labels0, rng, max_rounds: int, max_zealous: int):
    """One search from ``labels0`` (-1: unallocated): allocate and sweep, then merge, zealous and sweep rounds."""
    labels, sweeps = problem.run(rng.permutation(problem.N).astype(np.int64), labels0)
    labels = _canonical(labels)
    value, sweeps = problem.evaluate(labels), int(sweeps)
    for _ in range(max_rounds):
        labels, value, merged = _merge_while_better(problem, labels, value)
        labels, value, dissolved = _zealous(problem, labels, value, rng, max_zealous)
        if not (merged or dissolved):
            break
        labels, more = problem.run(rng.permutation(problem.N).astype(np.int64), labels)
        labels = _canonical(labels)
        value, sweeps = problem.evaluate(labels), sweeps + int(more)
    return labels, value, sweeps


def _best_draw(problem, A: np.ndarray, n_candidates: int, max_clusters: int, rng):
    """The best of ``n_candidates`` random draws as a point estimate: (loss, labels, how found, 0), or None."""
    S, N = A.shape
    if not isinstance(problem, _DrawsLoss):
        n_candidates = min(n_candidates, max(1, int(2e9 // N**2)))  # each costs O(N^2)
    if n_candidates <= 0:
        return None
    pick = np.sort(rng.choice(S, size=min(S, n_candidates), replace=False))
    scores = [problem.evaluate(A[s]) for s in pick]
    best = int(np.argmin(scores))
    start = _canonical(A[pick[best]])
    if max_clusters > 0 and int(start.max()) + 1 > max_clusters:
        return None
    return scores[best], start, f"draw {int(pick[best])}", 0


def _search(loss, *, A=None, P=None, n_restarts, max_sweeps, max_clusters, n_candidates, rng, max_rounds=10,
            max_zealous=10):
    """SALSO-style greedy minimisation. Returns (expected loss, labels, how found, sweeps).

    "VI" is minimised exactly over the draws ``A`` (S, N); "VI_lb" and "binder" from
    the similarity matrix ``P`` (the expected Binder loss depends on nothing else).
    Draws in ``A`` (when given) are also candidates.

    Each run allocates the items one by one in a random order, then alternates
    (1) sweeps moving one item at a time to its best cluster, (2) the best merge of
    two clusters while one lowers the loss and (3) "zealous" updates (Dahl et al.):
    dissolve one cluster and reallocate its items, kept when the loss drops; until
    a round changes nothing. At most ``max_zealous`` clusters are dissolved per round.
    """
    if loss == "VI":
        problem = _DrawsLoss(A, loss, max_sweeps, max_clusters)
    else:
        problem = _SimilarityLoss(P, loss, max_sweeps, max_clusters)
    results = []  # (loss, labels, how found, sweeps)
    candidates = problem.A if isinstance(problem, _DrawsLoss) else None if A is None else _compact_rows(A)[0]
    drawn = None if candidates is None else _best_draw(problem, candidates, n_candidates, max_clusters, rng)
    if drawn is not None:
        results.append(drawn)
    for _ in range(n_restarts):
        labels, value, sweeps = _greedy_run(problem, np.full(problem.N, -1, dtype=np.int64), rng, max_rounds,
                                            max_zealous)
        results.append((value, labels, "greedy", sweeps))
    if drawn is not None:  # the best draw also seeds one more search
        labels, value, sweeps = _greedy_run(problem, drawn[1].astype(np.int64), rng, max_rounds, max_zealous)
        results.append((value, labels, "greedy from the best draw", sweeps))
    best = min(range(len(results)), key=lambda r: (results[r][0], r))
    return results[best]


def _ball(A: np.ndarray, c: np.ndarray, prob: float, loss: str) -> dict:
    """Credible ball around c from the draws A (Wade and Ghahramani 2018, section 4)."""
    dist = expected_loss_draws(c, A, loss)
    S = dist.size
    radius = float(np.sort(dist)[int(np.ceil(prob * S)) - 1])
    inside = dist <= radius + 1e-12
    k = n_clusters_per_draw(A)
    idx = np.flatnonzero(inside)

    def furthest(candidates):
        return int(candidates[np.argmax(dist[candidates])])

    fewest = idx[k[idx] == k[idx].min()]
    most = idx[k[idx] == k[idx].max()]
    bounds = {"horizontal": furthest(idx), "vertical_upper": furthest(fewest), "vertical_lower": furthest(most)}
    return {"distance": dist, "radius": radius, "in_ball": inside, "n_clusters": k, "bounds": bounds}


# ============================================================== public API
def _ids_for(idata, X, n: int) -> np.ndarray:
    import pandas as pd

    if X is None and "observed_data" in idata.groups() and "obs_id" in idata.observed_data.coords:
        ids = np.asarray(idata.observed_data["obs_id"].values)
        if ids.shape == (n,):
            return ids
    if isinstance(X, (pd.DataFrame, pd.Series)) and X.index.is_unique and len(X.index) == n:
        return np.asarray(X.index)
    return np.arange(n)


def _select_draws(S: int, n_draws, rng) -> np.ndarray:
    if n_draws is None or n_draws >= S:
        return np.arange(S)
    return np.sort(rng.choice(S, size=n_draws, replace=False))


def _source_coords(idata, idx: np.ndarray) -> dict:
    post = idata.posterior
    n_draw = post.sizes["draw"]
    return {"chain_source": ("draw", np.asarray(post["chain"].values)[idx // n_draw]),
            "draw_source": ("draw", np.asarray(post["draw"].values)[idx % n_draw])}


def draw_allocations(idata, X=None, *, n_draws: int | None = None, random_seed=None) -> xr.DataArray:
    """One partition of the rows per posterior draw.

    For posterior draw s (weights, means, covariances), row n is given the cluster
    ``z_n ~ Categorical(p(z_n = k | x_n, draw s))``, the draw's responsibilities:
    a draw from the posterior of the partition, as a sampler with the latent
    allocations would have produced.

    Parameters
    ----------
    idata : arviz.InferenceData
        From :meth:`BayesianGMM.fit` (or :func:`em_to_idata`).
    X : array-like of shape (n_points, n_features), default=None
        The rows to allocate; the training data (``observed_data``) when None. A
        DataFrame is matched to the features by column name, and its (unique)
        index becomes the ``obs_id`` coordinate.
    n_draws : int, default=None
        Use this many posterior draws, chosen at random without replacement (all
        draws when None or when there are fewer).
    random_seed : int, numpy Generator or None, default=None
        Makes the draws (and their choice) reproducible.

    Returns
    -------
    xarray.DataArray of shape (n_draws, n_points)
        Integer labels, dims (``draw``, ``obs_id``). The labels are the sampler's
        component indices, *not* relabelled: partitions do not depend on labels.
        Coordinates ``chain_source`` and ``draw_source`` (on ``draw``) say which
        posterior draw each row came from.

    Examples
    --------
    >>> from bayesgmm import GaussianMixtureEM, em_to_idata, draw_allocations
    >>> from bayesgmm.datasets import load_faithful
    >>> X = load_faithful().to_numpy()
    >>> idata = em_to_idata(GaussianMixtureEM(2, random_state=0).fit(X), X)
    >>> draw_allocations(idata, random_seed=0).shape
    (1, 272)
    """
    check_idata(idata)
    n_draws = _check_n_draws(n_draws)
    rng = _rng(random_seed)
    points = training_points(idata, X)
    arrays = posterior_arrays(idata)
    S = arrays["weights"].shape[0]
    idx = _select_draws(S, n_draws, rng)
    A, _ = _allocations_core(points, _subset_arrays(arrays, idx), rng)
    return xr.DataArray(
        A, dims=("draw", "obs_id"),
        coords={"draw": np.arange(idx.size), "obs_id": _ids_for(idata, X, points.shape[0]),
                **_source_coords(idata, idx)},
        name="allocations",
        attrs={"n_components": int(idata.posterior.sizes["component"]), "n_draws_total": int(S)},
    )


def similarity_matrix(data, X=None, *, n_draws: int | None = None, max_points: int = 10_000,
                      method: str = "responsibilities", random_seed=None) -> xr.DataArray:
    """Posterior similarity matrix: the probability that two rows are in the same cluster.

    (Over 60 lines only because this docstring documents every argument; the code is 17 lines.)

    Parameters
    ----------
    data : arviz.InferenceData or allocations
        A mixture posterior, or allocations as :func:`draw_allocations` returns
        (a DataArray with dims ``draw``, ``obs_id``, or an integer array (S, N)).
    X : array-like of shape (n_points, n_features), default=None
        With an InferenceData: the rows, the training data when None.
    n_draws : int, default=None
        Use at most this many posterior draws (at random; all when None).
    max_points : int, default=10_000
        Above this many rows the matrix is a *sampled approximation*: ``max_points``
        rows chosen at random (their ids kept as coordinates), with the exact
        co-clustering probabilities among them. The matrix is float32, so 10 000
        rows take 400 MB; memory during the computation is bounded by blocks of
        draws (about 32 MB more).
    method : {"responsibilities", "allocations"}, default="responsibilities"
        How each draw contributes, with an InferenceData: ``"responsibilities"``
        averages ``P(z_i = z_j | draw) = sum_k r_ik r_jk`` (a Rao-Blackwellised
        estimate: no Monte Carlo noise from drawing allocations); ``"allocations"``
        averages the co-clustering of allocations drawn as in :func:`draw_allocations`.
        Allocations passed as ``data`` always use the latter.
    random_seed : int, numpy Generator or None, default=None

    Returns
    -------
    xarray.DataArray of shape (n, n)
        float32, dims (``obs_id``, ``obs_id_bis``), symmetric with ones on the
        diagonal. Attributes: ``approximate`` (True when rows were sampled),
        ``n_points_total``, ``n_draws`` and ``method``.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm import similarity_matrix
    >>> alloc = np.array([[0, 0, 1], [0, 1, 1]])
    >>> similarity_matrix(alloc).values
    array([[1. , 0.5, 0. ],
           [0.5, 1. , 0.5],
           [0. , 0.5, 1. ]], dtype=float32)
    """
    import arviz as az

    n_draws = _check_n_draws(n_draws)
    max_points = check_integer_param(max_points, "max_points", minimum=2)
    if method not in ("responsibilities", "allocations"):
        raise ValueError(f"method must be 'responsibilities' or 'allocations', got {method!r}.")
    rng = _rng(random_seed)
    if isinstance(data, az.InferenceData):
        return _posterior_similarity(data, X, n_draws, max_points, method, rng)
    if X is not None:
        raise ValueError("X is only used with an InferenceData; allocations already hold their rows.")
    A, ids = _check_allocations(data, name="data")
    N = A.shape[1]
    rows = _select_rows(N, max_points, rng)
    A = A[_select_draws(A.shape[0], n_draws, rng)][:, rows]
    return _psm_array(_psm_from_allocations(A), ids[rows], approximate=rows.size < N, n_total=N,
                      n_draws=A.shape[0], method="allocations")


def _posterior_similarity(idata, X, n_draws, max_points: int, method: str, rng) -> xr.DataArray:
    """:func:`similarity_matrix` of a posterior, from its responsibilities or drawn allocations."""
    check_idata(idata)
    sel = _posterior_selection(idata, X, n_draws, max_points, rng)
    if method == "responsibilities":
        P = _allocations_core(sel.points, sel.arrays, rng, similarity=True)[1]
    else:
        P = _psm_from_allocations(_allocations_core(sel.points, sel.arrays, rng)[0])
    return _psm_array(P, sel.ids, approximate=sel.approximate, n_total=sel.n_total, n_draws=sel.draws.size,
                      method=method)


@dataclass
class _Selection:
    """The rows and draws of a posterior that a partition summary uses."""

    points: np.ndarray  # (n, D), the rows used
    ids: np.ndarray  # their obs_id
    n_total: int  # rows before sampling
    approximate: bool  # True when rows were sampled (n < n_total)
    draws: np.ndarray  # indices of the draws used (flattened over chains)
    arrays: dict  # the posterior's arrays of those draws


def _posterior_selection(idata, X, n_draws, max_points: int, rng) -> _Selection:
    """At most ``max_points`` rows and ``n_draws`` draws of the posterior, at random (all when fewer)."""
    points = training_points(idata, X)
    N = points.shape[0]
    ids = _ids_for(idata, X, N)
    rows = _select_rows(N, max_points, rng)
    arrays = posterior_arrays(idata)
    idx = _select_draws(arrays["weights"].shape[0], n_draws, rng)
    return _Selection(points[rows], ids[rows], N, rows.size < N, idx, _subset_arrays(arrays, idx))


def _select_rows(N: int, max_points: int, rng) -> np.ndarray:
    return np.arange(N) if N <= max_points else np.sort(rng.choice(N, size=max_points, replace=False))


def _psm_array(P, ids, *, approximate, n_total, n_draws, method) -> xr.DataArray:
    return xr.DataArray(P, dims=("obs_id", "obs_id_bis"), coords={"obs_id": ids, "obs_id_bis": ids},
                        name="similarity",
                        attrs={"approximate": int(approximate), "n_points_total": int(n_total),
                               "n_draws": int(n_draws), "method": method})


def point_partition(data, *, loss: str = "VI", n_restarts: int = 8, max_sweeps: int = 100,
                    max_clusters: int | None = None, n_candidates: int = 100, random_seed=None) -> xr.DataArray:
    """The partition minimising the posterior expected loss (VI or Binder), by a greedy search.

    (Over 60 lines only because this docstring documents every argument; the code is 15 lines.)

    Parameters
    ----------
    data : allocations or similarity matrix
        Allocations as :func:`draw_allocations` returns (DataArray with dims
        ``draw``, ``obs_id``; or an *integer* array (S, N)), or a similarity matrix
        as :func:`similarity_matrix` returns (DataArray with two dims; or a *float*
        square array).
    loss : {"VI", "VI_lb", "binder"}, default="VI"
        ``"VI"``: the posterior expected Variation of Information, computed exactly
        over the draws (needs allocations). ``"VI_lb"``: Wade and Ghahramani's
        approximation ``VI_LB`` from the similarity matrix (Jensen's inequality
        moves the expectation inside the logarithm of the term that depends on the
        estimate; the value is R's ``mcclust.ext::VI.lb``, what its ``minVI``
        minimises by default). ``"binder"``: the
        expected Binder loss with equal costs (exact from either input; it only
        depends on the similarity matrix). VI favours fewer, larger clusters than
        Binder, which tends to add small clusters for uncertain rows.
    n_restarts : int, default=8
        Greedy runs from random orders: each allocates the rows one by one (to the
        cluster, existing or new, that lowers the loss most) and then sweeps,
        moving one row at a time to its best cluster, until a sweep changes
        nothing (SALSO-style; Dahl, Johnson and Müller 2022).
    max_sweeps : int, default=100
        At most this many sweeps per run.
    max_clusters : int, default=None
        At most this many clusters (None: no limit).
    n_candidates : int, default=100
        With allocations, this many draws (at random) are also candidates: the best
        of them competes with the greedy runs and seeds one more run.
    random_seed : int, numpy Generator or None, default=None
        The search is deterministic given the seed.

    Returns
    -------
    xarray.DataArray of shape (n_points,)
        Cluster labels 0..K-1 by decreasing cluster size, dim ``obs_id``. Attributes:
        ``loss``, ``expected_loss`` (VI in bits; Binder as the expected fraction of
        pairs of rows on which the estimate and the posterior disagree),
        ``n_clusters``, ``found_by`` (a greedy run, or the draw) and ``sweeps``.

    Notes
    -----
    One sweep costs O(n_draws x n_points x K) for "VI" and O(n_points^2) for
    "VI_lb" and "binder". On two cores, 10 000 rows and 500 draws take about 40 s
    ("VI") to 75 s ("VI_lb"); 1 000 rows and 1 000 draws a few seconds. Fewer
    ``n_restarts`` (or draws) trade accuracy for time. The search is greedy: it
    finds the optimum of every brute-forceable case in the tests, but not
    provably in general.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm import point_partition
    >>> alloc = np.array([[0, 0, 1, 1], [0, 0, 1, 1], [1, 1, 0, 2]])
    >>> point_partition(alloc, random_seed=0).values
    array([0, 0, 1, 1])
    """
    loss = _check_loss(loss)
    n_restarts = check_integer_param(n_restarts, "n_restarts", minimum=1)
    max_sweeps = check_integer_param(max_sweeps, "max_sweeps", minimum=0)
    max_clusters = 0 if max_clusters is None else check_integer_param(max_clusters, "max_clusters", minimum=1)
    n_candidates = check_integer_param(n_candidates, "n_candidates", minimum=0)
    rng = _rng(random_seed)
    A, P, ids = _allocations_or_psm(data)
    if loss == "VI" and A is None:
        raise ValueError("loss='VI' (the exact expected VI) needs the allocations (draw_allocations), not a "
                         "similarity matrix; with a similarity matrix use loss='VI_lb' or 'binder'.")
    if loss != "VI" and P is None:
        P = _psm_from_allocations(A)
    labels, value, how, sweeps = _point(A, P, loss, n_restarts=n_restarts, max_sweeps=max_sweeps,
                                        max_clusters=max_clusters, n_candidates=n_candidates, rng=rng)
    return _point_array(labels, ids, loss, value, how, sweeps)


def _point(A, P, loss, **kwargs):
    value, labels, how, sweeps = _search(loss, A=A, P=P, **kwargs)
    return labels, value, how, sweeps


def _point_array(labels, ids, loss, value, how, sweeps) -> xr.DataArray:
    return xr.DataArray(labels, dims=("obs_id",), coords={"obs_id": ids}, name="point",
                        attrs={"loss": loss, "expected_loss": float(value), "n_clusters": int(labels.max()) + 1,
                               "found_by": how, "sweeps": int(sweeps)})


def _allocations_or_psm(data):
    """(A, None, ids) for allocations, (None, P, ids) for a similarity matrix."""
    if isinstance(data, xr.Dataset):
        if "allocations" in data:
            data = data["allocations"]
        elif "similarity" in data:
            data = data["similarity"]
    if isinstance(data, xr.DataArray):
        if "draw" in data.dims:
            A, ids = _check_allocations(data, name="data")
            return A, None, ids
        P, ids = _check_psm(data, name="data")
        return None, P, ids
    if data is None or isinstance(data, (str, bytes, dict, set)) or hasattr(data, "groups"):
        hint = (" For a posterior, pass draw_allocations(idata) or similarity_matrix(idata), or call "
                "partition_summary(idata)." if hasattr(data, "groups") else "")
        raise TypeError("data must be allocations (integer array (n_draws, n_points) or draw_allocations' "
                        f"DataArray) or a similarity matrix (float, square), got {type(data).__name__}.{hint}")
    arr = np.asarray(data)
    if arr.dtype.kind in "iub":
        A, ids = _check_allocations(arr, name="data")
        return A, None, ids
    if arr.dtype.kind == "f":
        P, ids = _check_psm(arr, name="data")
        return None, P, ids
    raise TypeError(f"data must be integer allocations or a float similarity matrix, got dtype {arr.dtype}.")


def partition_distance(a, b, *, loss: str = "VI") -> float:
    """Distance between two partitions of the same rows: Variation of Information or Binder's loss.

    Parameters
    ----------
    a, b : array-like of shape (n_points,)
        Cluster labels (any integers; only which rows share a label matters).
    loss : {"VI", "binder"}, default="VI"

    Returns
    -------
    float
        VI in bits (0 for the same partition; at most log2(n_points)), or Binder's
        loss as the fraction of pairs of rows together in one partition and apart
        in the other.

    Examples
    --------
    >>> from bayesgmm import partition_distance
    >>> partition_distance([0, 0, 1, 1], [1, 1, 0, 0])
    0.0
    >>> round(partition_distance([0, 0, 1, 1], [0, 0, 0, 0]), 12)
    1.0
    >>> round(partition_distance([0, 0, 1, 1], [0, 1, 1, 1], loss="binder"), 4)
    0.5
    """
    loss = _check_loss(loss)
    if loss == "VI_lb":
        raise ValueError("loss must be 'VI' or 'binder' for a distance between two partitions.")
    a = _labels_array(a, "a", 1)
    b = _labels_array(b, "b", 1)
    if a.shape != b.shape:
        raise ValueError(f"a and b must label the same rows, got {a.shape[0]} and {b.shape[0]} labels.")
    return float(expected_loss_draws(a, b[None, :], loss)[0])


def credible_ball(allocations, point, *, prob: float = 0.95, loss: str = "VI") -> xr.Dataset:
    """Credible ball of partitions around a point estimate (Wade and Ghahramani 2018).

    The ball ``{c : d(point, c) <= radius}`` is the smallest around ``point`` with
    posterior probability at least ``prob``, estimated from the draws: ``radius``
    is the ``prob`` quantile of the draws' distances to the point. It is described
    by its bounds, the draws in the ball furthest from the point:

    - ``horizontal``: the furthest of all;
    - ``vertical_upper``: among those with the *fewest* clusters, the furthest
      (the coarsest plausible partition);
    - ``vertical_lower``: among those with the *most* clusters, the furthest (the
      finest plausible partition).

    Parameters
    ----------
    allocations : DataArray (draw, obs_id) or integer array of shape (n_draws, n_points)
        From :func:`draw_allocations`.
    point : array-like of shape (n_points,)
        The point estimate, e.g. :func:`point_partition`'s.
    prob : float, default=0.95
        Posterior probability of the ball, in (0, 1).
    loss : {"VI", "binder"}, default="VI"
        The distance (see :func:`partition_distance`).

    Returns
    -------
    xarray.Dataset
        ``radius`` (scalar); over ``draw``: ``distance`` (to the point),
        ``in_ball``, ``n_clusters``; over ``bound`` (horizontal, vertical_upper,
        vertical_lower): ``bound_labels`` (with ``obs_id``), ``bound_distance``,
        ``bound_n_clusters`` and ``bound_draw`` (which draw). Whether another
        partition (e.g. a known truth) is in the ball:
        ``partition_distance(point, other) <= radius``.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm import credible_ball
    >>> alloc = np.array([[0, 0, 1, 1]] * 8 + [[0, 0, 0, 0], [0, 1, 2, 3]])
    >>> ball = credible_ball(alloc, [0, 0, 1, 1], prob=0.8)
    >>> float(ball["radius"])
    0.0
    >>> ball["bound_n_clusters"].values.tolist()
    [2, 2, 2]
    """
    loss = _check_loss(loss)
    if loss == "VI_lb":
        raise ValueError("loss must be 'VI' or 'binder' for the credible ball (a distance between partitions).")
    prob = check_probability(prob, "prob")
    A, ids = _check_allocations(allocations)
    c = _check_point(point, A.shape[1])
    return _ball_dataset(_ball(A, c, prob, loss), A, ids, prob, loss)


def _ball_dataset(ball, A, ids, prob, loss) -> xr.Dataset:
    names = list(ball["bounds"])
    draws = np.array([ball["bounds"][b] for b in names])
    return xr.Dataset(
        {
            "radius": ((), ball["radius"]),
            "distance": ("draw", ball["distance"]),
            "in_ball": ("draw", ball["in_ball"]),
            "n_clusters": ("draw", ball["n_clusters"]),
            "bound_labels": (("bound", "obs_id"), np.stack([_canonical(A[d]) for d in draws])),
            "bound_distance": ("bound", ball["distance"][draws]),
            "bound_n_clusters": ("bound", ball["n_clusters"][draws]),
            "bound_draw": ("bound", draws),
        },
        coords={"draw": np.arange(A.shape[0]), "obs_id": ids, "bound": names},
        attrs={"prob": prob, "loss": loss},
    )


def occupied_clusters(allocations) -> xr.DataArray:
    """Posterior distribution of the number of occupied clusters (clusters with at least one row).

    Parameters
    ----------
    allocations : DataArray (draw, obs_id) or integer array of shape (n_draws, n_points)
        From :func:`draw_allocations`.

    Returns
    -------
    xarray.DataArray
        Probabilities over dim ``n_clusters`` (1 to the most seen), summing to 1;
        ``attrs["mean"]`` is the posterior mean number of clusters.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm import occupied_clusters
    >>> occupied_clusters(np.array([[0, 0, 1], [0, 0, 0], [2, 0, 1], [1, 1, 0]])).values
    array([0.25, 0.5 , 0.25])
    """
    A, _ = _check_allocations(allocations)
    return _occupied(n_clusters_per_draw(A))


def _occupied(k: np.ndarray) -> xr.DataArray:
    probs = np.bincount(k, minlength=k.max() + 1)[1:] / k.size
    return xr.DataArray(probs, dims=("n_clusters",), coords={"n_clusters": np.arange(1, k.max() + 1)},
                        name="n_clusters_probability", attrs={"mean": float(k.mean())})


def partition_summary(idata, X=None, *, loss: str = "VI", prob: float = 0.95, n_draws: int | None = 1000,
                      max_points: int = 10_000, psm_method: str = "responsibilities", n_restarts: int = 8,
                      max_clusters: int | None = None, random_seed=None) -> xr.Dataset:
    """Every partition summary in one call, each computed once.

    Draws the allocations (:func:`draw_allocations`), the similarity matrix
    (:func:`similarity_matrix`), the point estimate (:func:`point_partition`), its
    credible ball (:func:`credible_ball`, with the same loss) and the number of
    occupied clusters (:func:`occupied_clusters`).

    (Over 60 lines only because this docstring documents every argument; the code is 35 lines.)

    Parameters
    ----------
    idata : arviz.InferenceData
    X : array-like of shape (n_points, n_features), default=None
        The rows (the training data when None).
    loss : {"VI", "VI_lb", "binder"}, default="VI"
        Loss of the point estimate. The credible ball uses VI for "VI" and
        "VI_lb", Binder's loss for "binder".
    prob : float, default=0.95
        Probability of the credible ball.
    n_draws : int or None, default=1000
        At most this many posterior draws (at random; None: all). The search and
        the ball cost O(n_draws x n_points) per sweep.
    max_points : int, default=10_000
        Above this many rows everything is computed on ``max_points`` rows drawn
        at random (a sampled approximation; ``attrs["approximate"]`` is then 1 and
        the ``obs_id`` coordinate names the rows used).
    psm_method : {"responsibilities", "allocations"}, default="responsibilities"
        See :func:`similarity_matrix`.
    n_restarts : int, default=8
    max_clusters : int, default=None
        See :func:`point_partition`.
    random_seed : int, numpy Generator or None, default=None

    Returns
    -------
    xarray.Dataset
        ``allocations`` (draw, obs_id); ``similarity`` (obs_id, obs_id_bis);
        ``point`` (obs_id), with ``expected_loss``; the credible ball's
        ``radius``, ``distance``, ``in_ball``, ``n_clusters`` (draw) and bounds
        (``bound_labels`` etc., dim ``bound``); ``n_clusters_probability`` (dim
        ``n_clusters_occupied``). Attributes: ``loss``, ``ball_loss``, ``prob``,
        ``approximate``, ``n_points_total``, ``n_draws``, ``found_by``.

    Examples
    --------
    >>> from bayesgmm import GaussianMixtureEM, em_to_idata, partition_summary
    >>> from bayesgmm.datasets import load_faithful
    >>> X = load_faithful().to_numpy()
    >>> idata = em_to_idata(GaussianMixtureEM(2, random_state=0).fit(X), X)
    >>> result = partition_summary(idata, random_seed=0)
    >>> result["similarity"].shape, int(result["point"].max()) + 1
    ((272, 272), 2)
    """
    check_idata(idata)
    loss = _check_loss(loss)
    prob = check_probability(prob, "prob")
    n_draws = _check_n_draws(n_draws)
    max_points = check_integer_param(max_points, "max_points", minimum=2)
    if psm_method not in ("responsibilities", "allocations"):
        raise ValueError(f"psm_method must be 'responsibilities' or 'allocations', got {psm_method!r}.")
    n_restarts = check_integer_param(n_restarts, "n_restarts", minimum=1)
    max_clusters = 0 if max_clusters is None else check_integer_param(max_clusters, "max_clusters", minimum=1)
    rng = _rng(random_seed)
    sel = _posterior_selection(idata, X, n_draws, max_points, rng)
    A, P = _allocations_core(sel.points, sel.arrays, rng, similarity=psm_method == "responsibilities")
    if P is None:
        P = _psm_from_allocations(A)
    labels, value, how, sweeps = _point(A, P, loss, n_restarts=n_restarts, max_sweeps=100,
                                        max_clusters=max_clusters, n_candidates=100, rng=rng)
    ball_loss = "binder" if loss == "binder" else "VI"
    ball = _ball_dataset(_ball(A, labels, prob, ball_loss), A, sel.ids, prob, ball_loss)
    occupied = _occupied(ball["n_clusters"].values).rename({"n_clusters": "n_clusters_occupied"})
    return xr.Dataset(
        {
            "allocations": (("draw", "obs_id"), A),
            "similarity": (("obs_id", "obs_id_bis"), P),
            "point": ("obs_id", labels),
            "expected_loss": ((), value),
            **{name: ball[name] for name in ball.data_vars},
            "n_clusters_probability": occupied,
        },
        coords={"draw": np.arange(sel.draws.size), "obs_id": sel.ids, "obs_id_bis": sel.ids,
                **_source_coords(idata, sel.draws)},
        attrs={"loss": loss, "ball_loss": ball_loss, "prob": prob,
               "approximate": int(sel.approximate), "n_points_total": int(sel.n_total),
               "n_draws": int(sel.draws.size), "psm_method": psm_method, "found_by": how, "sweeps": int(sweeps),
               "n_clusters_mean": float(occupied.attrs["mean"])},
    )


# ============================================================== plot
def _display_order(P: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Rows grouped by cluster (largest first), within a cluster by mean similarity to it (highest first)."""
    labels = _canonical(labels)
    K = int(labels.max()) + 1
    # mean similarity of every row to each cluster, one cluster at a time (no N x N temporary)
    within = np.empty(labels.size)
    for k in range(K):
        members = np.flatnonzero(labels == k)
        within[members] = P[np.ix_(members, members)].mean(axis=1)
    return np.lexsort((-within, labels))


def plot_similarity(psm, order=None, ax=None, *, max_display: int = 2000):
    """Heatmap of the posterior similarity matrix, rows grouped by the point estimate's clusters.

    Parameters
    ----------
    psm : xarray.DataArray, xarray.Dataset or array of shape (n, n)
        From :func:`similarity_matrix`, or :func:`partition_summary`'s Dataset (its
        ``similarity``, ordered by its ``point``).
    order : array-like of shape (n,), default=None
        Cluster labels of the rows (e.g. :func:`point_partition`'s): rows are
        grouped by cluster, largest first, and within a cluster by their mean
        similarity to it. None uses the Dataset's ``point``, or computes the
        VI-lower-bound point estimate from ``psm``.
    ax : matplotlib Axes, default=None
    max_display : int, default=2000
        Above this many rows, evenly spaced rows of the ordered matrix are shown
        (the picture is the same; drawing 10 000 x 10 000 cells is not useful).

    Returns
    -------
    matplotlib.axes.Axes

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm.partition import plot_similarity
    >>> psm = np.array([[1.0, 0.9, 0.1], [0.9, 1.0, 0.2], [0.1, 0.2, 1.0]])
    >>> ax = plot_similarity(psm, order=[0, 0, 1])
    """
    import matplotlib.pyplot as plt
    from matplotlib.axes import Axes

    if ax is not None and not isinstance(ax, Axes):
        raise TypeError(f"ax must be a matplotlib Axes or None, got {type(ax).__name__}.")
    max_display = check_integer_param(max_display, "max_display", minimum=2)
    P, labels = _similarity_and_order(psm, order)
    N = P.shape[0]
    idx = _display_order(P, labels)
    sorted_labels = _canonical(labels)[idx]
    if N > max_display:
        keep = np.unique(np.linspace(0, N - 1, max_display).round().astype(int))
        idx, sorted_labels = idx[keep], sorted_labels[keep]
    ax = ax if ax is not None else plt.subplots(figsize=(5.5, 4.5))[1]
    image = ax.imshow(P[np.ix_(idx, idx)], vmin=0.0, vmax=1.0, cmap="viridis", interpolation="nearest",
                      aspect="equal")
    ax.figure.colorbar(image, ax=ax, label="posterior co-clustering probability")
    edges = np.flatnonzero(np.diff(sorted_labels)) + 0.5
    for edge in edges:
        ax.axhline(edge, color="white", linewidth=0.8)
        ax.axvline(edge, color="white", linewidth=0.8)
    n_shown = idx.size
    ax.set_xlabel(f"row (grouped by cluster{'; ' + str(n_shown) + ' of ' + str(N) + ' shown' if n_shown < N else ''})")
    ax.set_ylabel("row")
    ax.set_title(f"Posterior similarity ({np.unique(labels).size} clusters)")
    return ax


def _similarity_and_order(psm, order) -> tuple[np.ndarray, np.ndarray]:
    """The checked matrix and the rows' cluster labels (given, the Dataset's point, or a VI_lb estimate)."""
    if isinstance(psm, xr.Dataset):
        if "similarity" not in psm:
            raise ValueError("psm must be a similarity matrix or partition_summary's Dataset (with 'similarity').")
        if order is None and "point" in psm:
            order = psm["point"].values
        psm = psm["similarity"]
    P, _ = _check_psm(psm)
    if order is None:
        order = _search("VI_lb", P=P, n_restarts=2, max_sweeps=50, max_clusters=0, n_candidates=0,
                        rng=np.random.default_rng(0))[1]
    return P, _check_point(order, P.shape[0], name="order")
