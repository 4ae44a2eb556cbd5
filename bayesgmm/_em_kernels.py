"""Fused EM passes over a chunk of rows: whole passes (diag, spherical), and the middle of full ones.

The generic pass in :mod:`bayesgmm.em` materialises the whitened residuals
``y[n, k, d]`` of a chunk and reduces them with NumPy: for a diagonal covariance
that is several trips through a (rows, K, D) array for very little arithmetic, and
it ran at 0.17 s per iteration at N=1e6, D=10, K=8 (scikit-learn: 0.40 s). This
kernel does the whole pass (log-densities, log-sum-exp, responsibilities and the
whitened sufficient statistics) in one trip over a block of rows held in cache,
with the rows innermost so that the loops vectorise. For full covariances the
whitening and the second moment stay matrix products (BLAS wins there) and
:func:`whitened_pass` does everything in between in one trip; tied covariances
need no kernel (see ``TiedCovariance.fused_pass``).

Statistics are summed per block of ``_BLOCK`` rows in the data's precision and
added to float64 totals per block, so float32 data lose no accuracy to long sums.
The residuals are taken against the current means and scaled by the current
precisions before they are squared (as in the generic pass), so a component far
from the origin with a tiny variance is not lost to cancellation.

numba is already installed with PyTensor (a dependency of PyMC), so this adds no
dependency; it is imported only when an EM pass first runs, and the compiled
kernels are cached on disk.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Rows per block: the block's transposed rows, log-probabilities and residual
# scratch stay in L1/L2 (D x 128 and K x 128 values).
_BLOCK = 128
# Not "nnan"/"ninf": an empty component's log-weight is -inf, and exp(-inf) must stay 0.
_FASTMATH = {"nsz", "arcp", "contract", "reassoc"}


@njit(fastmath=_FASTMATH, nogil=True, error_model="numpy", cache=True)
def _diag_pass_kernel(X, weights, means, scale, log_norm, nk, sum_y, second):  # pragma: no cover - compiled
    n_rows, n_features = X.shape
    n_components = means.shape[0]
    dt = X.dtype
    x_t = np.empty((n_features, _BLOCK), dtype=dt)
    resp = np.empty((n_components, _BLOCK), dtype=dt)
    top = np.empty(_BLOCK, dtype=dt)
    total = np.empty(_BLOCK, dtype=dt)
    w = np.empty(_BLOCK, dtype=dt)
    log_norm_dt = log_norm.astype(dt)
    log_likelihood = 0.0
    for start in range(0, n_rows, _BLOCK):
        m = min(_BLOCK, n_rows - start)
        for r in range(m):
            w[r] = weights[start + r]
            for d in range(n_features):
                x_t[d, r] = X[start + r, d]
        # log w_k + log N(x | k), components outer and rows inner
        for k in range(n_components):
            acc = resp[k]
            acc[:m] = 0
            for d in range(n_features):
                mu = means[k, d]
                sc = scale[k, d]
                for r in range(m):
                    v = (x_t[d, r] - mu) * sc
                    acc[r] += v * v
            for r in range(m):
                acc[r] = log_norm_dt[k] - 0.5 * acc[r]
        top[:m] = resp[0, :m]
        for k in range(1, n_components):
            for r in range(m):
                top[r] = max(top[r], resp[k, r])
        total[:m] = 0
        for k in range(n_components):
            for r in range(m):
                e = np.exp(resp[k, r] - top[r])
                resp[k, r] = e
                total[r] += e
        block_ll = 0.0
        for r in range(m):
            block_ll += w[r] * (top[r] + np.log(total[r]))
            total[r] = w[r] / total[r]  # responsibilities times the row's weight
        log_likelihood += block_ll
        for k in range(n_components):
            q = resp[k]
            count = q[0] * 0
            for r in range(m):
                q[r] *= total[r]
                count += q[r]
            nk[k] += count
            for d in range(n_features):
                mu = means[k, d]
                sc = scale[k, d]
                first = count * 0
                sq = count * 0
                for r in range(m):
                    v = (x_t[d, r] - mu) * sc
                    rv = q[r] * v
                    first += rv
                    sq += rv * v
                sum_y[k, d] += first
                second[k, d] += sq
    return log_likelihood



def diag_pass(X: np.ndarray, weights: np.ndarray, means: np.ndarray, scale: np.ndarray, log_norm: np.ndarray):
    """One chunk's ``(nk, sum_y, second, log_likelihood)`` for per-feature precisions ``scale`` (K, D).

    ``X`` (rows, D) and ``weights`` (rows,) in the fit's dtype; ``means`` and
    ``scale`` (K, D) in that dtype; ``log_norm`` (K,) is ``log w_k + log`` of the
    Gaussian's normalising constant. The statistics are float64 and in whitened
    coordinates ``y = (x - m_k) * scale_k``: ``sum_y = sum_n r_nk y``, ``second =
    sum_n r_nk y**2`` (with ``r`` the responsibilities times the row weights).
    """
    K, D = means.shape
    nk = np.zeros(K)
    sum_y = np.zeros((K, D))
    second = np.zeros((K, D))
    dtype = X.dtype
    log_likelihood = _diag_pass_kernel(
        np.ascontiguousarray(X), np.ascontiguousarray(weights, dtype=dtype), np.ascontiguousarray(means, dtype=dtype),
        np.ascontiguousarray(scale, dtype=dtype), np.ascontiguousarray(log_norm, dtype=np.float64), nk, sum_y, second)
    return nk, sum_y, second, float(log_likelihood)


@njit(fastmath=_FASTMATH, nogil=True, error_model="numpy", cache=True)
def _whitened_pass_kernel(y, weights, log_norm, sum_y):  # pragma: no cover - compiled
    n_rows, n_components, n_features = y.shape
    log_prob = np.empty(n_components, dtype=np.float64)
    nk = np.zeros(n_components)
    log_likelihood = 0.0
    for n in range(n_rows):
        top = -np.inf
        for k in range(n_components):
            acc = y[n, k, 0] * 0
            for d in range(n_features):
                acc += y[n, k, d] * y[n, k, d]
            log_prob[k] = log_norm[k] - 0.5 * acc
            top = max(top, log_prob[k])
        total = 0.0
        for k in range(n_components):
            log_prob[k] = np.exp(log_prob[k] - top)
            total += log_prob[k]
        w = weights[n]
        log_likelihood += w * (top + np.log(total))
        scale = w / total
        for k in range(n_components):
            r = log_prob[k] * scale
            nk[k] += r
            root = np.sqrt(r)
            for d in range(n_features):
                v = y[n, k, d]
                sum_y[k, d] += r * v
                y[n, k, d] = root * v
    return nk, log_likelihood


def whitened_pass(y: np.ndarray, weights: np.ndarray, log_norm: np.ndarray):
    """Finish a chunk's pass from its whitened residuals ``y`` (rows, K, D), in place.

    Returns ``(nk, sum_y, log_likelihood)`` (float64) and leaves ``sqrt(r_nk) * y_nk``
    in ``y``, so that the weighted second moment ``sum_n r_nk y_nk y_nk'`` is one
    batched matrix product of ``y`` with itself (BLAS), for full covariances.
    """
    K, D = y.shape[1:]
    sum_y = np.zeros((K, D))
    nk, log_likelihood = _whitened_pass_kernel(y, np.ascontiguousarray(weights, dtype=np.float64),
                                               np.ascontiguousarray(log_norm, dtype=np.float64), sum_y)
    return nk, sum_y, float(log_likelihood)
