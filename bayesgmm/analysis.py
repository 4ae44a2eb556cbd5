"""Analyse once, render after: every quantity of a clustering report, computed once.

:func:`analyse` runs the whole pipeline on checked data and returns a
:class:`ClusteringAnalysis`; :mod:`bayesgmm.report` only formats it, and the
command line and the notebooks read the same object. Each step is done once:

1. the data are checked once (column names kept);
2. the EM grid is fitted once (:func:`~bayesgmm.select_model`), and its winner
   gives the covariance type and BIC's K;
3. the Bayesian fits of BIC's K and its LOO neighbours start from the grid's EM
   fits of the same K and type (``init=<fitted GaussianMixtureEM>``: EM is not
   fitted again); when LOO's winner is at the edge of the K fitted, the next K of
   the grid is fitted too (at most ``loo_extra_fits`` of them);
4. K is chosen once (:class:`KChoice`): EM's BIC and ICL, LOO over the Bayesian
   fits and the posterior number of occupied clusters of one overfitted
   sparse-Dirichlet fit, side by side, and ``settings.k_rule`` picks K;
5. the chosen K's posterior is aligned to the grid's EM fit of that K once
   (:func:`~bayesgmm.relabel`); the neighbours only enter LOO, which does not
   depend on labels, so they are not relabelled;
6. the aligned posterior is judged, summarised and assigned once, and
   :func:`~bayesgmm.compare_fits` reuses that aligned posterior and those
   assignments;
7. LOO compares the fits already made (:func:`~bayesgmm.compare_k` with
   ``fits=`` and ``em=``);
8. the density curves the plots draw are evaluated once.

Examples
--------
>>> from bayesgmm.analysis import AnalysisSettings, analyse
>>> from bayesgmm.datasets import load_faithful
>>> settings = AnalysisSettings(n_components=2, covariance_types=("full",), method="advi", draws=100,
...                             progressbar=False)
>>> analysis = analyse(load_faithful(), settings)
>>> analysis.K, analysis.covariance_type, analysis.names
(2, 'full', ['eruptions', 'waiting'])
"""

from __future__ import annotations

import sys
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning

from ._validation import check_data, check_integer_param, check_option, check_probability, check_real_param
from .compare import (
    SPARSE_AUTO_DRAWS,
    FitComparison,
    KComparison,
    check_ks,
    compare_fits,
    compare_k,
    sparse_dirichlet_fit,
)
from .cost import EXPENSIVE_FIT_SECONDS, format_duration
from .diagnostics import PosteriorDiagnosticsWarning, Verdict, assess
from .em import DegenerateFitWarning, GaussianMixtureEM
from .fit_settings import AUTO_DRAWS_CHECKPOINTS, FIT_DEFAULTS, fit_settings
from .labels import relabel
from .model import BayesianGMM
from .priors import Priors
from .scaling import FeatureScaling
from .selection import ModelSelection, select_model
from .summaries import assignments, marginal_density, predictive_density, summary

__all__ = ["AnalysisSettings", "ClusteringAnalysis", "KChoice", "K_RULES", "analyse"]

#: Points of the grids the density curves are evaluated on.
_DENSITY_POINTS = 200

#: The rules that choose K from the evidence (see :attr:`AnalysisSettings.k_rule`).
K_RULES = ("bic", "loo", "sparse")

#: LOO's winner replaces BIC's K when its elpd is higher by more than this many standard errors of the difference.
LOO_DSE = 2.0

#: A component of the sparse-Dirichlet fit is occupied when its weight is above this (as in compare_k).
_SPARSE_WEIGHT = 0.05


@dataclass
class AnalysisSettings:
    """Everything that determines an analysis and its report (recorded in the report's appendix).

    The Bayesian fit settings (``method``, ``draws``, ``tune``, ``chains`` and any
    other in ``fit_options``) default to :data:`bayesgmm.fit_settings.FIT_DEFAULTS`
    and are checked by :func:`bayesgmm.fit_settings.fit_settings`.

    Attributes
    ----------
    n_components : int or None
        Fit this K only (no choice, no LOO); None chooses K from ``select``.
    select : list of int
        The K of the EM grid.
    covariance_types : tuple of str
        The covariance types of the EM grid; the winner's type is the Bayesian fits'.
    method, draws, tune, chains
        Bayesian fit settings.
    seed : int
        Seeds the EM grid and every Bayesian fit.
    threshold : float
        Points whose most probable component has a smaller posterior probability are uncertain.
    loo_neighbours : int
        LOO starts from BIC's K and the K this close to it in ``select``.
    loo_extra_fits : int
        While LOO's winner is at the edge of the K fitted by Bayes, the next K of
        ``select`` is fitted too, at most this many times (0: never).
    k_rule : {"loo", "bic", "sparse"}
        How K is chosen (:class:`KChoice` shows every criterion whatever the rule):

        * ``"loo"`` (default): LOO's winner when its elpd beats that of EM's BIC
          choice by more than 2 standard errors of the difference, else BIC's K.
          BIC stays the default answer (it is consistent for K and cheap), but the
          Bayesian model the report shows is judged by its own out-of-sample
          predictive accuracy, computed on fits made anyway, and BIC is overruled
          only when that evidence is clear (2 dse), not on noise, and not where the
          posterior of either K is unreliable or ArviZ warns of high Pareto k for it
          (LOO is weak evidence there; such warnings are common for mixtures on real
          data, so LOO then rarely overrules BIC);
        * ``"bic"``: EM's BIC choice (the behaviour before ``k_rule`` existed);
        * ``"sparse"``: the posterior mode of the number of occupied components of
          an overfitted sparse-Dirichlet fit (sensitive to ``sparse_alpha`` and, with
          ADVI, to the variational fit's tendency to keep or empty components).
    sparse_alpha : float or None
        Dirichlet concentration of the overfitted fit (largest K of ``select``) whose
        posterior number of occupied components (weight above 0.05) is shown beside
        BIC, ICL and LOO; None skips that fit (not allowed with ``k_rule="sparse"``).
    progressbar : bool
    source, standardized, dropped_rows
        How the data were read (shown in the report's overview).
    fit_options : dict
        Other fit settings (keys of ``FIT_DEFAULTS`` or NUTS options such as ``target_accept``).
    rounding : "auto", float or sequence of float
        The step each feature was recorded to, for every Bayesian fit (see
        :class:`~bayesgmm.Priors`' ``rounding``; default ``"auto"``).
    """

    n_components: int | None = None
    select: list[int] = field(default_factory=lambda: list(range(1, 7)))
    covariance_types: tuple[str, ...] = ("full", "tied", "diag", "spherical")
    method: str = FIT_DEFAULTS["method"]
    draws: int = FIT_DEFAULTS["draws"]
    tune: int = FIT_DEFAULTS["tune"]
    chains: int = FIT_DEFAULTS["chains"]
    seed: int = 0
    threshold: float = 0.8
    loo_neighbours: int = 1
    loo_extra_fits: int = 3
    k_rule: str = "loo"
    sparse_alpha: float | None = 0.05
    progressbar: bool = True
    source: str = ""
    standardized: bool = False
    dropped_rows: list[int] = field(default_factory=list)
    fit_options: dict = field(default_factory=dict)
    rounding: str | float | tuple = "auto"

    @property
    def priors(self) -> dict:
        """The priors of every Bayesian fit beyond the defaults (checked)."""
        if isinstance(self.rounding, str) and self.rounding == "auto":
            return {}
        return {"rounding": Priors(rounding=self.rounding).to_dict()["rounding"]}

    @property
    def ks(self) -> list[int]:
        """The K of the EM grid: ``[n_components]`` when given, else ``select``."""
        return [self.n_components] if self.n_components else list(self.select)

    def fit_kwargs(self) -> dict:
        """The checked keyword arguments of every Bayesian fit (without its start)."""
        return fit_settings(self.fit_options, method=self.method, draws=self.draws, tune=self.tune,
                            chains=self.chains, random_seed=self.seed, progressbar=self.progressbar)


@dataclass(eq=False)  # compared by identity: it holds a data frame and a fit
class KChoice:
    """How K was chosen: EM's BIC and ICL, LOO and a sparse-Dirichlet fit side by side.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per K of the grid (index ``K``): ``bic`` and ``icl`` (EM, the chosen
        covariance type; empty for degenerate or failed fits), ``elpd_loo``, ``se``,
        ``elpd_diff`` and ``dse`` (LOO; empty for the K not fitted by Bayes) and
        ``sparse_probability`` (posterior probability that the sparse-Dirichlet fit
        occupies exactly K components; empty without that fit).
    covariance_type : str
        Of every fit in the table.
    winners : dict
        ``"bic"``, ``"icl"``, ``"loo"``, ``"sparse"``: the K each criterion prefers
        (None when not computed); ``"bic_overall"`` and ``"icl_overall"``: the
        ``(K, covariance_type)`` each prefers over the whole grid.
    rule : str
        One of :data:`K_RULES`, or ``"n_components"`` when one K was tried (nothing chosen).
    K : int
        The chosen K (whose Bayesian fit the report shows).
    reason : str
        Why the rule gave K, in words.
    notes : list of str
        Where the criteria disagree, and criteria that are at the edge of the K tried.
    loo_extra : list of int
        The K fitted by Bayes beyond BIC's K and its neighbours because LOO's winner
        was at the edge of the K fitted.
    sparse : xarray.Dataset or None
        :func:`~bayesgmm.effective_components` of the sparse-Dirichlet fit.
    sparse_idata : arviz.InferenceData or None
        That fit (largest K of the grid, ``Dirichlet(sparse_alpha)`` weights).
    sparse_alpha : float or None
    """

    table: pd.DataFrame
    covariance_type: str
    winners: dict
    rule: str
    K: int
    reason: str
    notes: list = field(default_factory=list)
    loo_extra: list = field(default_factory=list)
    sparse: object = field(default=None, repr=False)
    sparse_idata: object = field(default=None, repr=False)
    sparse_alpha: float | None = None

    def headline(self) -> str:
        """One sentence: the chosen K, the rule and why."""
        if self.rule == "n_components":
            return f"K = {self.K} was the only K tried (n_components, or a one-K select): nothing was chosen."
        return f"K = {self.K} ({self.covariance_type} covariance), chosen by the {self.rule!r} rule: {self.reason}"


@dataclass(eq=False)  # compared by identity: it holds data frames and fits
class ClusteringAnalysis:
    """Result of :func:`analyse`: every quantity a report shows, each computed once.

    Attributes
    ----------
    settings : AnalysisSettings
    data : pandas.DataFrame
        The checked data (float columns, names kept).
    selection : ModelSelection
        The EM grid; ``selection.best_estimator_`` is BIC's choice.
    em : GaussianMixtureEM
        The grid's EM fit of the chosen K and covariance type (BIC's choice when
        ``k_choice.K`` is BIC's K): what the posterior is aligned and compared to.
    k_choice : KChoice
        How K was chosen: BIC, ICL, LOO and the sparse fit side by side, the rule, notes.
    models : dict of int to BayesianGMM
        The Bayesian model of every K fitted by Bayes (the chosen K and the K LOO compares).
    fits : dict of int to arviz.InferenceData
        Their fits, as sampled.
    posterior : arviz.InferenceData
        The chosen K's fit aligned to :attr:`em` (relabelled once).
    verdict : Verdict
        :func:`~bayesgmm.assess` of the chosen aligned posterior.
    verdicts : dict of int to Verdict
        The verdict of every fit (the LOO neighbours' too: LOO between unreliable
        posteriors is not evidence).
    summary : xarray.Dataset
        :func:`~bayesgmm.summary` of the chosen aligned posterior.
    summary_warnings : list of str
        What the summary warned about (R-hat, ESS, divergences...).
    assignments : xarray.Dataset
        :func:`~bayesgmm.assignments` of the data under the chosen aligned posterior.
    versus : FitComparison
        EM against that posterior (:func:`~bayesgmm.compare_fits`).
    loo : KComparison or None
        LOO over every K fitted by Bayes; None when there is one K.
    densities : dict
        The curves the plots draw: ``"marginal"`` (feature index -> marginal
        density) for D >= 2; ``"predictive"`` and ``"em"`` (EM's density on the
        same grid) for D = 1.
    """

    settings: AnalysisSettings
    data: pd.DataFrame = field(repr=False)
    selection: ModelSelection = field(repr=False)
    em: GaussianMixtureEM
    k_choice: KChoice
    models: dict = field(repr=False)
    fits: dict = field(repr=False)
    posterior: object = field(repr=False)
    verdict: Verdict
    verdicts: dict = field(repr=False)
    summary: object = field(repr=False)
    summary_warnings: list = field(repr=False)
    assignments: object = field(repr=False)
    versus: FitComparison = field(repr=False)
    loo: KComparison | None = field(repr=False)
    densities: dict = field(repr=False)

    @property
    def K(self) -> int:
        """The chosen number of components."""
        return int(self.em.n_components)

    @property
    def covariance_type(self) -> str:
        """The chosen covariance type (EM's and the Bayesian fits')."""
        return self.em.covariance_type

    @property
    def names(self) -> list[str]:
        """The feature names."""
        return list(self.data.columns)

    @property
    def X(self) -> np.ndarray:
        """The data as a float array."""
        return self.data.to_numpy()

    @property
    def model(self) -> BayesianGMM:
        """The Bayesian model of the chosen K."""
        return self.models[self.K]

    @property
    def idata(self):
        """The chosen fit, as sampled."""
        return self.fits[self.K]

    @property
    def loo_ks(self) -> list[int]:
        """The K that were fitted by Bayes (and compared by LOO)."""
        return sorted(self.fits)


def analyse(X, settings: AnalysisSettings | None = None, *,
            models: Mapping[int, BayesianGMM] | None = None) -> ClusteringAnalysis:
    """Run the clustering pipeline once: EM grid, Bayesian fits, alignment, summaries, comparisons.

    K is chosen by ``settings.k_rule`` from EM's BIC, LOO over the Bayesian fits and a
    sparse-Dirichlet fit, all shown side by side in :attr:`ClusteringAnalysis.k_choice`
    (see :class:`KChoice`); the covariance type is EM's BIC winner's.

    (Over 60 lines only because this docstring documents every argument; the code is 35 lines.)

    Parameters
    ----------
    X : pandas.DataFrame or array-like of shape (n_samples, n_features)
        Numeric, finite; a DataFrame's column names name the features (an
        array's are ``x0``, ``x1``...).
    settings : AnalysisSettings, optional
        Defaults: ``AnalysisSettings()``.
    models : dict of int to BayesianGMM, optional
        Bayesian fits already made (e.g. loaded with :meth:`BayesianGMM.load`),
        used for their K instead of fitting again: fitted on these data, with the
        covariance type EM's grid chooses (and a pointwise log-likelihood when
        LOO compares several K). ``bayesgmm report --posterior`` uses it.

    Returns
    -------
    ClusteringAnalysis

    Raises
    ------
    ValueError, TypeError
        For invalid data or settings, before anything is fitted.
    """
    settings = AnalysisSettings() if settings is None else settings
    if not isinstance(settings, AnalysisSettings):
        raise TypeError(f"settings must be an AnalysisSettings, got {type(settings).__name__}.")
    data = _check_frame(X)
    fit_kwargs = settings.fit_kwargs()
    ks = check_ks(settings.ks, len(data))
    check_probability(settings.threshold, "threshold")
    check_integer_param(settings.loo_neighbours, "loo_neighbours", minimum=0)
    check_integer_param(settings.loo_extra_fits, "loo_extra_fits", minimum=0)
    _check_k_settings(settings)
    prefit = _check_prefit(models, data)
    with warnings.catch_warnings():
        # Degenerate and unconverged grid fits are marked in the table the report shows.
        warnings.simplefilter("ignore", DegenerateFitWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        # The frame's column names in what select_model refuses up front (a constant column).
        FeatureScaling.from_data(data.to_numpy(), feature_names=[str(c) for c in data.columns])
        selection = select_model(data.to_numpy(), ks, covariance_types=settings.covariance_types,
                                 random_state=settings.seed, progressbar=settings.progressbar)
    models, fits, loo, k_choice, verdicts = _choose_k(data, selection, ks, settings, fit_kwargs, prefit)
    em = selection.estimators[(k_choice.K, selection.best_estimator_.covariance_type)]
    aligned = relabel(fits[k_choice.K], reference=em)
    verdicts = {k: assess(aligned) if k == k_choice.K else verdicts.get(k) or assess(idata)
                for k, idata in fits.items()}
    unreliable = sorted(k for k, v in verdicts.items() if v.label == "unreliable")
    if unreliable and loo is not None:
        k_choice.notes.append(f"The Bayesian fits of K = {', '.join(map(str, unreliable))} are unreliable "
                              "(see their verdicts): LOO between unreliable posteriors is weak evidence.")
    summ, messages = _summarise(aligned)
    assign = assignments(aligned, data.to_numpy(), relabel_draws=False)
    versus = compare_fits(em, aligned, data.to_numpy(), threshold=settings.threshold, aligned=True,
                          assignments=assign)
    return ClusteringAnalysis(
        settings=settings, data=data, selection=selection, em=em, k_choice=k_choice, models=models, fits=fits,
        posterior=aligned, verdict=verdicts[k_choice.K], verdicts=verdicts,
        summary=summ, summary_warnings=messages, assignments=assign, versus=versus,
        loo=loo, densities=_densities(aligned, em, data.to_numpy()),
    )


def _check_k_settings(settings: AnalysisSettings) -> None:
    """``k_rule`` and ``sparse_alpha``, checked before anything is fitted."""
    check_option(settings.k_rule, "k_rule", K_RULES)
    Priors(rounding=settings.rounding)  # a clear error before anything is fitted
    if settings.sparse_alpha is not None:
        check_real_param(settings.sparse_alpha, "sparse_alpha", minimum=0.0, strict=True)
    elif settings.k_rule == "sparse":
        raise ValueError("k_rule='sparse' needs the sparse-Dirichlet fit: give sparse_alpha (e.g. 0.05), not None.")


def _choose_k(data: pd.DataFrame, selection: ModelSelection, ks: list[int], settings: AnalysisSettings,
              fit_kwargs: dict, prefit: Mapping[int, BayesianGMM]):
    """The Bayesian fits, LOO over them and the choice of K: ``(models, fits, loo, KChoice, verdicts)``.

    ``verdicts`` are the fits' :func:`~bayesgmm.assess` where the LOO rule needed them (empty otherwise).

    BIC's K and its neighbours are fitted first; LOO's range grows while its winner
    is at its edge; the sparse-Dirichlet fit is made once; the rule then picks K
    (fitted too when it is not yet, e.g. the sparse rule's mode).
    """
    cov = selection.best_estimator_.covariance_type
    available = [k for k in ks if (k, cov) in selection.estimators]
    choosing = len(ks) > 1
    if choosing:
        fit_kwargs = {**fit_kwargs, "log_likelihood": True}  # LOO needs it
    models, fits = {}, {}
    first = _loo_ks(ks, selection, settings.loo_neighbours)
    if settings.progressbar:  # minutes of fits ahead: say roughly how many before the first starts
        sparse_k = max(available) if choosing and settings.sparse_alpha is not None and max(available) > 1 else None
        print(_plan(data, cov, [k for k in first if k not in prefit], sparse_k, fit_kwargs, settings.priors),
              file=sys.stderr, flush=True)
    for k in first:
        models[k], fits[k] = _bayesian_fit(data, selection, k, fit_kwargs, prefit, settings.priors)
    if not choosing:
        K = selection.best_estimator_.n_components
        table = _k_table(selection, ks, cov, None, None)
        winners = {"bic": K, "icl": K, "loo": None, "sparse": None, "bic_overall": (K, cov), "icl_overall": None}
        return models, fits, None, KChoice(table=table, covariance_type=cov, winners=winners, rule="n_components",
                                           K=K, reason="one K was tried."), {}
    extra = []
    while True:
        loo = _loo(fits, selection, cov)
        nxt = _next_loo_k(loo, fits, available) if len(extra) < settings.loo_extra_fits else None
        if nxt is None:
            break
        models[nxt], fits[nxt] = _bayesian_fit(data, selection, nxt, fit_kwargs, prefit, settings.priors)
        extra.append(nxt)
    sparse = sparse_idata = None
    kmax = max(available)
    if settings.sparse_alpha is not None and kmax > 1:
        settings_sparse = {**fit_kwargs, "log_likelihood": False, "check_diagnostics": False}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PosteriorDiagnosticsWarning)
            sparse, sparse_idata = sparse_dirichlet_fit(data, kmax, cov, selection, settings_sparse,
                                                        settings.sparse_alpha, _SPARSE_WEIGHT, priors=settings.priors)
    winners = _winners(selection, cov, available, loo, sparse)
    # Each fit is assessed once here; analyse assesses the chosen K once more, on its aligned posterior.
    verdicts = {k: assess(idata) for k, idata in fits.items()} if settings.k_rule == "loo" and loo is not None else {}
    K, reason = _apply_rule(settings.k_rule, winners, loo, sparse, _loo_doubts(verdicts, loo))
    if K not in fits:  # the sparse rule's mode, away from the K LOO compared
        models[K], fits[K] = _bayesian_fit(data, selection, K, fit_kwargs, prefit, settings.priors)
        loo = _loo(fits, selection, cov)
        winners["loo"] = None if loo is None else loo.best_loo
    notes = _notes(winners, ks, available, cov, fits, loo, extra, settings, sparse)
    table = _k_table(selection, ks, cov, loo, sparse)
    return models, fits, loo, KChoice(table=table, covariance_type=cov, winners=winners, rule=settings.k_rule, K=K,
                                      reason=reason, notes=notes, loo_extra=extra, sparse=sparse,
                                      sparse_idata=sparse_idata,
                                      sparse_alpha=None if sparse is None else settings.sparse_alpha), verdicts


def _loo(fits: dict, selection: ModelSelection, cov: str) -> KComparison | None:
    """LOO over the fits made (None when there is only one)."""
    return compare_k(None, sorted(fits), covariance_type=cov, fits=fits, em=selection) if len(fits) > 1 else None


def _next_loo_k(loo: KComparison | None, fits: dict, available: list[int]) -> int | None:
    """The next K of the grid beyond the edge of the fitted K where LOO's winner is, or None (interior/grid edge)."""
    lo, hi = min(fits), max(fits)
    best = hi if loo is None else loo.best_loo  # a single fit: look upwards first
    above = [k for k in available if k > hi]
    below = [k for k in available if k < lo]
    if best == hi and above:
        return above[0]
    if best == lo and below:
        return below[-1]
    return None


def _eligible(selection: ModelSelection) -> pd.DataFrame:
    table = selection.table
    return table[~table["degenerate"].astype(bool) & (table["error"] == "")]


def _winners(selection: ModelSelection, cov: str, available: list[int], loo, sparse) -> dict:
    """The K each criterion prefers (None when not computed), and BIC's and ICL's choice over every type."""
    eligible = _eligible(selection)
    of_type = eligible[eligible["covariance_type"] == cov].set_index("n_components")
    overall = {c: eligible.loc[eligible[c].idxmin()] for c in ("bic", "icl")}
    winners = {"bic": int(selection.best_estimator_.n_components), "icl": int(of_type["icl"].idxmin()),
               "loo": None if loo is None else loo.best_loo, "sparse": None}
    winners.update({f"{c}_overall": (int(row["n_components"]), str(row["covariance_type"]))
                    for c, row in overall.items()})
    if sparse is not None:
        probability = sparse["probability"].to_series()
        winners["sparse"] = int(probability.reindex(available).fillna(0.0).idxmax())
    return winners


def _loo_margin(loo: KComparison, k: int) -> float:
    """How many standard errors of the difference the LOO winner's elpd beats K's by (inf when dse is 0)."""
    diff, dse = float(loo.table.loc[k, "elpd_diff"]), float(loo.table.loc[k, "dse"])
    return diff / dse if dse > 0 else (np.inf if diff > 0 else 0.0)


def _loo_doubts(verdicts: dict, loo) -> dict:
    """Per K fitted by Bayes, why its LOO estimate is weak evidence: an unreliable posterior, high Pareto k."""
    flagged = set()
    if loo is not None and "warning" in loo.table:
        flagged = {int(k) for k in loo.table.index[loo.table["warning"].astype(bool)]}
    doubts = {}
    for k, verdict in verdicts.items():
        why = (["its posterior is unreliable"] if verdict.label == "unreliable" else []) + (
            ["ArviZ warns of high Pareto k"] if k in flagged else [])
        if why:
            doubts[k] = " and ".join(why)
    return doubts


def _apply_rule(rule: str, winners: dict, loo, sparse, doubts: dict | None = None) -> tuple[int, str]:
    """The K the rule picks, and why in words.

    ``doubts`` (see :func:`_loo_doubts`): LOO's winner does not replace BIC's K where
    either of their LOO estimates is in doubt.
    """
    bic = winners["bic"]
    if rule == "bic":
        return bic, f"EM's BIC prefers K={bic} (k_rule='bic' follows it whatever LOO and the sparse fit say)."
    if rule == "sparse" and sparse is None:
        return bic, f"no sparse-Dirichlet fit could be made (one K of the grid fitted by EM): BIC's K={bic} is kept."
    if rule == "sparse":
        k = winners["sparse"]
        p = float(sparse["probability"].sel(n_components=k))
        return k, (f"the sparse-Dirichlet fit most probably occupies {k} components (posterior probability "
                   f"{p:.2f}).")
    best = winners["loo"]
    if loo is None:
        return bic, f"only K={bic} was fitted by Bayes, so LOO compares nothing: BIC's K={bic} is kept."
    if best == bic:
        return bic, f"LOO and EM's BIC agree on K={bic}."
    z = _loo_margin(loo, bic)
    doubted = {k: why for k, why in (doubts or {}).items() if k in (best, bic)}
    if z > LOO_DSE and doubted:
        return bic, (f"LOO prefers K={best} to BIC's K={bic} by {z:.1f} standard errors, but for "
                     + "; for ".join(f"K={k} {why}" for k, why in sorted(doubted.items()))
                     + f": LOO is weak evidence there, so BIC's K={bic} is kept.")
    if z > LOO_DSE:
        return best, (f"LOO prefers K={best} to BIC's K={bic} by {z:.1f} standard errors of the elpd difference "
                      f"(more than {LOO_DSE:g}).")
    return bic, (f"LOO prefers K={best} to BIC's K={bic}, but by only {z:.1f} standard errors (not more than "
                 f"{LOO_DSE:g}): BIC's K={bic} is kept.")


def _notes(winners: dict, ks: list[int], available: list[int], cov: str, fits: dict, loo, extra: list[int],
           settings: AnalysisSettings, sparse) -> list[str]:
    """Where the criteria disagree, and the criteria at the edge of the K tried, in words."""
    notes, bic = [], winners["bic"]
    if bic == max(ks):
        notes.append(f"BIC is still improving at K={bic}, the largest K tried: widen select.")
    elif bic == min(ks) and bic > 1:
        notes.append(f"BIC is best at K={bic}, the smallest K tried: include smaller K in select.")
    if winners["icl"] != bic:
        notes.append(f"ICL (BIC plus a penalty for overlapping clusters) prefers K={winners['icl']} to BIC's "
                     f"K={bic} ({cov} covariance).")
    if winners["icl_overall"] is not None and winners["icl_overall"] != (winners["icl"], cov):
        k, c = winners["icl_overall"]
        notes.append(f"Over every covariance type, ICL prefers K={k} with {c} covariance.")
    if loo is not None:
        notes += _loo_notes(winners, available, fits, loo, extra, settings)
    if sparse is not None:
        k, kmax = winners["sparse"], int(sparse.sizes["n_components"]) - 1
        p = float(sparse["probability"].sel(n_components=k))
        if k != bic:
            caveat = "" if settings.method == "nuts" else (f" ({settings.method.upper()} fit: a variational "
                                                           "approximation may keep components a sampler would empty)")
            notes.append(f"The sparse-Dirichlet fit (alpha={settings.sparse_alpha:g}, {kmax} components) most "
                         f"probably occupies {k} components (probability {p:.2f}), where BIC says {bic}{caveat}.")
        if k == kmax:
            notes.append(f"The sparse-Dirichlet fit keeps all its {kmax} components: it may need more (widen "
                         "select).")
    return notes


def _loo_notes(winners: dict, available: list[int], fits: dict, loo, extra: list[int],
               settings: AnalysisSettings) -> list[str]:
    notes, bic, best = [], winners["bic"], winners["loo"]
    if best != bic:
        z = _loo_margin(loo, bic)
        notes.append(f"LOO prefers K={best} over EM's K={bic} by {z:.1f} standard errors"
                     f"{' (more than 2)' if z > LOO_DSE else ' (2 or fewer)'}.")
    if extra:
        notes.append(f"LOO's winner was at the edge of the K fitted by Bayes, so K = {', '.join(map(str, extra))} "
                     f"{'was' if len(extra) == 1 else 'were'} fitted too.")
    if best == max(fits) == max(available) and len(available) > 1:
        notes.append(f"LOO is still improving at K={best}, the largest K of the grid: widen select.")
    elif best == min(fits) == min(available) and best > 1:
        notes.append(f"LOO is best at K={best}, the smallest K of the grid: include smaller K in select.")
    elif best in (min(fits), max(fits)) and best not in (min(available), max(available)):
        notes.append(f"LOO's winner K={best} is still at the edge of the K fitted by Bayes after "
                     f"{settings.loo_extra_fits} extra fit(s) (loo_extra_fits): raise it to bracket the winner.")
    flagged = [int(k) for k in loo.table.index[loo.table.get("warning", pd.Series(False, loo.table.index))
                                               .astype(bool)]]
    if flagged:
        notes.append(f"ArviZ warns about LOO (high Pareto k) for K = {', '.join(map(str, sorted(flagged)))}: "
                     "those estimates may be unreliable.")
    return notes


def _k_table(selection: ModelSelection, ks: list[int], cov: str, loo, sparse) -> pd.DataFrame:
    """One row per K of the grid: EM's BIC and ICL, LOO and the sparse fit's probability of K occupied components."""
    of_type = _eligible(selection)
    of_type = of_type[of_type["covariance_type"] == cov].set_index("n_components")
    table = pd.DataFrame(index=pd.Index(ks, name="K"))
    table["bic"] = of_type["bic"].reindex(ks).to_numpy(dtype=float)
    table["icl"] = of_type["icl"].reindex(ks).to_numpy(dtype=float)
    for column in ("elpd_loo", "se", "elpd_diff", "dse"):
        table[column] = np.nan if loo is None else loo.table[column].reindex(ks).to_numpy(dtype=float)
    table["sparse_probability"] = (np.nan if sparse is None else
                                   sparse["probability"].to_series().reindex(ks).to_numpy(dtype=float))
    return table


def _check_frame(X) -> pd.DataFrame:
    """The data checked once: a float DataFrame with string column names."""
    if isinstance(X, pd.DataFrame):
        names = [str(c) for c in X.columns]
        repeated = sorted({c for c in names if names.count(c) > 1})
        if repeated:
            raise ValueError(f"X repeats the column name(s) {repeated}; feature names must be unique.")
    values = check_data(X, dtype=(np.float64,), min_samples=2)
    if not isinstance(X, pd.DataFrame):
        names = [f"x{j}" for j in range(values.shape[1])]
    return pd.DataFrame(values, columns=names)


def _loo_ks(ks: list[int], selection: ModelSelection, neighbours: int) -> list[int]:
    """The chosen K and the K of the grid within ``neighbours`` of it that EM could fit with its type."""
    best = selection.best_estimator_
    K, cov = best.n_components, best.covariance_type
    return [k for k in ks if abs(k - K) <= neighbours and (k, cov) in selection.estimators]


def _check_prefit(models, data: pd.DataFrame) -> dict:
    """Fits passed to :func:`analyse`, checked before anything is fitted."""
    if models is None:
        return {}
    if not isinstance(models, Mapping):
        raise TypeError(f"models must be a dict of K to fitted BayesianGMM, got {type(models).__name__}.")
    for k, model in models.items():
        if not isinstance(model, BayesianGMM) or model.idata_ is None:
            raise TypeError(f"models[{k!r}] must be a fitted BayesianGMM (fit or load it first), got {model!r}.")
        if model.n_components != k:
            raise ValueError(f"models[{k!r}] has n_components={model.n_components}, not {k}.")
        names = [str(f) for f in model.idata_.posterior["feature"].values]
        if names != list(data.columns):
            raise ValueError(f"models[{k!r}] was fitted on features {names}, but X has {list(data.columns)}.")
    return dict(models)


def _bayesian_fit(data: pd.DataFrame, selection: ModelSelection, k: int, fit_kwargs: dict, prefit: Mapping,
                  priors: dict):
    """The Bayesian fit of K, of the EM winner's covariance type, started from the grid's EM fit of that K."""
    cov = selection.best_estimator_.covariance_type
    if k in prefit:
        model = prefit[k]
        if model.covariance_type != cov:
            raise ValueError(f"models[{k}] has covariance_type={model.covariance_type!r}, but EM's grid chose "
                             f"{cov!r}; give covariance_types=({model.covariance_type!r},) in the settings.")
        return model, model.idata_
    model = BayesianGMM(k, covariance_type=cov, priors=priors)
    progress = fit_kwargs.get("progressbar", False)
    if progress:  # the report makes several fits of up to minutes each: say which one runs
        low, high = _cost_range(model, data, fit_kwargs)
        print(f"Bayesian fit of K={k} ({cov} covariance; {_span(low, high)})...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    # Each fit is assessed once, by analyse (on the aligned posterior for the chosen K), not inside fit.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PosteriorDiagnosticsWarning)  # ADVI's: the verdict reports it
        idata = model.fit(data, **{**fit_kwargs, "check_diagnostics": False, "init": selection.estimators[(k, cov)]})
    if progress:
        print(f"Bayesian fit of K={k} done in {time.perf_counter() - start:.0f} s.", file=sys.stderr, flush=True)
    return model, idata


def _cost_range(model: BayesianGMM, data: pd.DataFrame, fit_kwargs: dict) -> tuple[float, float]:
    """Rough wall time of one Bayesian fit (:mod:`bayesgmm.cost`), least and most.

    They differ where ``draws="auto"`` samples on until the diagnostics pass: from its
    first checkpoint to its limit.
    """
    low = model.estimate_cost(data, **fit_kwargs).seconds
    if fit_settings(fit_kwargs)["draws"] != "auto":
        return low, low
    return low, model.estimate_cost(data, **{**fit_kwargs, "draws": AUTO_DRAWS_CHECKPOINTS[-1]}).seconds


def _span(low: float, high: float) -> str:
    if format_duration(low) == format_duration(high):
        return f"roughly {format_duration(low)}"
    return f"roughly {format_duration(low)} to {format_duration(high)}"


def _plan(data: pd.DataFrame, cov: str, ks: list[int], sparse_k: int | None, fit_kwargs: dict, priors) -> str:
    """The Bayesian fits a report is about to make and their rough total time, in one line."""
    low = high = 0.0
    for k in ks:
        lo, hi = _cost_range(BayesianGMM(k, covariance_type=cov, priors=priors), data, fit_kwargs)
        low, high = low + lo, high + hi
    fits = [f"K={', '.join(map(str, ks))} ({cov} covariance)"] if ks else []
    if sparse_k is not None:
        draws = fit_kwargs.get("draws", "auto")
        sparse = {**fit_kwargs, "draws": SPARSE_AUTO_DRAWS if isinstance(draws, str) else draws}
        seconds = BayesianGMM(sparse_k, covariance_type=cov, priors=priors).estimate_cost(data, **sparse).seconds
        low, high = low + seconds, high + seconds
        fits.append(f"a sparse-Dirichlet fit of K={sparse_k}")
    if not fits:
        return "No Bayesian fit to make: the given fits are used."
    line = (f"Bayesian fits to make: {' and '.join(fits)}, {_span(low, high)} in all, compiling aside "
            "(estimates good to a factor of a few; the upper end is every fit sampling to its draw limit, "
            "as fits whose posterior mixes slowly do; LOO may ask for more K).")
    if high > EXPENSIVE_FIT_SECONDS and fit_settings(fit_kwargs)["method"] == "nuts":
        advi = {"method": "advi", **{k: fit_kwargs[k] for k in ("n_iterations", "batch_size") if k in fit_kwargs}}
        quick = sum(BayesianGMM(k, covariance_type=cov, priors=priors).estimate_cost(data, **advi).seconds
                    for k in ks + ([sparse_k] if sparse_k is not None else []))
        line += (f" Quicker, and approximate: method='advi' (--method advi), roughly {format_duration(quick)}; "
                 "or fewer K (--select).")
    return line


def _summarise(aligned) -> tuple[object, list[str]]:
    """The aligned posterior's summary, and the messages of the warnings it gave."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summ = summary(aligned, relabel_draws=False)
    return summ, [str(w.message) for w in caught if issubclass(w.category, UserWarning)]


def _densities(aligned, em: GaussianMixtureEM, X: np.ndarray) -> dict:
    """The density curves of the plots: the predictive density (D = 1) or every feature's marginal."""
    if X.shape[1] == 1:
        spread = np.ptp(X)
        grid = np.linspace(X.min() - 0.15 * spread, X.max() + 0.15 * spread, _DENSITY_POINTS)[:, None]
        return {"predictive": predictive_density(aligned, grid), "em": np.exp(em.score_samples(grid))}
    return {"marginal": {j: marginal_density(aligned, j, np.linspace(X[:, j].min(), X[:, j].max(), _DENSITY_POINTS))
                         for j in range(X.shape[1])}}
