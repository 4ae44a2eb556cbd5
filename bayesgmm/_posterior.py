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


def n_features(idata) -> int:
    return int(idata.posterior.sizes["feature"])
