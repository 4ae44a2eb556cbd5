"""A self-contained HTML clustering report (figures embedded, nothing fetched)."""

from __future__ import annotations

import base64
import html
import io
import platform
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata

import matplotlib

matplotlib.use("Agg")  # the report never opens windows

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from . import plotting  # noqa: E402
from .compare import compare_fits, compare_k  # noqa: E402
from .diagnostics import Verdict, assess  # noqa: E402
from .labels import relabel  # noqa: E402
from .model import BayesianGMM  # noqa: E402
from .selection import select_model  # noqa: E402
from .summaries import assignments, marginal_density, predictive_density, summary  # noqa: E402

__all__ = ["ReportSettings", "build_report"]

SECTIONS = (
    ("overview", "Data overview"),
    ("selection", "Model selection"),
    ("diagnostics", "Sampler diagnostics"),
    ("clusters", "Clusters"),
    ("uncertain", "Points with uncertain assignments"),
    ("em-vs-posterior", "EM versus posterior"),
    ("plots", "Plots"),
    ("appendix", "Appendix: reproducibility"),
)

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1100px; color: #222; }
h1 { border-bottom: 2px solid #444; } h2 { margin-top: 2.5rem; border-bottom: 1px solid #bbb; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.6rem; text-align: right; }
th { background: #f0f0f0; } .warn { background: #fff4e5; border-left: 4px solid #f0a020; padding: 0.5rem 1rem; }
.ok { background: #eef8ee; border-left: 4px solid #3a3; padding: 0.5rem 1rem; }
.verdict { margin: 1rem 0 1.5rem; padding: 1rem 1.5rem; border: 3px solid; border-radius: 6px; font-size: 1.05rem; }
.verdict .verdict-title { font-size: 1.6rem; font-weight: bold; margin: 0 0 0.5rem; }
.verdict-reliable { background: #e6f6e6; border-color: #2e8b2e; } .verdict-reliable .verdict-title { color: #1d6b1d; }
.verdict-unreliable { background: #fdecea; border-color: #c62828; }
.verdict-unreliable .verdict-title { color: #b71c1c; }
.verdict-not-assessed { background: #f3f3f3; border-color: #888; }
figure { display: inline-block; margin: 0.5rem; } img { max-width: 520px; }
nav a { margin-right: 1rem; }
"""


@dataclass
class ReportSettings:
    """Everything that determines a report (recorded in its appendix)."""

    n_components: int | None = None
    select: list[int] = field(default_factory=lambda: list(range(1, 7)))
    covariance_types: tuple[str, ...] = ("full", "tied", "diag", "spherical")
    method: str = "nuts"
    draws: int = 1000
    tune: int = 1000
    chains: int = 2
    seed: int = 0
    threshold: float = 0.8
    loo_neighbours: int = 1
    progressbar: bool = True
    source: str = ""
    standardized: bool = False
    dropped_rows: list[int] = field(default_factory=list)


def _figure(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="figure" src="data:image/png;base64,{data}">'


def _fig_block(fig, caption: str) -> str:
    return f"<figure>{_figure(fig)}<figcaption>{html.escape(caption)}</figcaption></figure>"


def _table(df: pd.DataFrame, index: bool = False) -> str:
    return df.to_html(index=index, float_format=lambda v: f"{v:.4g}", border=0, na_rep="")


def _note(text: str, kind: str = "warn") -> str:
    return f'<p class="{kind}">{html.escape(text)}</p>'


def _verdict_box(verdict: Verdict, what: str) -> str:
    """The report's headline: a large green (reliable), red (unreliable) or grey box."""
    titles = {"reliable": "Reliable posterior", "unreliable": "UNRELIABLE posterior",
              "not assessed": "Posterior not assessed"}
    if verdict.metrics.get("kind") == "variational":
        titles = {k: v.replace("posterior", "variational fit") for k, v in titles.items()}
    items = lambda values: "".join(f"<li>{html.escape(v)}</li>" for v in values)  # noqa: E731
    parts = [f'<div id="verdict" class="verdict verdict-{verdict.label.replace(" ", "-")}">',
             f'<p class="verdict-title">{html.escape(titles.get(verdict.label, verdict.label))}</p>',
             f"<p>{html.escape(verdict.headline())}</p>", f"<p>For {html.escape(what)}.</p>"]
    if verdict.reasons and verdict.label != "reliable":
        parts.append(f"<p><b>Why:</b></p><ul>{items(verdict.reasons)}</ul>")
    if verdict.advice:
        parts.append(f"<p><b>What to do:</b></p><ul>{items(verdict.advice)}</ul>")
    if verdict.notes:
        parts.append(f"<p><b>Notes:</b></p><ul>{items(verdict.notes)}</ul>")
    if verdict.label == "unreliable":
        parts.append("<p>Read every number below with this in mind: intervals and assignment probabilities "
                     "may be wrong.</p>")
    parts.append("</div>")
    return "\n".join(parts)


def _versions() -> pd.DataFrame:
    rows = [("python", platform.python_version())]
    for pkg in ("bayesgmm", "numpy", "scipy", "scikit-learn", "pymc", "pytensor", "arviz", "xarray", "matplotlib"):
        try:
            rows.append((pkg, metadata.version(pkg)))
        except metadata.PackageNotFoundError:
            rows.append((pkg, "not installed"))
    return pd.DataFrame(rows, columns=["package", "version"])


def build_report(data: pd.DataFrame, settings: ReportSettings) -> str:
    """Fit EM and Bayesian mixtures to ``data`` and return the report as HTML text.

    Parameters
    ----------
    data : pandas.DataFrame
        Numeric columns only, no missing values (the CLI checks).
    settings : ReportSettings

    Returns
    -------
    str
        One self-contained HTML document.
    """
    X = data.to_numpy(dtype=float)
    names = [str(c) for c in data.columns]
    D = X.shape[1]
    parts: dict[str, list[str]] = {key: [] for key, _ in SECTIONS}

    # -- overview
    overview = data.describe().T[["mean", "std", "min", "max"]]
    parts["overview"].append(f"<p>{len(data)} rows, {D} numeric column(s) from "
                             f"<code>{html.escape(settings.source)}</code>"
                             f"{' (standardized)' if settings.standardized else ''}.</p>")
    parts["overview"].append(_table(overview, index=True))
    if settings.dropped_rows:
        parts["overview"].append(_note(f"{len(settings.dropped_rows)} row(s) with missing values were dropped "
                                       f"(--dropna): rows {settings.dropped_rows[:50]}"
                                       f"{' ...' if len(settings.dropped_rows) > 50 else ''}."))

    # -- model selection: EM criteria, then LOO around the chosen K
    ks = [settings.n_components] if settings.n_components else settings.select
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        selection = select_model(X, ks, covariance_types=settings.covariance_types, random_state=settings.seed,
                                 progressbar=settings.progressbar)
    em = selection.best_estimator_
    K = em.n_components
    bayes_cov = "full" if em.covariance_type in ("full", "tied") else "diag"
    table = selection.table[["n_components", "covariance_type", "log_likelihood", "n_parameters", "bic", "icl",
                             "degenerate", "rank"]].sort_values("bic")
    parts["selection"].append(f"<p>EM chose <b>K = {K}</b> with <b>{em.covariance_type}</b> covariance by BIC "
                              "(lower is better; degenerate fits, whose components collapsed, are not ranked).</p>")
    parts["selection"].append(_table(table.head(15)))
    fig, ax = plt.subplots(figsize=(6, 4))
    parts["plots"].append(_fig_block(plotting.plot_selection(selection.table, ax=ax).figure, "BIC against K"))

    loo_ks = sorted(k for k in ks if abs(k - K) <= settings.loo_neighbours and k <= len(X))
    fit_kwargs = dict(method=settings.method, draws=settings.draws, random_seed=settings.seed,
                      progressbar=settings.progressbar)
    if settings.method == "nuts":
        fit_kwargs.update(tune=settings.tune, chains=settings.chains)
    if len(loo_ks) > 1:
        comparison = compare_k(X, loo_ks, covariance_type=bayes_cov, progressbar=settings.progressbar,
                               random_seed=settings.seed, method=settings.method, draws=settings.draws,
                               tune=settings.tune, chains=settings.chains)
        loo_table = comparison.table[["n_components", "elpd_loo", "se", "elpd_diff", "dse", "em_bic", "em_icl"]]
        parts["selection"].append(f"<p>LOO (Bayesian, {bayes_cov} covariance) beside EM's BIC and ICL for "
                                  f"K = {', '.join(map(str, loo_ks))}: LOO ranks K = {comparison.best_loo} "
                                  f"first; EM BIC with {bayes_cov} covariance ranks K = {comparison.best_bic} "
                                  "first.</p>")
        parts["selection"].append(_table(loo_table, index=True))
        fig, ax = plt.subplots(figsize=(6, 4))
        parts["plots"].append(_fig_block(plotting.plot_loo(comparison.table, ax=ax).figure, "LOO against K"))
        idata = comparison.idatas[f"K={K}"]
        model = BayesianGMM(K, covariance_type=bayes_cov)
    else:
        parts["selection"].append("<p>A single K was requested, so LOO compares nothing here.</p>")
        model = BayesianGMM(K, covariance_type=bayes_cov)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            idata = model.fit(X, **fit_kwargs)
    if idata.posterior.sizes["feature"] == len(names):
        idata.posterior = idata.posterior.assign_coords(feature=names, feature_bis=names)
    aligned = relabel(idata, reference=em)
    verdict = assess(aligned)
    fit_what = (f"the Bayesian fit with K = {K} ({bayes_cov} covariance, "
                f"{'NUTS' if settings.method == 'nuts' else settings.method.upper()})")

    # -- diagnostics
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summ = summary(aligned, relabel_draws=False)
    messages = [str(w.message) for w in caught if issubclass(w.category, UserWarning)]
    if settings.method == "nuts":
        if "r_hat" in summ.metric.values:
            rhat = f"Largest R-hat {max(float(summ[v].sel(metric='r_hat').max()) for v in summ.data_vars):.3f}"
        else:
            rhat = "R-hat not computed (too few draws to split into chains)"
        parts["diagnostics"].append(f"<p>NUTS, {settings.chains} chains x {settings.draws} draws after "
                                    f"{settings.tune} tuning steps. {rhat}; divergences "
                                    f"{summ.attrs['n_divergences']}.</p>")
    else:
        hist = idata.get("fit_history")
        conv = bool(hist.attrs.get("converged")) if hist is not None else False
        parts["diagnostics"].append(f"<p>{settings.method.upper()} (variational): {settings.draws} draws from the "
                                    f"fitted approximation; optimisation {'converged' if conv else 'did NOT converge'}."
                                    " Variational intervals are usually too narrow.</p>")
    parts["diagnostics"].append(
        "<p>Labels were aligned to the EM components before summarising (draws permuted per chain: "
        f"{aligned.posterior.attrs.get('relabel_permuted_per_chain')}).</p>")
    for message in messages:
        parts["diagnostics"].append(_note(message))
    if not messages and verdict.reliable:
        parts["diagnostics"].append(_note("No warnings: R-hat, effective sample size and divergences look fine.",
                                          "ok"))
    parts["diagnostics"].append(f"<p>Verdict (the box at the top): {html.escape(verdict.headline())}</p>")

    # -- clusters
    rows = []
    for k in range(K):
        row = {"component": k}
        for var, label in (("weights", "weight"),):
            s = summ[var].sel(component=k)
            row[label] = f"{float(s.sel(metric='mean')):.3g} [{float(s.sel(metric='hdi_3%')):.3g}, " \
                         f"{float(s.sel(metric='hdi_97%')):.3g}]"
        for j, f in enumerate(names):
            for var, label in (("means", "mean"), ("stds", "sd")):
                s = summ[var].sel(component=k).isel(feature=j)
                row[f"{label} {f}"] = f"{float(s.sel(metric='mean')):.4g} [{float(s.sel(metric='hdi_3%')):.4g}, " \
                                      f"{float(s.sel(metric='hdi_97%')):.4g}]"
        rows.append(row)
    parts["clusters"].append("<p>Posterior means with 94% highest-density intervals.</p>")
    parts["clusters"].append(_table(pd.DataFrame(rows)))

    # -- uncertainty and EM vs posterior
    assign = assignments(aligned, X, relabel_draws=False)
    assign.attrs["features"] = names[:2]
    versus = compare_fits(em, idata, X, threshold=settings.threshold)
    unc = versus.uncertain.copy()
    parts["uncertain"].append(f"<p>{len(unc)} of {len(X)} points either get a different label from EM or have "
                              f"a posterior probability below {settings.threshold:g} for their most probable "
                              "component.</p>")
    if len(unc):
        unc = unc.join(data.reset_index(drop=True), on="obs_id")
        parts["uncertain"].append(_table(unc.sort_values("posterior_probability").head(100)))
    parts["em-vs-posterior"].append(
        f"<p>Adjusted Rand index between EM's labels and the posterior's most probable labels: "
        f"<b>{versus.adjusted_rand_index:.3f}</b>. EM estimates inside their 94% interval: "
        f"{int(versus.table['em_in_hdi'].sum())} of {len(versus.table)}.</p>")
    parts["em-vs-posterior"].append(_table(versus.table))

    # -- plots
    if D == 1:
        grid = np.linspace(X.min() - 0.15 * np.ptp(X), X.max() + 0.15 * np.ptp(X), 300)[:, None]
        dens = predictive_density(aligned, grid)
        fig, ax = plt.subplots(figsize=(6, 4))
        plotting.plot_density_1d(dens, X=X[:, 0], em_density=np.exp(em.score_samples(grid)), ax=ax)
        parts["plots"].append(_fig_block(fig, "Posterior predictive density with 94% band; EM dashed"))
    elif D == 2:
        fig, ax = plt.subplots(figsize=(6, 5))
        plotting.plot_clusters(X, assign, idata=aligned, em=em, ax=ax)
        parts["plots"].append(_fig_block(fig, "Clusters: posterior ellipses (solid, thin: draws), EM (dashed)"))
    else:
        marg = {j: marginal_density(aligned, j, np.linspace(X[:, j].min(), X[:, j].max(), 150)) for j in range(D)}
        parts["plots"].append(_fig_block(plotting.plot_pairs(X, assign, marg), "Pairs and marginal densities"))
    if D >= 2:
        for j in range(min(D, 2)):
            grid = np.linspace(X[:, j].min(), X[:, j].max(), 200)
            fig, ax = plt.subplots(figsize=(6, 3.5))
            plotting.plot_density_1d(marginal_density(aligned, j, grid), X=X[:, j], ax=ax)
            ax.set_xlabel(names[j])
            parts["plots"].append(_fig_block(fig, f"Marginal predictive density of {names[j]}"))
    fig, ax = plt.subplots(figsize=(6, 4))
    parts["plots"].append(_fig_block(plotting.plot_weights(aligned, em=em, ax=ax).figure, "Weights: posterior vs EM"))
    fig, ax = plt.subplots(figsize=(6, 4))
    parts["plots"].append(_fig_block(plotting.plot_uncertainty(assign, threshold=settings.threshold, ax=ax).figure,
                                     "Assignment certainty"))
    if settings.method == "nuts":
        axes = plotting.plot_trace(aligned, relabel_draws=False)
        parts["plots"].append(_fig_block(axes.ravel()[0].figure, "Trace of relabelled weights and means"))

    # -- appendix
    settings_table = pd.DataFrame(
        [(k, str(v)) for k, v in vars(settings).items() if k not in ("dropped_rows", "progressbar")],
        columns=["setting", "value"])
    parts["appendix"].append("<h3>Priors</h3>")
    parts["appendix"].append(_table(pd.DataFrame([model.priors.to_dict()])))
    parts["appendix"].append("<h3>Settings</h3>" + _table(settings_table))
    parts["appendix"].append("<h3>Package versions</h3>" + _table(_versions()))
    parts["appendix"].append(f"<p>Generated {datetime.now(UTC).isoformat(timespec='seconds')}.</p>")

    nav = " ".join(f'<a href="#{key}">{html.escape(title)}</a>' for key, title in SECTIONS)
    body = "\n".join(
        f'<section id="{key}"><h2>{html.escape(title)}</h2>\n' + "\n".join(parts[key]) + "</section>"
        for key, title in SECTIONS
    )
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>bayesgmm clustering report</title><style>{_CSS}</style></head>\n"
            f"<body><h1>Clustering report</h1>\n{_verdict_box(verdict, fit_what)}\n<nav>{nav}</nav>\n{body}\n"
            "</body></html>\n")
