"""Input checks shared by the EM fitter and the Bayesian model.

Every public entry point funnels its data through here so that bad input gets
the same clear ``ValueError``/``TypeError`` wherever it enters.
"""

from __future__ import annotations

import numbers
import warnings

import numpy as np
from sklearn.utils import check_array


def check_data(X, *, name: str = "X", dtype=(np.float64, np.float32), min_samples: int = 1) -> np.ndarray:
    """Return X as a finite 2-D float array of shape (n_samples, n_features).

    Raises
    ------
    ValueError
        If X is not 2-D, is empty, or contains NaN or infinite values.
    """
    check_numeric_columns(X, name)
    X = check_array(X, dtype=list(dtype), ensure_2d=True, ensure_min_samples=min_samples, input_name=name,
                    ensure_all_finite=False)
    check_finite_rows(X, name)
    return X


def check_finite_rows(X: np.ndarray, name: str = "X", names: list | None = None) -> None:
    """Raise a ValueError naming the rows (first five) and features of a 2-D ``X`` with NaN or infinite values."""
    finite = np.isfinite(X)
    if finite.all():
        return
    names = names if names is not None else [f"x{j}" for j in range(X.shape[1])]
    rows = np.flatnonzero(~finite.all(axis=1))
    cols = [names[j] for j in np.flatnonzero(~finite.all(axis=0))]
    kinds = " and ".join(k for k, m in (("NaN (missing values)", np.isnan(X).any()),
                                         ("infinity", np.isinf(X).any())) if m)
    raise ValueError(
        f"{name} contains {kinds} in {rows.size} of {X.shape[0]} rows (first: {rows[:5].tolist()}), in "
        f"feature(s) {cols}. Rows are never dropped silently: remove or impute them first (e.g. "
        f"{name}.dropna() for a DataFrame)."
    )


def check_n_components(n_components, n_samples: int | None = None) -> int:
    """Validate ``n_components`` (a positive integer, at most the number of samples)."""
    if isinstance(n_components, bool) or not isinstance(n_components, numbers.Integral):
        raise TypeError(f"n_components must be a positive integer, got {n_components!r}.")
    if n_components < 1:
        raise ValueError(f"n_components must be a positive integer, got {n_components}.")
    if n_samples is not None and n_samples < n_components:
        raise ValueError(
            f"Expected n_samples >= n_components but got n_components = {n_components}, "
            f"n_samples = {n_samples}."
        )
    return int(n_components)


def check_sample_weight(sample_weight, n_samples: int, dtype=np.float64) -> np.ndarray:
    """Validate sample weights: finite, non-negative, not all zero, one per row."""
    if sample_weight is None:
        return np.ones(n_samples, dtype=dtype)
    if isinstance(sample_weight, numbers.Number):
        sample_weight = np.full(n_samples, sample_weight, dtype=dtype)
    check_numeric_columns(sample_weight, "sample_weight")
    sample_weight = check_array(
        sample_weight, ensure_2d=False, dtype=dtype, input_name="sample_weight"
    )
    if sample_weight.ndim != 1 or sample_weight.shape[0] != n_samples:
        raise ValueError(
            f"sample_weight must have shape ({n_samples},), got {sample_weight.shape}."
        )
    if np.any(sample_weight < 0):
        raise ValueError("sample_weight must be non-negative; found negative weights.")
    if not np.any(sample_weight > 0):
        raise ValueError("sample_weight must not be all zero.")
    return sample_weight


def check_probability(value, name: str) -> float:
    """Check that ``value`` is a probability strictly between 0 and 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number in (0, 1), got {value!r}.")
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must be in (0, 1), got {value}.")
    return float(value)


# ------------------------------------------------ scalar parameters (summaries, plots)
def check_integer_param(value, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """An integer (not bool, not a float such as 2.0 or 2.5) within [minimum, maximum]."""
    allowed = "an integer" + (f" >= {minimum}" if minimum is not None else "") + (
        f" and <= {maximum}" if maximum is not None else "")
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be {allowed}, got {value!r} ({type(value).__name__}).")
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(f"{name} must be {allowed}, got {value!r}.")
    return int(value)


def check_real_param(value, name: str, *, minimum: float | None = None, strict: bool = False) -> float:
    """A finite real number (not bool), at least ``minimum`` (above it when ``strict``)."""
    bound = "" if minimum is None else f" {'>' if strict else '>='} {minimum:g}"
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a finite number{bound}, got {value!r} ({type(value).__name__}).")
    value = float(value)
    if not np.isfinite(value) or (minimum is not None and (value <= minimum if strict else value < minimum)):
        raise ValueError(f"{name} must be a finite number{bound}, got {value!r}.")
    return value


def check_option(value, name: str, options) -> object:
    """One of a fixed set of values (compared with ==, bools only against bools)."""
    for option in options:
        if isinstance(option, bool) != isinstance(value, (bool, np.bool_)):
            continue
        try:
            equal = bool(value == option)
        except (TypeError, ValueError):  # e.g. an array: never one of the options
            equal = False
        if equal:
            return option
    raise ValueError(f"{name} must be one of {list(options)!r}, got {value!r}.")


def check_seed(value, name: str = "random_seed"):
    """None, a non-negative integer, or a numpy Generator / SeedSequence."""
    if value is None or isinstance(value, (np.random.Generator, np.random.SeedSequence)):
        return value
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be None or a non-negative integer, got {value!r} ({type(value).__name__}).")
    if value < 0:
        raise ValueError(f"{name} must be None or a non-negative integer, got {value!r}.")
    return int(value)


def check_numeric_columns(X, name: str = "X") -> None:
    """Refuse what NumPy and scikit-learn would refuse without naming the problem.

    A DataFrame with duplicated or non-numeric columns (named), a string, mapping or
    set in place of an array, a ragged nested list, and non-numeric values.
    """
    import pandas as pd

    if isinstance(X, (str, bytes, dict, set)) and not hasattr(X, "tocsr"):  # scipy's dok_array is a dict
        raise TypeError(f"{name} must be array-like of shape (n_samples, n_features) or a DataFrame, "
                        f"got a {type(X).__name__}.")
    if isinstance(X, pd.DataFrame):
        names = [str(c) for c in X.columns]
        duplicated = sorted({c for c in names if names.count(c) > 1})
        if duplicated:
            raise ValueError(f"{name} has duplicated column names {duplicated}; feature names must be unique.")
        bad = []
        for column, dtype in zip(X.columns, X.dtypes):
            if isinstance(dtype, pd.CategoricalDtype) or pd.api.types.is_complex_dtype(dtype):
                bad.append(f"{column!r} ({dtype})")
            elif not pd.api.types.is_numeric_dtype(dtype):
                kind = pd.api.types.infer_dtype(X[column], skipna=True)
                if not pd.api.types.is_object_dtype(dtype) or kind not in _NUMERIC_KINDS:
                    bad.append(f"{column!r} ({dtype}, holding {kind} values)")
        if bad:
            raise ValueError(
                f"{name} has non-numeric column(s) {', '.join(bad)}; a Gaussian mixture needs numeric features. "
                "Drop them or encode them as numbers first."
            )
        return
    if isinstance(X, (list, tuple)):
        try:
            arr = np.asarray(X)
        except ValueError as err:  # ragged nested lists
            raise ValueError(f"{name} must be a rectangular array (rows of equal length): {err}") from None
        if arr.dtype.kind in "USO":
            for value in arr.ravel():
                if isinstance(value, (str, bytes)):
                    raise ValueError(f"{name} holds non-numeric values (e.g. {value!r}); a Gaussian mixture "
                                     "needs numeric features.")


_NUMERIC_KINDS = ("integer", "floating", "mixed-integer-float", "decimal", "boolean", "empty")


def is_dask_collection(obj) -> bool:
    """A dask collection (array, DataFrame): fitted out of core by ``_dask.py``. Never imports dask."""
    import sys

    return "dask" in sys.modules and sys.modules["dask"].is_dask_collection(obj)


def renamed_argument(new_value, old_value, *, new: str, old: str, default, stacklevel: int = 3):
    """The value of an argument renamed from ``old`` to ``new``: ``old``'s, with a DeprecationWarning, if given.

    ``old_value`` is None when the caller did not pass the old name. Passing both
    (the new one with a value other than its ``default``) is a TypeError.
    """
    if old_value is None:
        return new_value
    if not (new_value is default or new_value == default):
        raise TypeError(f"Pass {new} only; {old} is its deprecated name.")
    warnings.warn(f"{old} is deprecated and will be removed; use {new} instead.", DeprecationWarning,
                  stacklevel=stacklevel)
    return old_value
