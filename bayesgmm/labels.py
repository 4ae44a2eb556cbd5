"""Label switching: make component k mean the same thing in every draw."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.special import logsumexp

from ._posterior import check_fitted_em, check_idata, check_points, feature_names, posterior_arrays
from ._validation import check_integer_param, check_option, check_real_param
from .density import component_log_prob, iter_blocks, limit_responsibilities

__all__ = ["relabel"]

#: Relabelling methods of :func:`relabel`.
METHODS = ("cross_entropy", "stephens")
#: Responsibilities of all draws are kept in memory (float64) below this many elements.
_CACHE_ELEMENTS = 10_000_000


def _cross_entropy_cost(means, covs, ref_means, ref_covs) -> np.ndarray:
    """cost[s, j, k]: expected -log N(x | ref_k) for x ~ N(draw s component j), up to constants."""
    ref_prec = np.linalg.inv(ref_covs)  # (K, D, D)
    _, ref_logdet = np.linalg.slogdet(ref_covs)
    diff = means[:, :, None, :] - ref_means[None, None, :, :]  # (S, j, k, D)
    maha = np.einsum("sjkd,kde,sjke->sjk", diff, ref_prec, diff)
    trace = np.einsum("kde,sjed->sjk", ref_prec, covs)
    return 0.5 * (maha + trace + ref_logdet[None, None, :])


def _kl_from_cross_entropy(cost: np.ndarray, covs) -> np.ndarray:
    """KL(draw component j || reference k) from :func:`_cross_entropy_cost`: subtract each row's entropy part."""
    _, logdet = np.linalg.slogdet(covs)  # (S, K)
    return cost - 0.5 * (logdet + covs.shape[-1])[:, :, None]


def _best_permutations(cost: np.ndarray) -> np.ndarray:
    """For each draw, perm[s, k] = draw component that becomes label k."""
    perms = np.empty(cost.shape[:2], dtype=np.intp)
    for s in range(cost.shape[0]):
        rows, cols = linear_sum_assignment(cost[s])
        perms[s, cols] = rows
    return perms


def _second_best_costs(cost: np.ndarray, perms: np.ndarray) -> np.ndarray:
    """Cost of the second-best permutation of every draw (Murty's partition: forbid one matched pair at a time).

    The second-best assignment differs from the best in at least one pair, so it is the
    best assignment of one of the K problems in which one pair of the best is forbidden.
    Returns inf where there is no second permutation (K = 1).
    """
    S, K, _ = cost.shape
    second = np.full(S, np.inf)
    if K < 2:
        return second
    big = np.abs(cost).max() * K * 4 + 1.0  # a forbidden pair: never chosen when another exists
    for s in range(S):
        for k in range(K):
            sub = cost[s].copy()
            sub[perms[s, k], k] = big
            rows, cols = linear_sum_assignment(sub)
            second[s] = min(second[s], sub[rows, cols].sum())
    return second


def _cost_ratio(cost: np.ndarray, perms: np.ndarray) -> np.ndarray:
    """best / second-best permutation cost per draw, for non-negative (KL) costs; 0 when K = 1."""
    S, K, _ = cost.shape
    cost = np.maximum(cost, 0.0)  # rounding below 0 of a divergence that is 0
    best = cost[np.arange(S)[:, None], perms, np.arange(K)[None, :]].sum(axis=1)
    second = _second_best_costs(cost, perms)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(second > 0, best / np.where(second > 0, second, 1.0), 1.0)
    return np.where(np.isinf(second), 0.0, np.clip(ratio, 0.0, 1.0))


def _apply(arr: np.ndarray, perms: np.ndarray, axis: int) -> np.ndarray:
    """Permute the component axis of ``arr`` (draws first, flattened) draw by draw."""
    index = perms.reshape(perms.shape + (1,) * (arr.ndim - 2))
    moved = np.moveaxis(arr, axis, 1)
    return np.moveaxis(np.take_along_axis(moved, np.broadcast_to(index, (perms.shape[0], perms.shape[1]) +
                                                                  moved.shape[2:]), axis=1), 1, axis)


def _feature_scale(idata, covs: np.ndarray) -> np.ndarray:
    """The data's spread per feature: stored at fit time, else from the data or the posterior."""
    D = covs.shape[-1]
    try:
        scale = np.asarray(idata.attrs.get("data_scale", []), dtype=float).ravel()
    except (TypeError, ValueError):
        scale = np.empty(0)
    if scale.shape == (D,) and np.all(np.isfinite(scale)) and np.all(scale > 0):
        return scale
    if "observed_data" in idata.groups() and "obs" in idata.observed_data:
        obs = np.asarray(idata.observed_data["obs"].values, dtype=float)
        if obs.ndim == 2 and obs.shape[1] == D and obs.shape[0] > 1 and np.all(np.isfinite(obs)):
            sd = obs.std(axis=0)
            if np.all(sd > 0):
                return sd
    # No data: the components' own average spread, in the same units.
    return np.sqrt(np.diagonal(covs, axis1=-2, axis2=-1).mean(axis=(0, 1)))


# ------------------------------------------------------------ per-draw responsibilities
def training_points(idata, X=None, *, name: str = "X") -> np.ndarray:
    """Validated points (n, D) in the posterior's feature order: the training data when X is None."""
    names = feature_names(idata)
    if X is None:
        if "observed_data" not in idata.groups() or "obs" not in idata.observed_data:
            raise ValueError(f"{name} is required: this InferenceData has no observed_data group (the training "
                             "data); pass the points to evaluate.")
        obs = idata.observed_data["obs"]
        if "feature" in obs.dims:
            obs = obs.transpose(..., "feature")
        return check_points(obs.values, names, name="idata.observed_data['obs']")
    return check_points(X, names, name=name)


def responsibility_blocks(X: np.ndarray, arrays: dict) -> Iterator[tuple[slice, slice, np.ndarray]]:
    """Per-draw responsibilities ``p(z_n = k | x_n, draw s)`` in bounded blocks of (draws, points).

    Parameters
    ----------
    X : ndarray of shape (N, D)
    arrays : dict
        ``weights`` (S, K), ``means`` (S, K, D) and ``chol`` (S, K, D, D): the
        posterior's draws, flattened over chains.

    Yields
    ------
    draws : slice
    points : slice
    resp : ndarray of shape (n_draws_in_block, n_points_in_block, K)
        Rows sum to 1; a point so far away that every density underflows gets the
        limit of its responsibilities (as :func:`bayesgmm.assignments` does).
    """
    weights, means, chol = arrays["weights"], arrays["means"], arrays["chol"]
    S, K, D = means.shape
    with np.errstate(divide="ignore"):
        log_w = np.log(weights)
    for ds, ps in iter_blocks(S, X.shape[0], K, D):
        yield ds, ps, draw_responsibilities(X[ps], log_w[ds], means[ds], chol[ds])


def draw_responsibilities(X: np.ndarray, log_w: np.ndarray, means: np.ndarray, chol: np.ndarray) -> np.ndarray:
    """``p(z_n = k | x_n, draw s)`` of every draw, shape (S, N, K), rows summing to 1.

    ``log_w`` (S, K) are the draws' log-weights, ``means`` (S, K, D) and ``chol``
    (S, K, D, D) their means and covariance Cholesky factors. A point so far away
    that every component's density underflows gets the limit of its
    responsibilities (the components nearest in Mahalanobis terms).
    """
    log_prob = component_log_prob(X, log_w, means, chol)  # (S, N, K)
    with np.errstate(divide="ignore", invalid="ignore"):
        norm = logsumexp(log_prob, axis=2, keepdims=True)
        log_prob -= norm
    resp = np.exp(log_prob, out=log_prob)
    lost = ~np.isfinite(norm[..., 0])  # (S, N): every component's density underflowed
    if lost.any():
        rows = np.flatnonzero(lost.any(axis=0))
        limit = limit_responsibilities(X[rows], log_w, means, chol)
        sub = resp[:, rows]
        sub[lost[:, rows]] = limit[lost[:, rows]]
        resp[:, rows] = sub
    return resp


class _Responsibilities:
    """All draws' responsibilities, kept in memory when small, recomputed block by block otherwise."""

    def __init__(self, X, arrays):
        self.X, self.arrays = X, arrays
        S, K, _ = arrays["means"].shape
        self.shape = (S, X.shape[0], K)
        self.cache = None
        if S * X.shape[0] * K <= _CACHE_ELEMENTS:
            self.cache = np.empty(self.shape)
            for ds, ps, resp in responsibility_blocks(X, arrays):
                self.cache[ds, ps] = resp

    def __iter__(self):
        if self.cache is not None:
            yield slice(0, self.shape[0]), slice(0, self.shape[1]), self.cache
        else:
            yield from responsibility_blocks(self.X, self.arrays)


def _stephens(resp: _Responsibilities, perms: np.ndarray, max_iter: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Stephens' (2000) KL relabelling, started from ``perms``.

    Alternates (1) q_ik = mean over draws of the relabelled responsibilities and
    (2) per draw, the permutation minimising sum_i KL(p_i(draw, permuted) || q_i),
    a linear assignment on cost[j, k] = sum_i p_ij (log p_ij - log q_ik), until no
    permutation changes. Returns the permutations, the final KL costs (S, K, K)
    and the number of iterations run.
    """
    S, N, K = resp.shape
    tiny = np.finfo(float).tiny
    entropy = np.zeros((S, K))  # sum_i p_ij log p_ij: a row constant, kept for the KL's value
    for ds, _, r in resp:
        entropy[ds] += np.sum(np.where(r > 0, r * np.log(np.maximum(r, tiny)), 0.0), axis=1)
    cost = None
    n_iter = 0
    while n_iter < max(max_iter, 1):
        n_iter += 1
        q = np.zeros((N, K))
        for ds, ps, r in resp:
            q[ps] += np.take_along_axis(r, perms[ds][:, None, :], axis=2).sum(axis=0)
        log_q = np.log(np.maximum(q / S, tiny))
        cost = np.zeros((S, K, K))
        for ds, ps, r in resp:
            cost[ds] -= np.einsum("sij,ik->sjk", r, log_q[ps])
        cost += entropy[:, :, None]
        new = _best_permutations(cost)
        if np.array_equal(new, perms):
            break
        perms = new
    return perms, cost, n_iter


def relabel(idata, reference=None, *, max_iter: int = 50, method: str = "cross_entropy", X=None,
            ambiguity_threshold: float = 0.5):
    """Permute component labels draw by draw so labels agree across draws and chains.

    Each draw's components are matched to reference components with the Hungarian
    algorithm. The same permutation is applied to every variable with a
    ``component`` dimension (weights, means, covariances, standard deviations,
    correlations and the latents). Two methods choose the permutations:

    - ``"cross_entropy"`` (default): a cost that uses means *and* covariances, the
      cross-entropy of the draw's Gaussian against the reference's (equivalently
      their Kullback-Leibler divergence). Needs no data.
    - ``"stephens"``: Stephens' (2000) Kullback-Leibler algorithm on the draws'
      allocation probabilities (responsibilities) of the data ``X``: it alternates
      between the average relabelled responsibilities ``q`` and, per draw, the
      permutation minimising ``sum_n KL(p_n(draw) || q_n)``, until no draw changes.
      It starts from the ``"cross_entropy"`` labels (with the same ``reference``),
      so it refines them where the components overlap in the data.

    (Over 60 lines only because this docstring documents every argument; the code is 24 lines.)

    Parameters
    ----------
    idata : arviz.InferenceData
        From :meth:`BayesianGMM.fit`.
    reference : None, GaussianMixtureEM, or array-like of shape (K, D), default=None
        What the labels should mean. None estimates it from the posterior itself:
        start from the first draw, match every draw, average, and repeat until no
        assignment changes; the final labels are then ordered by the means' first
        feature (then the next ones) so the result does not depend on the order
        the sampler happened to use. An EM fit uses its means and covariances; an
        array of means uses the means alone (scaled by the data's spread).
    max_iter : int, default=50
        Iterations of the self-referencing estimate (an integer >= 0; 0 matches
        every draw to the first one); also the most iterations of Stephens' algorithm
        (at least one is run).
    method : {"cross_entropy", "stephens"}, default="cross_entropy"
    X : array-like of shape (n_points, n_features), default=None
        The data for ``method="stephens"`` (a DataFrame is matched to the features
        by name); the training data (``observed_data``) when None. Not used by
        ``"cross_entropy"``.
    ambiguity_threshold : float, default=0.5
        A draw is flagged as *ambiguous* when the cost of its best permutation is
        more than this fraction of the cost of its second-best permutation (a number
        in (0, 1]; costs are Kullback-Leibler divergences to the reference, >= 0).
        Such a draw is about as close to another labelling as to the one chosen:
        its components overlap or sit between the reference's.

    Returns
    -------
    arviz.InferenceData
        A relabelled copy. ``posterior.attrs["relabel_permuted_per_chain"]`` lists
        how many draws of each chain were permuted. The diagnostics are stored
        with it:

        - ``sample_stats["relabel_cost_ratio"]`` (chain, draw): best / second-best
          permutation cost, in [0, 1] (0: unambiguous or K = 1; 1: a tie);
        - ``sample_stats["relabel_ambiguous"]`` (chain, draw): ratio above
          ``ambiguity_threshold``;
        - ``posterior.attrs``: ``relabel_method``, ``relabel_ambiguity_threshold``,
          ``relabel_ambiguous_fraction`` (the fraction of ambiguous draws) and, for
          Stephens' method, ``relabel_iterations``.

    Examples
    --------
    >>> import numpy as np, arviz as az
    >>> from bayesgmm import relabel
    >>> post = {"weights": np.array([[[0.2, 0.8], [0.8, 0.2]]]),
    ...         "means": np.array([[[[0.0], [5.0]], [[5.0], [0.0]]]]),
    ...         "cov": np.ones((1, 2, 2, 1, 1))}
    >>> dims = {"weights": ["component"], "means": ["component", "feature"],
    ...         "cov": ["component", "feature", "feature_bis"]}
    >>> idata = az.from_dict(posterior=post, dims=dims)
    >>> fixed = relabel(idata)
    >>> fixed.posterior["means"].values[0, :, :, 0]
    array([[0., 5.],
           [0., 5.]])
    >>> fixed.posterior.attrs["relabel_ambiguous_fraction"]
    0.0

    Stephens' method needs the data:

    >>> X = np.array([[0.1], [-0.2], [4.9], [5.3]])
    >>> relabel(idata, method="stephens", X=X).posterior["means"].values[0, :, :, 0]
    array([[0., 5.],
           [0., 5.]])
    """
    check_idata(idata)
    max_iter = check_integer_param(max_iter, "max_iter", minimum=0)
    method = check_option(method, "method", METHODS)
    ambiguity_threshold = check_real_param(ambiguity_threshold, "ambiguity_threshold", minimum=0.0, strict=True)
    if ambiguity_threshold > 1:
        raise ValueError(f"ambiguity_threshold must be in (0, 1] (a ratio of costs), got {ambiguity_threshold}.")
    if method == "cross_entropy" and X is not None:
        raise ValueError("X is only used by method='stephens'; the default 'cross_entropy' method needs no data.")
    K, D = idata.posterior.sizes["component"], idata.posterior.sizes["feature"]
    reference = _check_reference(reference, K, D)
    points = training_points(idata, X) if method == "stephens" else None
    arrays = posterior_arrays(idata)
    perms, cost, draw_covs, ref_means = _cross_entropy_permutations(idata, arrays, reference, max_iter)
    extra = {}
    if method == "stephens":
        perms, kl_cost, extra["relabel_iterations"] = _stephens(_Responsibilities(points, arrays), perms, max_iter)
        ref_means = _apply(arrays["means"], perms, 1).mean(axis=0)
    else:
        kl_cost = _kl_from_cross_entropy(cost, draw_covs)
    ratio = _cost_ratio(kl_cost, perms)
    if reference is None:  # canonical labels: by the reference's first feature, then the next ones
        perms = perms[:, np.lexsort(ref_means.T[::-1])]
    out = _permute_idata(idata, perms)
    return _attach_diagnostics(out, ratio, ambiguity_threshold, method, extra)


def _check_reference(reference, K: int, D: int):
    """None, a fitted EM of K components in D features, or finite means (K, D) as a float array."""
    from .em import GaussianMixtureEM

    if reference is None:
        return None
    if isinstance(reference, GaussianMixtureEM):
        check_fitted_em(reference, name="reference")
        if reference.means_.shape != (K, D):
            raise ValueError(f"reference must describe {K} components in {D} features (like the posterior), "
                             f"got an EM fit with {reference.means_.shape[0]} components in "
                             f"{reference.means_.shape[1]} features.")
        return reference
    if isinstance(reference, (str, bytes, dict, set)) or hasattr(reference, "fit"):
        raise TypeError("reference must be None, a fitted GaussianMixtureEM or an array of means of shape "
                        f"({K}, {D}), got {type(reference).__name__}.")
    try:
        ref_array = np.asarray(reference, dtype=float)
    except (TypeError, ValueError):
        raise TypeError(f"reference must be numeric means of shape ({K}, {D}), got {reference!r}.") from None
    if ref_array.shape != (K, D):
        raise ValueError(f"reference must describe {K} components in {D} features, got means of shape "
                         f"{ref_array.shape}.")
    if not np.all(np.isfinite(ref_array)):
        raise ValueError("reference means contain NaN or infinite values.")
    return ref_array


def _cross_entropy_permutations(idata, arrays: dict, reference, max_iter: int):
    """Per-draw permutations matching the draws' Gaussians to the reference's.

    ``reference`` is as returned by :func:`_check_reference`. With None, the
    reference is the posterior itself: start from the first draw, then match to the
    average of the relabelled draws until no assignment changes (at most
    ``max_iter`` times). Returns the permutations, the cross-entropy costs
    (S, K, K), the draws' covariances the costs used and the last reference means.
    """
    means, covs = arrays["means"], arrays["cov"]
    K, D = means.shape[1:]
    means_only = isinstance(reference, np.ndarray)
    if reference is None:
        ref_means, ref_covs = means[0], covs[0]
    elif means_only:  # no covariances: every component gets the data's spread
        ref_means = reference
        ref_covs = np.broadcast_to(np.diag(_feature_scale(idata, covs) ** 2), (K, D, D))
    else:
        ref_means, ref_covs = np.asarray(reference.means_, dtype=float), reference.full_covariances_
    draw_covs = np.broadcast_to(ref_covs[0], covs.shape) if means_only else covs

    def match(r_means, r_covs):
        cost = _cross_entropy_cost(means, draw_covs, r_means, r_covs)
        return _best_permutations(cost), cost

    perms, cost = match(ref_means, ref_covs)
    if reference is None:
        for _ in range(max_iter):
            ref_means = _apply(means, perms, 1).mean(axis=0)
            new, cost = match(ref_means, _apply(covs, perms, 1).mean(axis=0))
            converged = np.array_equal(new, perms)
            perms = new
            if converged:
                break
    return perms, cost, draw_covs, ref_means


def _permute_idata(idata, perms: np.ndarray):
    post = idata.posterior
    n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
    K = perms.shape[1]
    new_vars = {}
    for name, da in post.data_vars.items():
        if "component" in da.dims:
            values = da.transpose("chain", "draw", ...).values.reshape((n_chain * n_draw,) + da.shape[2:])
            axis = da.transpose("chain", "draw", ...).dims.index("component") - 1
            permuted = _apply(values, perms, axis).reshape(da.transpose("chain", "draw", ...).shape)
            new_vars[name] = da.transpose("chain", "draw", ...).copy(data=permuted).transpose(*da.dims)
    relabelled = post.assign(new_vars)
    identity = np.arange(K)
    moved = np.any(perms != identity, axis=1).reshape(n_chain, n_draw).sum(axis=1)
    relabelled.attrs = {**post.attrs, "relabel_permuted_per_chain": [int(v) for v in moved]}
    out = idata.copy()
    out.posterior = relabelled
    return out


def _attach_diagnostics(idata, ratio: np.ndarray, threshold: float, method: str, extra: dict):
    """Store the per-draw ambiguity in ``sample_stats`` and its summary in ``posterior.attrs``."""
    import xarray as xr

    post = idata.posterior
    shape = (post.sizes["chain"], post.sizes["draw"])
    coords = {"chain": post["chain"].values, "draw": post["draw"].values}
    ratio = ratio.reshape(shape)
    ambiguous = ratio > threshold
    stats = xr.Dataset(
        {"relabel_cost_ratio": (("chain", "draw"), ratio), "relabel_ambiguous": (("chain", "draw"), ambiguous)},
        coords=coords)
    if "sample_stats" in idata.groups():
        idata.sample_stats = idata.sample_stats.assign(
            {name: da.assign_coords(coords) for name, da in stats.data_vars.items()})
    else:
        idata.add_groups({"sample_stats": stats})
    post.attrs.update({"relabel_method": method, "relabel_ambiguity_threshold": float(threshold),
                       "relabel_ambiguous_fraction": float(ambiguous.mean()), **extra})
    return idata
