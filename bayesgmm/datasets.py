"""Bundled data and a simulator with known truth."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import numpy as np
import pandas as pd
from sklearn.utils import check_random_state

from ._validation import check_n_components
from .covariance import get_covariance_type

__all__ = ["load_faithful", "make_mixture", "MixtureParameters"]


def load_faithful() -> pd.DataFrame:
    """Old Faithful geyser eruptions (272 rows).

    Columns are ``eruptions`` (eruption time, minutes) and ``waiting`` (time to the
    next eruption, minutes; recorded in whole minutes, so it has many ties). This
    is the public dataset from R's ``datasets`` package (Azzalini and Bowman, 1990).

    Returns
    -------
    data : pandas.DataFrame of shape (272, 2)

    Examples
    --------
    >>> from bayesgmm.datasets import load_faithful
    >>> load_faithful().shape
    (272, 2)
    """
    with resources.files("bayesgmm.data").joinpath("faithful.csv").open("r") as fh:
        return pd.read_csv(fh)


@dataclass(frozen=True)
class MixtureParameters:
    """True parameters of a simulated mixture (covariances in scikit-learn's shapes)."""

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    covariance_type: str
    labels: np.ndarray


def make_mixture(
    n_samples: int = 500,
    n_components: int = 3,
    n_features: int = 2,
    covariance_type: str = "full",
    random_state=None,
    *,
    separation: float = 6.0,
    weights=None,
) -> tuple[np.ndarray, MixtureParameters]:
    """Draw data from a random Gaussian mixture and return the truth with it.

    Parameters
    ----------
    n_samples : int, default=500
        Number of rows.
    n_components : int, default=3
    n_features : int, default=2
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
    random_state : int, RandomState instance or None, default=None
    separation : float, default=6.0
        Minimum distance between two means, in units of the components' typical
        standard deviation (about 1). Use ~2 for overlapping components.
    weights : array-like of shape (n_components,), default=None
        Mixing weights; equal weights when None.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
    truth : MixtureParameters
        ``weights``, ``means``, ``covariances`` (shaped for ``covariance_type``) and
        the component ``labels`` of every row.

    Examples
    --------
    >>> from bayesgmm.datasets import make_mixture
    >>> X, truth = make_mixture(100, n_components=2, random_state=0)
    >>> X.shape, truth.means.shape
    ((100, 2), (2, 2))
    """
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}.")
    if isinstance(n_features, bool) or not isinstance(n_features, (int, np.integer)) or n_features < 1:
        raise ValueError(f"n_features must be a positive integer, got {n_features!r}.")
    K = check_n_components(n_components, n_samples)
    cov_type = get_covariance_type(covariance_type)
    rng = check_random_state(random_state)
    D = int(n_features)

    weights = _check_weights(weights, K)
    means = _separated_means(rng, K, D, separation)
    covariances = _random_covariances(rng, cov_type.name, K, D)
    labels = rng.choice(K, size=n_samples, p=weights)
    full = cov_type.full_matrices(covariances, K, D)
    X = np.empty((n_samples, D))
    for k in range(K):
        idx = labels == k
        X[idx] = rng.multivariate_normal(means[k], full[k], size=int(idx.sum()))
    return X, MixtureParameters(weights, means, covariances, cov_type.name, labels)


def _check_weights(weights, K: int) -> np.ndarray:
    if weights is None:
        return np.full(K, 1.0 / K)
    weights = np.asarray(weights, dtype=float)
    if weights.shape != (K,) or np.any(weights < 0) or not np.isclose(weights.sum(), 1.0):
        raise ValueError(f"weights must be {K} non-negative numbers summing to 1.")
    return weights


def _separated_means(rng, K: int, D: int, separation: float) -> np.ndarray:
    """K means drawn uniformly in a box, redrawn until every pair is at least ``separation`` apart."""
    spread = separation * max(1.0, K ** (1.0 / D))
    for _ in range(1000):
        means = rng.uniform(-spread, spread, size=(K, D))
        gaps = np.linalg.norm(means[:, None] - means[None], axis=-1)[np.triu_indices(K, 1)]
        if gaps.size == 0 or gaps.min() >= separation:
            return means
    raise ValueError(f"Could not place {K} means {separation} apart; lower separation.")  # pragma: no cover


def _random_spd(rng, D: int) -> np.ndarray:
    """A random covariance matrix of average variance 1."""
    A = rng.normal(size=(D, D))
    cov = A @ A.T / D + 0.5 * np.eye(D)
    return cov / np.trace(cov) * D


#: Random covariances of average variance about 1, in scikit-learn's shapes, per covariance type.
_RANDOM_COVARIANCES = {
    "full": lambda rng, K, D: np.stack([_random_spd(rng, D) for _ in range(K)]),
    "tied": lambda rng, K, D: _random_spd(rng, D),
    "diag": lambda rng, K, D: rng.uniform(0.5, 1.5, size=(K, D)),
    "spherical": lambda rng, K, D: rng.uniform(0.5, 1.5, size=K),
}


def _random_covariances(rng, covariance_type: str, K: int, D: int) -> np.ndarray:
    """Random covariances of average variance about 1, in scikit-learn's shapes for ``covariance_type``."""
    return _RANDOM_COVARIANCES[covariance_type](rng, K, D)
