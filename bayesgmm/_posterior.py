"""Reading mixture parameters out of an InferenceData, whatever produced it."""

from __future__ import annotations

import numpy as np


def check_idata(idata) -> None:
    """Refuse anything that is not a mixture posterior."""
    if idata is None or not hasattr(idata, "groups") or "posterior" not in idata.groups():
        raise ValueError("idata must be an arviz.InferenceData with a posterior group (from BayesianGMM.fit).")
    post = idata.posterior
    missing = [v for v in ("weights", "means") if v not in post]
    if missing:
        raise ValueError(f"idata.posterior lacks {missing}; expected the output of BayesianGMM.fit.")
    if "cov" not in post and "chol" not in post:
        raise ValueError("idata.posterior needs 'cov' or 'chol' (component covariances).")


def posterior_arrays(idata) -> dict[str, np.ndarray]:
    """Draws flattened over (chain, draw): weights (S, K), means (S, K, D), cov and chol (S, K, D, D)."""
    check_idata(idata)
    post = idata.posterior

    def flat(name, tail):
        da = post[name].transpose("chain", "draw", *tail)
        return da.values.reshape((-1,) + da.shape[2:]).astype(float)

    weights = flat("weights", ("component",))
    means = flat("means", ("component", "feature"))
    mat = ("component", "feature", "feature_bis")
    if "chol" in post:
        chol = flat("chol", mat)
        cov = post["cov"] if "cov" in post else None
        cov = flat("cov", mat) if cov is not None else chol @ np.swapaxes(chol, -1, -2)
    else:
        cov = flat("cov", mat)
        chol = np.linalg.cholesky(cov)
    return {"weights": weights, "means": means, "cov": cov, "chol": chol}


def em_to_idata(em, X=None):
    """An EM fit as a one-draw "posterior", to run it through the same summaries.

    Parameters
    ----------
    em : GaussianMixtureEM
        A fitted model.
    X : array-like of shape (n_samples, n_features), optional
        Stored as ``observed_data`` so summaries default to it.

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

    if not hasattr(em, "means_"):
        raise ValueError("em must be a fitted GaussianMixtureEM.")
    K, D = em.means_.shape
    cov = em._cov.full_matrices(em.covariances_, K, D)
    stds = np.sqrt(np.diagonal(cov, axis1=1, axis2=2))
    posterior = {
        "weights": np.asarray(em.weights_, dtype=float)[None, None],
        "means": np.asarray(em.means_, dtype=float)[None, None],
        "stds": stds[None, None],
        "cov": np.asarray(cov, dtype=float)[None, None],
        "corr": (cov / (stds[:, :, None] * stds[:, None, :]))[None, None],
        "chol": np.linalg.cholesky(cov)[None, None],
    }
    mat = ["component", "feature", "feature_bis"]
    dims = {"weights": ["component"], "means": ["component", "feature"], "stds": ["component", "feature"],
            "cov": mat, "corr": mat, "chol": mat}
    groups = {"posterior": posterior}
    if X is not None:
        groups["observed_data"] = {"obs": np.asarray(X, dtype=float)}
        dims["obs"] = ["obs_id", "feature"]
    idata = az.from_dict(**groups, dims=dims)
    idata.posterior.attrs["relabel_permuted_per_chain"] = [0]
    return idata
