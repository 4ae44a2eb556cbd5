"""The values passed along the Bayesian pipeline: prepared data and the model's specification.

:meth:`BayesianGMM.fit` checks and standardises X once into a
:class:`PreparedData`, takes the model's :class:`ModelSpec` (config plus the
covariance strategy object), and hands both to the model builder
(:func:`bayesgmm.bayes_model.declare_model`), the start, the samplers and the
post-processing (:mod:`bayesgmm.inference`): none of them reads the estimator's
state.

Examples
--------
>>> import numpy as np
>>> from bayesgmm.pipeline import prepare_data
>>> data = prepare_data(np.array([[0.0, 1.0], [2.0, 5.0], [4.0, 3.0]]), n_components=2)
>>> data.names, data.centre.tolist(), data.Z.shape
(['x0', 'x1'], [2.0, 3.0], (3, 2))
"""

from __future__ import annotations

import numbers
import warnings
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pandas as pd

from ._validation import check_finite_rows, check_n_components, check_numeric_columns
from .bayes_covariance import BayesCovariance, get_bayes_covariance
from .priors import Priors
from .scaling import FeatureScaling

__all__ = ["PreparedData", "ModelSpec", "prepare_data", "as_matrix", "recording_resolution"]

#: Data whose mean lies more than this many prior scales from a fixed ``priors.location``, or
#: whose sd differs from a fixed ``priors.scale`` by more than this factor, get a warning.
PRIOR_FAR_OFFSET = 100.0
PRIOR_FAR_RATIO = 1000.0


class PreparedData(NamedTuple):
    """Checked training data: X in data units, Z standardised, and the scaling between them.

    ``Z = (X - centre) / scale``; ``names`` are the feature names (strings).
    """

    X: np.ndarray
    Z: np.ndarray
    names: list
    centre: np.ndarray
    scale: np.ndarray
    #: Per feature, the step (data units) the values were recorded to; 0 where exact.
    rounding: np.ndarray | None = None

    @property
    def noise_variance_z(self) -> np.ndarray:
        """The rounding error's variance ``(h / s)**2 / 12`` per feature, on the standardised scale."""
        if self.rounding is None:
            return np.zeros(len(self.names))
        return (np.asarray(self.rounding, dtype=float) / self.scale) ** 2 / 12.0

    @property
    def rounded(self) -> bool:
        """True when some feature carries a rounding error (the model then adds it to every covariance)."""
        return bool(np.any(self.noise_variance_z > 0))

    @property
    def scaling(self) -> dict:
        """``{"centre", "scale", "feature"}``, as stored with a fit."""
        return {"centre": self.centre, "scale": self.scale, "feature": list(self.names)}


@dataclass(frozen=True)
class ModelSpec:
    """What the model's structure depends on: K, the covariance strategy, the priors, the ordering.

    ``config`` is :attr:`BayesianGMM.config` (the key of the compiled-logp cache).
    """

    n_components: int
    covariance: BayesCovariance
    priors: Priors
    ordered: bool | int | str = False
    config: dict = field(default_factory=dict, compare=False)

    def order_feature(self, names: list) -> int | None:
        """Index of the feature the means are ordered along (None: unordered); checks ``ordered``."""
        if self.ordered is False:
            return None
        if self.ordered is True:
            index = 0
        elif isinstance(self.ordered, str):
            if self.ordered not in names:
                raise ValueError(f"ordered={self.ordered!r} is not a feature; features are {names}.")
            index = names.index(self.ordered)
        elif not 0 <= int(self.ordered) < len(names):
            raise ValueError(f"ordered={self.ordered} is out of range for {len(names)} features "
                             f"(allowed: 0..{len(names) - 1}, or a feature name).")
        else:
            index = int(self.ordered)
        latent = [f"means_z_{name}" + ("_ordered" if j == index else "") for j, name in enumerate(names)]
        clashes = sorted({name for name in latent if latent.count(name) > 1})
        if clashes:
            raise ValueError(f"With ordered={self.ordered!r} the feature names {names} give clashing latent "
                             f"variables {clashes}; rename the features.")
        return index

    def n_free_parameters(self, n_features: int) -> int:
        """Free parameters of the model: simplex, means and covariances."""
        K, D = self.n_components, n_features
        return (K - 1) + K * D + self.covariance.n_parameters(K, D)


# ---------------------------------------------------------------------- data
def prepare_data(X, *, n_components: int = 1, priors: Priors | None = None,
                 covariance_type: str | None = None) -> PreparedData:
    """Check training data and standardise it; every data error is raised here.

    The scaling is the data's (see :class:`~bayesgmm.scaling.FeatureScaling`:
    computed so that it neither under- nor overflows), or ``priors.location`` /
    ``priors.scale`` where those are fixed. The model only ever sees the
    standardised values, so the posterior on that scale does not depend on the
    units (or the offset) of any feature. With ``covariance_type`` "full" or "tied",
    data with (nearly) linearly dependent features, or no more rows than features,
    are refused as EM refuses them.
    """
    if isinstance(X, PreparedData):
        return X
    priors = Priors() if priors is None else priors
    X, names = as_matrix(X)
    n_rows = X.shape[0]
    check_n_components(n_components, n_rows)
    if n_rows < 2:
        raise ValueError(f"X needs at least 2 rows to fit a mixture, got {n_rows}.")
    scaling = _prior_scaling(priors, FeatureScaling.from_data(X, feature_names=names), names)
    Z = scaling.transform(X)
    if not np.all(np.isfinite(Z)):
        if priors.location is not None or priors.scale is not None:
            raise ValueError("X cannot be standardised in float64 with priors['location'] and "
                             "priors['scale'] (values out of range); check that they are in X's units.")
        # Not reached with the data's own scaling: FeatureScaling's limits rule it out.
        raise ValueError("X cannot be standardised in float64 (values out of range); rescale its columns.")
    if covariance_type is not None:
        get_bayes_covariance(covariance_type).check_data_rank(Z, names)
    rounding = priors.rounding_vector(X.shape[1])
    if rounding is None:
        rounding = recording_resolution(X)
    return PreparedData(X, Z, names, np.asarray(scaling.centre, dtype=float), np.asarray(scaling.scale, dtype=float),
                        rounding)


def recording_resolution(X) -> np.ndarray:
    """Per feature, the step its values look recorded to: what ``priors["rounding"] = "auto"`` uses.

    A feature whose values are all distinct gets 0: no component can collapse onto
    one of its values. A feature with tied values gets the median spacing between
    its distinct values (the grid step for values rounded to a grid, e.g. 1 for
    whole minutes, robust to a few finer gaps where the grid is irregular). It
    scales with the data, so the model does not depend on the units.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Finite values.

    Returns
    -------
    ndarray of shape (n_features,)

    Examples
    --------
    >>> recording_resolution(np.array([[1.0, 0.5], [2.0, 0.25], [2.0, 0.75], [3.0, 0.125]])).tolist()
    [1.0, 0.0]
    """
    X = np.asarray(X, dtype=float)
    out = np.zeros(X.shape[1])
    for j in range(X.shape[1]):
        distinct = np.unique(X[:, j])
        if 1 < distinct.size < X.shape[0]:
            out[j] = float(np.median(np.diff(distinct)))
    return out


def _prior_scaling(priors: Priors, data_scaling: FeatureScaling, names: list[str]) -> FeatureScaling:
    """The ``c`` and ``s`` the priors are set on: the data's, or ``priors.location``/``scale`` where fixed.

    Data far outside a fixed prior (most likely given in other units) get a
    warning, not an error.
    """
    D = len(names)
    location, scale = priors.location_vector(D), priors.scale_vector(D)  # check the lengths
    if location is None and scale is None:
        return data_scaling
    centre = np.asarray(data_scaling.centre if location is None else location, dtype=float)
    spread = np.asarray(data_scaling.scale if scale is None else scale, dtype=float)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        offset = np.abs(np.asarray(data_scaling.centre) - centre) / spread
        ratio = np.asarray(data_scaling.scale) / spread
    far = ~((offset <= PRIOR_FAR_OFFSET) & (ratio >= 1 / PRIOR_FAR_RATIO) & (ratio <= PRIOR_FAR_RATIO))
    if far.any():
        details = "; ".join(f"{names[j]!r}: mean {float(data_scaling.centre[j]):.4g}, sd "
                            f"{float(data_scaling.scale[j]):.4g} vs location {centre[j]:.4g}, scale "
                            f"{spread[j]:.4g}" for j in np.flatnonzero(far)[:5])
        warnings.warn(f"X lies far outside the prior set by priors['location'] and priors['scale'] ({details}); "
                      "check that they are in X's units.", UserWarning, stacklevel=5)
    return FeatureScaling(centre=centre, scale=spread)


def as_matrix(X, name: str = "X") -> tuple[np.ndarray, list[str]]:
    """X as a finite 2-D float64 array and its feature names; every error names the culprit.

    DataFrames, strings, mappings and ragged lists are checked by
    :func:`bayesgmm._validation.check_numeric_columns`; Series, sparse, complex,
    object arrays, shapes and non-finite values here.
    """
    if isinstance(X, pd.Series):
        raise ValueError(f"{name} must be 2D (rows x features), got a pandas Series; use {name}.to_frame() for "
                         "a single feature.")
    if hasattr(X, "toarray") or hasattr(X, "tocsr"):
        raise TypeError(f"{name} is a sparse matrix; pass a dense array (e.g. {name}.toarray()).")
    check_numeric_columns(X, name)
    if isinstance(X, pd.DataFrame):
        names = [str(c) for c in X.columns]
        columns = [X.iloc[:, j].to_numpy(dtype=np.float64, na_value=np.nan) for j in range(X.shape[1])]
        array = np.column_stack(columns) if columns else np.empty((X.shape[0], 0))
    else:
        names = None
        array = _numeric_array(X, name)
    if array.ndim != 2:
        hint = f"; use {name}.reshape(-1, 1) for a single feature" if array.ndim == 1 else ""
        raise ValueError(f"{name} must be a 2D array of shape (n_samples, n_features), got a {array.ndim}D array "
                         f"of shape {array.shape}{hint}.")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {array.shape}); it needs at least one row and one feature.")
    array = np.ascontiguousarray(array, dtype=np.float64)
    names = names if names is not None else [f"x{j}" for j in range(array.shape[1])]
    check_finite_rows(array, name, names)
    return array, names


def _numeric_array(X, name: str) -> np.ndarray:
    """An array-like (not a DataFrame) as a real array; object arrays checked value by value."""
    try:
        array = np.asarray(X)
    except ValueError as err:  # ragged nested lists
        raise ValueError(f"{name} must be a rectangular 2D array (rows x features): {err}") from err
    if array.dtype.kind == "c":
        raise ValueError(f"{name} holds complex numbers; a Gaussian mixture needs real features.")
    if array.dtype.kind not in "biuf":
        if array.ndim != 2:
            raise ValueError(f"{name} must be a 2D numeric array (rows x features), got {array.ndim}D "
                             f"of dtype {array.dtype}.")
        for j in range(array.shape[1]):
            for value in array[:, j]:
                if isinstance(value, (str, bytes)) or not isinstance(value, (numbers.Real, type(None))):
                    raise ValueError(f"{name} column {j} holds non-numeric values (e.g. {value!r}); a Gaussian "
                                     "mixture needs numeric features.")
        array = array.astype(np.float64)
    return array
