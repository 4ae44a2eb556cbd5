"""One sampler / fit configuration for :meth:`BayesianGMM.fit` and everything that calls it.

Settings are a plain dict merged over :data:`FIT_DEFAULTS` (``defaults | overrides``,
as pymc-marketing's ``model_builder`` does), every value checked through one
argument table. ``BayesianGMM.fit``, ``compare_k``, the report and the CLI all
take their settings from :func:`fit_settings`, so a default or a check is written
once.

Examples
--------
>>> from bayesgmm.fit_settings import fit_settings
>>> settings = fit_settings({"draws": 500}, sampler="pymc", chains=4, target_accept=0.9)
>>> settings["draws"], settings["chains"], settings["tune"], settings["target_accept"]
(500, 4, 1000, 0.9)

``"auto"`` settings are resolved here, for the sampler chosen: with nutpie (the
default where it is installed) ``draws="auto"`` samples until the diagnostics
pass (see :data:`SAMPLER_DEFAULTS`).

>>> fit_settings(sampler="nutpie")["tune"]
2000
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import os
from collections.abc import Mapping

import numpy as np

from ._validation import check_integer_param, check_option, check_probability, check_real_param

__all__ = ["FIT_DEFAULTS", "FIT_ARGUMENTS", "SAMPLER_DEFAULTS", "SAMPLER_ENV", "AUTO_DRAWS_CHECKPOINTS",
           "NUTS_STEP_OPTIONS", "PYMC_SAMPLE_OPTIONS", "SAMPLERS", "METHODS", "INITS", "auto_sampler",
           "MAX_SEED", "check_random_seed", "check_sampler_options", "fit_settings"]

#: The fitting methods of :meth:`BayesianGMM.fit`.
METHODS = ("nuts", "advi", "fullrank_advi")
#: The NUTS implementations ``BayesianGMM.fit(sampler=...)`` accepts.
SAMPLERS = ("pymc", "nutpie", "numpyro")
#: Starting points by name (a fitted ``GaussianMixtureEM`` is the other choice).
INITS = ("em", "em_dispersed", "prior")
#: Seeds are stored in the saved file's attributes and passed to every backend.
MAX_SEED = 2**32 - 1

#: Defaults of every fit setting (the keyword defaults of :meth:`BayesianGMM.fit`);
#: the ``"auto"`` ones are resolved by :func:`fit_settings` for the sampler chosen.
FIT_DEFAULTS: dict = {
    "method": "nuts",
    "draws": "auto",
    "tune": "auto",
    "chains": "auto",
    "random_seed": None,
    "progressbar": True,
    "init": "em",
    "sampler": "auto",
    "mass_matrix": "auto",
    "warmup_start": "laplace",
    "batch_size": "auto",
    "n_iterations": 20_000,
    "learning_rate": 0.01,
    "log_likelihood": "auto",
    "check_diagnostics": True,
    "retry_on_divergence": True,
}

#: ``sampler="auto"`` takes this environment variable's sampler where it is set
#: (e.g. ``BAYESGMM_SAMPLER=pymc`` to keep PyMC's sampler without changing code).
SAMPLER_ENV = "BAYESGMM_SAMPLER"

#: What ``draws``, ``tune`` and ``chains`` set to ``"auto"`` mean for each NUTS
#: sampler, and the ``target_accept`` used where none is given. nutpie's are the
#: settings that made Old Faithful's overlapping K=3 and K=4 posteriors mix
#: (docs/sampling.md): four chains, a longer warm-up, smaller steps, and
#: ``draws="auto"``, which samples until the diagnostics pass, looking at the
#: draws per chain in :data:`AUTO_DRAWS_CHECKPOINTS`. PyMC's and numpyro's runs
#: cannot be extended, so "auto" is a fixed 1000 draws there.
SAMPLER_DEFAULTS: dict = {
    "nutpie": {"draws": "auto", "tune": 2000, "chains": 4, "target_accept": 0.97},
    "pymc": {"draws": 1000, "tune": 1000, "chains": 2},
    "numpyro": {"draws": 1000, "tune": 1000, "chains": 2},
}
#: ADVI: draws from the fitted approximation (tune and chains are NUTS's and unused).
_VI_DEFAULTS = {"draws": 1000, "tune": 1000, "chains": 2}
#: ``draws="auto"`` (nutpie): the draws per chain at which the diagnostics are
#: checked; sampling stops at the first where the verdict is "reliable", or at the last.
AUTO_DRAWS_CHECKPOINTS = (1000, 2000, 4000, 6000, 8000, 10000)


# ------------------------------------------------------------------ checkers
def _integer(minimum=None, maximum=None):
    return lambda value, name: check_integer_param(value, name, minimum=minimum, maximum=maximum)


def _integer_or_auto(minimum):
    def check(value, name):
        if isinstance(value, str) and value == "auto":
            return value
        if isinstance(value, str):
            raise TypeError(f"{name} must be an integer >= {minimum} or 'auto', got {value!r} (str).")
        return check_integer_param(value, name, minimum=minimum)
    return check


def _option(*options):
    return lambda value, name: check_option(value, name, options)


def _positive(value, name):
    return check_real_param(value, name, minimum=0.0, strict=True)


def _flag(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r} ({type(value).__name__}).")
    return bool(value)


def check_random_seed(value, name: str = "random_seed"):
    """None or an integer in [0, 2**32 - 1] (what every backend and the saved file accept)."""
    return None if value is None else check_integer_param(value, name, minimum=0, maximum=MAX_SEED)


def _init(value, name):
    """"em", "prior", or a fitted GaussianMixtureEM to start from."""
    from .em import GaussianMixtureEM

    if isinstance(value, GaussianMixtureEM):
        if not hasattr(value, "means_"):
            raise ValueError(f"{name} is a GaussianMixtureEM that has not been fitted; call its fit(X) first.")
        return value
    if isinstance(value, str):
        return check_option(value, name, INITS)
    raise TypeError(f"{name} must be one of {INITS} or a fitted GaussianMixtureEM, got {value!r} "
                    f"({type(value).__name__}).")


def _batch_size(value, name):
    if value is None or (isinstance(value, str) and value == "auto"):
        return value
    if isinstance(value, str):
        raise ValueError(f"{name} must be a positive integer, 'auto' or None, got {value!r}.")
    return check_integer_param(value, name, minimum=1)


def _dual_averaging_k(value, name):
    value = check_real_param(value, name, minimum=0.5, strict=True)
    if value > 1:
        raise ValueError(f"{name} must be in (0.5, 1], got {value!r}.")
    return value


def _blas_cores(value, name):
    if value is None or (isinstance(value, str) and value == "auto"):
        return value
    return check_integer_param(value, name, minimum=1)


def _callable(value, name):
    if value is not None and not callable(value):
        raise TypeError(f"{name} must be callable or None, got {value!r}.")
    return value


def _mapping(value, name):
    if value is not None and not isinstance(value, Mapping):
        raise TypeError(f"{name} must be a dict or None, got {value!r} ({type(value).__name__}).")
    return value


def _anything(value, name):
    return value


# ------------------------------------------------------------- the one table
#: Every fit setting and what it may be.
FIT_ARGUMENTS = {
    "method": _option(*METHODS),
    "draws": _integer_or_auto(1),
    "tune": _integer_or_auto(0),
    "chains": _integer_or_auto(1),
    "random_seed": check_random_seed,
    "progressbar": _flag,
    "init": _init,
    "sampler": _option("auto", *SAMPLERS),
    "mass_matrix": _option("auto", "full", "diag"),
    "warmup_start": _option("laplace", "identity"),
    "batch_size": _batch_size,
    "n_iterations": _integer(1),
    "learning_rate": _positive,
    "log_likelihood": _option(True, False, "auto"),
    "check_diagnostics": _flag,
    "retry_on_divergence": _flag,
}

#: Options of PyMC's NUTS step (also accepted inside ``nuts={...}``).
NUTS_STEP_OPTIONS = {
    "target_accept": check_probability,
    "max_treedepth": _integer(1),
    "early_max_treedepth": _integer(1),
    "step_scale": _positive,
    "adapt_step_size": _flag,
    "gamma": _positive,
    "k": _dual_averaging_k,
    "t0": _positive,
    "Emax": _positive,
}

#: Sampler options accepted with ``sampler="pymc"``: the NUTS step's options and these of ``pm.sample``.
PYMC_SAMPLE_OPTIONS = {
    **NUTS_STEP_OPTIONS,
    "cores": _integer(1),
    "discard_tuned_samples": _flag,
    "keep_warning_stat": _flag,
    "quiet": _flag,
    "jitter_max_retries": _integer(0),
    "blas_cores": _blas_cores,
    "callback": _callable,
    "compile_kwargs": _mapping,
    "mp_ctx": _anything,
    "progressbar_theme": _anything,
}

#: Options the other NUTS samplers share with PyMC's, checked the same way (the names each takes:
#: _check_external_options).
_EXTERNAL_SAMPLE_OPTIONS = {
    "target_accept": check_probability,
    "cores": _integer(1),
    "max_treedepth": _integer(1),
    "maxdepth": _integer(1),
}

#: Set by ``fit`` itself: passing them would conflict with what it does.
_RESERVED_SAMPLE_OPTIONS = ("step", "var_names", "nuts_sampler", "nuts_sampler_kwargs", "initvals", "idata_kwargs",
                            "compute_convergence_checks", "return_inferencedata", "model", "trace", "n_init", "seed",
                            "progress_bar", "compiled_model")


def check_sampler_options(method: str, sampler: str, options: Mapping) -> dict:
    """Sampler options (``fit``'s ``**sampler_kwargs``): known names with valid values, for that sampler."""
    if not options:
        return {}
    if method != "nuts":
        raise TypeError(f"Keyword argument(s) {sorted(options)} apply only to method='nuts'; method={method!r} "
                        "takes draws, random_seed, init, batch_size, n_iterations and learning_rate.")
    reserved = sorted(set(options) & set(_RESERVED_SAMPLE_OPTIONS))
    if reserved:
        raise TypeError(f"fit() sets {reserved} itself; use draws, tune, chains, random_seed, progressbar, init, "
                        "mass_matrix and warmup_start instead.")
    out = dict(options)
    if sampler == "pymc":
        unknown = sorted(set(options) - set(PYMC_SAMPLE_OPTIONS) - {"nuts"})
        if unknown:
            raise TypeError(f"fit() got unexpected keyword argument(s) {unknown}; with sampler='pymc' the NUTS "
                            f"options are {sorted([*PYMC_SAMPLE_OPTIONS, 'nuts'])}.")
        rules = PYMC_SAMPLE_OPTIONS
        if "nuts" in out:
            out["nuts"] = _check_nuts_dict(out["nuts"])
    else:
        out = _check_external_options(sampler, out)
        rules = _EXTERNAL_SAMPLE_OPTIONS
    for name, value in out.items():
        if name in rules:
            out[name] = rules[name](value, name)
    return out


#: What fit passes to nutpie.sample itself, or that this package does not support there.
_NUTPIE_SET_BY_FIT = frozenset({"compiled_model", "draws", "tune", "chains", "seed", "progress_bar", "blocking",
                                "return_raw_trace", "init_mean", "zarr_store", "num_chains", "num_draws",
                                "num_tune", "Diag", "LowRank", "Transform", "set_target_accept"})
#: With sampler="numpyro", the options PyMC passes on (it drops other keyword arguments
#: unused); of ``nuts={...}`` only its ``target_accept``.
_NUMPYRO_OPTIONS = ("target_accept", "cores", "quiet", "blas_cores", "nuts")


@functools.cache
def _nutpie_option_names() -> frozenset | None:
    """The options nutpie.sample takes beyond those fit sets: its keyword parameters and its settings' attributes.

    Read from nutpie itself (it sets any other keyword on its settings object, which
    fails with an AttributeError only after the model has compiled). None where
    nutpie is not installed (fit then says how to install it).
    """
    try:
        import nutpie
        from nutpie import _lib
    except ImportError:
        return None
    names = set(inspect.signature(nutpie.sample).parameters) - {"kwargs"}
    for kind in ("Diag", "LowRank"):
        names |= {a for a in dir(getattr(_lib.PyNutsSettings, kind)(0)) if not a.startswith("_")}
    return frozenset(names - _NUTPIE_SET_BY_FIT)


def _check_external_options(sampler: str, options: dict) -> dict:
    """Options for nutpie or numpyro: names that sampler takes, refused up front otherwise.

    nutpie calls PyMC's ``max_treedepth`` ``maxdepth``: it is renamed.
    """
    options = dict(options)
    if sampler == "nutpie" and "max_treedepth" in options:
        if "maxdepth" in options:
            raise TypeError("Give max_treedepth or maxdepth (nutpie's name for it), not both.")
        options["maxdepth"] = _EXTERNAL_SAMPLE_OPTIONS["max_treedepth"](options.pop("max_treedepth"), "max_treedepth")
    allowed = _nutpie_option_names() if sampler == "nutpie" else frozenset(_NUMPYRO_OPTIONS)
    if allowed is None:
        return options
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise TypeError(f"fit() got unexpected keyword argument(s) {unknown}; with sampler={sampler!r} the NUTS "
                        f"options are {sorted(allowed)}.")
    if sampler == "numpyro":
        for name in ("quiet", "blas_cores"):
            if name in options:
                options[name] = PYMC_SAMPLE_OPTIONS[name](options[name], name)
        if "nuts" in options:
            options["nuts"] = _check_nuts_dict(options["nuts"])
            if set(options["nuts"]) - {"target_accept"}:
                raise TypeError(f"with sampler='numpyro', nuts={{...}} takes only target_accept (PyMC passes on "
                                f"nothing else), got {sorted(options['nuts'])}.")
    return options


def _check_nuts_dict(nuts) -> dict:
    if not isinstance(nuts, Mapping):
        raise TypeError(f"nuts must be a dict of NUTS step options, got {nuts!r} ({type(nuts).__name__}).")
    unknown = sorted(set(nuts) - set(NUTS_STEP_OPTIONS))
    if unknown:
        raise TypeError(f"nuts got unexpected option(s) {unknown}; allowed: {sorted(NUTS_STEP_OPTIONS)}.")
    return {k: NUTS_STEP_OPTIONS[k](v, f"nuts[{k!r}]") for k, v in nuts.items()}


def fit_settings(overrides: Mapping | None = None, **kwargs) -> dict:
    """The fit settings: :data:`FIT_DEFAULTS` merged with ``overrides`` and ``kwargs``, every value checked.

    Parameters
    ----------
    overrides : mapping, optional
        Settings to change (keys of :data:`FIT_DEFAULTS`, or NUTS sampler options
        such as ``target_accept``).
    **kwargs
        More overrides; they win over ``overrides``.

    Returns
    -------
    dict
        Every key of :data:`FIT_DEFAULTS` with its checked value, plus the sampler
        options given (checked for the chosen ``method`` and ``sampler``); pass it
        on as ``BayesianGMM(K).fit(X, **settings)``.

    Raises
    ------
    TypeError
        For an unknown setting (named in the message) or a value of the wrong type.
    ValueError
        For a value out of range.

    Examples
    --------
    >>> fit_settings(draws=200, tune=200)["draws"]
    200
    >>> fit_settings({"drawz": 10}, sampler="pymc")
    Traceback (most recent call last):
    ...
    TypeError: fit() got unexpected keyword argument(s) ['drawz']; with sampler='pymc' the NUTS options are ...
    """
    if overrides is not None and not isinstance(overrides, Mapping):
        raise TypeError(f"overrides must be a dict of fit settings or None, got {type(overrides).__name__}.")
    merged = {**(overrides or {}), **kwargs}
    settings = FIT_DEFAULTS | {k: v for k, v in merged.items() if k in FIT_DEFAULTS}
    checked = {name: FIT_ARGUMENTS[name](value, name) for name, value in settings.items()}
    if checked["sampler"] == "auto":
        checked["sampler"] = auto_sampler(checked["init"])
    options = {k: v for k, v in merged.items() if k not in FIT_DEFAULTS}
    checked.update(check_sampler_options(checked["method"], checked["sampler"], options))
    nuts = checked["method"] == "nuts"
    defaults = SAMPLER_DEFAULTS[checked["sampler"]] if nuts else _VI_DEFAULTS
    if checked["draws"] == "auto" and checked["sampler"] == "nutpie" and "save_warmup" in checked:
        raise TypeError("save_warmup cannot be set with draws='auto': sampling until reliable counts the warm-up "
                        "draws nutpie keeps. Give draws as a number to set it.")
    for name in ("draws", "tune", "chains"):
        if checked[name] == "auto":
            checked[name] = defaults[name]
    nested = checked.get("nuts", {})
    if nuts and "target_accept" in defaults and "target_accept" not in checked and "target_accept" not in nested:
        checked["target_accept"] = defaults["target_accept"]
    return checked


def auto_sampler(init="em") -> str:
    """What ``sampler="auto"`` runs: ``$BAYESGMM_SAMPLER`` if set, else nutpie where installed, else PyMC's.

    nutpie is a dependency of bayesgmm, so "pymc" is the fallback for an install
    without it. ``init="em_dispersed"`` (a start per chain, which nutpie cannot
    take) also gets PyMC's sampler.
    """
    chosen = os.environ.get(SAMPLER_ENV, "").strip()
    if chosen:
        if chosen not in SAMPLERS:
            raise ValueError(f"the environment variable {SAMPLER_ENV} must be one of {SAMPLERS} (or unset), "
                             f"got {chosen!r}.")
        return chosen
    if isinstance(init, str) and init == "em_dispersed":
        return "pymc"
    return "nutpie" if importlib.util.find_spec("nutpie") is not None else "pymc"
