"""The marginalised mixture log-likelihood as one PyTensor Op backed by numba kernels.

Written as a PyTensor graph, the likelihood is ~70 small nodes (forward
substitution, log-sum-exp and their gradients on (N, K) arrays); evaluating it
costs ~150 us per NUTS step for N=1000 and rewriting it adds about a second of
compile time to every fresh process. As one Op it is a single loop over rows that
evaluates the log-density and, in the gradient Op, accumulates the
responsibilities' weighted scores, about 10x faster per step. The kernels are
compiled by numba (a PyTensor dependency) and cached on disk next to this module.
They take the rows in blocks, transposed, so that every loop over rows vectorises,
including the log-sum-exp's exp and log (the vectorisable ones of
:mod:`bayesgmm._em_kernels`; numba's own are scalar libm calls): on Old Faithful
(272 rows, K=3, full) a log-density and its gradient take 7 us, against 18 us row
by row with libm and about 16 us for the graph compiled by PyTensor's numba backend.

Both Ops are registered with PyTensor's numba backend (with a cache key that
changes with this module's source), so nutpie, which compiles the model with that
backend, runs these kernels too. The symbolic version
(:func:`graph_mixture_logp`) stays for numpyro, whose JAX backend compiles the
graph itself; the tests check the two agree, and the gradient against finite
differences.

Parametrisation (the model's latent scale): x is standardised as
z = (x - centre) / scale; component k has weight w_k, mean mu_k and lower
Cholesky factor L_k (full: row-major packed lower triangle, D(D+1)/2 entries;
diag: the D standard deviations). For y = L_k^{-1}(z - mu_k) and
v = L_k^{-T} y, the score of log N(z | mu_k, L_k L_k^T) is v for mu_k and
tril(v y^T) - diag(1 / L_k,ii) for L_k.
"""

from __future__ import annotations

import hashlib

import numba
import numpy as np
import pytensor.tensor as pt
from pytensor.gradient import DisconnectedType, disconnected_type
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op

from ._em_kernels import _exp_nonpositive, _log_at_least_one

__all__ = ["MixtureLogLike", "NoisyFactor", "contiguous", "pointwise_log_likelihood"]

_LOG_2PI = float(np.log(2 * np.pi))
# Fast-math without "nnan"/"ninf", and NumPy's error model (x / 0 is inf, not an
# exception): a degenerate factor or an underflowed weight must give a -inf or NaN
# log-density, which the sampler rejects, not stop it.
_FASTMATH = {"nsz", "arcp", "contract", "reassoc"}


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _unpack(params, n_features, full):
    """(K, P) parameters to (K, D, D) lower-triangular factors."""
    K = params.shape[0]
    L = np.zeros((K, n_features, n_features))
    for k in range(K):
        p = 0
        for i in range(n_features):
            if full:
                for j in range(i + 1):
                    L[k, i, j] = params[k, p]
                    p += 1
            else:
                L[k, i, i] = params[k, i]
    return L


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=_FASTMATH, inline="always")
def _whiten(X, n, centre, inv_scale, mu, L, inv_diag, k, y):
    """y = L_k^{-1} ((x_n - centre) / scale - mu_k) by forward substitution; returns |y|^2."""
    maha = 0.0
    for i in range(L.shape[1]):
        acc = (X[n, i] - centre[i]) * inv_scale[i] - mu[k, i]
        for j in range(i):
            acc -= L[k, i, j] * y[j]
        y[i] = acc * inv_diag[k, i]
        maha += y[i] * y[i]
    return maha


# The kernels below call _em_kernels' exp and log. numba's own disk cache checks only the
# calling function's file, so after editing _em_kernels.py alone, delete
# bayesgmm/__pycache__/_likelihood.*.nb[ic] (a fresh install has none).
# Rows per block: the block's transposed rows, whitened residuals and log-densities
# stay in L1/L2 while every loop over the block's rows vectorises (as in _em_kernels).
_BLOCK = 128


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=_FASTMATH)
def _factor_terms(w, L, scale):
    """1 / L_k,ii (K, D) and log w_k - log|L_k| - sum(log scale) - D/2 log(2 pi) (K,)."""
    K, D = L.shape[0], L.shape[1]
    inv_diag = np.empty((K, D))
    terms = np.empty(K)
    const = -0.5 * D * _LOG_2PI
    for j in range(D):
        const -= np.log(scale[j])
    for k in range(K):
        terms[k] = np.log(w[k]) + const
        for i in range(D):
            inv_diag[k, i] = 1.0 / L[k, i, i]
            terms[k] -= np.log(L[k, i, i])
    return inv_diag, terms


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=_FASTMATH)
def _load_standardised(X, start, m, centre, inv_scale, x_t):
    """Rows ``start .. start + m`` of X, standardised, transposed into ``x_t`` (D, block)."""
    for r in range(m):
        for i in range(X.shape[1]):
            x_t[i, r] = (X[start + r, i] - centre[i]) * inv_scale[i]


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=_FASTMATH)
def _whiten_block(x_t, m, mu, L, inv_diag, k, y):
    """y[:, :m] = L_k^{-1} (x - mu_k) for the block's rows, by forward substitution (rows innermost)."""
    for i in range(L.shape[1]):
        for r in range(m):
            y[i, r] = x_t[i, r] - mu[k, i]
        for j in range(i):
            lij = L[k, i, j]
            for r in range(m):
                y[i, r] -= lij * y[j, r]
        for r in range(m):
            y[i, r] *= inv_diag[k, i]


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=_FASTMATH)
def _log_density(X, centre, scale, w, mu, L, out, resp):
    """Fills out[n] = log p(x_n) and resp[n, k] = p(k | x_n) for factors L (K, D, D).

    Rows go in blocks, transposed, so that the whitening, the log-sum-exp and its
    exp and log (the vectorisable ones of :mod:`bayesgmm._em_kernels`: numba's libm
    calls are scalar and were half of this function's time) run with the rows
    innermost. A row with zero density under every component gets -inf and
    responsibilities 0; a NaN parameter gives NaN.
    """
    N, D = X.shape
    K = w.shape[0]
    inv_scale = 1.0 / scale
    inv_diag, terms = _factor_terms(w, L, scale)
    x_t = np.empty((D, _BLOCK))
    y = np.empty((D, _BLOCK))
    log_prob = np.empty((K, _BLOCK))
    top = np.empty(_BLOCK)
    total = np.empty(_BLOCK)
    bits = np.empty(_BLOCK)
    for start in range(0, N, _BLOCK):
        m = min(_BLOCK, N - start)
        _load_standardised(X, start, m, centre, inv_scale, x_t)
        for k in range(K):
            _whiten_block(x_t, m, mu, L, inv_diag, k, y)
            for r in range(m):
                log_prob[k, r] = 0.0
            for i in range(D):
                for r in range(m):
                    log_prob[k, r] += y[i, r] * y[i, r]
            for r in range(m):
                log_prob[k, r] = terms[k] - 0.5 * log_prob[k, r]
        for r in range(m):
            top[r] = log_prob[0, r]
        for k in range(1, K):
            for r in range(m):
                top[r] = max(top[r], log_prob[k, r])
        irregular = 0  # a row whose largest term is -inf, +inf or NaN
        for r in range(m):
            irregular += not (np.abs(top[r]) < np.inf)
        for k in range(K):
            for r in range(m):
                irregular += log_prob[k, r] != log_prob[k, r]  # NaN ("nnan" is not among the fast-math flags)
        if irregular:
            _log_density_rows(log_prob, top, m, start, out, resp)
            continue
        for r in range(m):
            total[r] = 0.0
        for k in range(K):
            for r in range(m):
                log_prob[k, r] -= top[r]
            _exp_nonpositive(log_prob[k, :m], bits[:m])
            for r in range(m):
                total[r] += log_prob[k, r]
        _log_at_least_one(total[:m], bits[:m])  # each total is in [1, K]: its largest term is exp(0)
        for r in range(m):
            out[start + r] = top[r] + bits[r]
            total[r] = 1.0 / total[r]
        for r in range(m):
            for k in range(K):
                resp[start + r, k] = log_prob[k, r] * total[r]


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _log_density_rows(log_prob, top, m, start, out, resp):
    """The block's log-sum-exp row by row with libm, for rows with infinite or NaN terms."""
    K = log_prob.shape[0]
    for r in range(m):
        if np.isnan(top[r]) or np.isnan(log_prob[:, r]).any():
            out[start + r] = np.nan
            resp[start + r] = np.nan
        elif top[r] == -np.inf:  # zero density under every component
            out[start + r] = -np.inf
            resp[start + r] = 0.0
        elif top[r] == np.inf:  # a degenerate factor: no density to report
            out[start + r] = np.nan
            resp[start + r] = np.nan
        else:
            total = 0.0
            for k in range(K):
                resp[start + r, k] = np.exp(log_prob[k, r] - top[r])
                total += resp[start + r, k]
            for k in range(K):
                resp[start + r, k] /= total
            out[start + r] = top[r] + np.log(total)


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _log_likelihood(X, centre, scale, w, mu, params, full):
    """Row-wise log p(x_n) (N,) and responsibilities p(k | x_n) (N, K)."""
    out = np.empty(X.shape[0])
    resp = np.empty((X.shape[0], w.shape[0]))
    _log_density(X, centre, scale, w, mu, _unpack(params, X.shape[1], full), out, resp)
    return out, resp


@numba.njit(cache=True, nogil=True, error_model="numpy")
def pointwise_log_likelihood(X, weights, means, chol):
    """log p(x_n | draw s), shape (S, N), for weights (S, K), means (S, K, D), factors (S, K, D, D) in data units."""
    S, N, D = weights.shape[0], X.shape[0], X.shape[1]
    out = np.empty((S, N))
    resp = np.empty((N, weights.shape[1]))
    centre, scale = np.zeros(D), np.ones(D)
    for s in range(S):
        _log_density(X, centre, scale, weights[s], means[s], chol[s], out[s], resp)
    return out


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=_FASTMATH)
def _log_likelihood_grad(X, centre, scale, w, mu, params, full, log_p, resp, g):
    """Gradients of sum_n g_n log p(x_n) for w, mu and params, given log p and the responsibilities.

    Blocked like :func:`_log_density`: per component, the block's rows are whitened
    again (y = L^{-1}(z - mu)), back-substituted (v = L^{-T} y) and their weighted
    scores r v and r v y^T summed with the rows innermost.
    """
    N, D = X.shape
    K = w.shape[0]
    L = _unpack(params, D, full)
    inv_scale = 1.0 / scale
    inv_diag, _ = _factor_terms(w, L, scale)
    x_t = np.empty((D, _BLOCK))
    y = np.empty((D, _BLOCK))
    v = np.empty((D, _BLOCK))
    weight = np.empty(_BLOCK)
    resp_sum = np.zeros(K)
    grad_mu = np.zeros((K, D))
    grad_L = np.zeros((K, D, D))
    for start in range(0, N, _BLOCK):
        m = min(_BLOCK, N - start)
        _load_standardised(X, start, m, centre, inv_scale, x_t)
        for k in range(K):
            total = 0.0
            n_weighted = 0
            for r in range(m):
                weight[r] = g[start + r] * resp[start + r, k]
                total += weight[r]
                n_weighted += weight[r] != 0.0
            if n_weighted == 0:  # no row here belongs to k (nor could its residuals matter)
                continue
            resp_sum[k] += total
            _whiten_block(x_t, m, mu, L, inv_diag, k, y)
            for i in range(D - 1, -1, -1):  # back substitution: v = L^{-T} y
                for r in range(m):
                    v[i, r] = y[i, r]
                for j in range(i + 1, D):
                    lji = L[k, j, i]
                    for r in range(m):
                        v[i, r] -= lji * v[j, r]
                for r in range(m):
                    v[i, r] *= inv_diag[k, i]
            for i in range(D):
                for r in range(m):
                    # now r v; a row of weight 0 adds 0 even where its residual overflowed (inf * 0)
                    v[i, r] = v[i, r] * weight[r] if weight[r] != 0.0 else 0.0
                acc = 0.0
                for r in range(m):
                    acc += v[i, r]
                grad_mu[k, i] += acc
                for j in range(0 if full else i, i + 1):
                    acc = 0.0
                    for r in range(m):
                        acc += v[i, r] * y[j, r] if weight[r] != 0.0 else 0.0
                    grad_L[k, i, j] += acc
    grad_w = np.empty(K)
    grad_params = np.zeros(params.shape)
    for k in range(K):
        if w[k] > 0.0:
            grad_w[k] = resp_sum[k] / w[k]
        else:  # resp is exactly 0 here, but d log p / d w_k = N_k(x) / p(x) is still finite
            grad_w[k] = _empty_weight_grad(X, centre, scale, mu, L, inv_diag, k, log_p, g)
        p = 0
        for i in range(D):
            grad_L[k, i, i] -= resp_sum[k] * inv_diag[k, i]
            if full:
                for j in range(i + 1):
                    grad_params[k, p] = grad_L[k, i, j]
                    p += 1
            else:
                grad_params[k, i] = grad_L[k, i, i]
    return grad_w, grad_mu, grad_params


@numba.njit(cache=True, nogil=True, error_model="numpy", fastmath=_FASTMATH)
def _empty_weight_grad(X, centre, scale, mu, L, inv_diag, k, log_p, g):
    """d/dw_k of sum_n g_n log p(x_n) where w_k = 0: sum_n g_n N_k(x_n) / p(x_n)."""
    N, D = X.shape
    inv_scale = 1.0 / scale
    base = -0.5 * D * _LOG_2PI
    for j in range(D):
        base -= np.log(scale[j]) + np.log(L[k, j, j])
    y = np.empty(D)
    total = 0.0
    for n in range(N):
        total += g[n] * np.exp(base - 0.5 * _whiten(X, n, centre, inv_scale, mu, L, inv_diag, k, y) - log_p[n])
    return total


def contiguous(arrays):
    """The arrays as C-contiguous float64: one numba specialisation instead of one per memory layout."""
    return [np.ascontiguousarray(a, dtype=np.float64) for a in arrays]


def _as_float64(value):
    value = pt.as_tensor_variable(value)
    return value if value.dtype == "float64" else value.astype("float64")


class MixtureLogLike(Op):
    """Row-wise log p(x_n) of a Gaussian mixture; differentiable in w, mu and the factors.

    Inputs: X (N, D), centre (D,), scale (D,), w (K,), mu (K, D) and params
    (K, D(D+1)/2) packed Cholesky factors when ``full`` else (K, D) standard
    deviations, all but X on the standardised scale. Outputs: log p(x_n) (N,)
    and the responsibilities (N, K), which the gradient reuses (not
    differentiable themselves).
    """

    __props__ = ("full",)

    def __init__(self, full: bool):
        self.full = bool(full)

    def make_node(self, X, centre, scale, w, mu, params):
        inputs = [_as_float64(v) for v in (X, centre, scale, w, mu, params)]
        n_rows, n_components = inputs[0].type.shape[0], inputs[3].type.shape[0]
        log_p = pt.tensor(dtype="float64", shape=(n_rows,))
        resp = pt.tensor(dtype="float64", shape=(n_rows, n_components))
        return Apply(self, inputs, [log_p, resp])

    def perform(self, node, inputs, outputs):
        log_p, resp = _log_likelihood(*contiguous(inputs), self.full)
        outputs[0][0] = log_p
        outputs[1][0] = resp

    def infer_shape(self, fgraph, node, shapes):
        return [(shapes[0][0],), (shapes[0][0], shapes[3][0])]

    def connection_pattern(self, node):
        return [[False, False]] * 3 + [[True, False]] * 3

    def grad(self, inputs, output_grads):
        if not isinstance(output_grads[1].type, DisconnectedType):
            raise NotImplementedError("MixtureLogLike's responsibilities output is not differentiable.")
        # Calling the Op again gives an identical node, which PyTensor merges with the
        # forward one: the gradient reuses its outputs (no second exp pass).
        log_p, resp = self(*inputs)
        grad_w, grad_mu, grad_params = MixtureLogLikeGrad(self.full)(*inputs, log_p, resp, output_grads[0])
        return [disconnected_type(), disconnected_type(), disconnected_type(), grad_w, grad_mu, grad_params]


class MixtureLogLikeGrad(Op):
    """Vector-Jacobian product of :class:`MixtureLogLike` for w, mu and params."""

    __props__ = ("full",)

    def __init__(self, full: bool):
        self.full = bool(full)

    def make_node(self, X, centre, scale, w, mu, params, log_p, resp, g):
        inputs = [_as_float64(v) for v in (X, centre, scale, w, mu, params, log_p, resp, g)]
        outputs = [inputs[i].type() for i in (3, 4, 5)]
        return Apply(self, inputs, outputs)

    def perform(self, node, inputs, outputs):
        X, centre, scale, w, mu, params, log_p, resp, g = contiguous(inputs)
        grads = _log_likelihood_grad(X, centre, scale, w, mu, params, self.full, log_p, resp, g)
        for storage, value in zip(outputs, grads):
            storage[0] = value

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[3], shapes[4], shapes[5]]


# ------------------------------------------------------------ rounding error
@numba.njit(cache=True, nogil=True, error_model="numpy")
def _noisy_factor(params, noise):
    """Packed factors (K, P) of ``L_k L_k' + diag(noise)``, from packed factors L_k (K, P) and noise (D,).

    Row-major packed lower triangles (entry (i, j) at i(i+1)/2 + j). Loops, not
    matrix products: for the D of a mixture, BLAS calls and temporaries would cost
    more than the arithmetic. A variance that is not positive gives NaN (the sampler
    rejects the point).
    """
    K, D = params.shape[0], noise.shape[0]
    out = np.empty_like(params)
    for k in range(K):
        L, C = params[k], out[k]
        for i in range(D):  # Cholesky-Banachiewicz on S = L L' + diag(noise), S formed on the fly
            row_i = i * (i + 1) // 2
            for j in range(i + 1):
                row_j = j * (j + 1) // 2
                s = noise[i] if i == j else 0.0
                for m in range(j + 1):
                    s += L[row_i + m] * L[row_j + m]
                for m in range(j):
                    s -= C[row_i + m] * C[row_j + m]
                if i == j:
                    C[row_i + i] = np.sqrt(s) if s > 0 else np.nan
                else:
                    C[row_i + j] = s / C[row_j + j]
    return out


@numba.njit(cache=True, nogil=True, error_model="numpy")
def _noisy_factor_grad(params, noise, factor, g):
    """Vector-Jacobian product of :func:`_noisy_factor` for params (K, P) and noise (D,).

    With C the output factor and G = dl/dC (lower), the gradient in the symmetric
    matrix S = C C' is M = C^{-T} Phi(C' G) C^{-1} (Phi: lower triangle, diagonal
    halved; Murray 2016), read as dl = <M, dS>. S = L L' + diag(noise) then
    gives tril((M + M') L) for L and diag(M) for the noise.
    """
    K, D = params.shape[0], noise.shape[0]
    grad_params = np.zeros_like(params)
    grad_noise = np.zeros(D)
    phi, c_inv, t, m_full = np.zeros((D, D)), np.zeros((D, D)), np.zeros((D, D)), np.zeros((D, D))
    for k in range(K):
        L, C, G = params[k], factor[k], g[k]
        for i in range(D):  # Phi(C' G): (C' G)_ij = sum_{m >= i} C_mi G_mj, for j <= i
            for j in range(i + 1):
                s = 0.0
                for m in range(i, D):
                    s += C[m * (m + 1) // 2 + i] * G[m * (m + 1) // 2 + j]
                phi[i, j] = 0.5 * s if i == j else s
        for j in range(D):  # C^{-1}, lower, column by column
            for i in range(j, D):
                s = 1.0 if i == j else 0.0
                for m in range(j, i):
                    s -= C[i * (i + 1) // 2 + m] * c_inv[m, j]
                c_inv[i, j] = s / C[i * (i + 1) // 2 + i]
        for i in range(D):  # t = Phi C^{-1}, lower
            for b in range(i + 1):
                s = 0.0
                for j in range(b, i + 1):
                    s += phi[i, j] * c_inv[j, b]
                t[i, b] = s
        for a in range(D):  # M = C^{-T} t
            for b in range(D):
                s = 0.0
                for i in range(max(a, b), D):
                    s += c_inv[i, a] * t[i, b]
                m_full[a, b] = s
        for i in range(D):  # tril((M + M') L); diag(M) for the noise
            grad_noise[i] += m_full[i, i]
            for j in range(i + 1):
                s = 0.0
                for m in range(j, D):
                    s += (m_full[i, m] + m_full[m, i]) * L[m * (m + 1) // 2 + j]
                grad_params[k, i * (i + 1) // 2 + j] = s
    return grad_params, grad_noise


class NoisyFactor(Op):
    """Packed Cholesky factors of ``L_k L_k' + diag(noise)``: the observed values' covariances.

    Inputs: params (K, D(D+1)/2) packed lower factors L_k, noise (D,) the rounding
    error's variance per feature. Output: (K, D(D+1)/2). Differentiable in both.
    (As PyTensor's batched Cholesky it would run through Python in the C backend,
    ~50x slower per gradient.)
    """

    __props__ = ()

    def make_node(self, params, noise):
        inputs = [_as_float64(params), _as_float64(noise)]
        return Apply(self, inputs, [inputs[0].type()])

    def perform(self, node, inputs, outputs):
        outputs[0][0] = _noisy_factor(*contiguous(inputs))

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[0]]

    def grad(self, inputs, output_grads):
        factor = self(*inputs)
        grad_params, grad_noise = NoisyFactorGrad()(*inputs, factor, output_grads[0])
        return [grad_params, grad_noise]


class NoisyFactorGrad(Op):
    """Vector-Jacobian product of :class:`NoisyFactor`."""

    __props__ = ()

    def make_node(self, params, noise, factor, g):
        inputs = [_as_float64(v) for v in (params, noise, factor, g)]
        return Apply(self, inputs, [inputs[0].type(), inputs[1].type()])

    def perform(self, node, inputs, outputs):
        grad_params, grad_noise = _noisy_factor_grad(*contiguous(inputs))
        outputs[0][0] = grad_params
        outputs[1][0] = grad_noise

    def infer_shape(self, fgraph, node, shapes):
        return [shapes[0], shapes[1]]


def _kernel_source_version() -> int:
    """A number that changes with this module's or the exp/log kernels' source.

    PyTensor's numba cache keys an Op's compiled function on the Op's type, its
    props and this number, not on the code it calls: without it, an edited kernel
    would keep being served from the cache.
    """
    from pathlib import Path

    from . import _em_kernels

    try:
        source = Path(__file__).read_bytes() + Path(_em_kernels.__file__).read_bytes()
    except OSError:  # no source files (e.g. a zipped install): the installed version instead
        from importlib.metadata import PackageNotFoundError, version

        try:
            source = version("bayesgmm").encode()
        except PackageNotFoundError:
            source = b"unknown"

    return int(hashlib.sha256(source).hexdigest()[:15], 16)


def _register_numba_kernels() -> None:
    """Run both Ops' kernels in PyTensor's numba backend (nutpie compiles the model with it).

    Without a registration PyTensor's numba backend calls ``perform`` through Python
    (object mode) and cannot cache the model's function on disk.
    """
    from pytensor.link.numba.dispatch.basic import register_funcify_default_op_cache_key

    version = _kernel_source_version()

    @register_funcify_default_op_cache_key(MixtureLogLike)
    def _funcify_log_like(op, node=None, **kwargs):
        full = op.full

        @numba.njit(nogil=True)
        def mixture_log_like(X, centre, scale, w, mu, params):
            return _log_likelihood(np.ascontiguousarray(X), np.ascontiguousarray(centre),
                                   np.ascontiguousarray(scale), np.ascontiguousarray(w),
                                   np.ascontiguousarray(mu), np.ascontiguousarray(params), full)

        return mixture_log_like, version

    @register_funcify_default_op_cache_key(MixtureLogLikeGrad)
    def _funcify_log_like_grad(op, node=None, **kwargs):
        full = op.full

        @numba.njit(nogil=True)
        def mixture_log_like_grad(X, centre, scale, w, mu, params, log_p, resp, g):
            return _log_likelihood_grad(np.ascontiguousarray(X), np.ascontiguousarray(centre),
                                        np.ascontiguousarray(scale), np.ascontiguousarray(w),
                                        np.ascontiguousarray(mu), np.ascontiguousarray(params), full,
                                        np.ascontiguousarray(log_p), np.ascontiguousarray(resp),
                                        np.ascontiguousarray(g))

        return mixture_log_like_grad, version

    @register_funcify_default_op_cache_key(NoisyFactor)
    def _funcify_noisy_factor(op, node=None, **kwargs):
        @numba.njit(nogil=True)
        def noisy_factor(params, noise):
            return _noisy_factor(np.ascontiguousarray(params), np.ascontiguousarray(noise))

        return noisy_factor, version

    @register_funcify_default_op_cache_key(NoisyFactorGrad)
    def _funcify_noisy_factor_grad(op, node=None, **kwargs):
        @numba.njit(nogil=True)
        def noisy_factor_grad(params, noise, factor, g):
            return _noisy_factor_grad(np.ascontiguousarray(params), np.ascontiguousarray(noise),
                                      np.ascontiguousarray(factor), np.ascontiguousarray(g))

        return noisy_factor_grad, version


_register_numba_kernels()


def graph_mixture_logp(Z, w, mu, params, full: bool, n_features: int):
    """The same log-density as :class:`MixtureLogLike`, as plain PyTensor operations.

    For numpyro, whose JAX backend compiles the graph itself and cannot run the
    kernel Op. ``Z`` (N, D) standardised rows, ``w``
    (K,), ``mu`` (K, D), ``params`` (K, P): packed lower Cholesky factors
    (``full``) or sds; ``n_features`` is D. Returns the (N,) log-densities.
    """
    import pytensor.tensor as pt

    D = n_features
    packed_index = {(i, j): p for p, (i, j) in enumerate(zip(*np.tril_indices(D)))}
    # Whiten by forward substitution, y = L^{-1} (z - mu), feature by feature on
    # (N, K) arrays: only elementwise ops, which PyTensor fuses (no per-component
    # triangular solves, no matrix assembly) -- the reason this is fast.
    maha, log_det, ys = 0.0, 0.0, []
    for i in range(D):
        resid = Z[:, i][:, None] - mu[:, i][None, :]
        if full:
            for j in range(i):
                resid = resid - params[:, packed_index[i, j]][None, :] * ys[j]
            diag = params[:, packed_index[i, i]]
        else:
            diag = params[:, i]
        y = resid / diag[None, :]
        ys.append(y)
        maha = maha + y**2
        log_det = log_det + pt.log(diag)
    log_prob = -0.5 * maha - log_det[None, :] + pt.log(w)[None, :] - 0.5 * D * _LOG_2PI
    return pt.logsumexp(log_prob, axis=1)
