"""Comparisons: choosing K (LOO beside BIC/ICL) and EM against the posterior."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import arviz as az
import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score

from ._posterior import check_fitted_em, check_idata, check_points, feature_names, frame_to_array
from ._validation import (
    check_data,
    check_integer_param,
    check_option,
    check_probability,
    check_real_param,
)
from .bayes_covariance import BAYES_COVARIANCE_TYPES
from .fit_settings import fit_settings
from .labels import relabel, training_points
from .model import BayesianGMM
from .selection import ModelSelection, select_model
from .summaries import assignments as assign_points
from .summaries import effective_components, predictive_density

__all__ = ["compare_k", "KComparison", "compare_fits", "FitComparison"]


class _ByK(dict):
    """The fits of :class:`KComparison`, keyed by the integer K.

    The former string keys (``"K=3"``, and ``"sparse"`` for the sparse-Dirichlet
    fit, now :attr:`KComparison.sparse_idata`) still work, with a DeprecationWarning.
    """

    def __init__(self, fits=(), sparse=None):
        super().__init__(fits)
        self._sparse = sparse

    def _key(self, key):
        if isinstance(key, str) and (key.startswith("K=") or key == "sparse"):
            new = "KComparison.sparse_idata" if key == "sparse" else f"idatas[{key[2:]}]"
            warnings.warn(f"KComparison.idatas[{key!r}] is deprecated; use {new} (fits are keyed by the integer K).",
                          DeprecationWarning, stacklevel=3)
            return key if key == "sparse" else int(key[2:])
        return key

    def __getitem__(self, key):
        key = self._key(key)
        if key == "sparse" and self._sparse is not None:
            return self._sparse
        return super().__getitem__(key)

    def __contains__(self, key):
        key = self._key(key)
        return (key == "sparse" and self._sparse is not None) or super().__contains__(key)

    def get(self, key, default=None):
        return self[key] if key in self else default


@dataclass
class KComparison:
    """Result of :func:`compare_k`.

    Examples
    --------
    See :func:`compare_k`; ``result.table`` is a pandas DataFrame.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per K, ranked by LOO and indexed by the integer K: ArviZ's
        ``az.compare`` columns (``elpd_loo``, ``se``, ``elpd_diff``, ``dse``,
        ``weight``...) beside ``n_components``, ``em_bic``, ``em_icl`` and
        ``em_bic_rank`` for the same K.
    idatas : dict
        The Bayesian fit of every K, keyed by the integer K (the former keys
        ``"K=<k>"`` still work, with a DeprecationWarning).
    em : ModelSelection
        The EM fits and their table.
    sparse : xarray.Dataset or None
        :func:`effective_components` of the sparse-Dirichlet fit, when asked for.
    sparse_idata : arviz.InferenceData or None
        That sparse-Dirichlet fit.
    """

    table: pd.DataFrame
    idatas: dict = field(repr=False)
    em: ModelSelection = field(repr=False)
    sparse: object = None
    sparse_idata: object = field(default=None, repr=False)

    def __post_init__(self):
        if not isinstance(self.idatas, _ByK):
            self.idatas = _ByK(self.idatas, self.sparse_idata)

    @property
    def best_loo(self) -> int:
        """K ranked first by LOO."""
        return int(self.table.index[0])

    @property
    def best_bic(self) -> int:
        """K with the lowest EM BIC."""
        return int(self.table["em_bic"].idxmin())

    def within_one_se(self) -> list[int]:
        """Every K whose elpd_loo is within one standard error of the best."""
        close = self.table["elpd_diff"] <= self.table["dse"].where(self.table["dse"] > 0, 0)
        return [int(k) for k in self.table.index[close]]


def compare_k(
    X,
    n_components: Iterable[int] | None = None,
    *,
    covariance_type: str = "full",
    method: str | None = None,
    draws: int | None = None,
    tune: int | None = None,
    chains: int | None = None,
    random_seed: int | None = None,
    progressbar: bool = False,
    sparse_alpha: float | None = None,
    threshold: float = 0.05,
    fits: Mapping | None = None,
    em: ModelSelection | None = None,
    fit_options: Mapping | None = None,
) -> KComparison:
    """Fit every K by Bayes and by EM and put LOO beside BIC/ICL.

    Fits the caller already has are used as they are: ``em`` (a
    :func:`select_model` result) replaces the EM grid, and its fit for each K
    starts that K's sampler (no EM is fitted again); ``fits`` replaces the
    Bayesian fits of those K.

    .. Over 60 lines only by this docstring: the code is 20 lines of checks and helper calls.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features) or None
        None only when nothing is left to fit (every K in ``fits``, ``em`` given,
        no ``sparse_alpha``).
    n_components : iterable of int, optional
        Every K to compare: integers between 1 and the number of rows (no floats).
        Default: the keys of ``fits`` when given, else ``range(1, 7)``.
    covariance_type : {"full", "tied", "diag", "spherical"}, default="full"
        Of the Bayesian fits, and the EM fits whose BIC and ICL are shown.
    method, draws, tune, chains, random_seed
        Fit settings passed to :meth:`BayesianGMM.fit`; None takes
        :data:`bayesgmm.fit_settings.FIT_DEFAULTS`.
    progressbar : bool, default=False
    sparse_alpha : float, optional
        Also fit the largest K with ``Dirichlet(sparse_alpha)`` weights (e.g. 0.05)
        and report how many components keep more than ``threshold`` of the weight.
    threshold : float, default=0.05
    fits : mapping of int to arviz.InferenceData, optional
        Bayesian fits already made (with their pointwise log-likelihood), by K.
    em : ModelSelection, optional
        EM fits already made, with ``covariance_type`` and every K in its grid.
    fit_options : mapping, optional
        Other fit settings (see :func:`bayesgmm.fit_settings.fit_settings`).

    Returns
    -------
    KComparison

    Examples
    --------
    >>> from bayesgmm import compare_k
    >>> from bayesgmm.datasets import load_faithful
    >>> result = compare_k(load_faithful(), [1, 2], method="advi", draws=100, random_seed=0)
    >>> result.best_loo, result.best_bic
    (2, 2)
    """
    given = {"method": method, "draws": draws, "tune": tune, "chains": chains}
    settings = fit_settings(fit_options, **{k: v for k, v in given.items() if v is not None},
                            random_seed=random_seed, progressbar=progressbar, log_likelihood=True)
    fits = _check_fits(fits)
    X, ks = _check_compare_input(X, n_components, fits, em, sparse_alpha)
    covariance_type = check_option(covariance_type, "covariance_type", tuple(BAYES_COVARIANCE_TYPES))
    if sparse_alpha is not None:
        sparse_alpha = check_real_param(sparse_alpha, "sparse_alpha", minimum=0.0, strict=True)
    threshold = check_probability(threshold, "threshold")
    if em is None:
        em = select_model(X, ks, covariance_types=(covariance_type,), random_state=settings["random_seed"])
    _check_grid_has(em, ks, covariance_type)
    idatas = {k: fits[k] if k in fits else _fit_one_k(X, k, covariance_type, em, settings) for k in ks}
    table = _loo_table(idatas, em, covariance_type)
    sparse = sparse_fit = None
    if sparse_alpha is not None:
        sparse, sparse_fit = sparse_dirichlet_fit(X, max(ks), covariance_type, em, settings, sparse_alpha, threshold)
    return KComparison(table=table, idatas=_ByK(idatas, sparse_fit), em=em, sparse=sparse, sparse_idata=sparse_fit)


def _check_fits(fits) -> dict:
    """``fits`` as a dict {K: InferenceData}, each with a pointwise log-likelihood and K components."""
    if fits is None:
        return {}
    if not isinstance(fits, Mapping):
        raise TypeError(f"fits must be a dict of K -> InferenceData, got {type(fits).__name__}.")
    out = {}
    for k, idata in fits.items():
        k = check_integer_param(k, "each key of fits", minimum=1)
        check_idata(idata, name=f"fits[{k}]")
        if idata.posterior.sizes["component"] != k:
            raise ValueError(f"fits[{k}] has {idata.posterior.sizes['component']} components, not {k}.")
        if "log_likelihood" not in idata.groups():
            raise ValueError(f"fits[{k}] has no log_likelihood group; fit it with log_likelihood=True for LOO.")
        out[k] = idata
    return out


def _check_compare_input(X, n_components, fits: dict, em, sparse_alpha) -> tuple[np.ndarray | None, list[int]]:
    """X checked (once) and the K grid; X may be None only when nothing is left to fit."""
    if n_components is None:
        n_components = sorted(fits) or range(1, 7)
    if em is not None and not isinstance(em, ModelSelection):
        raise TypeError(f"em must be a ModelSelection (from select_model), got {type(em).__name__}.")
    if X is None:
        ks = check_ks(n_components, None)
        missing = [k for k in ks if k not in fits]
        if missing or em is None or sparse_alpha is not None:
            raise ValueError(f"X is needed: K = {missing} have no fit in fits" if missing else
                             "X is needed to fit the EM grid (no em given) or the sparse-Dirichlet fit.")
        return None, ks
    if isinstance(X, pd.DataFrame) and all(isinstance(c, str) for c in X.columns):
        X = pd.DataFrame(frame_to_array(X, list(X.columns), "X", "X"), columns=X.columns)  # keeps the names
    else:
        X = check_data(X, dtype=(np.float64,))
    return X, check_ks(n_components, X.shape[0])


def _check_grid_has(em: ModelSelection, ks: list[int], covariance_type: str) -> None:
    rows = em.table[em.table["covariance_type"] == covariance_type]
    missing = sorted(set(ks) - set(rows["n_components"]))
    if missing:
        raise ValueError(f"em has no {covariance_type!r} fit for K = {missing}; include them in its grid.")


def _fit_one_k(X, k: int, covariance_type: str, em: ModelSelection, settings: dict, priors=None):
    """One Bayesian fit, started from the grid's EM fit of that K when there is one (no EM fitted again)."""
    start = em.estimators.get((k, covariance_type), settings["init"])
    # Each fit's own diagnostics warning reaches the caller: LOO between unreliable posteriors is weak evidence.
    return BayesianGMM(k, covariance_type=covariance_type, priors=priors).fit(X, **{**settings, "init": start})


#: Draws per chain of the sparse-Dirichlet fit where the settings say ``draws="auto"``.
SPARSE_AUTO_DRAWS = 1000


def sparse_dirichlet_fit(X, k: int, covariance_type: str, em: ModelSelection, settings: dict, alpha: float,
                         threshold: float = 0.05, *, priors: dict | None = None):
    """The overfitted sparse-Dirichlet fit of :func:`compare_k` and :func:`bayesgmm.analysis.analyse`.

    ``k`` components with ``Dirichlet(alpha)`` weights (a small ``alpha`` empties the
    components the data do not need), started from ``em``'s fit of that K; ``settings``
    are checked fit settings (:func:`bayesgmm.fit_settings.fit_settings`). Returns
    ``(effective_components(fit, weight_threshold=threshold), fit)``: the posterior of the
    number of components holding more than ``threshold`` of the weight, and the fit.
    ``priors`` are other priors of the fit (e.g. ``{"rounding": 0}``).

    ``draws="auto"`` becomes :data:`SPARSE_AUTO_DRAWS` here: the emptied components
    wander over their prior by design, so the fit's verdict never passes and sampling
    until it does would always run to the limit; the number of occupied components,
    which is what this fit is for, needs far fewer draws.
    """
    if isinstance(settings.get("draws"), str):  # "auto"
        settings = {**settings, "draws": SPARSE_AUTO_DRAWS}
    fit = _fit_one_k(X, k, covariance_type, em, settings, priors={**(priors or {}), "alpha": alpha})
    return effective_components(fit, weight_threshold=threshold), fit


def _loo_table(idatas: dict, em: ModelSelection, covariance_type: str) -> pd.DataFrame:
    """``az.compare`` by LOO, indexed by K, with EM's BIC, ICL and BIC rank for the same K."""
    with warnings.catch_warnings():
        # ArviZ's Pareto-k notes stay in the table's 'warning' column.
        warnings.filterwarnings("ignore", message="Estimated shape parameter of Pareto", category=UserWarning)
        # ArviZ 0.23's own call of a pandas API deprecated in pandas 3.1; nothing a caller can change.
        warnings.filterwarnings("ignore", message="The inplace keyword in DataFrame.sort_values")
        # ArviZ's Pareto fit (Zhang & Stephens' _gpdfit) overflows exp for hopeless proposals of
        # a heavy tail: 1 / inf = weight 0, as intended. The printed overflow said nothing to a user.
        with np.errstate(over="ignore"):
            table = az.compare(dict(idatas), ic="loo")
            table["weight"] = az.compare(_centred_log_likelihoods(idatas), ic="loo")["weight"].reindex(table.index)
    table.index = pd.Index([int(k) for k in table.index], name="K")
    em_table = em.table[em.table["covariance_type"] == covariance_type].set_index("n_components")
    table["n_components"] = table.index.to_numpy()
    table["em_bic"] = table["n_components"].map(em_table["bic"])
    table["em_icl"] = table["n_components"].map(em_table["icl"])
    table["em_bic_rank"] = table["em_bic"].rank(method="min").astype("Int64")
    return table


def _centred_log_likelihoods(idatas: dict) -> dict:
    """Each fit's pointwise log-likelihood, centred per point over all fits, for stacking weights.

    The table's elpd columns stay in data units; only its ``weight`` column comes from these
    (see :func:`bayesgmm.diagnostics.centre_per_point`).
    """
    from .diagnostics import centre_per_point

    values = [idata.log_likelihood["obs"].transpose("chain", "draw", ...).values for idata in idatas.values()]
    centred = centre_per_point([v.reshape(v.shape[0], v.shape[1], -1) for v in values])
    return {k: az.from_dict(posterior={"_": np.zeros(v.shape[:2])}, log_likelihood={"obs": v})
            for k, v in zip(idatas, centred)}


def check_ks(n_components, n_samples: int | None) -> list[int]:
    """The K grid: a non-empty collection of integers in [1, n_samples], sorted, without repeats."""
    hint = "a list of positive integers such as [1, 2, 3] or range(1, 7)"
    if isinstance(n_components, (str, bytes)) or not isinstance(n_components, Iterable):
        raise TypeError(f"n_components must be {hint}, got {n_components!r}.")
    ks = list(n_components)
    if not ks:
        raise ValueError(f"n_components must be {hint}, got an empty collection.")
    for k in ks:
        check_integer_param(k, "each n_components value", minimum=1, maximum=n_samples)
    return sorted(set(int(k) for k in ks))


@dataclass
class FitComparison:
    """Result of :func:`compare_fits`.

    Examples
    --------
    See :func:`compare_fits`; ``result.table.query("not em_in_hdi")`` lists disagreements.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per component and parameter (``weight``, ``mean``, ``sd``,
        ``corr``): ``em``, ``posterior_mean``, ``hdi_lower``, ``hdi_upper``,
        ``em_in_hdi``.
    adjusted_rand_index : float
        Between EM's hard labels and the posterior's most probable labels.
    uncertain : pandas.DataFrame
        Rows whose labels differ, or whose posterior probability of the most
        probable component is below ``threshold``.
    log_predictive : pandas.Series or None
        Mean log predictive density per held-out row, for ``em`` and ``posterior``.
    """

    table: pd.DataFrame
    adjusted_rand_index: float
    uncertain: pd.DataFrame
    log_predictive: pd.Series | None = None

    @property
    def all_em_in_hdi(self) -> bool:
        return bool(self.table["em_in_hdi"].all())


def compare_fits(em, idata, X=None, *, X_test=None, threshold: float = 0.8, hdi_prob: float = 0.94,
                 aligned: bool = False, assignments=None) -> FitComparison:
    """Where do the EM point estimate and the posterior agree?

    Posterior components are matched to EM's (Hungarian assignment on means and
    covariances, via :func:`relabel`), then every EM estimate is set beside the
    posterior mean and HDI. A posterior already aligned to ``em`` (``aligned=True``)
    and its ``assignments`` of X are used as they are: nothing is relabelled or
    assigned again.

    .. Over 60 lines only by this docstring: the code is 25 lines of checks and helper calls.

    Parameters
    ----------
    em : GaussianMixtureEM
        A fitted EM model with the same number of components.
    idata : arviz.InferenceData
    X : array-like of shape (n_samples, n_features), optional
        The data both were fitted on; the posterior's training data when None.
    X_test : array-like, optional
        Held-out rows for the log predictive density of both fits.
    threshold : float, default=0.8
        Rows whose most probable component has a smaller posterior probability are
        listed as uncertain.
    hdi_prob : float, default=0.94
    aligned : bool, default=False
        True when ``idata`` is already ``relabel(idata, reference=em)``.
    assignments : xarray.Dataset, optional
        :func:`bayesgmm.assignments` of X under the aligned posterior (needs
        ``aligned=True``); computed here when None.

    Returns
    -------
    FitComparison

    Examples
    --------
    >>> from bayesgmm import GaussianMixtureEM, compare_fits, em_to_idata
    >>> from bayesgmm.datasets import load_faithful
    >>> X = load_faithful().to_numpy()
    >>> em = GaussianMixtureEM(2, random_state=0).fit(X)
    >>> result = compare_fits(em, em_to_idata(em), X)  # a posterior concentrated at EM's estimate
    >>> result.adjusted_rand_index, result.all_em_in_hdi
    (1.0, True)
    """
    check_fitted_em(em)
    check_idata(idata)
    threshold = check_probability(threshold, "threshold")
    hdi_prob = check_probability(hdi_prob, "hdi_prob")
    em_names = _check_pair(em, idata)
    aligned = check_option(aligned, "aligned", (True, False))
    if assignments is not None and not aligned:
        raise ValueError("assignments must come from the posterior aligned to em: pass aligned=True with them "
                         "(relabel(idata, reference=em) first).")
    names = feature_names(idata)
    X = training_points(idata, X)
    if X_test is not None:
        X_test = check_points(X_test, names, name="X_test")
    if not aligned:
        idata = relabel(idata, reference=em)
    if assignments is None:
        assignments = assign_points(idata, X, relabel_draws=False, hdi_prob=hdi_prob)
    elif assignments.sizes.get("obs_id") != X.shape[0]:
        raise ValueError(f"assignments cover {assignments.sizes.get('obs_id')} points but X has {X.shape[0]}.")
    em_labels, em_prob, uncertain = _label_agreement(em, em_names, X, assignments, threshold)
    return FitComparison(
        table=_parameter_table(em, idata.posterior, hdi_prob),
        adjusted_rand_index=float(adjusted_rand_score(em_labels, assignments["most_probable"].values)),
        uncertain=uncertain,
        log_predictive=None if X_test is None else _log_predictive(em, em_names, idata, X_test),
    )


def _check_pair(em, idata) -> list[str]:
    """Refuse an EM fit and a posterior that cannot be compared; EM's feature names (may be empty)."""
    K, D = em.means_.shape
    if idata.posterior.sizes["component"] != K:
        raise ValueError(f"em has {K} components but the posterior has {idata.posterior.sizes['component']}.")
    if idata.posterior.sizes["feature"] != D:
        raise ValueError(f"em has {D} features but the posterior has {idata.posterior.sizes['feature']}.")
    names = feature_names(idata)
    em_names = [str(n) for n in getattr(em, "feature_names_in_", [])]
    placeholder = names == [f"x{j}" for j in range(D)]  # a posterior fitted on an unnamed array
    if em_names and all(isinstance(n, str) for n in names) and not placeholder and em_names != names:
        raise ValueError(f"em was fitted on features {em_names} but the posterior has {names}: their parameters "
                         "cannot be compared one to one. Fit both on the same columns in the same order.")
    return em_names


def _within(value: float, low: float, high: float) -> bool:
    """low <= value <= high, up to rounding: the posterior's sds and correlations come from
    Cholesky factors, EM's from covariances, so a posterior concentrated at EM's estimate
    (an HDI of width 0) can differ from it in the last digits."""
    slack = 1e-9 * max(abs(low), abs(high), np.finfo(float).tiny)
    return bool(low - slack <= value <= high + slack)


def _parameter_table(em, post, hdi_prob: float) -> pd.DataFrame:
    """One row per component and parameter: EM's estimate beside the posterior mean and HDI."""
    K, D = em.means_.shape
    names = [str(f) for f in post.feature.values]
    em_cov = em.full_covariances_
    em_sd = np.sqrt(np.diagonal(em_cov, axis1=1, axis2=2))
    em_corr = em_cov / (em_sd[:, :, None] * em_sd[:, None, :])
    has_corr = "corr" in post
    variables = ["weights", "means", "stds"] + (["corr"] if has_corr else [])
    hdi = az.hdi(post[variables], hdi_prob=hdi_prob)
    mean = post[variables].mean(("chain", "draw"))
    rows = []

    def add(k, parameter, feature, em_value, var, *index):
        low, high = (float(b) for b in hdi[var][(k, *index)].values)
        rows.append({"component": k, "parameter": parameter, "feature": feature, "em": float(em_value),
                     "posterior_mean": float(mean[var][(k, *index)]), "hdi_lower": low, "hdi_upper": high,
                     "em_in_hdi": _within(em_value, low, high)})

    for k in range(K):
        add(k, "weight", "", em.weights_[k], "weights")
        for j, f in enumerate(names):
            add(k, "mean", f, em.means_[k, j], "means", j)
            add(k, "sd", f, em_sd[k, j], "stds", j)
        for i, j in zip(*np.triu_indices(D, 1)) if has_corr else ():
            add(k, "corr", f"{names[i]}|{names[j]}", em_corr[k, i, j], "corr", i, j)
    return pd.DataFrame(rows)


def _em_frame(X, em_names: list[str]):
    """X as em was fitted (named columns when it had names: no scikit-learn name warning)."""
    return pd.DataFrame(X, columns=em_names) if em_names else X


def _label_agreement(em, em_names, X, assignments, threshold: float):
    """EM's labels and probabilities, and the rows where EM and the posterior disagree or are unsure."""
    em_labels = em.predict(_em_frame(X, em_names))
    em_prob = em.predict_proba(_em_frame(X, em_names)).max(axis=1)
    post_labels = assignments["most_probable"].values
    post_prob = assignments["max_probability"].values
    differ = em_labels != post_labels
    flagged = differ | (post_prob < threshold)
    uncertain = pd.DataFrame({
        "obs_id": np.flatnonzero(flagged),
        "em_label": em_labels[flagged],
        "em_probability": em_prob[flagged],
        "posterior_label": post_labels[flagged],
        "posterior_probability": post_prob[flagged],
        "labels_differ": differ[flagged],
    })
    return em_labels, em_prob, uncertain


def _log_predictive(em, em_names, aligned, X_test) -> pd.Series:
    """Mean log predictive density of the held-out rows under EM and under the posterior."""
    return pd.Series({
        "em": float(em.score_samples(_em_frame(X_test, em_names)).mean()),
        "posterior": float(predictive_density(aligned, X_test)["log_density"].mean()),
    }, name="mean log predictive density")
