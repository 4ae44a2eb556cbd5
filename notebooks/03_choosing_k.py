# %% [markdown]
# # Choosing the number of components: BIC, ICL and LOO side by side
#
# BIC and ICL come from EM fits; LOO (Pareto-smoothed leave-one-out cross-validation)
# from the Bayesian fits. A sparse Dirichlet prior (alpha < 1) offers a third answer:
# fit too many components and let the data switch the extra ones off.

# %%
import os

import numpy as np

import bayesgmm as bg
from bayesgmm import plotting
from bayesgmm.datasets import make_mixture

FAST = os.environ.get("BAYESGMM_FAST") == "1"
DRAWS = 100 if FAST else 1000
KS = range(1, 4) if FAST else range(1, 7)

# %% [markdown]
# ## A 1-D example with several modes

# %%
rng = np.random.default_rng(3)
x = np.concatenate([rng.normal(-4, 0.8, 80), rng.normal(0, 0.6, 60), rng.normal(3.5, 1.0, 80)])[:, None]
result_1d = bg.compare_k(x, KS, draws=DRAWS, tune=DRAWS, random_seed=0)
result_1d.table[["n_components", "elpd_loo", "se", "elpd_diff", "dse", "em_bic", "em_icl"]]

# %%
print("LOO picks K =", result_1d.best_loo, "| within one SE:", result_1d.within_one_se(),
      "| EM BIC picks K =", result_1d.best_bic)
ax = plotting.plot_loo(result_1d.table)

# %% [markdown]
# ## Simulated 2-D data with known K = 3, and a sparse mixture

# %%
X, truth = make_mixture(300 if FAST else 900, n_components=3, n_features=2, random_state=5, separation=7)
result = bg.compare_k(X, KS, draws=DRAWS, tune=DRAWS, random_seed=0, sparse_alpha=0.05)
result.table[["n_components", "elpd_loo", "se", "em_bic", "em_icl"]]

# %%
sparse = result.sparse
print(f"Sparse Dirichlet(0.05) with K={max(KS)}: components above 5% weight: "
      f"{float(sparse['mean']):.2f} (94% HDI {float(sparse['lower']):.0f}-{float(sparse['upper']):.0f})")
sparse["probability"].to_series()
