"""Running NUTS and variational inference for :class:`~bayesgmm.BayesianGMM`.

Every function here takes the model's :class:`~bayesgmm.pipeline.ModelSpec` and
the :class:`~bayesgmm.pipeline.PreparedData`, never the estimator: the samplers
return the result and the EM fit they started from, and ``BayesianGMM.fit`` keeps
them. Every path ends in :func:`finalize`, which turns the sampler's draws of the
standardised latents into the quantities users want (weights, means, standard
deviations, correlations, covariances in data units, through
:func:`bayesgmm._posterior.parameters_dataset`) and adds the pointwise
log-likelihood computed in NumPy (:mod:`bayesgmm.density`), so ``az.loo`` works on
any result without compiling another PyTensor function.
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
import os
import time
import warnings

import arviz as az
import numpy as np
import xarray as xr
from sklearn.exceptions import ConvergenceWarning

from ._posterior import parameters_dataset
from .bayes_covariance import EM_START_REG_COVAR, add_noise
from .bayes_model import NOISE_VARIANCE, declare_model
from .density import pointwise_log_likelihood
from .em import DegenerateFitWarning, GaussianMixtureEM
from .fit_settings import AUTO_DRAWS_CHECKPOINTS, NUTS_STEP_OPTIONS, SAMPLERS
from .pipeline import ModelSpec, PreparedData

__all__ = ["SAMPLERS", "check_sampler", "em_start", "fitted_em_start", "start_values", "dispersed_starts",
           "jitter_initvals", "nuts_adaptation", "fit_nuts", "pymc_nuts_step", "laplace_covariance", "fit_vi",
           "finalize", "warn_on_diagnostics", "LossPlateau", "importance_log_ratios", "importance_pareto_k",
           "pareto_k_threshold"]

_SAMPLER_MODULES = {"pymc": (), "nutpie": ("nutpie",), "numpyro": ("numpyro", "jax")}
assert tuple(_SAMPLER_MODULES) == SAMPLERS
_AUTO_BATCH_ROWS = 20_000
_AUTO_BATCH_SIZE = 2_000
#: PyMC's warning on every dense-mass-matrix fit; the dense adaptation is tested here.
_FULL_ADAPT_WARNING = "QuadPotentialFullAdapt is an experimental feature"


def check_sampler(sampler: str) -> None:
    """Refuse an unknown sampler name, or one whose package is not installed."""
    if sampler not in _SAMPLER_MODULES:
        raise ValueError(f"sampler must be one of {tuple(_SAMPLER_MODULES)}, got {sampler!r}.")
    missing = [m for m in _SAMPLER_MODULES[sampler] if importlib.util.find_spec(m) is None]
    if missing:
        extra = f" (pip install 'bayesgmm[{'jax' if sampler == 'numpyro' else 'nutpie'}]')"
        raise ImportError(f"sampler={sampler!r} needs {', '.join(missing)}, which is not installed{extra}.")


# --------------------------------------------------------------------------- start
def em_start(spec: ModelSpec, data: PreparedData, random_seed) -> tuple[dict, GaussianMixtureEM]:
    """Initial values of the free variables at an EM solution fitted here, and that EM fit.

    EM (of the model's covariance type) is fitted on the standardised data
    ``data.Z`` (what the model sees), so the start, like the posterior, does not
    depend on the units of X; the returned fit is on the standardised scale.
    """
    with warnings.catch_warnings():
        # EM's own notes (restarts that did not converge, components near-empty) are
        # not the user's concern here: the start is only a start.
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", DegenerateFitWarning)
        em = GaussianMixtureEM(spec.n_components, covariance_type=spec.covariance.name, n_init=3, tol=1e-6,
                               max_iter=500, reg_covar=EM_START_REG_COVAR, random_state=random_seed).fit(data.Z)
    cov_z = np.asarray(em.full_covariances_, dtype=float)
    return _initvals_at(spec, data, np.asarray(em.weights_, dtype=float), np.asarray(em.means_, dtype=float),
                        cov_z), em


def fitted_em_start(spec: ModelSpec, em: GaussianMixtureEM, data: PreparedData) -> dict:
    """Initial values at an EM fit the caller already has, fitted on X in the data's units.

    Its means and covariances are moved to the standardised scale the model works
    on; a fit of another covariance type gives the nearest start of this model's
    type (e.g. the diagonal of a full covariance, or their weighted mean for tied).
    """
    K, D = spec.n_components, data.Z.shape[1]
    if em.n_components != K:
        raise ValueError(f"init is a GaussianMixtureEM with n_components={em.n_components}, but the model has "
                         f"n_components={K}.")
    if em.means_.shape[1] != D:
        raise ValueError(f"init is a GaussianMixtureEM fitted on {em.means_.shape[1]} features, but X has {D}.")
    names = getattr(em, "feature_names_in_", None)
    if names is not None and list(map(str, names)) != list(data.names):
        raise ValueError(f"init is a GaussianMixtureEM fitted on features {list(names)}, but X has "
                         f"{list(data.names)}.")
    means_z = (np.asarray(em.means_, dtype=float) - data.centre) / data.scale
    cov_z = np.asarray(em.full_covariances_, dtype=float) / np.outer(data.scale, data.scale)
    return _initvals_at(spec, data, np.asarray(em.weights_, dtype=float), means_z, cov_z)


def _initvals_at(spec: ModelSpec, data: PreparedData, weights: np.ndarray, means_z: np.ndarray,
                 cov_z: np.ndarray) -> dict:
    """The free variables' values at a mixture given on the standardised scale (covariances (K, D, D)).

    The covariances are the observed values' (an EM fit's): the rounding error is
    taken out of them for the latent covariances.
    """
    K, D = means_z.shape
    names = data.names
    order_feature = spec.order_feature(names)
    # Components in a canonical order (by the ordered feature's mean, else by the
    # first feature's and so on): EM's restarts can tie up to rounding with their
    # labels permuted, and data that differ only by rounding (the same data in
    # other units) must get the same start.
    keys = means_z.T[::-1]
    order = np.lexsort(keys if order_feature is None else np.vstack([keys, keys[::-1][order_feature]]))
    weights = np.clip(weights[order], 1e-3, None)
    weights = weights / weights.sum()
    means_z, cov_z = means_z[order], cov_z[order]
    initvals: dict = {"weights": weights}
    if order_feature is None:
        initvals["means_z"] = means_z
    else:
        for j, name in enumerate(names):
            key = f"means_z_{name}_ordered" if j == order_feature else f"means_z_{name}"
            column = means_z[:, j].copy()
            if j == order_feature:  # the ordered transform needs strictly increasing values
                column = column + np.arange(K) * 1e-6
            initvals[key] = column
    initvals[spec.covariance.latent] = spec.covariance.start_without_noise(cov_z, weights, data.noise_variance_z)
    if not all(np.all(np.isfinite(v)) for v in initvals.values()):
        raise ValueError("the EM solution has non-finite parameters")
    return initvals


def dispersed_starts(spec: ModelSpec, data: PreparedData, best: dict, chains: int, random_seed) -> list[dict]:
    """One start per chain at different EM optima: the best one first, then EM from k-means++ seeds.

    Chains started from one optimum (plus jitter) cannot show R-hat a mode they
    never reach; chains started at other local optima either find their way to the
    same posterior mode during warm-up or stay in theirs, where R-hat and
    :func:`bayesgmm.diagnostics.chain_modes` see them (Yao, Vehtari & Gelman 2022
    recommend such dispersed starts). A seed whose EM fails, or ends at a degenerate
    optimum (a component collapsed onto a point: a spurious maximiser, from which
    NUTS could not start in 2 of 200 SBC fits of K=3, D=1), gives the best start again.
    """
    starts = [best]
    seeds = np.random.SeedSequence(None if random_seed is None else int(random_seed)).spawn(chains)
    for seed in seeds[1:]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            warnings.simplefilter("ignore", DegenerateFitWarning)
            try:
                em = GaussianMixtureEM(spec.n_components, covariance_type=spec.covariance.name,
                                       init_params="k-means++", tol=1e-6, max_iter=500,
                                       random_state=int(seed.generate_state(1)[0])).fit(data.Z)
                if em.degenerate_:
                    starts.append(best)
                    continue
                starts.append(_initvals_at(spec, data, np.asarray(em.weights_, dtype=float),
                                           np.asarray(em.means_, dtype=float),
                                           np.asarray(em.full_covariances_, dtype=float)))
            except (ValueError, FloatingPointError, np.linalg.LinAlgError):
                starts.append(best)
    return starts


def start_values(spec: ModelSpec, model, data: PreparedData, init, random_seed) -> tuple[dict | None, object]:
    """The EM start set on ``model`` (``init="em"`` or a fitted EM) and the EM fit it came from.

    Returns ``(None, None)`` to start where PyMC does (``init="prior"``). Where EM
    cannot fit (e.g. many tied rows for K components) the sampler starts from
    PyMC's default point instead, with a warning.
    """
    if isinstance(init, GaussianMixtureEM):
        initvals, em = fitted_em_start(spec, init, data), init
    elif init not in ("em", "em_dispersed"):
        return None, None
    else:
        try:
            initvals, em = em_start(spec, data, random_seed)
        except (ValueError, FloatingPointError, np.linalg.LinAlgError) as err:
            warnings.warn(f"The EM start failed ({err}); starting from the prior's default point instead "
                          "(init='prior').", UserWarning, stacklevel=4)
            return None, None
    # With every free variable's start set, PyMC's initial point is cheap (otherwise
    # it compiles LKJ's default-value graph: ~1.5 s of every fit).
    for name, value in initvals.items():
        model.set_initval(model[name], value)
    return initvals, em


def jitter_initvals(initvals: dict | list[dict], chains: int, random_seed, covariance) -> list[dict]:
    """One slightly perturbed copy of the EM start per chain (labels preserved).

    ``initvals`` is one start for every chain, or a list with one start per chain
    (``init="em_dispersed"``). ``covariance`` is the model's
    :class:`~bayesgmm.bayes_covariance.BayesCovariance`, which jitters its own latent.
    """
    rng = np.random.default_rng(random_seed)
    starts = initvals if isinstance(initvals, list) else [initvals] * chains
    out = []
    for start in starts:
        point = {}
        for name, value in start.items():
            value = np.asarray(value, dtype=float)
            if name == "weights":
                w = value * np.exp(rng.normal(0, 0.05, value.shape))
                point[name] = w / w.sum()
            elif name == covariance.latent:
                point[name] = covariance.jitter(value, rng)
            elif name.endswith("_ordered"):
                point[name] = np.sort(value + rng.normal(0, 0.02, value.shape)) + np.arange(value.size) * 1e-6
            else:
                point[name] = value + rng.normal(0, 0.02, value.shape)
        out.append(point)
    return out


# --------------------------------------------------------------------------- NUTS
#: Above this many free parameters a dense mass matrix costs more than it gains.
FULL_MASS_MATRIX_MAX_PARAMETERS = 200


def nuts_adaptation(spec: ModelSpec, n_features: int, mass_matrix: str, jitter: bool) -> str:
    """PyMC's ``init`` for the requested mass matrix ("auto": dense for small models)."""
    if mass_matrix == "auto":
        n_free = spec.n_free_parameters(n_features)
        mass_matrix = "full" if n_free <= FULL_MASS_MATRIX_MAX_PARAMETERS else "diag"
    return ("jitter+" if jitter else "") + f"adapt_{mass_matrix}"


def fit_nuts(spec: ModelSpec, data: PreparedData, *, draws, tune, chains, random_seed, progressbar, init, sampler,
             log_likelihood, mass_matrix="auto", warmup_start="laplace", retry_on_divergence=True, **kwargs):
    """NUTS on the standardised data; returns the result and the EM fit it started from (or None).

    With ``retry_on_divergence`` (PyMC's sampler, ``target_accept`` not set), a run
    whose divergent transitions exceed 0.1% of its draws is sampled again, from the
    same start, at ``target_accept=0.95``: smaller steps through the narrow region
    that diverged (on Old Faithful K=3 the tight short-eruption component). The run
    with fewer divergent transitions is returned; both counts are kept in the
    attributes.
    """
    # numpyro's JAX compiles the graph itself and needs plain PyTensor operations; PyMC's
    # sampler and nutpie (PyTensor's numba backend) run the kernel Op.
    model = declare_model(spec, data, likelihood="graph" if sampler == "numpyro" else "kernel")
    initvals, em = start_values(spec, model, data, init, random_seed)
    if init == "em_dispersed" and initvals is not None:
        initvals = dispersed_starts(spec, data, initvals, chains, random_seed)
    if sampler == "nutpie" and draws == "auto":
        # Every chain runs at once (threads), so that all reach each checkpoint together.
        kwargs["cores"] = chains
        return _sample_nutpie_until_reliable(spec, model, data, initvals, tune=tune, chains=chains,
                                             random_seed=random_seed, progressbar=progressbar,
                                             log_likelihood=log_likelihood, **kwargs), em
    kwargs.setdefault("cores", min(chains, os.cpu_count() or 1))
    common = dict(draws=draws, tune=tune, chains=chains, random_seed=random_seed, progressbar=progressbar)
    if sampler == "nutpie":
        idata = _sample_nutpie(spec, model, initvals, **common, **kwargs)
    else:
        idata = _sample_pymc(spec, model, data, initvals, sampler=sampler, mass_matrix=mass_matrix,
                             warmup_start=warmup_start, **common, **dict(kwargs))
        if retry_on_divergence and sampler == "pymc" and _should_retry(idata, kwargs):
            first = idata
            kwargs["target_accept"] = RETRY_TARGET_ACCEPT
            second = _sample_pymc(spec, model, data, initvals, sampler=sampler, mass_matrix=mass_matrix,
                                  warmup_start=warmup_start, **common, **dict(kwargs))
            # Divergences come and go between runs of the same start (Old Faithful K=3:
            # 3 then 21, 267 then 0): the run with fewer is the less biased one.
            n_first, n_second = _n_divergent(first), _n_divergent(second)
            idata = second if n_second <= n_first else first
            idata.attrs.update(first_run_divergences=n_first, first_run_target_accept=_PYMC_TARGET_ACCEPT,
                               second_run_divergences=n_second, second_run_target_accept=RETRY_TARGET_ACCEPT,
                               kept_run="second" if idata is second else "first")
    return finalize(spec, idata, data, log_likelihood), em


#: A first NUTS run with more divergent transitions than this share of its draws is
#: re-sampled at ``RETRY_TARGET_ACCEPT`` (see ``fit(retry_on_divergence=...)``).
RETRY_DIVERGENCE_SHARE = 0.001
RETRY_TARGET_ACCEPT = 0.95
#: PyMC's NUTS default, what a first run uses unless told otherwise.
_PYMC_TARGET_ACCEPT = 0.8
#: What a retry records in ``idata.attrs`` (kept by :func:`finalize`, read by the verdict).
_RETRY_ATTRS = ("first_run_divergences", "first_run_target_accept", "second_run_divergences",
                "second_run_target_accept", "kept_run")


def _n_divergent(idata) -> int:
    stats = idata.get("sample_stats")
    if stats is None or "diverging" not in stats:
        return 0
    return int(np.asarray(stats["diverging"].values, dtype=bool).sum())


def _should_retry(idata, options: dict) -> bool:
    """Whether a first run's divergences call for a second at a higher ``target_accept``.

    Only when the user left ``target_accept`` alone: a value they chose is kept.
    """
    if "target_accept" in options or "target_accept" in options.get("nuts", {}):
        return False
    post = idata.posterior
    n_draws = int(post.sizes.get("chain", 1)) * int(post.sizes.get("draw", 0))
    return n_draws > 0 and _n_divergent(idata) > RETRY_DIVERGENCE_SHARE * n_draws


def _compile_nutpie(spec: ModelSpec, model, initvals):
    from ._nutpie import compile_model

    compile_kwargs = {}
    if initvals is not None:
        # Jitter weights and covariances per chain but not the means, so every
        # chain keeps EM's labelling.
        jitter = {model[name] for name in initvals if name in ("weights", spec.covariance.latent)}
        compile_kwargs = {"initial_points": initvals, "jitter_rvs": jitter}
    return compile_model(model, **compile_kwargs)  # nutpie's, with its callbacks cached between processes


def _sample_nutpie(spec: ModelSpec, model, initvals, *, draws, tune, chains, random_seed, progressbar, **kwargs):
    import nutpie

    seed = None if random_seed is None else int(random_seed)
    return nutpie.sample(_compile_nutpie(spec, model, initvals), draws=draws, tune=tune, chains=chains, seed=seed,
                         progress_bar=progressbar, **kwargs)


#: How often ``draws="auto"`` looks at how far the chains have got.
_AUTO_DRAWS_POLL_SECONDS = 0.25


def _sample_nutpie_until_reliable(spec: ModelSpec, model, data: PreparedData, initvals, *, tune, chains, random_seed,
                                  progressbar, log_likelihood, **kwargs):
    """``draws="auto"``: one nutpie run, judged at each of :data:`AUTO_DRAWS_CHECKPOINTS` until reliable.

    The run is started for the last checkpoint's draws and runs in the
    background. When every chain has made a checkpoint's draws it is paused and
    the first that many draws of each chain are finalised and judged by
    :func:`~bayesgmm.diagnostics.assess`, exactly as the user's result will be:
    the first "reliable" verdict, or the last checkpoint, ends the run. Each
    chain's draws depend only on the seed, not on when it was paused, so a seed
    gives the same result every time. Returns the finalised result.
    """
    import nutpie

    from .diagnostics import assess

    seed = None if random_seed is None else int(random_seed)
    checkpoints = AUTO_DRAWS_CHECKPOINTS
    sampler = nutpie.sample(_compile_nutpie(spec, model, initvals), draws=checkpoints[-1], tune=tune,
                            chains=chains, seed=seed, progress_bar=progressbar, blocking=False, **kwargs)
    checked, finished = [], None
    try:
        for n_draws in checkpoints:
            if finished is None and _wait_for_draws(sampler, tune + n_draws, chains):
                finished = sampler.wait()  # all draws made (or a chain failed: wait() raises its error)
            if finished is not None:
                trace = finished
            else:
                sampler.pause()
                trace = sampler.inspect()
            result = finalize(spec, trace.isel(draw=slice(0, n_draws)), data, log_likelihood)
            checked.append(n_draws)
            reliable = assess(result).reliable
            if reliable or n_draws == checkpoints[-1]:
                result.attrs.update(auto_draws_checked=checked, auto_draws_stop="reliable" if reliable else "limit")
                return result
            if finished is None:
                sampler.resume()
    finally:
        if not _is_finished(sampler):
            sampler.cancel()
    raise AssertionError("unreachable: the last checkpoint returns")  # pragma: no cover


def _is_finished(sampler) -> bool:
    # nutpie 0.16's is_finished raises TimeoutError while the chains still run.
    try:
        return bool(sampler.is_finished)
    except TimeoutError:
        return False


def _wait_for_draws(sampler, rows: int, chains: int) -> bool:
    """Block until every chain has ``rows`` draws (warm-up included); True if the run has finished."""
    while not _is_finished(sampler):
        batches, _ = sampler._sampler.inspect().get_arrow_trace()
        if len(batches) == chains and min(batch.num_rows for batch in batches) >= rows:
            return False
        time.sleep(_AUTO_DRAWS_POLL_SECONDS)
    return True


def _sample_pymc(spec: ModelSpec, model, data: PreparedData, initvals, *, sampler, mass_matrix, warmup_start,
                 draws, tune, chains, random_seed, progressbar, **kwargs):
    """``pm.sample`` with PyMC's NUTS (our cached step) or numpyro's."""
    import pymc as pm

    D = data.Z.shape[1]
    if initvals is not None:
        # PyMC's default jitter moves the means by up to a data sd, enough to swap
        # nearby components between chains; jitter a few percent instead.
        initvals = jitter_initvals(initvals, chains, random_seed, spec.covariance)
    adaptation = nuts_adaptation(spec, D, mass_matrix, jitter=initvals is None)
    if initvals is not None and sampler == "pymc":
        step_kwargs = {name: kwargs.pop(name) for name in list(kwargs) if name in NUTS_STEP_OPTIONS}
        step_kwargs.update(kwargs.pop("nuts", {}))
        kwargs["step"] = pymc_nuts_step(spec, model, D, adaptation, random_seed, step_kwargs,
                                        laplace=warmup_start == "laplace")
    else:
        kwargs.setdefault("init", adaptation)
    if initvals is not None and sampler == "numpyro":
        # PyMC's JAX path adds its own jitter, uniform(-1, 1) on the unconstrained scale:
        # it moves the standardised means by up to one data sd (enough to merge or swap
        # components) and scales the covariances by up to e. That, not the model, is
        # why numpyro chains used to settle in wrong modes; ours is jittered already.
        kwargs["nuts_sampler_kwargs"] = {"jitter": False, **kwargs.get("nuts_sampler_kwargs", {})}
    with model, warnings.catch_warnings():
        warnings.filterwarnings("ignore", _FULL_ADAPT_WARNING, UserWarning)
        try:
            return pm.sample(draws=draws, tune=tune, chains=chains, random_seed=random_seed, initvals=initvals,
                             progressbar=progressbar, nuts_sampler=sampler, compute_convergence_checks=False,
                             idata_kwargs={"log_likelihood": False}, **kwargs)
        except pm.exceptions.SamplingError as err:
            first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise RuntimeError(
                f"NUTS could not start: the log-density is not finite at the starting point ({first_line}). "
                "Try init='prior' (or 'em' if you used 'prior'), fewer components, or check the data for "
                "duplicated rows."
            ) from err


def laplace_covariance(logp_dlogp, x0: np.ndarray) -> np.ndarray | None:
    """Inverse of the negative Hessian of the log-density at x0 (central differences of the gradient).

    Returns None unless the Hessian is negative definite there (x0 is not near a mode).
    """
    n = x0.size
    step = 1e-5 * np.maximum(1.0, np.abs(x0))
    hessian = np.empty((n, n))
    for i in range(n):
        shift = np.zeros(n)
        shift[i] = step[i]
        upper = np.array(logp_dlogp(x0 + shift, extra_vars={})[1], dtype=float)
        lower = np.array(logp_dlogp(x0 - shift, extra_vars={})[1], dtype=float)
        hessian[:, i] = (upper - lower) / (2 * step[i])
    precision = -(hessian + hessian.T) / 2
    if not np.all(np.isfinite(precision)):
        return None
    try:
        chol = np.linalg.cholesky(precision)
    except np.linalg.LinAlgError:
        return None
    inv_chol = np.linalg.inv(chol)
    return inv_chol.T @ inv_chol


#: Variance factor on the Laplace approximation used to start the warm-up (sds x 2).
LAPLACE_INFLATION = 4.0



def pymc_nuts_step(spec: ModelSpec, model, n_features: int, adaptation: str, random_seed, step_kwargs: dict,
                   laplace: bool = True):
    """PyMC's NUTS step, set up as ``pm.sample(init=adaptation)`` would, on a cached compiled logp.

    ``pm.sample`` would otherwise rebuild, differentiate, rewrite and compile the
    log-density in every process (~2 s) and derive the model's logp once more to
    choose step methods; see :mod:`bayesgmm._compile_cache`.
    """
    import pymc as pm
    from pymc.blocking import DictToArrayBijection
    from pymc.step_methods.hmc import quadpotential

    from ._compile_cache import cache_key, logp_dlogp_function

    start = model.initial_point()  # transformed; cheap because every start value is set
    # The rounding error's variance is data (a pm.Data), but whether it is in the graph is structure.
    structure = {**spec.config, "rounded": NOISE_VARIANCE in model.named_vars}
    func = logp_dlogp_function(model, cache_key(structure, n_features), start)
    # NUTS always passes one float64 vector: skip PyTensor's per-call input checks. PyMC's
    # ValueGradFunction exposes its compiled function only as _pytensor_function (PyMC 5.28
    # has no public accessor), hence this one reach into a third-party private attribute.
    func._pytensor_function.trust_input = True
    mean = DictToArrayBijection.map(start).data
    n = mean.size
    # Warm-up starts from the Laplace approximation at the EM optimum instead of an
    # identity mass matrix: with an identity, the first few hundred tuning steps
    # build trees hundreds of leapfrog steps deep while the adaptation catches up
    # with a posterior that is much narrower than 1 (in the reference problem that
    # warm-up cost twice as much as the draws).
    cov = laplace_covariance(func, mean) if laplace else None
    if cov is not None:
        # Twice the Laplace sds: at the EM optimum a weakly identified component looks
        # sharper than its posterior, and a too-narrow start made the step size adapt
        # too large (Old Faithful, K=3, 8 seeds: median 50 divergences per 1000
        # draws and R-hat up to 1.87; doubled: median 18 and R-hat at most 1.17; the
        # reference problem is as fast either way).
        cov = LAPLACE_INFLATION * cov
    else:
        cov = np.eye(n)
    rng = np.random.default_rng(random_seed)
    if adaptation.endswith("adapt_full"):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", _FULL_ADAPT_WARNING, UserWarning)
            potential = quadpotential.QuadPotentialFullAdapt(n, mean, cov, 10, rng=rng)
    else:
        potential = quadpotential.QuadPotentialDiagAdapt(n, mean, np.diag(cov).copy(), 10, rng=rng)
    return pm.NUTS(model=model, potential=potential, logp_dlogp_func=func, initial_point=start, rng=rng,
                   **step_kwargs)


# ----------------------------------------------------------------------- ADVI

class LossPlateau:
    """Stop variational fitting at a plateau of the windowed mean loss, lowering the learning rate on the way.

    Parameter-change criteria never fire with minibatches (the noise keeps the
    parameters moving); the mean loss over a window is what users care about.
    Every ``window`` iterations the mean loss of the last ``n_windows`` windows is
    compared: they form a plateau when they all lie within ``tolerance * max(|loss|,
    n_rows)`` of each other (0.1% of the loss, and never less than 0.001 nats per
    data row, so a loss near zero is not held to an impossible standard). Three
    windows, not two, so that a loss that swings up and down (a learning rate too
    large) is not read as flat by chance.

    At the first plateaus the learning rates are multiplied by ``decay_factor``
    (``decays`` times): with a constant rate, Adam's steps keep the parameters
    jittering around the optimum by about a rate's worth per coordinate, which
    on the reference problem moved posterior means by up to 1.2 NUTS sds. The fit
    has converged only at a plateau at the lowest rate.
    """

    window = 500
    n_windows = 3
    tolerance = 1e-3
    decays = 2
    decay_factor = 0.1

    def __init__(self, n_rows: int = 0, learning_rates=()):
        self.n_rows = int(n_rows)
        self.learning_rates = list(learning_rates)
        self.converged = False
        self.plateaus: list[int] = []
        self._since = 0

    def figures(self, loss_hist) -> tuple[float, float]:
        """Spread of the last ``n_windows`` window means and the tolerance (NaN when too few iterations)."""
        w, k = self.window, self.n_windows
        loss_hist = np.asarray(loss_hist, dtype=float)
        if loss_hist.size < k * w:
            return float("nan"), float("nan")
        tail = loss_hist[loss_hist.size - k * w:].reshape(k, w)
        means = tail.mean(axis=1)
        if not np.all(np.isfinite(means)):
            return float("inf"), float("nan")
        return float(np.ptp(means)), float(self.tolerance * max(abs(means[-1]), self.n_rows))

    def __call__(self, approx, loss_hist, i):
        w = self.window
        if i % w or i - self._since < self.n_windows * w:
            return
        spread, tolerance = self.figures(loss_hist)  # PyMC passes the first i losses
        if not spread <= tolerance:  # also False for NaN
            return
        self.plateaus.append(int(i))
        if len(self.plateaus) > self.decays:
            self.converged = True
            raise StopIteration(f"mean loss flat within {tolerance:.3g} over {self.n_windows} windows of {w}")
        self._since = i
        for rate in self.learning_rates:
            rate.set_value(rate.get_value() * self.decay_factor)


#: Learning rate of the full-rank Cholesky factor relative to that of the means.
#: Adam moves every coordinate by about the learning rate per step whatever its
#: gradient; the factor's entries live on the scale of posterior sds (~0.01-0.1
#: on the standardised scale), so at the means' rate (0.01) the d(d+1)/2 entries
#: random-walk by a posterior sd every few steps and the covariance blows up
#: (reference problem: loss windows swinging between 58 and 1720, sds up to 86x
#: NUTS's).
FULLRANK_FACTOR_RATE = 0.1
#: Starting sd of the variational approximation around the start point
#: (standardised scale); PyMC's default (1 for mean-field, 1.31 for full rank) is a
#: whole data sd and throws away the EM start.
VI_START_SIGMA = 0.01


def _vi_optimizer(rates: dict):
    """Adam with one shared learning rate per approximation parameter (``rates``: name -> shared scalar)."""
    import pymc as pm

    def optimizer(grads, params):
        updates = {}
        for grad, param in zip(grads, params):
            updates.update(pm.adam([grad], [param], learning_rate=rates.get(param.name, rates["mu"])))
        return updates

    return optimizer


@contextlib.contextmanager
def _quiet_vi_log(quiet: bool):
    """Silence PyMC's variational "Finished"/"Interrupted"/"Convergence achieved" lines when quiet."""
    logger = logging.getLogger("pymc.variational.inference")
    level = logger.level
    if quiet:
        logger.setLevel(logging.WARNING)
    try:
        yield
    finally:
        logger.setLevel(level)


def fit_vi(spec: ModelSpec, data: PreparedData, *, method, draws, random_seed, progressbar, init, batch_size,
           n_iterations, learning_rate, log_likelihood):
    """ADVI on the standardised data; returns the result and the EM fit it started from (or None)."""
    import pymc as pm
    import pytensor

    n = data.X.shape[0]
    if batch_size == "auto":
        batch_size = _AUTO_BATCH_SIZE if n > _AUTO_BATCH_ROWS else None
    if batch_size is not None and batch_size >= n:
        batch_size = None
    model = declare_model(spec, data, batch_size=batch_size)
    _, em = start_values(spec, model, data, init, random_seed)
    rates = {"mu": pytensor.shared(pm.floatX(np.asarray(learning_rate)), name="learning_rate")}
    with model:
        vi = _vi_approximation(method, model, random_seed, rates, learning_rate)
        plateau = LossPlateau(n, rates.values())
        try:
            with _quiet_vi_log(not progressbar):
                approx = vi.fit(n=n_iterations, progressbar=progressbar, callbacks=[plateau],
                                obj_optimizer=_vi_optimizer(rates))
        except FloatingPointError as err:
            raise FloatingPointError(
                f"{method} diverged (the loss became NaN) with learning_rate={learning_rate:g}; use a smaller "
                "learning_rate (e.g. 0.001) or method='nuts'."
            ) from err
        posterior = approx.sample(draws, random_seed=random_seed, return_inferencedata=True).posterior
    check_model = model if batch_size is None else None
    if check_model is None and n <= IMPORTANCE_CHECK_MAX_ROWS:  # a minibatch logp is random: use all rows
        check_model = declare_model(spec, data)
    check_draws = importance_check_draws(n)
    pareto_k = (importance_pareto_k(approx, check_model, check_draws, random_seed)
                if check_model is not None else float("nan"))
    idata = finalize(spec, az.InferenceData(posterior=posterior), data, log_likelihood)
    history = np.asarray(approx.hist, dtype=float)
    spread, tolerance = plateau.figures(history)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", ".*fit_history.* not defined in the InferenceData scheme", UserWarning)
        idata.add_groups(fit_history=xr.Dataset({"loss": (("iteration",), history)}, attrs={
            "method": method, "converged": int(plateau.converged), "n_iterations": int(history.size),
            "batch_size": -1 if batch_size is None else int(batch_size), "learning_rate": learning_rate,
            # The convergence decision's figures (read by bayesgmm.diagnostics.assess):
            "final_learning_rate": float(rates["mu"].get_value()),
            "loss_window": LossPlateau.window, "loss_windows": LossPlateau.n_windows,
            "loss_range": spread, "loss_tolerance": tolerance,
            "plateau_iterations": [int(i) for i in plateau.plateaus],
            "loss_last_window_mean": float(history[-LossPlateau.window:].mean()) if history.size else float("nan"),
            # The importance-sampling check (read by assess; NaN where not computed):
            "pareto_k": pareto_k, "pareto_k_draws": check_draws, "pareto_k_threshold": pareto_k_threshold(check_draws),
        }))
    if not plateau.converged:
        _warn_not_converged(method, n_iterations, history, plateau, rates)
    return idata, em


#: Draws of the fitted approximation for the Pareto-k check, and the fewest on large data:
#: k-hat from 1000 draws of a good fit ranged 0.41-0.79 between seeds, from 4000 0.51-0.76.
IMPORTANCE_CHECK_DRAWS = 4000
IMPORTANCE_CHECK_MIN_DRAWS = 1000
#: Every draw evaluates the log-density on all rows: the draws shrink beyond this many
#: (draw, row) pairs, down to the minimum, and minibatch fits of more rows than the
#: maximum skip the check.
IMPORTANCE_CHECK_WORK = 40_000_000
IMPORTANCE_CHECK_MAX_ROWS = 100_000


def importance_check_draws(n_rows: int) -> int:
    """Draws for the Pareto-k check of a fit to ``n_rows`` rows."""
    return int(np.clip(IMPORTANCE_CHECK_WORK // max(n_rows, 1), IMPORTANCE_CHECK_MIN_DRAWS, IMPORTANCE_CHECK_DRAWS))


def pareto_k_threshold(n_draws: int) -> float:
    """ArviZ's bound on a reliable Pareto k-hat for ``n_draws`` draws: ``min(1 - 1/log10(S), 0.7)``."""
    return float(min(1.0 - 1.0 / np.log10(n_draws), 0.7))


def importance_log_ratios(approx, model, n_draws: int, random_seed) -> np.ndarray:
    """``log p(theta, X) - log q(theta)`` at ``n_draws`` draws of a fitted PyMC approximation ``q``.

    The draws are taken on the unconstrained scale, where ADVI fits, and ``p`` is
    ``model``'s log-density there, with the transforms' Jacobians. Constant where
    ``q`` is the posterior.

    Returns
    -------
    ndarray of shape (n_draws,)
    """
    from scipy import stats

    group = approx.groups[0]
    mean = np.asarray(group.mean.eval(), dtype=float)
    noise = np.random.default_rng(random_seed).standard_normal((n_draws, mean.size))
    # theta = mean + A noise with A lower triangular (full rank) or diagonal: log q comes
    # from the noise and log|det A| exactly, however ill-conditioned A A' is.
    if "L_tril" in group.params_dict:  # full rank
        factor = np.asarray(group.L.eval(), dtype=float)
        theta = mean + noise @ factor.T
        log_det = np.log(np.abs(np.diag(factor))).sum()
    else:
        sd = np.asarray(group.std.eval(), dtype=float)
        theta = mean + noise * sd
        log_det = np.log(sd).sum()
    log_q = stats.norm.logpdf(noise).sum(axis=-1) - log_det
    log_p_fn = model.compile_logp(jacobian=True)
    layout = list(group.ordering.values())
    log_p = np.array([log_p_fn({name: row[part].reshape(shape).astype(dtype) for name, part, shape, dtype in layout})
                      for row in theta])
    return log_p - log_q


def importance_pareto_k(approx, model, n_draws: int, random_seed) -> float:
    """Pareto k-hat of the importance ratios posterior / approximation (Yao et al., 2018).

    Pareto-smooths :func:`importance_log_ratios` with :func:`arviz.psislw`. A k-hat
    above :func:`pareto_k_threshold` means the ratios are so heavy-tailed that the
    approximation misses posterior mass: its intervals are too narrow or its means
    off, and no reweighting of its draws fixes them.

    Returns
    -------
    float
        k-hat; infinite when the model's log-density is not finite at some draw
        (the approximation puts mass where the posterior has none, or where it
        cannot be computed), which fails the check.
    """
    ratios = importance_log_ratios(approx, model, n_draws, random_seed)
    if not np.all(np.isfinite(ratios)):
        return float("inf")
    with warnings.catch_warnings():  # ArviZ warns about the k-hat it returns; the verdict reports it
        warnings.simplefilter("ignore")
        _, k_hat = az.psislw(ratios - ratios.max())
    return float(k_hat)


def _vi_approximation(method: str, model, random_seed, rates: dict, learning_rate: float):
    """PyMC's ADVI or FullRankADVI, started narrow around the model's initial point."""
    import pymc as pm
    import pytensor

    if method == "advi":
        # Start narrow around the initial point: MeanField's default sd of 1 is a whole
        # data sd on the standardised scale and makes the first steps pure noise.
        start_sigma = {v.name: np.full(model.initial_point()[v.name].size, VI_START_SIGMA)
                       for v in model.value_vars}
        return pm.ADVI(start_sigma=start_sigma, random_seed=random_seed)
    vi = pm.FullRankADVI(random_seed=random_seed)
    # The same narrow start for the Cholesky factor of the full-rank covariance.
    # PyMC starts it at the identity (sds of 1.31 around the EM start): on the
    # reference problem (issue #11) that ended with a component emptied (weight
    # 0.01) and means 75-120 NUTS sds off, at learning rate 0.01 or 0.001 alike.
    group = vi.approx.groups[0]
    dim = group.ddim
    factor = np.zeros((dim, dim))
    factor[np.diag_indices(dim)] = np.log(np.expm1(VI_START_SIGMA))  # PyMC maps the diagonal by softplus
    group.params_dict["L_tril"].set_value(pm.floatX(factor[np.tril_indices(dim)]))
    rates["L_tril"] = pytensor.shared(pm.floatX(np.asarray(learning_rate * FULLRANK_FACTOR_RATE)),
                                      name="learning_rate_L")
    return vi


def _warn_not_converged(method: str, n_iterations: int, history: np.ndarray, plateau: LossPlateau, rates: dict):
    from .diagnostics import PosteriorDiagnosticsWarning

    w, k = LossPlateau.window, LossPlateau.n_windows
    spread, tolerance = plateau.figures(history)
    if np.isnan(spread):
        figures = f"only {history.size} iterations, fewer than the {k} windows of {w} needed to see a plateau"
    elif not spread <= tolerance:
        figures = (f"the mean loss over the last {k} windows of {w} iterations spread over {spread:.3g}, more "
                   f"than the tolerance {tolerance:.3g}")
    else:
        figures = (f"the loss was flat at learning rate {float(rates['mu'].get_value()):.3g} but had reached "
                   f"{len(plateau.plateaus)} of the {LossPlateau.decays + 1} plateaus (one per learning-rate "
                   "decay) needed")
    warnings.warn(
        f"{method} did not converge in {n_iterations} iterations ({figures}); its posterior is not "
        "trustworthy: raise n_iterations, lower learning_rate, or use method='nuts'.",
        PosteriorDiagnosticsWarning,
        stacklevel=4,
    )


# -------------------------------------------------------------------- results
#: Above this many (draw, row) pairs the pointwise log-likelihood is not stored by default.
LOG_LIKELIHOOD_AUTO_LIMIT = 20_000_000


def finalize(spec: ModelSpec, idata, data: PreparedData, log_likelihood: bool | str = "auto"):
    """The result of any sampler: parameters in data units, pointwise log-likelihood, observed data.

    The sampler's draws of the standardised latents become Cholesky factors
    through the covariance strategy and the parameters dataset through
    :func:`~bayesgmm._posterior.parameters_dataset` (computed on the standardised
    scale, then moved to the data's units, so nothing under- or overflows
    whatever the units); the latents stay in the posterior.
    """
    post = idata.posterior
    (N, D), K = data.X.shape, spec.n_components
    weights, means_z = post["weights"].values, post["means_z"].values
    # The observed values' covariances: the latent ones plus the rounding error.
    chol_z = add_noise(spec.covariance.cholesky(post[spec.covariance.latent].values, K, D), data.noise_variance_z)
    parameters = parameters_dataset(weights, means_z, chol_z, data.names, centre=data.centre, scale=data.scale,
                                    correlations=spec.covariance.correlated, chain=post.chain.values,
                                    draw=post.draw.values)
    post = post.assign_coords(feature=data.names, feature_bis=data.names, component=np.arange(K))
    post = post.assign({name: parameters[name] for name in parameters.data_vars if name != "weights"})
    n_chain, n_draw = weights.shape[:2]
    groups = {
        "posterior": post,
        "observed_data": xr.Dataset({"obs": (("obs_id", "feature"), data.X)},
                                    coords={"obs_id": np.arange(N), "feature": data.names}),
    }
    if log_likelihood == "auto":
        log_likelihood = n_chain * n_draw * N <= LOG_LIKELIHOOD_AUTO_LIMIT
    if log_likelihood:
        flat = lambda a: a.reshape((n_chain * n_draw,) + a.shape[2:])  # noqa: E731
        # log p(x) = log p(z) - sum(log s): computed on the standardised scale, exact in any units.
        loglik = pointwise_log_likelihood(data.Z, flat(weights), flat(means_z), flat(chol_z))
        loglik = loglik.reshape(n_chain, n_draw, -1) - np.log(data.scale).sum()
        coords = {"chain": post.chain.values, "draw": post.draw.values, "obs_id": np.arange(N)}
        groups["log_likelihood"] = xr.Dataset({"obs": (("chain", "draw", "obs_id"), loglik)}, coords=coords)
    if "sample_stats" in idata.groups():
        groups["sample_stats"] = idata.sample_stats
    result = az.InferenceData(**groups)
    result.attrs.update({k: idata.attrs[k] for k in _RETRY_ATTRS if k in idata.attrs})
    result.attrs.update(data_centre=[float(v) for v in data.centre], data_scale=[float(v) for v in data.scale],
                        data_rounding=[float(v) for v in (data.rounding if data.rounding is not None else
                                                          np.zeros(D))],
                        covariance_type=spec.covariance.name, n_components=K)
    return result

def warn_on_diagnostics(idata):
    """Warn when the posterior is unreliable; the message starts with the verdict's headline.

    The verdict (:func:`bayesgmm.diagnostics.assess`) covers divergences, R-hat and
    bulk/tail ESS on label-invariant quantities, E-BFMI and, for ADVI, the loss
    plateau. The warning is a :class:`~bayesgmm.PosteriorDiagnosticsWarning` whose
    first line is the headline and whose next lines give every reason and what to do.

    Returns
    -------
    Verdict
    """
    from .diagnostics import PosteriorDiagnosticsWarning, assess

    verdict = assess(idata)
    if verdict.label == "unreliable":
        warnings.warn(verdict.details(), PosteriorDiagnosticsWarning, stacklevel=3)
    return verdict
