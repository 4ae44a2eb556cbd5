"""Fused EM passes over a chunk of rows: log-densities, responsibilities and statistics in one trip.

The generic pass in :mod:`bayesgmm.em` materialises the whitened residuals
``y[n, k, d]`` of a chunk and reduces them with NumPy: several trips through a
(rows, K, D) array for little arithmetic per trip. For diagonal covariances that
ran at 0.17 s per iteration at N=1e6, D=10, K=8 (scikit-learn: 0.40 s); for full
ones the BLAS whitening, a compiled middle and a batched second-moment product
took 0.21 s, 6.6x the arithmetic limit. These kernels do the whole pass
(whitening, log-sum-exp, responsibilities and the whitened sufficient statistics)
in one trip over a block of rows held in cache, with the rows innermost so that
the loops vectorise; full covariances whiten with the triangular factor (half the
products of a dense one) and sum only the upper triangle of the second moment.
Tied covariances whiten each row once with the shared factor (``_tied_pass_kernel``).

``exp`` is the one transcendental function per (row, component); the libm call
that numba emits is scalar and was the largest single cost of the diagonal pass.
:func:`_exp_nonpositive` is a vectorisable exp (Cody-Waite reduction, a
polynomial, the power of two built in the exponent bits) accurate to 1e-14
(float64) and 1e-7 (float32) relative: written here because numba's vectorised
math needs Intel's SVML, which the pip wheels of llvmlite do not have. The one
``log`` per row (of the row's sum of exponentials, which is at least 1) is
:func:`_log_at_least_one`, vectorised the same way (1e-15 / 2e-7 relative): the
libm call was a fifth of the float32 diagonal pass.

Statistics are summed per block of 256 (or 128) rows in the data's precision and
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
from numba.extending import overload

# Rows per block: the block's transposed rows, log-probabilities and residuals stay
# in L2 (K x D x 256 values for full covariances). 256 rather than 128: float32 fills
# 16 lanes of a vector, and 8 trips per inner loop left it only 1.2x faster than
# float64 (1.4x at 256; float64 the same within noise). Above 16 features, 128: the
# block's rows then stay nearer the core (30 features, K=5, 569 rows: full 326 ->
# 301 us, tied 124 -> 112, diag 48 -> 39; 5 and 13 features no faster).
_BLOCK = 256
_BLOCK_WIDE = 128
_WIDE_FEATURES = 16


@njit(nogil=True, cache=True)
def _block_rows(n_features):  # pragma: no cover - compiled
    return _BLOCK if n_features <= _WIDE_FEATURES else _BLOCK_WIDE
# Not "nnan"/"ninf": an empty component's log-weight is -inf, and exp(-inf) must stay 0.
_FASTMATH = {"nsz", "arcp", "contract", "reassoc"}


@njit(nogil=True, cache=True)
def _aligned_empty(shape, dt):  # pragma: no cover - compiled
    # Scratch whose first element (and, rows being whole multiples of 64 bytes, every
    # row) starts on a 64-byte boundary: the allocator's 16- or 32-byte alignment made
    # vector loads straddle cache lines in some processes and not others (passes 1.3x
    # slower by where the arrays happened to land).
    size = 1
    for n in shape:
        size *= n
    buf = np.empty(size + 64, dtype=dt)
    skip = ((64 - buf.ctypes.data % 64) % 64) // buf.itemsize
    return buf[skip:skip + size].reshape(shape)


@njit(nogil=True, cache=True)
def _aligned_zeros(shape, dt):  # pragma: no cover - compiled
    out = _aligned_empty(shape, dt)
    out[...] = 0
    return out


def _exp_nonpositive(values, bits):  # pragma: no cover - the compiled kernels call the overload below
    """``values[:] = exp(values)`` for values <= 0 (or -inf), ``bits`` a scratch array like ``values``."""
    values[:] = np.exp(values)


# Cody-Waite reduction x = n ln2 + z, |z| <= ln2 / 2, then exp(z) by a polynomial and
# 2^n written into the exponent bits: every step is a plain arithmetic or integer op
# on arrays, so LLVM vectorises it. No "reassoc" here: it would fold the rounding
# trick (t = x/ln2 + shifter; n = t - shifter) back into x/ln2.


@njit(fastmath={"contract"}, nogil=True, inline="never", cache=True)
def _exp64(values, bits):  # pragma: no cover - compiled
    as_int = bits.view(np.int64)
    for r in range(values.shape[0]):
        v = values[r]
        x = max(v, -708.0)
        t = x * 1.4426950408889634 + 6755399441055744.0
        bits[r] = t
        n = t - 6755399441055744.0
        z = (x - n * 6.93147180369123816490e-01) - n * 1.90821492927058770002e-10
        q = 2.505210838544172e-08  # Taylor coefficients 1/12! ... 1/0!: error < 1e-14 on |z| <= ln2/2
        q = q * z + 2.755731922398589e-07
        q = q * z + 2.755731922398589e-06
        q = q * z + 2.48015873015873e-05
        q = q * z + 1.984126984126984e-04
        q = q * z + 1.388888888888889e-03
        q = q * z + 8.333333333333333e-03
        q = q * z + 4.1666666666666664e-02
        q = q * z + 0.16666666666666666
        q = q * z + 0.5
        q = q * z + 1.0
        q = q * z + 1.0
        values[r] = q if v >= -708.0 else 0.0  # below: under 1e-307 of the row's largest term
    for r in range(values.shape[0]):
        as_int[r] = (as_int[r] + 1023) << 52  # the shifter's bits + n, moved into the exponent: 2^n
    for r in range(values.shape[0]):
        values[r] *= bits[r]


@njit(fastmath={"contract"}, nogil=True, inline="never", cache=True)
def _exp32(values, bits):  # pragma: no cover - compiled
    as_int = bits.view(np.int32)
    floor = np.float32(-87.0)
    for r in range(values.shape[0]):
        v = values[r]
        x = max(v, floor)
        t = x * np.float32(1.44269504) + np.float32(12582912.0)
        bits[r] = t
        n = t - np.float32(12582912.0)
        z = (x - n * np.float32(0.693359375)) - n * np.float32(-2.12194440e-4)
        q = np.float32(1.9875691500e-4)  # Cephes' expf polynomial
        q = q * z + np.float32(1.3981999507e-3)
        q = q * z + np.float32(8.3334519073e-3)
        q = q * z + np.float32(4.1665795894e-2)
        q = q * z + np.float32(1.6666665459e-1)
        q = q * z + np.float32(5.0000001201e-1)
        q = q * z * z + z + np.float32(1.0)
        values[r] = q if v >= floor else np.float32(0.0)
    for r in range(values.shape[0]):
        as_int[r] = (as_int[r] + 127) << 23
    for r in range(values.shape[0]):
        values[r] *= bits[r]


@overload(_exp_nonpositive, jit_options={"cache": True})
def _exp_nonpositive_impl(values, bits):  # pragma: no cover - compiled
    return (lambda values, bits: _exp32(values, bits)) if values.dtype.bitwidth == 32 else (
        lambda values, bits: _exp64(values, bits))


def _log_at_least_one(values, out):  # pragma: no cover - the compiled kernels call the overload below
    """``out[:] = log(values)`` for finite values >= 1 (a row's sum of exp(log_prob - max) is)."""
    out[:] = np.log(values)


# log x = e ln2 + log m with x = 2^e m, m in [sqrt(1/2), sqrt(2)): e and m read from the
# bits, then log m = 2 atanh(s), s = (m - 1) / (m + 1), |s| <= 0.172, by its odd series.
# As for exp, every step is plain arithmetic on arrays, so LLVM vectorises it; numba's
# np.log is a scalar libm call, and one per row was a fifth of the float32 diag pass.


@njit(fastmath={"contract"}, nogil=True, inline="never", cache=True)
def _log64(values, out):  # pragma: no cover - compiled
    value_bits = values.view(np.int64)
    out_bits = out.view(np.int64)
    for r in range(values.shape[0]):  # the mantissa as a float in [1, 2)
        out_bits[r] = (value_bits[r] & 0x000FFFFFFFFFFFFF) | 0x3FF0000000000000
    for r in range(values.shape[0]):
        e = np.float64((value_bits[r] >> 52) - 1023)
        m = out[r]
        big = m > 1.4142135623730951
        m = m * 0.5 if big else m
        e = e + 1.0 if big else e
        f = m - 1.0
        s = f / (2.0 + f)
        z = s * s
        q = 1.0 / 21.0  # 1 + z/3 + z^2/5 + ... + z^10/21: error < 1e-17 for z <= 0.0295
        q = q * z + 1.0 / 19.0
        q = q * z + 1.0 / 17.0
        q = q * z + 1.0 / 15.0
        q = q * z + 1.0 / 13.0
        q = q * z + 1.0 / 11.0
        q = q * z + 1.0 / 9.0
        q = q * z + 1.0 / 7.0
        q = q * z + 1.0 / 5.0
        q = q * z + 1.0 / 3.0
        # ln2 split so that e * ln2_hi is exact (its low bits are zero).
        out[r] = e * 6.93147180369123816490e-01 + (2.0 * s * z * q + (e * 1.90821492927058770002e-10 + 2.0 * s))


@njit(fastmath={"contract"}, nogil=True, inline="never", cache=True)
def _log32(values, out):  # pragma: no cover - compiled
    value_bits = values.view(np.int32)
    out_bits = out.view(np.int32)
    for r in range(values.shape[0]):
        out_bits[r] = (value_bits[r] & 0x007FFFFF) | 0x3F800000
    for r in range(values.shape[0]):
        e = np.float32((value_bits[r] >> 23) - 127)
        m = out[r]
        big = m > np.float32(1.41421356)
        m = m * np.float32(0.5) if big else m
        e = e + np.float32(1.0) if big else e
        f = m - np.float32(1.0)
        s = f / (np.float32(2.0) + f)
        z = s * s
        q = np.float32(1.0 / 11.0)  # error < 1e-9 for z <= 0.0295
        q = q * z + np.float32(1.0 / 9.0)
        q = q * z + np.float32(1.0 / 7.0)
        q = q * z + np.float32(1.0 / 5.0)
        q = q * z + np.float32(1.0 / 3.0)
        out[r] = e * np.float32(0.693359375) + (np.float32(2.0) * s * z * q
                                                 + (e * np.float32(-2.12194440e-4) + np.float32(2.0) * s))


@overload(_log_at_least_one, jit_options={"cache": True})
def _log_at_least_one_impl(values, out):  # pragma: no cover - compiled
    return (lambda values, out: _log32(values, out)) if values.dtype.bitwidth == 32 else (
        lambda values, out: _log64(values, out))


@njit(fastmath=_FASTMATH, nogil=True, error_model="numpy", cache=True)
def _responsibilities(log_prob, m, w, top, total, bits, nk):  # pragma: no cover - compiled
    """Turn a block's ``log w_k + log N(x_r | k)`` (K, first ``m`` rows) into ``r_rk * w_r`` in place.

    Adds the responsibilities' sums to ``nk``; returns the block's ``sum_r w_r log p(x_r)``.
    """
    n_components = log_prob.shape[0]
    top[:m] = log_prob[0, :m]
    for k in range(1, n_components):
        for r in range(m):
            top[r] = max(top[r], log_prob[k, r])
    total[:m] = 0
    for k in range(n_components):
        for r in range(m):
            log_prob[k, r] -= top[r]
        _exp_nonpositive(log_prob[k, :m], bits[:m])
        for r in range(m):
            total[r] += log_prob[k, r]
    # Each total is >= 1 (its largest term is exp(0)) and finite, unless the log-densities
    # were not (NaN): then NumPy's log, which keeps the NaN for the caller to see.
    outside = 0
    for r in range(m):
        outside += not (total[r] >= 1.0 and total[r] < np.inf)
    if outside:
        for r in range(m):
            bits[r] = np.log(total[r])
    else:
        _log_at_least_one(total[:m], bits[:m])
    block_ll = 0.0
    for r in range(m):
        block_ll += w[r] * (top[r] + bits[r])
        total[r] = w[r] / total[r]  # responsibilities times the row's weight
    for k in range(n_components):
        q = log_prob[k]
        count = q[0] * np.float32(0)  # q's precision (an int 0 would make float32 sums float64)
        for r in range(m):
            q[r] *= total[r]
            count += q[r]
        nk[k] += count
    return block_ll


@njit(nogil=True, cache=True)
def _load_block(X, weights, start, m, n_r, x_t, w):  # pragma: no cover - compiled
    """Rows ``start .. start + m`` of X transposed into ``x_t`` and their weights into ``w``.

    Rows ``m .. n_r`` (a ragged block's padding) get weight 0, so they add nothing.
    """
    for r in range(m):
        w[r] = weights[start + r]
        for d in range(X.shape[1]):
            x_t[d, r] = X[start + r, d]
    for r in range(m, n_r):
        w[r] = 0


@njit(fastmath=_FASTMATH, nogil=True, error_model="numpy", cache=True)
def _diag_pass_kernel(X, weights, means, scale, log_norm, nk, sum_y, second):  # pragma: no cover - compiled
    n_rows, n_features = X.shape
    n_components = means.shape[0]
    dt = X.dtype
    block = _block_rows(n_features)
    x_t = _aligned_empty((n_features, block), dt)
    resp = _aligned_empty((n_components, block), dt)
    top = np.empty(block, dtype=dt)
    total = np.empty(block, dtype=dt)
    w = np.empty(block, dtype=dt)
    bits = np.empty(block, dtype=dt)
    log_norm_dt = log_norm.astype(dt)
    half = np.ones(1, dtype=dt)[0] * np.float32(0.5)  # in the data's precision, as every constant here
    log_likelihood = 0.0
    for start in range(0, n_rows, block):
        m = min(block, n_rows - start)
        _load_block(X, weights, start, m, m, x_t, w)
        # log w_k + log N(x | k), components outer and rows inner
        for k in range(n_components):
            acc = resp[k]
            acc[:m] = 0
            d = 0
            while d + 4 <= n_features:  # four features per trip: one load and store of acc for four
                x0, x1, x2, x3 = x_t[d], x_t[d + 1], x_t[d + 2], x_t[d + 3]
                mu0, mu1, mu2, mu3 = means[k, d], means[k, d + 1], means[k, d + 2], means[k, d + 3]
                sc0, sc1, sc2, sc3 = scale[k, d], scale[k, d + 1], scale[k, d + 2], scale[k, d + 3]
                for r in range(m):
                    v0 = (x0[r] - mu0) * sc0
                    v1 = (x1[r] - mu1) * sc1
                    v2 = (x2[r] - mu2) * sc2
                    v3 = (x3[r] - mu3) * sc3
                    acc[r] += v0 * v0 + v1 * v1 + v2 * v2 + v3 * v3
                d += 4
            while d < n_features:
                mu = means[k, d]
                sc = scale[k, d]
                for r in range(m):
                    v = (x_t[d, r] - mu) * sc
                    acc[r] += v * v
                d += 1
            for r in range(m):
                acc[r] = log_norm_dt[k] - half * acc[r]
        log_likelihood += _responsibilities(resp, m, w, top, total, bits, nk)
        for k in range(n_components):
            q = resp[k]
            for d in range(n_features):
                mu = means[k, d]
                sc = scale[k, d]
                # The block's sums in the data's precision: times an int 0, numba would
                # promote float32 to float64 (and the loop would not vectorise at float32 width).
                first = q[0] * np.float32(0)
                sq = q[0] * np.float32(0)
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
def _add_upper_moments(weighted, values, n_r, out):  # pragma: no cover - compiled
    """out[e, f] += sum_r weighted[e, r] values[f, r] for f >= e, over the first ``n_r`` rows (one block).

    Two rows e by four columns f per trip: six loads feed eight products (a load per
    product otherwise, and loads were the bound). The block's sums are in the data's
    precision, added to the float64 ``out``.
    """
    n_features = values.shape[0]
    zero = weighted[0, 0] * np.float32(0)  # an int 0 would make float32 sums float64
    e = 0
    while e < n_features:
        we0 = weighted[e]
        sq = zero
        ye = values[e]
        for r in range(n_r):
            sq += we0[r] * ye[r]
        out[e, e] += sq
        if e + 1 == n_features:
            break
        we1 = weighted[e + 1]
        f = e + 1
        while f + 4 <= n_features:
            y0, y1, y2, y3 = values[f], values[f + 1], values[f + 2], values[f + 3]
            s00 = s01 = s02 = s03 = s10 = s11 = s12 = s13 = zero
            for r in range(n_r):
                v0 = we0[r]
                v1 = we1[r]
                a0, a1, a2, a3 = y0[r], y1[r], y2[r], y3[r]
                s00 += v0 * a0
                s01 += v0 * a1
                s02 += v0 * a2
                s03 += v0 * a3
                s10 += v1 * a0
                s11 += v1 * a1
                s12 += v1 * a2
                s13 += v1 * a3
            out[e, f] += s00
            out[e, f + 1] += s01
            out[e, f + 2] += s02
            out[e, f + 3] += s03
            out[e + 1, f] += s10
            out[e + 1, f + 1] += s11
            out[e + 1, f + 2] += s12
            out[e + 1, f + 3] += s13
            f += 4
        while f < n_features:
            yf = values[f]
            s0 = s1 = zero
            for r in range(n_r):
                a = yf[r]
                s0 += we0[r] * a
                s1 += we1[r] * a
            out[e, f] += s0
            out[e + 1, f] += s1
            f += 1
        e += 2


@njit(fastmath=_FASTMATH, nogil=True, error_model="numpy", cache=True)
def _full_pass_kernel(X, weights, means, factor, log_norm, nk, sum_y, second):  # pragma: no cover - compiled
    n_rows, n_features = X.shape
    n_components = means.shape[0]
    dt = X.dtype
    block = _block_rows(n_features)
    # A ragged last block is padded with weight-0 rows to a whole number of vectors,
    # so that no inner loop has a scalar remainder.
    x_t = _aligned_zeros((n_features, block), dt)
    centred = _aligned_empty((n_features, block), dt)
    y = _aligned_empty((n_components, n_features, block), dt)
    log_prob = _aligned_empty((n_components, block), dt)
    bits = np.empty(block, dtype=dt)
    weighted_y = _aligned_empty((n_features, block), dt)
    top = np.empty(block, dtype=dt)
    total = np.empty(block, dtype=dt)
    w = np.zeros(block, dtype=dt)
    log_norm_dt = log_norm.astype(dt)
    half = np.ones(1, dtype=dt)[0] * np.float32(0.5)  # in the data's precision, as every constant here
    log_likelihood = 0.0
    for start in range(0, n_rows, block):
        m = min(block, n_rows - start)
        # A ragged block runs to the next multiple of 16 rows (a float32 vector's
        # lanes), not to the block: on small data (150-600 rows) the padding was up to
        # half of every pass.
        n_r = min(block, (m + 15) // 16 * 16)
        _load_block(X, weights, start, m, n_r, x_t, w)
        # y_k = (x - m_k) P_k with P_k upper triangular: y_ke = sum_{d <= e} (x - m_k)_d P_k[d, e]
        for k in range(n_components):
            for d in range(n_features):
                mu = means[k, d]
                for r in range(n_r):
                    centred[d, r] = x_t[d, r] - mu
            acc = log_prob[k]
            acc[:n_r] = 0
            e = 0
            # Four outputs per trip over the rows: one load of centred[d] feeds four.
            while e + 4 <= n_features:
                y0, y1, y2, y3 = y[k, e], y[k, e + 1], y[k, e + 2], y[k, e + 3]
                p0, p1, p2, p3 = factor[k, 0, e], factor[k, 0, e + 1], factor[k, 0, e + 2], factor[k, 0, e + 3]
                c = centred[0]
                for r in range(n_r):
                    y0[r] = c[r] * p0
                    y1[r] = c[r] * p1
                    y2[r] = c[r] * p2
                    y3[r] = c[r] * p3
                for d in range(1, e + 1):
                    p0, p1, p2, p3 = factor[k, d, e], factor[k, d, e + 1], factor[k, d, e + 2], factor[k, d, e + 3]
                    c = centred[d]
                    for r in range(n_r):
                        y0[r] += c[r] * p0
                        y1[r] += c[r] * p1
                        y2[r] += c[r] * p2
                        y3[r] += c[r] * p3
                p1, p2, p3 = factor[k, e + 1, e + 1], factor[k, e + 1, e + 2], factor[k, e + 1, e + 3]
                c = centred[e + 1]
                for r in range(n_r):
                    y1[r] += c[r] * p1
                    y2[r] += c[r] * p2
                    y3[r] += c[r] * p3
                p2, p3 = factor[k, e + 2, e + 2], factor[k, e + 2, e + 3]
                c = centred[e + 2]
                for r in range(n_r):
                    y2[r] += c[r] * p2
                    y3[r] += c[r] * p3
                p3 = factor[k, e + 3, e + 3]
                c = centred[e + 3]
                for r in range(n_r):
                    v3 = y3[r] + c[r] * p3
                    y3[r] = v3
                    acc[r] += y0[r] * y0[r] + y1[r] * y1[r]
                    acc[r] += y2[r] * y2[r] + v3 * v3
                e += 4
            while e + 2 <= n_features:
                y0, y1 = y[k, e], y[k, e + 1]
                p0, p1 = factor[k, 0, e], factor[k, 0, e + 1]
                c = centred[0]
                for r in range(n_r):
                    y0[r] = c[r] * p0
                    y1[r] = c[r] * p1
                for d in range(1, e + 1):
                    p0, p1 = factor[k, d, e], factor[k, d, e + 1]
                    c = centred[d]
                    for r in range(n_r):
                        y0[r] += c[r] * p0
                        y1[r] += c[r] * p1
                p1 = factor[k, e + 1, e + 1]
                c = centred[e + 1]
                for r in range(n_r):
                    v1 = y1[r] + c[r] * p1
                    y1[r] = v1
                    acc[r] += y0[r] * y0[r] + v1 * v1
                e += 2
            if e < n_features:
                ye = y[k, e]
                p = factor[k, 0, e]
                for r in range(n_r):
                    ye[r] = centred[0, r] * p
                for d in range(1, e + 1):
                    p = factor[k, d, e]
                    for r in range(n_r):
                        ye[r] += centred[d, r] * p
                for r in range(n_r):
                    acc[r] += ye[r] * ye[r]
            for r in range(n_r):
                acc[r] = log_norm_dt[k] - half * acc[r]
        log_likelihood += _responsibilities(log_prob, n_r, w, top, total, bits, nk)
        for k in range(n_components):
            q = log_prob[k]
            zero = q[0] * np.float32(0)  # the block's sums in the data's precision (see the diag kernel)
            for e in range(n_features):
                ye = y[k, e]
                first = zero
                for r in range(n_r):
                    v = q[r] * ye[r]
                    weighted_y[e, r] = v
                    first += v
                sum_y[k, e] += first
            _add_upper_moments(weighted_y, y[k], n_r, second[k])  # mirrored once at the end
    for k in range(n_components):
        for e in range(n_features):
            for f in range(e):
                second[k, e, f] = second[k, f, e]
    return log_likelihood


def full_pass(X: np.ndarray, weights: np.ndarray, means: np.ndarray, factor: np.ndarray, log_norm: np.ndarray):
    """One chunk's ``(nk, sum_y, second, log_likelihood)`` for full precision factors ``factor`` (K, D, D).

    ``factor[k]`` is the upper-triangular ``P_k`` with ``P_k P_k' = `` precision;
    ``X``, ``weights``, ``means`` (K, D) and ``factor`` in the fit's dtype;
    ``log_norm`` (K,) as for :func:`diag_pass`. The statistics are float64 and in
    whitened coordinates ``y = (x - m_k) P_k``: ``sum_y = sum_n r_nk y`` (K, D),
    ``second = sum_n r_nk y y'`` (K, D, D).
    """
    K, D = means.shape
    nk = np.zeros(K)
    sum_y = np.zeros((K, D))
    second = np.zeros((K, D, D))
    dtype = X.dtype
    log_likelihood = _full_pass_kernel(
        np.ascontiguousarray(X), np.ascontiguousarray(weights, dtype=dtype), np.ascontiguousarray(means, dtype=dtype),
        np.ascontiguousarray(factor, dtype=dtype), np.ascontiguousarray(log_norm, dtype=np.float64), nk, sum_y,
        second)
    return nk, sum_y, second, float(log_likelihood)


@njit(nogil=True, cache=True)
def _whitened_means(means, factor):  # pragma: no cover - compiled
    # c_k = m_k U (U upper triangular), float64
    n_components, n_features = means.shape
    centre = np.zeros((n_components, n_features))
    for k in range(n_components):
        for e in range(n_features):
            value = 0.0
            for d in range(e + 1):
                value += means[k, d] * factor[d, e]
            centre[k, e] = value
    return centre


@njit(fastmath=_FASTMATH, nogil=True, error_model="numpy", cache=True)
def _tied_pass_kernel(X, weights, means, factor, log_norm, nk, sum_y, second):  # pragma: no cover - compiled
    # The full kernel's pass for one factor U shared by every component, at a
    # K-th of its cost: each row is whitened once (y = x U), a component's
    # residual is y - c_k with c_k = m_k U, and the pooled second moment
    # sum_k sum_r q_kr (y_r - c_k)(y_r - c_k)' is summed as
    #   sum_r w_r (y_r - h_r)(y_r - h_r)' + sum_{k<l} G_kl (c_k - c_l)(c_k - c_l)',
    # with w_r = sum_k q_kr, h_r = sum_k q_kr c_k / w_r and G_kl = sum_r q_kr q_lr / w_r:
    # both sums have non-negative terms, so nothing cancels (the expansion
    # sum q y y' - ... would lose digits where components lie far apart).
    n_rows, n_features = X.shape
    n_components = means.shape[0]
    dt = X.dtype
    block = _block_rows(n_features)
    x_t = _aligned_zeros((n_features, block), dt)
    y = _aligned_empty((n_features, block), dt)
    resid = _aligned_empty((n_features, block), dt)
    weighted = _aligned_empty((n_features, block), dt)
    log_prob = _aligned_empty((n_components, block), dt)
    bits = np.empty(block, dtype=dt)
    top = np.empty(block, dtype=dt)
    total = np.empty(block, dtype=dt)
    row_total = np.empty(block, dtype=dt)
    inv_total = np.empty(block, dtype=dt)
    w = np.zeros(block, dtype=dt)
    pair = np.zeros((n_components, n_components))
    centre = _whitened_means(means, factor).astype(dt)  # in float64, then the data's precision
    log_norm_dt = log_norm.astype(dt)
    half = np.ones(1, dtype=dt)[0] * np.float32(0.5)  # in the data's precision, as every constant here
    log_likelihood = 0.0
    for start in range(0, n_rows, block):
        m = min(block, n_rows - start)
        n_r = min(block, (m + 15) // 16 * 16)  # padded with weight-0 rows (see the full kernel)
        _load_block(X, weights, start, m, n_r, x_t, w)
        # y_e = sum_{d <= e} x_d U[d, e], two outputs per trip over the rows
        e = 0
        while e + 2 <= n_features:
            y0, y1 = y[e], y[e + 1]
            p0, p1 = factor[0, e], factor[0, e + 1]
            c = x_t[0]
            for r in range(n_r):
                y0[r] = c[r] * p0
                y1[r] = c[r] * p1
            for d in range(1, e + 1):
                p0, p1 = factor[d, e], factor[d, e + 1]
                c = x_t[d]
                for r in range(n_r):
                    y0[r] += c[r] * p0
                    y1[r] += c[r] * p1
            p1 = factor[e + 1, e + 1]
            c = x_t[e + 1]
            for r in range(n_r):
                y1[r] += c[r] * p1
            e += 2
        if e < n_features:
            ye = y[e]
            p = factor[0, e]
            for r in range(n_r):
                ye[r] = x_t[0, r] * p
            for d in range(1, e + 1):
                p = factor[d, e]
                for r in range(n_r):
                    ye[r] += x_t[d, r] * p
        for k in range(n_components):
            acc = log_prob[k]
            acc[:n_r] = 0
            for e in range(n_features):
                ck = centre[k, e]
                ye = y[e]
                for r in range(n_r):
                    v = ye[r] - ck
                    acc[r] += v * v
            for r in range(n_r):
                acc[r] = log_norm_dt[k] - half * acc[r]
        log_likelihood += _responsibilities(log_prob, n_r, w, top, total, bits, nk)
        zero = log_prob[0, 0] * np.float32(0)  # the block's sums in the data's precision
        row_total[:n_r] = 0
        for k in range(n_components):
            q = log_prob[k]
            for r in range(n_r):
                row_total[r] += q[r]
        for r in range(n_r):
            inv_total[r] = (half + half) / row_total[r] if row_total[r] > 0 else zero
        for k in range(n_components):
            q = log_prob[k]
            for e in range(n_features):
                ck = centre[k, e]
                ye = y[e]
                first = zero
                for r in range(n_r):
                    first += q[r] * (ye[r] - ck)
                sum_y[k, e] += first
            for l in range(k + 1, n_components):
                ql = log_prob[l]
                g = zero
                for r in range(n_r):
                    g += q[r] * ql[r] * inv_total[r]
                pair[k, l] += g
        # residuals from each row's responsibility-weighted centre h_r
        for e in range(n_features):
            re = resid[e]
            for r in range(n_r):
                re[r] = y[e, r]
            for k in range(n_components):
                q = log_prob[k]
                ck = centre[k, e]
                for r in range(n_r):
                    re[r] -= q[r] * inv_total[r] * ck
            we = weighted[e]
            for r in range(n_r):
                we[r] = row_total[r] * re[r]
        _add_upper_moments(weighted, resid, n_r, second)
    for k in range(n_components):
        for l in range(k + 1, n_components):
            g = pair[k, l]
            if g > 0:
                for e in range(n_features):
                    de = g * (centre[k, e] - centre[l, e])
                    for f in range(e, n_features):
                        second[e, f] += de * (centre[k, f] - centre[l, f])
    for e in range(n_features):
        for f in range(e):
            second[e, f] = second[f, e]
    return log_likelihood


_EXPANDED_MAX_SQUARE = 1e4


@njit(fastmath=_FASTMATH, nogil=True, error_model="numpy", cache=True)
def _tied_pass_expanded_kernel(X, weights, means, factor, log_norm, gram, nk, sum_y, second):  # pragma: no cover
    # _tied_pass_kernel's statistics (float64) at about a third of its arithmetic, for
    # the multi-start's runs, which are only ranked. With P = U U' and c_k = m_k U, each row's distance
    # |x U - c_k|^2 = x'Px - 2 x.a_k + |c_k|^2 (a_k = U c_k = P m_k), and x'Px is the
    # same for every component: the responsibilities need only x.a_k, K*D per row,
    # where whitening takes D^2/2. The statistics follow from t_k = sum_r q_kr x_r
    # and the rows' weighted Gram matrix G (``gram``, one per batch of runs):
    #   sum_y_k = t_k U - n_k c_k,  second = U'GU - sum_k (u_k c_k' + c_k u_k' + n_k c_k c_k'),
    # with u_k = sum_y_k, and the log-likelihood loses trace(U'GU) / 2. The price is
    # cancellation: ``second`` loses about log10(max_k |c_k|^2) digits (|c_k| is the
    # distance of component k from the rows' mean, in units of the spread within
    # components), the log-likelihood about as many. Beyond _EXPANDED_MAX_SQUARE (four
    # digits) the pass is _tied_pass_kernel's. A fit's result never comes from here:
    # fit continues the chosen start with exact passes.
    n_rows, n_features = X.shape
    n_components = means.shape[0]
    block = _block_rows(n_features)
    x_t = _aligned_zeros((n_features, block), np.float64)
    log_prob = _aligned_empty((n_components, block), np.float64)
    bits = np.empty(block)
    top = np.empty(block)
    total = np.empty(block)
    w = np.zeros(block)
    centre = _whitened_means(means, factor)
    along = np.zeros((n_components, n_features))  # a_k = U c_k
    offset = np.empty(n_components)
    for k in range(n_components):
        square = 0.0
        for d in range(n_features):
            value = 0.0
            for e in range(d, n_features):
                value += factor[d, e] * centre[k, e]
            along[k, d] = value
            square += centre[k, d] * centre[k, d]
        offset[k] = log_norm[k] - 0.5 * square
        if not square <= _EXPANDED_MAX_SQUARE:  # also NaN
            return _tied_pass_kernel(X, weights, means, factor, log_norm, nk, sum_y, second)
    moments = np.zeros((n_components, n_features))  # t_k
    log_likelihood = 0.0
    for start in range(0, n_rows, block):
        m = min(block, n_rows - start)
        n_r = min(block, (m + 15) // 16 * 16)
        _load_block(X, weights, start, m, n_r, x_t, w)
        for k in range(n_components):
            acc = log_prob[k]
            acc[:n_r] = offset[k]
            d = 0
            while d + 4 <= n_features:
                a0, a1, a2, a3 = along[k, d], along[k, d + 1], along[k, d + 2], along[k, d + 3]
                x0, x1, x2, x3 = x_t[d], x_t[d + 1], x_t[d + 2], x_t[d + 3]
                for r in range(n_r):
                    acc[r] += (x0[r] * a0 + x1[r] * a1) + (x2[r] * a2 + x3[r] * a3)
                d += 4
            while d < n_features:
                a0 = along[k, d]
                x0 = x_t[d]
                for r in range(n_r):
                    acc[r] += x0[r] * a0
                d += 1
        log_likelihood += _responsibilities(log_prob, n_r, w, top, total, bits, nk)
        for k in range(n_components):
            q = log_prob[k]
            d = 0
            while d + 4 <= n_features:
                x0, x1, x2, x3 = x_t[d], x_t[d + 1], x_t[d + 2], x_t[d + 3]
                s0 = s1 = s2 = s3 = 0.0
                for r in range(n_r):
                    s0 += q[r] * x0[r]
                    s1 += q[r] * x1[r]
                    s2 += q[r] * x2[r]
                    s3 += q[r] * x3[r]
                moments[k, d] += s0
                moments[k, d + 1] += s1
                moments[k, d + 2] += s2
                moments[k, d + 3] += s3
                d += 4
            while d < n_features:
                x0 = x_t[d]
                s0 = 0.0
                for r in range(n_r):
                    s0 += q[r] * x0[r]
                moments[k, d] += s0
                d += 1
    # H = U'GU by BLAS (numba calls scipy's), 2-3x quicker than loops at 30 features
    second[:, :] = np.dot(factor.T, np.dot(gram, factor))
    trace = 0.0
    for e in range(n_features):
        trace += second[e, e]
    log_likelihood -= 0.5 * trace
    for k in range(n_components):
        for e in range(n_features):
            value = 0.0
            for d in range(e + 1):
                value += moments[k, d] * factor[d, e]
            sum_y[k, e] = value - nk[k] * centre[k, e]
    for k in range(n_components):
        for e in range(n_features):
            ue, ce = sum_y[k, e], centre[k, e]
            for f in range(e, n_features):
                second[e, f] -= ue * centre[k, f] + ce * sum_y[k, f] + nk[k] * ce * centre[k, f]
    for e in range(n_features):
        for f in range(e):
            second[e, f] = second[f, e]
    return log_likelihood


def tied_pass(X: np.ndarray, weights: np.ndarray, means: np.ndarray, factor: np.ndarray, log_norm: np.ndarray):
    """:func:`full_pass` for one factor ``factor`` (D, D) shared by every component; ``second`` is pooled (D, D).

    The same statistics as ``full_pass`` with the factor repeated, ``second``
    summed over the components, at a K-th of the cost (see ``_tied_pass_kernel``).
    """
    K, D = means.shape
    nk = np.zeros(K)
    sum_y = np.zeros((K, D))
    second = np.zeros((D, D))
    dtype = X.dtype
    log_likelihood = _tied_pass_kernel(
        np.ascontiguousarray(X), np.ascontiguousarray(weights, dtype=dtype), np.ascontiguousarray(means, dtype=dtype),
        np.ascontiguousarray(factor, dtype=dtype), np.ascontiguousarray(log_norm, dtype=np.float64), nk, sum_y,
        second)
    return nk, sum_y, second, float(log_likelihood)


@njit(nogil=True, cache=True)
def _invert_lower(lower, out):  # pragma: no cover - compiled
    # out = lower^{-1} (lower triangular, no zero on the diagonal; out's upper triangle
    # left as it is). Forward substitution without fastmath, so the rounding is that of
    # a plain triangular solve: out[i, j] = -(sum_{k=j}^{i-1} lower[i, k] out[k, j]) / lower[i, i],
    # each sum added in order of k. A row's sums grow together (the columns innermost):
    # the same additions in the same order, but independent ones that vectorise, where
    # one sum at a time waited on each addition.
    size = lower.shape[0]
    sums = np.empty(size)
    for i in range(size):
        for j in range(i):
            sums[j] = 0.0
        for k in range(i):
            factor = lower[i, k]
            for j in range(k + 1):
                sums[j] += factor * out[k, j]
        for j in range(i):
            out[i, j] = -sums[j] / lower[i, i]
        out[i, i] = 1.0 / lower[i, i]


@njit(nogil=True, cache=True)
def _lower_inverse_kernel(stack, out):  # pragma: no cover - compiled
    # Returns 1 when a diagonal is zero.
    for m in range(stack.shape[0]):
        for j in range(stack.shape[1]):
            if stack[m, j, j] == 0.0:
                return 1
        _invert_lower(stack[m], out[m])
    return 0


def triangular_inverse(factors: np.ndarray, lower: bool) -> np.ndarray:
    """Inverses of a stack of triangular matrices ``(..., D, D)``, their other triangle exactly zero.

    One compiled call for the whole stack: EM's M-step inverts K small factors
    several times per pass, and a LAPACK call per matrix cost 10-40 us of Python
    each on the short runs of the multi-start (most of a pass's time on small data).
    Raises ``numpy.linalg.LinAlgError`` for a zero diagonal, as LAPACK would.
    """
    factors = np.asarray(factors)
    shape = factors.shape
    stack = factors.reshape(-1, shape[-2], shape[-1])
    if not lower:  # inv(U) = inv(U')'
        stack = stack.transpose(0, 2, 1)
    stack = np.ascontiguousarray(stack)
    out = np.zeros_like(stack)
    if _lower_inverse_kernel(stack, out):
        raise np.linalg.LinAlgError("Singular matrix")
    if not lower:
        out = out.transpose(0, 2, 1)
    return np.ascontiguousarray(out).reshape(shape)


@njit(nogil=True, cache=True)
def _matrix_m_step_kernel(nk, mean_y, second, factor, reg_covar, pooled, shift, covs, new_factor):  # pragma: no cover
    # Per factor m (K of them for full covariances, one for tied): Q = P^{-1} (as the
    # transpose of the lower inverse of P'), the whitened moments centred and mapped back (Q' C Q), the
    # ridge, then the new factor inv(chol(cov))'. Loops without fastmath (and BLAS for Q' C Q): the
    # rounding is that of the LAPACK routines it replaces. Returns 1 for a singular
    # old factor, 2 for a new covariance that is not finite and positive definite.
    n_components, n_features = mean_y.shape
    q_t = np.zeros((n_features, n_features))  # Q' = (P')^{-1}, lower
    centred = np.empty((n_features, n_features))
    chol = np.zeros((n_features, n_features))
    chol_inv = np.zeros((n_features, n_features))
    if pooled:
        total = 0.0
        for k in range(n_components):
            total += nk[k]
        for e in range(n_features):
            for f in range(n_features):
                value = second[0, e, f]
                for k in range(n_components):
                    value -= nk[k] * mean_y[k, e] * mean_y[k, f]
                centred[e, f] = value / total
    for m in range(factor.shape[0]):
        for j in range(n_features):
            if factor[m, j, j] == 0.0:
                return 1
        _invert_lower(factor[m].T, q_t)
        q = q_t.T
        for k in range(n_components) if pooled else range(m, m + 1):
            for f in range(n_features):
                value = 0.0
                for e in range(f + 1):
                    value += mean_y[k, e] * q[e, f]
                shift[k, f] = value
        if not pooled:
            for e in range(n_features):
                for f in range(n_features):
                    centred[e, f] = second[m, e, f] / nk[m] - mean_y[m, e] * mean_y[m, f]
        # cov = Q' C Q: two BLAS products (numba calls scipy's BLAS), which beat
        # plain loops from ~10 features on.
        covs[m] = np.dot(q.T, np.dot(centred, q))
        for e in range(n_features):
            for f in range(e):
                value = 0.5 * (covs[m, e, f] + covs[m, f, e])
                covs[m, e, f] = value
                covs[m, f, e] = value
            covs[m, e, e] += reg_covar
        for e in range(n_features):
            for f in range(n_features):
                if not np.isfinite(covs[m, e, f]):
                    return 2
        if not _precision_factor(covs[m], chol, chol_inv, new_factor[m]):
            return 2
    return 0


@njit(nogil=True, cache=True)
def _below_floor_kernel(covs, floor, out):  # pragma: no cover - compiled
    n_features = covs.shape[1]
    chol = np.empty((n_features, n_features))
    for m in range(covs.shape[0]):
        out[m] = False
        for j in range(n_features):  # Cholesky of cov - floor I, column by column
            for i in range(j, n_features):
                value = covs[m, i, j] - (floor if i == j else 0.0)
                for p in range(j):
                    value -= chol[i, p] * chol[j, p]
                if i == j:
                    if not value > 0.0:  # also NaN
                        out[m] = True
                        break
                    chol[j, j] = np.sqrt(value)
                else:
                    chol[i, j] = value / chol[j, j]
            if out[m]:
                break


def below_floor(covariances: np.ndarray, floor: float) -> np.ndarray:
    """Whether each (D, D) covariance of ``covariances`` (M, D, D) has an eigenvalue below ``floor``.

    True exactly when ``cov - floor I`` is not positive definite (its Cholesky
    factorisation fails), which is what a degenerate-component check asks.
    """
    out = np.empty(covariances.shape[0], dtype=np.bool_)
    _below_floor_kernel(np.ascontiguousarray(covariances, dtype=np.float64), float(floor), out)
    return out


@njit(nogil=True, cache=True)
def _precision_factor(cov, chol, chol_inv, out):  # pragma: no cover - compiled
    # out = L^{-T} with cov = L L' (scratch chol, chol_inv); False unless cov is positive definite.
    n_features = cov.shape[0]
    for j in range(n_features):  # Cholesky cov = L L'
        value = cov[j, j]
        for k in range(j):
            value -= chol[j, k] * chol[j, k]
        if not value > 0.0:
            return False
        chol[j, j] = np.sqrt(value)
        for i in range(j + 1, n_features):
            value = cov[i, j]
            for k in range(j):
                value -= chol[i, k] * chol[j, k]
            chol[i, j] = value / chol[j, j]
    _invert_lower(chol, chol_inv)
    for e in range(n_features):
        for f in range(n_features):
            out[e, f] = chol_inv[f, e]
    return True


@njit(nogil=True, cache=True)
def _precision_factors_kernel(covs, out):  # pragma: no cover - compiled
    n_features = covs.shape[1]
    chol = np.zeros((n_features, n_features))
    chol_inv = np.zeros((n_features, n_features))
    for m in range(covs.shape[0]):
        for e in range(n_features):
            for f in range(n_features):
                if not np.isfinite(covs[m, e, f]):
                    return False
        if not _precision_factor(covs[m], chol, chol_inv, out[m]):
            return False
    return True


def precision_factors(covariances: np.ndarray) -> np.ndarray | None:
    """Upper precision factors ``P = L^{-T}`` (cov = L L') of float64 covariances (..., D, D), one compiled call.

    None where a covariance is not finite and positive definite.
    """
    shape = covariances.shape
    covs = np.ascontiguousarray(covariances, dtype=np.float64).reshape((-1,) + shape[-2:])
    out = np.zeros(covs.shape)
    return out.reshape(shape) if _precision_factors_kernel(covs, out) else None


def matrix_m_step(nk: np.ndarray, mean_y: np.ndarray, second: np.ndarray, factor: np.ndarray, reg_covar: float,
                  pooled: bool):
    """Float64 M-step of full (``pooled=False``) or tied covariances in one compiled call.

    ``second`` is the summed whitened second moment, (K, D, D), or (1, D, D) pooled
    over components; ``factor`` the current precision factors P (K or 1, D, D).
    Returns the mean shifts ``ybar_k P^{-1}`` (K, D), the new covariances and their
    precision factors, each (K or 1, D, D); the caller drops the leading 1 for tied.
    Raises ``numpy.linalg.LinAlgError`` for a singular factor and ``ValueError``
    (code 2) where a covariance is not positive definite.
    """
    n_components, n_features = mean_y.shape
    shift = np.empty((n_components, n_features))
    covs = np.empty(factor.shape)
    new_factor = np.zeros(factor.shape)
    code = _matrix_m_step_kernel(nk, mean_y, second, factor, float(reg_covar), pooled, shift, covs, new_factor)
    return code, shift, covs, new_factor


# ------------------------------------------------------------ whole EM passes
# On small data (the many short runs of the multi-start in ``select_model``: iris's
# grid makes ~7,400 passes) the arithmetic of a pass is ~10 us and the Python around
# it (the pass set-up, the statistics' dataclass, the M-step's calls) was 40-90 us.
# These run a whole float64 pass, E-step and M-step, in one compiled call, with the
# same kernels as the Python path. They agree with it to rounding, not bit for bit:
# NumPy's log of a whole array is a SIMD routine (1 ulp from libm's on ~0.1% of
# inputs) and its sums over 8 or more features run in another order.

_LOG_2PI = np.log(2.0 * np.pi)
_NK_GUARD = 10 * np.finfo(np.float64).eps  # scikit-learn's guard against empty components
_NO_GRAM = np.empty((0, 0))  # tied passes by _tied_pass_kernel (see _matrix_em_step_kernel)


@njit(nogil=True, cache=True)
def _log_norm(weights, log_det, n_features):  # pragma: no cover - compiled
    out = np.empty(weights.shape[0])
    for k in range(weights.shape[0]):
        out[k] = (np.log(weights[k]) - 0.5 * n_features * _LOG_2PI) + log_det[k]
    return out


@njit(nogil=True, cache=True, error_model="numpy")
def _matrix_em_step_kernel(X, row_weights, total_weight, weights, means, factor, reg_covar, pooled,
                           new_weights, new_means, covs, new_factor, gram):  # pragma: no cover - compiled
    # factor: (K, D, D) full, (1, D, D) tied; returns (code, log-likelihood) with the
    # codes of _matrix_m_step_kernel. A tied pass with the rows' weighted Gram matrix
    # ``gram`` (D, D) is _tied_pass_expanded_kernel's; with an empty one (0, 0), the exact
    # _tied_pass_kernel's.
    n_components, n_features = means.shape
    log_det = np.zeros(n_components)
    for k in range(n_components):
        m = 0 if pooled else k
        for j in range(n_features):
            log_det[k] += np.log(factor[m, j, j])
    log_norm = _log_norm(weights, log_det, n_features)
    nk = np.zeros(n_components)
    sum_y = np.zeros((n_components, n_features))
    if pooled:  # tied: the pooled second moment, (1, D, D)
        second = np.zeros((1, n_features, n_features))
        if gram.shape[0]:
            log_likelihood = _tied_pass_expanded_kernel(X, row_weights, means, factor[0], log_norm, gram, nk, sum_y,
                                                        second[0])
        else:
            log_likelihood = _tied_pass_kernel(X, row_weights, means, factor[0], log_norm, nk, sum_y, second[0])
    else:
        second = np.zeros((n_components, n_features, n_features))
        log_likelihood = _full_pass_kernel(X, row_weights, means, factor, log_norm, nk, sum_y, second)
    for k in range(n_components):
        nk[k] += _NK_GUARD
    mean_y = np.empty((n_components, n_features))
    for k in range(n_components):
        for d in range(n_features):
            mean_y[k, d] = sum_y[k, d] / nk[k]
    shift = np.empty((n_components, n_features))
    code = _matrix_m_step_kernel(nk, mean_y, second, factor, reg_covar, pooled, shift, covs, new_factor)
    for k in range(n_components):
        new_weights[k] = nk[k] / total_weight
        for d in range(n_features):
            new_means[k, d] = means[k, d] + shift[k, d]
    return code, log_likelihood


@njit(nogil=True, cache=True, error_model="numpy")
def _diagonal_em_step_kernel(X, row_weights, total_weight, weights, means, scale, reg_covar, pooled,
                             new_weights, new_means, covs, new_scale):  # pragma: no cover - compiled
    # scale: (K, D) per-feature precision sds (diag) or (K, 1) one per component
    # (spherical, pooled over features); covs and new_scale shaped like scale.
    # Returns (code, log-likelihood): 2 where a variance is not positive.
    n_components, n_features = means.shape
    full_scale = np.empty((n_components, n_features))
    log_det = np.zeros(n_components)
    for k in range(n_components):
        for d in range(n_features):
            full_scale[k, d] = scale[k, 0] if pooled else scale[k, d]
        if pooled:
            log_det[k] = n_features * np.log(scale[k, 0])
        else:
            for d in range(n_features):
                log_det[k] += np.log(scale[k, d])
    nk = np.zeros(n_components)
    sum_y = np.zeros((n_components, n_features))
    second = np.zeros((n_components, n_features))
    log_likelihood = _diag_pass_kernel(X, row_weights, means, full_scale,
                                       _log_norm(weights, log_det, n_features), nk, sum_y, second)
    code = _diagonal_m_step(nk, sum_y, second, means, full_scale, reg_covar, pooled, total_weight, new_weights,
                            new_means, covs, new_scale)
    return code, log_likelihood


@njit(nogil=True, cache=True, error_model="numpy")
def _diagonal_m_step(nk, sum_y, second, means, scale, reg_covar, pooled, total_weight, new_weights, new_means, covs,
                     new_scale):  # pragma: no cover - compiled
    # The M-step from a pass's statistics of residuals (x - means) * scale, (K, D):
    # new weights, means, variances (covs, (K, D), or (K, 1) pooled over features) and
    # their 1/sqrt. Guards nk in place. Returns 2 where a variance is not positive.
    n_components, n_features = means.shape
    code = 0
    for k in range(n_components):
        nk[k] += _NK_GUARD
        new_weights[k] = nk[k] / total_weight
        spread = 0.0
        for d in range(n_features):
            mean_y = sum_y[k, d] / nk[k]
            sc = scale[k, d]
            new_means[k, d] = means[k, d] + mean_y / sc
            variance = (second[k, d] / nk[k] - mean_y**2) / sc**2
            if pooled:
                spread += variance
            else:
                covs[k, d] = variance + reg_covar
        if pooled:
            covs[k, 0] = spread / n_features + reg_covar
        for d in range(covs.shape[1]):
            if covs[k, d] <= 0.0:
                code = 2
            new_scale[k, d] = 1.0 / np.sqrt(covs[k, d])
    return code


def _em_step(kernel, X, row_weights, total_weight, weights, means, factor, reg_covar, pooled, *extra):
    """Allocate the new parameters and run ``kernel`` (``factor`` as it takes it, ``extra`` its last arguments)."""
    n_components, n_features = means.shape
    new_weights = np.empty(n_components)
    new_means = np.empty((n_components, n_features))
    covs = np.empty(factor.shape)
    new_factor = np.zeros(factor.shape)
    code, log_likelihood = kernel(
        X, row_weights, float(total_weight), np.ascontiguousarray(weights), np.ascontiguousarray(means),
        np.ascontiguousarray(factor), float(reg_covar), pooled, new_weights, new_means, covs, new_factor, *extra)
    return code, float(log_likelihood), new_weights, new_means, covs, new_factor


def matrix_em_step(X: np.ndarray, row_weights: np.ndarray, total_weight: float, weights: np.ndarray,
                   means: np.ndarray, precisions_cholesky: np.ndarray, reg_covar: float, pooled: bool):
    """One float64 EM pass (E-step and M-step) of full (``pooled=False``) or tied covariances, one compiled call.

    The parameters are on the standardised scale, shaped as
    :class:`bayesgmm.em.GaussianMixtureEM` keeps them (``precisions_cholesky``
    (K, D, D), or (D, D) for tied). Returns ``(code, log_likelihood, weights, means,
    covariances, precisions_cholesky)``: ``code`` 0, 1 for a singular old factor or
    2 for a new covariance that is not positive definite; ``log_likelihood`` is the
    weighted sum of ``log p(x_n)`` under the old parameters, as the Python pass
    reports it.
    """
    factor = precisions_cholesky[None] if pooled else precisions_cholesky
    out = _em_step(_matrix_em_step_kernel, X, row_weights, total_weight, weights, means, factor, reg_covar, pooled,
                   _NO_GRAM)
    return (*out[:4], out[4][0], out[5][0]) if pooled else out


def diagonal_em_step(X: np.ndarray, row_weights: np.ndarray, total_weight: float, weights: np.ndarray,
                     means: np.ndarray, precisions_cholesky: np.ndarray, reg_covar: float, pooled: bool):
    """:func:`matrix_em_step` for diagonal (``pooled=False``, factors (K, D)) or spherical covariances (K,).

    ``code`` is 2 where a variance is not positive.
    """
    scale = precisions_cholesky[:, None] if pooled else precisions_cholesky
    out = _em_step(_diagonal_em_step_kernel, X, row_weights, total_weight, weights, means, scale, reg_covar, pooled)
    return (*out[:4], out[4][:, 0], out[5][:, 0]) if pooled else out


@njit(nogil=True, cache=True)
def _squarem_sums(a0, a1, a2):  # pragma: no cover - compiled
    rr = 0.0
    vv = 0.0
    for i in range(a0.size):
        r = float(a1[i]) - float(a0[i])
        v = float(a2[i]) - 2.0 * float(a1[i]) + float(a0[i])
        rr += r * r
        vv += v * v
    return rr, vv


@njit(nogil=True, cache=True)
def _squarem_lengths(w0, w1, w2, m0, m1, m2, c0, c1, c2):  # pragma: no cover - compiled
    rr_w, vv_w = _squarem_sums(w0.ravel(), w1.ravel(), w2.ravel())
    rr_m, vv_m = _squarem_sums(m0.ravel(), m1.ravel(), m2.ravel())
    rr_c, vv_c = _squarem_sums(c0.ravel(), c1.ravel(), c2.ravel())
    return rr_w + rr_m + rr_c, vv_w + vv_m + vv_c


@njit(nogil=True, cache=True)
def _squarem_combine(a0, a1, a2, alpha, out):  # pragma: no cover - compiled
    f0, f1, f2, flat = a0.ravel(), a1.ravel(), a2.ravel(), out.reshape(out.size)
    for i in range(f0.size):
        r = float(f1[i]) - float(f0[i])
        v = float(f2[i]) - 2.0 * float(f1[i]) + float(f0[i])
        flat[i] = float(f0[i]) - 2.0 * alpha * r + alpha**2 * v


@njit(nogil=True, cache=True)
def _squarem_point(w0, w1, w2, m0, m1, m2, c0, c1, c2, alpha, w, m, c):  # pragma: no cover - compiled
    _squarem_combine(w0, w1, w2, alpha, w)
    _squarem_combine(m0, m1, m2, alpha, m)
    _squarem_combine(c0, c1, c2, alpha, c)


def squarem_lengths(first: tuple, middle: tuple, last: tuple) -> tuple[float, float]:
    """``(|r|^2, |v|^2)`` over all parameter arrays, r = middle - first, v = last - 2 middle + first.

    Each argument is ``(weights, means, covariances)``, C-contiguous; one compiled
    call instead of a dozen NumPy calls on small arrays (SQUAREM takes one per cycle).
    """
    rr, vv = _squarem_lengths(*[a for trio in zip(first, middle, last) for a in trio])
    return float(rr), float(vv)


def squarem_point(first: tuple, middle: tuple, last: tuple, alpha: float) -> tuple:
    """SQUAREM's point ``first - 2 alpha r + alpha^2 v`` for every array (see :func:`squarem_lengths`).

    Each point has the dtype NumPy's arithmetic on the three would give.
    """
    trios = list(zip(first, middle, last))
    points = tuple(np.empty(trio[0].shape, dtype=np.result_type(*trio)) for trio in trios)
    _squarem_point(*[a for trio in trios for a in trio], float(alpha), *points)
    return points


# -- a whole EM run in one compiled call (small float64 data) -------------------------
# The loop of GaussianMixtureEM._run_em, step for step, for the compiled passes above:
# on data of a few hundred rows a pass is ~10 us of arithmetic, and the Python around
# it (the pass's and SQUAREM's calls, the parameter objects) cost as much again.
# Matrix parameters: factor and covariances (K, D, D), or (1, D, D) pooled (tied);
# diagonal ones: (K, D), or (K, 1) pooled (spherical). The branches on ``ndim`` are
# resolved when numba compiles, so each family gets its own machine code.


@njit(nogil=True, cache=True)
def _factors_from(covs, out):  # pragma: no cover - compiled
    # The precision factors of covariances (as CovarianceType.precision_cholesky); False
    # where one is not finite and positive definite, or a factor is not finite.
    if covs.ndim == 3:
        if not _precision_factors_kernel(covs, out):
            return False
    else:
        for k in range(covs.shape[0]):
            for d in range(covs.shape[1]):
                if not covs[k, d] > 0.0:
                    return False
                out[k, d] = 1.0 / np.sqrt(covs[k, d])
    flat = out.reshape(out.size)
    for i in range(flat.shape[0]):
        if not np.isfinite(flat[i]):
            return False
    return True


@njit(nogil=True, cache=True)
def _squarem_jump(w0, m0, c0, w1, m1, c1, w2, m2, c2, step_max):  # pragma: no cover - compiled
    # GaussianMixtureEM._extrapolate: (found, capped, weights, means, covariances, factor).
    w, m, c, f = np.empty(w0.shape), np.empty(m0.shape), np.empty(c0.shape), np.zeros(c0.shape)
    rr, vv = _squarem_lengths(w0, w1, w2, m0, m1, m2, c0, c1, c2)
    if vv == 0.0 or not np.isfinite(rr + vv):
        return False, False, w, m, c, f
    natural = -np.sqrt(rr / vv)
    alpha = max(natural, -step_max)
    capped = natural < -step_max
    while alpha < -1.0:
        _squarem_point(w0, w1, w2, m0, m1, m2, c0, c1, c2, alpha, w, m, c)
        total = 0.0
        for k in range(w.shape[0]):
            total += w[k] if w[k] >= 0 else np.nan
        if total == total and _factors_from(c, f):  # no negative (or NaN) weight
            for k in range(w.shape[0]):
                w[k] /= total
            return True, capped, w, m, c, f
        alpha = (alpha - 1.0) / 2.0
        if alpha > -1.5:
            break
    return False, capped, w, m, c, f


@njit(nogil=True, cache=True)
def _any_below_floor(covs, floor):  # pragma: no cover - compiled
    # Whether a covariance kept as the estimator keeps it ((M, D, D) matrices or (K, D)
    # / (K, 1) variances) has an eigenvalue below floor: the degenerate-component check.
    if covs.ndim == 3:
        out = np.empty(covs.shape[0], dtype=np.bool_)
        _below_floor_kernel(covs, floor, out)
        return out.any()
    flat = covs.reshape(covs.size)
    for i in range(flat.shape[0]):
        if not flat[i] >= floor:  # also NaN
            return True
    return False


@njit(nogil=True, cache=True)
def _record(history, n, value):  # pragma: no cover - compiled
    # history[n] = value, in a longer copy when history is full.
    if n == history.shape[0]:
        grown = np.empty(2 * n + 16)
        for i in range(n):
            grown[i] = history[i]
        history = grown
    history[n] = value
    return history


@njit(nogil=True, cache=True, error_model="numpy")
def _em_loop(X, row_weights, total_weight, weights, means, covs, factor, reg_covar, pooled, max_iter, tol,
             lower_bound, accelerate, collapse_floor, gram):  # pragma: no cover - compiled
    # Returns (code, lower_bound, passes, converged, history, weights, means, covs,
    # factor); on a failed pass (code 1 or 2) the parameters it started from. With
    # collapse_floor > 0, stops (not converged) at the first parameters it keeps
    # whose covariances have an eigenvalue below it.
    passes = 0
    history = np.empty(min(max_iter, 256))  # grown as needed: max_iter may be huge
    n_history = 0
    step_max = 1.0  # grows while the natural step keeps exceeding it (Varadhan & Roland)
    w, m, c, f = weights, means, covs, factor
    w0, m0, c0 = w, m, c  # a SQUAREM cycle's start, middle and extrapolated point
    w1, m1, c1 = w, m, c
    jw, jm, jc, jf = w, m, c, f
    # One pass per trip, so the (large) pass is compiled in one place: phase 0 is a
    # cycle's first plain step, 1 its second, 2 the step from the extrapolated point.
    phase = 0
    while passes < max_iter:
        if phase == 0:
            w0, m0, c0 = w, m, c
        elif phase == 1:
            w1, m1, c1 = w, m, c
        jump = phase == 2
        # The pass itself (the kernel called here directly: every compiled layer
        # between them re-optimises the kernel's code, seconds of compile time each).
        nw, nm = np.empty(w.shape), np.empty(m.shape)
        nc, nf = np.empty(f.shape), np.zeros(f.shape)
        if factor.ndim == 3:
            code, value = _matrix_em_step_kernel(X, row_weights, total_weight, jw if jump else w, jm if jump else m,
                                                 jf if jump else f, reg_covar, pooled, nw, nm, nc, nf, gram)
        else:
            code, value = _diagonal_em_step_kernel(X, row_weights, total_weight, jw if jump else w,
                                                   jm if jump else m, jf if jump else f, reg_covar, pooled, nw, nm,
                                                   nc, nf)
        value /= total_weight
        if code != 0:
            if jump:
                return code, lower_bound, passes, False, history[:n_history], jw, jm, jc, jf
            return code, lower_bound, passes, False, history[:n_history], w, m, c, f
        passes += 1
        if jump:
            if value >= lower_bound:
                history = _record(history, n_history, value)
                n_history += 1
                lower_bound = value
                w, m, c, f = nw, nm, nc, nf
                if collapse_floor > 0.0 and _any_below_floor(c, collapse_floor):
                    return 0, lower_bound, passes, False, history[:n_history], w, m, c, f
            else:  # the jump lost likelihood: go on from the plain EM path (not recorded)
                step_max = max(1.0, step_max / 4)
            phase = 0
            continue
        w, m, c, f = nw, nm, nc, nf
        history = _record(history, n_history, value)
        n_history += 1
        previous, lower_bound = lower_bound, value
        if abs(lower_bound - previous) < tol:
            return 0, lower_bound, passes, True, history[:n_history], w, m, c, f
        if collapse_floor > 0.0 and _any_below_floor(c, collapse_floor):
            return 0, lower_bound, passes, False, history[:n_history], w, m, c, f
        if phase == 0:  # a second plain step where acceleration is on and it has room
            phase = 1 if accelerate and passes + 2 <= max_iter else 0
            continue
        found, capped, jw, jm, jc, jf = _squarem_jump(w0, m0, c0, w1, m1, c1, w, m, c, step_max)
        if capped:  # the step length hit its cap: allow longer steps (SQUAREM's mstep)
            step_max *= 4
        phase = 2 if found else 0
    return 0, lower_bound, passes, False, history[:n_history], w, m, c, f


def kernel_shapes(diagonal: bool, pooled: bool):
    """``(shape, unshape)``: a covariance or factor as the estimator keeps it to the kernels' shape, and back.

    The kernels take (M, D, D) matrices (tied: M=1) or (K, D) variances (spherical:
    (K, 1)); the estimator keeps tied as (D, D) and spherical as (K,).
    """
    if not pooled:
        return (lambda a: a), (lambda a: a)
    if diagonal:
        return (lambda a: a[:, None]), (lambda a: a[:, 0])
    return (lambda a: a[None]), (lambda a: a[0])


def em_loop(X: np.ndarray, row_weights: np.ndarray, total_weight: float, weights: np.ndarray, means: np.ndarray,
            covariances: np.ndarray, precisions_cholesky: np.ndarray, reg_covar: float, diagonal: bool,
            pooled: bool, max_iter: int, tol: float, lower_bound: float, accelerate: bool,
            collapse_floor: float = 0.0):
    """EM passes (SQUAREM-accelerated if ``accelerate``) until ``tol`` or ``max_iter``, in one compiled call.

    The same steps as :meth:`bayesgmm.em.GaussianMixtureEM._run_em` over
    :func:`matrix_em_step` (``diagonal=False``: full, or tied if ``pooled``) or
    :func:`diagonal_em_step` (diag, or spherical if ``pooled``) passes; float64,
    parameters shaped as the estimator keeps them. Returns ``(code, lower_bound,
    passes, converged, history, weights, means, covariances, precisions_cholesky)``
    with ``code`` as :func:`matrix_em_step`'s (on a failed pass, the parameters the
    pass started from).
    """
    shape, unshape = kernel_shapes(diagonal, pooled)
    code, lower_bound, passes, converged, history, w, m, c, f = _em_loop(
        X, np.ascontiguousarray(row_weights, dtype=np.float64), float(total_weight),
        np.ascontiguousarray(weights, dtype=np.float64), np.ascontiguousarray(means, dtype=np.float64),
        np.ascontiguousarray(shape(covariances), dtype=np.float64),
        np.ascontiguousarray(shape(precisions_cholesky), dtype=np.float64), float(reg_covar), pooled,
        min(int(max_iter), np.iinfo(np.int64).max),
        float(tol), float(lower_bound), bool(accelerate), float(collapse_floor), _NO_GRAM)
    return (int(code), float(lower_bound), int(passes), bool(converged), history.tolist(), w, m,
            unshape(c), unshape(f))


# -- the multi-start on small data -------------------------------------------------
# GaussianMixtureEM's "auto" start makes 14 short runs from hard partitions and
# continues 5-6 of them (em.py, _best_short_run). On a few hundred rows each run is
# ~10 passes of a few microseconds, and the Python around every start (its M-step in
# NumPy, the run's set-up, the collapse check) cost as much as the arithmetic. Here
# every start's M-step and run of a batch is one compiled call, which also releases
# the GIL, so that select_model's grid runs on several threads.


@njit(nogil=True, cache=True, error_model="numpy")
def _partition_sums(X, row_weights, rows, groups, centre, nk, sum_y):  # pragma: no cover - compiled
    # centre = the weighted mean of X[rows] (the plain mean where the weights sum to 0:
    # they then count as ones); nk and sum_y the groups' weights and weighted sums of
    # X[rows] - centre. Returns the total weight and whether the weights are ones.
    n_features = X.shape[1]
    total = 0.0
    for i in range(rows.shape[0]):
        total += row_weights[rows[i]]
    ones = not total > 0.0
    if ones:
        total = float(rows.shape[0])
    centre[:] = 0.0
    for i in range(rows.shape[0]):
        wi = 1.0 if ones else row_weights[rows[i]]
        for d in range(n_features):
            centre[d] += wi * X[rows[i], d]
    for d in range(n_features):
        centre[d] /= total
    nk[:] = 0.0
    sum_y[:] = 0.0
    for i in range(rows.shape[0]):
        r, k = rows[i], groups[i]
        wi = 1.0 if ones else row_weights[r]
        nk[k] += wi
        for d in range(n_features):
            sum_y[k, d] += wi * (X[r, d] - centre[d])
    return total, ones


@njit(nogil=True, cache=True, error_model="numpy")
def _matrix_partition_start(X, row_weights, rows, groups, reg_covar, pooled, w, m, c, f):  # pragma: no cover
    # GaussianMixtureEM._start_from for full (c, f: (K, D, D)) or tied ((1, D, D))
    # covariances: the M-step from the hard partition (rows, groups), whitened against
    # the identity at the rows' centre. Returns _matrix_m_step_kernel's code.
    n_components, n_features = m.shape
    centre, nk, sum_y = np.empty(n_features), np.empty(n_components), np.empty((n_components, n_features))
    total, ones = _partition_sums(X, row_weights, rows, groups, centre, nk, sum_y)
    second = np.zeros(c.shape)
    y = np.empty(n_features)
    for i in range(rows.shape[0]):
        r = rows[i]
        wi = 1.0 if ones else row_weights[r]
        s = 0 if pooled else groups[i]
        for d in range(n_features):
            y[d] = X[r, d] - centre[d]
        for e in range(n_features):
            for g in range(n_features):
                second[s, e, g] += wi * y[e] * y[g]
    identity = np.zeros(c.shape)
    for s in range(c.shape[0]):
        for d in range(n_features):
            identity[s, d, d] = 1.0
    mean_y = np.empty((n_components, n_features))
    for k in range(n_components):
        nk[k] += _NK_GUARD
        w[k] = nk[k] / total
        for d in range(n_features):
            mean_y[k, d] = sum_y[k, d] / nk[k]
    shift = np.empty((n_components, n_features))
    code = _matrix_m_step_kernel(nk, mean_y, second, identity, reg_covar, pooled, shift, c, f)
    for k in range(n_components):
        for d in range(n_features):
            m[k, d] = centre[d] + shift[k, d]
    return code


@njit(nogil=True, cache=True, error_model="numpy")
def _diagonal_partition_start(X, row_weights, rows, groups, reg_covar, pooled, w, m, c, f):  # pragma: no cover
    # _matrix_partition_start for diagonal (c, f: (K, D) variances and their
    # 1/sqrt) or spherical ((K, 1)) covariances; returns 2 where a variance is not positive.
    n_components, n_features = m.shape
    centre, nk, sum_y = np.empty(n_features), np.empty(n_components), np.empty((n_components, n_features))
    total, ones = _partition_sums(X, row_weights, rows, groups, centre, nk, sum_y)
    second = np.zeros((n_components, n_features))
    for i in range(rows.shape[0]):
        r, k = rows[i], groups[i]
        wi = 1.0 if ones else row_weights[r]
        for d in range(n_features):
            y = X[r, d] - centre[d]
            second[k, d] += wi * y * y
    # The step whitened against the identity at the centre (exact: divisions by 1).
    origin = np.empty((n_components, n_features))
    for k in range(n_components):
        origin[k] = centre
    return _diagonal_m_step(nk, sum_y, second, origin, np.ones((n_components, n_features)), reg_covar, pooled, total,
                            w, m, c, f)


@njit(nogil=True, cache=True, error_model="numpy")
def _partition_starts_kernel(X, row_weights, rows, groups, offsets, reg_covar, pooled, w, m, c, f,
                             codes):  # pragma: no cover - compiled
    # Start s from rows[offsets[s]:offsets[s + 1]] and their groups, into w[s], m[s],
    # c[s], f[s] (stacked as _em_loop takes one start's parameters); codes[s] as the
    # start kernels return them.
    for s in range(offsets.shape[0] - 1):
        a, b = offsets[s], offsets[s + 1]
        if f.ndim == 4:
            codes[s] = _matrix_partition_start(X, row_weights, rows[a:b], groups[a:b], reg_covar, pooled, w[s], m[s],
                                               c[s], f[s])
        else:
            codes[s] = _diagonal_partition_start(X, row_weights, rows[a:b], groups[a:b], reg_covar, pooled, w[s],
                                                 m[s], c[s], f[s])


@njit(nogil=True, cache=True, error_model="numpy")
def _em_runs_kernel(X, row_weights, total_weight, w, m, c, f, active, reg_covar, pooled, max_iter, tol, accelerate,
                    collapse_floor, degenerate_floor, lower_bounds, proper, codes, gram):  # pragma: no cover
    # _em_loop from every active start s of the stacked parameters, in start order,
    # replacing them with where it ended: lower_bounds[s], proper[s] (no covariance
    # below degenerate_floor) and codes[s] (1 or 2 for a failed run, whose
    # parameters are left as they were).
    for s in range(w.shape[0]):
        if not active[s]:
            continue
        code, lower_bound, passes, converged, history, nw, nm, nc, nf = _em_loop(
            X, row_weights, total_weight, w[s].copy(), m[s].copy(), c[s].copy(), f[s].copy(), reg_covar, pooled,
            max_iter, tol, -np.inf, accelerate, collapse_floor, gram)
        codes[s] = code
        if code != 0:
            continue
        w[s] = nw
        m[s] = nm
        c[s] = nc
        f[s] = nf
        lower_bounds[s] = lower_bound
        proper[s] = not _any_below_floor(nc, degenerate_floor)


def _stacked_shapes(n_starts: int, n_components: int, n_features: int, diagonal: bool, pooled: bool):
    """Shapes of the stacked (weights, means, covariances, factors) of ``n_starts`` starts, as _em_loop takes them."""
    if diagonal:
        matrix = (n_starts, n_components, 1 if pooled else n_features)
    else:
        matrix = (n_starts, 1 if pooled else n_components, n_features, n_features)
    return (n_starts, n_components), (n_starts, n_components, n_features), matrix, matrix


def partition_starts(X: np.ndarray, row_weights: np.ndarray, partitions: list, n_components: int, diagonal: bool,
                     pooled: bool, reg_covar: float):
    """Starting parameters from hard partitions, one compiled call for all of them.

    ``partitions`` is a list of ``(rows, groups)``; each start is the M-step from its
    partition as :meth:`bayesgmm.em.GaussianMixtureEM._start_from` computes it (equal
    to rounding). Returns ``(codes, weights, means, covariances, factors)``, the
    parameters stacked over the starts in :func:`em_runs`'s shapes (``diagonal`` and
    ``pooled`` as :func:`em_loop`'s), and ``codes[s]`` nonzero where start ``s`` has a
    covariance that is not positive definite.
    """
    sizes = [np.asarray(rows).size for rows, _ in partitions]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    rows = np.concatenate([np.asarray(r, dtype=np.int64) for r, _ in partitions])
    groups = np.concatenate([np.asarray(g, dtype=np.int64) for _, g in partitions])
    shapes = _stacked_shapes(len(partitions), n_components, X.shape[1], diagonal, pooled)
    w, m, c = (np.empty(shape) for shape in shapes[:3])
    f = np.zeros(shapes[3])
    codes = np.zeros(len(partitions), dtype=np.int64)
    _partition_starts_kernel(X, np.ascontiguousarray(row_weights, dtype=np.float64), rows, groups, offsets,
                             float(reg_covar), pooled, w, m, c, f, codes)
    return codes, w, m, c, f


def em_runs(X: np.ndarray, row_weights: np.ndarray, weights: np.ndarray, means: np.ndarray, covariances: np.ndarray,
            factors: np.ndarray, active: np.ndarray, reg_covar: float, pooled: bool, max_iter: int, tol: float,
            accelerate: bool, collapse_floor: float, degenerate_floor: float, ranking: bool = False):
    """:func:`em_loop` from each active start of stacked parameters (as :func:`partition_starts` returns them).

    One compiled call for the batch. The parameters are updated in place to where
    each run ended. Returns ``(codes, lower_bounds, proper)``: ``proper[s]`` where no
    covariance of run ``s`` is below ``degenerate_floor`` (the degenerate-component
    check), ``codes[s]`` nonzero (as :func:`matrix_em_step`'s) for a run whose pass
    failed. With ``ranking``, tied runs make the cheaper passes of
    ``_tied_pass_expanded_kernel``, good to rounding that loses a few digits where
    components lie far apart: enough to rank the multi-start's runs, not for a fit's result.
    """
    n_starts = weights.shape[0]
    lower_bounds = np.full(n_starts, -np.inf)
    proper = np.zeros(n_starts, dtype=np.bool_)
    codes = np.zeros(n_starts, dtype=np.int64)
    row_weights = np.ascontiguousarray(row_weights, dtype=np.float64)
    gram = _NO_GRAM
    if ranking and pooled and factors.ndim == 4:
        gram = np.ascontiguousarray((X * row_weights[:, None]).T @ X)
    _em_runs_kernel(X, row_weights, float(row_weights.sum()), weights, means, covariances, factors,
                    np.ascontiguousarray(active, dtype=np.bool_), float(reg_covar), pooled,
                    min(int(max_iter), np.iinfo(np.int64).max), float(tol), bool(accelerate), float(collapse_floor),
                    float(degenerate_floor), lower_bounds, proper, codes, gram)
    return codes, lower_bounds, proper
