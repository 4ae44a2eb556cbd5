import warnings

import arviz as az
import numpy as np
import pytest

from bayesgmm import BayesianGMM
from bayesgmm.datasets import make_mixture


def idata_from_em(em, X=None):
    """A one-draw 'posterior' at an EM fit's parameters."""
    K, D = em.means_.shape
    cov = em._cov.full_matrices(em.covariances_, K, D)
    post = {
        "weights": em.weights_[None, None],
        "means": em.means_[None, None],
        "cov": cov[None, None],
        "chol": np.linalg.cholesky(cov)[None, None],
    }
    dims = {"weights": ["component"], "means": ["component", "feature"],
            "cov": ["component", "feature", "feature_bis"], "chol": ["component", "feature", "feature_bis"]}
    groups = {"posterior": post}
    if X is not None:
        groups["observed_data"] = {"obs": X}
        dims["obs"] = ["obs_id", "feature"]
    return az.from_dict(**groups, dims=dims)


@pytest.fixture(scope="session")
def three_blobs():
    X, truth = make_mixture(120, n_components=3, n_features=2, random_state=7, separation=8)
    return X, truth


@pytest.fixture(scope="session")
def three_blob_fit(three_blobs):
    X, _ = three_blobs
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = BayesianGMM(3)
        idata = model.fit(X, draws=150, tune=150, chains=2, random_seed=3, progressbar=False)
    return model, idata
