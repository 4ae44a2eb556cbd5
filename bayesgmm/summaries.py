"""From posterior draws to answers: summaries, assignments, predictive densities.

Every function takes the ``InferenceData`` of :meth:`BayesianGMM.fit` (NUTS or
ADVI) and returns xarray objects with named dims. Work is done in blocks of points
with all draws at once, so memory stays bounded (no (draws, N, K, D) array).
"""

from __future__ import annotations

import warnings

import arviz as az
import numpy as np
import xarray as xr
from scipy.special import logsumexp

from ._posterior import check_idata, posterior_arrays
from ._validation import check_data, check_probability
from .density import component_log_prob
from .labels import relabel

__all__ = [
    "summary",
    "assignments",
    "predictive_density",
    "density_grid",
    "marginal_density",
    "sample_posterior_predictive",
    "effective_components",
]

#: Elements of the (draws, points, K) block held at once (~32 MB of float64).
_BLOCK_ELEMENTS = 4_000_000


def _hdi(values: np.ndarray, prob: float) -> tuple[np.ndarray, np.ndarray]:
    """Highest-density interval along axis 0 for every column (same rule as ArviZ)."""
    n = values.shape[0]
    ordered = np.sort(values.reshape(n, -1).T, axis=1)  # sort contiguous rows
    width = int(np.floor(prob * n))
    if width < 1 or width >= n:
        low, high = ordered[:, 0], ordered[:, -1]
    else:
        start = np.argmin(ordered[:, width:] - ordered[:, : n - width], axis=1)
        rows = np.arange(ordered.shape[0])
        low, high = ordered[rows, start], ordered[rows, start + width]
    return low.reshape(values.shape[1:]), high.reshape(values.shape[1:])


def _maybe_relabel(idata, do_relabel):
    n_draws = idata.posterior.sizes["chain"] * idata.posterior.sizes["draw"]
    if do_relabel == "auto":
        do_relabel = n_draws > 1 and "relabel_permuted_per_chain" not in idata.posterior.attrs
    return relabel(idata) if do_relabel else idata


def _points(idata, X, name: str = "X") -> np.ndarray:
    D = int(idata.posterior.sizes["feature"])
    if X is None:
        if "observed_data" not in idata.groups():
            raise ValueError(f"{name} is required: this InferenceData has no observed_data group.")
        return np.asarray(idata.observed_data["obs"].values, dtype=float)
    X = check_data(X, name=name, dtype=(np.float64,))
    if X.shape[1] != D:
        raise ValueError(f"{name} has {X.shape[1]} features, but the posterior has {D}.")
    return X


def _point_blocks(n_points: int, n_draws: int, n_components: int):
    size = max(1, _BLOCK_ELEMENTS // max(1, n_draws * n_components))
    for start in range(0, n_points, size):
        yield slice(start, min(start + size, n_points))


# ------------------------------------------------------------------------ summary
def summary(idata, *, hdi_prob: float = 0.94, relabel_draws: bool | str = "auto") -> xr.Dataset:
    """Posterior summary on relabelled draws, with label-invariant diagnostics.

    Parameters
    ----------
    idata : arviz.InferenceData
    hdi_prob : float, default=0.94
    relabel_draws : bool or "auto", default="auto"
        Relabel first (see :func:`relabel`); "auto" does unless already done.

    Returns
    -------
    xarray.Dataset
        ArviZ's summary (``fmt="xarray"``, dim ``metric``: mean, sd, hdi, ess,
        r_hat...) of weights, means, stds and correlations (off-diagonal pairs,
        dim ``feature_pair``), plus
        ``total_log_likelihood`` (label-invariant). Attributes give the worst
        pointwise log-likelihood R-hat and ESS, divergences and relabelling counts.
        Warns when R-hat > 1.01, bulk ESS < 400 or there were divergences.

    Examples
    --------
    >>> from bayesgmm import GaussianMixtureEM, em_to_idata
    >>> from bayesgmm.datasets import load_faithful
    >>> X = load_faithful().to_numpy()
    >>> idata = em_to_idata(GaussianMixtureEM(2, random_state=0).fit(X), X)
    >>> from bayesgmm import summary
    >>> import warnings; warnings.simplefilter("ignore")  # one draw: no R-hat, ESS warnings
    >>> summary(idata)["means"].sel(metric="mean").shape
    (2, 2)
    """
    check_idata(idata)
    hdi_prob = check_probability(hdi_prob, "hdi_prob")
    idata = _maybe_relabel(idata, relabel_draws)
    post = idata.posterior
    names = [v for v in ("weights", "means", "stds", "corr") if v in post]
    data = post[names]
    if "corr" in data:
        # Off-diagonal pairs only: the diagonal is 1 by construction, not a parameter.
        data = data.drop_vars("corr")
        feats = [str(f) for f in post.feature.values]
        pairs = [(i, j) for i in range(len(feats)) for j in range(i + 1, len(feats))]
        if pairs:
            corr = post["corr"].transpose("chain", "draw", "component", "feature", "feature_bis").values
            data["corr"] = xr.DataArray(
                np.stack([corr[..., i, j] for i, j in pairs], axis=-1),
                dims=("chain", "draw", "component", "feature_pair"),
                coords={"feature_pair": [f"{feats[i]}|{feats[j]}" for i, j in pairs]},
            )
    invariant = {}
    if "log_likelihood" in idata.groups():
        loglik = idata.log_likelihood["obs"]
        data["total_log_likelihood"] = loglik.sum("obs_id")
        multi_chain = post.sizes["chain"] > 1 and post.sizes["draw"] > 3
        if multi_chain:
            invariant["max_rhat_pointwise_log_likelihood"] = float(az.rhat(idata.log_likelihood)["obs"].max())
        invariant["min_ess_pointwise_log_likelihood"] = float(az.ess(idata.log_likelihood)["obs"].min())
    result = az.summary(data, hdi_prob=hdi_prob, fmt="xarray")
    n_div = int(idata.sample_stats["diverging"].sum()) if "sample_stats" in idata.groups() and \
        "diverging" in idata.sample_stats else 0
    result.attrs.update(invariant)
    result.attrs["n_divergences"] = n_div
    result.attrs["relabel_permuted_per_chain"] = list(post.attrs.get("relabel_permuted_per_chain", []))

    problems = []
    if "r_hat" in result.metric:
        rhat = max(float(result[v].sel(metric="r_hat").max()) for v in result.data_vars)
        if rhat > 1.01:
            problems.append(f"R-hat up to {rhat:.3f} (> 1.01): run more draws/tune")
    ess = min(float(result[v].sel(metric="ess_bulk").min()) for v in result.data_vars)
    if ess < 400:
        problems.append(f"bulk ESS as low as {ess:.0f} (< 400): draw more samples before trusting intervals")
    if n_div:
        problems.append(f"{n_div} divergent transitions: increase tune or target_accept")
    if problems:
        warnings.warn("; ".join(problems) + ".", UserWarning, stacklevel=2)
    return result


# -------------------------------------------------------------------- assignments
def assignments(idata, X=None, *, hdi_prob: float = 0.94, relabel_draws: bool | str = "auto") -> xr.Dataset:
    """Cluster assignments with their uncertainty.

    Per draw, the responsibilities ``p(z_n = k | x_n, draw)`` are computed and then
    averaged over draws (hard labels are never averaged).

    Parameters
    ----------
    idata : arviz.InferenceData
    X : array-like of shape (n_points, n_features), default=None
        Points to assign; the training data when None.
    hdi_prob : float, default=0.94
    relabel_draws : bool or "auto", default="auto"

    Returns
    -------
    xarray.Dataset
        Over (``obs_id``, ``component``): ``probability`` (posterior mean
        responsibility), ``probability_lower``/``probability_upper`` (HDI); over
        ``obs_id``: ``most_probable``, ``max_probability`` and ``uncertainty``
        (entropy of the mean responsibilities divided by log K: 0 = certain,
        1 = uniform).

    Examples
    --------
    >>> from bayesgmm import GaussianMixtureEM, em_to_idata
    >>> from bayesgmm.datasets import load_faithful
    >>> X = load_faithful().to_numpy()
    >>> idata = em_to_idata(GaussianMixtureEM(2, random_state=0).fit(X), X)
    >>> from bayesgmm import assignments
    >>> result = assignments(idata)
    >>> result["probability"].dims
    ('obs_id', 'component')
    >>> bool(result["probability"].sum("component").round(12).all())
    True
    """
    check_idata(idata)
    hdi_prob = check_probability(hdi_prob, "hdi_prob")
    idata = _maybe_relabel(idata, relabel_draws)
    X = _points(idata, X)
    arrays = posterior_arrays(idata)
    S, K, _ = arrays["means"].shape
    n = X.shape[0]
    with np.errstate(divide="ignore"):
        log_w = np.log(arrays["weights"])
    mean = np.empty((n, K))
    low = np.empty((n, K))
    high = np.empty((n, K))
    for block in _point_blocks(n, S, K):
        log_prob = component_log_prob(X[block], log_w, arrays["means"], arrays["chol"])  # (S, b, K)
        log_prob -= logsumexp(log_prob, axis=2, keepdims=True)
        resp = np.exp(log_prob, out=log_prob)
        mean[block] = resp.mean(axis=0)
        low[block], high[block] = _hdi(resp, hdi_prob)
    entropy = -np.sum(np.where(mean > 0, mean * np.log(np.where(mean > 0, mean, 1.0)), 0.0), axis=1)
    coords = {"obs_id": np.arange(n), "component": idata.posterior.component.values}
    return xr.Dataset(
        {
            "probability": (("obs_id", "component"), mean),
            "probability_lower": (("obs_id", "component"), low),
            "probability_upper": (("obs_id", "component"), high),
            "most_probable": ("obs_id", coords["component"][mean.argmax(axis=1)]),
            "max_probability": ("obs_id", mean.max(axis=1)),
            "uncertainty": ("obs_id", entropy / np.log(K) if K > 1 else np.zeros(n)),
        },
        coords=coords,
        attrs={"hdi_prob": hdi_prob, "n_draws": S},
    )


# -------------------------------------------------------------- predictive density
def predictive_density(idata, points, *, hdi_prob: float = 0.94) -> xr.Dataset:
    """Posterior predictive density at given points, with a credible band.

    Parameters
    ----------
    idata : arviz.InferenceData
    points : array-like of shape (n_points, n_features)
        Where to evaluate (see :func:`density_grid` for grids).
    hdi_prob : float, default=0.94

    Returns
    -------
    xarray.Dataset
        Over ``point``: ``density`` (posterior mean of p(x | draw), the posterior
        predictive density), ``density_lower``/``density_upper`` (HDI of
        p(x | draw) across draws) and ``log_density`` (its log).

    Examples
    --------
    >>> from bayesgmm import GaussianMixtureEM, em_to_idata
    >>> from bayesgmm.datasets import load_faithful
    >>> X = load_faithful().to_numpy()
    >>> idata = em_to_idata(GaussianMixtureEM(2, random_state=0).fit(X), X)
    >>> from bayesgmm import predictive_density, density_grid
    >>> grid = density_grid(idata, n_points=50)
    >>> predictive_density(idata, grid["points"])["density"].shape
    (2500,)
    """
    check_idata(idata)
    hdi_prob = check_probability(hdi_prob, "hdi_prob")
    points = _points(idata, points, name="points")
    arrays = posterior_arrays(idata)
    S, K, _ = arrays["means"].shape
    n = points.shape[0]
    with np.errstate(divide="ignore"):
        log_w = np.log(arrays["weights"])
    log_mean = np.empty(n)
    low = np.empty(n)
    high = np.empty(n)
    for block in _point_blocks(n, S, K):
        log_px = logsumexp(component_log_prob(points[block], log_w, arrays["means"], arrays["chol"]), axis=2)
        log_mean[block] = logsumexp(log_px, axis=0) - np.log(S)
        low[block], high[block] = _hdi(np.exp(log_px), hdi_prob)
    coords = {"point": np.arange(n)}
    return xr.Dataset(
        {
            "density": ("point", np.exp(log_mean)),
            "density_lower": ("point", low),
            "density_upper": ("point", high),
            "log_density": ("point", log_mean),
            "coordinates": (("point", "feature"), points),
        },
        coords={**coords, "feature": idata.posterior.feature.values},
        attrs={"hdi_prob": hdi_prob, "n_draws": S},
    )


def density_grid(idata, n_points: int = 200, *, features=None, margin: float = 0.15) -> dict:
    """A regular 1-D or 2-D grid spanning the data (plus a margin), for density plots.

    Parameters
    ----------
    idata : arviz.InferenceData
    n_points : int, default=200
        Points per axis.
    features : sequence of 1 or 2 feature names or indices, default=None
        Required when the data have more than 2 features (then use
        :func:`marginal_density` for 1-D marginals).
    margin : float, default=0.15
        Extra range on each side, as a fraction of the data range.

    Returns
    -------
    dict
        ``points`` (n, D) to pass to :func:`predictive_density`, ``axes`` (one 1-D
        array per feature) and ``shape`` to reshape the result into an image.

    Examples
    --------
    >>> from bayesgmm import GaussianMixtureEM, em_to_idata
    >>> from bayesgmm.datasets import load_faithful
    >>> X = load_faithful().to_numpy()
    >>> idata = em_to_idata(GaussianMixtureEM(2, random_state=0).fit(X), X)
    >>> from bayesgmm import density_grid
    >>> density_grid(idata, n_points=30)["shape"]
    (30, 30)
    """
    check_idata(idata)
    X = _points(idata, None)
    D = X.shape[1]
    names = list(idata.posterior.feature.values)
    if features is None:
        if D > 2:
            raise ValueError("features must name 1 or 2 features when the data have more than 2.")
        features = list(range(D))
    idx = [names.index(f) if isinstance(f, str) else int(f) for f in features]
    if len(idx) != D:
        raise ValueError(f"A grid covers every feature; the data have {D}. Use marginal_density for D > 2.")
    lo, hi = X.min(axis=0), X.max(axis=0)
    pad = margin * (hi - lo)
    axes = [np.linspace(lo[j] - pad[j], hi[j] + pad[j], n_points) for j in idx]
    mesh = np.meshgrid(*axes, indexing="ij")
    return {"points": np.column_stack([m.ravel() for m in mesh]), "axes": axes, "shape": mesh[0].shape}


def marginal_density(idata, feature, points, *, hdi_prob: float = 0.94) -> xr.Dataset:
    """Posterior predictive density of one feature (the mixture's 1-D marginal).

    Parameters
    ----------
    idata : arviz.InferenceData
    feature : str or int
    points : array-like of shape (n_points,)
    hdi_prob : float, default=0.94

    Returns
    -------
    xarray.Dataset
        As :func:`predictive_density`, for the marginal of ``feature``.

    Examples
    --------
    >>> from bayesgmm import GaussianMixtureEM, em_to_idata
    >>> from bayesgmm.datasets import load_faithful
    >>> X = load_faithful().to_numpy()
    >>> idata = em_to_idata(GaussianMixtureEM(2, random_state=0).fit(X), X)
    >>> import numpy as np
    >>> from bayesgmm import marginal_density
    >>> grid = np.linspace(0, 10, 2001)
    >>> dens = marginal_density(idata, 0, grid)["density"].values
    >>> round(float(np.trapezoid(dens, grid)), 3)
    1.0
    """
    check_idata(idata)
    names = list(idata.posterior.feature.values)
    j = names.index(feature) if isinstance(feature, str) else int(feature)
    if not 0 <= j < len(names):
        raise ValueError(f"feature {feature!r} is not one of {names}.")
    marginal = idata.posterior[["weights"]].assign(
        means=idata.posterior["means"].isel(feature=[j]),
        cov=idata.posterior["cov"].isel(feature=[j], feature_bis=[j]),
    )
    sub = az.InferenceData(posterior=marginal)
    return predictive_density(sub, np.asarray(points, dtype=float).reshape(-1, 1), hdi_prob=hdi_prob)


# ------------------------------------------------------------ posterior predictive
def sample_posterior_predictive(idata, n_samples: int, random_seed=None) -> xr.Dataset:
    """New data from the posterior predictive: a random draw, then a component, then a point.

    Parameters
    ----------
    idata : arviz.InferenceData
    n_samples : int
    random_seed : int, optional

    Returns
    -------
    xarray.Dataset
        ``X`` over (``sample``, ``feature``), and the ``component`` and posterior
        ``draw_index`` each sample came from.

    Examples
    --------
    >>> from bayesgmm import GaussianMixtureEM, em_to_idata
    >>> from bayesgmm.datasets import load_faithful
    >>> X = load_faithful().to_numpy()
    >>> idata = em_to_idata(GaussianMixtureEM(2, random_state=0).fit(X), X)
    >>> from bayesgmm import sample_posterior_predictive
    >>> sample_posterior_predictive(idata, 500, random_seed=0)["X"].shape
    (500, 2)
    """
    check_idata(idata)
    if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)) or n_samples < 1:
        raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}.")
    arrays = posterior_arrays(idata)
    rng = np.random.default_rng(random_seed)
    S, K, D = arrays["means"].shape
    draw = rng.integers(0, S, size=n_samples)
    w = arrays["weights"][draw]
    comp = (rng.random(n_samples)[:, None] > np.cumsum(w, axis=1)).sum(axis=1).clip(max=K - 1)
    z = rng.standard_normal((n_samples, D))
    X = arrays["means"][draw, comp] + np.einsum("nde,ne->nd", arrays["chol"][draw, comp], z)
    return xr.Dataset(
        {"X": (("sample", "feature"), X), "component": ("sample", comp), "draw_index": ("sample", draw)},
        coords={"sample": np.arange(n_samples), "feature": idata.posterior.feature.values},
    )


def effective_components(idata, *, threshold: float = 0.05, hdi_prob: float = 0.94) -> xr.Dataset:
    """How many components carry more than ``threshold`` of the weight (sparse mixtures).

    Parameters
    ----------
    idata : arviz.InferenceData
    threshold : float, default=0.05
    hdi_prob : float, default=0.94

    Returns
    -------
    xarray.Dataset
        ``count`` per (chain, draw), its posterior ``mean``, ``lower``/``upper``
        (HDI) and ``probability`` of each count.

    Examples
    --------
    >>> from bayesgmm import GaussianMixtureEM, em_to_idata
    >>> from bayesgmm.datasets import load_faithful
    >>> X = load_faithful().to_numpy()
    >>> idata = em_to_idata(GaussianMixtureEM(2, random_state=0).fit(X), X)
    >>> from bayesgmm import effective_components
    >>> int(effective_components(idata, threshold=0.05)["mean"])
    2
    """
    check_idata(idata)
    threshold = check_probability(threshold, "threshold")
    hdi_prob = check_probability(hdi_prob, "hdi_prob")
    count = (idata.posterior["weights"] > threshold).sum("component")
    low, high = _hdi(count.values.reshape(-1).astype(float), hdi_prob)
    K = idata.posterior.sizes["component"]
    probs = np.bincount(count.values.ravel(), minlength=K + 1) / count.size
    return xr.Dataset(
        {"count": count, "mean": count.mean(), "lower": low, "upper": high,
         "probability": ("n_components", probs)},
        coords={"n_components": np.arange(K + 1)},
        attrs={"threshold": threshold, "hdi_prob": hdi_prob},
    )
