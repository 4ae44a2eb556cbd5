"""Matplotlib plots of fitted mixtures.

Each function draws what a summary object already holds (:func:`assignments`,
:func:`predictive_density`, :func:`select_model`'s table...), takes an optional
``ax`` (or ``fig``) and returns it. No statistics are computed here.
"""

from __future__ import annotations

import arviz as az
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Ellipse

from .labels import relabel

__all__ = [
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
    return ax if ax is not None else plt.subplots(figsize=(6, 4.5))[1]


def _colors(n: int):
    cmap = plt.get_cmap("tab10")
    return [cmap(k % 10) for k in range(n)]


def _ellipse(ax, mean, cov, n_sigma, **kwargs):
    vals, vecs = np.linalg.eigh(cov)
    angle = np.degrees(np.arctan2(vecs[1, -1], vecs[0, -1]))
    width, height = 2 * n_sigma * np.sqrt(vals[::-1])
    ax.add_patch(Ellipse(mean, width, height, angle=angle, fill=False, **kwargs))


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
    n_draws : int, default=8
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
    """
    ax = _ax(ax)
    X = np.asarray(X, dtype=float)
    i, j = features
    labels = assignment["most_probable"].values
    certainty = assignment["max_probability"].values
    K = assignment.sizes["component"]
    colors = np.array(_colors(K))
    rgba = colors[labels].copy()
    rgba[:, 3] = 0.15 + 0.85 * (certainty - certainty.min()) / max(np.ptp(certainty), 1e-12)
    ax.scatter(X[:, i], X[:, j], c=rgba, s=18, edgecolors="none")
    sel = [i, j]
    if idata is not None:
        post = idata.posterior
        means = post["means"].mean(("chain", "draw")).values[:, sel]
        covs = post["cov"].mean(("chain", "draw")).values[:, sel][:, :, sel]
        flat_means = post["means"].values.reshape((-1,) + post["means"].shape[2:])[:, :, sel]
        flat_covs = post["cov"].values.reshape((-1,) + post["cov"].shape[2:])[:, :, sel][:, :, :, sel]
        pick = np.linspace(0, len(flat_means) - 1, min(n_draws, len(flat_means))).astype(int)
        for k in range(K):
            for n_sigma in (1, 2):
                _ellipse(ax, means[k], covs[k], n_sigma, color=colors[k], lw=1.8)
            for s in pick:
                _ellipse(ax, flat_means[s, k], flat_covs[s, k], 1, color=colors[k], lw=0.5, alpha=0.5)
    if em is not None:
        d = em.means_.shape[1]
        covs = em._cov.full_matrices(em.covariances_, em.n_components, d)
        for k in range(em.n_components):
            for n_sigma in (1, 2):
                _ellipse(ax, em.means_[k, sel], covs[k][np.ix_(sel, sel)], n_sigma, color="black", lw=1.0, ls="--")
    names = list(assignment.attrs.get("features", [])) or [f"feature {i}", f"feature {j}"]
    ax.set_xlabel(names[0] if len(names) == 2 else f"feature {i}")
    ax.set_ylabel(names[1] if len(names) == 2 else f"feature {j}")
    ax.set_title("Most probable component (opacity: certainty)")
    return ax


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
    ax = _ax(ax)
    x = density["coordinates"].values[:, 0]
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


def plot_pairs(X, assignment, marginals: dict, *, fig=None):
    """Pair grid for D > 2: scatter by component off the diagonal, marginal densities on it.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    assignment : xarray.Dataset
        From :func:`bayesgmm.assignments`.
    marginals : dict
        Feature index -> :func:`bayesgmm.marginal_density` result.
    fig : matplotlib Figure, optional

    Returns
    -------
    matplotlib Figure
    """
    X = np.asarray(X, dtype=float)
    D = X.shape[1]
    fig = fig or plt.figure(figsize=(2.6 * D, 2.6 * D))
    axes = fig.subplots(D, D, squeeze=False)
    colors = np.array(_colors(assignment.sizes["component"]))[assignment["most_probable"].values]
    for r in range(D):
        for c in range(D):
            ax = axes[r, c]
            if r == c:
                if r in marginals:
                    plot_density_1d(marginals[r], X=X[:, r], ax=ax)
                    ax.get_legend().remove()
            else:
                ax.scatter(X[:, c], X[:, r], c=colors, s=6)
            if r == D - 1:
                ax.set_xlabel(f"feature {c}")
    return fig


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
    ax = _ax(ax)
    w = idata.posterior["weights"].values.reshape(-1, idata.posterior.sizes["component"])
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


def plot_uncertainty(assignment, *, threshold: float = 0.8, ax=None):
    """Histogram of each point's probability of its most probable component.

    Parameters
    ----------
    assignment : xarray.Dataset
    threshold : float, default=0.8
        Marked with a vertical line.
    ax : matplotlib Axes, optional

    Returns
    -------
    matplotlib Axes
    """
    ax = _ax(ax)
    ax.hist(assignment["max_probability"].values, bins=np.linspace(0, 1, 26), color="C0", alpha=0.8)
    ax.axvline(threshold, color="C3", ls="--", label=f"threshold {threshold:g}")
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
    ax = _ax(ax)
    rows = table.sort_values("n_components")
    ax.errorbar(rows["n_components"], rows["elpd_loo"], yerr=rows["se"], marker="o", capsize=3)
    ax.set_xlabel("number of components K")
    ax.set_ylabel("elpd LOO (higher is better)")
    return ax


def plot_trace(idata, *, var_names=("weights", "means"), relabel_draws: bool = True):
    """ArviZ trace plot of (relabelled) draws.

    Parameters
    ----------
    idata : arviz.InferenceData
    var_names : sequence of str, default=("weights", "means")
    relabel_draws : bool, default=True

    Returns
    -------
    numpy.ndarray of matplotlib Axes
    """
    data = relabel(idata) if relabel_draws else idata
    return az.plot_trace(data, var_names=list(var_names), compact=True)
