# %% [markdown]
# # Generating data from a fitted mixture
#
# EM gives one density to sample from; the posterior predictive averages over the
# parameter uncertainty, so its draws are slightly more spread. Both should look like
# the data.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
from scipy import stats

import bayesgmm as bg
from bayesgmm.datasets import load_faithful

FAST = os.environ.get("BAYESGMM_FAST") == "1"
DRAWS = 150 if FAST else 1000
X = load_faithful().to_numpy()

em = bg.GaussianMixtureEM(3, covariance_type="full", random_state=0).fit(X)
idata = bg.BayesianGMM(3).fit(X, draws=DRAWS, tune=DRAWS, chains=2, random_seed=0, progressbar=False)

# %%
X_em, _ = em.sample(5000)
X_post = bg.sample_posterior_predictive(idata, 5000, random_seed=0)["X"].values

# %% [markdown]
# ## Checks against the data: moments and two-sample Kolmogorov-Smirnov tests per feature

# %%
for name, sample in (("EM", X_em), ("posterior predictive", X_post)):
    ks = [stats.ks_2samp(X[:, j], sample[:, j]).pvalue for j in range(2)]
    print(f"{name:>22}: means {sample.mean(0).round(2)}, sds {sample.std(0).round(2)}, KS p-values "
          f"{np.round(ks, 3)}")
print(f"{'data':>22}: means {X.mean(0).round(2)}, sds {X.std(0).round(2)}")

# %%
fig, axes = plt.subplots(1, 3, figsize=(13, 4), sharex=True, sharey=True)
for ax, sample, title in ((axes[0], X, "data"), (axes[1], X_em[:272], "EM"),
                          (axes[2], X_post[:272], "posterior predictive")):
    ax.scatter(sample[:, 0], sample[:, 1], s=8, alpha=0.6)
    ax.set_title(title)
    ax.set_xlabel("eruptions")
axes[0].set_ylabel("waiting");
