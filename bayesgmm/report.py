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
import numpy as np  # noqa: E402
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
figure { display: inline-block; margin: 0.5rem; vertical-align: top; max-width: 100%; }
img { max-width: min(520px, 100%); } figure.wide img { max-width: 100%; } figcaption { max-width: 100%; }
figure.wide { display: block; } figure:not(.wide) figcaption { max-width: 520px; }
.table-wrap { max-width: 100%; overflow-x: auto; } td, th { overflow-wrap: break-word; }
td.cell { white-space: nowrap; } details { margin: 0.3rem 0 1rem; } summary { cursor: pointer; color: #245; }
nav a { margin-right: 1rem; }
"""

#: Figures: PNG at this resolution, reduced to a 256-colour palette (a third of the size, no visible change).
_DPI = 80
#: A table shows this many rows and collapses the rest into a <details> element.
_ROWS_SHOWN = 12
#: With more features than this, tables list the most separating features first and collapse the rest.
_FEW_FEATURES = 10
#: The pairs plot and the trace plot draw at most this many features (the most separating).
_PAIRS_FEATURES = 4


def _axes(figsize):
    """A new figure's axes, to draw one plot on."""
    return plt.subplots(figsize=figsize)[1]


def _figure(fig, alt: str = "figure") -> str:
    """The figure as an embedded PNG: rendered at :data:`_DPI`, quantised to 256 colours, compressed."""
    from PIL import Image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, bbox_inches="tight", facecolor="white")
    plt.close(fig)
    buf.seek(0)
    with Image.open(buf) as image:
        small = io.BytesIO()
        image.convert("RGB").quantize(colors=256).save(small, format="png", optimize=True)
    data = base64.b64encode(small.getvalue()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _fig_block(fig, caption: str, wide: bool = False) -> str:
    cls = ' class="wide"' if wide else ""
    return (f"<figure{cls}>{_figure(fig, caption)}<figcaption>{html.escape(caption)}</figcaption></figure>")


def _table(df: pd.DataFrame, index: bool = False) -> str:
    """A table, in a box that scrolls rather than widening the page if it is still too wide."""
    table = df.to_html(index=index, float_format=lambda v: f"{v:.4g}", border=0, na_rep="")
    return f'<div class="table-wrap">{table}</div>'


def _details(summary: str, body: str, open_: bool = False) -> str:
    """A collapsed block (``<details>``) with a one-line summary."""
    return f"<details{' open' if open_ else ''}><summary>{html.escape(summary)}</summary>{body}</details>"


def _long_table(df: pd.DataFrame, what: str, shown: int = _ROWS_SHOWN, limit: int | None = None,
                index: bool = False) -> str:
    """The first ``shown`` rows of a table, the rest (at most ``limit``) collapsed below it."""
    if len(df) <= shown + 3:  # collapsing 1-3 rows saves nothing
        return _table(df, index=index)
    rest = df.iloc[shown:] if limit is None else df.iloc[shown:limit]
    more = f"the other {len(rest)} {what}"
    if limit is not None and len(df) > limit:
        more += f" (of {len(df) - shown}; the remaining {len(df) - limit} are not shown)"
    return _table(df.iloc[:shown], index=index) + _details(f"Show {more}", _table(rest, index=index))


def _html_table(columns: list[str], rows: list[list[str]]) -> str:
    """A table of cells that are already HTML (escaped by the caller)."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _spaced(df: pd.DataFrame, columns) -> pd.DataFrame:
    """The table with underscores in the given column names read as spaces (the headers wrap, and read better)."""
    return df.rename(columns={c: str(c).replace("_", " ") for c in columns})


def _ranking(a: ClusteringAnalysis) -> pd.DataFrame:
    """The features ranked by how well the posterior's components separate them (most separating first)."""
    return plotting.feature_ranking(a.summary, names=a.names)


def _ranking_phrase(ranking: pd.DataFrame, n: int) -> str:
    return ", ".join(f"{name} ({value:.2g})" for name, value in ranking["separation"].head(n).items())


_SEPARATION = ("separation: the variance of the components' posterior means over the average within-component "
               "variance (unitless; larger separates better)")


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
    rule = a.k_choice.rule
    chosen = "the only K tried" if rule == "n_components" else f"chosen by the {rule!r} rule"
    return (f"the Bayesian fit with K = {a.K} ({chosen}; {a.covariance_type} covariance, "
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
             f"<code>{html.escape(settings.source)}</code>{' (standardized)' if settings.standardized else ''}.</p>"]
    stats = _table(data.describe().T[["mean", "std", "min", "max"]], index=True)
    parts.append(stats if data.shape[1] <= _FEW_FEATURES
                 else _details(f"Per-column mean, sd, min and max ({data.shape[1]} columns)", stats))
    dropped = settings.dropped_rows
    if dropped:
        parts.append(_note(f"{len(dropped)} row(s) with missing values were dropped (--dropna): rows "
                           f"{dropped[:50]}{' ...' if len(dropped) > 50 else ''}."))
    return parts


def render_k_choice(a: ClusteringAnalysis) -> list[str]:
    """The choice of K: the chosen K and the rule, BIC, ICL, LOO and the sparse fit side by side, and the notes."""
    choice = a.k_choice
    parts = [_note(choice.headline(), "ok" if not choice.notes else "warn")]
    if choice.rule == "n_components":
        return parts
    winners = choice.winners
    said = [f"BIC K = {winners['bic']}", f"ICL K = {winners['icl']}"]
    said += [f"LOO K = {winners['loo']}"] if winners["loo"] is not None else []
    said += [f"sparse fit K = {winners['sparse']}"] if winners["sparse"] is not None else []
    parts.append(f"<p>Each criterion's choice ({html.escape(choice.covariance_type)} covariance): "
                 f"{html.escape('; '.join(said))}. Rules: <code>bic</code> follows EM's BIC; <code>loo</code> "
                 "takes LOO's winner when its elpd beats BIC's K by more than 2 standard errors of the difference "
                 "(dse), else BIC's; <code>sparse</code> takes the most probable number of occupied components "
                 "of an overfitted sparse-Dirichlet fit.</p>")
    table = choice.table.reset_index().rename(columns={
        "bic": "EM BIC", "icl": "EM ICL", "elpd_loo": "LOO elpd", "se": "LOO se", "elpd_diff": "elpd diff",
        "dse": "dse", "sparse_probability": "P(K occupied, sparse fit)"}).dropna(axis=1, how="all")
    table.insert(1, "chosen", ["yes" if k == choice.K else "" for k in table["K"]])
    parts.append(_table(table))
    parts.append("<p>BIC and ICL: lower is better. LOO elpd: higher is better; elpd diff and dse are the "
                 "difference to LOO's best K and its standard error. Empty cells: not computed (K not fitted by "
                 "Bayes, or a degenerate EM fit).</p>")
    if choice.notes:
        parts.append("<ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in choice.notes) + "</ul>")
    return parts


def render_selection(a: ClusteringAnalysis) -> list[str]:
    """The choice of K (every criterion, the rule), then EM's grid, then LOO over the Bayesian fits."""
    table = a.selection.table[["n_components", "covariance_type", "log_likelihood", "n_parameters", "bic", "icl",
                               "degenerate", "rank"]].sort_values("bic")
    best = a.selection.best_estimator_
    parts = render_k_choice(a)
    parts += [f"<h3>EM grid</h3><p>EM's BIC prefers <b>K = {best.n_components}</b> with "
              f"<b>{best.covariance_type}</b> covariance (lower is better; degenerate fits, whose components "
              "collapsed, are not ranked). Best 15 by BIC:</p>", _table(table.head(15))]
    if a.loo is None:
        parts.append("<p>A single K was fitted by Bayes, so LOO compares nothing here.</p>")
        return parts
    cov = a.covariance_type
    parts.append(f"<h3>LOO</h3><p>LOO (Bayesian, {cov} covariance) beside EM's BIC and ICL for K = "
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
    """Every component's weight, then its means and sds with their intervals: one row per feature."""
    summ, K = a.summary, a.K
    counts = np.bincount(a.assignments["most_probable"].values, minlength=K)
    weights = _html_table(["component", "weight [94% HDI]", "points (most probable)"],
                          [[str(k), _interval(summ["weights"].sel(component=k), 3), str(counts[k])]
                           for k in range(K)])
    ranking = _ranking(a)
    many = len(a.names) > _FEW_FEATURES
    order = list(ranking.index) if many else a.names
    cell = lambda var, k, f: _interval(summ[var].sel(component=k, feature=f), 4)  # noqa: E731
    if K <= 4:  # one row per feature, a column per component (two lines: mean, sd)
        columns = ["feature", "separation"] + [f"component {k}: mean / sd" for k in range(K)]
        rows = [[html.escape(f), f"{ranking.loc[f, 'separation']:.3g}"]
                + [f"mean {cell('means', k, f)}<br>sd {cell('stds', k, f)}" for k in range(K)] for f in order]
    else:  # many components: one row per feature and component
        columns = ["feature", "separation", "component", "mean [94% HDI]", "sd [94% HDI]"]
        rows = [[html.escape(f), f"{ranking.loc[f, 'separation']:.3g}", str(k), cell("means", k, f),
                 cell("stds", k, f)] for f in order for k in range(K)]
    per_row = 1 if K <= 4 else K
    parts = ["<p>Posterior means with 94% highest-density intervals, in the data's units.</p>", weights,
             f"<p>Means and standard deviations per feature{' (most separating first)' if many else ''}; "
             f"{html.escape(_SEPARATION)}.</p>"]
    shown = _ROWS_SHOWN * per_row if many and len(order) > _ROWS_SHOWN + 3 else len(rows)
    parts.append(_html_table(columns, rows[:shown]))
    if len(rows) > shown:
        parts.append(_details(f"Show the other {len(order) - shown // per_row} features",
                              _html_table(columns, rows[shown:])))
    return parts


def render_uncertain(a: ClusteringAnalysis) -> list[str]:
    """The points EM and the posterior label differently, or the posterior is unsure about."""
    unc, threshold = a.versus.uncertain, a.settings.threshold
    parts = [f"<p>{len(unc)} of {len(a.data)} points either get a different label from EM or have a posterior "
             f"probability below {threshold:g} for their most probable component.</p>"]
    if len(unc):
        columns = a.names
        if len(columns) > _PAIRS_FEATURES:
            columns = list(_ranking(a).index[:3])
            parts.append(f"<p>Data columns shown: the {len(columns)} most separating features "
                         f"({html.escape(', '.join(columns))}) of {len(a.names)}.</p>")
        rows = unc.join(a.data[columns], on="obs_id").sort_values("posterior_probability")
        parts.append(_long_table(_spaced(rows, unc.columns), "points (least certain first)", limit=100))
    return parts


def render_em_vs_posterior(a: ClusteringAnalysis) -> list[str]:
    """EM's estimates beside the posterior's, and how well their clusterings agree; largest differences first."""
    versus = a.versus
    table = versus.table.copy()
    width = (table["hdi_upper"] - table["hdi_lower"]).to_numpy()
    gap = np.abs(table["em"] - table["posterior_mean"]).to_numpy()
    table.insert(table.columns.get_loc("em_in_hdi"), "difference_in_hdi_widths",
                 np.divide(gap, width, out=np.where(gap > 0, np.inf, 0.0), where=width > 0))
    table = table.sort_values(["em_in_hdi", "difference_in_hdi_widths"], ascending=[True, False], kind="stable")
    return [f"<p>Adjusted Rand index between EM's labels and the posterior's most probable labels: "
            f"<b>{versus.adjusted_rand_index:.3f}</b>. EM estimates inside their 94% interval: "
            f"{int(versus.table['em_in_hdi'].sum())} of {len(versus.table)}.</p>",
            "<p>Largest differences first: EM outside the interval, then by |EM - posterior mean| in widths of "
            "the interval.</p>",
            _long_table(_spaced(table.rename(columns={"hdi_lower": "HDI low", "hdi_upper": "HDI high",
                                                      "em": "EM", "em_in_hdi": "EM in HDI",
                                                      "difference_in_hdi_widths": "|EM - mean| / HDI width"}),
                                table.columns), "parameters", limit=400)]


def _selection_figures(a: ClusteringAnalysis) -> list[str]:
    figures = [_fig_block(plotting.plot_selection(a.selection.table, ax=_axes((6, 4))).figure, "BIC against K")]
    if a.loo is not None:
        figures.append(_fig_block(plotting.plot_loo(a.loo.table, ax=_axes((6, 4))).figure, "LOO against K"))
    return figures


def _data_figures(a: ClusteringAnalysis) -> list[str]:
    """The clusters over the data: the density (D = 1), the scatter (D = 2), or the pairs of the most
    separating features and a projection of all features (D > 2); then two marginal densities."""
    X, names, densities = a.X, a.names, a.densities
    if X.shape[1] == 1:
        ax = plotting.plot_density_1d(densities["predictive"], X=X[:, 0], em_density=densities["em"],
                                      ax=_axes((6, 4)))
        ax.set_xlabel(names[0])
        return [_fig_block(ax.figure, "Posterior predictive density with 94% band; EM dashed")]
    ranking = _ranking(a)
    if X.shape[1] == 2:
        ax = plotting.plot_clusters(a.data, a.assignments, idata=a.posterior, em=a.em, ax=_axes((6, 5)))
        figures = [_fig_block(ax.figure, "Clusters: posterior ellipses (solid, thin: draws), EM (dashed)")]
        marginal = [0, 1]
    else:
        top = list(ranking.index[:_PAIRS_FEATURES])
        fig = plotting.plot_pairs(a.data, a.assignments, densities["marginal"], features=top)
        chosen = (f"all {len(names)} features" if len(top) == len(names)
                  else f"the {len(top)} most separating of the {len(names)} features")
        figures = [_fig_block(fig, f"Pairs of {chosen}, coloured by most probable "
                                   f"component (opacity: certainty), marginal densities on the diagonal. "
                                   f"Ranked by {_SEPARATION}: {_ranking_phrase(ranking, len(top))}.", wide=True)]
        proj = plotting.projection(a.data)
        ax = plotting.plot_projection(proj, a.assignments, ax=_axes((7, 5.5)))
        figures.append(_fig_block(ax.figure, f"All {len(names)} features in two dimensions: the first two "
                                             "principal components of the standardised data (each column centred "
                                             "and divided by its sd), coloured by most probable component, opacity "
                                             "by its probability."))
        marginal = [names.index(f) for f in top[:2]]
    for j in marginal:
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
        ranking = _ranking(a)
        top = list(ranking.index[:_PAIRS_FEATURES])
        axes = plotting.plot_trace(a.posterior, relabel_draws=False, features=top, max_features=_PAIRS_FEATURES)
        which = ("every feature" if len(top) == len(a.names)
                 else f"the {len(top)} most separating of {len(a.names)} features ({', '.join(top)})")
        figures.append(_fig_block(axes.ravel()[0].figure, f"Trace of the relabelled weights and of the means of "
                                  f"{which}: one row per feature, in its own units.", wide=True))
    return figures


def render_plots(a: ClusteringAnalysis) -> list[str]:
    """Every figure, embedded as PNG."""
    return _selection_figures(a) + _data_figures(a) + _posterior_figures(a)


def render_appendix(a: ClusteringAnalysis) -> list[str]:
    """Priors, settings and package versions: what it takes to reproduce the report."""
    settings = pd.DataFrame([(k, str(v)) for k, v in vars(a.settings).items()
                             if k not in ("dropped_rows", "progressbar")], columns=["setting", "value"])
    rows = [(k, str(v)) for k, v in a.model.priors.to_dict().items()]
    rounding = a.idata.attrs.get("data_rounding") if a.idata is not None else None
    if rounding is not None:  # what "auto" found: the step each feature was taken as recorded to
        names = list(a.idata.posterior["feature"].values)
        rows.append(("rounding used (data units; rounding error of variance h^2/12 in every covariance)",
                     ", ".join(f"{name}: {float(h):.4g}" for name, h in zip(names, np.ravel(rounding)))))
    priors = pd.DataFrame(rows, columns=["prior", "value"])
    return ["<h3>Priors</h3>", _table(priors),
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
