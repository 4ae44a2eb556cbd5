# %% [markdown]
# # Label switching: why raw R-hat lies, and how to fix it
#
# A mixture's likelihood does not change if we swap component labels, so the
# posterior has K! identical modes. Chains that settle in different modes look
# "unconverged" to R-hat even when each has converged perfectly.

# %%
import os
import warnings

import arviz as az
import numpy as np
from matplotlib import MatplotlibDeprecationWarning

import bayesgmm as bg

FAST = os.environ.get("BAYESGMM_FAST") == "1"
# ArviZ 0.23's trace plots call a Matplotlib API deprecated in 3.11 (hundreds of lines of
# noise, nothing to do with the analysis); only that is hidden, never a diagnostic.
warnings.filterwarnings("ignore", category=MatplotlibDeprecationWarning, module="arviz")
DRAWS = 300 if FAST else 1000

X = np.array([[0.0], [1.0], [10.0], [11.0], [12.0]])
# Narrow component sds, so that each group of points is its own mode; 4 chains from the prior.
model = bg.BayesianGMM(2, covariance_type="diag", priors={"sd_scale": 0.2})
idata = model.fit(X, init="prior", chains=4, draws=DRAWS, tune=DRAWS, random_seed=4, progressbar=False)

# %% [markdown]
# ## Raw traces: the chains disagree about which label is which

# %%
idata.posterior["means"].mean("draw").to_series().unstack("component")

# %%
raw = float(az.rhat(idata.posterior[["means"]])["means"].max())
print(f"raw R-hat of the means: {raw:.2f}")
axes = az.plot_trace(idata, var_names=["means"])

# %% [markdown]
# ## Relabelled: one permutation per draw, chosen by the Hungarian algorithm

# %%
fixed = bg.relabel(idata)
print("draws permuted per chain:", fixed.posterior.attrs["relabel_permuted_per_chain"])
print(f"relabelled R-hat of the means: {float(az.rhat(fixed.posterior[['means']])['means'].max()):.3f}")
axes = az.plot_trace(fixed, var_names=["means"])

# %% [markdown]
# ## The alternative: an ordering constraint
# `ordered=True` forces the means to increase along the first feature, which removes
# the symmetry in the model itself (the approach of the PyMC examples). It works well
# in 1-D; in several dimensions the ordering feature must separate the components.

# %%
ordered = bg.BayesianGMM(2, covariance_type="diag", priors={"sd_scale": 0.2}, ordered=True)
idata_ordered = ordered.fit(X, init="prior", sampler="pymc", chains=4, draws=DRAWS, tune=DRAWS, random_seed=4,
                            progressbar=False)
print(f"ordered model, raw R-hat: {float(az.rhat(idata_ordered.posterior[['means']])['means'].max()):.3f}")
