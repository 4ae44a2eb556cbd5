"""PyMC's ``LKJCholeskyCov`` prior, batched over mixture components.

``pm.LKJCholeskyCov`` has no batched log-density, so a K-component model needs K
copies of its graph: a third of the compiled nodes (and of the C modules every
process and every chain loads) and ~60 us of every NUTS step on the reference
problem. This is the same distribution with the same free coordinates (the
packed lower Cholesky factor, log-transformed diagonal: PyMC's
``CholeskyCovPacked``), written once for a (K, D(D+1)/2) array.

For a Cholesky factor L with row norms sigma_i (the standard deviations) and
correlation factor C = diag(sigma)^-1 L (rows i = 0..D-1), the log-density of the
packed L is

    sum_i log p_sd(sigma_i) + sum_i (2 eta - 3 + D - i) log C_ii - log c(eta, D)
                            + sum_i (log C_ii - i log sigma_i)

(the LKJ density of C C' written on its Cholesky factor, then the Jacobian of
(sigma, C) -> L), exactly as in PyMC's ``_LKJCholeksyCovRV_logp``, which ``tests/test_lkj.py``
compares against, except for the normalising constant: PyMC adds the log of the
LKJ normaliser where it should subtract it (a constant, so sampling is
unaffected; our density integrates to one, which the tests check for D = 2).
"""

from __future__ import annotations

import numpy as np
from scipy.special import betaln

__all__ = ["draw_packed", "identity_packed", "lkj_cholesky_cov_logp", "lkj_log_normaliser", "unpack_cholesky"]


def lkj_log_normaliser(eta: float, n_features: int) -> float:
    """log c with LKJ(R | eta) = det(R)^(eta - 1) / c (Lewandowski, Kurowicka & Joe, 2009)."""
    D = n_features
    total = 0.0
    for k in range(1, D):
        b = eta + (D - k - 1) / 2
        total += (2 * eta - 2 + D - k) * (D - k) * np.log(2.0) + (D - k) * betaln(b, b)
    return float(total)


def identity_packed(n_features: int) -> np.ndarray:
    """The packed (row-major lower triangle) identity matrix."""
    rows, cols = np.tril_indices(n_features)
    return (rows == cols).astype(float)


def unpack_cholesky(packed: np.ndarray, n_features: int) -> np.ndarray:
    """(..., D(D+1)/2) row-major packed lower triangles to (..., D, D)."""
    out = np.zeros(np.shape(packed)[:-1] + (n_features, n_features))
    rows, cols = np.tril_indices(n_features)
    out[..., rows, cols] = packed
    return out


def _row_and_diagonal_selectors(n_features: int) -> tuple[np.ndarray, np.ndarray]:
    """(P, D) 0/1 matrices: packed entry p lies in row i; packed entry p is the diagonal of row i."""
    rows, cols = np.tril_indices(n_features)
    in_row = (rows[:, None] == np.arange(n_features)[None, :]).astype(float)
    return in_row, in_row * (rows == cols)[:, None]


def lkj_cholesky_cov_logp(value, eta: float, n_features: int, sd_dist):
    """Symbolic log-density of packed Cholesky factors (K, D(D+1)/2), one value per component.

    ``sd_dist`` is an unnamed PyMC distribution (``pm.HalfNormal.dist(...)``) for
    each standard deviation. Row norms and diagonals come from products with
    constant 0/1 matrices: PyTensor has C code for those, not for the advanced
    indexing of a batch of packed vectors (a Python op costing ~5 us per step each).
    """
    import pymc as pm
    import pytensor.tensor as pt

    D = n_features
    in_row, diagonal = _row_and_diagonal_selectors(D)
    sd = pt.sqrt(pt.dot(value**2, in_row))  # (K, D): row norms
    log_corr_diag = pt.log(pt.dot(value, diagonal)) - pt.log(sd)
    i = np.arange(D)
    lkj = pt.sum((2 * eta - 3 + D - i) * log_corr_diag, axis=-1)  # LKJ on the correlation factor
    jacobian = pt.sum(log_corr_diag - i * pt.log(sd), axis=-1)  # (sigma, C) -> L
    return pt.sum(pm.logp(sd_dist, sd), axis=-1) + lkj + jacobian - lkj_log_normaliser(eta, D)


def draw_packed(rng: np.random.Generator, eta: float, n_features: int, draw_sds, size: tuple) -> np.ndarray:
    """Random packed factors (*size, D(D+1)/2): LKJ(eta) correlations times sds from ``draw_sds(rng, shape)``.

    Correlations by the vine method (Lewandowski, Kurowicka & Joe, 2009): the
    partial correlation of features i > j given 0..j-1 is 2 Beta(b, b) - 1 with
    b = eta + (D - 2 - j) / 2, and row i of the Cholesky factor is
    C_ij = z_ij sqrt(prod_{m<j} (1 - z_im^2)), C_ii = sqrt(prod_{m<i} (1 - z_im^2)).
    """
    D = n_features
    size = tuple(size)
    C = np.zeros(size + (D, D))
    C[..., 0, 0] = 1.0
    for i in range(1, D):
        remaining = np.ones(size)
        for j in range(i):
            b = eta + (D - 2 - j) / 2
            z = 2 * rng.beta(b, b, size=size) - 1
            C[..., i, j] = z * np.sqrt(remaining)
            remaining = remaining * (1 - z * z)
        C[..., i, i] = np.sqrt(remaining)
    L = draw_sds(rng, size + (D,))[..., :, None] * C
    return L[..., *np.tril_indices(D)]
