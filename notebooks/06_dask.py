# %% [markdown]
# # Out of core and on a cluster: EM on Dask
#
# `GaussianMixtureEM` accepts a `dask.array.Array` or a dask DataFrame. Every EM pass
# is then a reduction: each block computes the M-step's sufficient statistics with the
# same NumPy code as an in-memory fit, and the small per-block results are summed over
# a tree. Only the parameters travel to the blocks, so the data can stay on disk (here a
# Zarr store) or spread over the workers of a cluster. The start is computed from a random
# sample of at most 10,000 rows; with fewer rows it sees them all, so the fit *equals*
# the in-memory one.

# %%
import os
import tempfile

import dask.array as da
import dask.dataframe as dd
import numpy as np
import pandas as pd
import zarr
from dask.distributed import Client, LocalCluster

import bayesgmm as bg
from bayesgmm.datasets import make_mixture

FAST = os.environ.get("BAYESGMM_FAST") == "1"
N_BLOCKS = 4 if FAST else 40
BLOCK_ROWS = 10_000 if FAST else 25_000
KS = range(2, 5) if FAST else range(1, 7)

# %% [markdown]
# ## Data written to disk block by block
#
# Each block is drawn and written on its own, as data too large for memory would be,
# from one mixture of four components.

# %%
_, truth = make_mixture(4, n_components=4, n_features=3, random_state=0, separation=4)
store = os.path.join(tempfile.mkdtemp(), "X.zarr")
z = zarr.open_array(store, mode="w", shape=(N_BLOCKS * BLOCK_ROWS, 3), chunks=(BLOCK_ROWS, 3), dtype="f8")
for b in range(N_BLOCKS):
    rng = np.random.default_rng(b)
    component = rng.choice(4, size=BLOCK_ROWS, p=truth.weights)
    block = np.empty((BLOCK_ROWS, 3))
    for k in range(4):
        rows = component == k
        block[rows] = rng.multivariate_normal(truth.means[k], truth.covariances[k], size=rows.sum())
    z[b * BLOCK_ROWS:(b + 1) * BLOCK_ROWS] = block
X = da.from_zarr(store)
X

# %% [markdown]
# ## Fitting on a cluster
#
# With a `dask.distributed.Client` active every pass runs on its workers (here a local
# cluster of two; the same code runs on a multi-node one). Without one, dask's threaded
# scheduler is used.

# %%
cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None)
client = Client(cluster)
gm = bg.GaussianMixtureEM(4, covariance_type="full", random_state=0).fit(X)
print(f"{gm.n_iter_} EM passes, log-likelihood per row {gm.lower_bound_:.4f}")
pd.DataFrame(gm.means_, columns=["x0", "x1", "x2"]).assign(weight=gm.weights_).round(3)

# %% [markdown]
# Predictions are lazy dask arrays, computed block by block when asked for:

# %%
labels = gm.predict(X)
proba = gm.predict_proba(X)
print(type(labels).__name__, labels.shape, proba.shape)
np.bincount(labels.compute()) / X.shape[0]

# %% [markdown]
# ## The same fit as in memory
#
# Given the same start (here the parameters just found), the dask fit is the in-memory
# fit up to rounding: the passes add the same statistics in another order.

# %%
start = dict(weights_init=gm.weights_, means_init=gm.means_, precisions_init=gm.precisions_, tol=1e-8)
in_memory = bg.GaussianMixtureEM(4, **start).fit(X.compute())
on_dask = bg.GaussianMixtureEM(4, **start).fit(X)
print("iterations:", in_memory.n_iter_, on_dask.n_iter_)
print("largest relative difference of the means:",
      f"{np.max(np.abs(on_dask.means_ - in_memory.means_) / np.abs(in_memory.means_)):.1e}")
print("log-likelihoods:", in_memory.score(X.compute()), on_dask.score(X))

# %% [markdown]
# ## A dask DataFrame, and choosing K
#
# Column names are kept as `feature_names_in_`. `select_model` fits its whole grid with
# the same reductions.

# %%
frame = dd.from_dask_array(X, columns=["length", "width", "depth"])
print(bg.GaussianMixtureEM(4, random_state=0).fit(frame).feature_names_in_)
result = bg.select_model(X, n_components=KS, covariance_types=["full", "diag"], random_state=0)
print(result.best_params_)
result.table[["n_components", "covariance_type", "bic", "rank"]]

# %%
client.close()
cluster.close()
