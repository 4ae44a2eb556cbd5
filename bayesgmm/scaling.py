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


@dataclass(frozen=True)
class FeatureScaling:
    """Centre and spread of every feature.

    Attributes
    ----------
    centre : ndarray of shape (n_features,)
        Weighted mean of each feature.
    scale : ndarray of shape (n_features,)
        Weighted standard deviation of each feature (1 for a feature with no spread
        around 0, its absolute value for another constant feature).
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
            If a feature's spread cannot be represented by float64 covariances
            (outside about 1e-152..1e152) or is below 1e-12 of its magnitude, so that
            centring would lose the data's resolution.
        """
        X = np.asarray(X, dtype=np.float64)
        w = np.ones(X.shape[0]) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        w = w / w.max()
        # Work on X / max|X| so that neither the sum nor the squares leave float64.
        magnitude = np.abs(X).max(axis=0)
        magnitude[magnitude == 0] = 1.0
        unit = X / magnitude
        centre_unit = (w @ unit) / w.sum()
        dev = unit - centre_unit
        spread_unit = np.sqrt((w @ dev**2) / w.sum())
        return cls.from_unit_moments(centre_unit, spread_unit, magnitude, feature_names=feature_names)

    @classmethod
    def from_unit_moments(cls, centre_unit: np.ndarray, spread_unit: np.ndarray, magnitude: np.ndarray, *,
                          feature_names=None) -> FeatureScaling:
        """The scaling from each feature's weighted mean and standard deviation of ``X / magnitude``.

        ``magnitude`` is ``max |X|`` per column (1 where that is 0). Used by :meth:`from_data`
        and by reductions over blocks (dask input), which compute these moments block by block.
        """
        centre = centre_unit * magnitude
        constant = spread_unit == 0
        scale = np.where(constant, np.where(centre == 0, 1.0, np.abs(centre)), spread_unit * magnitude)
        names = feature_names if feature_names is not None else [f"x{j}" for j in range(centre.shape[0])]
        for j in np.flatnonzero(~constant):
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
                    "Subtract a reference value from that column first."
                )
        return cls(centre=centre, scale=scale)

    @property
    def log_scale_sum(self) -> float:
        """``sum_j log scale_j``: what a log-density loses on the way back to data units."""
        return float(np.log(self.scale).sum())

    def transform(self, X: np.ndarray, dtype=np.float64) -> np.ndarray:
        """Standardised values ``(X - centre) / scale`` of shape (n_samples, n_features)."""
        X = np.asarray(X, dtype=np.float64)
        magnitude = np.maximum(np.abs(X).max(axis=0, initial=0.0), np.abs(self.centre))
        magnitude[magnitude == 0] = 1.0
        # (x/m - c/m) / (s/m): no intermediate leaves float64 even near its limits.
        Z = (X / magnitude - self.centre / magnitude) / (self.scale / magnitude)
        return Z.astype(dtype, copy=False)

    def inverse_transform(self, Z: np.ndarray) -> np.ndarray:
        """Values in data units, ``Z * scale + centre``."""
        return np.asarray(Z, dtype=np.float64) * self.scale + self.centre
