"""Comparisons: choosing K (LOO beside BIC/ICL) and EM against the posterior."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
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
    check_seed,
)
from .labels import relabel
from .model import BayesianGMM
from .selection import ModelSelection, select_model
from .summaries import assignments, effective_components, predictive_density

__all__ = ["compare_k", "KComparison", "compare_fits", "FitComparison"]


@dataclass
class KComparison:
    """Result of :func:`compare_k`.

    Examples
    --------
    See :func:`compare_k`; ``result.table`` is a pandas DataFrame.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per K, ranked by LOO: ArviZ's ``az.compare`` columns (``elpd_loo``,
        ``se``, ``elpd_diff``, ``dse``, ``weight``...) beside ``em_bic``, ``em_icl``
        and ``em_bic_rank`` for the same K.
    idatas : dict
        The Bayesian fit of every K, keyed ``"K=<k>"``.
    em : ModelSelection
        The EM fits and their table.
    sparse : xarray.Dataset or None
        :func:`effective_components` of the sparse-Dirichlet fit, when asked for.
    """

    table: pd.DataFrame
    idatas: dict = field(repr=False)
    em: ModelSelection = field(repr=False)
    sparse: object = None

    @property
    def best_loo(self) -> int:
        """K ranked first by LOO."""
        return int(self.table.index[0].split("=")[1])

    @property
    def best_bic(self) -> int:
        """K with the lowest EM BIC."""
        return int(self.table["em_bic"].idxmin().split("=")[1])

    def within_one_se(self) -> list[int]:
        """Every K whose elpd_loo is within one standard error of the best."""
        close = self.table["elpd_diff"] <= self.table["dse"].where(self.table["dse"] > 0, 0)
        return [int(name.split("=")[1]) for name in self.table.index[close]]


def compare_k(
    X,
    n_components: Iterable[int] = range(1, 7),
    *,
    covariance_type: str = "full",
    method: str = "nuts",
    draws: int = 500,
    tune: int = 500,
    chains: int = 2,
    random_seed: int | None = None,
    progressbar: bool = False,
    sparse_alpha: float | None = None,
    threshold: float = 0.05,
) -> KComparison:
    """Fit every K by Bayes and by EM and put LOO beside BIC/ICL.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    n_components : iterable of int, default=range(1, 7)
        Every K to fit: integers between 1 and the number of rows (no floats).
    covariance_type : {"full", "diag"}, default="full"
    method : {"nuts", "advi", "fullrank_advi"}, default="nuts"
    draws, tune, chains, random_seed, progressbar
        Passed to :meth:`BayesianGMM.fit`.
    sparse_alpha : float, optional
        Also fit the largest K with ``Dirichlet(sparse_alpha)`` weights (e.g. 0.05)
        and report how many components keep more than ``threshold`` of the weight.
    threshold : float, default=0.05

    Returns
    -------
    KComparison

    Examples
    --------
    >>> import warnings; warnings.simplefilter("ignore")
    >>> from bayesgmm import compare_k
    >>> from bayesgmm.datasets import load_faithful
    >>> result = compare_k(load_faithful(), [1, 2], method="advi", draws=100, random_seed=0)
    >>> result.best_loo, result.best_bic
    (2, 2)
    """
    if isinstance(X, pd.DataFrame) and all(isinstance(c, str) for c in X.columns):
        X = frame_to_array(X, list(X.columns), "X", "X")  # names any non-numeric column
    X = check_data(X, dtype=(np.float64,))
    ks = _check_ks(n_components, X.shape[0])
    covariance_type = check_option(covariance_type, "covariance_type", ("full", "diag"))
    method = check_option(method, "method", ("nuts", "advi", "fullrank_advi"))
    draws = check_integer_param(draws, "draws", minimum=1)
    tune = check_integer_param(tune, "tune", minimum=0)
    chains = check_integer_param(chains, "chains", minimum=1)
    random_seed = check_seed(random_seed)
    if isinstance(random_seed, (np.random.Generator, np.random.SeedSequence)):
        raise TypeError(f"random_seed must be None or a non-negative integer, got {random_seed!r}.")
    progressbar = check_option(progressbar, "progressbar", (True, False))
    if sparse_alpha is not None:
        sparse_alpha = check_real_param(sparse_alpha, "sparse_alpha", minimum=0.0, strict=True)
    threshold = check_probability(threshold, "threshold")
    em = select_model(X, ks, covariance_types=(covariance_type,), random_state=random_seed)
    idatas = {}
    for k in ks:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            idatas[f"K={k}"] = BayesianGMM(k, covariance_type=covariance_type).fit(
                X, method=method, draws=draws, tune=tune, chains=chains, random_seed=random_seed,
                progressbar=progressbar, log_likelihood=True,
            )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ArviZ's Pareto-k notes stay in the 'warning' column
        table = az.compare(idatas, ic="loo")
    em_table = em.table.set_index("n_components")
    table["n_components"] = [int(name.split("=")[1]) for name in table.index]
    table["em_bic"] = table["n_components"].map(em_table["bic"])
    table["em_icl"] = table["n_components"].map(em_table["icl"])
    table["em_bic_rank"] = table["em_bic"].rank(method="min").astype(int)
    sparse = None
    if sparse_alpha is not None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            sparse_fit = BayesianGMM(max(ks), covariance_type=covariance_type,
                                     priors={"alpha": sparse_alpha}).fit(
                X, method=method, draws=draws, tune=tune, chains=chains, random_seed=random_seed,
                progressbar=progressbar, init="em")
        sparse = effective_components(sparse_fit, threshold=threshold)
        idatas["sparse"] = sparse_fit
    return KComparison(table=table, idatas=idatas, em=em, sparse=sparse)


def _check_ks(n_components, n_samples: int) -> list[int]:
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


def compare_fits(em, idata, X, *, X_test=None, threshold: float = 0.8, hdi_prob: float = 0.94) -> FitComparison:
    """Where do the EM point estimate and the posterior agree?

    Posterior components are matched to EM's (Hungarian assignment on means and
    covariances, via :func:`relabel`), then every EM estimate is set beside the
    posterior mean and HDI.

    Parameters
    ----------
    em : GaussianMixtureEM
        A fitted EM model with the same number of components.
    idata : arviz.InferenceData
    X : array-like of shape (n_samples, n_features)
        The data both were fitted on.
    X_test : array-like, optional
        Held-out rows for the log predictive density of both fits.
    threshold : float, default=0.8
        Rows whose most probable component has a smaller posterior probability are
        listed as uncertain.
    hdi_prob : float, default=0.94

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
    X = check_points(X, names, name="X")
    if X_test is not None:
        X_test = check_points(X_test, names, name="X_test")

    aligned = relabel(idata, reference=em)
    post = aligned.posterior
    names = [str(f) for f in post.feature.values]
    em_cov = em.full_covariances_
    em_sd = np.sqrt(np.diagonal(em_cov, axis1=1, axis2=2))
    em_corr = em_cov / (em_sd[:, :, None] * em_sd[:, None, :])
    variables = ["weights", "means", "stds"] + (["corr"] if "corr" in post else [])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hdi = az.hdi(post[variables], hdi_prob=hdi_prob)
    mean = post[variables].mean(("chain", "draw"))

    rows = []

    def add(k, parameter, feature, em_value, pm, bounds):
        low, high = (float(b) for b in bounds)
        rows.append({"component": k, "parameter": parameter, "feature": feature, "em": float(em_value),
                     "posterior_mean": float(pm), "hdi_lower": low, "hdi_upper": high,
                     "em_in_hdi": bool(low <= em_value <= high)})

    for k in range(K):
        add(k, "weight", "", em.weights_[k], mean["weights"][k], hdi["weights"][k].values)
        for j, f in enumerate(names):
            add(k, "mean", f, em.means_[k, j], mean["means"][k, j], hdi["means"][k, j].values)
            add(k, "sd", f, em_sd[k, j], mean["stds"][k, j], hdi["stds"][k, j].values)
        if "corr" in post:
            for i in range(D):
                for j in range(i + 1, D):
                    add(k, "corr", f"{names[i]}|{names[j]}", em_corr[k, i, j], mean["corr"][k, i, j],
                        hdi["corr"][k, i, j].values)
    table = pd.DataFrame(rows)

    result = assignments(aligned, X, relabel_draws=False, hdi_prob=hdi_prob)
    em_X = pd.DataFrame(X, columns=em_names) if em_names else X  # as em was fitted: no sklearn name warning
    em_labels = em.predict(em_X)
    em_prob = em.predict_proba(em_X).max(axis=1)
    post_labels = result["most_probable"].values
    post_prob = result["max_probability"].values
    flagged = (em_labels != post_labels) | (post_prob < threshold)
    uncertain = pd.DataFrame({
        "obs_id": np.flatnonzero(flagged),
        "em_label": em_labels[flagged],
        "em_probability": em_prob[flagged],
        "posterior_label": post_labels[flagged],
        "posterior_probability": post_prob[flagged],
        "labels_differ": (em_labels != post_labels)[flagged],
    })
    log_predictive = None
    if X_test is not None:
        log_predictive = pd.Series({
            "em": float(em.score_samples(pd.DataFrame(X_test, columns=em_names) if em_names else X_test).mean()),
            "posterior": float(predictive_density(aligned, X_test)["log_density"].mean()),
        }, name="mean log predictive density")
    return FitComparison(
        table=table,
        adjusted_rand_index=float(adjusted_rand_score(em_labels, post_labels)),
        uncertain=uncertain,
        log_predictive=log_predictive,
    )
