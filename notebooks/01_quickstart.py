# %% [markdown]
# # Quickstart: Old Faithful, by EM and by Bayes
#
# The Old Faithful geyser data (272 eruptions: eruption time and waiting time, in
# minutes) are the classic mixture example. We choose a model by EM, fit the Bayesian
# mixture, and look at what the posterior adds: how *certain* each assignment is.
# One call does the whole analysis; the rest of the notebook only looks at it.
#
# Set `BAYESGMM_FAST=1` to run this in seconds (the tests do); without it the
# notebook uses the settings a real analysis would.

# %%
import os

import matplotlib.pyplot as plt
import numpy as np

import bayesgmm as bg
from bayesgmm import plotting
from bayesgmm.analysis import AnalysisSettings, analyse
from bayesgmm.datasets import load_faithful
from bayesgmm.report import render_report

FAST = os.environ.get("BAYESGMM_FAST") == "1"
DRAWS = 150 if FAST else 1000
data = load_faithful()
X = data.to_numpy()
data.describe()

# %% [markdown]
# ## 1. One analysis
# `analyse` runs the whole pipeline once: the EM grid (every K from 1 to 9 with the
# four covariance structures), the Bayesian mixture of the chosen K and covariance
# type started from the grid's own EM fit, the labels aligned to EM, the summary,
# the assignments and the EM-versus-posterior comparison. K is chosen openly: BIC, LOO
# over neighbouring K and a sparse mixture's number of occupied clusters side by side
# (`analysis.k_choice`). Everything below (and the HTML report at the end) reads this
# one object; nothing is fitted twice. Fast mode skips LOO and the sparse fit.

# %%
choice = {"loo_neighbours": 0, "loo_extra_fits": 0, "sparse_alpha": None, "k_rule": "bic"} if FAST else {}
settings = AnalysisSettings(select=list(range(1, 10)), draws=DRAWS, tune=DRAWS, seed=0, progressbar=False,
                            source="bayesgmm.datasets.load_faithful()", **choice)
analysis = analyse(data, settings)
print(analysis.k_choice.headline())
print(analysis.selection)
analysis.selection.table.sort_values("bic").head(6)

# %% [markdown]
# ## 2. Model selection by EM
# Ranked by BIC (lower is better). Fits whose components collapse onto tied values
# would be flagged `degenerate` and never chosen.

# %%
ax = plotting.plot_selection(analysis.selection.table)

# %% [markdown]
# ## 3. The Bayesian mixture
# Same K and covariance structure as EM's choice, fitted by NUTS starting from that EM
# solution. The verdict comes before any number.

# %%
print(analysis.verdict.headline())
analysis.summary["means"].sel(metric=["mean", "hdi_3%", "hdi_97%", "r_hat"])

# %% [markdown]
# ## 4. Assignments with uncertainty
# The posterior probability of each point's most probable component, averaged over
# draws. Points between the two big clusters are genuinely ambiguous.

# %%
assign = analysis.assignments
uncertain = int((assign["max_probability"] < 0.8).sum())
print(f"{uncertain} of {len(X)} eruptions have < 80% probability for their most probable component")
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
plotting.plot_clusters(X, assign, idata=analysis.posterior, em=analysis.em, ax=axes[0])
plotting.plot_uncertainty(assign, ax=axes[1]);

# %% [markdown]
# ## 5. Predictive density with credible bands

# %%
grid = np.linspace(40, 100, 300)
waiting = bg.marginal_density(analysis.posterior, "waiting", grid)
ax = plotting.plot_density_1d(waiting, X=X[:, 1])
ax.set_xlabel("waiting time (min)");

# %% [markdown]
# ## 6. The report
# The same analysis as one self-contained HTML file, rendered from the object above
# (`bayesgmm report data.csv --out report.html` analyses and renders in one go).

# %%
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

out = Path(tempfile.mkdtemp()) / "faithful_report.html"
out.write_text(render_report(analysis), encoding="utf-8")
print(out.stat().st_size > 10_000)
