"""Running NUTS and variational inference for :class:`~bayesgmm.BayesianGMM`.

Every path ends in :func:`finalize`, which turns the sampler's draws of the
standardised latents into the quantities users want (weights, means, standard
deviations, correlations, covariances in data units) and adds the pointwise
log-likelihood computed in NumPy (:mod:`bayesgmm.density`), so ``az.loo`` works on
any result without compiling another PyTensor function.
"""

from __future__ import annotations

import importlib.util
import os
import warnings

import arviz as az
import numpy as np
import xarray as xr

from ._lkj import unpack_cholesky
from .density import pointwise_log_likelihood
from .em import GaussianMixtureEM

_SAMPLER_MODULES = {"pymc": (), "nutpie": ("nutpie",), "numpyro": ("numpyro", "jax")}
#: The NUTS implementations ``BayesianGMM.fit(sampler=...)`` accepts.
SAMPLERS = tuple(_SAMPLER_MODULES)
_AUTO_BATCH_ROWS = 20_000
_AUTO_BATCH_SIZE = 2_000


def check_sampler(sampler: str) -> None:
    """Refuse an unknown sampler name, or one whose package is not installed."""
    if sampler not in _SAMPLER_MODULES:
        raise ValueError(f"sampler must be one of {tuple(_SAMPLER_MODULES)}, got {sampler!r}.")
    missing = [m for m in _SAMPLER_MODULES[sampler] if importlib.util.find_spec(m) is None]
    if missing:
        extra = f" (pip install 'bayesgmm[{'jax' if sampler == 'numpyro' else 'nutpie'}]')"
        raise ImportError(f"sampler={sampler!r} needs {', '.join(missing)}, which is not installed{extra}.")


# --------------------------------------------------------------------------- start
def em_start(gmm, Z: np.ndarray, random_seed) -> tuple[dict, GaussianMixtureEM]:
    """Initial values of the free variables at an EM solution fitted here.

    EM is fitted on the standardised data ``Z`` (what the model sees), so the start,
    like the posterior, does not depend on the units of X; ``gmm.em_`` is that fit,
    on the standardised scale.
    """
    K, D = gmm.n_components, Z.shape[1]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        em = GaussianMixtureEM(K, covariance_type=gmm.covariance_type, n_init=3, tol=1e-6, max_iter=500,
                               random_state=random_seed).fit(Z)
    cov_z = _full_covariances(np.asarray(em.covariances_, dtype=float), gmm.covariance_type, K, D)
    return _initvals_at(gmm, em.weights_, np.asarray(em.means_, dtype=float), cov_z), em


def fitted_em_start(gmm, em: GaussianMixtureEM, data) -> dict:
    """Initial values at an EM fit the caller already has, fitted on X in the data's units.

    Its means and covariances are moved to the standardised scale the model works
    on; a fit of another covariance type gives the nearest start of this model's
    type (e.g. the diagonal of a full covariance).
    """
    K, D = gmm.n_components, data.Z.shape[1]
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
    if gmm.covariance_type in ("diag", "spherical"):
        cov_z = np.einsum("kd,de->kde", np.diagonal(cov_z, axis1=1, axis2=2), np.eye(D))
    return _initvals_at(gmm, np.asarray(em.weights_, dtype=float), means_z, cov_z)


def _initvals_at(gmm, weights: np.ndarray, means_z: np.ndarray, cov_z: np.ndarray) -> dict:
    """The free variables' values at a mixture given on the standardised scale."""
    K, D = means_z.shape
    names = gmm._scaling["feature"]
    order_feature = gmm._order_feature(names)
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
    if gmm.covariance_type == "full":
        initvals["chol_cov_z"] = np.linalg.cholesky(cov_z)[:, *np.tril_indices(D)]
    else:
        initvals["sds_z"] = np.sqrt(np.diagonal(cov_z, axis1=1, axis2=2))
    if not all(np.all(np.isfinite(v)) for v in initvals.values()):
        raise ValueError("the EM solution has non-finite parameters")
    return initvals


def _full_covariances(covariances: np.ndarray, covariance_type: str, K: int, D: int) -> np.ndarray:
    """EM's ``covariances_`` of any type as (K, D, D) matrices."""
    if covariance_type == "full":
        return covariances.reshape(K, D, D)
    if covariance_type == "diag":
        return np.einsum("kd,de->kde", covariances.reshape(K, D), np.eye(D))
    if covariance_type == "tied":
        return np.broadcast_to(covariances.reshape(D, D), (K, D, D)).copy()
    return np.einsum("k,de->kde", covariances.reshape(K), np.eye(D))  # spherical


def start_values(gmm, model, data, init, random_seed) -> dict | None:
    """The EM start set on ``model`` (``init="em"`` or a fitted EM), or None to start where PyMC does.

    Where EM cannot fit (e.g. many tied rows for K components) the sampler starts
    from PyMC's default point instead, with a warning.
    """
    gmm.em_ = None
    if isinstance(init, GaussianMixtureEM):
        initvals = fitted_em_start(gmm, init, data)
        gmm.em_ = init
        for name, value in initvals.items():
            model.set_initval(model[name], value)
        return initvals
    if init != "em":
        return None
    try:
        initvals, gmm.em_ = em_start(gmm, data.Z, random_seed)
    except (ValueError, FloatingPointError, np.linalg.LinAlgError) as err:
        warnings.warn(f"The EM start failed ({err}); starting from the prior's default point instead "
                      "(init='prior').", UserWarning, stacklevel=4)
        return None
    # With every free variable's start set, PyMC's initial point is cheap (otherwise
    # it compiles LKJ's default-value graph: ~1.5 s of every fit).
    for name, value in initvals.items():
        model.set_initval(model[name], value)
    return initvals


def jitter_initvals(initvals: dict, chains: int, random_seed) -> list[dict]:
    """One slightly perturbed copy of the EM start per chain (labels preserved)."""
    rng = np.random.default_rng(random_seed)
    out = []
    for _ in range(chains):
        point = {}
        for name, value in initvals.items():
            value = np.asarray(value, dtype=float)
            if name == "weights":
                w = value * np.exp(rng.normal(0, 0.05, value.shape))
                point[name] = w / w.sum()
            elif name in ("sds_z", "chol_cov_z"):
                point[name] = value * np.exp(rng.normal(0, 0.05, value.shape))  # the diagonal stays positive
            elif name.endswith("_ordered"):
                point[name] = np.sort(value + rng.normal(0, 0.02, value.shape)) + np.arange(value.size) * 1e-6
            else:
                point[name] = value + rng.normal(0, 0.02, value.shape)
        out.append(point)
    return out


# --------------------------------------------------------------------------- NUTS
#: Above this many free parameters a dense mass matrix costs more than it gains.
FULL_MASS_MATRIX_MAX_PARAMETERS = 200


def nuts_adaptation(gmm, n_features: int, mass_matrix: str, jitter: bool) -> str:
    """PyMC's ``init`` for the requested mass matrix ("auto": dense for small models)."""
    if mass_matrix == "auto":
        K, D = gmm.n_components, n_features
        n_scale = D * (D + 1) // 2 if gmm.covariance_type == "full" else D
        n_free = (K - 1) + K * D + K * n_scale  # simplex, means, scales
        mass_matrix = "full" if n_free <= FULL_MASS_MATRIX_MAX_PARAMETERS else "diag"
    return ("jitter+" if jitter else "") + f"adapt_{mass_matrix}"


def fit_nuts(gmm, X, *, draws, tune, chains, random_seed, progressbar, init, sampler, log_likelihood,
             mass_matrix="auto", warmup_start="laplace", **kwargs):
    """NUTS on the standardised data; X is array-like or the checked data from ``gmm._prepare``."""
    data = gmm._prepare(X)
    X_arr = data.X
    # JAX (numpyro) and numba (nutpie) compile the graph themselves: they need plain
    # PyTensor operations, not our compiled-kernel Op.
    model = gmm.build_model(data, likelihood="kernel" if sampler == "pymc" else "graph")
    initvals = start_values(gmm, model, data, init, random_seed)
    if sampler == "nutpie":
        import nutpie

        compile_kwargs = {}
        if initvals is not None:
            # Jitter weights and covariances per chain but not the means, so every
            # chain keeps EM's labelling.
            jitter = {model[name] for name in initvals if name in ("weights", "sds_z", "chol_cov_z")}
            compile_kwargs = {"initial_points": initvals, "jitter_rvs": jitter}
        compiled = nutpie.compile_pymc_model(model, **compile_kwargs)
        seed = None if random_seed is None else int(random_seed)
        kwargs.setdefault("cores", min(chains, os.cpu_count() or 1))
        idata = nutpie.sample(compiled, draws=draws, tune=tune, chains=chains, seed=seed,
                              progress_bar=progressbar, **kwargs)
    else:
        import pymc as pm

        if initvals is not None:
            # PyMC's default jitter moves the means by up to a data sd, enough to swap
            # nearby components between chains; jitter a few percent instead.
            initvals = jitter_initvals(initvals, chains, random_seed)
        adaptation = nuts_adaptation(gmm, X_arr.shape[1], mass_matrix, jitter=initvals is None)
        kwargs.setdefault("cores", min(chains, os.cpu_count() or 1))
        if initvals is not None and sampler == "pymc":
            step_kwargs = {name: kwargs.pop(name) for name in list(kwargs) if name in _NUTS_STEP_ARGS}
            step_kwargs.update(kwargs.pop("nuts", {}))
            kwargs["step"] = pymc_nuts_step(gmm, model, X_arr.shape[1], adaptation, random_seed, step_kwargs,
                                            laplace=warmup_start == "laplace")
        else:
            kwargs.setdefault("init", adaptation)
        with model, warnings.catch_warnings():
            warnings.filterwarnings("ignore", "QuadPotentialFullAdapt is an experimental", UserWarning)
            try:
                idata = pm.sample(
                    draws=draws, tune=tune, chains=chains,
                    random_seed=random_seed, initvals=initvals, progressbar=progressbar,
                    nuts_sampler=sampler, compute_convergence_checks=False,
                    idata_kwargs={"log_likelihood": False}, **kwargs,
                )
            except pm.exceptions.SamplingError as err:
                first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
                raise RuntimeError(
                    f"NUTS could not start: the log-density is not finite at the starting point ({first_line}). "
                    "Try init='prior' (or 'em' if you used 'prior'), fewer components, or check the data for "
                    "duplicated rows."
                ) from err
    return finalize(gmm, idata, data, log_likelihood)


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

#: Keyword arguments of ``pm.NUTS`` (the rest go to ``pm.sample``).
_NUTS_STEP_ARGS = frozenset({"target_accept", "max_treedepth", "early_max_treedepth", "step_scale",
                             "adapt_step_size", "gamma", "k", "t0", "Emax"})


def pymc_nuts_step(gmm, model, n_features: int, adaptation: str, random_seed, step_kwargs: dict,
                   laplace: bool = True):
    """PyMC's NUTS step, set up as ``pm.sample(init=adaptation)`` would, on a cached compiled logp.

    ``pm.sample`` would otherwise rebuild, differentiate, rewrite and compile the
    log-density in every process (~2 s) and derive the model's logp once more to
    choose step methods; see :mod:`bayesgmm._compile_cache`.
    """
    import pymc as pm
    from pymc.blocking import DictToArrayBijection
    from pymc.step_methods.hmc import quadpotential

    from . import _compile_cache

    start = model.initial_point()  # transformed; cheap because every start value is set
    func = _compile_cache.logp_dlogp_function(model, _compile_cache.cache_key(gmm.config, n_features), start)
    # NUTS always passes one float64 vector: skip PyTensor's per-call input checks.
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


def fit_vi(gmm, X, *, method, draws, random_seed, progressbar, init, batch_size, n_iterations, learning_rate,
           log_likelihood):
    """ADVI on the standardised data; X is array-like or the checked data from ``gmm._prepare``."""
    import pymc as pm

    data = gmm._prepare(X)
    n = data.X.shape[0]
    if batch_size == "auto":
        batch_size = _AUTO_BATCH_SIZE if n > _AUTO_BATCH_ROWS else None
    if batch_size is not None and batch_size >= n:
        batch_size = None
    model = gmm.build_model(data, batch_size=batch_size)
    start_values(gmm, model, data, init, random_seed)  # uses the scaling build_model set
    import pytensor

    rates = {"mu": pytensor.shared(pm.floatX(np.asarray(learning_rate)), name="learning_rate")}
    with model:
        if method == "advi":
            # Start narrow around the initial point: MeanField's default sd of 1 is a whole
            # data sd on the standardised scale and makes the first steps pure noise.
            start_sigma = {v.name: np.full(model.initial_point()[v.name].size, VI_START_SIGMA)
                           for v in model.value_vars}
            vi = pm.ADVI(start_sigma=start_sigma, random_seed=random_seed)
        else:
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
        plateau = LossPlateau(n, rates.values())
        try:
            approx = vi.fit(n=n_iterations, progressbar=progressbar, callbacks=[plateau],
                            obj_optimizer=_vi_optimizer(rates))
        except FloatingPointError as err:
            raise FloatingPointError(
                f"{method} diverged (the loss became NaN) with learning_rate={learning_rate:g}; use a smaller "
                "learning_rate (e.g. 0.001) or method='nuts'."
            ) from err
        posterior = approx.sample(draws, random_seed=random_seed, return_inferencedata=True).posterior
    idata = finalize(gmm, az.InferenceData(posterior=posterior), data, log_likelihood)
    history = np.asarray(approx.hist, dtype=float)
    converged = plateau.converged
    spread, tolerance = plateau.figures(history)
    fit_history = xr.Dataset(
        {"loss": (("iteration",), history)},
        attrs={"method": method, "converged": int(converged), "n_iterations": int(history.size),
               "batch_size": -1 if batch_size is None else int(batch_size), "learning_rate": learning_rate,
               # The convergence decision's figures (read by bayesgmm.diagnostics.assess):
               "final_learning_rate": float(rates["mu"].get_value()),
               "loss_window": LossPlateau.window, "loss_windows": LossPlateau.n_windows,
               "loss_range": spread, "loss_tolerance": tolerance,
               "plateau_iterations": [int(i) for i in plateau.plateaus],
               "loss_last_window_mean": float(history[-LossPlateau.window:].mean()) if history.size else float("nan")},
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # ArviZ notes that the group is not a standard one
        idata.add_groups(fit_history=fit_history)
    if not converged:
        from .diagnostics import PosteriorDiagnosticsWarning

        w, k = LossPlateau.window, LossPlateau.n_windows
        if np.isnan(spread):
            figures = (f"only {history.size} iterations, fewer than the {k} windows of {w} needed to see a "
                       "plateau")
        else:
            figures = (f"the mean loss over the last {k} windows of {w} iterations spread over {spread:.3g}, "
                       f"more than the tolerance {tolerance:.3g}" if not spread <= tolerance else
                       f"the loss was flat at learning rate {float(rates['mu'].get_value()):.3g} but had "
                       f"reached {len(plateau.plateaus)} of the {LossPlateau.decays + 1} plateaus (one per "
                       "learning-rate decay) needed")
        warnings.warn(
            f"{method} did not converge in {n_iterations} iterations ({figures}); its posterior is not "
            "trustworthy: raise n_iterations, lower learning_rate, or use method='nuts'.",
            PosteriorDiagnosticsWarning,
            stacklevel=3,
        )
    return idata


# -------------------------------------------------------------------- results
#: Above this many (draw, row) pairs the pointwise log-likelihood is not stored by default.
LOG_LIKELIHOOD_AUTO_LIMIT = 20_000_000


def finalize(gmm, idata, X, log_likelihood: bool | str = "auto"):
    """Add derived quantities, the pointwise log-likelihood and the observed data.

    Everything is computed from the standardised latents and only then scaled to
    the data's units, so no intermediate under- or overflows whatever the units.
    X is the data in its units (array) or the checked data from ``gmm._prepare``.
    """
    centre, scale = np.asarray(gmm._scaling["centre"], dtype=float), np.asarray(gmm._scaling["scale"], dtype=float)
    names = gmm._scaling["feature"]
    if isinstance(X, np.ndarray):
        Z = gmm._standardise(X)
    else:
        X, Z = X.X, X.Z
    post = idata.posterior
    D = X.shape[1]
    means_z = post["means_z"].values
    means = centre + scale * means_z
    if gmm.covariance_type == "full":
        chol_z = unpack_cholesky(post["chol_cov_z"].values, D)
    else:
        chol_z = np.einsum("...d,de->...de", post["sds_z"].values, np.eye(D))
    chol = scale[:, None] * chol_z
    cov_z = chol_z @ np.swapaxes(chol_z, -1, -2)
    cov = np.outer(scale, scale) * cov_z
    stds_z = np.sqrt(np.diagonal(cov_z, axis1=-2, axis2=-1))
    stds = scale * stds_z
    corr = cov_z / (stds_z[..., :, None] * stds_z[..., None, :])
    chain_draw = ("chain", "draw")
    mat = (*chain_draw, "component", "feature", "feature_bis")
    derived = {
        "means": ((*chain_draw, "component", "feature"), means),
        "stds": ((*chain_draw, "component", "feature"), stds),
        "cov": (mat, cov),
        "chol": (mat, chol),
    }
    if gmm.covariance_type == "full":
        derived["corr"] = (mat, corr)
    post = post.assign(derived).assign_coords(feature=names, feature_bis=names,
                                              component=np.arange(gmm.n_components))
    weights = post["weights"].values
    n_chain, n_draw = weights.shape[:2]
    groups = {
        "posterior": post,
        "observed_data": xr.Dataset({"obs": (("obs_id", "feature"), X)},
                                    coords={"obs_id": np.arange(X.shape[0]), "feature": names}),
    }
    if log_likelihood == "auto":
        log_likelihood = n_chain * n_draw * X.shape[0] <= LOG_LIKELIHOOD_AUTO_LIMIT
    if log_likelihood:
        flat = lambda a: a.reshape((n_chain * n_draw,) + a.shape[2:])  # noqa: E731
        # log p(x) = log p(z) - sum(log s): computed on the standardised scale, exact in any units.
        loglik = pointwise_log_likelihood(Z, flat(weights), flat(means_z), flat(chol_z)).reshape(n_chain, n_draw, -1)
        loglik = loglik - np.log(scale).sum()
        coords = {"chain": post.chain.values, "draw": post.draw.values, "obs_id": np.arange(X.shape[0])}
        groups["log_likelihood"] = xr.Dataset({"obs": ((*chain_draw, "obs_id"), loglik)}, coords=coords)
    if "sample_stats" in idata.groups():
        groups["sample_stats"] = idata.sample_stats
    result = az.InferenceData(**groups)
    result.attrs.update(
        data_centre=[float(v) for v in centre],
        data_scale=[float(v) for v in scale],
        covariance_type=gmm.covariance_type,
        n_components=gmm.n_components,
    )
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
