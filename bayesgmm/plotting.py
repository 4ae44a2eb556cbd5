"""Matplotlib plots of fitted mixtures.

Each ``plot_*`` function draws what a summary object already holds
(:func:`assignments`, :func:`predictive_density`, :func:`select_model`'s
table...), takes an optional ``ax`` (or ``fig``) and returns it; it computes no
statistics. The two quantities that pick what to draw when there are many
features are computed apart, by functions that return them as data:
:func:`feature_ranking` (which features separate the clusters, a pandas
DataFrame) and :func:`projection` (all features in two dimensions, an xarray
Dataset), drawn by :func:`plot_pairs` (``features=``) and :func:`plot_projection`.
"""

from __future__ import annotations

import warnings

import arviz as az
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr
from matplotlib import MatplotlibDeprecationWarning
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Ellipse

from ._posterior import check_fitted_em, check_idata, posterior_arrays
from ._validation import check_data, check_integer_param, check_option, check_probability, renamed_argument

__all__ = [
    "feature_ranking",
    "projection",
    "plot_projection",
    "plot_clusters",
    "plot_density_1d",
    "plot_pairs",
    "plot_weights",
    "plot_uncertainty",
    "plot_selection",
    "plot_loo",
    "plot_trace",
]


def _ax(ax):
    if ax is not None and not isinstance(ax, Axes):
        raise TypeError(f"ax must be a matplotlib Axes or None, got {type(ax).__name__}.")
    return ax if ax is not None else plt.subplots(figsize=(6, 4.5))[1]


def _check_dataset(data, name: str, variables, source: str) -> None:
    if not isinstance(data, xr.Dataset):
        raise TypeError(f"{name} must be the xarray.Dataset returned by {source}, got {type(data).__name__}.")
    missing = [v for v in variables if v not in data]
    if missing:
        raise ValueError(f"{name} lacks {missing}; expected the output of {source}.")


def _check_assignment(assignment, n_rows: int | None = None) -> None:
    _check_dataset(assignment, "assignment", ("most_probable", "max_probability"), "bayesgmm.assignments")
    if "component" not in assignment.sizes:
        raise ValueError("assignment has no 'component' dim; expected the output of bayesgmm.assignments.")
    if n_rows is not None and assignment["most_probable"].size != n_rows:
        raise ValueError(f"assignment has {assignment['most_probable'].size} rows but X has {n_rows}: compute it "
                         "with bayesgmm.assignments(idata, X) on the same X.")
    labels = np.asarray(assignment["most_probable"].values)
    K = assignment.sizes["component"]
    if labels.dtype.kind not in "iu" or labels.size and (labels.min() < 0 or labels.max() >= K):
        raise ValueError(f"assignment['most_probable'] must hold component indices 0..{K - 1}.")


def _check_table(table, name: str, columns, source: str) -> None:
    if not isinstance(table, pd.DataFrame):
        raise TypeError(f"{name} must be the pandas.DataFrame {source}, got {type(table).__name__}.")
    missing = [c for c in columns if c not in table.columns]
    if missing:
        raise ValueError(f"{name} lacks the column(s) {missing}; expected {source}.")
    if table.empty:
        raise ValueError(f"{name} is empty: nothing to plot.")


def _feature_pair(features, X, D: int) -> list[int]:
    """Two distinct feature indices (or DataFrame column names)."""
    if isinstance(features, (str, bytes)) or not hasattr(features, "__len__") or len(features) != 2:
        raise TypeError(f"features must be a pair of feature indices (or column names), got {features!r}.")
    columns = list(X.columns) if isinstance(X, pd.DataFrame) else None
    idx = []
    for f in features:
        if isinstance(f, str):
            if columns is None or f not in columns:
                raise ValueError(f"features: {f!r} is not a column of X (columns: {columns}).")
            idx.append(columns.index(f))
        else:
            idx.append(check_integer_param(f, "features", minimum=0, maximum=D - 1))
    if idx[0] == idx[1]:
        raise ValueError(f"features must be two different features, got {features!r}.")
    return idx


def _feature_names(X, D: int, *, idata=None, names=None) -> list[str]:
    """The D feature names: given, X's columns, the posterior's ``feature`` coordinate, else ``feature j``."""
    if names is not None:
        return _names(names, [], D)
    if isinstance(X, pd.DataFrame) and X.shape[1] == D:
        return [str(c) for c in X.columns]
    if idata is not None and "feature" in idata.posterior.coords and idata.posterior.sizes["feature"] == D:
        values = [str(f) for f in idata.posterior["feature"].values]
        if values != [str(j) for j in range(D)]:
            return values
    return [f"feature {j}" for j in range(D)]


def _wrap(name: str, width: int = 22) -> str:
    """A long feature name on several lines (broken at spaces, underscores or slashes), for an axis label."""
    if len(name) <= width:
        return name
    marked = name.replace("_", "_\x00").replace("/", "/\x00").replace(" ", " \x00")
    lines, line = [], ""
    for piece in marked.split("\x00"):
        if line and len(line) + len(piece) > width:
            lines.append(line.rstrip())
            line = ""
        line += piece
    return "\n".join(lines + [line.rstrip()])


def _colors(n: int):
    cmap = plt.get_cmap("tab10")
    return [cmap(k % 10) for k in range(n)]


def _ellipse(ax, mean, cov, n_sigma, **kwargs):
    vals, vecs = np.linalg.eigh(cov)
    angle = np.degrees(np.arctan2(vecs[1, -1], vecs[0, -1]))
    width, height = 2 * n_sigma * np.sqrt(vals[::-1])
    ax.add_patch(Ellipse(mean, width, height, angle=angle, fill=False, **kwargs))


def feature_ranking(fit, *, names=None) -> pd.DataFrame:
    """Rank the features by how well they separate the components.

    The separation of feature j is the (weight-averaged) variance of the
    components' means over the components' average within-component variance,
    both of feature j::

        between_j = sum_k w_k (mu_kj - sum_l w_l mu_lj)^2
        within_j  = sum_k w_k sigma_kj^2
        separation_j = between_j / within_j

    It is unitless (a feature's scale cancels), 0 when every component has the
    same mean, and large when the components' means lie many within-component
    standard deviations apart.

    Parameters
    ----------
    fit : GaussianMixtureEM or xarray.Dataset
        A fitted EM mixture, or a :func:`bayesgmm.summary` of a posterior (its
        ``"mean"`` metric of ``weights``, ``means`` and ``stds`` is used).
    names : sequence of str, optional
        The feature names; default: the summary's ``feature`` coordinate, EM's
        ``feature_names_in_``, or ``x0``, ``x1``...

    Returns
    -------
    pandas.DataFrame
        Indexed by feature name, most separating first, with columns
        ``between``, ``within``, ``separation`` and ``rank`` (1 = most separating).
    """
    if isinstance(fit, xr.Dataset):
        _check_dataset(fit, "fit", ("weights", "means", "stds"), "bayesgmm.summary")
        if "metric" not in fit.dims or "mean" not in fit["metric"].values:
            raise ValueError("fit lacks the 'mean' metric; expected the output of bayesgmm.summary.")
        weights = np.asarray(fit["weights"].sel(metric="mean").transpose("component").values, dtype=float)
        means = np.asarray(fit["means"].sel(metric="mean").transpose("component", "feature").values, dtype=float)
        variances = np.asarray(fit["stds"].sel(metric="mean").transpose("component", "feature").values,
                               dtype=float) ** 2
        default = [str(f) for f in fit["feature"].values]
    else:
        check_fitted_em(fit, name="fit")
        weights, means = np.asarray(fit.weights_, dtype=float), np.asarray(fit.means_, dtype=float)
        variances = np.diagonal(fit.full_covariances_, axis1=1, axis2=2)
        given = getattr(fit, "feature_names_in_", None)
        default = [str(f) for f in given] if given is not None else [f"x{j}" for j in range(means.shape[1])]
    names = _names(names, default, means.shape[1])
    weights = weights / weights.sum()
    centre = weights @ means
    between = weights @ (means - centre) ** 2
    within = weights @ variances
    separation = between / np.maximum(within, np.finfo(float).tiny)
    table = pd.DataFrame({"between": between, "within": within, "separation": separation},
                         index=pd.Index(names, name="feature"))
    table = table.sort_values("separation", ascending=False, kind="stable")
    table["rank"] = np.arange(1, len(table) + 1)
    return table


def _names(names, default: list[str], D: int) -> list[str]:
    """D feature names: ``names`` checked, or ``default``."""
    if names is None:
        return list(default)
    if isinstance(names, (str, bytes)) or not hasattr(names, "__len__"):
        raise TypeError(f"names must be a sequence of {D} feature names, got {names!r:.80}.")
    names = [str(n) for n in names]
    if len(names) != D:
        raise ValueError(f"names must name the {D} features, got {len(names)} name(s).")
    return names


def projection(X, *, names=None) -> xr.Dataset:
    """All features in two dimensions: the first two principal components of the standardised data.

    Each column is centred and divided by its standard deviation (constant
    columns are left at 0), so no feature dominates by its unit.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        At least 2 features; a DataFrame's column names name them.
    names : sequence of str, optional
        The feature names (default: the DataFrame's columns, else ``x0``, ``x1``...).

    Returns
    -------
    xarray.Dataset
        ``scores`` (obs, axis), the coordinates of each row; ``loadings``
        (feature, axis), each feature's weight in each axis;
        ``explained_variance_ratio`` (axis). ``axis`` is ``["PC1", "PC2"]``.
    """
    default = [str(c) for c in X.columns] if isinstance(X, pd.DataFrame) else None
    X = check_data(X, name="X", dtype=(np.float64,), min_samples=2)
    D = X.shape[1]
    if D < 2:
        raise ValueError("projection needs X with at least 2 features.")
    names = _names(names, default or [f"x{j}" for j in range(D)], D)
    sd = X.std(axis=0)
    Z = (X - X.mean(axis=0)) / np.where(sd > 0, sd, 1.0)
    _, singular, vt = np.linalg.svd(Z, full_matrices=False)
    vt = vt[:2]
    vt = vt * np.sign(vt[np.arange(2), np.abs(vt).argmax(axis=1)])[:, None]  # largest loading positive
    total = float((singular ** 2).sum())
    ratio = singular[:2] ** 2 / total if total > 0 else np.zeros(2)
    axis = ["PC1", "PC2"]
    return xr.Dataset(
        {"scores": (("obs", "axis"), Z @ vt.T), "loadings": (("feature", "axis"), vt.T),
         "explained_variance_ratio": (("axis",), ratio)},
        coords={"obs": np.arange(len(X)), "axis": axis, "feature": names},
        attrs={"method": "principal components of the standardised data"},
    )


def _leading(loadings, n: int = 2) -> list[str]:
    """The names of the ``n`` features with the largest absolute loadings on one axis."""
    order = np.argsort(-np.abs(loadings.values), kind="stable")[:n]
    return [str(loadings["feature"].values[i]) for i in order]


def plot_projection(proj, assignment, *, ax=None):
    """The rows in the two axes of :func:`projection`, coloured by component, opacity by certainty.

    Parameters
    ----------
    proj : xarray.Dataset
        From :func:`projection`.
    assignment : xarray.Dataset
        From :func:`bayesgmm.assignments` on the same rows.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
    """
    _check_dataset(proj, "proj", ("scores", "loadings", "explained_variance_ratio"), "bayesgmm.plotting.projection")
    scores = np.asarray(proj["scores"].values, dtype=float)
    _check_assignment(assignment, scores.shape[0])
    ax = _ax(ax)
    K = assignment.sizes["component"]
    _scatter_by_component(ax, scores[:, 0], scores[:, 1], assignment, K)
    for k, color in enumerate(_colors(K)):
        ax.scatter([], [], color=color, s=18, label=f"component {k}")
    ax.legend(frameon=False, fontsize="small", loc="best")
    labels = []
    for a, name in enumerate(proj["axis"].values):
        ratio = float(proj["explained_variance_ratio"].values[a])
        lead = ", ".join(_leading(proj["loadings"].isel(axis=a)))
        labels.append(f"{name}, {ratio:.0%} of variance\nmostly {lead}")
    ax.set_xlabel(labels[0], fontsize="small")
    ax.set_ylabel(labels[1], fontsize="small")
    ax.set_title(f"All {proj.sizes['feature']} features: principal components (opacity: certainty)",
                 fontsize="medium")
    return ax


def _scatter_by_component(ax, x, y, assignment, K: int, s: float = 18):
    """Scatter coloured by most probable component, opacity by its probability."""
    labels = assignment["most_probable"].values
    certainty = assignment["max_probability"].values
    rgba = np.array(_colors(K))[labels].copy()
    rgba[:, 3] = 0.15 + 0.85 * (certainty - certainty.min()) / max(np.ptp(certainty), 1e-12)
    return ax.scatter(x, y, c=rgba, s=s, edgecolors="none")


def plot_clusters(X, assignment, *, idata=None, em=None, features=(0, 1), n_draws: int = 8, ax=None):
    """2-D scatter coloured by most probable component, opacity by certainty.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    assignment : xarray.Dataset
        From :func:`bayesgmm.assignments` on X.
    idata : arviz.InferenceData, optional
        Relabelled posterior: draws the posterior-mean 1- and 2-sigma ellipses
        (solid) and the 1-sigma ellipses of ``n_draws`` random draws (thin).
    em : GaussianMixtureEM, optional
        Draws EM's 1- and 2-sigma ellipses (dashed).
    features : pair of int, default=(0, 1)
        Two different feature indices (or column names when X is a DataFrame).
    n_draws : int, default=8
        An integer >= 0.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
    """
    frame = X
    X = check_data(X, name="X", dtype=(np.float64,))
    D = X.shape[1]
    if D < 2:
        raise ValueError("plot_clusters needs X with at least 2 features; use plot_density_1d for 1-D data.")
    i, j = _feature_pair(features, frame, D)
    _check_assignment(assignment, X.shape[0])
    n_draws = check_integer_param(n_draws, "n_draws", minimum=0)
    K = assignment.sizes["component"]
    _check_overlays(idata, em, K, D)
    ax = _ax(ax)
    colors = np.array(_colors(K))
    _scatter_by_component(ax, X[:, i], X[:, j], assignment, K)
    if idata is not None:
        _posterior_ellipses(ax, idata, [i, j], colors, n_draws)
    if em is not None:
        _em_ellipses(ax, em, [i, j])
    names = _feature_names(frame, D, idata=idata)
    ax.set_xlabel(names[i])
    ax.set_ylabel(names[j])
    ax.set_title("Most probable component (opacity: certainty)")
    return ax


def _check_overlays(idata, em, K: int, D: int) -> None:
    """The posterior and the EM fit to draw over a scatter of K components in D features, checked."""
    if idata is not None:
        check_idata(idata)
        post_sizes = idata.posterior.sizes
        if post_sizes["feature"] != D or post_sizes["component"] != K:
            raise ValueError(f"idata has {post_sizes['component']} components in {post_sizes['feature']} features; "
                             f"assignment and X have {K} in {D}.")
    if em is not None:
        check_fitted_em(em)
        if em.means_.shape[1] != D:
            raise ValueError(f"em has {em.means_.shape[1]} features but X has {D}.")


def _posterior_ellipses(ax, idata, sel: list[int], colors, n_draws: int) -> None:
    """Posterior-mean 1- and 2-sigma ellipses (solid) and the 1-sigma ellipses of ``n_draws`` draws (thin)."""
    arrays = posterior_arrays(idata)
    flat_means = arrays["means"][:, :, sel]
    flat_covs = arrays["cov"][:, :, sel][:, :, :, sel]
    means, covs = flat_means.mean(axis=0), flat_covs.mean(axis=0)
    pick = np.linspace(0, len(flat_means) - 1, min(n_draws, len(flat_means))).astype(int)
    for k in range(means.shape[0]):
        for n_sigma in (1, 2):
            _ellipse(ax, means[k], covs[k], n_sigma, color=colors[k], lw=1.8)
        for s in pick:
            _ellipse(ax, flat_means[s, k], flat_covs[s, k], 1, color=colors[k], lw=0.5, alpha=0.5)


def _em_ellipses(ax, em, sel: list[int]) -> None:
    """EM's 1- and 2-sigma ellipses, dashed."""
    covs = em.full_covariances_
    for k in range(em.n_components):
        for n_sigma in (1, 2):
            _ellipse(ax, em.means_[k, sel], covs[k][np.ix_(sel, sel)], n_sigma, color="black", lw=1.0, ls="--")


def plot_density_1d(density, *, X=None, em_density=None, ax=None):
    """Posterior predictive density with its credible band, EM's density and a rug.

    Parameters
    ----------
    density : xarray.Dataset
        From :func:`bayesgmm.predictive_density` (or :func:`marginal_density`) on a
        1-D grid.
    X : array-like of shape (n_samples,), optional
        Data for the rug.
    em_density : array-like of shape (n_points,), optional
        EM's density on the same grid (``np.exp(em.score_samples(grid))``).
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
    """
    _check_dataset(density, "density", ("coordinates", "density", "density_lower", "density_upper"),
                   "bayesgmm.predictive_density or marginal_density")
    coords = density["coordinates"]
    if coords.ndim != 2 or coords.shape[1] != 1:
        raise ValueError(f"density must be on a 1-D grid (one feature), got coordinates of shape {coords.shape}; "
                         "use marginal_density for one feature of a multivariate fit.")
    X = None if X is None else _rug_data(X)
    em_density = None if em_density is None else _check_em_density(em_density, coords.shape[0])
    ax = _ax(ax)
    x = coords.values[:, 0]
    prob = density.attrs.get("hdi_prob", 0.94)
    ax.fill_between(x, density["density_lower"], density["density_upper"], alpha=0.3, color="C0",
                    label=f"{prob:.0%} credible band")
    ax.plot(x, density["density"], color="C0", lw=2, label="posterior predictive")
    if em_density is not None:
        ax.plot(x, em_density, color="black", ls="--", lw=1.2, label="EM")
    if X is not None:
        ax.plot(np.asarray(X).ravel(), np.zeros(np.size(X)), "|", color="0.3", ms=12, alpha=0.5)
    ax.set_ylabel("density")
    ax.legend(frameon=False)
    return ax


def _rug_data(X) -> np.ndarray:
    """1-D data for a rug, as a checked column (n_samples, 1)."""
    if isinstance(X, (str, bytes)):
        raise TypeError(f"X must be numeric 1-D data for the rug, got {type(X).__name__}.")
    try:
        shape = np.shape(X)
    except ValueError:
        shape = None
    if shape is None or len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
        raise ValueError(f"X must be 1-D data for the rug, shape (n_samples,) or (n_samples, 1), got "
                         f"{'a ragged sequence' if shape is None else f'shape {shape}'}.")
    return check_data(np.reshape(np.asarray(X), (-1, 1)), name="X", dtype=(np.float64,))


def _check_em_density(em_density, n: int) -> np.ndarray:
    """EM's density on the grid: n finite non-negative values."""
    try:
        em_density = np.asarray(em_density, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"em_density must be numbers, one per grid point, got {em_density!r:.80}.") from None
    if em_density.ndim == 2 and em_density.shape[1] == 1:
        em_density = em_density[:, 0]
    if em_density.shape != (n,):
        raise ValueError(f"em_density must have one value per grid point, shape ({n},), got "
                         f"{em_density.shape}.")
    if not np.all(np.isfinite(em_density)) or np.any(em_density < 0):
        raise ValueError("em_density must be finite and non-negative (np.exp(em.score_samples(grid))).")
    return em_density


def plot_pairs(X, assignment, marginals: dict, *, features=None, names=None, fig=None):
    """Pair grid: scatter by component off the diagonal, marginal densities on it.

    (Over 60 lines only because this docstring documents every argument; the code is 40 lines.)

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    assignment : xarray.Dataset
        From :func:`bayesgmm.assignments`.
    marginals : dict
        Feature index -> :func:`bayesgmm.marginal_density` result (features
        without one get a histogram on the diagonal).
    features : sequence of int or str, optional
        The features to draw, in this order (indices, or names); default: all.
        With many features pass a few, e.g. the first rows of
        :func:`feature_ranking`: a D x D grid is illegible beyond about 5.
    names : sequence of str, optional
        The names of all the features, for the axis labels (default: X's
        columns when X is a DataFrame, else ``feature j``).
    fig : matplotlib Figure, optional

    Returns
    -------
    matplotlib Figure
    """
    frame = X
    X = check_data(X, name="X", dtype=(np.float64,))
    D = X.shape[1]
    names = _feature_names(frame, D, names=names)
    _check_assignment(assignment, X.shape[0])
    if not isinstance(marginals, dict):
        raise TypeError(f"marginals must be a dict of feature index -> marginal_density result, got "
                        f"{type(marginals).__name__}.")
    for key, value in marginals.items():
        check_integer_param(key, "marginals key", minimum=0, maximum=D - 1)
        _check_dataset(value, f"marginals[{key}]", ("coordinates", "density", "density_lower", "density_upper"),
                       "bayesgmm.marginal_density")
    if fig is not None and not isinstance(fig, Figure):
        raise TypeError(f"fig must be a matplotlib Figure or None, got {type(fig).__name__}.")
    chosen = _feature_list(features, names, D)
    n = len(chosen)
    fig = fig or plt.figure(figsize=(2.4 * n + 0.4, 2.4 * n))
    axes = fig.subplots(n, n, squeeze=False)
    K = assignment.sizes["component"]
    for r, fr in enumerate(chosen):
        for c, fc in enumerate(chosen):
            ax = axes[r, c]
            if r == c:
                if fr in marginals:
                    plot_density_1d(marginals[fr], X=X[:, fr], ax=ax)
                    ax.get_legend().remove()
                else:
                    ax.hist(X[:, fr], bins=30, color="0.6")
                ax.set_ylabel("")
                ax.set_yticks([])
            else:
                _scatter_by_component(ax, X[:, fc], X[:, fr], assignment, K, s=6)
            ax.tick_params(labelsize="x-small")
            ax.set_xlabel(_wrap(names[fc]) if r == n - 1 else "", fontsize="small")
            if c == 0 and r != c:
                ax.set_ylabel(_wrap(names[fr]), fontsize="small")
            elif c == 0:
                ax.set_ylabel(f"{_wrap(names[fr])}\n(density)", fontsize="small")
    fig.tight_layout()
    return fig


def _feature_list(features, names: list[str], D: int) -> list[int]:
    """Feature indices from indices or names (default: all), distinct and at least one."""
    if features is None:
        return list(range(D))
    if isinstance(features, (str, bytes)) or not hasattr(features, "__iter__"):
        raise TypeError(f"features must be a sequence of feature indices or names, got {features!r:.80}.")
    idx = []
    for f in features:
        if isinstance(f, str):
            if f not in names:
                raise ValueError(f"features: {f!r} is not a feature (features: {names}).")
            idx.append(names.index(f))
        else:
            idx.append(check_integer_param(f, "features", minimum=0, maximum=D - 1))
    if not idx or len(set(idx)) != len(idx):
        raise ValueError(f"features must be distinct features, at least one, got {features!r:.80}.")
    return idx


def plot_weights(idata, *, em=None, ax=None):
    """Posterior of the mixing weights (violins) against EM's weights (crosses).

    Parameters
    ----------
    idata : arviz.InferenceData
        Relabelled (ideally against ``em``) so components correspond.
    em : GaussianMixtureEM, optional
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
    """
    check_idata(idata)
    w = posterior_arrays(idata)["weights"]
    if em is not None:
        check_fitted_em(em)
        if em.weights_.shape[0] != w.shape[1]:
            raise ValueError(f"em has {em.weights_.shape[0]} components but the posterior has {w.shape[1]}.")
    ax = _ax(ax)
    positions = np.arange(w.shape[1])
    parts = ax.violinplot([w[:, k] for k in positions], positions=positions, showmedians=True)
    for body, color in zip(parts["bodies"], _colors(len(positions))):
        body.set_facecolor(color)
    if em is not None:
        ax.scatter(positions, em.weights_, marker="x", color="black", zorder=3, label="EM")
        ax.legend(frameon=False)
    ax.set_xticks(positions)
    ax.set_xlabel("component")
    ax.set_ylabel("weight")
    return ax


def plot_uncertainty(assignment, *, probability_threshold: float = 0.8, ax=None, threshold: float | None = None):
    """Histogram of each point's probability of its most probable component.

    Parameters
    ----------
    assignment : xarray.Dataset
    probability_threshold : float, default=0.8
        A probability of the most probable component, marked with a vertical line;
        strictly between 0 and 1.
    ax : matplotlib Axes, optional
    threshold : float, optional
        Deprecated name of ``probability_threshold``.

    Returns
    -------
    matplotlib Axes
    """
    probability_threshold = renamed_argument(probability_threshold, threshold, new="probability_threshold",
                                             old="threshold", default=0.8)
    _check_assignment(assignment)
    probability_threshold = check_probability(probability_threshold, "probability_threshold")
    ax = _ax(ax)
    ax.hist(assignment["max_probability"].values, bins=np.linspace(0, 1, 26), color="C0", alpha=0.8)
    ax.axvline(probability_threshold, color="C3", ls="--", label=f"threshold {probability_threshold:g}")
    ax.set_xlabel("probability of the most probable component")
    ax.set_ylabel("points")
    ax.legend(frameon=False)
    return ax


def plot_selection(table, *, criterion: str = "bic", ax=None):
    """An information criterion against K, one line per covariance type.

    Parameters
    ----------
    table : pandas.DataFrame
        ``select_model(...).table``.
    criterion : {"bic", "icl", "aic"}, default="bic"
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
    """
    criterion = check_option(criterion, "criterion", ("bic", "icl", "aic"))
    _check_table(table, "table", ("covariance_type", "n_components", "degenerate", criterion),
                 "select_model(...).table")
    ax = _ax(ax)
    for cov_type, rows in table.groupby("covariance_type"):
        rows = rows.sort_values("n_components")
        ax.plot(rows["n_components"], rows[criterion], marker="o", label=cov_type)
        bad = rows[rows["degenerate"]]
        ax.scatter(bad["n_components"], bad[criterion], marker="x", color="red", zorder=3)
    ax.set_xlabel("number of components K")
    ax.set_ylabel(f"{criterion.upper()} (lower is better)")
    ax.legend(frameon=False, title="covariance")
    return ax


def plot_loo(table, *, ax=None):
    """LOO expected log predictive density against K with standard errors.

    Parameters
    ----------
    table : pandas.DataFrame
        ``compare_k(...).table``.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
    """
    _check_table(table, "table", ("n_components", "elpd_loo", "se"), "compare_k(...).table")
    ax = _ax(ax)
    rows = table.sort_values("n_components")
    ax.errorbar(rows["n_components"], rows["elpd_loo"], yerr=rows["se"], marker="o", capsize=3)
    ax.set_xlabel("number of components K")
    ax.set_ylabel("elpd LOO (higher is better)")
    return ax


def plot_trace(idata, *, var_names=("weights", "means"), relabel_draws: bool | None = None, features=None,
               max_features: int = 6):
    """ArviZ trace plot of the draws as they are in ``idata``, one row per feature.

    Plotting computes nothing: pass a relabelled posterior (:func:`bayesgmm.relabel`)
    to see the components' traces without label switching. A variable with a
    ``feature`` dimension (``means``, ``stds``) gets one row per feature, titled
    ``means[name]``, its components overlaid: features of different units never
    share an axis. At most ``max_features`` features are drawn.

    Parameters
    ----------
    idata : arviz.InferenceData
        Relabelled with :func:`bayesgmm.relabel` first, unless the raw draws are wanted.
    var_names : str or sequence of str, default=("weights", "means")
    relabel_draws : bool, optional
        Deprecated. ``True`` still relabels the draws first (with a
        ``DeprecationWarning``): call ``plot_trace(relabel(idata))`` instead.
        ``False`` is what the function does anyway.
    features : sequence of int or str, optional
        The features to draw (indices or names), e.g. the first rows of
        :func:`feature_ranking`; default: the first ``max_features``.
    max_features : int, default=6
        The most features drawn (one row each per variable with a feature dimension).

    Returns
    -------
    numpy.ndarray of matplotlib Axes
    """
    check_idata(idata)
    max_features = check_integer_param(max_features, "max_features", minimum=1)
    if relabel_draws is not None:
        relabel_draws = check_option(relabel_draws, "relabel_draws", (True, False))
    if isinstance(var_names, str):
        var_names = [var_names]
    if not hasattr(var_names, "__iter__") or not var_names or not all(isinstance(v, str) for v in var_names):
        raise TypeError(f"var_names must be a variable name or a non-empty sequence of them, got {var_names!r}.")
    missing = [v for v in var_names if v not in idata.posterior]
    if missing:
        raise ValueError(f"var_names {missing} are not in the posterior; available: {list(idata.posterior.data_vars)}.")
    if relabel_draws:
        from .labels import relabel

        warnings.warn("plot_trace(relabel_draws=True) is deprecated: plotting no longer relabels; call "
                      "plot_trace(relabel(idata)) instead.", DeprecationWarning, stacklevel=2)
        idata = relabel(idata)
    with warnings.catch_warnings():
        # ArviZ 0.x's own call into matplotlib >= 3.11, nothing a caller can change.
        warnings.filterwarnings("ignore", "Passing a dict or None as alias_mapping", MatplotlibDeprecationWarning)
        axes = az.plot_trace(_per_feature(idata.posterior, list(var_names), features, max_features), compact=True)
    axes.ravel()[0].figure.tight_layout()  # the rows' titles clear the tick labels above them
    return axes


def _per_feature(post, var_names: list[str], features, max_features: int) -> xr.Dataset:
    """The variables to trace, those with a ``feature`` dimension split into one variable per feature."""
    out = {}
    names = [str(f) for f in post["feature"].values] if "feature" in post.dims else []
    chosen = _feature_list(features, names, len(names)) if names else []
    chosen = chosen[:max_features] if features is not None else list(range(min(len(names), max_features)))
    for var in var_names:
        da = post[var]
        if "feature" not in da.dims:
            out[var] = da
            continue
        extra = [d for d in da.dims if d not in ("chain", "draw", "component", "feature")]
        if extra:  # a matrix per component (cov, corr): keep the diagonal of the chosen features
            da = da.isel({extra[0]: xr.DataArray(np.arange(da.sizes["feature"]), dims="feature")})
        for j in chosen:
            out[f"{var}[{names[j]}]"] = da.isel(feature=j, drop=True)
    return xr.Dataset(out)
