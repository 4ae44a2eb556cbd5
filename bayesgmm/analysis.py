"""Analyse once, render after: every quantity of a clustering report, computed once.

:func:`analyse` runs the whole pipeline on checked data and returns a
:class:`ClusteringAnalysis`; :mod:`bayesgmm.report` only formats it, and the
command line and the notebooks read the same object. Each step is done once:

1. the data are checked once (column names kept);
2. the EM grid is fitted once (:func:`~bayesgmm.select_model`), and its winner
   gives K and the covariance type;
3. the Bayesian fits of K and its LOO neighbours start from the grid's EM fits
   of the same K and type (``init=<fitted GaussianMixtureEM>``: EM is not fitted
   again);
4. the chosen posterior is aligned to the chosen EM fit once
   (:func:`~bayesgmm.relabel`); the neighbours only enter LOO, which does not
   depend on labels, so they are not relabelled;
5. the aligned posterior is judged, summarised and assigned once, and
   :func:`~bayesgmm.compare_fits` reuses that aligned posterior and those
   assignments;
6. LOO compares the fits already made (:func:`~bayesgmm.compare_k` with
   ``fits=`` and ``em=``);
7. the density curves the plots draw are evaluated once.

Examples
--------
>>> import warnings; warnings.simplefilter("ignore")
>>> from bayesgmm.analysis import AnalysisSettings, analyse
>>> from bayesgmm.datasets import load_faithful
>>> settings = AnalysisSettings(n_components=2, covariance_types=("full",), method="advi", draws=100,
...                             progressbar=False)
>>> analysis = analyse(load_faithful(), settings)
>>> analysis.K, analysis.covariance_type, analysis.names
(2, 'full', ['eruptions', 'waiting'])
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.exceptions import ConvergenceWarning

from ._validation import check_data, check_integer_param, check_probability
from .compare import FitComparison, KComparison, check_ks, compare_fits, compare_k
from .diagnostics import PosteriorDiagnosticsWarning, Verdict, assess
from .em import DegenerateFitWarning, GaussianMixtureEM
from .fit_settings import FIT_DEFAULTS, fit_settings
from .labels import relabel
from .model import BayesianGMM
from .selection import ModelSelection, select_model
from .summaries import assignments, marginal_density, predictive_density, summary

__all__ = ["AnalysisSettings", "ClusteringAnalysis", "analyse"]

#: Points of the grids the density curves are evaluated on.
_DENSITY_POINTS = 200


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
        LOO compares the chosen K with the K this close to it in ``select``.
    progressbar : bool
    source, standardized, dropped_rows
        How the data were read (shown in the report's overview).
    fit_options : dict
        Other fit settings (keys of ``FIT_DEFAULTS`` or NUTS options such as ``target_accept``).
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
    progressbar: bool = True
    source: str = ""
    standardized: bool = False
    dropped_rows: list[int] = field(default_factory=list)
    fit_options: dict = field(default_factory=dict)

    @property
    def ks(self) -> list[int]:
        """The K of the EM grid: ``[n_components]`` when given, else ``select``."""
        return [self.n_components] if self.n_components else list(self.select)

    def fit_kwargs(self) -> dict:
        """The checked keyword arguments of every Bayesian fit (without its start)."""
        return fit_settings(self.fit_options, method=self.method, draws=self.draws, tune=self.tune,
                            chains=self.chains, random_seed=self.seed, progressbar=self.progressbar)


@dataclass(eq=False)  # compared by identity: it holds data frames and fits
class ClusteringAnalysis:
    """Result of :func:`analyse`: every quantity a report shows, each computed once.

    Attributes
    ----------
    settings : AnalysisSettings
    data : pandas.DataFrame
        The checked data (float columns, names kept).
    selection : ModelSelection
        The EM grid; ``selection.best_estimator_`` is :attr:`em`.
    em : GaussianMixtureEM
        The chosen EM fit (gives K and the covariance type).
    models : dict of int to BayesianGMM
        The Bayesian model of the chosen K and of its LOO neighbours.
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
        LOO over the chosen K and its neighbours; None when there is one K.
    densities : dict
        The curves the plots draw: ``"marginal"`` (feature index -> marginal
        density) for D >= 2; ``"predictive"`` and ``"em"`` (EM's density on the
        same grid) for D = 1.
    """

    settings: AnalysisSettings
    data: pd.DataFrame = field(repr=False)
    selection: ModelSelection = field(repr=False)
    em: GaussianMixtureEM
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
        """The K that were fitted by Bayes (the chosen one and its LOO neighbours)."""
        return sorted(self.fits)


def analyse(X, settings: AnalysisSettings | None = None) -> ClusteringAnalysis:
    """Run the clustering pipeline once: EM grid, Bayesian fits, alignment, summaries, comparisons.

    Parameters
    ----------
    X : pandas.DataFrame or array-like of shape (n_samples, n_features)
        Numeric, finite; a DataFrame's column names name the features (an
        array's are ``x0``, ``x1``...).
    settings : AnalysisSettings, optional
        Defaults: ``AnalysisSettings()``.

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
    with warnings.catch_warnings():
        # Degenerate and unconverged grid fits are marked in the table the report shows.
        warnings.simplefilter("ignore", DegenerateFitWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        selection = select_model(data.to_numpy(), ks, covariance_types=settings.covariance_types,
                                 random_state=settings.seed, progressbar=settings.progressbar)
    em = selection.best_estimator_
    models, fits = _bayesian_fits(data, selection, _loo_ks(ks, selection, settings.loo_neighbours), fit_kwargs)
    aligned = relabel(fits[em.n_components], reference=em)
    verdicts = {k: assess(aligned if k == em.n_components else idata) for k, idata in fits.items()}
    summ, messages = _summarise(aligned)
    assign = assignments(aligned, data.to_numpy(), relabel_draws=False)
    versus = compare_fits(em, aligned, data.to_numpy(), threshold=settings.threshold, aligned=True,
                          assignments=assign)
    loo = None
    if len(fits) > 1:
        loo = compare_k(None, sorted(fits), covariance_type=em.covariance_type, fits=fits, em=selection)
    return ClusteringAnalysis(
        settings=settings, data=data, selection=selection, em=em, models=models, fits=fits, posterior=aligned,
        verdict=verdicts[em.n_components], verdicts=verdicts,
        summary=summ, summary_warnings=messages, assignments=assign, versus=versus,
        loo=loo, densities=_densities(aligned, em, data.to_numpy()),
    )


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


def _bayesian_fits(data: pd.DataFrame, selection: ModelSelection, ks: list[int], fit_kwargs: dict):
    """One Bayesian fit per K, of the EM winner's covariance type, started from the grid's EM fit of that K."""
    cov = selection.best_estimator_.covariance_type
    if len(ks) > 1:
        fit_kwargs = {**fit_kwargs, "log_likelihood": True}  # LOO needs it
    models, fits = {}, {}
    # Each fit is assessed once, by analyse (on the aligned posterior for the chosen K), not inside fit.
    fit_kwargs = {**fit_kwargs, "check_diagnostics": False}
    for k in ks:
        models[k] = BayesianGMM(k, covariance_type=cov)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PosteriorDiagnosticsWarning)  # ADVI's: the verdict reports it
            fits[k] = models[k].fit(data, **{**fit_kwargs, "init": selection.estimators[(k, cov)]})
    return models, fits


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
