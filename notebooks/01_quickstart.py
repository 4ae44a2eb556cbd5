# %% [markdown]
# # Quickstart: Old Faithful, by EM and by Bayes
#
# The Old Faithful geyser data (272 eruptions: eruption time and waiting time, in
# minutes) are the classic mixture example. We choose a model by EM, fit the Bayesian
# mixture, and look at what the posterior adds: how *certain* each assignment is.
#
# Set `BAYESGMM_FAST=1` to run this in seconds (the tests do); without it the
# notebook uses the settings a real analysis would.

# %%
import os
import warnings

import matplotlib.pyplot as plt
import numpy as np

import bayesgmm as bg
from bayesgmm import plotting
from bayesgmm.datasets import load_faithful

FAST = os.environ.get("BAYESGMM_FAST") == "1"
DRAWS = 150 if FAST else 1000
warnings.filterwarnings("ignore", category=UserWarning)
data = load_faithful()
X = data.to_numpy()
data.describe()

# %% [markdown]
# ## 1. Model selection by EM
# Every K from 1 to 9 with the four covariance structures, ranked by BIC (lower is
# better). Fits whose components collapse onto tied values would be flagged
# `degenerate` and never chosen.

# %%
selection = bg.select_model(X, n_components=range(1, 10), random_state=0)
print(selection)
selection.table.sort_values("bic").head(6)

# %%
ax = plotting.plot_selection(selection.table)

# %% [markdown]
# ## 2. The Bayesian mixture
# Same K, full covariances with LKJ priors, fitted by NUTS starting from the EM solution.

# %%
K = selection.best_params_["n_components"]
model = bg.BayesianGMM(K)
idata = model.fit(data, draws=DRAWS, tune=DRAWS, chains=2, random_seed=1, progressbar=False)
summ = bg.summary(idata)
summ["means"].sel(metric=["mean", "hdi_3%", "hdi_97%", "r_hat"])

# %% [markdown]
# ## 3. Assignments with uncertainty
# The posterior probability of each point's most probable component, averaged over
# draws. Points between the two big clusters are genuinely ambiguous.

# %%
em = selection.best_estimator_
aligned = bg.relabel(idata, reference=em)
assign = bg.assignments(aligned, X, relabel_draws=False)
uncertain = int((assign["max_probability"] < 0.8).sum())
print(f"{uncertain} of {len(X)} eruptions have < 80% probability for their most probable component")
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
plotting.plot_clusters(X, assign, idata=aligned, em=em, ax=axes[0])
plotting.plot_uncertainty(assign, ax=axes[1]);

# %% [markdown]
# ## 4. Predictive density with credible bands

# %%
grid = np.linspace(40, 100, 300)
waiting = bg.marginal_density(aligned, "waiting", grid)
ax = plotting.plot_density_1d(waiting, X=X[:, 1])
ax.set_xlabel("waiting time (min)");

# %% [markdown]
# ## 5. The report
# The same analysis as one self-contained HTML file (`bayesgmm report data.csv --out report.html`).

# %%
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

from bayesgmm.cli import main  # noqa: E402

out = Path(tempfile.mkdtemp()) / "faithful_report.html"
csv = Path(tempfile.mkdtemp()) / "faithful.csv"
data.to_csv(csv, index=False)
main(["report", str(csv), "--components", str(K), "--draws", str(DRAWS), "--tune", str(DRAWS),
      "--out", str(out), "--quiet"])
print(out.stat().st_size > 10_000)
