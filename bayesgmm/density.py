"""Mixture log-densities for many parameter draws at once, in NumPy.

The posterior summaries (pointwise log-likelihood, responsibilities, predictive
densities) all need ``log w_k + log N(x_n | mu_k, Sigma_k)`` for every draw, point
and component. This computes it in blocks of draws with one batched triangular
solve per block, so memory stays bounded: the largest temporary is
(draws_in_block, K, points_in_block, D).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

_LOG_2PI = np.log(2.0 * np.pi)
#: Elements of the largest temporary a block may hold (~64 MB of float64).
BLOCK_ELEMENTS = 8_000_000


def component_log_prob(X: np.ndarray, log_weights: np.ndarray, means: np.ndarray, chol: np.ndarray) -> np.ndarray:
    """``log w_k + log N(x_n | mu_k, L_k L_k')`` for a block of draws.

    Parameters
    ----------
    X : ndarray of shape (n_points, D)
    log_weights : ndarray of shape (S, K)
    means : ndarray of shape (S, K, D)
    chol : ndarray of shape (S, K, D, D)
        Lower Cholesky factors of the covariances.

    Returns
    -------
    ndarray of shape (S, n_points, K)
    """
    D = X.shape[1]
    # Forward substitution y = L^{-1}(x - mu), one feature at a time on (S, n, K)
    # arrays: cheaper than a batched general solve for the small D of mixtures.
    maha = np.zeros((means.shape[0], X.shape[0], means.shape[1]))
    ys = []
    with np.errstate(over="ignore", invalid="ignore"):
        for i in range(D):
            resid = X[None, :, i, None] - means[:, None, :, i]
            for j in range(i):
                resid -= chol[:, None, :, i, j] * ys[j]
            y = resid / chol[:, None, :, i, i]
            ys.append(y)
            maha += y * y
    # A point so far from a component that the distance overflows (inf, or inf - inf
    # = NaN along the way) has log-density -inf there: float64 cannot hold it.
    maha[np.isnan(maha)] = np.inf
    log_det = np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(-1)  # (S, K)
    return -0.5 * maha - (log_det + 0.5 * D * _LOG_2PI - log_weights)[:, None, :]


def _forward(chol: np.ndarray, v: np.ndarray) -> np.ndarray:
    """``L^{-1} v`` by forward substitution, broadcasting v (..., D) against chol (..., D, D)."""
    ys = []
    for i in range(chol.shape[-1]):
        resid = v[..., i]
        for j in range(i):
            resid = resid - chol[..., i, j] * ys[j]
        ys.append(resid / chol[..., i, i])
    return np.stack(ys, axis=-1)


def limit_responsibilities(X: np.ndarray, log_weights: np.ndarray, means: np.ndarray, chol: np.ndarray) -> np.ndarray:
    """Responsibilities, shape (S, n_points, K), for points where every component's density underflows.

    Such a point is so far away (``x = c u`` with c beyond float64 in units of the
    components' spread) that ``log w_k + log N(x | mu_k, Sigma_k)`` is
    ``-c^2 q_k / 2 + c l_k + r_k`` with ``q_k = u' P_k u``, ``l_k = u' P_k mu_k``
    and ``r_k = log w_k - log|L_k| - mu_k' P_k mu_k / 2 + const``. As c grows the
    components with the smallest ``q`` win, then among them the largest ``l``,
    then ``r`` shares the mass: that limit is returned. Computed in the posterior's
    own standardised frame, so it holds at any scale.
    """
    centre = means.mean(axis=(0, 1))
    spread = np.sqrt((chol**2).sum(axis=-1).mean(axis=(0, 1)))  # sqrt of the mean variances
    spread = np.where(spread > 0, spread, 1.0)
    z_means = (means - centre) / spread
    z_chol = chol / spread[:, None]
    # Direction of the point from the centre, without overflow at any magnitude.
    top = np.maximum(np.abs(X).max(axis=1), np.abs(centre).max())[:, None]
    top = np.where(top > 0, top, 1.0)
    with np.errstate(over="ignore", invalid="ignore"):
        direction = (X / top - centre / top) / spread
        direction /= np.abs(direction).max(axis=1, keepdims=True)
        direction /= np.sqrt((direction**2).sum(axis=1, keepdims=True))
        a = _forward(z_chol[:, None], direction[None, :, None, :])  # (S, n, K, D)
        b = _forward(z_chol, z_means)  # (S, K, D)
        q = (a * a).sum(-1)
        lin = (a * b[:, None]).sum(-1)
        log_det = np.log(np.diagonal(z_chol, axis1=-2, axis2=-1)).sum(-1)
        rest = np.broadcast_to((log_weights - log_det - 0.5 * (b * b).sum(-1))[:, None, :], q.shape)
    q = np.where(np.isnan(q), np.inf, q)
    keep = q == q.min(axis=-1, keepdims=True)
    lin = np.where(keep & ~np.isnan(lin), lin, -np.inf)
    keep &= lin == lin.max(axis=-1, keepdims=True)
    score = np.where(keep, rest, -np.inf)
    with np.errstate(invalid="ignore"):
        resp = np.where(keep, np.exp(score - score.max(axis=-1, keepdims=True)), 0.0)
    total = resp.sum(axis=-1, keepdims=True)
    K = q.shape[-1]
    return np.where(np.isfinite(total) & (total > 0), resp / np.where(total > 0, total, 1.0), 1.0 / K)


def iter_blocks(n_draws: int, n_points: int, n_components: int, n_features: int) -> Iterator[tuple[slice, slice]]:
    """Blocks of (draws, points) whose (S, K, n, D) temporaries stay under the bound."""
    per_pair = max(1, n_components * max(n_features, 2))
    points = int(min(n_points, max(1, BLOCK_ELEMENTS // per_pair)))
    draws = int(max(1, min(n_draws, BLOCK_ELEMENTS // (per_pair * points))))
    for d0 in range(0, n_draws, draws):
        for p0 in range(0, n_points, points):
            yield slice(d0, min(d0 + draws, n_draws)), slice(p0, min(p0 + points, n_points))


def pointwise_log_likelihood(X: np.ndarray, weights: np.ndarray, means: np.ndarray, chol: np.ndarray) -> np.ndarray:
    """``log p(x_n | draw s)`` for every draw and point, shape (S, n_points).

    One compiled loop over draws and rows (:mod:`bayesgmm._likelihood`): no
    (S, n, K) temporaries, ~20x faster than the blocked NumPy version.
    """
    from ._likelihood import contiguous
    from ._likelihood import pointwise_log_likelihood as kernel

    return kernel(*contiguous((X, weights, means, chol)))
