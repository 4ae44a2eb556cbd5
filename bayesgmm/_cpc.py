"""The LKJ prior through canonical partial correlations (CPCs), batched over components.

Lewandowski, Kurowicka & Joe (2009, the "vine" method): if the partial
correlation of features i and j given features 0..j-1 is drawn as
``z_ij = 2 u_ij - 1`` with ``u_ij ~ Beta(b_j, b_j)`` and ``b_j = eta + (D - 2 - j) / 2``,
independently for every i > j, the correlation matrix they build is exactly
LKJ(eta). Its Cholesky factor C follows row by row:

    C_i0 = z_i0,   C_ij = z_ij * sqrt(prod_{m<j} (1 - z_im^2)),   C_ii = sqrt(prod_{m<i} (1 - z_im^2)).

PyMC's ``LKJCholeskyCov`` gives the same prior but has no batched log-density, so
a K-component model needs K copies of its graph (~50 nodes each, a third of the
model's compile and per-step cost); Beta and HalfNormal are batched over
components for free. ``tests/test_cpc.py`` checks that the implied density of the
Cholesky factor equals ``LKJCholeskyCov``'s.
"""

from __future__ import annotations

import numpy as np

__all__ = ["beta_shapes", "cpc_from_corr_cholesky", "corr_cholesky", "packed_scaled_cholesky", "pair_index"]


def pair_index(n_features: int) -> list[tuple[int, int]]:
    """(i, j), i > j, of the CPCs in the order they are stored (row-major lower triangle)."""
    return [(i, j) for i in range(n_features) for j in range(i)]


def beta_shapes(eta: float, n_features: int) -> np.ndarray:
    """Beta(b, b) shape of each stored CPC: b = eta + (D - 2 - j) / 2 for column j."""
    return np.array([eta + (n_features - 2 - j) / 2 for _, j in pair_index(n_features)], dtype=float)


def corr_cholesky(cpc: np.ndarray, n_features: int) -> np.ndarray:
    """Cholesky factors (..., D, D) of the correlation matrices built from CPCs (..., D(D-1)/2)."""
    cpc = np.asarray(cpc, dtype=float)
    out = np.zeros(cpc.shape[:-1] + (n_features, n_features))
    out[..., 0, 0] = 1.0
    m = 0
    for i in range(1, n_features):
        remaining = np.ones(cpc.shape[:-1])
        for j in range(i):
            z = cpc[..., m]
            out[..., i, j] = z * np.sqrt(remaining)
            remaining = remaining * (1.0 - z * z)
            m += 1
        out[..., i, i] = np.sqrt(remaining)
    return out


def cpc_from_corr_cholesky(chol: np.ndarray) -> np.ndarray:
    """Inverse of :func:`corr_cholesky`: CPCs (..., D(D-1)/2) of correlation Cholesky factors (..., D, D)."""
    chol = np.asarray(chol, dtype=float)
    n_features = chol.shape[-1]
    out = np.empty(chol.shape[:-2] + (n_features * (n_features - 1) // 2,))
    m = 0
    for i in range(1, n_features):
        remaining = np.ones(chol.shape[:-2])
        for j in range(i):
            z = chol[..., i, j] / np.sqrt(remaining)
            out[..., m] = z
            remaining = remaining * (1.0 - z * z)
            m += 1
    return out


def packed_scaled_cholesky(sds, cpc, n_features: int):
    """Symbolic (K, D(D+1)/2) row-major packed ``diag(sds) @ C`` from sds (K, D) and CPCs (K, D(D-1)/2).

    Written with elementwise PyTensor operations only (fused by PyTensor, and
    compilable by the JAX and numba backends); the product form of the remaining
    variance avoids cancellation when |z| is close to 1.
    """
    import pytensor.tensor as pt

    entries, m = [], 0
    for i in range(n_features):
        remaining = None
        for _ in range(i):
            z = cpc[:, m]
            entries.append(sds[:, i] * (z if remaining is None else z * pt.sqrt(remaining)))
            remaining = (1.0 - z**2) if remaining is None else remaining * (1.0 - z**2)
            m += 1
        entries.append(sds[:, i] if remaining is None else sds[:, i] * pt.sqrt(remaining))
    return pt.stack(entries, axis=1)
