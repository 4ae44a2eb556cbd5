"""Reading mixture parameters out of an InferenceData, whatever produced it."""

from __future__ import annotations

import numbers
import warnings

import numpy as np

from ._validation import check_finite_rows

_MATRIX_DIMS = ("component", "feature", "feature_bis")
_NEEDED_DIMS = {"weights": ("component",), "means": ("component", "feature"), "cov": _MATRIX_DIMS,
                "chol": _MATRIX_DIMS}


def check_idata(idata, *, name: str = "idata", observed: bool = False) -> None:
    """Refuse anything that is not a mixture posterior, saying what is needed.

    A mixture posterior is an ``arviz.InferenceData`` whose ``posterior`` group holds
    ``weights`` (chain, draw, component), ``means`` (chain, draw, component, feature)
    and ``cov`` or ``chol`` (chain, draw, component, feature, feature_bis), as
    :meth:`BayesianGMM.fit` and :func:`em_to_idata` return. ``observed=True`` also
    requires the ``observed_data`` group (variable ``obs``).
    """
    import arviz as az

    what = "the output of BayesianGMM.fit or bayesgmm.em_to_idata"
    if not isinstance(idata, az.InferenceData):
        raise TypeError(f"{name} must be an arviz.InferenceData ({what}), got {type(idata).__name__}.")
    if "posterior" not in idata.groups():
        raise ValueError(f"{name} has no posterior group (groups: {list(idata.groups())}); expected {what}.")
    post = idata.posterior
    missing = [v for v in ("weights", "means") if v not in post]
    if missing:
        raise ValueError(f"{name}.posterior lacks {missing}; expected {what}.")
    if "cov" not in post and "chol" not in post:
        raise ValueError(f"{name}.posterior needs 'cov' or 'chol' (component covariances); expected {what}.")
    for var, tail in _NEEDED_DIMS.items():
        if var in post and tuple(sorted(post[var].dims)) != tuple(sorted(("chain", "draw") + tail)):
            raise ValueError(f"{name}.posterior[{var!r}] must have dims {('chain', 'draw') + tail}, got "
                             f"{post[var].dims}.")
    if post.sizes["chain"] * post.sizes["draw"] < 1 or post.sizes["component"] < 1 or post.sizes["feature"] < 1:
        raise ValueError(f"{name}.posterior is empty (sizes {dict(post.sizes)}).")
    if any(v in post for v in ("cov", "chol")) and post.sizes["feature_bis"] != post.sizes["feature"]:
        raise ValueError(f"{name}.posterior covariances are not square: {dict(post.sizes)}.")
    if observed:
        if "observed_data" not in idata.groups() or "obs" not in idata.observed_data:
            raise ValueError(f"{name} has no observed_data group with 'obs' (the training data): pass the "
                             "points explicitly, or use an idata from BayesianGMM.fit / em_to_idata(em, X).")
        obs = idata.observed_data["obs"]
        if obs.ndim != 2 or obs.sizes.get("feature", obs.shape[-1]) != post.sizes["feature"]:
            raise ValueError(f"{name}.observed_data['obs'] must have shape (n, {post.sizes['feature']}), got "
                             f"{obs.shape}.")


def feature_names(idata) -> list:
    """The posterior's feature coordinate as a plain list (str or int names)."""
    return [v.item() if hasattr(v, "item") else v for v in idata.posterior["feature"].values]


def feature_index(idata, feature, *, name: str = "feature") -> int:
    """Position of one feature given by name or by index (0 <= index < D)."""
    names = feature_names(idata)
    D = len(names)
    if isinstance(feature, str):
        matches = [j for j, n in enumerate(names) if str(n) == feature]
        if not matches:
            raise ValueError(f"{name}={feature!r} is not a feature of the posterior; features are {names}.")
        return matches[0]
    if isinstance(feature, (bool, np.bool_)) or not isinstance(feature, numbers.Integral):
        raise TypeError(f"{name} must be a feature name (str) or an integer index in [0, {D}), got {feature!r} "
                        f"({type(feature).__name__}).")
    if not 0 <= feature < D:
        raise ValueError(f"{name}={feature!r} is out of range: the posterior has {D} features {names} "
                         f"(indices 0..{D - 1}).")
    return int(feature)


def frame_to_array(frame, names: list, name: str, owner: str) -> np.ndarray:
    """A DataFrame's values in the posterior's feature order: matched by name when both are named."""
    import pandas as pd

    cols = list(frame.columns)
    if len(set(map(str, cols))) != len(cols):
        raise ValueError(f"{name} has duplicate column names: {cols}.")
    named_frame = all(isinstance(c, str) for c in cols)
    named_post = all(isinstance(n, str) for n in names)
    if named_frame and named_post:
        placeholder = names == [f"x{j}" for j in range(len(names))]
        if set(cols) == set(names):
            frame = frame[names]
        elif placeholder and len(cols) == len(names):
            warnings.warn(f"{name} has column names {cols}, but {owner} was fitted without feature names "
                          "(on an array): matching columns by position.", UserWarning, stacklevel=4)
        else:
            missing = [n for n in names if n not in cols]
            extra = [c for c in cols if c not in names]
            raise ValueError(f"{name}'s columns do not match the features of {owner}, {names}: missing "
                             f"{missing}, unexpected {extra}. Pass exactly these columns (any order), or a "
                             "NumPy array to match them by position.")
    bad = [f"{c!r} ({frame[c].dtype})" for c in frame.columns
           if not (pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_complex_dtype(frame[c]))]
    if bad:
        raise TypeError(f"{name} must be numeric; non-numeric column(s): {', '.join(bad)}. Encode or drop them.")
    return frame.to_numpy(dtype=float)


def check_points(X, names: list, *, name: str = "X", allow_1d: bool = False,
                 owner: str = "the posterior") -> np.ndarray:
    """Points at which to evaluate a posterior with features ``names``, as a finite (n, D) float array.

    A DataFrame is matched to the features by column name (reordered if needed);
    anything else by position. A 1-D array is one column when ``allow_1d`` or D == 1.
    """
    import pandas as pd

    D = len(names)
    if X is None or isinstance(X, (str, bytes, dict, set)):
        raise TypeError(f"{name} must be an array-like of numbers of shape (n_points, {D}), got "
                        f"{type(X).__name__}.")
    if isinstance(X, pd.DataFrame):
        arr = frame_to_array(X, names, name, owner)
    else:
        if isinstance(X, pd.Series) and not pd.api.types.is_numeric_dtype(X):
            raise TypeError(f"{name} must be numeric, got a Series of dtype {X.dtype}.")
        try:
            arr = np.asarray(X)
        except ValueError as err:  # ragged nested lists
            raise ValueError(f"{name} must be a rectangular array of shape (n_points, {D}): {err}") from None
        if arr.dtype.kind in "USMmcV" or (arr.dtype.kind == "O" and arr.size and not all(
                isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) for v in arr.ravel())):
            raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}"
                            + (f" (e.g. {arr.ravel()[0]!r})" if arr.size else "") + ".")
        arr = arr.astype(float)
    if arr.ndim == 1 and (allow_1d or D == 1):
        arr = arr[:, None]
    if arr.ndim != 2:
        hint = (f" For one point use np.reshape(point, (1, {D}))." if arr.ndim == 1 else "")
        raise ValueError(f"{name} must be 2-D of shape (n_points, {D}), got shape {arr.shape}.{hint}")
    if arr.shape[1] != D:
        raise ValueError(f"{name} has {arr.shape[1]} features (columns), but {owner} has {D}: {names}.")
    if arr.shape[0] == 0:
        raise ValueError(f"{name} has no rows: at least 1 point is needed.")
    check_finite_rows(arr, name, names)
    return arr


def check_fitted_em(em, *, name: str = "em"):
    """A fitted GaussianMixtureEM with finite parameters."""
    from .em import GaussianMixtureEM

    if not isinstance(em, GaussianMixtureEM):
        raise TypeError(f"{name} must be a fitted bayesgmm.GaussianMixtureEM, got {type(em).__name__}.")
    if not hasattr(em, "means_"):
        raise ValueError(f"{name} is not fitted: call {name}.fit(X) first.")
    if not (np.all(np.isfinite(em.means_)) and np.all(np.isfinite(em.weights_))
            and np.all(np.isfinite(em.covariances_))):
        raise ValueError(f"{name} has non-finite parameters (a failed fit); refit it.")
    return em


def posterior_arrays(idata) -> dict[str, np.ndarray]:
    """Draws flattened over (chain, draw): weights (S, K), means (S, K, D), cov and chol (S, K, D, D).

    Raises ``ValueError`` for draws that are not a valid mixture (non-finite values,
    weights that are negative or do not sum to 1, covariances that are not positive
    definite), which would otherwise give NaN or silently wrong summaries.
    """
    check_idata(idata)
    post = idata.posterior

    def flat(name, tail):
        da = post[name].transpose("chain", "draw", *tail)
        values = da.values.reshape((-1,) + da.shape[2:]).astype(float)
        if not np.all(np.isfinite(values)):
            raise ValueError(f"idata.posterior[{name!r}] contains NaN or infinite values.")
        return values

    weights = flat("weights", ("component",))
    if np.any(weights < 0) or np.any(np.abs(weights.sum(axis=1) - 1.0) > 1e-4):
        raise ValueError("idata.posterior['weights'] must be non-negative and sum to 1 over 'component' in "
                         "every draw.")
    means = flat("means", ("component", "feature"))
    mat = _MATRIX_DIMS
    if "chol" in post:
        chol = flat("chol", mat)
        cov = flat("cov", mat) if "cov" in post else chol @ np.swapaxes(chol, -1, -2)
        diag = np.diagonal(chol, axis1=-2, axis2=-1)
        if np.any(diag <= 0) or np.any(np.triu(chol, 1) != 0):
            raise ValueError("idata.posterior['chol'] must be lower-triangular with a positive diagonal.")
    else:
        cov = flat("cov", mat)
        try:
            chol = np.linalg.cholesky(cov)
        except np.linalg.LinAlgError:
            chol = None
        if chol is None or not np.all(np.isfinite(chol)):
            raise ValueError("idata.posterior['cov'] holds a covariance that is not positive definite.")
    if np.any(np.diagonal(cov, axis1=-2, axis2=-1) <= 0):
        raise ValueError("idata.posterior has component variances that are zero or negative (below float64's "
                         "range?); rescale the data.")
    return {"weights": weights, "means": means, "cov": cov, "chol": chol}


def em_to_idata(em, X=None):
    """An EM fit as a one-draw "posterior", to run it through the same summaries.

    Parameters
    ----------
    em : GaussianMixtureEM
        A fitted model.
    X : array-like of shape (n_samples, n_features), optional
        Stored as ``observed_data`` so summaries default to it. Must be finite and
        have the model's features (a DataFrame is matched by column name when the
        model was fitted on one).

    Returns
    -------
    arviz.InferenceData
        One chain, one draw, with ``weights``, ``means``, ``stds``, ``cov``,
        ``corr`` and ``chol``, as :meth:`BayesianGMM.fit` returns them.

    Examples
    --------
    >>> from bayesgmm import GaussianMixtureEM, em_to_idata, assignments
    >>> from bayesgmm.datasets import load_faithful
    >>> X = load_faithful().to_numpy()
    >>> idata = em_to_idata(GaussianMixtureEM(2, random_state=0).fit(X), X)
    >>> assignments(idata)["probability"].shape
    (272, 2)
    """
    import arviz as az
    import xarray as xr

    check_fitted_em(em)
    K, D = em.means_.shape
    names = [str(n) for n in em.feature_names_in_] if hasattr(em, "feature_names_in_") else list(range(D))
    if X is not None:
        X = check_points(X, names, name="X", owner="em")
    cov = np.asarray(em.full_covariances_, dtype=float)
    posterior = parameters_dataset(np.asarray(em.weights_, dtype=float)[None, None],
                                   np.asarray(em.means_, dtype=float)[None, None],
                                   np.linalg.cholesky(cov)[None, None], names)
    posterior.attrs["relabel_permuted_per_chain"] = [0]
    groups = {"posterior": posterior}
    if X is not None:
        X = np.asarray(X, dtype=float)
        groups["observed_data"] = xr.Dataset({"obs": (("obs_id", "feature"), X)},
                                             coords={"obs_id": np.arange(X.shape[0]), "feature": names})
    return az.InferenceData(**groups)


def parameters_dataset(weights, means, chol, names, *, centre=None, scale=None, correlations: bool = True,
                       chain=None, draw=None):
    """The mixture's parameters as an ``xarray.Dataset`` with named dims: the one layout of every fit.

    NUTS and VI draws (:func:`bayesgmm.inference.finalize`) and EM point estimates
    (:func:`em_to_idata`) all go through here, so they hold the same variables.
    (Long only for its docstring.)

    Parameters
    ----------
    weights : ndarray of shape (C, S, K)
        Component weights per chain and draw.
    means : ndarray of shape (C, S, K, D)
    chol : ndarray of shape (C, S, K, D, D)
        Lower Cholesky factors of the covariances.
    names : list
        Feature names (``feature`` and ``feature_bis`` coordinates).
    centre, scale : ndarray of shape (D,), optional
        When given, ``means`` and ``chol`` are on the standardised scale
        ``z = (x - centre) / scale`` and are moved to the data's units after every
        derived quantity is computed on that scale (nothing under- or overflows
        whatever the units).
    correlations : bool, default=True
        Also store ``corr`` (False for diagonal covariances, whose correlations are 0).
    chain, draw : array-like, optional
        Coordinates (default ``0..C-1`` and ``0..S-1``).

    Returns
    -------
    xarray.Dataset
        ``weights`` (chain, draw, component), ``means`` and ``stds`` (..., component,
        feature), ``cov``, ``chol`` and ``corr`` (..., component, feature, feature_bis),
        in data units.

    Examples
    --------
    >>> import numpy as np
    >>> ds = parameters_dataset(np.full((1, 1, 2), 0.5), np.zeros((1, 1, 2, 3)),
    ...                         np.broadcast_to(2 * np.eye(3), (1, 1, 2, 3, 3)), ["a", "b", "c"])
    >>> ds["stds"].values[0, 0, 0].tolist(), ds["corr"].dims[-2:]
    ([2.0, 2.0, 2.0], ('feature', 'feature_bis'))
    """
    import xarray as xr

    weights, means, chol = (np.asarray(a, dtype=float) for a in (weights, means, chol))
    D = means.shape[-1]
    centre = np.zeros(D) if centre is None else np.asarray(centre, dtype=float)
    scale = np.ones(D) if scale is None else np.asarray(scale, dtype=float)
    cov_z = chol @ np.swapaxes(chol, -1, -2)
    stds_z = np.sqrt(np.diagonal(cov_z, axis1=-2, axis2=-1))
    chain_draw = ("chain", "draw")
    vector, matrix = (*chain_draw, "component", "feature"), (*chain_draw, *_MATRIX_DIMS)
    variables = {
        "weights": ((*chain_draw, "component"), weights),
        "means": (vector, centre + scale * means),
        "stds": (vector, scale * stds_z),
        "cov": (matrix, np.outer(scale, scale) * cov_z),
        "chol": (matrix, scale[:, None] * chol),
    }
    if correlations:
        variables["corr"] = (matrix, cov_z / (stds_z[..., :, None] * stds_z[..., None, :]))
    n_chain, n_draw, K = weights.shape
    coords = {"chain": np.arange(n_chain) if chain is None else chain,
              "draw": np.arange(n_draw) if draw is None else draw,
              "component": np.arange(K), "feature": list(names), "feature_bis": list(names)}
    return xr.Dataset(variables, coords=coords)
