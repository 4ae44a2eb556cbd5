# %% [markdown]
# # EM versus the posterior: where they agree and where they do not
#
# With plenty of well separated data, EM's point estimate sits inside every posterior
# interval and both give the same clustering. With a small, overlapping sample the
# posterior is honest about what the data cannot tell apart, and EM is not.

# %%
import os

import matplotlib.pyplot as plt

import bayesgmm as bg
from bayesgmm import plotting
from bayesgmm.analysis import AnalysisSettings, analyse
from bayesgmm.datasets import make_mixture

FAST = os.environ.get("BAYESGMM_FAST") == "1"
DRAWS = 200 if FAST else 1000
N_LARGE = 400 if FAST else 3000


def both_fits(X, K, seed):
    """EM and the Bayesian mixture of K full-covariance components, the posterior aligned to EM (once)."""
    settings = AnalysisSettings(n_components=K, covariance_types=("full",), draws=DRAWS, tune=DRAWS, seed=seed,
                                progressbar=False)
    return analyse(X, settings)


def versus(analysis, X_test):
    """EM against the aligned posterior, reusing the analysis' assignments, with held-out rows."""
    return bg.compare_fits(analysis.em, analysis.posterior, X_test=X_test, aligned=True,
                           assignments=analysis.assignments)


# %% [markdown]
# ## A large, well separated sample

# %%
X_big, _ = make_mixture(N_LARGE, n_components=3, n_features=2, random_state=1, separation=8)
X_big_test, _ = make_mixture(500, n_components=3, n_features=2, random_state=1, separation=8)
big_fits = both_fits(X_big, 3, 0)
big = versus(big_fits, X_big_test)
print(f"ARI {big.adjusted_rand_index:.3f}; EM inside the 94% HDI: {big.all_em_in_hdi}; "
      f"uncertain points: {len(big.uncertain)}")
big.log_predictive

# %% [markdown]
# ## A small, overlapping sample

# %%
X_small, _ = make_mixture(20, n_components=2, n_features=2, random_state=2, separation=2.5)
X_small_test, _ = make_mixture(500, n_components=2, n_features=2, random_state=2, separation=2.5)
small_fits = both_fits(X_small, 2, 0)
small = versus(small_fits, X_small_test)
print(f"ARI {small.adjusted_rand_index:.3f}; EM inside the 94% HDI: {small.all_em_in_hdi}; "
      f"uncertain points: {len(small.uncertain)} of {len(X_small)}")
small.table.query("not em_in_hdi")

# %% [markdown]
# On held-out data the posterior predictive is at least as good as the plug-in EM
# density, usually better when the sample is small (EM's estimate overfits):

# %%
small.log_predictive

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
for ax, X, fits, title in ((axes[0], X_big, big_fits, "large, separated"),
                           (axes[1], X_small, small_fits, "small, overlapping")):
    plotting.plot_clusters(X, fits.assignments, idata=fits.posterior, em=fits.em, ax=ax)
    ax.set_title(title)
