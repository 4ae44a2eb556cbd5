import os
import warnings

import pytest

# sampler="auto" is nutpie, whose numba compile costs 8-30 s for each model
# structure the first time on a machine; the suite fits dozens of structures with
# small draws, so it pins PyMC's sampler (set before bayesgmm is imported, so the
# notebooks and CLI subprocesses inherit it). tests/test_auto_sampling.py unsets it
# to test the default itself, and test_nutpie.py names nutpie.
os.environ["BAYESGMM_SAMPLER"] = "pymc"

from bayesgmm import BayesianGMM
from bayesgmm.datasets import make_mixture


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
