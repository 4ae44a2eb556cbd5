"""A self-contained HTML clustering report (figures embedded, nothing fetched).

The report only formats a :class:`~bayesgmm.analysis.ClusteringAnalysis`: one
small renderer per section (:data:`RENDERERS`), none of which fits, relabels or
assigns anything. :func:`build_report` analyses and renders;
:func:`render_report` renders an analysis the caller already has.
"""

from __future__ import annotations

import base64
import html
import io
import platform
from datetime import UTC, datetime
from importlib import metadata

import matplotlib

matplotlib.use("Agg")  # the report never opens windows

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from . import plotting  # noqa: E402
from .analysis import AnalysisSettings, ClusteringAnalysis, analyse  # noqa: E402
from .diagnostics import Verdict  # noqa: E402

#: The settings of a report (the analysis' settings; the name the report has always used).
ReportSettings = AnalysisSettings

__all__ = ["ReportSettings", "SECTIONS", "RENDERERS", "build_report", "render_report"]

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


def _axes(figsize):
    """A new figure's axes, to draw one plot on."""
    return plt.subplots(figsize=figsize)[1]


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


def _fit_description(a: ClusteringAnalysis) -> str:
    method = a.settings.method
    return (f"the Bayesian fit with K = {a.K} ({a.covariance_type} covariance, "
            f"{'NUTS' if method == 'nuts' else method.upper()})")


def _interval(s, digits: int) -> str:
    """A summary cell as ``mean [hdi low, hdi high]``."""
    mean, low, high = (float(s.sel(metric=m)) for m in ("mean", "hdi_3%", "hdi_97%"))
    return f"{mean:.{digits}g} [{low:.{digits}g}, {high:.{digits}g}]"


# ------------------------------------------------------------------ sections
def render_overview(a: ClusteringAnalysis) -> list[str]:
    """The data: size, source, per-column statistics and dropped rows."""
    settings, data = a.settings, a.data
    parts = [f"<p>{len(data)} rows, {data.shape[1]} numeric column(s) from "
             f"<code>{html.escape(settings.source)}</code>{' (standardized)' if settings.standardized else ''}.</p>",
             _table(data.describe().T[["mean", "std", "min", "max"]], index=True)]
    dropped = settings.dropped_rows
    if dropped:
        parts.append(_note(f"{len(dropped)} row(s) with missing values were dropped (--dropna): rows "
                           f"{dropped[:50]}{' ...' if len(dropped) > 50 else ''}."))
    return parts


def render_selection(a: ClusteringAnalysis) -> list[str]:
    """EM's choice by BIC, then LOO beside BIC and ICL around the chosen K."""
    table = a.selection.table[["n_components", "covariance_type", "log_likelihood", "n_parameters", "bic", "icl",
                               "degenerate", "rank"]].sort_values("bic")
    parts = [f"<p>EM chose <b>K = {a.K}</b> with <b>{a.covariance_type}</b> covariance by BIC (lower is better; "
             "degenerate fits, whose components collapsed, are not ranked).</p>", _table(table.head(15))]
    if a.loo is None:
        parts.append("<p>A single K was fitted by Bayes, so LOO compares nothing here.</p>")
        return parts
    cov = a.covariance_type
    parts.append(f"<p>LOO (Bayesian, {cov} covariance) beside EM's BIC and ICL for K = "
                 f"{', '.join(map(str, a.loo_ks))}: LOO ranks K = {a.loo.best_loo} first; EM BIC with {cov} "
                 f"covariance ranks K = {a.loo.best_bic} first.</p>")
    parts.append(_table(a.loo.table[["n_components", "elpd_loo", "se", "elpd_diff", "dse", "em_bic", "em_icl"]]))
    return parts


def _sampler_line(a: ClusteringAnalysis) -> str:
    settings, summ = a.settings, a.summary
    if settings.method != "nuts":
        hist = a.idata.get("fit_history")
        converged = bool(hist.attrs.get("converged")) if hist is not None else False
        return (f"<p>{settings.method.upper()} (variational): {settings.draws} draws from the fitted approximation; "
                f"optimisation {'converged' if converged else 'did NOT converge'}. Variational intervals are "
                "usually too narrow.</p>")
    if "r_hat" in summ.metric.values:
        rhat = f"Largest R-hat {max(float(summ[v].sel(metric='r_hat').max()) for v in summ.data_vars):.3f}"
    else:
        rhat = "R-hat not computed (too few draws to split into chains)"
    return (f"<p>NUTS, {settings.chains} chains x {settings.draws} draws after {settings.tune} tuning steps. "
            f"{rhat}; divergences {summ.attrs['n_divergences']}.</p>")


def render_diagnostics(a: ClusteringAnalysis) -> list[str]:
    """The sampler's figures, the summary's warnings and the verdict."""
    parts = [_sampler_line(a),
             "<p>Labels were aligned to the EM components before summarising (draws permuted per chain: "
             f"{a.posterior.posterior.attrs.get('relabel_permuted_per_chain')}).</p>"]
    parts += [_note(message) for message in a.summary_warnings]
    if not a.summary_warnings and a.verdict.reliable:
        parts.append(_note("No warnings: R-hat, effective sample size and divergences look fine.", "ok"))
    parts.append(f"<p>Verdict (the box at the top): {html.escape(a.verdict.headline())}</p>")
    return parts


def render_clusters(a: ClusteringAnalysis) -> list[str]:
    """Every component's weight, means and sds with their intervals."""
    summ, rows = a.summary, []
    for k in range(a.K):
        row = {"component": k, "weight": _interval(summ["weights"].sel(component=k), 3)}
        for j, name in enumerate(a.names):
            row[f"mean {name}"] = _interval(summ["means"].sel(component=k).isel(feature=j), 4)
            row[f"sd {name}"] = _interval(summ["stds"].sel(component=k).isel(feature=j), 4)
        rows.append(row)
    return ["<p>Posterior means with 94% highest-density intervals.</p>", _table(pd.DataFrame(rows))]


def render_uncertain(a: ClusteringAnalysis) -> list[str]:
    """The points EM and the posterior label differently, or the posterior is unsure about."""
    unc, threshold = a.versus.uncertain, a.settings.threshold
    parts = [f"<p>{len(unc)} of {len(a.data)} points either get a different label from EM or have a posterior "
             f"probability below {threshold:g} for their most probable component.</p>"]
    if len(unc):
        rows = unc.join(a.data, on="obs_id").sort_values("posterior_probability")
        parts.append(_table(rows.head(100)))
    return parts


def render_em_vs_posterior(a: ClusteringAnalysis) -> list[str]:
    """EM's estimates beside the posterior's, and how well their clusterings agree."""
    versus = a.versus
    return [f"<p>Adjusted Rand index between EM's labels and the posterior's most probable labels: "
            f"<b>{versus.adjusted_rand_index:.3f}</b>. EM estimates inside their 94% interval: "
            f"{int(versus.table['em_in_hdi'].sum())} of {len(versus.table)}.</p>", _table(versus.table)]


def _selection_figures(a: ClusteringAnalysis) -> list[str]:
    figures = [_fig_block(plotting.plot_selection(a.selection.table, ax=_axes((6, 4))).figure, "BIC against K")]
    if a.loo is not None:
        figures.append(_fig_block(plotting.plot_loo(a.loo.table, ax=_axes((6, 4))).figure, "LOO against K"))
    return figures


def _data_figures(a: ClusteringAnalysis) -> list[str]:
    """The clusters over the data (D = 2), the pairs (D > 2) or the density (D = 1); then the marginals."""
    X, names, densities = a.X, a.names, a.densities
    if X.shape[1] == 1:
        ax = plotting.plot_density_1d(densities["predictive"], X=X[:, 0], em_density=densities["em"],
                                      ax=_axes((6, 4)))
        ax.set_xlabel(names[0])
        return [_fig_block(ax.figure, "Posterior predictive density with 94% band; EM dashed")]
    if X.shape[1] == 2:
        ax = plotting.plot_clusters(X, a.assignments, idata=a.posterior, em=a.em, ax=_axes((6, 5)))
        ax.set_xlabel(names[0])
        ax.set_ylabel(names[1])
        figures = [_fig_block(ax.figure, "Clusters: posterior ellipses (solid, thin: draws), EM (dashed)")]
    else:
        fig = plotting.plot_pairs(X, a.assignments, densities["marginal"])
        for ax, name in zip(fig.axes[-X.shape[1]:], names):
            ax.set_xlabel(name)
        figures = [_fig_block(fig, "Pairs and marginal densities")]
    for j in range(2):
        ax = plotting.plot_density_1d(densities["marginal"][j], X=X[:, j], ax=_axes((6, 3.5)))
        ax.set_xlabel(names[j])
        figures.append(_fig_block(ax.figure, f"Marginal predictive density of {names[j]}"))
    return figures


def _posterior_figures(a: ClusteringAnalysis) -> list[str]:
    figures = [
        _fig_block(plotting.plot_weights(a.posterior, em=a.em, ax=_axes((6, 4))).figure, "Weights: posterior vs EM"),
        _fig_block(plotting.plot_uncertainty(a.assignments, threshold=a.settings.threshold, ax=_axes((6, 4))).figure,
                   "Assignment certainty"),
    ]
    if a.settings.method == "nuts":
        axes = plotting.plot_trace(a.posterior, relabel_draws=False)
        figures.append(_fig_block(axes.ravel()[0].figure, "Trace of relabelled weights and means"))
    return figures


def render_plots(a: ClusteringAnalysis) -> list[str]:
    """Every figure, embedded as PNG."""
    return _selection_figures(a) + _data_figures(a) + _posterior_figures(a)


def render_appendix(a: ClusteringAnalysis) -> list[str]:
    """Priors, settings and package versions: what it takes to reproduce the report."""
    settings = pd.DataFrame([(k, str(v)) for k, v in vars(a.settings).items()
                             if k not in ("dropped_rows", "progressbar")], columns=["setting", "value"])
    return ["<h3>Priors</h3>", _table(pd.DataFrame([a.model.priors.to_dict()])),
            "<h3>Settings</h3>" + _table(settings),
            "<h3>Package versions</h3>" + _table(_versions()),
            f"<p>Generated {datetime.now(UTC).isoformat(timespec='seconds')}.</p>"]


#: One renderer per section of :data:`SECTIONS`: analysis -> list of HTML fragments.
RENDERERS = {
    "overview": render_overview,
    "selection": render_selection,
    "diagnostics": render_diagnostics,
    "clusters": render_clusters,
    "uncertain": render_uncertain,
    "em-vs-posterior": render_em_vs_posterior,
    "plots": render_plots,
    "appendix": render_appendix,
}


def render_report(analysis: ClusteringAnalysis) -> str:
    """The report of an analysis already made, as one self-contained HTML document.

    Parameters
    ----------
    analysis : ClusteringAnalysis
        From :func:`bayesgmm.analysis.analyse`.

    Returns
    -------
    str
    """
    if not isinstance(analysis, ClusteringAnalysis):
        raise TypeError(f"analysis must be a ClusteringAnalysis (from bayesgmm.analysis.analyse), got "
                        f"{type(analysis).__name__}.")
    nav = " ".join(f'<a href="#{key}">{html.escape(title)}</a>' for key, title in SECTIONS)
    body = "\n".join(f'<section id="{key}"><h2>{html.escape(title)}</h2>\n' + "\n".join(RENDERERS[key](analysis))
                     + "</section>" for key, title in SECTIONS)
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>bayesgmm clustering report</title><style>{_CSS}</style></head>\n"
            f"<body><h1>Clustering report</h1>\n{_verdict_box(analysis.verdict, _fit_description(analysis))}\n"
            f"<nav>{nav}</nav>\n{body}\n</body></html>\n")


def build_report(data: pd.DataFrame, settings: ReportSettings) -> str:
    """Fit EM and Bayesian mixtures to ``data`` and return the report as HTML text.

    The same as ``render_report(analyse(data, settings))``.

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
    return render_report(analyse(data, settings))
