"""Out-of-core and distributed EM on Dask collections.

Imported only when a dask array or DataFrame reaches :class:`GaussianMixtureEM`
or :func:`select_model`, so dask stays optional. Nothing here re-implements the
mixture: every block is handed to the estimator's own in-memory code, and one EM
pass is a tree reduction of the per-block sufficient statistics (``SufficientStats``)
computed with ``dask.compute``, i.e. on whatever scheduler is active (threads by
default, a ``dask.distributed.Client`` when one is). Only the parameters (a few
kilobytes) travel to the blocks each iteration; the data are read block by block
every pass, so they never have to fit in memory (``persist()`` them first when
they do and speed matters).

Passes over the data in a fit: one that checks the values and computes the
per-feature scaling, one that reads the random sample the start is computed
from, then one per EM iteration. ``labels_`` and the predictions are lazy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial, reduce

import dask
import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
from dask import delayed
from pandas.api.types import is_complex_dtype, is_numeric_dtype
from sklearn.utils.validation import validate_data
from threadpoolctl import threadpool_limits

from .em import GaussianMixtureEM, SufficientStats
from .scaling import FeatureScaling

__all__ = ["check_array", "check_data", "check_fit_input", "transform", "start_sample", "accumulate",
           "chunked_e_step", "criteria_sums", "START_SAMPLE_ROWS"]

#: The start (hierarchical, k-means...) is computed in memory on at most this many
#: rows drawn uniformly at random; with fewer rows it sees them all, exactly as in memory.
START_SAMPLE_ROWS = 10_000
#: Fan-in of the tree reductions.
SPLIT_EVERY = 8

_NONFINITE = "X contains NaN or infinite values ({} row(s)); remove or impute them first."


# ------------------------------------------------------------------ helpers
def _compute(*collections):
    """``dask.compute`` with BLAS on one thread: dask parallelises over the blocks."""
    with threadpool_limits(limits=1, user_api="blas"):
        return dask.compute(*collections)


def _tree_sum(parts: list, split_every: int = SPLIT_EVERY):
    """Pairwise-by-``split_every`` sum of delayed values (``SufficientStats`` or arrays)."""
    while len(parts) > 1:
        parts = [delayed(_sum)(*parts[i : i + split_every]) for i in range(0, len(parts), split_every)]
    return parts[0]


def _sum(*values):
    return reduce(lambda a, b: a + b, values)


def _row_blocks(X: da.Array) -> list:
    """One delayed numpy block per row chunk, empty chunks left out."""
    blocks = X.to_delayed().ravel()
    return [b for b, size in zip(blocks, X.chunks[0]) if not size == 0]


def _as_array(X, lengths=None) -> da.Array:
    """A dask array (the values of a dask DataFrame, with ``lengths`` its partitions' rows if known)."""
    if isinstance(X, dd.DataFrame):
        return X.to_dask_array(lengths=lengths)
    if not isinstance(X, da.Array) and isinstance(getattr(X, "data", None), da.Array):  # e.g. xarray
        X = X.data
    if not isinstance(X, da.Array):
        raise TypeError(f"Dask input must be a dask.array.Array or a dask DataFrame, got {type(X).__name__}.")
    return X


def _empty_frame(X: dd.DataFrame) -> pd.DataFrame:
    """An empty pandas DataFrame with X's columns and dtypes (what dask calls its meta)."""
    frame = pd.DataFrame({i: pd.Series(dtype=dtype) for i, dtype in enumerate(X.dtypes)})
    frame.columns = X.columns
    return frame


def _check_meta(est, X, reset: bool):
    """Shape, dtype and feature-name checks (scikit-learn's, on an empty stand-in: nothing is computed)."""
    if isinstance(X, dd.DataFrame):
        bad = [str(c) for c, t in X.dtypes.items() if not is_numeric_dtype(t) or is_complex_dtype(t)]
        if bad:
            raise ValueError(f"Every column of X must be real and numeric; these are not: {bad}.")
        meta = _empty_frame(X)
    else:
        X = _as_array(X)
        if X.ndim != 2:
            raise ValueError(f"Expected a 2D array, got a {X.ndim}D dask array of shape {X.shape}.")
        meta = np.empty((0, X.shape[1]), dtype=X.dtype)
    checked = validate_data(est, meta, dtype=[np.float64, np.float32], ensure_min_samples=0, reset=reset)
    return checked.dtype


def check_array(est, X, reset: bool = False, lengths=None) -> da.Array:
    """Validate a dask array/DataFrame lazily: the result is a float 2-D dask array, one chunk of columns.

    The values (NaN, infinity) are checked later, inside the passes that read them.
    """
    dtype = _check_meta(est, X, reset)
    X = _as_array(X, lengths)
    if X.shape[1] == 0:
        raise ValueError("X has 0 features; at least one is required.")
    return X.astype(dtype).rechunk({1: -1})


def _known_rows(X: da.Array) -> da.Array:
    return X if not any(math.isnan(c) for c in X.chunks[0]) else X.compute_chunk_sizes()


def check_data(X) -> da.Array:
    """As :func:`check_array` with the number of rows known (for :func:`select_model`)."""
    X = _known_rows(check_array(GaussianMixtureEM(), X, reset=True))
    if X.shape[0] < 2:
        raise ValueError(f"Found array with {X.shape[0]} sample(s) while a minimum of 2 is required.")
    return X


# --------------------------------------------------- the first pass: checks and scaling
@dataclass
class _Summary:
    """Row count, value checks and the scaling's moments of a set of blocks.

    The moments are those of ``X / magnitude`` with weights ``w / w_max``, merged
    across blocks as in Chan, Golub & LeVeque (1979), so that nothing leaves float64
    whatever the range of the data or of the weights.
    """

    block_rows: tuple  # rows of every block, in order
    nonfinite_rows: int
    bad_weights: int  # NaN or infinite
    negative_weights: int
    positive_weights: int
    w_max: float
    magnitude: np.ndarray  # max |x| per column
    w_sum: float  # sum of w / w_max
    mean: np.ndarray  # weighted mean of x / magnitude
    m2: np.ndarray  # weighted sum of squared deviations of x / magnitude, in units of w / w_max
    low: np.ndarray  # min and max per column over the rows with a positive weight (constant columns)
    high: np.ndarray

    @property
    def rows(self) -> int:
        return sum(self.block_rows)

    def __add__(self, other: _Summary) -> _Summary:
        magnitude = np.maximum(self.magnitude, other.magnitude)
        w_max = max(self.w_max, other.w_max)
        common = [_rescale(s, magnitude, w_max) for s in (self, other)]
        (wa, ma, qa), (wb, mb, qb) = common
        w_sum = wa + wb
        if wa == 0 or wb == 0:
            mean, m2 = (ma, qa) if wb == 0 else (mb, qb)
        else:
            delta = mb - ma
            mean = ma + delta * (wb / w_sum)
            m2 = qa + qb + delta**2 * (wa * wb / w_sum)
        return _Summary(
            self.block_rows + other.block_rows,
            self.nonfinite_rows + other.nonfinite_rows,
            self.bad_weights + other.bad_weights,
            self.negative_weights + other.negative_weights,
            self.positive_weights + other.positive_weights,
            w_max, magnitude, w_sum, mean, m2, np.minimum(self.low, other.low), np.maximum(self.high, other.high),
        )


def _rescale(s: _Summary, magnitude: np.ndarray, w_max: float):
    """``(w_sum, mean, m2)`` of ``s`` in units of ``magnitude`` and ``w_max``."""
    if s.w_sum == 0:
        return 0.0, np.zeros_like(magnitude), np.zeros_like(magnitude)
    ratio = np.divide(s.magnitude, magnitude, out=np.ones_like(magnitude), where=magnitude > 0)
    w_ratio = s.w_max / w_max
    return s.w_sum * w_ratio, s.mean * ratio, s.m2 * ratio**2 * w_ratio


def _block_summary(x: np.ndarray, w: np.ndarray | None) -> _Summary:
    x = np.asarray(x, dtype=np.float64)
    n, d = x.shape
    w = np.ones(n) if w is None else np.asarray(w, dtype=np.float64)
    finite = np.isfinite(x).all(axis=1)
    w_finite = np.isfinite(w)
    summary = _Summary(
        (n,), int(n - finite.sum()), int(n - w_finite.sum()), int((w < 0).sum()), int((w > 0).sum()),
        0.0, np.zeros(d), 0.0, np.zeros(d), np.zeros(d), np.full(d, np.inf), np.full(d, -np.inf),
    )
    if summary.nonfinite_rows or summary.bad_weights or summary.negative_weights or not summary.positive_weights:
        return summary  # an error is raised, or the block weighs nothing
    summary.w_max = float(w.max())
    w = w / summary.w_max
    summary.magnitude = np.abs(x).max(axis=0)
    unit = x / np.where(summary.magnitude == 0, 1.0, summary.magnitude)
    summary.w_sum = float(w.sum())
    summary.mean = (w @ unit) / summary.w_sum
    summary.m2 = w @ (unit - summary.mean) ** 2
    kept = x[w > 0]
    summary.low, summary.high = kept.min(axis=0), kept.max(axis=0)
    return summary


def _weights(sample_weight, X: da.Array):
    """``sample_weight`` as a dask array chunked as the rows of X (None: all ones)."""
    if sample_weight is None:
        return None
    if isinstance(sample_weight, dd.Series):
        sample_weight = sample_weight.to_dask_array(lengths=X.chunks[0])
    elif np.isscalar(sample_weight):
        return da.full(X.shape[0], float(sample_weight), chunks=(X.chunks[0],))
    elif not isinstance(sample_weight, da.Array):
        sample_weight = np.asarray(sample_weight, dtype=np.float64)
    if sample_weight.ndim != 1 or sample_weight.shape[0] != X.shape[0]:
        raise ValueError(f"sample_weight must have shape ({X.shape[0]},), got {sample_weight.shape}.")
    if isinstance(sample_weight, da.Array):
        return sample_weight.astype(np.float64).rechunk((X.chunks[0],))
    return da.from_array(sample_weight, chunks=(X.chunks[0],))


def check_fit_input(est, X, sample_weight):
    """Everything ``fit`` needs from dask input, in one pass over the data.

    Returns ``(X, sample_weight, covariance_type, scaling)``: X a float dask array
    with known row chunks, the weights as a lazy dask array divided by their maximum
    (as in memory), and the per-feature scaling of the data.
    """
    if not dask.is_dask_collection(X):  # in-memory X with dask weights: X follows their chunks
        if isinstance(sample_weight, dd.Series):
            sample_weight = sample_weight.to_dask_array(lengths=True)
        X = da.from_array(np.asarray(X), chunks=(sample_weight.chunks[0], -1))
    frame = X if isinstance(X, dd.DataFrame) else None
    X = check_array(est, X, reset=True)
    n, d = X.shape
    cov = est.validate_hyperparameters(None if math.isnan(n) else n, d)  # the parameters before any data is read
    if math.isnan(n) and (sample_weight is not None or frame is None):
        X = _known_rows(X)  # the weights must be chunked as the rows: count them first
    weights = None if math.isnan(X.shape[0]) else _weights(sample_weight, X)
    w_blocks = [None] * X.numblocks[0] if weights is None else weights.to_delayed().ravel()
    parts = [delayed(_block_summary)(x, w) for x, w in zip(X.to_delayed().ravel(), w_blocks)]
    (summary,) = _compute(_tree_sum(parts))
    if summary.nonfinite_rows:
        raise ValueError(_NONFINITE.format(summary.nonfinite_rows))
    if summary.bad_weights:
        raise ValueError("Input sample_weight contains NaN or infinite values.")
    if summary.negative_weights:
        raise ValueError("sample_weight must be non-negative; found negative weights.")
    if summary.positive_weights == 0:
        raise ValueError("sample_weight must not be all zero.")
    if summary.rows < 2:
        raise ValueError(f"Found array with {summary.rows} sample(s) while a minimum of 2 is required.")
    if math.isnan(X.shape[0]):  # a DataFrame's partitions: their lengths are now known
        X = check_array(est, frame, reset=True, lengths=list(summary.block_rows))
    est.validate_hyperparameters(summary.rows, d)  # n_components <= n_samples
    if summary.positive_weights < est.n_components:
        raise ValueError(
            f"Only {summary.positive_weights} rows have a positive sample_weight; "
            f"need at least n_components = {est.n_components}."
        )
    if weights is None:
        weights = da.ones(X.shape[0], chunks=(X.chunks[0],), dtype=np.float64)
    # Only relative weights matter; this keeps 1e-310 and 1e300 weights in range.
    weights = (weights / summary.w_max).astype(X.dtype)
    magnitude = np.where(summary.magnitude == 0, 1.0, summary.magnitude)
    spread_unit = np.sqrt(summary.m2 / summary.w_sum)
    spread_unit[summary.low == summary.high] = 0.0  # exactly constant, as in memory (not "varies by only 6e-17")
    scaling = FeatureScaling.from_unit_moments(summary.mean, spread_unit, magnitude,
                                               feature_names=est.fit_feature_names(d))
    return X, weights, cov, scaling


def transform(scaling: FeatureScaling, X: da.Array) -> da.Array:
    """Standardised values, lazily, block by block."""
    return X.map_blocks(partial(_transform_block, scaling), dtype=X.dtype, meta=np.empty((0, 0), X.dtype))


def _transform_block(scaling: FeatureScaling, x: np.ndarray) -> np.ndarray:
    return scaling.transform(x, dtype=x.dtype)


# ------------------------------------------------------------------ the start
def _draw_rows(rng, n: int, size: int) -> np.ndarray:
    """``size`` distinct rows of ``range(n)``, uniformly at random, sorted (no permutation of n)."""
    rows = np.unique(rng.randint(0, n, size=size + size // 4 + 16))
    while rows.size < size:
        rows = np.union1d(rows, rng.randint(0, n, size=size))
    return np.sort(rng.choice(rows, size=size, replace=False))


def start_sample(Z: da.Array, sample_weight: da.Array, rng):
    """In-memory standardised rows and weights the start is computed from.

    All rows (the very start of an in-memory fit, ``rng`` untouched) when there are
    at most ``START_SAMPLE_ROWS``; otherwise that many drawn uniformly at random.
    """
    n = Z.shape[0]
    if n > START_SAMPLE_ROWS:
        rows = _draw_rows(rng, n, START_SAMPLE_ROWS)
        Z, sample_weight = Z[rows], sample_weight[rows]
    Z_start, w_start = _compute(Z, sample_weight)
    return np.ascontiguousarray(Z_start), w_start


# ------------------------------------------------------------------- EM passes
def accumulate(est, Z: da.Array, sample_weight: da.Array, params, resp_rows=None) -> SufficientStats:
    """One E-step pass: the estimator's ``accumulate`` on every block, summed over a tree."""
    if resp_rows is not None:
        raise NotImplementedError("Given responsibilities are only used on in-memory rows (the start).")
    worker = delayed(est.block_worker(), pure=True)
    params = delayed(params, pure=True)
    rows = Z.chunks[0]
    w_blocks = sample_weight.to_delayed().ravel()
    parts = [
        delayed(_block_stats)(z, w, worker, params)
        for z, w, size in zip(Z.to_delayed().ravel(), w_blocks, rows)
        if size
    ]
    (stats,) = _compute(_tree_sum(parts))
    return stats


def _block_stats(z: np.ndarray, w: np.ndarray, worker: GaussianMixtureEM, params) -> SufficientStats:
    return worker.accumulate(z, w, params)


# ---------------------------------------------------------------- inference
def chunked_e_step(est, X: da.Array, keep: str):
    """Lazy ``(log p(x), log-responsibilities or labels)`` as dask arrays, block by block."""
    worker = est.block_worker(fitted=True)
    K = est.n_components
    log_px = X.map_blocks(partial(_block_e_step, worker, keep, 0), drop_axis=1, dtype=np.float64,
                          meta=np.empty((0,), np.float64))
    if keep == "log_resp":
        out = X.map_blocks(partial(_block_e_step, worker, keep, 1), chunks=(X.chunks[0], (K,)), dtype=X.dtype,
                           meta=np.empty((0, 0), X.dtype))
    else:
        out = X.map_blocks(partial(_block_e_step, worker, keep, 1), drop_axis=1, dtype=np.intp,
                           meta=np.empty((0,), np.intp))
    return log_px, out


def _check_finite(x: np.ndarray) -> None:
    bad = x.shape[0] - int(np.isfinite(x).all(axis=1).sum())
    if bad:
        raise ValueError(_NONFINITE.format(bad))


def _block_e_step(worker: GaussianMixtureEM, keep: str, which: int, x: np.ndarray) -> np.ndarray:
    _check_finite(x)
    if x.shape[0] == 0:
        if which == 0:
            return np.empty(0)
        return np.empty((0, worker.n_components), x.dtype) if keep == "log_resp" else np.empty(0, np.intp)
    return worker.chunked_e_step(x, keep)[which]


def criteria_sums(est, X: da.Array):
    """``(n_samples, sum log p(x), sum of the MAP log-responsibilities)`` in one reduction."""
    worker = delayed(est.block_worker(fitted=True), pure=True)
    parts = [delayed(_block_criteria)(x, worker) for x in _row_blocks(X)]
    (total,) = _compute(_tree_sum(parts))
    return int(total[0]), float(total[1]), float(total[2])


def _block_criteria(x: np.ndarray, worker: GaussianMixtureEM) -> np.ndarray:
    _check_finite(x)
    log_px, log_resp = worker.chunked_e_step(x, "log_resp")
    return np.array([x.shape[0], log_px.sum(), log_resp.max(axis=1).sum()])

