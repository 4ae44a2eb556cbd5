"""Label switching: make component k mean the same thing in every draw."""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

from ._posterior import check_fitted_em, check_idata, posterior_arrays
from ._validation import check_integer_param

__all__ = ["relabel"]



def _cross_entropy_cost(means, covs, ref_means, ref_covs) -> np.ndarray:
    """cost[s, j, k]: expected -log N(x | ref_k) for x ~ N(draw s component j), up to constants."""
    ref_prec = np.linalg.inv(ref_covs)  # (K, D, D)
    _, ref_logdet = np.linalg.slogdet(ref_covs)
    diff = means[:, :, None, :] - ref_means[None, None, :, :]  # (S, j, k, D)
    maha = np.einsum("sjkd,kde,sjke->sjk", diff, ref_prec, diff)
    trace = np.einsum("kde,sjed->sjk", ref_prec, covs)
    return 0.5 * (maha + trace + ref_logdet[None, None, :])


def _best_permutations(cost: np.ndarray) -> np.ndarray:
    """For each draw, perm[s, k] = draw component that becomes label k."""
    perms = np.empty(cost.shape[:2], dtype=np.intp)
    for s in range(cost.shape[0]):
        rows, cols = linear_sum_assignment(cost[s])
        perms[s, cols] = rows
    return perms


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


def relabel(idata, reference=None, *, max_iter: int = 50):
    """Permute component labels draw by draw so labels agree across draws and chains.

    Each draw's components are matched to reference components with the Hungarian
    algorithm on a cost that uses means *and* covariances (the cross-entropy of
    the draw's Gaussian against the reference's). The same permutation is applied
    to every variable with a ``component`` dimension (weights, means, covariances,
    standard deviations, correlations and the latents).

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
        every draw to the first one).

    Returns
    -------
    arviz.InferenceData
        A relabelled copy. ``posterior.attrs["relabel_permuted_per_chain"]`` lists
        how many draws of each chain were permuted.

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
    >>> relabel(idata).posterior["means"].values[0, :, :, 0]
    array([[0., 5.],
           [0., 5.]])
    """
    check_idata(idata)
    max_iter = check_integer_param(max_iter, "max_iter", minimum=0)
    K, D = idata.posterior.sizes["component"], idata.posterior.sizes["feature"]
    from .em import GaussianMixtureEM

    if isinstance(reference, GaussianMixtureEM):
        check_fitted_em(reference, name="reference")
        if reference.means_.shape != (K, D):
            raise ValueError(f"reference must describe {K} components in {D} features (like the posterior), "
                             f"got an EM fit with {reference.means_.shape[0]} components in "
                             f"{reference.means_.shape[1]} features.")
    elif reference is not None:
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
    arrays = posterior_arrays(idata)
    means, covs = arrays["means"], arrays["cov"]

    canonical = reference is None
    means_only = reference is not None and not isinstance(reference, GaussianMixtureEM)
    if reference is None:
        ref_means, ref_covs = means[0], covs[0]
    elif not means_only:
        ref_means = np.asarray(reference.means_, dtype=float)
        ref_covs = reference.full_covariances_
    else:
        ref_means = ref_array
        ref_covs = np.broadcast_to(np.diag(_feature_scale(idata, covs) ** 2), (K, D, D))

    def match(r_means, r_covs):
        if means_only:
            return _best_permutations(_cross_entropy_cost(means, np.broadcast_to(r_covs[0], covs.shape),
                                                          r_means, r_covs))
        return _best_permutations(_cross_entropy_cost(means, covs, r_means, r_covs))

    perms = match(ref_means, ref_covs)
    if reference is None:
        for _ in range(max_iter):
            ref_means = _apply(means, perms, 1).mean(axis=0)
            ref_covs = _apply(covs, perms, 1).mean(axis=0)
            new = match(ref_means, ref_covs)
            if np.array_equal(new, perms):
                break
            perms = new
    if canonical:
        order = np.lexsort(ref_means.T[::-1])  # by first feature, then the next ones
        perms = perms[:, order]
    return _permute_idata(idata, perms)


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

