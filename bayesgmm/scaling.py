"""Per-feature centring and scaling, computed so that it never under- or overflows.

Both fitters work on standardised values ``z = (x - centre) / scale`` and report
results back in the data's units, so that a fit does not depend on the units in
which each feature was measured (metres or nanometres, 1e-150 or 1e150).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["FeatureScaling"]

# A covariance holds scale**2 and a precision 1 / scale**2: both must be normal
# float64 numbers, with room for the conditioning of the fitted matrices.
_SCALE_LIMITS = (1e-152, 1e152)
# Below this many distinct representable steps across a feature's spread, centring
# loses the data (e.g. values 1e9 that vary by 1e-9).
_MIN_RELATIVE_SPREAD = 1e-12


# Rows per block of the float64 temporaries: about 1 MB each.
_BLOCK_VALUES = 2**17


def _as_float(X) -> np.ndarray:
    """X as a floating array, not copied when it is one already (float32 stays float32)."""
    X = np.asarray(X)
    return X if X.dtype.kind == "f" else X.astype(np.float64)


def _row_blocks(X: np.ndarray) -> list[slice]:
    rows = max(1, _BLOCK_VALUES // max(1, X.shape[1]))
    return [slice(a, a + rows) for a in range(0, X.shape[0], rows)] or [slice(0, 0)]


def _column_abs_max(X: np.ndarray) -> np.ndarray:
    """``max |X|`` per column in float64 (0 for no rows), block by block."""
    out = np.zeros(X.shape[1])
    for b in _row_blocks(X):
        np.maximum(out, np.abs(X[b]).max(axis=0, initial=0.0), out=out)
    return out


def _constant_columns(X: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Whether each column of X has one value over the ``rows`` (a boolean mask), block by block."""
    low, high = np.full(X.shape[1], np.inf), np.full(X.shape[1], -np.inf)
    for b in _row_blocks(X):
        kept = X[b][rows[b]]
        np.minimum(low, kept.min(axis=0, initial=np.inf), out=low)
        np.maximum(high, kept.max(axis=0, initial=-np.inf), out=high)
    return low == high


@dataclass(frozen=True)
class FeatureScaling:
    """Centre and spread of every feature.

    Attributes
    ----------
    centre : ndarray of shape (n_features,)
        Weighted mean of each feature.
    scale : ndarray of shape (n_features,)
        Weighted standard deviation of each feature.
    """

    centre: np.ndarray
    scale: np.ndarray

    @classmethod
    def from_data(cls, X: np.ndarray, sample_weight: np.ndarray | None = None, *,
                  feature_names=None) -> FeatureScaling:
        """Weighted centre and standard deviation of each column of a finite 2-D X.

        Raises
        ------
        ValueError
            If a feature is constant (over the rows with positive weight), or its
            spread cannot be represented by float64 covariances (outside about
            1e-152..1e152) or is below 1e-12 of its magnitude, so that centring would
            lose the data's resolution.
        """
        X = _as_float(X)
        w = np.ones(X.shape[0]) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        w = w / w.max()
        # Work on X / max|X| so that neither the sum nor the squares leave float64; block
        # by block, so that the float64 temporaries stay a few MB whatever the size of X.
        magnitude = _column_abs_max(X)
        magnitude[magnitude == 0] = 1.0
        blocks = _row_blocks(X)
        centre_unit = sum(w[b] @ (X[b] / magnitude) for b in blocks) / w.sum()
        spread_unit = np.sqrt(sum(w[b] @ (X[b] / magnitude - centre_unit) ** 2 for b in blocks) / w.sum())
        # Exactly 0 for a constant column (a mean of 150 values 0.1 is not exactly 0.1); only
        # columns whose spread is already below what float64 resolves need the extra pass.
        suspect = np.flatnonzero(spread_unit < _MIN_RELATIVE_SPREAD)
        if suspect.size:
            spread_unit[suspect[_constant_columns(X[:, suspect], w > 0)]] = 0.0
        return cls.from_unit_moments(centre_unit, spread_unit, magnitude, feature_names=feature_names)

    @classmethod
    def from_unit_moments(cls, centre_unit: np.ndarray, spread_unit: np.ndarray, magnitude: np.ndarray, *,
                          feature_names=None) -> FeatureScaling:
        """The scaling from each feature's weighted mean and standard deviation of ``X / magnitude``.

        ``magnitude`` is ``max |X|`` per column (1 where that is 0). Used by :meth:`from_data`
        and by reductions over blocks (dask input), which compute these moments block by block.
        """
        centre = centre_unit * magnitude
        scale = spread_unit * magnitude
        names = feature_names if feature_names is not None else [f"x{j}" for j in range(centre.shape[0])]
        constant = np.flatnonzero(spread_unit == 0)
        if constant.size:
            # Every component's variance there would be the reg_covar floor: the same
            # large term in the log-likelihood of every model except spherical ones, and
            # a "collapsed" component in every fit, which mislead any comparison.
            raise ValueError(
                f"Feature(s) {[names[j] for j in constant]} are constant (every row with a positive weight has "
                "the same value); a mixture cannot model a zero-variance column. Drop them (for example with "
                "sklearn.feature_selection.VarianceThreshold(), or --drop on the command line)."
            )
        for j in range(centre.shape[0]):
            if not _SCALE_LIMITS[0] <= scale[j] <= _SCALE_LIMITS[1]:
                raise ValueError(
                    f"Feature {names[j]!r} has a standard deviation of {scale[j]:.3g}; covariances in "
                    f"its units cannot be represented in float64 (its spread must lie within "
                    f"{_SCALE_LIMITS[0]:g}..{_SCALE_LIMITS[1]:g}). Rescale that column."
                )
            if spread_unit[j] < _MIN_RELATIVE_SPREAD:
                raise ValueError(
                    f"Feature {names[j]!r} varies by only {scale[j]:.3g} around {centre[j]:.6g} "
                    f"(a relative spread of {spread_unit[j]:.1e}); float64 cannot resolve it. "
                    "Subtract a reference value from that column first (or drop it if it is constant)."
                )
        return cls(centre=centre, scale=scale)

    @property
    def log_scale_sum(self) -> float:
        """``sum_j log scale_j``: what a log-density loses on the way back to data units."""
        return float(np.log(self.scale).sum())

    def transform(self, X: np.ndarray, dtype=np.float64) -> np.ndarray:
        """Standardised values ``(X - centre) / scale`` of shape (n_samples, n_features)."""
        X = _as_float(X)
        magnitude = np.maximum(_column_abs_max(X), np.abs(self.centre))
        magnitude[magnitude == 0] = 1.0
        # (x/m - c/m) / (s/m): no intermediate leaves float64 even near its limits.
        # Written block by block into Z, so that a float32 X costs no float64 copy.
        shift, spread = self.centre / magnitude, self.scale / magnitude
        Z = np.empty(X.shape, dtype=dtype)
        for b in _row_blocks(X):
            Z[b] = (X[b] / magnitude - shift) / spread
        return Z

    def inverse_transform(self, Z: np.ndarray) -> np.ndarray:
        """Values in data units, ``Z * scale + centre``."""
        return np.asarray(Z, dtype=np.float64) * self.scale + self.centre
