"""Simulation-based calibration (SBC) of :class:`~bayesgmm.BayesianGMM`.

SBC (Talts, Betancourt, Simpson, Vehtari & Gelman, 2018) checks a fitting method
against the model it claims to fit. Repeat: draw parameters ``theta`` from the
prior, data ``X`` from ``theta``, fit ``X`` and take ``L`` posterior draws. For any
scalar ``f``, the rank of ``f(theta)`` among the ``L`` draws ``f(theta_s)`` is
uniform on ``0..L`` exactly when the posterior is right; a miscalibrated fit
(too narrow, too wide, biased, stuck) shows as a non-uniform rank histogram.

The prior must be generative, so every replication uses
``priors={"location": 0.0, "scale": 1.0}`` over the package's other default priors
(any other prior can be passed through ``SBCSetting.priors``). The mixture's labels
are not identified, so only label-invariant quantities are ranked (no relabelling
is needed): the sorted weights, the mean of the component with the smallest mean
along feature 0, the mixture's overall mean and variance along feature 0, and the
mixture's log-density at three fixed held-out points.

Ranks count the draws strictly below the true value plus a uniformly random
share of the ties; the normalised rank ``u = (rank + V) / (L + 1)``, ``V ~ U(0, 1)``,
is then exactly U(0, 1) under calibration, whatever ``L``, so both a chi-square
test on binned ``u`` and a Kolmogorov-Smirnov test apply. NUTS draws are thinned
(``thin``) so that the ``L`` draws ranked are close to independent; autocorrelated
draws make even a correct sampler's ranks non-uniform. ADVI draws from its
approximation are independent.

Replications run in parallel processes (joblib's loky backend, each fit
single-threaded) and are written to a JSON file as they finish, so a partial run
is usable (and ``resume=True`` continues it). ``benchmarks/sbc.py`` is the
command-line front end.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
import warnings
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import numpy as np

from ._validation import check_integer_param, check_option, check_real_param, renamed_argument

__all__ = [
    "HELD_OUT_POINTS",
    "SBCSetting",
    "estimate_runtime",
    "format_sbc_table",
    "load_sbc_results",
    "mixture_quantities",
    "normalised_ranks",
    "plot_rank_histograms",
    "reliable_advi_fits",
    "run_sbc",
    "sbc_replication",
    "sbc_settings",
    "sbc_table",
    "timing_table",
    "uniformity_tests",
]

_METHODS = ("nuts", "advi")
_COVARIANCE_TYPES = ("full", "diag")
_INITS = ("em", "em_dispersed")
_SBC_SAMPLERS = ("pymc", "nutpie")
#: ``draws="auto"``: the evenly spaced draws of each chain that are ranked. The run
#: stops with a bulk ESS of at least 400 over its chains, so 50 per chain (200 over
#: four) are close to independent.
AUTO_RANK_DRAWS = 50
_FORMAT_VERSION = 1

#: Fixed held-out points, on the prior's (standardised) scale, at which the mixture's
#: log-density is ranked; rows for 1 and 2 features.
HELD_OUT_POINTS = {
    1: np.array([[-1.5], [0.0], [1.5]]),
    2: np.array([[-1.5, 1.0], [0.0, 0.0], [1.5, -1.0]]),
}
_POINT_NAMES = ("lpd_a", "lpd_b", "lpd_c")


# ----------------------------------------------------------------------------- settings
@dataclass(frozen=True)
class SBCSetting:
    """One SBC setting: a model, a data size and how it is fitted.

    Parameters
    ----------
    method : {"nuts", "advi"}
    covariance_type : {"full", "diag"}
    n_components : int
        K, 1 or more (the harness is meant for 2 and 3).
    n_features : int
        D, 1 or 2 (the held-out points are defined for those).
    n_samples : int, default=50
        Rows of each simulated dataset.
    draws : int or "auto", default=200
        NUTS: draws per chain; ADVI: draws from the fitted approximation. NUTS
        with "auto" (nutpie: sampling until the diagnostics pass, as
        ``BayesianGMM.fit`` does by default) ranks :data:`AUTO_RANK_DRAWS` evenly
        spaced draws of each chain, whatever their number (``thin`` is unused).
    tune : int, default=200
        NUTS warm-up per chain (ignored by ADVI).
    chains : int, default=2
        NUTS chains (run one after the other in the fitting process).
    thin : int, default=4
        Keep every ``thin``-th NUTS draw of each chain for the ranks (ADVI: 1).
    priors : dict, optional
        Priors other than the defaults; ``location`` and ``scale`` are always 0 and 1.
    init : {"em", "em_dispersed"}, default="em"
        NUTS chains' starts (``BayesianGMM.fit``'s ``init``): the EM optimum, or each
        chain at its own EM optimum (to calibrate that option before it can become a
        default). ADVI takes ``"em"`` only.
    sampler : {"pymc", "nutpie"}, default="pymc"
        NUTS's implementation (``BayesianGMM.fit``'s ``sampler``); "nutpie" needs the
        ``nutpie`` extra and NUTS with ``init="em"``. A setting with another sampler
        than PyMC's is named with it, e.g. ``"nuts-full-K2-D1-nutpie"``.

    Examples
    --------
    >>> from bayesgmm.validation import SBCSetting
    >>> s = SBCSetting("nuts", "diag", 2, 1)
    >>> s.name, s.n_rank_draws
    ('nuts-diag-K2-D1', 100)
    """

    method: str
    covariance_type: str
    n_components: int
    n_features: int
    n_samples: int = 50
    draws: int | str = 200
    tune: int = 200
    chains: int = 2
    thin: int = 4
    priors: Mapping | None = field(default=None)
    init: str = "em"
    sampler: str = "pymc"

    def __post_init__(self):
        object.__setattr__(self, "method", check_option(self.method, "method", _METHODS))
        object.__setattr__(self, "covariance_type",
                           check_option(self.covariance_type, "covariance_type", _COVARIANCE_TYPES))
        object.__setattr__(self, "n_components", check_integer_param(self.n_components, "n_components", minimum=1))
        object.__setattr__(self, "n_features",
                           check_integer_param(self.n_features, "n_features", minimum=1, maximum=2))
        object.__setattr__(self, "n_samples", check_integer_param(self.n_samples, "n_samples", minimum=2))
        for name, minimum in (("draws", 1), ("tune", 0), ("chains", 1), ("thin", 1)):
            if name == "draws" and self.auto_draws:
                if self.method != "nuts":
                    raise ValueError("draws='auto' samples NUTS until its diagnostics pass; ADVI takes a number.")
                continue
            object.__setattr__(self, name, check_integer_param(getattr(self, name), name, minimum=minimum))
        object.__setattr__(self, "init", check_option(self.init, "init", _INITS))
        object.__setattr__(self, "sampler", check_option(self.sampler, "sampler", _SBC_SAMPLERS))
        if self.sampler != "pymc" and (self.method != "nuts" or self.init != "em"):
            raise ValueError(f"sampler={self.sampler!r} samples NUTS chains from one start: it needs "
                             f"method='nuts' and init='em', got method={self.method!r}, init={self.init!r}.")
        if self.method == "advi":
            if self.init != "em":
                raise ValueError(f"init={self.init!r} starts NUTS chains; ADVI settings take init='em'.")
            object.__setattr__(self, "thin", 1)
            object.__setattr__(self, "chains", 1)
        if self.priors is not None:
            from .priors import Priors

            if not isinstance(self.priors, Mapping):
                raise TypeError(f"priors must be a dict or None, got {self.priors!r}.")
            fixed = sorted({"location", "scale"} & set(self.priors))
            if fixed:
                raise ValueError(f"SBC fixes priors {fixed} (location 0, scale 1); leave them out.")
            Priors.from_config(self.priors)  # checks the names and values
            object.__setattr__(self, "priors", dict(self.priors))
        if self.n_rank_draws < 1:
            raise ValueError(f"draws={self.draws} with thin={self.thin} leaves no draw to rank.")

    @property
    def name(self) -> str:
        """``method-covariance-K<k>-D<d>``, e.g. ``"nuts-full-K2-D1"`` (``-nutpie`` appended for that sampler)."""
        name = f"{self.method}-{self.covariance_type}-K{self.n_components}-D{self.n_features}"
        name = name if self.sampler == "pymc" else f"{name}-{self.sampler}"
        return f"{name}-auto" if self.auto_draws else name

    @property
    def auto_draws(self) -> bool:
        """Whether NUTS samples until its diagnostics pass (``draws="auto"``)."""
        return isinstance(self.draws, str) and self.draws == "auto"

    @property
    def n_rank_draws(self) -> int:
        """L: the posterior draws each true value is ranked among."""
        if self.method == "advi":
            return self.draws
        if self.auto_draws:
            return self.chains * AUTO_RANK_DRAWS
        return self.chains * len(range(self.thin - 1, self.draws, self.thin))

    def model(self):
        """The :class:`~bayesgmm.BayesianGMM` this setting simulates from and fits."""
        from .model import BayesianGMM

        priors = {**(self.priors or {}), "location": 0.0, "scale": 1.0}
        return BayesianGMM(self.n_components, covariance_type=self.covariance_type, priors=priors)

    def to_dict(self) -> dict:
        """Plain dict (JSON-serialisable) that :class:`SBCSetting` accepts back."""
        return asdict(self)


def sbc_settings(spec: str | Iterable[str] = "all", **options) -> list[SBCSetting]:
    """Settings by name: ``"all"`` (NUTS and ADVI x full and diag x K=2,3 x D=1,2) or names.

    Parameters
    ----------
    spec : str or iterable of str, default="all"
        ``"all"``, or names like ``"nuts-full-K2-D1"`` (a comma-separated string or
        a list); a part may be ``*`` to take every value, e.g. ``"advi-*-K2-*"``.
    **options
        Other :class:`SBCSetting` fields for every setting (``n_samples``, ``draws``, ...).
        Unknown names are a ``TypeError``.

    Returns
    -------
    list of SBCSetting

    Examples
    --------
    >>> from bayesgmm.validation import sbc_settings
    >>> len(sbc_settings("all")), [s.name for s in sbc_settings("advi-*-K2-D1")]
    (16, ['advi-full-K2-D1', 'advi-diag-K2-D1'])
    """
    known = {f.name for f in fields(SBCSetting)} - {"method", "covariance_type", "n_components", "n_features"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise TypeError(f"Unknown setting option(s) {unknown}; allowed: {sorted(known)}.")
    if isinstance(spec, str):
        names = [part.strip() for part in spec.split(",") if part.strip()]
    else:
        names = [str(part).strip() for part in spec]
    if not names:
        raise ValueError("No SBC setting given; use 'all' or names like 'nuts-full-K2-D1'.")
    grid = [(m, c, k, d) for m in _METHODS for c in _COVARIANCE_TYPES for k in (2, 3) for d in (1, 2)]
    chosen: list[tuple] = []
    for name in names:
        chosen.extend(g for g in _matching_settings(name, grid) if g not in chosen)
    return [SBCSetting(*g, **options) for g in chosen]


def _matching_settings(name: str, grid: list[tuple]) -> list[tuple]:
    """The (method, covariance, K, D) of ``grid`` that a name such as ``"nuts-*-K2-D1"`` or ``"all"`` means."""
    if name == "all":
        return grid
    parts = name.split("-")
    if len(parts) != 4 or not parts[2].startswith(("K", "*")) or not parts[3].startswith(("D", "*")):
        raise ValueError(f"SBC setting {name!r} is not of the form METHOD-COVARIANCE-K<k>-D<d> "
                         "(e.g. 'nuts-full-K2-D1'; '*' for any part) or 'all'.")
    method, cov, k, d = parts
    try:
        k = None if k == "*" else int(k[1:])
        d = None if d == "*" else int(d[1:])
    except ValueError as err:
        raise ValueError(f"SBC setting {name!r}: K and D must be integers ({err}).") from None
    if method != "*":
        check_option(method, "method", _METHODS)
    if cov != "*":
        check_option(cov, "covariance_type", _COVARIANCE_TYPES)
    if not any(p == "*" for p in parts):
        return [(method, cov, k, d)]
    matches = [g for g in grid if method in ("*", g[0]) and cov in ("*", g[1])
               and k in (None, g[2]) and d in (None, g[3])]
    if not matches:
        raise ValueError(f"SBC setting {name!r} matches no setting of the grid.")
    return matches


# ---------------------------------------------------------------------------- quantities
def mixture_quantities(weights, means, covariances, points, chol=None) -> dict[str, np.ndarray]:
    """Label-invariant scalars of mixtures, one value per draw.

    Parameters
    ----------
    weights : array of shape (S, K)
    means : array of shape (S, K, D)
    covariances : array of shape (S, K, D, D)
    points : array of shape (P, D)
        Held-out points for the log-density (P <= 3).
    chol : array of shape (S, K, D, D), optional
        Lower Cholesky factors of ``covariances`` (computed when not given).

    Returns
    -------
    dict of str to ndarray of shape (S,)
        ``"w(1)"``.. ``"w(K)"``: the weights sorted ascending; ``"mu_min[x<j>]"``: the
        mean (feature j) of the component with the smallest mean along feature 0;
        ``"mix_mean"``, ``"mix_var"``: the mixture's mean and variance along
        feature 0; ``"lpd_a"``.. : the mixture's log-density at each point.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm.validation import mixture_quantities
    >>> q = mixture_quantities(np.array([[0.3, 0.7]]), np.array([[[1.0], [-1.0]]]),
    ...                        np.ones((1, 2, 1, 1)), np.zeros((1, 1)))
    >>> [round(float(q[name][0]), 2) for name in ("w(1)", "mu_min[x0]", "mix_mean", "mix_var")]
    [0.3, -1.0, -0.4, 1.84]
    """
    weights = np.asarray(weights, dtype=float)
    means = np.asarray(means, dtype=float)
    covariances = np.asarray(covariances, dtype=float)
    points = np.atleast_2d(np.asarray(points, dtype=float))
    S, K, D = means.shape
    out: dict[str, np.ndarray] = {}
    sorted_w = np.sort(weights, axis=1)
    for k in range(K):
        out[f"w({k + 1})"] = sorted_w[:, k]
    lowest = np.argmin(means[:, :, 0], axis=1)
    for j in range(D):
        out[f"mu_min[x{j}]"] = means[np.arange(S), lowest, j]
    m0 = means[:, :, 0]
    mix_mean = np.sum(weights * m0, axis=1)
    out["mix_mean"] = mix_mean
    out["mix_var"] = np.sum(weights * (covariances[:, :, 0, 0] + m0**2), axis=1) - mix_mean**2
    chol = np.linalg.cholesky(covariances) if chol is None else np.asarray(chol, dtype=float)  # (S, K, D, D)
    log_det = np.log(np.diagonal(chol, axis1=-2, axis2=-1)).sum(axis=-1)  # (S, K)
    with np.errstate(divide="ignore"):
        log_w = np.log(weights)
    for name, x in zip(_POINT_NAMES, points):
        resid = (x[None, None, :] - means)[..., None]  # (S, K, D, 1)
        y = np.linalg.solve(chol, resid)[..., 0]
        log_comp = log_w - log_det - 0.5 * np.sum(y**2, axis=-1) - 0.5 * D * math.log(2 * math.pi)
        top = log_comp.max(axis=1, keepdims=True)
        out[name] = (top + np.log(np.exp(log_comp - top).sum(axis=1, keepdims=True)))[:, 0]
    return out


def normalised_ranks(truth: float, draws, rng: np.random.Generator) -> tuple[int, float]:
    """Rank of ``truth`` among ``draws`` (ties split at random) and its normalised value.

    Parameters
    ----------
    truth : float
    draws : array of shape (L,)
    rng : numpy.random.Generator

    Returns
    -------
    rank : int
        Draws below ``truth`` plus a uniformly random number (0..ties) of the draws equal to it.
    u : float
        ``(rank + V) / (L + 1)`` with ``V ~ U(0, 1)``: exactly U(0, 1) when the rank is
        uniform on 0..L.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm.validation import normalised_ranks
    >>> rank, u = normalised_ranks(0.5, np.array([0.1, 0.2, 0.9]), np.random.default_rng(0))
    >>> rank, 0.5 <= u < 0.75
    (2, True)
    """
    draws = np.asarray(draws, dtype=float)
    below = int(np.sum(draws < truth))
    ties = int(np.sum(draws == truth))
    rank = below + (int(rng.integers(0, ties + 1)) if ties else 0)
    return rank, (rank + float(rng.uniform())) / (draws.size + 1)


# --------------------------------------------------------------------------- replication
#: Settings this process has fitted before (the first fit of each pays for compiling).
_FITTED_HERE: set = set()


def _data_seed(setting: SBCSetting, rep: int, random_seed: int) -> np.random.SeedSequence:
    # The same datasets for NUTS and ADVI (paired comparisons); independent of the list order.
    key = f"{setting.covariance_type}-K{setting.n_components}-D{setting.n_features}-N{setting.n_samples}"
    return np.random.SeedSequence([random_seed, zlib.crc32(key.encode()), rep])


def sbc_replication(setting: SBCSetting, rep: int, random_seed: int = 0, *, seed: int | None = None) -> dict:
    """One replication: draw from the prior, fit, rank; returns a JSON-serialisable record.

    Parameters
    ----------
    setting : SBCSetting
    rep : int
        Replication number (with ``random_seed`` and the setting, it fixes every random draw).
    random_seed : int, default=0
    seed : int, optional
        Deprecated name of ``random_seed``.

    Returns
    -------
    dict
        ``setting`` (name), ``rep``, ``seed`` (the ``random_seed``); ``ranks`` and ``u``
        (per quantity, see :func:`mixture_quantities`), ``n_rank_draws``;
        ``divergences`` (NUTS), ``rhat_max`` and ``ess_bulk_min`` over the ranked
        quantities (NUTS, all draws), ``converged`` and ``n_iterations`` (ADVI);
        ``min_true_count`` (fewest rows a true component generated); ``fit_wall_s``,
        ``fit_cpu_s``, ``first_in_process``; ``error`` (None, or why the fit failed).

    Examples
    --------
    >>> from bayesgmm.validation import SBCSetting, sbc_replication
    >>> record = sbc_replication(SBCSetting("advi", "diag", 2, 1, draws=20), rep=0)  # doctest: +SKIP
    >>> sorted(record["u"])  # doctest: +SKIP
    ['lpd_a', 'lpd_b', 'lpd_c', 'mix_mean', 'mix_var', 'mu_min[x0]', 'w(1)', 'w(2)']
    """
    random_seed = renamed_argument(random_seed, seed, new="random_seed", old="seed", default=0)
    rep = check_integer_param(rep, "rep", minimum=0)
    random_seed = check_integer_param(random_seed, "random_seed", minimum=0)
    import pymc  # noqa: F401 - importing PyMC sets its logger's level, so quieten it after

    for name in ("pymc", "pytensor"):
        logging.getLogger(name).setLevel(logging.ERROR)
    data_seed = int(_data_seed(setting, rep, random_seed).generate_state(1)[0])
    fit_seed, rank_seed = (int(v) for v in np.random.SeedSequence(
        [random_seed, zlib.crc32(setting.name.encode()), setting.n_samples, rep]).generate_state(2))
    gmm = setting.model()
    truth = gmm.sample_prior_predictive(setting.n_samples, n_features=setting.n_features, random_seed=data_seed)
    counts = np.bincount(truth["labels"], minlength=setting.n_components)
    process_key = json.dumps(setting.to_dict(), sort_keys=True)
    record = {
        "setting": setting.name, "rep": rep, "seed": random_seed, "n_samples": setting.n_samples,
        "min_true_count": int(counts.min()), "n_rank_draws": setting.n_rank_draws,
        "first_in_process": process_key not in _FITTED_HERE, "pid": os.getpid(), "error": None,
    }
    _FITTED_HERE.add(process_key)
    idata = _fit_replication(gmm, setting, truth["X"], fit_seed, record)
    if idata is not None:
        _rank_replication(idata, setting, truth, rank_seed, record)
    return record


def _fit_replication(gmm, setting: SBCSetting, X, fit_seed: int, record: dict):
    """The replication's fit (None when it failed: the error goes in ``record``), with its timings."""
    from sklearn.exceptions import ConvergenceWarning
    from threadpoolctl import threadpool_limits

    from .diagnostics import PosteriorDiagnosticsWarning
    from .em import DegenerateFitWarning

    wall, cpu = time.perf_counter(), time.process_time()
    try:
        with threadpool_limits(1), warnings.catch_warnings():
            # Diagnostics are recorded per replication (divergences, R-hat, convergence), not warned about.
            for category in (PosteriorDiagnosticsWarning, DegenerateFitWarning, ConvergenceWarning):
                warnings.filterwarnings("ignore", category=category)  # the EM start's, for the sampler's start
            warnings.filterwarnings("ignore", "(overflow|invalid value|divide by zero) encountered", RuntimeWarning)
            if setting.method == "nuts":
                idata = gmm.fit(X, method="nuts", draws=setting.draws, tune=setting.tune, chains=setting.chains,
                                cores=1, random_seed=fit_seed, progressbar=False, log_likelihood=False,
                                init=setting.init, sampler=setting.sampler)
            else:
                idata = gmm.fit(X, method="advi", draws=setting.draws, random_seed=fit_seed, progressbar=False,
                                log_likelihood=False)
    except Exception as err:  # a failed fit is a result of the calibration run, not a crash of it
        record.update(fit_wall_s=time.perf_counter() - wall, fit_cpu_s=time.process_time() - cpu,
                      error=f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}")
        return None
    record.update(fit_wall_s=round(time.perf_counter() - wall, 4), fit_cpu_s=round(time.process_time() - cpu, 4))
    return idata


def _rank_replication(idata, setting: SBCSetting, truth: dict, rank_seed: int, record: dict) -> None:
    """Ranks of the true quantities among the (thinned) draws, and the fit's diagnostics, into ``record``."""
    points = HELD_OUT_POINTS[setting.n_features]
    true_q = mixture_quantities(truth["weights"][None], truth["means"][None], truth["covariances"][None], points)
    post = idata.posterior
    n_chain, n_draw = post.sizes["chain"], post.sizes["draw"]
    K, D = setting.n_components, setting.n_features
    try:
        q = mixture_quantities(post["weights"].values.reshape(-1, K), post["means"].values.reshape(-1, K, D),
                               post["cov"].values.reshape(-1, K, D, D), points,
                               chol=post["chol"].values.reshape(-1, K, D, D))
    except (ValueError, FloatingPointError, np.linalg.LinAlgError) as err:
        record["error"] = f"posterior quantities: {type(err).__name__}: {err}"
        return
    if setting.auto_draws:  # as many draws as the run needed: rank evenly spaced ones
        keep = np.arange(1, AUTO_RANK_DRAWS + 1) * n_draw // AUTO_RANK_DRAWS - 1
    else:
        keep = np.arange(setting.thin - 1, n_draw, setting.thin)
    rng = np.random.default_rng(rank_seed)
    ranks, us = {}, {}
    for name, values in q.items():
        values = values.reshape(n_chain, n_draw)
        ranks[name], us[name] = normalised_ranks(float(true_q[name][0]), values[:, keep].ravel(), rng)
        us[name] = round(us[name], 6)
    record.update(ranks=ranks, u=us, n_rank_draws=int(n_chain * keep.size))
    if setting.method == "nuts":
        _nuts_diagnostics(idata, q, n_chain, n_draw, record)
    else:
        history = idata.get("fit_history")
        if history is not None:
            record["converged"] = bool(history.attrs.get("converged", 0))
            record["n_iterations"] = int(history.attrs.get("n_iterations", 0))
            if "pareto_k" in history.attrs:  # the importance-sampling check behind ADVI's verdict
                record["pareto_k"] = float(history.attrs["pareto_k"])
                record["pareto_k_threshold"] = float(history.attrs["pareto_k_threshold"])


def _nuts_diagnostics(idata, q: dict, n_chain: int, n_draw: int, record: dict) -> None:
    """Divergences, and the worst R-hat and bulk ESS of the ranked quantities, into ``record``."""
    import arviz as az

    stats = idata.sample_stats
    record["divergences"] = int(stats["diverging"].sum()) if "diverging" in stats else 0
    if "first_run_divergences" in idata.attrs:  # fit(retry_on_divergence=True) sampled twice
        record.update(first_run_divergences=int(idata.attrs["first_run_divergences"]),
                      second_run_divergences=int(idata.attrs["second_run_divergences"]),
                      kept_run=str(idata.attrs["kept_run"]))
    if n_chain < 2 or n_draw < 4:
        return
    with warnings.catch_warnings():
        # A quantity constant over the draws has no R-hat (0 / 0): NaN, left out below.
        warnings.filterwarnings("ignore", "invalid value encountered", RuntimeWarning)
        rhat = [float(az.rhat(v.reshape(n_chain, n_draw))) for v in q.values()]
        ess = [float(az.ess(v.reshape(n_chain, n_draw), method="bulk")) for v in q.values()]
    record["rhat_max"] = round(float(np.nanmax(rhat)), 4) if np.isfinite(rhat).any() else None
    record["ess_bulk_min"] = round(float(np.nanmin(ess)), 1) if np.isfinite(ess).any() else None


# ---------------------------------------------------------------------------------- runs
def _write_json(path: Path, payload: dict) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload, indent=None, separators=(",", ":"), default=_json_default))
    os.replace(tmp, path)  # a reader never sees half a file


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def load_sbc_results(path: str | os.PathLike) -> dict:
    """Read a results file written by :func:`run_sbc` (complete or partial).

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    dict
        ``meta`` (the run's settings, seed, timings) and ``records`` (one per replication).

    Examples
    --------
    >>> from bayesgmm.validation import load_sbc_results
    >>> results = load_sbc_results("sbc_results.json")  # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No SBC results at {path}.")
    try:
        payload = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path} is not an SBC results file (invalid JSON: {err}).") from err
    if not isinstance(payload, dict) or "records" not in payload or "meta" not in payload:
        raise ValueError(f"{path} is not an SBC results file (no 'meta' and 'records').")
    return payload


def run_sbc(
    settings: SBCSetting | Sequence[SBCSetting],
    reps: int,
    *,
    n_jobs: int = 1,
    out: str | os.PathLike | None = None,
    random_seed: int = 0,
    resume: bool = False,
    progress: Callable[[dict, int, int], None] | None = None,
    flush_every_s: float = 5.0,
    seed: int | None = None,
) -> dict:
    """Run ``reps`` replications of every setting, in parallel, saving as they finish.

    (Over 60 lines only because this docstring documents every argument; the code is 32 lines.)

    Parameters
    ----------
    settings : SBCSetting or sequence of SBCSetting
    reps : int
        Replications per setting (>= 1; at least 100-200 for a meaningful test).
    n_jobs : int, default=1
        Worker processes (joblib's loky backend; -1: every core). Each fit is
        single-threaded; with 1 the fits run in this process.
    out : str or Path, optional
        JSON file written (atomically) every ``flush_every_s`` seconds and at the
        end: ``{"meta": ..., "records": [...]}``. Replications are handed out
        replication by replication across the settings, so a partial file covers
        every setting about equally.
    random_seed : int, default=0
        Fixes every dataset and fit (a replication's draws do not depend on
        ``n_jobs`` or on the other settings). Stored as ``meta["seed"]``.
    resume : bool, default=False
        Keep the records already in ``out`` (run with the same ``random_seed``; a setting in both
        must have the same options) and run only the missing replications. Settings
        in the file but not in ``settings`` are kept, so a run can be split, e.g.
        NUTS and ADVI in two calls writing to one file.
    progress : callable, optional
        Called as ``progress(record, done, total)`` after each replication.
    flush_every_s : float, default=5.0
    seed : int, optional
        Deprecated name of ``random_seed``.

    Returns
    -------
    dict
        As written to ``out``: ``meta`` and ``records`` (see :func:`sbc_replication`).

    Examples
    --------
    >>> from bayesgmm.validation import run_sbc, sbc_settings, sbc_table
    >>> results = run_sbc(sbc_settings("nuts-diag-K2-D1"), reps=200, n_jobs=16,
    ...                   out="sbc.json")  # doctest: +SKIP
    >>> sbc_table(results)  # doctest: +SKIP
    """
    random_seed = renamed_argument(random_seed, seed, new="random_seed", old="seed", default=0)
    settings, reps, random_seed, n_jobs, flush_every_s, out = _check_run_args(
        settings, reps, random_seed, n_jobs, flush_every_s, out)
    meta = _run_meta(settings, reps, random_seed, n_jobs)
    records: list[dict] = []
    settings_in_file = settings
    if resume and out is not None and out.is_file():
        records, others = _resumed_records(out, settings, reps, random_seed)
        meta["settings"] = [s.to_dict() for s in others] + meta["settings"]
        settings_in_file = others + settings
    done = {(r["setting"], r["rep"]) for r in records}
    tasks = [(s, rep) for rep in range(reps) for s in settings if (s.name, rep) not in done]
    total = len(tasks) + len(records)
    start = time.perf_counter()

    def save(final: bool = False) -> None:
        if out is None:
            return
        meta["elapsed_s"] = round(time.perf_counter() - start, 2)
        meta["complete"] = final and len(records) == total
        _write_json(out, {"meta": meta, "records": records})

    order = [s.name for s in settings_in_file]
    save()
    try:
        _run_tasks(tasks, random_seed, n_jobs, records, total, progress, save, flush_every_s)
    finally:  # also on Ctrl-C: keep every finished replication (resume=True continues)
        records.sort(key=lambda r: (order.index(r["setting"]), r["rep"]))
        save(final=True)
    meta["elapsed_s"] = round(time.perf_counter() - start, 2)
    meta["complete"] = len(records) == total
    return {"meta": meta, "records": records}


def _run_meta(settings: list, reps: int, random_seed: int, n_jobs: int) -> dict:
    """The results file's ``meta``: the run's settings, seed, versions and machine."""
    import pymc

    from . import __version__

    return {
        "format": _FORMAT_VERSION, "seed": random_seed, "reps": reps, "n_jobs": n_jobs,
        "settings": [s.to_dict() for s in settings],
        "held_out_points": {str(d): p.tolist() for d, p in HELD_OUT_POINTS.items()},
        "versions": {"bayesgmm": __version__, "pymc": pymc.__version__},
        "cpu_count": os.cpu_count(), "started": time.strftime("%Y-%m-%d %H:%M:%S"), "complete": False,
    }


def _check_run_args(settings, reps, random_seed, n_jobs, flush_every_s, out):
    """:func:`run_sbc`'s arguments checked: the settings as a list, the output as a Path (or None)."""
    if isinstance(settings, SBCSetting):
        settings = [settings]
    settings = list(settings)
    if not settings or not all(isinstance(s, SBCSetting) for s in settings):
        raise TypeError("settings must be an SBCSetting or a non-empty sequence of them (see sbc_settings).")
    if len({s.name for s in settings}) != len(settings):
        raise ValueError("settings has two settings with the same name; give each model once.")
    reps = check_integer_param(reps, "reps", minimum=1)
    random_seed = check_integer_param(random_seed, "random_seed", minimum=0)
    if n_jobs == -1:
        n_jobs = os.cpu_count() or 1
    n_jobs = check_integer_param(n_jobs, "n_jobs", minimum=1)
    flush_every_s = check_real_param(flush_every_s, "flush_every_s", minimum=0.0)
    out = None if out is None else Path(out)
    if out is not None and not out.parent.is_dir():
        raise FileNotFoundError(f"Cannot write SBC results to {out}: the directory {out.parent} does not exist.")
    return settings, reps, random_seed, n_jobs, flush_every_s, out


def _resumed_records(out: Path, settings: list, reps: int, random_seed: int) -> tuple[list[dict], list]:
    """The records of ``out`` to keep, and the settings in the file that this run does not include."""
    previous = load_sbc_results(out)
    if previous["meta"].get("seed") != random_seed:
        raise ValueError(f"Cannot resume {out}: it was run with seed {previous['meta'].get('seed')}, "
                         f"not {random_seed}.")
    wanted = {s.name: s.to_dict() for s in settings}
    others = []
    for old in previous["meta"].get("settings", []):
        old = SBCSetting(**old)
        if old.name not in wanted:
            others.append(old)  # another setting run into the same file: kept as it is
        elif wanted[old.name] != old.to_dict():
            raise ValueError(f"Cannot resume {out}: setting {old.name} was run with other options "
                             f"({old.to_dict()} vs {wanted[old.name]}).")
    records = [r for r in previous["records"] if r.get("setting") not in wanted or r.get("rep", reps) < reps]
    return records, others


def _run_tasks(tasks, random_seed: int, n_jobs: int, records: list, total: int, progress, save,
               flush_every_s: float) -> None:
    """Run the replications (here, or in single-threaded loky workers), appending to ``records`` as they finish."""
    from joblib import Parallel, delayed, parallel_config

    last = time.perf_counter()
    # Each worker single-threaded (BLAS and OpenMP); with one job, the fits run here.
    context = (contextlib.nullcontext() if n_jobs == 1
               else parallel_config(backend="loky", n_jobs=n_jobs, inner_max_num_threads=1))
    with context:
        if n_jobs == 1:
            results = (sbc_replication(s, rep, random_seed) for s, rep in tasks)
        else:
            results = Parallel(return_as="generator_unordered", batch_size=1, pre_dispatch="2*n_jobs")(
                delayed(sbc_replication)(s, rep, random_seed) for s, rep in tasks)
        for record in results:
            records.append(record)
            if progress is not None:
                progress(record, len(records), total)
            if time.perf_counter() - last >= flush_every_s:
                save()
                last = time.perf_counter()


# ---------------------------------------------------------------------------- analysis
def _default_bins(n: int) -> int:
    """At most 10 bins, with at least 5 replications expected in each."""
    return int(max(2, min(10, n // 5)))


def _records(results) -> list[dict]:
    if isinstance(results, Mapping):
        return list(results["records"])
    return list(results)


def _quantity_order(names: Iterable[str]) -> list[str]:
    def key(name: str):
        for i, prefix in enumerate(("w(", "mu_min", "mix_mean", "mix_var", "lpd")):
            if name.startswith(prefix):
                return (i, name)
        return (9, name)

    return sorted(set(names), key=key)


def uniformity_tests(results, *, bins: int | None = None, alpha: float = 0.05):
    """Chi-square and Kolmogorov-Smirnov tests of every setting's and quantity's ranks.

    Parameters
    ----------
    results : dict or list of dict
        From :func:`run_sbc` / :func:`load_sbc_results`, or its records.
    bins : int, optional
        Bins of the normalised ranks for the chi-square test; default: 10, fewer
        when there are under 50 replications (at least 5 expected per bin).
    alpha : float, default=0.05
        Family-wise level; Bonferroni over every p-value in the table.

    Returns
    -------
    pandas.DataFrame
        One row per (setting, quantity): ``n`` (replications ranked), ``bins``,
        ``chi2``, ``p_chi2``, ``ks``, ``p_ks``, ``p_min`` and ``reject`` (``p_min`` below
        ``alpha / n_tests``, n_tests = 2 x rows); ``attrs["threshold"]`` holds that level.

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm.validation import uniformity_tests
    >>> u = np.random.default_rng(0).uniform(size=200)
    >>> records = [{"setting": "s", "u": {"w(1)": float(v)}, "error": None} for v in u]
    >>> bool(uniformity_tests(records)["reject"].iloc[0])
    False
    """
    import pandas as pd
    from scipy import stats

    alpha = check_real_param(alpha, "alpha", minimum=0.0, strict=True)
    if bins is not None:
        bins = check_integer_param(bins, "bins", minimum=2)
    records = [r for r in _records(results) if not r.get("error") and r.get("u")]
    rows = []
    order = list(dict.fromkeys(r["setting"] for r in records))
    for setting in order:
        mine = [r for r in records if r["setting"] == setting]
        for quantity in _quantity_order(q for r in mine for q in r["u"]):
            u = np.array([r["u"][quantity] for r in mine if quantity in r["u"]], dtype=float)
            n = u.size
            b = bins or _default_bins(n)
            counts = np.bincount(np.minimum((u * b).astype(int), b - 1), minlength=b)
            chi2, p_chi2 = stats.chisquare(counts)
            ks = stats.kstest(u, "uniform")
            rows.append({"setting": setting, "quantity": quantity, "n": n, "bins": b,
                         "chi2": float(chi2), "p_chi2": float(p_chi2),
                         "ks": float(ks.statistic), "p_ks": float(ks.pvalue)})
    table = pd.DataFrame(rows, columns=["setting", "quantity", "n", "bins", "chi2", "p_chi2", "ks", "p_ks"])
    n_tests = 2 * len(table)
    threshold = alpha / n_tests if n_tests else alpha
    table["p_min"] = table[["p_chi2", "p_ks"]].min(axis=1)
    table["reject"] = table["p_min"] < threshold
    table.attrs["threshold"] = threshold
    table.attrs["alpha"] = alpha
    table.attrs["n_tests"] = n_tests
    return table


def sbc_table(results, *, bins: int | None = None, alpha: float = 0.05):
    """One row per setting: replications, failures, sampler diagnostics, p-values, verdict.

    Parameters
    ----------
    results : dict or list of dict
        From :func:`run_sbc` / :func:`load_sbc_results`, or its records.
    bins : int, optional
        See :func:`uniformity_tests`.
    alpha : float, default=0.05
        Family-wise level, Bonferroni-corrected across every quantity, test and setting.

    Returns
    -------
    pandas.DataFrame
        ``setting``, ``reps`` (ranked), ``failed`` (fits that raised),
        ``div_fits`` (fraction of NUTS fits with any divergent transition),
        ``rhat_gt_1.01`` (fraction of NUTS fits with R-hat above 1.01 on a ranked
        quantity), ``advi_unconverged`` (fraction of ADVI fits whose loss did not
        plateau), ``advi_khat_fail`` (fraction of ADVI fits whose Pareto k-hat
        fails the importance-sampling check, so that their verdict is
        "unreliable"), ``s_per_fit`` (median wall seconds), one column per quantity with
        its smallest p-value (chi-square or KS), ``min_p`` and ``verdict``
        ("ok" or "MISCALIBRATED: <quantities>", at the corrected level in
        ``attrs["threshold"]``).

    Examples
    --------
    >>> from bayesgmm.validation import load_sbc_results, sbc_table
    >>> sbc_table(load_sbc_results("sbc_results.json"))  # doctest: +SKIP
    """
    import pandas as pd

    tests = uniformity_tests(results, bins=bins, alpha=alpha)
    all_records = _records(results)
    rows = []
    settings = list(dict.fromkeys(r["setting"] for r in all_records))
    quantities = _quantity_order(tests["quantity"]) if len(tests) else []
    for setting in settings:
        mine = [r for r in all_records if r["setting"] == setting]
        ok = [r for r in mine if not r.get("error")]
        row = {"setting": setting, "reps": len([r for r in ok if r.get("u")]), "failed": len(mine) - len(ok)}
        nuts = [r for r in ok if "divergences" in r]
        row["div_fits"] = float(np.mean([r["divergences"] > 0 for r in nuts])) if nuts else np.nan
        rhats = [r["rhat_max"] for r in nuts if r.get("rhat_max") is not None]
        row["rhat_gt_1.01"] = float(np.mean(np.asarray(rhats) > 1.01)) if rhats else np.nan
        advi = [r for r in ok if "converged" in r]
        row["advi_unconverged"] = float(np.mean([not r["converged"] for r in advi])) if advi else np.nan
        checked = [r for r in advi if not np.isnan(r.get("pareto_k", np.nan))]  # inf fails the check
        row["advi_khat_fail"] = (float(np.mean([r["pareto_k"] > r["pareto_k_threshold"] for r in checked]))
                                 if checked else np.nan)
        times = [r["fit_wall_s"] for r in mine if r.get("fit_wall_s") is not None]
        row["s_per_fit"] = float(np.median(times)) if times else np.nan
        mine_tests = tests[tests["setting"] == setting]
        for quantity in quantities:
            hit = mine_tests[mine_tests["quantity"] == quantity]
            row[quantity] = float(hit["p_min"].iloc[0]) if len(hit) else np.nan
        row["min_p"] = float(mine_tests["p_min"].min()) if len(mine_tests) else np.nan
        rejected = mine_tests.loc[mine_tests["reject"], "quantity"].tolist()
        row["verdict"] = ("MISCALIBRATED: " + ", ".join(rejected)) if rejected else (
            "ok" if len(mine_tests) else "no ranks")
        rows.append(row)
    table = pd.DataFrame(rows)
    table.attrs.update(tests.attrs)
    return table


def format_sbc_table(results, *, bins: int | None = None, alpha: float = 0.05) -> str:
    """:func:`sbc_table` as fixed-width text (what ``benchmarks/sbc.py`` prints).

    Parameters
    ----------
    results : dict or list of dict
    bins : int, optional
    alpha : float, default=0.05

    Returns
    -------
    str

    Examples
    --------
    >>> from bayesgmm.validation import format_sbc_table, load_sbc_results
    >>> print(format_sbc_table(load_sbc_results("sbc_results.json")))  # doctest: +SKIP
    """
    table = sbc_table(results, bins=bins, alpha=alpha)
    if table.empty:
        return "(no replications)"

    def fmt(value, kind):
        if isinstance(value, float) and np.isnan(value):
            return "-"
        if kind == "p":
            return f"{value:.3f}" if value >= 0.001 else f"{value:.0e}"
        if kind == "frac":
            return f"{100 * value:.0f}%"
        if kind == "s":
            return f"{value:.2f}"
        return str(value)

    kinds = {"reps": "int", "failed": "int", "div_fits": "frac", "rhat_gt_1.01": "frac",
             "advi_unconverged": "frac", "advi_khat_fail": "frac", "s_per_fit": "s", "min_p": "p", "verdict": "str",
             "setting": "str"}
    headers = {"div_fits": "div", "rhat_gt_1.01": "rhat>1.01", "advi_unconverged": "unconv",
               "advi_khat_fail": "k-hat>", "s_per_fit": "s/fit"}
    columns = list(table.columns)
    cells = [[headers.get(c, c) for c in columns]]
    for _, row in table.iterrows():
        cells.append([fmt(row[c], kinds.get(c, "p")) for c in columns])
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    lines = ["  ".join(c.ljust(w) if i in (0, len(columns) - 1) else c.rjust(w)
                       for i, (c, w) in enumerate(zip(r, widths))) for r in cells]
    lines.insert(1, "-" * len(lines[0]))
    attrs = table.attrs
    lines.append("")
    lines.append(f"p-values: smallest of chi-square ({'auto' if bins is None else bins} bins) and KS per quantity; "
                 f"Bonferroni over {attrs.get('n_tests', 0)} tests: reject below "
                 f"{attrs.get('threshold', alpha):.2g} (family-wise {alpha:g}).")
    lines.append("div: fits with >= 1 divergent transition; rhat>1.01: fits with R-hat > 1.01 on a ranked quantity; "
                 "unconv: ADVI fits whose loss did not plateau; k-hat>: ADVI fits whose Pareto k-hat fails the "
                 "check (verdict unreliable); s/fit: median wall seconds.")
    return "\n".join(lines)


def reliable_advi_fits(results) -> list[dict]:
    """The ADVI replications whose verdict is reliable, each setting renamed ``<setting> reliable``.

    Reliable: the loss reached its plateau and the Pareto k-hat passed the
    importance-sampling check. Selecting replications by a function of the data
    (and the fit's own randomness) leaves SBC valid: given the data, the true
    parameters are still a posterior draw, so the kept fits' ranks are uniform
    exactly when the approximation is calibrated where it says it is reliable.
    Their table (:func:`sbc_table`) checks whether that verdict can be trusted.

    Parameters
    ----------
    results : dict or list of dict

    Returns
    -------
    list of dict
    """
    return [{**r, "setting": f"{r['setting']} reliable"} for r in _records(results)
            if r.get("converged") and r.get("pareto_k", np.nan) <= r.get("pareto_k_threshold", np.nan)]


def timing_table(results):
    """Seconds per fit by setting, excluding each process's first fit of a setting (compilation).

    Parameters
    ----------
    results : dict or list of dict

    Returns
    -------
    pandas.DataFrame
        ``setting``, ``fits`` (timed, warm), ``wall_mean``, ``wall_median``,
        ``cpu_mean``, ``cpu_max``, ``first_fits`` and ``first_extra_cpu`` (mean CPU
        seconds a process's first fit of the setting took beyond a warm fit).

    Examples
    --------
    >>> from bayesgmm.validation import load_sbc_results, timing_table
    >>> timing_table(load_sbc_results("sbc_results.json"))  # doctest: +SKIP
    """
    import pandas as pd

    records = [r for r in _records(results) if r.get("fit_cpu_s") is not None]
    rows = []
    for setting in dict.fromkeys(r["setting"] for r in records):
        mine = [r for r in records if r["setting"] == setting]
        warm = [r for r in mine if not r.get("first_in_process")] or mine
        first = [r for r in mine if r.get("first_in_process")]
        cpu = np.array([r["fit_cpu_s"] for r in warm])
        wall = np.array([r["fit_wall_s"] for r in warm])
        rows.append({
            "setting": setting, "fits": len(warm), "wall_mean": wall.mean(), "wall_median": float(np.median(wall)),
            "cpu_mean": cpu.mean(), "cpu_max": cpu.max(), "first_fits": len(first),
            "first_extra_cpu": (float(np.mean([r["fit_cpu_s"] for r in first])) - cpu.mean()) if first else 0.0,
        })
    return pd.DataFrame(rows)


def estimate_runtime(results, *, reps: int = 200, n_jobs: int = 16, settings: Iterable[str] | None = None) -> dict:
    """Wall time of a run of ``reps`` replications on ``n_jobs`` cores, from measured fits.

    Uses the mean CPU seconds of a warm fit per setting (a fit is single-threaded,
    so on an otherwise idle machine its wall time is its CPU time) and adds, per
    worker, every setting's first-fit (compilation) cost.

    Parameters
    ----------
    results : dict or list of dict
        A (small) measured run, e.g. ``benchmarks/sbc.py --quick``.
    reps : int, default=200
    n_jobs : int, default=16
    settings : iterable of str, optional
        Setting names to include; default: those measured.

    Returns
    -------
    dict
        ``fits``, ``cpu_s`` (total CPU seconds of the fits), ``compile_s`` (per
        worker) and ``wall_s`` (estimate: ``cpu_s / n_jobs + compile_s``).

    Examples
    --------
    >>> from bayesgmm.validation import estimate_runtime, load_sbc_results
    >>> estimate_runtime(load_sbc_results("sbc_quick.json"))["wall_s"]  # doctest: +SKIP
    """
    reps = check_integer_param(reps, "reps", minimum=1)
    n_jobs = check_integer_param(n_jobs, "n_jobs", minimum=1)
    timing = timing_table(results)
    if settings is not None:
        timing = timing[timing["setting"].isin(list(settings))]
    cpu = float((timing["cpu_mean"] * reps).sum())
    compile_s = float(timing["first_extra_cpu"].clip(lower=0).sum())
    return {"fits": int(reps * len(timing)), "cpu_s": cpu, "compile_s": compile_s,
            "wall_s": cpu / n_jobs + compile_s}


# ------------------------------------------------------------------------------- plots
def plot_rank_histograms(results, settings: str | Sequence[str] | None = None, *, bins: int | None = None,
                         band: float = 0.99, axes=None):
    """Histograms of the normalised ranks, one row per setting and one column per quantity.

    (Over 60 lines only because this docstring documents every argument; the code is 31 lines.)

    Parameters
    ----------
    results : dict or list of dict
    settings : str or sequence of str, optional
        Which settings to draw (default: all in ``results``).
    bins : int, optional
        Default as :func:`uniformity_tests`.
    band : float, default=0.99
        Shade the central ``band`` interval of a bin's count under uniformity
        (Binomial(n, 1/bins)): bars outside it in many bins point to miscalibration.
    axes : 2-D array of matplotlib Axes, optional
        Of shape (settings, quantities); created when None.

    Returns
    -------
    fig : matplotlib.figure.Figure
    axes : ndarray of matplotlib Axes, shape (settings, quantities)

    Examples
    --------
    >>> import numpy as np
    >>> from bayesgmm.validation import plot_rank_histograms
    >>> u = np.random.default_rng(0).uniform(size=(100, 2))
    >>> records = [{"setting": "s", "u": {"w(1)": a, "mix_mean": b}, "error": None} for a, b in u]
    >>> fig, axes = plot_rank_histograms(records)
    >>> axes.shape
    (1, 2)
    """
    import matplotlib.pyplot as plt

    band = check_real_param(band, "band", minimum=0.0, strict=True)
    if band >= 1:
        raise ValueError(f"band must be in (0, 1), got {band!r}.")
    records = [r for r in _records(results) if not r.get("error") and r.get("u")]
    chosen = _chosen_settings(records, settings)
    quantities = _quantity_order(q for r in records if r["setting"] in chosen for q in r["u"])
    if axes is None:
        fig, axes = plt.subplots(len(chosen), len(quantities), figsize=(1.9 * len(quantities), 1.6 * len(chosen)),
                                 squeeze=False, sharex=True)
    else:
        axes = np.asarray(axes, dtype=object).reshape(len(chosen), len(quantities))
        fig = axes[0, 0].figure
    for i, setting in enumerate(chosen):
        mine = [r for r in records if r["setting"] == setting]
        for j, quantity in enumerate(quantities):
            ax = axes[i, j]
            if i == 0:
                ax.set_title(quantity, fontsize=8)
            u = np.array([r["u"][quantity] for r in mine if quantity in r["u"]], dtype=float)
            if u.size == 0:
                ax.set_axis_off()
                continue
            _rank_histogram(ax, u, bins or _default_bins(u.size), band)
            if j == 0:
                ax.set_ylabel(setting, fontsize=7, rotation=0, ha="right", va="center")
            if i == len(chosen) - 1:
                ax.set_xlabel("normalised rank", fontsize=7)
    fig.tight_layout()
    return fig, axes


def _chosen_settings(records: list[dict], settings) -> list[str]:
    """The settings to draw (all with ranked replications when None), checked."""
    available = list(dict.fromkeys(r["setting"] for r in records))
    if settings is None:
        chosen = available
    else:
        chosen = [settings] if isinstance(settings, str) else list(settings)
        missing = [s for s in chosen if s not in available]
        if missing:
            raise ValueError(f"No ranked replications for setting(s) {missing}; available: {available}.")
    if not chosen:
        raise ValueError("No ranked replications to plot.")
    return chosen


def _rank_histogram(ax, u: np.ndarray, bins: int, band: float) -> None:
    """One histogram of normalised ranks, over the central ``band`` range of a bin's count under uniformity."""
    from scipy import stats

    lower, upper = stats.binom.ppf([(1 - band) / 2, (1 + band) / 2], u.size, 1 / bins)
    ax.axhspan(lower, upper, color="0.85", zorder=0)
    ax.axhline(u.size / bins, color="0.5", lw=0.8, zorder=1)
    ax.hist(u, bins=np.linspace(0, 1, bins + 1), color="C0", zorder=2)
    ax.set_yticks([])
    ax.tick_params(labelsize=6)
