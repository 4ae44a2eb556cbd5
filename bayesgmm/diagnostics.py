"""A verdict on a posterior, read before any of its numbers.

:func:`assess` turns ArviZ's diagnostics into one :class:`Verdict`: reliable,
unreliable (with the reasons and what to do) or not assessed (a point estimate).
Everything is computed on *label-invariant* quantities, so that label switching
between chains is not mistaken for non-convergence and a real problem is not hidden
by it:

* the log-likelihood of the whole data set per draw (the ``log_likelihood``
  group summed over points; computed from the draws when the group is absent);
* the weights and means after :func:`bayesgmm.relabel` (unless already relabelled).

Thresholds (Vehtari, Gelman, Simpson, Carpenter and Bürkner 2021, "Rank-normalization,
folding, and localization: an improved R-hat"; Stan's and ArviZ's defaults):

* rank-normalised split R-hat <= 1.01;
* bulk and tail ESS >= 400 draws in total (100 per chain for the 4 chains the
  paper assumes; bayesgmm's default is 2 chains of 1000 draws);
* no divergent transition (any divergence means the sampler missed part of the
  posterior: the draws can be biased);
* E-BFMI >= 0.3 in every chain (lower: the momentum resampling cannot explore the
  energy distribution, typical of funnels and heavy tails).

Hitting the maximum tree depth is an efficiency problem, not a validity one (Stan
says the same); it is reported in the metrics and the advice only. With a single
chain, R-hat is computed on its two halves and cannot see chains that settle in
different modes: the verdict says so. A variational fit (ADVI) has no R-hat or ESS:
its verdict says whether the optimisation's loss reached a plateau (see
``fit_history``'s attributes) and whether the approximation passes the
importance-sampling check of Yao, Vehtari, Simpson and Gelman (2018, "Yes, but did
it work?"): the Pareto k-hat of the ratios posterior / approximation over S of its
draws (4000, fewer on large data) must not exceed ArviZ's bound
``min(1 - 1/log10(S), 0.7)`` (0.7 for S = 4000).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import xarray as xr

__all__ = ["Verdict", "assess", "chain_modes", "PosteriorDiagnosticsWarning", "RHAT_MAX", "ESS_MIN", "EBFMI_MIN"]

#: Largest acceptable rank-normalised split R-hat.
RHAT_MAX = 1.01
#: Smallest acceptable bulk and tail effective sample size (in total, over chains).
ESS_MIN = 400
#: Smallest acceptable energy Bayesian fraction of missing information, per chain.
EBFMI_MIN = 0.3
#: Above this many (draw, point) pairs the log-likelihood is not recomputed from the draws.
_LOGLIK_RECOMPUTE_LIMIT = 20_000_000

_LABELS = ("reliable", "unreliable", "not assessed")


class PosteriorDiagnosticsWarning(UserWarning):
    """The posterior failed a diagnostic check; the message starts with the verdict's headline."""


@dataclass(frozen=True)
class Verdict:
    """Whether a posterior can be trusted, why, and what to do.

    Attributes
    ----------
    reliable : bool
        True only when every check passed (False also for "not assessed").
    label : {"reliable", "unreliable", "not assessed"}
    reasons : list of str
        Why it is unreliable (or why it was not assessed); empty when reliable.
    advice : list of str
        What to do, most important first.
    metrics : dict
        The figures behind the verdict (divergences, max R-hat, min bulk/tail ESS,
        E-BFMI, tree-depth saturation, or the VI loss figures) and the thresholds.
    notes : list of str
        Caveats that do not make the posterior unreliable (one chain, tree depth).

    Examples
    --------
    >>> from bayesgmm import Verdict
    >>> verdict = Verdict(False, "unreliable", ["3 divergent transitions (0.2% of draws)"],
    ...                   ["raise target_accept"], {"divergences": 3})
    >>> verdict.headline()
    'UNRELIABLE posterior: 3 divergent transitions (0.2% of draws). Try: raise target_accept.'
    """

    reliable: bool
    label: str
    reasons: list[str]
    advice: list[str]
    metrics: dict
    notes: list[str] = field(default_factory=list)

    def headline(self) -> str:
        """The verdict in one line: the label, the reasons and what to try.

        For example ``UNRELIABLE posterior: 34 divergent transitions (1.7% of draws)``
        followed by the advice.
        """
        variational = self.metrics.get("kind") == "variational"
        what = "variational fit" if variational else "posterior"
        if self.label == "unreliable":
            line = f"UNRELIABLE {what}: {', '.join(self.reasons)}."
            if self.advice:
                line += f" Try: {'; '.join(self.advice[:2])}."
            return line
        if self.label == "not assessed":
            return f"Posterior not assessed: {', '.join(self.reasons) or 'no diagnostics available'}."
        if variational:
            line = (f"Reliable variational fit: the loss reached a plateau "
                    f"({self.metrics.get('loss_range', float('nan')):.3g} over the last windows, tolerance "
                    f"{self.metrics.get('loss_tolerance', float('nan')):.3g})")
            k_hat = self.metrics.get("pareto_k", float("nan"))
            if np.isfinite(k_hat):
                line += (f" and Pareto k-hat is {k_hat:.2f} (<= "
                         f"{self.metrics.get('pareto_k_threshold', 0.7):.2f})")
            return line + "; variational intervals are usually too narrow, confirm with method='nuts'."

        parts = ["no divergences" if "divergences" in self.metrics else "no divergence information"]
        if self.metrics.get("max_rhat") is not None:
            parts.append(f"R-hat <= {self.metrics['max_rhat']:.3f}")
        if self.metrics.get("min_ess_bulk") is not None:
            parts.append(f"bulk ESS >= {self.metrics['min_ess_bulk']:.0f}")
        if self.metrics.get("min_ess_tail") is not None:
            parts.append(f"tail ESS >= {self.metrics['min_ess_tail']:.0f}")
        line = f"Reliable posterior: {', '.join(parts)}."
        if self.metrics.get("n_chains") == 1:
            line += " (One chain: R-hat cannot see separate modes; run 2 or more chains to check.)"
        return line

    def details(self) -> str:
        """The headline followed by every reason, note and piece of advice, one per line."""
        lines = [self.headline()]
        lines += [f"  why: {r}" for r in self.reasons if self.label != "reliable"]
        lines += [f"  note: {n}" for n in self.notes]
        lines += [f"  to do: {a}" for a in self.advice]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.headline()


# ---------------------------------------------------------------------------- helpers
def _as_chains(da: xr.DataArray) -> xr.DataArray:
    """(chain, draw, ...) with one chain split in two halves (for R-hat)."""
    da = da.transpose("chain", "draw", ...)
    if da.sizes["chain"] > 1:
        return da
    half = da.sizes["draw"] // 2
    first = da.isel(chain=0, draw=slice(0, half)).values
    second = da.isel(chain=0, draw=slice(half, 2 * half)).values
    return xr.DataArray(np.stack([first, second]), dims=da.dims)


def _rhat_ess(da: xr.DataArray) -> tuple[float | None, float | None, float | None]:
    """Max R-hat, min bulk ESS, min tail ESS over a quantity's entries (constant entries left out)."""
    import arviz as az

    da = da.transpose("chain", "draw", ...).astype(float)
    values = da.values.reshape(da.shape[0], da.shape[1], -1)
    keep = np.ptp(values.reshape(-1, values.shape[-1]), axis=0) > 0  # a constant (K=1 weight) has no R-hat
    keep &= np.all(np.isfinite(values), axis=(0, 1))
    if not keep.any():
        return None, None, None
    flat = xr.DataArray(values[..., keep], dims=("chain", "draw", "entry"))
    with warnings.catch_warnings():
        # An entry constant within a chain (or a half) while not overall: its R-hat is NaN, left out below.
        warnings.filterwarnings("ignore", "invalid value encountered", RuntimeWarning)
        rhat = (az.rhat(_as_chains(flat).to_dataset(name="x"))["x"].values
                if flat.sizes["draw"] >= 8 or flat.sizes["chain"] > 1 else None)
        bulk = az.ess(flat.to_dataset(name="x"), method="bulk")["x"].values
        tail = az.ess(flat.to_dataset(name="x"), method="tail")["x"].values

    def reduce(arr, fn):
        if arr is None:
            return None
        arr = np.asarray(arr, dtype=float)
        arr = arr[np.isfinite(arr)]
        return float(fn(arr)) if arr.size else None

    return reduce(rhat, np.max), reduce(bulk, np.min), reduce(tail, np.min)


def _total_log_likelihood(idata) -> xr.DataArray | None:
    """The log-likelihood of all data per draw: from the ``log_likelihood`` group, else computed."""
    pointwise = _pointwise_log_likelihood(idata)
    if pointwise is None:
        return None
    other = [d for d in pointwise.dims if d not in ("chain", "draw")]
    return pointwise.sum(other) if other else pointwise


def _pointwise_log_likelihood(idata) -> xr.DataArray | None:
    """The log-likelihood per (chain, draw, point): the ``log_likelihood`` group, else computed from the draws."""
    if "log_likelihood" in idata.groups() and len(idata.log_likelihood.data_vars):
        ll = idata.log_likelihood
        return ll["obs" if "obs" in ll else next(iter(ll.data_vars))]
    if "observed_data" not in idata.groups() or "obs" not in idata.observed_data:
        return None
    from ._posterior import posterior_arrays
    from .density import pointwise_log_likelihood

    post = idata.posterior
    X = np.asarray(idata.observed_data["obs"].values, dtype=float)
    n_draws = post.sizes["chain"] * post.sizes["draw"]
    if X.ndim != 2 or n_draws * X.shape[0] > _LOGLIK_RECOMPUTE_LIMIT:
        return None
    try:
        arrays = posterior_arrays(idata)
        if arrays["means"].shape[-1] != X.shape[1]:
            return None
        pointwise = pointwise_log_likelihood(X, arrays["weights"], arrays["means"], arrays["chol"])
    except (ValueError, TypeError, KeyError):
        return None
    return xr.DataArray(pointwise.reshape(post.sizes["chain"], post.sizes["draw"], -1),
                        dims=("chain", "draw", "obs_id"))


#: Two chains whose total log-likelihoods have a rank-normalised R-hat above this are
#: in different modes (the threshold of the verdict's "different modes" reason).
MODE_RHAT = 1.1


def chain_modes(idata) -> xr.Dataset:
    """Group the chains into posterior modes and weight each mode by stacking.

    When chains settle in different modes and do not mix, averaging them (what every
    summary does) describes no posterior. Yao, Vehtari & Gelman (2022, "Stacking for
    non-mixing Bayesian computations: the curse and blessing of multimodal
    posteriors") combine such chains instead with the weights that maximise the
    leave-one-out predictive density of the mixture of chains. This computes them
    with ArviZ (PSIS-LOO per chain, ``az.compare(method="stacking")``) and groups
    chains whose total log-likelihoods mix (pairwise rank-normalised R-hat at most
    1.1) into one mode. A mode's weight is the sum of its chains' weights: how much
    of the predictive mixture it carries, not its exact posterior mass (which no
    non-mixing sampler measures).

    Parameters
    ----------
    idata : arviz.InferenceData
        With a posterior of 2 or more chains and a ``log_likelihood`` group (or the
        ``observed_data`` to compute it from).

    Returns
    -------
    xarray.Dataset
        Dimension ``chain``: ``mode`` (0 is the mode with the largest weight),
        ``stacking_weight`` (the chain's, summing to 1) and ``mean_log_likelihood``
        (of all data, over the chain's draws). ``attrs["n_modes"]`` gives the count.

    Raises
    ------
    ValueError
        With fewer than 2 chains or no log-likelihood to work from.

    Examples
    --------
    >>> import numpy as np, arviz as az
    >>> from bayesgmm.diagnostics import chain_modes
    >>> rng = np.random.default_rng(0)
    >>> ll = np.stack([rng.normal(-1.0, 0.01, (200, 30)), rng.normal(-1.5, 0.01, (200, 30))])
    >>> idata = az.from_dict(posterior={"weights": rng.dirichlet([1, 1], (2, 200))}, log_likelihood={"obs": ll})
    >>> modes = chain_modes(idata)
    >>> int(modes.attrs["n_modes"]), modes["stacking_weight"].values.round(2).tolist()
    (2, [1.0, 0.0])
    """
    import arviz as az

    n_chains = int(idata.posterior.sizes.get("chain", 1)) if "posterior" in idata.groups() else 0
    if n_chains < 2:
        raise ValueError(f"chain_modes needs a posterior with 2 or more chains, got {n_chains}.")
    pointwise = _pointwise_log_likelihood(idata)
    if pointwise is None:
        raise ValueError("chain_modes needs the pointwise log-likelihood: fit with log_likelihood=True "
                         "(or keep the observed_data group).")
    values = pointwise.transpose("chain", "draw", ...).values.reshape(n_chains, pointwise.sizes["draw"], -1)
    total = values.sum(axis=2)
    centred = centre_per_point([values[c][None] for c in range(n_chains)])
    with warnings.catch_warnings():
        # PSIS on one chain may warn about Pareto k; the weights are still the stacking weights.
        warnings.simplefilter("ignore")
        elpd = {c: az.loo(az.from_dict(posterior={"_": np.zeros((1, values.shape[1]))},
                                       log_likelihood={"obs": centred[c]}), pointwise=True)
                for c in range(n_chains)}
        weights = az.compare(elpd, method="stacking")["weight"].reindex(range(n_chains)).to_numpy(float)
        parent = list(range(n_chains))
        for i in range(n_chains):
            for j in range(i + 1, n_chains):
                pair = total[[i, j]]
                same = np.ptp(pair) == 0 or float(az.rhat(pair)) <= MODE_RHAT
                if same:
                    parent[_root(parent, j)] = _root(parent, i)
    roots = np.array([_root(parent, c) for c in range(n_chains)])
    groups = np.unique(roots)
    order = sorted(groups, key=lambda r: -weights[roots == r].sum())
    mode = np.array([order.index(r) for r in roots])
    return xr.Dataset(
        {"mode": ("chain", mode), "stacking_weight": ("chain", weights / weights.sum()),
         "mean_log_likelihood": ("chain", total.mean(axis=1))},
        coords={"chain": idata.posterior.chain.values},
        attrs={"n_modes": len(groups), "method": "stacking of chains (Yao, Vehtari & Gelman 2022)"},
    )


def centre_per_point(pointwise: list[np.ndarray]) -> list[np.ndarray]:
    """Pointwise log-likelihoods (chain, draw, point) less, per point, their largest value over all of them.

    Stacking (ArviZ's ``az.compare``) exponentiates the pointwise values, and a density
    in data units carries -log(units) per feature (about +460 per feature at 1e-100
    units): the weights then overflowed to equal ones. The same shift for every array
    leaves the stacking weights as they are.
    """
    top = np.max([np.max(v, axis=(0, 1)) for v in pointwise], axis=0)
    top = np.where(np.isfinite(top), top, 0.0)
    return [v - top for v in pointwise]


def _root(parent: list, i: int) -> int:
    while parent[i] != i:
        i = parent[i]
    return i


def _mode_rows(modes: xr.Dataset) -> list[dict]:
    """Per mode of :func:`chain_modes`: its chains, summed stacking weight and mean log-likelihood."""
    rows = []
    for m in range(int(modes.attrs["n_modes"])):
        sel = modes["mode"].values == m
        rows.append({"mode": m, "chains": modes.chain.values[sel].tolist(),
                     "stacking_weight": float(modes["stacking_weight"].values[sel].sum()),
                     "mean_log_likelihood": float(modes["mean_log_likelihood"].values[sel].mean())})
    return rows


def describe_modes(modes: xr.Dataset) -> str:
    """One line per mode: its chains, stacking weight and mean log-likelihood."""
    return "; ".join(
        f"mode {row['mode'] + 1} (chain{'s' if len(row['chains']) > 1 else ''} "
        f"{', '.join(str(c) for c in row['chains'])}: stacking weight {row['stacking_weight']:.2f}, "
        f"mean log-likelihood {row['mean_log_likelihood']:.1f})"
        for row in _mode_rows(modes))


def _relabelled(idata, relabel_draws) -> tuple[object, str]:
    """The posterior with consistent labels, and "relabelled", "one component" or "as sampled"."""
    post = idata.posterior
    if post.sizes.get("component", 1) <= 1:
        return idata, "one component"
    if "relabel_permuted_per_chain" in post.attrs and relabel_draws is not True:
        return idata, "relabelled"
    if relabel_draws is False:
        return idata, "as sampled"
    from .labels import relabel

    try:
        return relabel(idata), "relabelled"
    except (ValueError, TypeError, KeyError, np.linalg.LinAlgError):
        return idata, "as sampled"  # e.g. no covariances: use the draws as they are


def _sample_stat(stats, *names):
    for name in names:
        if stats is not None and name in stats:
            return stats[name]
    return None


# ---------------------------------------------------------------------------- assess
def _percent(value: float) -> str:
    """A percentage that does not print a few divergences in 40,000 draws as 0.0%."""
    return f"{value:.1f}%" if value >= 0.1 else f"{value:.2g}%"


def assess(idata, *, relabel_draws: bool | str = "auto") -> Verdict:
    """Judge whether a posterior can be trusted, using ArviZ's diagnostics.

    Parameters
    ----------
    idata : arviz.InferenceData
        From :meth:`BayesianGMM.fit` (NUTS or ADVI), :func:`bayesgmm.relabel` or
        :func:`em_to_idata`; only the ``posterior`` group is required.
    relabel_draws : bool or "auto", default="auto"
        Relabel the weights and means before computing their R-hat and ESS
        ("auto": unless already relabelled). False uses them as they are.

    Returns
    -------
    Verdict
        ``verdict.headline()`` is one line to show before any number.

    Examples
    --------
    >>> import numpy as np, arviz as az
    >>> from bayesgmm.diagnostics import assess
    >>> idata = az.from_dict(posterior={"weights": np.full((2, 50, 2), 0.5)},
    ...                      sample_stats={"diverging": np.ones((2, 50), dtype=bool)})
    >>> assess(idata).headline().split(":")[0]
    'UNRELIABLE posterior'
    """
    import arviz as az

    if not isinstance(idata, az.InferenceData):
        raise TypeError(f"idata must be an arviz.InferenceData (from BayesianGMM.fit), got {type(idata).__name__}.")
    if "posterior" not in idata.groups():
        raise ValueError(f"idata has no posterior group (groups: {list(idata.groups())}).")
    if relabel_draws not in (True, False, "auto"):
        raise ValueError(f"relabel_draws must be True, False or 'auto', got {relabel_draws!r}.")
    post = idata.posterior
    n_chains, n_draws = int(post.sizes.get("chain", 1)), int(post.sizes.get("draw", 1))
    method = str(idata.attrs.get("inference_method", ""))
    if "fit_history" in idata.groups() or method in ("advi", "fullrank_advi"):
        return _assess_variational(idata, method)
    if n_draws < 4:
        what = "a point estimate (e.g. EM)" if n_draws == 1 else f"{n_draws} draws per chain"
        return Verdict(False, "not assessed", [f"{what}: R-hat and ESS need at least 4 draws per chain"],
                       ["fit with BayesianGMM(...).fit(X) (NUTS) to get a posterior with diagnostics"],
                       {"kind": "none", "n_chains": n_chains, "n_draws": n_chains * n_draws})
    return _assess_mcmc(idata, n_chains, n_draws, relabel_draws)


@dataclass
class _Findings:
    """What the checks of :func:`_assess_mcmc` found, gathered as they run."""

    metrics: dict
    reasons: list[str] = field(default_factory=list)
    advice: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _assess_mcmc(idata, n_chains: int, n_draws: int, relabel_draws) -> Verdict:
    total = n_chains * n_draws
    found = _Findings({"kind": "mcmc", "n_chains": n_chains, "n_draws": total, "rhat_threshold": RHAT_MAX,
                       "ess_threshold": ESS_MIN, "ebfmi_threshold": EBFMI_MIN})
    stats = idata.get("sample_stats")
    _check_collapsed_components(found, idata)  # first: it explains divergences and "modes" below
    _check_divergences(found, stats, total, idata.attrs)
    _check_rhat_ess(found, idata, n_chains, relabel_draws)
    _check_ebfmi(found, idata, stats)
    _note_treedepth(found, stats)
    _note_auto_draws(found, idata.attrs)
    if not found.metrics["quantities"]:
        found.notes.append("no weights, means or log-likelihood to compute R-hat and ESS on")
    reliable = not found.reasons
    return Verdict(reliable, "reliable" if reliable else "unreliable", found.reasons, found.advice, found.metrics,
                   found.notes)


def _check_divergences(found: _Findings, stats, total: int, attrs) -> None:
    diverging = _sample_stat(stats, "diverging", "divergent")
    if diverging is None:
        return
    n_div = int(np.asarray(diverging.values, dtype=bool).sum())
    found.metrics["divergences"] = n_div
    found.metrics["divergence_pct"] = 100.0 * n_div / max(total, 1)
    retried = "first_run_divergences" in attrs
    if retried:  # fit(retry_on_divergence=True) sampled a second time
        found.metrics["first_run_divergences"] = int(attrs["first_run_divergences"])
        found.notes.append(
            f"sampled twice: {int(attrs['first_run_divergences'])} divergent transitions at target_accept "
            f"{attrs.get('first_run_target_accept')}, {attrs.get('second_run_divergences')} at "
            f"{attrs.get('second_run_target_accept')}; these draws are the {attrs.get('kept_run')} run's")
    if n_div:
        found.reasons.append(f"{n_div} divergent transition{'s' if n_div != 1 else ''} "
                             f"({_percent(found.metrics['divergence_pct'])} of draws)")
        if retried:
            found.advice.append("divergences persist at target_accept 0.95: the posterior has a region NUTS "
                                "cannot step through (often a component with few points); try fewer components, "
                                "or fit(..., target_accept=0.99, tune=2000)")
        else:
            found.advice.append("raise target_accept and tune (e.g. fit(..., target_accept=0.95, tune=2000))")
            found.advice.append("if divergences persist, try fit(..., warmup_start='identity') or fewer components")


def _invariant_quantities(idata, relabel_draws) -> tuple[dict[str, xr.DataArray], bool]:
    """The log-likelihood and the (relabelled) weights and means; whether the labels agree across draws."""
    quantities: dict[str, xr.DataArray] = {}
    loglik = _total_log_likelihood(idata)
    if loglik is not None:
        quantities["log-likelihood"] = loglik
    relabelled, labels = _relabelled(idata, relabel_draws)
    prefix = "relabelled " if labels == "relabelled" else ""
    for name in ("weights", "means"):
        if name in relabelled.posterior:
            quantities[prefix + name] = relabelled.posterior[name]
    return quantities, labels != "as sampled"


def _check_rhat_ess(found: _Findings, idata, n_chains: int, relabel_draws) -> None:
    quantities, labels_ok = _invariant_quantities(idata, relabel_draws)
    per_quantity = {name: _rhat_ess(da) for name, da in quantities.items()}
    rhats = {k: v[0] for k, v in per_quantity.items() if v[0] is not None}
    bulks = {k: v[1] for k, v in per_quantity.items() if v[1] is not None}
    tails = {k: v[2] for k, v in per_quantity.items() if v[2] is not None}
    found.metrics.update({
        "max_rhat": max(rhats.values()) if rhats else None,
        "max_rhat_on": max(rhats, key=rhats.get) if rhats else None,
        "min_ess_bulk": min(bulks.values()) if bulks else None,
        "min_ess_tail": min(tails.values()) if tails else None,
        "rhat_log_likelihood": rhats.get("log-likelihood"),
        "quantities": list(quantities),
    })
    if n_chains == 1:
        found.notes.append("one chain: R-hat is computed on its two halves and cannot see chains settling in "
                           "different modes; run 2 or more chains")
    n_reasons = len(found.reasons)
    _judge_rhat(found, rhats, quantities.get("log-likelihood"), n_chains, labels_ok, idata)
    low_bulk = {k: v for k, v in bulks.items() if v < ESS_MIN}
    low_tail = {k: v for k, v in tails.items() if v < ESS_MIN}
    if low_bulk:
        worst = min(low_bulk, key=low_bulk.get)
        found.reasons.append(f"bulk ESS {low_bulk[worst]:.0f} on the {worst} (< {ESS_MIN})")
    if low_tail:
        worst = min(low_tail, key=low_tail.get)
        found.reasons.append(f"tail ESS {low_tail[worst]:.0f} on the {worst} (< {ESS_MIN})")
    if low_bulk or low_tail:
        n_draws = max((int(da.sizes.get("draw", 0)) for da in quantities.values()), default=0)
        found.advice.append(_more_draws_advice(min([*low_bulk.values(), *low_tail.values()]), n_draws, n_chains))
    # Slow mixing within one mode: not where the chains' log-likelihoods disagree (modes).
    one_mode = "modes" not in found.metrics and rhats.get("log-likelihood", 1.0) <= MODE_RHAT
    if len(found.reasons) > n_reasons and one_mode and idata.attrs.get("sampler") == "pymc":
        found.advice.append(OVERLAP_RECIPE)


#: What reaches the mixing targets where PyMC's sampler mixes slowly within one mode:
#: the default (nutpie, draws="auto"; docs/sampling.md, tenth session: Old Faithful K=3
#: and K=4 in 16 of 16 seeds each, medians 15.4 s and 30.8 s against 6.7 s and 13.6 s for
#: the old single PyMC run; no divergent transition in the 32 runs).
OVERLAP_RECIPE = ("where components overlap, use the default sampler: fit(X) with nutpie (sampler='auto' or "
                  "'nutpie', draws='auto') samples until these diagnostics pass; on Old Faithful it met R-hat "
                  "<= 1.01, bulk ESS >= 400 and divergences <= 0.1% in 16 of 16 seeds with K=3 and with K=4, "
                  "at 1.2-2.3x the time of PyMC's 2 x 1000 draws")


#: Where reaching the ESS target would take more than this many times the draws made,
#: the advice says that a simpler model is likely the practical way.
IMPRACTICAL_DRAWS_FACTOR = 10


def _more_draws_advice(lowest_ess: float, n_draws: int, n_chains: int) -> str:
    """How many draws per chain the ESS target needs at this run's rate (ESS grows about with the draws)."""
    text = f"draw more samples (an effective sample size of at least {ESS_MIN} is needed for stable intervals"
    if n_draws > 0 and np.isfinite(lowest_ess) and lowest_ess > 0:
        needed = int(np.ceil(n_draws * ESS_MIN / lowest_ess / 100.0)) * 100
        text += (f"; at this run's rate that is about {needed} draws per chain with {n_chains} "
                 f"chain{'s' if n_chains != 1 else ''}")
        if needed > IMPRACTICAL_DRAWS_FACTOR * n_draws:
            # Not "fit(..., draws=554900)": nobody should run that.
            text += ("; that many means the sampler barely moves through this posterior (often components "
                     "that overlap): a simpler model, with fewer components or a covariance type with fewer "
                     "parameters (full > tied > diag > spherical), is likely the practical choice")
        else:
            text += f", e.g. draws={needed} (--draws {needed} on the command line)"
    return text + ")"


def _judge_rhat(found: _Findings, rhats: dict, loglik, n_chains: int, labels_ok: bool, idata) -> None:
    bad_rhat = {k: v for k, v in rhats.items() if v > RHAT_MAX}
    if not bad_rhat:
        return
    worst = max(bad_rhat, key=bad_rhat.get)
    text = f"R-hat {bad_rhat[worst]:.3f} on the {worst}"
    if worst != "log-likelihood" and "log-likelihood" in bad_rhat:
        text += f" ({bad_rhat['log-likelihood']:.3f} on the log-likelihood)"
    found.reasons.append(text)
    if loglik is not None and n_chains > 1 and rhats.get("log-likelihood", 1.0) > MODE_RHAT:
        chain_means = loglik.mean("draw").values
        found.reasons.append("chains settled at different log-likelihoods (per-chain means "
                             f"{', '.join(f'{v:.1f}' for v in chain_means)}): they are probably in different modes")
        try:
            modes = chain_modes(idata)
        except ValueError:  # no pointwise log-likelihood to stack the chains with
            modes = None
        if modes is not None and modes.attrs["n_modes"] > 1:
            found.metrics["modes"] = _mode_rows(modes)
            found.reasons.append(f"{modes.attrs['n_modes']} modes that the chains do not mix between: "
                                 + describe_modes(modes))
            found.advice.append("summaries average the modes and describe neither: summarise each mode's chains "
                                "separately (idata.sel(chain=...)), weighted as above (bayesgmm.diagnostics."
                                "chain_modes), or fit fewer components")
        else:
            found.advice.append("the posterior may have several modes: try fewer components, or compare the chains "
                                "(az.plot_trace) before using any summary")
    found.advice.append("run longer chains (more draws and tune)")
    if not labels_ok and "log-likelihood" not in bad_rhat:
        found.advice.append("if chains settled on different labellings, summarise with bayesgmm.relabel first")


#: A component whose Cholesky factor has a diagonal entry (the sd of a feature given the
#: features before it) below this fraction of the data's own, in a chain's median draw, has
#: collapsed. Old Faithful's K=4 spike was at 4.1e-14; clusters 1e6 sds apart would be needed
#: for a real one to come this low.
COLLAPSED_SD_FRACTION = 1e-6
_FACTOR_DIMS = ("chain", "draw", "component", "feature", "feature_bis")


def _check_collapsed_components(found: _Findings, idata) -> None:
    """Chains that sit where a component's covariance has collapsed onto tied rows.

    Where several rows share a value (rounded data: Old Faithful's waiting times are
    whole minutes), a component can shrink onto them and the likelihood grows without
    bound: the posterior's density is unbounded there whatever the sampler (docs/model.md,
    "Tied values"). Long chains find such spikes (docs/sampling.md: K=4, a chain 400
    log-likelihood units above the others, with one component's waiting-time sd at 0 on
    the 78-minute rows). They are not clusters, and their stacking weight measures
    nothing, so this reason comes first.
    """
    post = idata.posterior
    if "chol" not in post or not set(_FACTOR_DIMS) <= set(post["chol"].dims):
        return
    chol = post["chol"].transpose(*_FACTOR_DIMS)
    reference = _data_factor_diagonal(idata, chol.sizes["feature"])
    if reference is None:
        return
    diagonal = np.abs(np.diagonal(chol.values, axis1=-2, axis2=-1))  # (chain, draw, component, feature)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN draws: not judged
        relative = np.nanmedian(diagonal / reference, axis=1)
    collapsed = np.argwhere(relative < COLLAPSED_SD_FRACTION)
    if collapsed.size == 0:
        return
    labels = post["chol"]["chain"].values
    chains = sorted({labels[c].item() for c, _, _ in collapsed})
    c, k, j = (int(v) for v in collapsed[np.argmin(relative[tuple(collapsed.T)])])
    features = [str(f) for f in post["chol"]["feature"].values]
    weight = float(post["weights"].isel(chain=c, component=k).median()) if "weights" in post else float("nan")
    mean = (float(post["means"].isel(chain=c, component=k).median("draw").values[j])
            if "means" in post else float("nan"))
    given = " given the features before it" if j > 0 else ""
    found.metrics["collapsed_chains"] = chains
    found.reasons.append(
        f"chain{'s' if len(chains) > 1 else ''} {', '.join(map(str, chains))} sit{'' if len(chains) > 1 else 's'} "
        f"on a collapsed component (chain {labels[c].item()}: a component of weight {weight:.2f} whose sd of "
        f"{features[j]!r}{given} is {relative[c, k, j]:.1e} of the data's, at {mean:.4g}): rows tied at one value "
        "make the likelihood unbounded there: most likely an artefact of rounded or repeated values, not a cluster")
    found.advice.append(f"leave those chains out (idata.sel(chain=[c for c in idata.posterior.chain.values if c not "
                        f"in {chains}])); fit fewer components, or check the data for rounded or repeated values")


def _data_factor_diagonal(idata, n_features: int) -> np.ndarray | None:
    """The diagonal of the training data's covariance Cholesky factor (sds given the features before).

    From the observed data (scaled first, so that 1e-200 or 1e200 units neither underflow
    nor overflow), else the fit's recorded per-feature scale; None if neither is usable.
    """
    observed = idata.get("observed_data")
    if observed is not None and "obs" in observed and observed["obs"].ndim == 2:
        x = np.asarray(observed["obs"].values, dtype=float)
        if x.shape[1] == n_features and x.shape[0] > n_features and np.all(np.isfinite(x)):
            unit = np.abs(x).max(axis=0)
            if np.all(unit > 0):
                try:
                    return unit * np.diag(np.linalg.cholesky(np.atleast_2d(np.cov(x / unit, rowvar=False))))
                except np.linalg.LinAlgError:  # collinear features: their sds alone
                    scale = unit * (x / unit).std(axis=0)
                    if np.all(scale > 0):
                        return scale
    if "data_scale" in idata.attrs:
        scale = np.asarray(idata.attrs["data_scale"], dtype=float).ravel()
        if scale.shape == (n_features,) and np.all(np.isfinite(scale) & (scale > 0)):
            return scale
    return None


def _check_ebfmi(found: _Findings, idata, stats) -> None:
    import arviz as az

    if stats is None or "energy" not in stats:
        return
    try:
        with warnings.catch_warnings():
            # A chain of constant energy has no E-BFMI (0 / 0): left out below.
            warnings.filterwarnings("ignore", "invalid value encountered", RuntimeWarning)
            bfmi = np.atleast_1d(az.bfmi(idata))
    except (ValueError, TypeError, KeyError):
        bfmi = np.array([])
    bfmi = bfmi[np.isfinite(bfmi)]
    if bfmi.size:
        found.metrics["min_ebfmi"] = float(bfmi.min())
        if bfmi.min() < EBFMI_MIN:
            found.reasons.append(f"E-BFMI {bfmi.min():.2f} (< {EBFMI_MIN}) in {int((bfmi < EBFMI_MIN).sum())} "
                                 "chain(s)")
            found.advice.append("low E-BFMI points to a funnel or heavy tails: run a longer tune, or use fewer "
                                "components")


def _note_auto_draws(found: _Findings, attrs) -> None:
    """``draws="auto"`` (nutpie): where the run was judged and why it stopped."""
    checked = attrs.get("auto_draws_checked")
    if checked is None:
        return
    checked = [int(n) for n in np.atleast_1d(checked)]
    looked = ", ".join(str(n) for n in checked)
    if attrs.get("auto_draws_stop") == "reliable":
        found.notes.append(f"draws='auto': judged at {looked} draws per chain, stopped at the first reliable "
                           "verdict")
    else:
        found.notes.append(f"draws='auto': judged at {looked} draws per chain and stopped at its limit, "
                           "still unreliable")


def _note_treedepth(found: _Findings, stats) -> None:
    """Tree-depth saturation: an efficiency note only, never a reason."""
    saturated = _sample_stat(stats, "reached_max_treedepth", "maxdepth_reached")
    if saturated is None:
        return
    pct = 100.0 * float(np.asarray(saturated.values, dtype=bool).mean())
    found.metrics["treedepth_saturation_pct"] = pct
    if pct > 0:
        found.notes.append(f"{pct:.1f}% of transitions hit the maximum tree depth (slow exploration, not a "
                           "validity problem): raise max_treedepth if sampling is slow")


def _assess_variational(idata, method: str) -> Verdict:
    hist = idata.get("fit_history")
    attrs = dict(hist.attrs) if hist is not None else {}
    method = str(attrs.get("method", method or "ADVI"))
    metrics: dict = {"kind": "variational", "method": method}
    for key in ("converged", "n_iterations", "loss_range", "loss_tolerance", "loss_window", "final_learning_rate",
                "learning_rate", "pareto_k", "pareto_k_threshold", "pareto_k_draws"):
        if key in attrs:
            value = attrs[key]
            metrics[key] = value.item() if hasattr(value, "item") else value
    notes = ["variational approximations usually understate posterior uncertainty (intervals too narrow)"]
    if "converged" not in attrs:
        return Verdict(False, "not assessed", [f"{method}: no record of the optimisation (fit_history)"],
                       ["refit with BayesianGMM(...).fit(X, method=...)"], metrics, notes)
    tail = _pareto_k_reason(metrics, method)
    if "pareto_k" in metrics and np.isnan(metrics["pareto_k"]):
        from .inference import IMPORTANCE_CHECK_MAX_ROWS  # the limit fit_vi applies (imported here: no cycle)

        notes.append("the importance-sampling check (Pareto k-hat) was not computed: minibatch fits of more than "
                     f"{IMPORTANCE_CHECK_MAX_ROWS:,} rows skip it")
    if int(attrs["converged"]):
        if tail is not None:
            return Verdict(False, "unreliable", [tail], ["use method='nuts' (--method nuts on the command line)",
                                                          "or fewer components"], metrics, notes)
        return Verdict(True, "reliable", [], ["confirm important conclusions with method='nuts'"], metrics, notes)
    n_iter = int(attrs.get("n_iterations", 0))
    windows, window = int(attrs.get("loss_windows", 3)), int(attrs.get("loss_window", 0))
    spread = float(attrs.get("loss_range", float("nan")))
    tolerance = float(attrs.get("loss_tolerance", float("nan")))
    if "loss_range" in attrs and np.isnan(spread):
        reason = (f"the {method} optimisation stopped after {n_iter} iterations, too few to see a plateau "
                  f"({windows} windows of {window} are needed)")
    elif np.isfinite(spread) and spread <= tolerance:
        reason = (f"the {method} loss had not yet settled at the lowest learning rate after {n_iter} iterations "
                  f"(it reached {len(np.atleast_1d(attrs.get('plateau_iterations', [])))} of the plateaus needed)")
    else:
        reason = f"the {method} loss was still moving after {n_iter} iterations"
        if "loss_range" in attrs:
            reason += (f" (its mean over the last {windows} windows of {window} iterations spread over "
                       f"{spread:.3g}, tolerance {tolerance:.3g})")
    advice = (["raise n_iterations", "or use method='nuts'"] if "too few" in reason else
              ["raise n_iterations, or lower learning_rate if the loss swings", "or use method='nuts'"])
    return Verdict(False, "unreliable", [reason] + ([tail] if tail is not None else []), advice, metrics, notes)


def _pareto_k_reason(metrics: dict, method: str) -> str | None:
    """The reason a variational fit fails the importance-sampling check (Yao et al., 2018), or None."""
    k_hat, threshold = metrics.get("pareto_k", np.nan), metrics.get("pareto_k_threshold", 0.7)
    if np.isinf(k_hat):
        return (f"the model's log-density is not finite at some draws of the {method} approximation: it puts "
                "mass where the posterior has none, so its means and intervals cannot be trusted")
    if np.isnan(k_hat) or k_hat <= threshold:
        return None
    return (f"Pareto k-hat {k_hat:.2f} > {threshold:.2f}: the {method} approximation is too far from the "
            "posterior for importance sampling to correct (the ratios posterior / approximation over its draws "
            "are heavy-tailed), so its intervals are likely too narrow and its means may be off")
