"""Maximum-likelihood Gaussian mixtures fitted by EM.

The fit loop mirrors scikit-learn's ``BaseMixture`` (same hooks, same stopping
rule, same conventions for ``lower_bound_`` and ``n_iter_``) so results agree
with ``sklearn.mixture.GaussianMixture`` to rounding. What differs is how each
iteration touches the data: one pass over row chunks computes the log-densities,
the responsibilities and the M-step's sufficient statistics together, so no
(N, K) or (N, K, D) array is ever held and every temporary stays in cache.
"""

from __future__ import annotations

import contextlib
import functools
import os
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin, DensityMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data
from threadpoolctl import ThreadpoolController

from ._validation import (
    check_finite_rows,
    check_n_components,
    check_numeric_columns,
    check_sample_weight,
    is_dask_collection,
)
from .covariance import _CHOLESKY_ERROR, CovarianceType, get_covariance_type
from .initialization import INITIALIZERS, PARTITIONS, shared_data_digest, with_one_hot
from .scaling import FeatureScaling

__all__ = ["GaussianMixtureEM", "DegenerateFitWarning"]

_LOG_2PI = np.log(2.0 * np.pi)
# The "auto" start: short runs from these starts (and the hierarchical one), each of
# at most this many EM passes on at most this many rows.
_SHORT_RUN_STARTS = ("kmeans",) * 4 + ("k-means++",) * 8
_SHORT_RUN_PASSES = 20
_SHORT_RUN_KEEP = 4
_SHORT_RUN_ROWS = 10_000
_COMPILED_RUN_ROWS = 10_000
# Short runs stop at scikit-learn's default tolerance (their ranking is settled by
# then); the leading ones then run to ``tol``, because a start that looks proper at a
# looser tolerance can still collapse onto the reg_covar floor (faithful, K=8 diag,
# when they stopped at 1e-4).
_SHORT_RUN_TOL = 1e-3
# Runs of the multi-start stop at the first collapsed component: the ranking puts them
# after every proper run whatever they do next, and a fit where all collapse continues
# from the best of them on all rows anyway.
_SHORT_RUN_STOP_COLLAPSED = True
_FINAL_RUN_STOP_COLLAPSED = True
INIT_PARAMS = ("auto", *INITIALIZERS)
# Bytes of the (rows, K, D) whitened block a chunk may hold.
_CHUNK_BYTES = 2 * 1024 * 1024


def _raise_for_pass_code(code: int) -> None:
    """The error of a compiled pass's code (see :func:`bayesgmm._em_kernels.matrix_em_step`), if any."""
    if code == 1:
        raise np.linalg.LinAlgError("Singular matrix")
    if code == 2:
        raise ValueError(_CHOLESKY_ERROR)


def _log_sum_exp_rows(log_prob: np.ndarray) -> np.ndarray:
    """``log(sum(exp(log_prob), axis=1))`` without overflow, as SciPy's ``logsumexp``.

    Written out because SciPy's per-call overhead was a third of a fit's final
    E-step on small data (0.5 vs 0.17 ms on 1,797 x 9), paid twice per fit of
    ``select_model``'s grid (the labels, then the criteria).
    """
    top = log_prob.max(axis=1)
    top[~np.isfinite(top)] = 0.0  # a row of -inf stays -inf, +inf and NaN propagate
    with np.errstate(divide="ignore", invalid="ignore"):  # those rows, silently, as SciPy
        return top + np.log(np.exp(log_prob - top[:, None]).sum(axis=1))


def _raise_first_error(runs: list, message: str) -> None:
    """Raise the first error among ``runs`` (failed EM runs), else a ValueError with ``message``."""
    error = next((run for run in runs if isinstance(run, Exception)), None)
    if error is not None:
        raise error
    raise ValueError(message)


def _first_best(runs: list, tol: float):
    """The first of ``(key, params)`` runs whose ``key = (proper, log-likelihood)`` is the best to within ``tol``.

    Several starts often reach the same optimum, with its components in different
    orders; their log-likelihoods then differ only by rounding, which changes with the
    units of the data and so must not decide which labelling a fit reports.
    """
    proper, best = max(run[0] for run in runs)
    return next(run for run in runs if run[0][0] == proper and run[0][1] >= best - tol)


class DegenerateFitWarning(UserWarning):
    """A component collapsed onto a lower-dimensional set (a spurious maximiser)."""


def _init_one_group(X, n_components, sample_weight, rng):
    """Every row in the single component (its maximum-likelihood start, whatever the random state)."""
    return np.arange(X.shape[0]), np.ones((X.shape[0], 1), dtype=X.dtype)


@dataclass
class SufficientStats:
    """Weighted sufficient statistics of one E-step, in whitened coordinates."""

    nk: np.ndarray  # (K,)
    sum_y: np.ndarray  # (K, D)
    second: np.ndarray  # (K, D, D), (K, D), or (D, D) for tied (summed over components)
    log_likelihood: float  # sum_n w_n log p(x_n)
    total_weight: float

    def __add__(self, other: SufficientStats) -> SufficientStats:
        return SufficientStats(
            self.nk + other.nk,
            self.sum_y + other.sum_y,
            self.second + other.second,
            self.log_likelihood + other.log_likelihood,
            self.total_weight + other.total_weight,
        )


@dataclass
class _Params:
    """Mixture parameters on the standardised scale, where every fit computes."""

    weights: np.ndarray  # (K,)
    means: np.ndarray  # (K, D)
    covariances: np.ndarray  # shaped as covariances_
    precisions_cholesky: np.ndarray  # shaped as covariances_


@dataclass
class _Pass:
    """What every chunk of one pass over the data shares."""

    bounds: list
    rows: int
    shape: tuple[int, int]  # (K, D)
    prepared: tuple
    log_norm: np.ndarray | None


# Per-thread scratch arrays, reused across chunks, passes and estimators: fresh
# multi-megabyte temporaries for every chunk cost more than the arithmetic (the
# allocator returns them to the OS and page-faults them in again).
_SCRATCH = threading.local()


def _scratch(rows: int, shape: tuple[int, int], dtype):
    key = (rows, shape, np.dtype(dtype))
    if getattr(_SCRATCH, "key", None) != key:
        K, D = shape
        _SCRATCH.key = key
        _SCRATCH.y = np.empty((rows, K, D), dtype=dtype)
        _SCRATCH.weighted = np.empty((rows, K, D), dtype=dtype)
        _SCRATCH.log_prob = np.empty((rows, K), dtype=dtype)
    return _SCRATCH


def _chunk_bounds(n_samples: int, n_components: int, n_features: int, itemsize: int):
    rows = max(256, _CHUNK_BYTES // max(1, n_components * n_features * itemsize))
    return [(s, min(s + rows, n_samples)) for s in range(0, n_samples, rows)]


def _map_chunks(func, bounds, n_threads: int):
    """Apply ``func(start, stop)`` to every chunk, on threads when it pays.

    NumPy and BLAS release the GIL, so chunks run in parallel; BLAS itself is
    limited to one thread meanwhile to avoid oversubscription.
    """
    if n_threads <= 1 or len(bounds) <= 1:
        return [func(a, b) for a, b in bounds]
    with _threadpool_controller().limit(limits=1, user_api="blas"):
        with ThreadPoolExecutor(max_workers=n_threads) as pool:
            return list(pool.map(lambda ab: func(*ab), bounds))


def _single_threaded_blas(method):
    """Run ``method`` with BLAS and OpenMP on one thread.

    EM's BLAS calls are D x D factorisations and per-chunk products; threaded BLAS
    and OpenMP only add overhead there, and spin badly when the cores are busy
    (30 x 30 triangular solves took 1.6 ms instead of 60 us, and scikit-learn's
    k-means, which the starts used before :mod:`bayesgmm._kmeans`, 160 ms on 272
    rows). Large passes run on our own threads.
    """

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        with single_threaded_blas():
            return method(*args, **kwargs)

    return wrapper


@contextlib.contextmanager
def single_threaded_blas():
    """BLAS and OpenMP limited to one thread while any thread is inside this block.

    BLAS's limit is process-wide, so it is counted across threads: the first to enter
    sets it and the last to leave restores it. Entering and leaving one limit per
    thread would interleave (select_model fits on several threads) and could leave
    BLAS limited after the fits. (OpenMP's limit applies to the thread that set it;
    no fit uses OpenMP.)
    """
    with _BLAS_LIMIT_LOCK:
        if _BLAS_LIMIT["depth"] == 0:
            _BLAS_LIMIT["limiter"] = _threadpool_controller().limit(limits=1)
        _BLAS_LIMIT["depth"] += 1
    try:
        yield
    finally:
        with _BLAS_LIMIT_LOCK:
            _BLAS_LIMIT["depth"] -= 1
            if _BLAS_LIMIT["depth"] == 0:
                _BLAS_LIMIT.pop("limiter").restore_original_limits()


_BLAS_LIMIT_LOCK = threading.Lock()
_BLAS_LIMIT: dict = {"depth": 0}


@functools.cache
def _threadpool_controller() -> ThreadpoolController:
    # Built once: each threadpool_limits() scans every loaded library again (about
    # 3.5 ms, more than a whole EM fit on a small dataset, and select_model makes dozens).
    return ThreadpoolController()


class GaussianMixtureEM(DensityMixin, ClusterMixin, BaseEstimator):
    """Gaussian mixture fitted by maximum likelihood with the EM algorithm.

    Parameters
    ----------
    n_components : int, default=1
        Number of mixture components.
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
        Covariance structure: one full matrix per component, one matrix shared by
        all, one diagonal per component, or one variance per component. As every
        structure is fitted on standardised features, ``spherical`` is spherical
        on that scale: one variance per component in units of each feature's
        variance (in data units, ``covariances_[k] * scaling_.scale**2`` on the
        diagonal), so that it too does not depend on the units.
    tol : float, default=1e-6
        EM stops when the per-sample average log-likelihood gains less than ``tol``.
        Tighter than scikit-learn's 1e-3, which can stop tens of log-likelihood
        units short of the optimum (raw wine, K=4 diag: -3219.6 vs -3190.9) and so
        mislead criteria compared at the scale of one unit; acceleration keeps
        the extra passes cheap. :func:`select_model` uses the same defaults.
    reg_covar : float, default=1e-6
        Added to the diagonal of every covariance so that they stay positive definite,
        as a fraction of each feature's variance: the fit runs on the data centred
        and scaled per feature (``scaling_``), so ``reg_covar`` means the same
        whatever the units. A component whose variance reaches about twice this
        floor is reported as degenerate.
    max_iter : int, default=1000
        Maximum EM passes over the data per initialisation.
    n_init : int, default=1
        Number of initialisations; the best non-degenerate one is kept.
    init_params : {"auto", "hierarchical", "kmeans", "k-means++", "random", \
"random_from_data"}, default="auto"
        How the first responsibilities are chosen.

        ``"auto"`` (default) is Biernacki, Celeux & Govaert's (2003) "small EM":
        short accelerated EM runs (at most 20 passes, on at most 10,000 rows, stopped
        where a component collapses) from many
        starts -- the hierarchical partition, the best of 10 k-means runs, 4 more
        k-means partitions and 8 k-means++ seeds -- after which the hierarchical
        start, the best-of-10 k-means start and the four leading random starts run
        to convergence and the best non-degenerate one is kept. No single start
        type reaches the best optimum on real data (iris K=3 full: hierarchical
        -186.6 where k-means reaches -180.2; standardised breast_cancer K=2 diag:
        k-means collapses where k-means++ does not); together they reach at least
        the best of the hierarchical, 10-start k-means and scikit-learn's default
        starts on all 80 real-data fits of ``benchmarks/bench_starts.py`` (EM from
        the best of 10 k-means partitions, as scikit-learn's k-means start; 3 of
        the 80 end 0.4-40 log-likelihood units below a start mixing k-means means
        with this start's weights and covariances), in a tenth of the time of
        scikit-learn's ``n_init=10``. With ``K=1`` (one
        optimum) it is a single M-step on all rows.

        ``"hierarchical"`` is model-based agglomerative clustering in the spirit of
        mclust: on the centred and sphered data (mclust's ``"SVD"`` transform),
        pairs of groups are merged so as to lose the least Gaussian classification
        likelihood (Ward's criterion, i.e. mclust's ``EII`` model); above 2,000
        rows it runs on a random subsample. The tree is built once per dataset and
        cut for every K and covariance type. Further initialisations
        (``n_init > 1``) use other random subsamples when the data are large and
        k-means++ seeds otherwise.
    weights_init : array-like of shape (n_components,), default=None
        Starting weights; overrides those from ``init_params``.
    means_init : array-like of shape (n_components, n_features), default=None
        Starting means.
    precisions_init : array-like, default=None
        Starting precisions (inverse covariances), shaped and in the units of
        ``covariances_``.
    random_state : int, RandomState instance or None, default=None
        Seed for the initialisations and for :meth:`sample`.
    warm_start : bool, default=False
        If True, ``fit`` starts from the last solution (``n_init`` is then ignored).
    verbose : int, default=0
        Print the lower bound every ``verbose_interval`` iterations when > 0.
    verbose_interval : int, default=10
        Iterations between two progress lines.
    n_threads : int or None, default=None
        Threads for the chunked E/M pass (None: all cores).
    acceleration : {"squarem", None}, default="squarem"
        Accelerate EM by squared extrapolation (SQUAREM, Varadhan & Roland 2008)
        with a monotonicity safeguard: extrapolated points that lose likelihood are
        discarded. It reaches the same optimum as plain EM in fewer passes over
        the data. ``max_iter`` and ``n_iter_`` count passes (E-steps) either way.

    Attributes
    ----------
    weights_ : ndarray of shape (n_components,)
    means_ : ndarray of shape (n_components, n_features)
    covariances_ : ndarray
        (K, D, D) for full, (D, D) for tied, (K, D) for diag, in data units; (K,)
        for spherical, relative to each feature's variance (see ``covariance_type``).
    full_covariances_ : ndarray of shape (n_components, n_features, n_features)
        Every covariance as a full matrix in data units, for any ``covariance_type``.
    precisions_ : ndarray
        Inverses of ``covariances_``, same shape.
    precisions_cholesky_ : ndarray
        Upper-triangular ``P`` with ``P @ P.T == precision`` (diagonal or scalar
        for diag/spherical), same shape.
    converged_ : bool
    n_iter_ : int
        EM iterations of the best initialisation.
    lower_bound_ : float
        Average log-likelihood per sample of the best initialisation (as in
        scikit-learn: the value at the start of its last iteration).
    lower_bounds_ : list of float
        Average log-likelihood of every pass on the path taken by the best
        initialisation (extrapolations that lost likelihood are left out), so it
        never decreases.
    degenerate_ : bool
        True if a component collapsed (smallest covariance eigenvalue below twice
        ``reg_covar``). Such a fit is a spurious maximiser of the likelihood.
    degenerate_components_ : ndarray of int
        Indices of the collapsed components.
    labels_ : ndarray of shape (n_samples,)
        Most probable component of each training row.
    n_features_in_ : int
    scaling_ : FeatureScaling
        Per-feature centre and standard deviation the fit was computed on. Results
        are equivariant under rescaling and shifting of any feature.

    Examples
    --------
    >>> from bayesgmm import GaussianMixtureEM
    >>> from bayesgmm.datasets import load_faithful
    >>> X = load_faithful().to_numpy()
    >>> gm = GaussianMixtureEM(n_components=2, random_state=0).fit(X)
    >>> gm.means_.round(1)
    array([[ 4.3, 80. ],
           [ 2. , 54.5]])
    """

    def __init__(
        self,
        n_components: int = 1,
        *,
        covariance_type: str = "full",
        tol: float = 1e-6,
        reg_covar: float = 1e-6,
        max_iter: int = 1000,
        n_init: int = 1,
        init_params: str = "auto",
        weights_init=None,
        means_init=None,
        precisions_init=None,
        random_state=None,
        warm_start: bool = False,
        verbose: int = 0,
        verbose_interval: int = 10,
        n_threads: int | None = None,
        acceleration: str | None = "squarem",
    ):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.n_threads = n_threads
        self.acceleration = acceleration

    # ------------------------------------------------------------------ checks
    def validate_hyperparameters(self, n_samples: int | None, n_features: int) -> CovarianceType:
        """Validate every hyper-parameter in one place; return the covariance object.

        A hook for out-of-core fitting (:mod:`bayesgmm._dask`) and :func:`select_model`;
        ``n_samples`` is None when the number of rows is not known yet.
        """
        check_n_components(self.n_components, n_samples)
        cov = get_covariance_type(self.covariance_type)
        if self.acceleration not in (None, "squarem"):
            raise ValueError(f"acceleration must be None or 'squarem', got {self.acceleration!r}.")
        if self.init_params not in INIT_PARAMS:
            raise ValueError(
                f"init_params must be one of {sorted(INIT_PARAMS)}, got {self.init_params!r}."
            )
        for name in ("tol", "reg_covar"):
            value = getattr(self, name)
            if not isinstance(value, (int, float, np.number)) or isinstance(value, bool):
                raise TypeError(f"{name} must be a non-negative finite number, got {value!r}.")
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a non-negative finite number, got {value!r}.")
        for name, low in (("max_iter", 0), ("n_init", 1), ("verbose_interval", 1)):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool):
                raise TypeError(f"{name} must be an integer >= {low}, got {value!r}.")
            if value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}.")
        for name in ("warm_start",):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TypeError(f"{name} must be True or False, got {getattr(self, name)!r}.")
        if isinstance(self.verbose, bool) or not isinstance(self.verbose, (int, np.integer)) or self.verbose < 0:
            raise ValueError(f"verbose must be an integer >= 0, got {self.verbose!r}.")
        if self.n_threads is not None and (
            not isinstance(self.n_threads, (int, np.integer)) or isinstance(self.n_threads, bool) or self.n_threads < 1
        ):
            raise ValueError(f"n_threads must be None or a positive integer, got {self.n_threads!r}.")
        try:
            check_random_state(self.random_state)
        except (ValueError, TypeError):
            raise ValueError(
                "random_state must be None, an integer in [0, 2**32 - 1] or a numpy RandomState, "
                f"got {self.random_state!r}."
            ) from None
        K = self.n_components
        if self.weights_init is not None:
            w = np.asarray(self.weights_init, dtype=float)
            if w.shape != (K,):
                raise ValueError(f"weights_init must have shape ({K},), got {w.shape}.")
            if not np.all(np.isfinite(w)) or np.any(w < 0) or np.any(w > 1):
                raise ValueError("weights_init must contain values in [0, 1].")
            if not np.isclose(w.sum(), 1.0, rtol=0, atol=1e-6):
                raise ValueError(f"weights_init must sum to 1, got {w.sum():.6f}.")
        if self.means_init is not None:
            m = np.asarray(self.means_init, dtype=float)
            if m.shape != (K, n_features):
                raise ValueError(f"means_init must have shape ({K}, {n_features}), got {m.shape}.")
            if not np.all(np.isfinite(m)):
                raise ValueError("means_init contains NaN or infinite values.")
        if self.precisions_init is not None:
            cov.validate_precisions(self.precisions_init, K, n_features)
        return cov

    def _threads(self) -> int:
        return self.n_threads or os.cpu_count() or 1

    # ------------------------------------------------------------- the pass
    def _log_prob_chunk(self, Xc: np.ndarray, pass_info: _Pass):
        """``log w_k + log N(x | k)`` for a chunk, plus the whitened residuals (views of scratch)."""
        ws = _scratch(pass_info.rows, pass_info.shape, Xc.dtype)
        n = Xc.shape[0]
        y = self._cov.whiten(Xc, pass_info.prepared, out=ws.y[:n])
        log_prob = np.einsum("nkd,nkd->nk", y, y, out=ws.log_prob[:n])
        log_prob *= -0.5
        log_prob += pass_info.log_norm
        return log_prob, y

    @staticmethod
    def _normalize_in_place(log_prob: np.ndarray) -> np.ndarray:
        """Turn log-probabilities into responsibilities in place; return log p(x)."""
        top = log_prob.max(axis=1)
        log_prob -= top[:, None]
        resp = np.exp(log_prob, out=log_prob)
        total = resp.sum(axis=1)
        resp /= total[:, None]
        return top + np.log(total)

    def _begin_pass(self, X: np.ndarray, params: _Params, with_log_norm: bool = True) -> _Pass:
        n, d = X.shape
        K = params.means.shape[0]
        log_norm = None
        if with_log_norm:
            log_det = self._cov.log_det_cholesky(params.precisions_cholesky, d)
            with np.errstate(divide="ignore"):  # an empty component has log-weight -inf
                log_norm = (np.log(params.weights) - 0.5 * d * _LOG_2PI + log_det).astype(X.dtype)
        bounds = _chunk_bounds(n, K, d, X.dtype.itemsize)
        prepared = self._cov.prepare_whitening(params.means, params.precisions_cholesky, X.dtype)
        return _Pass(bounds, bounds[0][1] - bounds[0][0], (K, d), prepared, log_norm)

    def accumulate(self, X, sample_weight, params: _Params, resp_rows=None) -> SufficientStats:
        """One pass: E-step responsibilities (or given ones) and whitened statistics.

        A hook for out-of-core fitting (:mod:`bayesgmm._dask` calls it on every block
        of a :meth:`block_worker`); ``X`` is standardised.
        """
        if is_dask_collection(X):  # a reduction of this very pass over the blocks
            from ._dask import accumulate

            return accumulate(self, X, sample_weight, params, resp_rows)
        info = self._begin_pass(X, params, with_log_norm=resp_rows is None)
        unweighted = bool(np.all(sample_weight == 1))

        def work(a: int, b: int) -> SufficientStats:
            Xc, wc = X[a:b], sample_weight[a:b]
            if resp_rows is None:
                fused = self._cov.fused_pass(Xc, wc, info.prepared, info.log_norm)
                if fused is not None:
                    return SufficientStats(*fused, float(wc.sum(dtype=np.float64)))
            ws = _scratch(info.rows, info.shape, X.dtype)  # the generic pass's (rows, K, D) arrays
            if resp_rows is None:
                resp, y = self._log_prob_chunk(Xc, info)
                log_px = self._normalize_in_place(resp)
                loglik = float(log_px.sum(dtype=np.float64) if unweighted else wc @ log_px)
            else:
                y = self._cov.whiten(Xc, info.prepared, out=ws.y[: b - a])
                resp = resp_rows[a:b]
                loglik = 0.0
            if not unweighted:
                resp = resp * wc[:, None]
            weighted = np.multiply(y, resp[:, :, None], out=ws.weighted[: b - a])
            return SufficientStats(
                resp.sum(axis=0, dtype=np.float64),
                weighted.sum(axis=0, dtype=np.float64),
                self._cov.second_moment(weighted, y).astype(np.float64),
                loglik,
                float(wc.sum(dtype=np.float64)),
            )

        # cpu_count is a system call: worth it only when there are chunks to share.
        parts = _map_chunks(work, info.bounds, self._threads() if len(info.bounds) > 1 else 1)
        total = parts[0]
        for part in parts[1:]:
            total = total + part
        return total

    # ---------------------------------------------------------------- hooks
    def _e_step(self, X, sample_weight) -> SufficientStats:
        """Expected sufficient statistics under the current parameters."""
        return self.accumulate(X, sample_weight, self._params)

    def _m_step(self, stats: SufficientStats) -> None:
        """Maximise the expected complete-data log-likelihood."""
        old = self._params
        dtype = old.means.dtype
        # Same guard as scikit-learn against empty components.
        nk = stats.nk + 10 * np.finfo(dtype).eps
        shift, covariances, precisions_cholesky = self._cov.m_step(
            nk, stats.sum_y, stats.second, old.precisions_cholesky, self.reg_covar, dtype)
        self._params = _Params(
            weights=(nk / stats.total_weight).astype(dtype),
            means=(old.means + shift).astype(dtype),
            covariances=covariances,
            precisions_cholesky=precisions_cholesky,
        )

    def _compute_lower_bound(self, stats: SufficientStats) -> float:
        """Average log-likelihood per (weighted) sample."""
        return stats.log_likelihood / stats.total_weight

    # -------------------------------------------------------- initialisation
    def _initialize_parameters(self, Z, sample_weight, rng, attempt: int) -> None:
        """Starting parameters on the standardised scale ``Z``."""
        method = self.init_params
        if method == "auto" and self.n_components == 1:  # one optimum, reached in one M-step
            self._params = self._start_from(_init_one_group, Z, sample_weight, rng)
        elif method == "auto":
            self._params = self._best_short_run(Z, sample_weight, rng, attempt)
        else:
            if attempt > 0 and method == "hierarchical" and np.count_nonzero(sample_weight) <= 2000:
                method = "k-means++"  # deterministic on small data: vary the start instead
            self._params = self._start_from(INITIALIZERS[method], Z, sample_weight, rng)
        self._apply_user_start(Z.dtype)

    def _start_from(self, initializer, Z, sample_weight, rng) -> _Params:
        """Parameters from one M-step on the starting partition of ``initializer``."""
        n, d = Z.shape
        K = self.n_components
        rows, resp = initializer(Z, K, sample_weight, rng)
        Zr, wr = Z[rows], sample_weight[rows]
        # M-step from the starting partition, whitening against the identity at the
        # weighted mean (stable and reuses the same pass).
        centre = (wr @ Zr) / wr.sum() if wr.sum() > 0 else Zr.mean(axis=0)
        self._params = _Params(
            weights=np.full(K, 1.0 / K, dtype=Z.dtype),
            means=np.tile(centre.astype(Z.dtype), (K, 1)),
            covariances=None,
            precisions_cholesky=self._cov.identity_precision_cholesky(K, d, Z.dtype),
        )
        wr = wr if wr.sum() > 0 else np.ones_like(wr)
        if type(self).accumulate is GaussianMixtureEM.accumulate:
            # accumulate's pass, where every component's whitened residual is the same
            # Zr - centre: no (rows, K, D) copies (a tenth of select_model's time on digits).
            y = Zr - self._params.means[0]
            weighted = resp * wr[:, None]
            stats = SufficientStats(weighted.sum(axis=0, dtype=np.float64), (weighted.T @ y).astype(np.float64),
                                    self._cov.shared_second_moment(weighted, y).astype(np.float64), 0.0,
                                    float(wr.sum(dtype=np.float64)))
        else:  # a subclass's own pass
            stats = self.accumulate(Zr, wr, self._params, resp_rows=resp)
        self._m_step(stats)
        return self._params

    def _best_short_run(self, Z, sample_weight, rng, attempt: int) -> _Params:
        """Biernacki, Celeux & Govaert's "small EM": short runs from many starts, keep the best.

        The starts are the hierarchical partition (first initialisation only: it is
        deterministic), the best of 10 k-means runs, more k-means partitions and
        k-means++ seeds. Each runs at most 20 accelerated EM passes, stopping early
        once the per-row log-likelihood gains less than 1e-3 or at the first
        collapsed component (such a run ranks last whatever it does next), on a
        subsample of rows for large data. The first two (the classic defaults) and the
        leading random starts continue there to ``tol`` (or, again, a collapse); the
        non-degenerate one with the highest log-likelihood is what ``fit`` continues
        on all rows.

        Where whole runs compile (:meth:`_runs_compile`), every start's M-step and
        run is one compiled call per batch (the short runs, then the continued ones):
        the same steps, equal to rounding, without the Python around each. There,
        tied runs make cheaper passes exact to a few digits fewer (enough to rank
        them): ``fit`` continues the chosen one with exact passes.
        """
        rows = np.flatnonzero(sample_weight > 0)
        if rows.size > _SHORT_RUN_ROWS:
            rows = np.sort(rng.choice(rows, size=_SHORT_RUN_ROWS, replace=False))
        Zs, ws = Z[rows], sample_weight[rows]
        names = (["hierarchical"] if attempt == 0 else []) + ["kmeans-best-of-10", *_SHORT_RUN_STARTS]
        n_anchors = len(names) - len(_SHORT_RUN_STARTS)
        short = min(_SHORT_RUN_PASSES, self.max_iter)
        short_tol = max(self.tol, _SHORT_RUN_TOL)
        batched = short > 0 and self._runs_compile(Zs)
        with shared_data_digest(Zs, ws):  # the cached partitions hash these rows once, not per start
            if batched:
                runs = self._batched_runs(Zs, ws, [PARTITIONS[name](Zs, self.n_components, ws, rng) for name in names],
                                          short, short_tol, _SHORT_RUN_STOP_COLLAPSED, ranking=True)
            else:
                runs = []
                for name in names:
                    try:
                        self._params = self._start_from(with_one_hot(PARTITIONS[name]), Zs, ws, rng)
                    except ValueError:  # a start whose covariance cannot be formed: try the others
                        runs.append(None)
                        continue
                    runs.append(self._run_or_error(Zs, ws, attempt, short, short_tol, _SHORT_RUN_STOP_COLLAPSED))
        anchor_runs = [run for run in runs[:n_anchors] if isinstance(run, tuple)]
        random_runs = [run for run in runs[n_anchors:] if isinstance(run, tuple)]
        if not anchor_runs + random_runs:
            _raise_first_error(runs, "No starting partition gave positive definite covariances; increase reg_covar "
                               "or use fewer components.")
        # A short run's leader does not always converge to the best optimum: the
        # anchors and the leading random starts (in start order) all run to convergence.
        leaders = sorted(range(len(random_runs)), key=lambda i: random_runs[i][0], reverse=True)[:_SHORT_RUN_KEEP]
        continued = [params for _, params in anchor_runs + [random_runs[i] for i in sorted(leaders)]]
        if batched:
            finals = self._batched_runs(Zs, ws, continued, self.max_iter, self.tol, _FINAL_RUN_STOP_COLLAPSED,
                                        ranking=True)
        else:
            finals = []
            for params in continued:
                self._params = params
                finals.append(self._run_or_error(Zs, ws, attempt, self.max_iter, None, _FINAL_RUN_STOP_COLLAPSED))
        finished = [run for run in finals if isinstance(run, tuple)]
        if not finished:
            _raise_first_error(finals, "Every EM run from the starts failed.")
        return _first_best(finished, self.tol)[1]

    def _run_or_error(self, Z, sample_weight, attempt: int, max_iter: int, tol: float | None, stop_collapsed: bool):
        """:meth:`_scored_run`, or the ValueError of a failed pass: the multi-start goes on with its other starts.

        A start that passes the positive-definiteness test only by rounding (its
        smallest eigenvalue ~1e-16 with ``reg_covar=0``) can fail in its first pass.
        """
        try:
            return self._scored_run(Z, sample_weight, attempt, max_iter, tol, stop_collapsed=stop_collapsed)
        except ValueError as err:  # LinAlgError included
            return err

    def _batched_runs(self, Z, sample_weight, starts: list, max_iter: int, tol: float,
                      stop_collapsed: bool, ranking: bool = False) -> list:
        """:meth:`_run_or_error` from each start, one compiled call for all: a list of ``(key, params)``.

        ``starts`` are hard partitions ``(rows, groups)``, each first turned into
        parameters as :meth:`_start_from` does (None in the list where its covariance
        cannot be formed), or :class:`_Params`. A run whose pass fails is its
        ValueError in the list, as :meth:`_run_or_error` returns it. ``ranking``
        runs (the short runs, ranked and then continued) may use passes exact only to
        a few digits (:func:`bayesgmm._em_kernels.em_runs`).
        """
        from ._em_kernels import em_runs, kernel_shapes, partition_starts

        cov, K, d = self._cov, self.n_components, Z.shape[1]
        diagonal = cov.compiled_kernels == "diagonal"
        shape, unshape = kernel_shapes(diagonal, cov.pooled)
        if starts and isinstance(starts[0], _Params):
            w, m, c, f = (np.stack([shape(a) for a in arrays]).astype(np.float64)
                          for arrays in zip(*((p.weights, p.means, p.covariances, p.precisions_cholesky)
                                              for p in starts)))
            w, m = w.reshape(len(starts), K), m.reshape(len(starts), K, d)
            formed = np.ones(len(starts), dtype=bool)
        else:
            codes, w, m, c, f = partition_starts(Z, sample_weight, starts, K, diagonal, cov.pooled, self.reg_covar)
            formed = codes == 0
        floor = self._collapse_floor()
        codes, lower_bounds, proper = em_runs(Z, sample_weight, w, m, c, f, formed, self.reg_covar, cov.pooled,
                                              max_iter, tol, self.acceleration == "squarem",
                                              floor if stop_collapsed else 0.0, floor, ranking=ranking)
        runs = []
        for s in range(len(starts)):
            if not formed[s]:
                runs.append(None)
            elif codes[s]:  # the pass's error, as _run_or_error returns it
                try:
                    _raise_for_pass_code(int(codes[s]))
                except ValueError as err:
                    runs.append(err)
            else:
                runs.append(((bool(proper[s]), float(lower_bounds[s])),
                             _Params(w[s].copy(), m[s].copy(), np.ascontiguousarray(unshape(c[s])),
                                     np.ascontiguousarray(unshape(f[s])))))
        return runs

    def _scored_run(self, Z, sample_weight, attempt: int, max_iter: int, tol: float | None = None,
                    stop_collapsed: bool = False) -> tuple[tuple[bool, float], _Params]:
        """Run EM from ``self._params``; rank it (non-degenerate first, then log-likelihood)."""
        lower_bound = self._run_em(Z, sample_weight, attempt, warm=False, max_iter=max_iter, tol=tol,
                                   stop_collapsed=stop_collapsed)[0]
        return (self._degenerate_components(Z.shape[1]).size == 0, lower_bound), self._params

    def _apply_user_start(self, dtype) -> None:
        """Overwrite the start with ``weights_init``/``means_init``/``precisions_init`` (data units)."""
        p, scale = self._params, self.scaling_.scale
        if self.weights_init is not None:
            p.weights = np.asarray(self.weights_init, dtype=dtype)
        if self.means_init is not None:
            p.means = self.scaling_.transform(np.asarray(self.means_init, dtype=float), dtype=dtype)
        if self.precisions_init is not None:
            precisions = self._cov.rescale(np.asarray(self.precisions_init, dtype=np.float64), scale)
            p.precisions_cholesky = self._cov.precision_cholesky_from_precisions(precisions.astype(dtype))
            # Kept consistent: acceleration extrapolates the covariances.
            p.covariances = self._cov.covariances_from_precisions(precisions).astype(dtype)

    # ------------------------------------------------------------------- fit
    def fit(self, X, y=None, sample_weight=None) -> GaussianMixtureEM:
        """Estimate the parameters with EM.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training data. A dask array or DataFrame is fitted out of core: every EM
            pass is a reduction over its blocks on the active dask scheduler, the start
            is computed from a random sample of at most 10,000 rows, and ``labels_`` and
            the predictions are lazy dask arrays (see the README's "Out of core / Dask").
        y : Ignored
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative row weights; integer weights are equivalent to repeating rows.

        Returns
        -------
        self : GaussianMixtureEM
        """
        self.fit_predict(X, y, sample_weight=sample_weight)
        return self

    def _can_warm_start(self, n_features: int) -> bool:
        """Warm start only from a fit of the same shape; anything else starts cold."""
        return (
            self.warm_start
            and hasattr(self, "_params")
            and getattr(self, "_fitted_shape", None) == (self.n_components, self.covariance_type, n_features)
        )

    @_single_threaded_blas
    def fit_predict(self, X, y=None, sample_weight=None) -> np.ndarray:
        """Fit the model and return the most probable component of each row.

        The data are centred and scaled per feature before fitting (see
        ``scaling_``), so the fit does not depend on the units of the features; the
        fitted attributes are reported in the data's units.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : Ignored
        sample_weight : array-like of shape (n_samples,), default=None

        Returns
        -------
        labels : ndarray of shape (n_samples,)
        """
        dask_input = is_dask_collection(X) or is_dask_collection(sample_weight)
        if dask_input:  # out of core (_dask.py): checked lazily, the values and the scaling in one reduction
            from ._dask import check_fit_input

            X, sample_weight, cov, data_scaling = check_fit_input(self, X, sample_weight)
        else:
            X, sample_weight, cov = self._check_fit_input(X, sample_weight)
            data_scaling = None
        d = X.shape[1]
        warm = self._can_warm_start(d)
        self._cov = cov
        self._training_sums = None  # set by this fit's last pass (in memory)
        if not warm:
            self.scaling_ = data_scaling if data_scaling is not None else FeatureScaling.from_data(
                X, sample_weight, feature_names=self.fit_feature_names(d))
        lower_bound, n_iter, converged, history, degenerate = self._fit_best_start(X, sample_weight, warm)
        self._fitted_shape = (self.n_components, self.covariance_type, d)
        self._publish_parameters(X.dtype)
        shift = self.scaling_.log_scale_sum  # log-densities in data units
        self.n_iter_ = n_iter
        self.converged_ = converged
        self.lower_bound_ = lower_bound - shift
        self.lower_bounds_ = [value - shift for value in history]
        self.degenerate_components_ = degenerate
        self.degenerate_ = bool(degenerate.size)
        self._warn_about_fit()
        if dask_input:
            self.labels_ = self.chunked_e_step(X, keep="labels")[1]
        else:
            # The pass that gives the labels also gives the training data's criteria
            # sums, which select_model would otherwise compute in a pass of its own.
            log_px, self.labels_, largest = self._e_step_pass(X, keep="labels")
            self._training_sums = (X.shape[0], float(log_px.sum()), largest.sum())
        return self.labels_

    def _check_fit_input(self, X, sample_weight):
        """In-memory X, weights divided by their maximum, and the covariance object."""
        check_numeric_columns(X)
        X = validate_data(self, X, dtype=[np.float64, np.float32], ensure_min_samples=2, reset=True,
                          ensure_all_finite=False)
        # The rows and features named, not scikit-learn's advice to use another estimator.
        check_finite_rows(X, names=self.fit_feature_names(X.shape[1]))
        cov = self.validate_hyperparameters(*X.shape)
        sample_weight = check_sample_weight(sample_weight, X.shape[0], dtype=np.float64)
        if np.count_nonzero(sample_weight) < self.n_components:
            raise ValueError(
                f"Only {np.count_nonzero(sample_weight)} rows have a positive sample_weight; "
                f"need at least n_components = {self.n_components}."
            )
        # Only relative weights matter; this keeps 1e-310 and 1e300 weights in range.
        return X, (sample_weight / sample_weight.max()).astype(X.dtype), cov

    def _fit_best_start(self, X, sample_weight, warm: bool):
        """EM from every initialisation (or the warm start); keep the best in ``self._params``.

        Returns the best run's ``(lower_bound, n_iter, converged, history, degenerate)``
        on the standardised scale.
        """
        dask_input = is_dask_collection(X)
        if dask_input:
            from ._dask import start_sample, transform

            Z = transform(self.scaling_, X)
        else:
            # Float32 data of at most 10,000 rows are fitted in float64 (the fitted attributes
            # stay float32): float32 is for memory and large passes, and here only float64
            # runs compile (the float32 multi-start took 10x as long on faithful).
            wide = X.dtype == np.float32 and X.shape[0] <= _COMPILED_RUN_ROWS
            Z = self.scaling_.transform(X, dtype=np.float64 if wide else X.dtype)
            sample_weight = sample_weight.astype(Z.dtype, copy=False)
        rng = check_random_state(self.random_state)
        # The start is computed in memory: for dask input, on a random sample of the rows.
        Z_start, w_start = start_sample(Z, sample_weight, rng) if dask_input else (Z, sample_weight)
        weighted = np.flatnonzero(w_start > 0)
        # On at most ~10,000 weighted rows (every k-th, not drawn: rng's draws stay the start's);
        # not on a dask sample with too few weighted rows to say anything about the data.
        if not warm and not (dask_input and weighted.size <= X.shape[1]):
            kept = weighted[::max(1, -(-weighted.size // _SHORT_RUN_ROWS))]
            self._cov.check_data_rank(np.asarray(Z_start[kept], dtype=np.float64), w_start[kept], self.reg_covar,
                                      self.fit_feature_names(X.shape[1]))
        best = None
        for attempt in range(1 if warm else self.n_init):
            if not warm:
                self._initialize_parameters(Z_start, w_start, rng, attempt)
            lower_bound, n_iter, converged, history = self._run_em(Z, sample_weight, attempt, warm)
            degenerate = self._degenerate_components(X.shape[1])
            # A collapsed component is a spurious maximiser: prefer any proper fit.
            key = (degenerate.size == 0, lower_bound)
            if best is None or key > best[0] or best[0][1] == -np.inf:
                best = (key, self._params, (lower_bound, n_iter, converged, history, degenerate))
        _, self._params, result = best
        return result

    def fit_feature_names(self, n_features: int) -> list[str]:
        """The names of the features being fitted: ``feature_names_in_``, else ``x0, x1, ...``."""
        names = getattr(self, "feature_names_in_", None)
        return [str(v) for v in names] if names is not None else [f"x{j}" for j in range(n_features)]

    def _run_em(self, Z, sample_weight, attempt: int, warm: bool, max_iter: int | None = None,
                tol: float | None = None, stop_collapsed: bool = False):
        """EM passes from ``self._params`` until ``tol`` or ``max_iter`` passes.

        With ``stop_collapsed``, also stops (not converged) at the first parameters it
        keeps where a component has collapsed (see :meth:`_degenerate_components`):
        the multi-start ranks such a run last whatever it does next.

        With ``acceleration="squarem"`` every cycle is two EM steps, an
        extrapolation along them (Varadhan & Roland's SqS3 step length) and one EM
        step from the extrapolated point, which is kept only if its log-likelihood
        is at least that of the plain path: the recorded log-likelihoods never
        decrease. Convergence is judged on two consecutive plain EM steps, as
        without acceleration.
        """
        max_iter = self.max_iter if max_iter is None else max_iter
        tol = self.tol if tol is None else tol
        lower_bound = self.lower_bound_ + self.scaling_.log_scale_sum if warm else -np.inf
        history: list[float] = []
        if max_iter == 0:  # report the start's own log-likelihood, not -inf
            return self._compute_lower_bound(self._e_step(Z, sample_weight)), 0, False, history

        floor = self._collapse_floor() if stop_collapsed else 0.0
        if not self.verbose and type(self)._extrapolate is GaussianMixtureEM._extrapolate and self._can_compile(Z):
            return self._compiled_run(Z, sample_weight, max_iter, tol, lower_bound, floor)
        passes = 0
        compiled = self._compiled_pass(Z, sample_weight)

        def collapsed() -> bool:
            return floor > 0 and self._degenerate_components(Z.shape[1]).size > 0

        def em_pass() -> float:
            nonlocal passes
            if compiled is not None:
                value = compiled()
            else:
                stats = self._e_step(Z, sample_weight)
                self._m_step(stats)
                value = self._compute_lower_bound(stats)
            passes += 1
            history.append(value)
            if self.verbose and passes % self.verbose_interval == 0:
                print(f"  init {attempt + 1}, iteration {passes}: lower bound {value:.6f}")
            return value

        accelerate = self.acceleration == "squarem"
        step_max = 1.0  # grows while the natural step keeps exceeding it (Varadhan & Roland)
        while passes < max_iter:
            start = self._params
            previous, lower_bound = lower_bound, em_pass()
            if abs(lower_bound - previous) < tol:
                return lower_bound, passes, True, history
            if collapsed():
                return lower_bound, passes, False, history
            if not accelerate or passes + 2 > max_iter:
                continue
            middle = self._params
            previous, lower_bound = lower_bound, em_pass()
            if abs(lower_bound - previous) < tol:
                return lower_bound, passes, True, history
            if collapsed():
                return lower_bound, passes, False, history
            plain = self._params
            jump, _, capped = self._extrapolate(start, middle, plain, step_max)
            if capped:  # the step length hit its cap: allow longer steps (SQUAREM's mstep)
                step_max *= 4
            if jump is None:
                continue
            self._params = jump
            value = em_pass()
            if value >= lower_bound:
                lower_bound = value
                if collapsed():
                    return lower_bound, passes, False, history
            else:  # the jump lost likelihood: go on from the plain EM path
                history.pop()  # lower_bounds_ keeps the path taken, which never descends
                self._params = plain
                step_max = max(1.0, step_max / 4)
        return lower_bound, passes, False, history

    def _can_compile(self, Z) -> bool:
        """Whether whole passes from ``self._params`` run in compiled calls.

        Float64 data and parameters in memory, of at most 10,000 rows or one chunk
        (the data where the Python around a pass cost more than its arithmetic, or
        about as much as the chunked passes on several threads gain). Not where the
        covariance type has no such kernel, or where a subclass overrides one of the
        hooks the kernels replace (it then runs as written).
        """
        p = self._params
        return self._data_compiles(Z) and not any(
            a is None or a.dtype != np.float64 for a in (p.weights, p.means, p.covariances, p.precisions_cholesky))

    def _data_compiles(self, Z) -> bool:
        """:meth:`_can_compile`'s conditions on the data, the covariance type and the hooks."""
        if is_dask_collection(Z) or Z.dtype != np.float64 or not Z.flags.c_contiguous:
            return False
        if Z.shape[0] > _COMPILED_RUN_ROWS and len(_chunk_bounds(Z.shape[0], self.n_components, Z.shape[1],
                                                                 Z.dtype.itemsize)) > 1:
            return False
        if self._cov.compiled_kernels is None:  # no kernel for this type
            return False
        return all(getattr(type(self), hook) is getattr(GaussianMixtureEM, hook)
                   for hook in ("accumulate", "_e_step", "_m_step", "_compute_lower_bound"))

    def _runs_compile(self, Z) -> bool:
        """Whether the multi-start runs in compiled batches: runs compile and no hook they replace is overridden."""
        overridden = any(getattr(type(self), hook) is not getattr(GaussianMixtureEM, hook)
                         for hook in ("_extrapolate", "_start_from", "_run_em", "_scored_run", "_compiled_run",
                                      "_degenerate_components", "_collapse_floor"))
        return not self.verbose and not overridden and self._data_compiles(Z)

    def _compiled_pass(self, Z, sample_weight):
        """A function running one whole pass from ``self._params`` in one compiled call, or None.

        The same kernels as :meth:`_e_step` then :meth:`_m_step`, equal to rounding;
        None where :meth:`_can_compile` says no.
        """
        if not self._can_compile(Z):
            return None
        row_weights = np.ascontiguousarray(sample_weight, dtype=np.float64)
        total_weight = float(row_weights.sum())
        step, reg_covar = self._cov.em_step, self.reg_covar

        def run() -> float:
            p = self._params
            code, log_likelihood, weights, means, covariances, factors = step(
                Z, row_weights, total_weight, p.weights, p.means, p.precisions_cholesky, reg_covar)
            _raise_for_pass_code(code)
            self._params = _Params(weights, means, covariances, factors)
            return log_likelihood / total_weight

        return run

    def _compiled_run(self, Z, sample_weight, max_iter: int, tol: float, lower_bound: float,
                      collapse_floor: float = 0.0):
        """:meth:`_run_em`'s loop where :meth:`_can_compile` says yes, in one compiled call.

        The same passes, SQUAREM steps and safeguard as the Python loop (equal to
        rounding); without the per-pass Python (about as long as the arithmetic of a
        pass on a few hundred rows), which the thousands of short runs of the
        multi-start paid on small data.
        """
        p = self._params
        row_weights = np.ascontiguousarray(sample_weight, dtype=np.float64)
        code, lower_bound, passes, converged, history, *params = self._cov.em_run(
            Z, row_weights, float(row_weights.sum()), p.weights, p.means, p.covariances, p.precisions_cholesky,
            self.reg_covar, max_iter, tol, lower_bound, self.acceleration == "squarem", collapse_floor)
        self._params = _Params(*params)
        _raise_for_pass_code(code)
        return lower_bound, passes, converged, history

    def _extrapolate(self, p0: _Params, p1: _Params, p2: _Params, step_max: float):
        """SQUAREM point ``p0 - 2 a r + a^2 v`` (r = p1 - p0, v = p2 - 2 p1 + p0).

        Returns the point (None when the step is no longer than plain EM's), the
        step length ``a`` and whether ``step_max`` capped it. The step is halved
        towards the plain EM point while the weights or covariances leave their
        domain.
        """
        from ._em_kernels import squarem_lengths, squarem_point

        points = tuple((p.weights, p.means, p.covariances) for p in (p0, p1, p2))
        rr, vv = squarem_lengths(*points)
        if vv == 0.0 or not np.isfinite(rr + vv):
            return None, -1.0, False
        natural = -np.sqrt(rr / vv)
        alpha = max(natural, -step_max)
        capped = natural < -step_max
        while alpha < -1.0:
            new = squarem_point(*points, alpha)
            weights = new[0]
            if np.all(weights >= 0):
                try:
                    chol = self._cov.precision_cholesky(new[2])
                except (ValueError, np.linalg.LinAlgError):
                    chol = None
                if chol is not None and np.all(np.isfinite(chol)):
                    # Summed left to right, as the compiled run does (NumPy's sum pairs
                    # terms from 8 on): both take the same steps to the last bit.
                    total = weights.dtype.type(sum(weights.tolist()))
                    return _Params(weights / total, new[1], new[2], chol), alpha, capped
            alpha = (alpha - 1.0) / 2.0
            if alpha > -1.5:
                break
        return None, alpha, capped

    def _publish_parameters(self, dtype) -> None:
        """Set the fitted attributes, in data units, from the standardised parameters."""
        p, scaling = self._params, self.scaling_
        with np.errstate(over="ignore", under="ignore"):
            self.weights_ = p.weights
            self.means_ = scaling.inverse_transform(p.means).astype(dtype)
            self.covariances_ = self._cov.rescale(p.covariances.astype(np.float64), scaling.scale).astype(dtype)
            chol = self._cov.rescale_cholesky(p.precisions_cholesky.astype(np.float64), scaling.scale)
            self.precisions_cholesky_ = chol.astype(dtype)
            self.precisions_ = self._cov.precisions(chol).astype(dtype)
        for name in ("means_", "covariances_", "precisions_cholesky_", "precisions_"):
            if not np.all(np.isfinite(getattr(self, name))):
                raise ValueError(
                    f"The fitted {name[:-1]} cannot be represented in {np.dtype(dtype).name} in the data's "
                    f"units (feature standard deviations {scaling.scale.min():.3g}..{scaling.scale.max():.3g}). "
                    "Rescale the data, or pass float64 data."
                )

    def _warn_about_fit(self) -> None:
        if self.max_iter == 0:
            warnings.warn(
                "max_iter=0: the parameters are the starting values, not an EM fit.",
                ConvergenceWarning,
                stacklevel=4,
            )
        elif not self.converged_:
            warnings.warn(
                "Best initialisation did not converge. Try different init parameters, "
                "or increase max_iter, tol, or check for degenerate data.",
                ConvergenceWarning,
                stacklevel=4,
            )
        if self.degenerate_:
            warnings.warn(
                f"Component(s) {self.degenerate_components_.tolist()} collapsed: their smallest variance is "
                f"at the reg_covar floor ({self.reg_covar:g} times the feature's variance), e.g. on tied "
                "values of a discrete column. This is a spurious maximum of the likelihood, not a better "
                "fit; use fewer components, another covariance_type, or more n_init.",
                DegenerateFitWarning,
                stacklevel=4,
            )

    def _collapse_floor(self) -> float:
        # On the standardised scale, so the check is relative to each feature's spread.
        return 2.0 * self.reg_covar

    def _degenerate_components(self, n_features: int) -> np.ndarray:
        return np.flatnonzero(self._cov.collapsed(self._params.covariances, self.n_components, n_features,
                                                  self._collapse_floor()))

    @property
    def full_covariances_(self) -> np.ndarray:
        """Covariance matrices in the data's units, shape (n_components, n_features, n_features).

        The same for every ``covariance_type`` (``tied`` repeated, ``diag`` and
        ``spherical`` as diagonal matrices), for code that needs matrices.
        """
        check_is_fitted(self)
        K, d = self.n_components, self.means_.shape[1]
        cov = get_covariance_type(self._fitted_shape[1])
        full_z = cov.full_matrices(self._params.covariances.astype(np.float64), K, d)
        return get_covariance_type("full").rescale(full_z, self.scaling_.scale)

    # ------------------------------------------------------------ inference
    def _check_X(self, X) -> np.ndarray:
        check_is_fitted(self)
        check_numeric_columns(X)
        if is_dask_collection(X):  # validated lazily, values checked block by block when computed
            from ._dask import check_array

            return check_array(self, X, reset=False)
        X = validate_data(self, X, dtype=[np.float64, np.float32], reset=False, ensure_all_finite=False)
        check_finite_rows(X, names=self.fit_feature_names(X.shape[1]))
        return X

    @_single_threaded_blas
    def chunked_e_step(self, X, keep: str):
        """Chunked E-step returning ``log p(x)`` and either log-responsibilities or labels.

        A hook for out-of-core prediction (:mod:`bayesgmm._dask` calls it on every
        block of a fitted :meth:`block_worker`); ``X`` is checked, in data units.
        ``keep`` is ``"log_resp"`` or ``"labels"``.
        """
        if is_dask_collection(X):  # lazy dask arrays, this very E-step mapped over the blocks
            from ._dask import chunked_e_step

            return chunked_e_step(self, X, keep)
        return self._e_step_pass(X, keep)[:2]

    def _e_step_pass(self, X, keep: str):
        """:meth:`chunked_e_step` in memory, plus each row's largest log-responsibility when ``keep="labels"``."""
        self._cov = get_covariance_type(self._fitted_shape[1])
        Z = self.scaling_.transform(X, dtype=X.dtype)
        info = self._begin_pass(Z, self._params)
        n = Z.shape[0]
        log_px = np.empty(n, dtype=np.float64)
        out = np.empty((n, self.n_components), dtype=X.dtype) if keep == "log_resp" else np.empty(n, np.intp)
        # max_k (log_prob - norm): what criteria's ICL sums from the log-responsibilities.
        largest = np.empty(n, dtype=X.dtype) if keep == "labels" else None

        def work(a: int, b: int) -> None:
            log_prob, _ = self._log_prob_chunk(Z[a:b], info)
            norm = _log_sum_exp_rows(log_prob)
            log_px[a:b] = norm
            if keep == "log_resp":
                out[a:b] = log_prob - norm[:, None]
            else:
                out[a:b] = log_prob.argmax(axis=1)
                largest[a:b] = log_prob.max(axis=1) - norm

        _map_chunks(work, info.bounds, self._threads())
        return log_px - self.scaling_.log_scale_sum, out, largest

    def block_worker(self, fitted: bool = False) -> GaussianMixtureEM:
        """A small copy that carries to dask's blocks only what the in-memory code needs.

        A hook for out-of-core fitting (:mod:`bayesgmm._dask`): the copy's
        :meth:`accumulate` (during a fit) or, with ``fitted=True``, its
        :meth:`chunked_e_step` (after one) run on one block, single-threaded.
        """
        worker = GaussianMixtureEM(n_components=self.n_components, covariance_type=self.covariance_type,
                                   n_threads=1)
        worker._cov = getattr(self, "_cov", None)
        if fitted:
            worker._params, worker.scaling_, worker._fitted_shape = self._params, self.scaling_, self._fitted_shape
        return worker

    def _estimate_log_resp(self, X):
        """Per-row log p(x) and log responsibilities."""
        return self.chunked_e_step(X, keep="log_resp")

    def score_samples(self, X) -> np.ndarray:
        """Log-density of each row under the fitted mixture.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        log_density : ndarray of shape (n_samples,)
        """
        return self._estimate_log_resp(self._check_X(X))[0]

    def score(self, X, y=None) -> float:
        """Average log-likelihood per row.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : Ignored

        Returns
        -------
        log_likelihood : float
        """
        return float(self.score_samples(X).mean())

    def predict_proba(self, X) -> np.ndarray:
        """Responsibilities: posterior probability of each component for each row.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        resp : ndarray of shape (n_samples, n_components)
        """
        return np.exp(self._estimate_log_resp(self._check_X(X))[1])

    def predict(self, X) -> np.ndarray:
        """Most probable component of each row.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        labels : ndarray of shape (n_samples,)
        """
        return self.chunked_e_step(self._check_X(X), keep="labels")[1]

    def sample(self, n_samples: int = 1):
        """Draw rows from the fitted mixture.

        Parameters
        ----------
        n_samples : int, default=1

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
        y : ndarray of shape (n_samples,)
            Component of each drawn row.
        """
        check_is_fitted(self)
        if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)):
            raise TypeError(f"n_samples must be a positive integer, got {n_samples!r}.")
        if n_samples < 1:
            raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}.")
        rng = check_random_state(self.random_state)
        d = self.means_.shape[1]
        counts = rng.multinomial(n_samples, self._params.weights.astype(np.float64))
        # Drawn on the standardised scale, where every covariance is well conditioned.
        p = self._params
        covs = get_covariance_type(self._fitted_shape[1]).full_matrices(p.covariances, self.n_components, d)
        Z = np.vstack([rng.multivariate_normal(mean, cov, size=c) for mean, cov, c in zip(p.means, covs, counts)])
        X = self.scaling_.inverse_transform(Z)
        y = np.repeat(np.arange(self.n_components), counts)
        return X, y

    # ---------------------------------------------------- information criteria
    def n_parameters(self) -> int:
        """Number of free parameters of the fitted model."""
        check_is_fitted(self)
        d = self.means_.shape[1]
        cov = get_covariance_type(self.covariance_type)
        return int(cov.n_parameters(self.n_components, d) + self.n_components * d + self.n_components - 1)

    def criteria(self, X) -> dict[str, float]:
        """Log-likelihood and information criteria from one pass over X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        dict
            ``log_likelihood`` (total), ``bic``, ``aic`` and ``icl`` (lower is better).
        """
        X = self._check_X(X)
        if is_dask_collection(X):  # the same sums, as one reduction over the blocks
            from ._dask import criteria_sums

            return self._criteria_from_sums(*criteria_sums(self, X))
        log_px, log_resp = self._estimate_log_resp(X)
        return self._criteria_from_sums(X.shape[0], float(log_px.sum()), log_resp.max(axis=1).sum())

    def _training_criteria(self) -> dict[str, float]:
        """:meth:`criteria` of the data the model was fitted on (in memory), from the fit's last pass."""
        check_is_fitted(self)
        if getattr(self, "_training_sums", None) is None:
            raise ValueError("The training data's criteria are kept only by an in-memory fit; use criteria(X).")
        return self._criteria_from_sums(*self._training_sums)

    def _criteria_from_sums(self, n: int, log_likelihood: float, map_log_resp: float) -> dict[str, float]:
        p = self.n_parameters()
        bic = -2 * log_likelihood + p * np.log(n)
        return {
            "log_likelihood": log_likelihood,
            "bic": float(bic),
            "aic": float(-2 * log_likelihood + 2 * p),
            # BIC plus twice the entropy of the hard (MAP) classification, as mclust.
            "icl": float(bic - 2 * map_log_resp),
        }

    def bic(self, X) -> float:
        """Bayesian information criterion ``-2 log L + p log n`` (lower is better).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        bic : float
        """
        return self.criteria(X)["bic"]

    def aic(self, X) -> float:
        """Akaike information criterion ``-2 log L + 2 p`` (lower is better).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        aic : float
        """
        return self.criteria(X)["aic"]

    def icl(self, X) -> float:
        """Integrated completed likelihood, as in mclust (lower is better).

        ``ICL = BIC - 2 sum_n log z_n,map``: BIC plus twice the classification
        entropy of the hard (MAP) assignment, which penalises overlapping components.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        icl : float
        """
        return self.criteria(X)["icl"]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags
