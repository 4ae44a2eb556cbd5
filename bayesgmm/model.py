"""The Bayesian Gaussian mixture, declared in PyMC."""

from __future__ import annotations

import hashlib
import json
import numbers
import os
import uuid
import warnings
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ._validation import check_integer_param, check_n_components, check_option
from .bayes_covariance import BAYES_COVARIANCE_TYPES, add_noise, get_bayes_covariance
from .cost import CostEstimate, ExpensiveFitWarning, estimate_cost
from .fit_settings import FIT_DEFAULTS, check_random_seed, fit_settings
from .pipeline import ModelSpec, PreparedData, prepare_data
from .prediction import PosteriorPredictionMixin
from .priors import Priors
from .scaling import FeatureScaling

__all__ = ["BayesianGMM"]

_COVARIANCE_TYPES = tuple(BAYES_COVARIANCE_TYPES)
_CONFIG_ATTR = "bayesgmm_config"
_HASH_ATTR = "bayesgmm_config_sha256"
_DATA_HASH_ATTR = "bayesgmm_data_sha256"
#: A saved file starts with an HDF5 user block (which HDF5 and netCDF readers skip)
#: holding a SHA-256 of the rest of the file, so that any changed byte is detected.
_USERBLOCK_SIZE = 512
_FILE_MAGIC = b"BAYESGMM-FILE-SHA256:"
_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


class BayesianGMM(PosteriorPredictionMixin):
    r"""Bayesian Gaussian mixture with the assignments marginalised out.

    The model, for rows :math:`x_n \in \mathbb{R}^D` and components
    :math:`k = 1..K`, with :math:`c_j, s_j` the mean and standard deviation of
    feature :math:`j` in the training data (empirical Bayes, the default), or
    the fixed ``priors["location"]`` and ``priors["scale"]`` (a generative model,
    see :meth:`sample_prior_predictive`), written on the standardised scale
    :math:`z = (x - c) / s`:

    .. math::

        w &\sim \mathrm{Dirichlet}(\alpha) \\
        \mu_{kj} &\sim \mathcal{N}(0,\ \text{mean\_scale}^2)
            \quad (\text{i.e. } \mathcal{N}(c_j, (\text{mean\_scale}\cdot s_j)^2) \text{ in data units}) \\
        \sigma &\sim \text{sd\_dist}(\text{sd\_scale}) \quad \text{(default HalfNormal)},
            \qquad \Omega \sim \mathrm{LKJ}(\eta) \\
        p(z_n) &= \textstyle\sum_k w_k\, \mathcal{N}(z_n \mid \mu_k, \Sigma_k + \mathrm{diag}(h_z^2 / 12))

    where :math:`h_z = h / s` is the step each feature was recorded to
    (``priors["rounding"]``; by default the median spacing of a feature's distinct
    values where it has tied values, else 0): rounding adds an error of variance
    :math:`h^2/12`, and without it tied values make the posterior improper. With,
    by ``covariance_type``:

    * ``"full"``: :math:`\Sigma_k = \mathrm{diag}(\sigma_k)\,\Omega_k\,\mathrm{diag}(\sigma_k)`,
      one :math:`\sigma_k \in \mathbb{R}^D` and one :math:`\Omega_k` per component;
    * ``"diag"``: :math:`\Sigma_k = \mathrm{diag}(\sigma_k)^2`;
    * ``"tied"``: :math:`\Sigma_k = \Sigma = \mathrm{diag}(\sigma)\,\Omega\,\mathrm{diag}(\sigma)`,
      one covariance (one :math:`\sigma \in \mathbb{R}^D`, one :math:`\Omega`) shared by
      every component;
    * ``"spherical"``: :math:`\Sigma_k = \sigma_k^2 I`, one scalar
      :math:`\sigma_k` per component with the same prior as each of diag's sds
      (spherical on the standardised scale, :math:`\sigma_k^2\,\mathrm{diag}(s)^2` in
      data units, as EM's ``spherical``).

    Defaults: :math:`\alpha = 1` (uniform on the simplex), :math:`\eta = 2`,
    mean_scale = 2, sd_dist = "halfnormal", sd_scale = 1 (see
    :class:`~bayesgmm.Priors`). The LKJ covariance prior is PyMC's ``LKJCholeskyCov``
    (LKJ correlations, sd_dist standard deviations, on the packed Cholesky
    factor) written once for all components instead of once per component. Because every
    scale is relative to the data's, the priors mean the same whether X is in
    units of 1e-6 or 1e6. Internally the model is declared on the standardised
    data (better geometry for NUTS, and a posterior on that
    scale that is exactly the same whatever the units or offset of each feature,
    from about 1e-150 to 1e150); every reported quantity, the pointwise
    log-likelihood included, is in the data's units. Where float64 cannot hold
    the covariances in the data's units (a feature's spread outside about
    1e-152..1e152, or below 1e-12 of its magnitude), ``fit`` raises a
    ``ValueError`` saying which feature to rescale. Each covariance type is one
    strategy object of :mod:`bayesgmm.bayes_covariance`.

    Parameters
    ----------
    n_components : int
        Number of components K.
    covariance_type : {"full", "diag", "tied", "spherical"}, default="full"
    priors : dict or Priors, default=None
        Overrides merged over the defaults, e.g. ``{"alpha": 0.5}``.
    ordered : bool, int or str, default=False
        Break the label symmetry by ordering the means along one feature (True:
        the first; or its index or name). The alternative to :func:`relabel`
        known from the PyMC examples.

    Attributes
    ----------
    idata_ : arviz.InferenceData
        Result of the last :meth:`fit` (or :meth:`load`).
    em_ : GaussianMixtureEM or None
        EM fit used to start the sampler: with ``init="em"`` fitted on the
        standardised data ``(X - data_centre) / data_scale`` (the scale the model
        works on; ``idata_.attrs`` holds ``data_centre`` and ``data_scale``); with
        a fitted ``GaussianMixtureEM`` as ``init``, that estimator.

    Examples
    --------
    >>> from bayesgmm import BayesianGMM
    >>> from bayesgmm.datasets import load_faithful
    >>> model = BayesianGMM(n_components=2).build_model(load_faithful())
    >>> sorted(model.coords)
    ['chol_entry', 'component', 'feature', 'feature_bis', 'obs_id']
    """

    def __init__(
        self,
        n_components: int,
        covariance_type: str = "full",
        priors: Priors | Mapping | None = None,
        ordered: bool | int | str = False,
    ):
        config = _check_config(n_components, covariance_type, priors, ordered)
        self.n_components = config["n_components"]
        self.covariance_type = config["covariance_type"]
        self.priors = config["priors"]
        self.ordered = config["ordered"]
        self.idata_ = None
        self.em_ = None
        self._scaling = None

    # ------------------------------------------------------------------ config
    @property
    def config(self) -> dict:
        """Model configuration (what save/load checks)."""
        return {
            "n_components": self.n_components,
            "covariance_type": self.covariance_type,
            "priors": self.priors.to_dict(),
            "ordered": self.ordered,
        }

    @property
    def spec(self) -> ModelSpec:
        """What the model's structure depends on, with the covariance strategy object (see :mod:`bayesgmm.pipeline`)."""
        return ModelSpec(self.n_components, get_bayes_covariance(self.covariance_type), self.priors, self.ordered,
                         self.config)

    def __repr__(self) -> str:
        return (
            f"BayesianGMM(n_components={self.n_components}, covariance_type={self.covariance_type!r}, "
            f"priors={self.priors}, ordered={self.ordered!r})"
        )

    # ------------------------------------------------------------------- data
    def prepare(self, X) -> PreparedData:
        """X checked and standardised for this model (see :func:`bayesgmm.pipeline.prepare_data`).

        Every data error is raised here; the result can be passed to :meth:`fit`
        and :meth:`build_model` in place of X.
        """
        return prepare_data(X, n_components=self.n_components, priors=self.priors,
                            covariance_type=self.covariance_type)

    _prepare = prepare  # the name used before PreparedData was public

    def _standardise(self, X: np.ndarray) -> np.ndarray:
        """``(X - data_centre) / data_scale`` with the fitted scaling."""
        return FeatureScaling(centre=np.asarray(self._scaling["centre"], dtype=float),
                              scale=np.asarray(self._scaling["scale"], dtype=float)).transform(X)

    # ------------------------------------------------------------------ model
    def build_model(
        self, X, *, batch_size: int | None = None, initvals: dict | None = None, likelihood: str = "kernel"
    ):
        """Declare the PyMC model for data X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or PreparedData
        batch_size : int, optional
            Use a ``pm.Minibatch`` of this many rows (for minibatch ADVI).
        initvals : dict, optional
            Initial values of free variables (see :meth:`fit`'s ``init``).
        likelihood : {"kernel", "graph"}, default="kernel"
            How ``obs``'s log-density is written: "kernel" is one PyTensor Op
            running compiled loops (PyMC's own sampler, ADVI and nutpie);
            "graph" is plain PyTensor operations that the JAX backend
            (``sampler="numpyro"``) can compile. Both give the same values and
            gradients.

        Returns
        -------
        pymc.Model
            Free variables ``weights``, ``means_z`` and the covariance latent, all
            on the standardised scale: ``chol_cov_z`` (full: packed Cholesky
            factors, dims (``component``, ``chol_entry``); tied: one, dims
            ``chol_entry``), ``sds_z`` (diag, (``component``, ``feature``)) or
            ``sd_z`` (spherical, ``component``); the observed variable ``obs``
            with dims (``obs_id``, ``feature``).

        Notes
        -----
        The model is declared on the standardised data ``z = (x - c) / s`` (the
        ``pm.Data`` "X" holds z; ``c`` and ``s`` are in the fit's ``data_centre`` and
        ``data_scale`` attributes). Its log-density therefore differs from the one
        in data units by the constant ``-N * sum(log s)``, which leaves the
        posterior unchanged and makes it exactly the same whatever the units of
        each feature; the pointwise log-likelihood a fit stores is in data units.
        """
        from .bayes_model import declare_model

        check_option(likelihood, "likelihood", ("kernel", "graph"))
        data = self.prepare(X)
        if initvals is not None and not isinstance(initvals, Mapping):
            raise TypeError(f"initvals must be a dict of start values or None, got {type(initvals).__name__}.")
        model = declare_model(self.spec, data, batch_size=batch_size, likelihood=likelihood)
        self._scaling = data.scaling
        for name, value in (initvals or {}).items():
            model.set_initval(model[name], value)
        self.model_ = model
        return model

    # ------------------------------------------------------------ prior draws
    def sample_prior_predictive(self, n_samples: int, *, n_features: int | None = None,
                                random_seed: int | None = None) -> dict:
        """Draw parameters from the prior, then a dataset of ``n_samples`` rows from them.

        Needs a generative prior, ``priors={"location": ..., "scale": ...}``: by
        default the prior is centred and scaled on the training data (empirical
        Bayes), so there is no prior before there are data. The draws follow the
        model exactly (see :class:`BayesianGMM`): on the standardised scale
        ``w ~ Dirichlet(alpha)``, ``mu_z[k, j] ~ N(0, mean_scale^2)``, the
        covariances from their prior (the covariance type's strategy object),
        each row's component ``~ Categorical(w)`` and its value
        ``~ N(mu_z[k], Sigma_z[k] + diag(h_z^2 / 12))`` (``h_z`` the fixed
        ``rounding`` over ``scale``; 0 with ``"auto"``, whose data are
        continuous); then ``x = location + scale * z``. With
        ``ordered``, the components are sorted by their mean along that feature
        (the ordered prior is that of sorted draws). (Long only for its docstring.)

        Parameters
        ----------
        n_samples : int
            Rows of the simulated dataset (>= 1).
        n_features : int, optional
            Number of features; needed only when ``location`` and ``scale`` are both
            single numbers (otherwise it is their length, and must match if given).
        random_seed : int, optional
            An integer in [0, 2**32 - 1]; the same seed gives the same draws.

        Returns
        -------
        dict
            ``"X"`` (n_samples, n_features) and ``"labels"`` (n_samples,), the
            component of each row; the parameters drawn, in the data's units:
            ``"weights"`` (K,), ``"means"`` (K, D), ``"covariances"`` (K, D, D)
            (the observed values', rounding error included, as a fit reports them).

        Raises
        ------
        ValueError
            Without a fixed ``location`` and ``scale``, or for an invalid argument.

        Examples
        --------
        >>> from bayesgmm import BayesianGMM
        >>> gmm = BayesianGMM(2, priors={"location": [0.0, 10.0], "scale": [1.0, 5.0]})
        >>> draw = gmm.sample_prior_predictive(100, random_seed=0)
        >>> draw["X"].shape, draw["means"].shape, draw["covariances"].shape
        ((100, 2), (2, 2), (2, 2, 2))
        """
        n_samples = check_integer_param(n_samples, "n_samples", minimum=1)
        random_seed = check_random_seed(random_seed, "random_seed")
        D = _generative_features(self.priors, n_features)
        K, priors, spec = self.n_components, self.priors, self.spec
        location, scale = priors.location_vector(D), priors.scale_vector(D)
        order_feature = spec.order_feature([f"x{j}" for j in range(D)])
        rng = np.random.default_rng(random_seed)
        weights = rng.dirichlet(priors.alpha_vector(K))
        means_z = rng.normal(0.0, priors.mean_scale, size=(K, D))
        chol_z = spec.covariance.draw_prior(rng, priors, K, D)
        if order_feature is not None:  # components are exchangeable: sorting gives the ordered prior
            order = np.argsort(means_z[:, order_feature], kind="stable")
            weights, means_z, chol_z = weights[order], means_z[order], chol_z[order]
        rounding = priors.rounding_vector(D)
        if rounding is not None:  # the observed values carry the rounding error: Sigma_k + diag(h^2 / 12)
            chol_z = add_noise(chol_z, (rounding / scale) ** 2 / 12.0)
        labels = rng.choice(K, size=n_samples, p=weights / weights.sum())
        noise = rng.standard_normal((n_samples, D))
        Z = means_z[labels] + np.einsum("nde,ne->nd", chol_z[labels], noise)
        chol = scale[:, None] * chol_z
        return {
            "X": location + scale * Z,
            "labels": labels,
            "weights": weights,
            "means": location + scale * means_z,
            "covariances": chol @ np.swapaxes(chol, -1, -2),
        }

    # ---------------------------------------------------------------- fitting
    def fit(
        self,
        X,
        method: str = FIT_DEFAULTS["method"],
        *,
        draws: int | str = FIT_DEFAULTS["draws"],
        tune: int | str = FIT_DEFAULTS["tune"],
        chains: int | str = FIT_DEFAULTS["chains"],
        random_seed: int | None = FIT_DEFAULTS["random_seed"],
        progressbar: bool = FIT_DEFAULTS["progressbar"],
        init: str = FIT_DEFAULTS["init"],
        sampler: str = FIT_DEFAULTS["sampler"],
        mass_matrix: str = FIT_DEFAULTS["mass_matrix"],
        warmup_start: str = FIT_DEFAULTS["warmup_start"],
        batch_size: int | str | None = FIT_DEFAULTS["batch_size"],
        n_iterations: int = FIT_DEFAULTS["n_iterations"],
        learning_rate: float = FIT_DEFAULTS["learning_rate"],
        log_likelihood: bool | str = FIT_DEFAULTS["log_likelihood"],
        check_diagnostics: bool = FIT_DEFAULTS["check_diagnostics"],
        retry_on_divergence: bool = FIT_DEFAULTS["retry_on_divergence"],
        **sampler_kwargs,
    ):
        """Fit by NUTS or variational inference; always returns ``arviz.InferenceData``.

        Every setting is checked through :func:`bayesgmm.fit_settings.fit_settings`
        (one table, shared with ``compare_k``, the report and the CLI). (Long only
        because this docstring documents every setting; the body is ~40 lines.)

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or PreparedData
        method : {"nuts", "advi", "fullrank_advi"}, default="nuts"
        draws : int or "auto", default="auto"
            Posterior draws per chain (NUTS) or from the fitted approximation
            (ADVI). "auto" with nutpie samples until the diagnostics pass: the
            run is judged (:func:`bayesgmm.assess`) at 1000, 2000, 4000, 6000,
            8000 and 10000 draws per chain and stops at the first "reliable"
            verdict (``idata.attrs["auto_draws_checked"]`` lists the checkpoints
            looked at, ``"auto_draws_stop"`` says "reliable" or "limit"); a
            well-separated mixture stops at 1000, Old Faithful's overlapping K=3
            and K=4 at 2000-10000 (docs/sampling.md). Every chain then runs at
            once (``cores`` is set to ``chains``). With PyMC's sampler, numpyro
            or ADVI, "auto" is 1000.
        tune : int or "auto", default="auto"
            NUTS warm-up iterations per chain (0 or more); "auto": 2000 with
            nutpie, 1000 otherwise.
        chains : int or "auto", default="auto"
            "auto": 4 with nutpie, 2 otherwise.
        random_seed : int, optional
            An integer in [0, 2**32 - 1]. The same seed gives identical draws, and
            so does the same seed on the same data in other units (see the class
            notes on scale).
        progressbar : bool, default=True
        init : {"em", "em_dispersed", "prior"} or GaussianMixtureEM, default="em"
            ``"em"`` starts at an EM solution fitted on the standardised data (the
            cheap way to avoid poor modes; the weights and covariances are jittered
            per chain, the means are not, so chains share one labelling);
            ``"em_dispersed"`` (NUTS, not nutpie) starts the first chain there and
            every other chain at the optimum EM reaches from its own k-means++ seed,
            so that chains can land in different modes and R-hat and
            :func:`~bayesgmm.diagnostics.chain_modes` can see them; ``"prior"``
            at PyMC's default point. If EM cannot fit the data, the sampler starts
            from PyMC's default point with a warning. A fitted
            :class:`~bayesgmm.GaussianMixtureEM` (on X, in the data's units, with the
            same ``n_components``) is used as the start as it is, without fitting EM
            again; another covariance type gives the nearest start of this model's.
        sampler : {"auto", "nutpie", "pymc", "numpyro"}, default="auto"
            NUTS implementation. "auto" is the ``BAYESGMM_SAMPLER`` environment
            variable's sampler where it is set, else nutpie (a dependency of
            bayesgmm: Rust's NUTS on PyTensor's numba backend), else "pymc";
            ``init="em_dispersed"`` gets "pymc". Where no ``target_accept`` is
            given, nutpie runs at 0.97: smaller steps, which Old Faithful's
            overlapping components needed to sample without divergences.
            "pymc" is PyMC's own sampler on PyTensor's C backend linked to
            OpenBLAS (see the README). "numpyro" needs the ``jax`` extra
            (installed by ``make install``); it supports every covariance type
            and with full and tied covariances agrees with "pymc" on the
            reference problem (see docs/sampling.md).
        mass_matrix : {"auto", "full", "diag"}, default="auto"
            NUTS with ``sampler="pymc"``: the mass matrix adapted during tuning.
            "full" (dense) learns the posterior's correlations, e.g. between a
            component's mean and its covariance, and on the reference problem
            gives about 1.4x the effective sample size of "diag" for the same
            number of gradient evaluations; its cost grows with the square of the
            number of parameters, so "auto" uses "full" up to
            200 parameters and "diag" above.
        warmup_start : {"laplace", "identity"}, default="laplace"
            NUTS with ``sampler="pymc"`` and ``init="em"``: the mass matrix warm-up
            starts from the Laplace approximation at the EM optimum, with its sds
            doubled (the reference problem tunes in half the time), or from the
            identity, as PyMC does. On Old Faithful with K=3 (weakly identified),
            over 8 seeds of 1000 draws: "laplace" median 18 divergences, R-hat at
            most 1.17; "identity" (with ``mass_matrix="diag"``) median 6, but R-hat
            up to 2.0 in 3 of 8 runs.
        batch_size : int, "auto" or None, default="auto"
            ADVI only: minibatch size, at most the number of rows. "auto" uses
            2,000-row minibatches above 20,000 rows and the full data below; None
            always uses all rows. An integer with ``method="nuts"`` is an error.
        n_iterations : int, default=20000
            ADVI only: maximum optimisation steps (stops earlier on convergence).
        learning_rate : float, default=0.01
            ADVI only: Adam step size (finite, > 0). A loss that becomes NaN raises
            ``FloatingPointError`` saying to lower it.
        log_likelihood : bool or "auto", default="auto"
            Store the pointwise log-likelihood (needed by ``az.loo``). "auto" stores
            it unless draws x rows exceeds 2e7 (it would take gigabytes).
        check_diagnostics : bool, default=True
            NUTS: assess the posterior right after sampling (divergences, R-hat and
            ESS on label-invariant quantities, see :func:`bayesgmm.assess`) and
            warn when it is unreliable. ADVI: warn when the approximation fails
            the importance-sampling check (Pareto k-hat; a loss that did not
            settle always warns). False leaves that to the caller, e.g. one
            who relabels the draws anyway and assesses the relabelled posterior
            (:func:`bayesgmm.analysis.analyse` does).
        retry_on_divergence : bool, default=True
            NUTS with ``sampler="pymc"`` and ``target_accept`` not given: when the
            run's divergent transitions exceed 0.1% of its draws, sample again from
            the same start at ``target_accept=0.95`` (the first remedy the
            diagnostics advise) and return the run with fewer divergent
            transitions; ``idata.attrs`` keeps both counts
            (``first_run_divergences``, ``second_run_divergences``, ``kept_run``)
            and the verdict notes the retry. It costs a second, slower run only
            where the first diverged (see ``docs/sampling.md`` for the figures).
        **sampler_kwargs
            NUTS only, passed to the NUTS implementation. With ``sampler="pymc"``:
            the step's ``target_accept`` (in (0, 1)), ``max_treedepth``,
            ``early_max_treedepth`` (>= 1), ``step_scale``, ``adapt_step_size``,
            ``gamma``, ``k``, ``t0``, ``Emax`` (also inside ``nuts={...}``), and
            ``pm.sample``'s ``cores`` (>= 1), ``discard_tuned_samples``,
            ``keep_warning_stat``, ``quiet``, ``jitter_max_retries``, ``blas_cores``,
            ``callback``, ``compile_kwargs``, ``mp_ctx``, ``progressbar_theme``; any
            other name is a ``TypeError``. With "nutpie": the options of
            ``nutpie.sample`` and of its settings (``target_accept``, ``maxdepth``,
            ``cores``, ``store_divergences``...; ``max_treedepth`` is renamed
            ``maxdepth``); with "numpyro": ``target_accept`` and ``cores``. Any other
            name is a ``TypeError`` before anything compiles.

        Returns
        -------
        arviz.InferenceData
            ``posterior`` with ``weights``, ``means``, ``stds``, ``cov``, ``chol``
            per component (tied: the shared covariance repeated) and (full, tied)
            ``corr`` in data units plus the standardised latents;
            ``log_likelihood`` (chain, draw, obs_id); ``observed_data``;
            ``sample_stats`` (NUTS) or ``fit_history`` (ADVI loss).

        Raises
        ------
        ValueError, TypeError
            For an invalid argument or invalid data, before any model is built or
            compiled; the message names the argument (or column), the value and
            what is allowed.
        """
        from . import inference

        # Every argument and the data are checked here, before any model is built or compiled.
        settings = fit_settings({
            "method": method, "draws": draws, "tune": tune, "chains": chains, "random_seed": random_seed,
            "progressbar": progressbar, "init": init, "sampler": sampler, "mass_matrix": mass_matrix,
            "warmup_start": warmup_start, "batch_size": batch_size, "n_iterations": n_iterations,
            "learning_rate": learning_rate, "log_likelihood": log_likelihood,
            "check_diagnostics": check_diagnostics, "retry_on_divergence": retry_on_divergence,
            **sampler_kwargs})
        options = {k: v for k, v in settings.items() if k not in FIT_DEFAULTS}
        data = self.prepare(X)
        self._check_fit(settings, data)
        self._warn_if_expensive(settings, data)
        method, spec = settings["method"], self.spec
        common = {k: settings[k] for k in ("draws", "random_seed", "progressbar", "init", "log_likelihood")}
        if method == "nuts":
            idata, em = inference.fit_nuts(spec, data, tune=settings["tune"], chains=settings["chains"],
                                           sampler=settings["sampler"], mass_matrix=settings["mass_matrix"],
                                           warmup_start=settings["warmup_start"],
                                           retry_on_divergence=settings["retry_on_divergence"], **common, **options)
        else:
            idata, em = inference.fit_vi(spec, data, method=method, batch_size=settings["batch_size"],
                                         n_iterations=settings["n_iterations"],
                                         learning_rate=settings["learning_rate"], **common)
        self.em_, self._scaling = em, data.scaling
        idata.attrs[_CONFIG_ATTR] = json.dumps(self.config, sort_keys=True)
        idata.attrs[_HASH_ATTR] = _config_hash(idata.attrs[_CONFIG_ATTR])
        idata.attrs["inference_method"] = method
        idata.attrs["sampler"] = settings["sampler"] if method == "nuts" else "pymc.fit"
        idata.attrs["random_seed"] = -1 if settings["random_seed"] is None else int(settings["random_seed"])
        self.idata_ = idata
        # ADVI has already warned if its loss did not settle; the verdict adds the Pareto-k check.
        if settings["check_diagnostics"] and (method == "nuts" or idata.fit_history.attrs["converged"]):
            inference.warn_on_diagnostics(idata)
        return idata

    def estimate_cost(self, X, **settings) -> CostEstimate:
        """Estimate what :meth:`fit` with these settings will cost, before running it.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features), or PreparedData
        **settings
            :meth:`fit`'s keyword arguments (``method``, ``draws``, ``tune``,
            ``chains``, ``max_treedepth``, ``n_iterations``, ``batch_size`` ...).

        Returns
        -------
        CostEstimate
            Free parameters, the time of one gradient and the expected wall time
            (rough: see :mod:`bayesgmm.cost`).

        Examples
        --------
        >>> from bayesgmm import BayesianGMM
        >>> from bayesgmm.datasets import load_faithful
        >>> BayesianGMM(2).estimate_cost(load_faithful()).n_parameters
        11
        """
        return self._cost(fit_settings(settings), self.prepare(X))

    def _cost(self, settings: dict, data: PreparedData, covariance_type: str | None = None) -> CostEstimate:
        N, D = data.X.shape
        K = self.n_components
        spec = self.spec if covariance_type is None else type(self)(K, covariance_type, self.priors).spec
        batch = settings["batch_size"]
        batch_rows = batch if isinstance(batch, int) else (2_000 if batch == "auto" and N > 20_000 else None)
        return estimate_cost(spec.n_free_parameters(D), N, D, K, method=settings["method"],
                             draws=settings["draws"], tune=settings["tune"], chains=settings["chains"],
                             cores=settings.get("cores"),
                             max_treedepth=settings.get("max_treedepth", settings.get("maxdepth", 10)),  # nutpie's name
                             n_iterations=settings["n_iterations"], batch_rows=batch_rows)

    def _warn_if_expensive(self, settings: dict, data: PreparedData) -> None:
        """Warn before a fit expected to take longer than :data:`bayesgmm.cost.EXPENSIVE_FIT_SECONDS`."""
        cost = self._cost(settings, data)
        if not cost.expensive:
            return
        cheaper = [f"covariance_type={c!r} {self._cost(settings, data, c).brief()}" for c in BAYES_COVARIANCE_TYPES
                   if c != self.covariance_type]
        if settings["method"] == "nuts":
            cheaper.append(f"method='advi' {self._cost({**settings, 'method': 'advi'}, data).brief()}")
        warnings.warn(f"This fit is expected to be slow: {cost}. Cheaper options: " + "; ".join(cheaper)
                      + ". (BayesianGMM.estimate_cost gives these figures without fitting.)",
                      ExpensiveFitWarning, stacklevel=3)

    def _check_fit(self, settings: dict, data: PreparedData) -> None:
        """What depends on both the settings and the data (or the model), before anything is built."""
        from . import inference

        self.spec.order_feature(data.names)
        method, sampler, batch_size = settings["method"], settings["sampler"], settings["batch_size"]
        n_rows = data.X.shape[0]
        if isinstance(batch_size, int):
            if method == "nuts":
                raise ValueError(f"batch_size={batch_size} applies only to method='advi' or 'fullrank_advi' "
                                 "(minibatch ADVI); NUTS always uses every row. Leave it at 'auto' or None.")
            if batch_size > n_rows:
                raise ValueError(f"batch_size must be at most the number of rows of X ({n_rows}), got "
                                 f"{batch_size}.")
        if isinstance(settings["init"], str) and settings["init"] == "em_dispersed":
            if method != "nuts":
                raise ValueError(f"init='em_dispersed' starts each NUTS chain at a different EM optimum; "
                                 f"method={method!r} has no chains: use init='em'.")
            if sampler == "nutpie":
                raise ValueError("init='em_dispersed' needs sampler='pymc' or 'numpyro' (nutpie takes one start "
                                 "for every chain).")
        if method == "nuts":
            inference.check_sampler(sampler)

    # ---------------------------------------------------------------- save/load
    def save(self, path: str | Path) -> None:
        """Write the fit to netCDF, with the model config and checksums in the attributes.

        The file is written to a temporary file in the same directory and moved
        into place, so ``path`` never holds half a file (even if writing fails);
        an existing file at ``path`` is replaced. Two SHA-256 checksums are
        stored and verified by :meth:`load`: one of the whole file (in its HDF5
        user block, which netCDF readers skip) and one of every group's data (in
        the attributes, next to the config's checksum).

        Parameters
        ----------
        path : str or Path
        """
        if self.idata_ is None:
            raise ValueError("Nothing to save: call fit() first.")
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or a Path, got {path!r} ({type(path).__name__}).")
        path = Path(path)
        if path.is_dir():
            raise IsADirectoryError(f"Cannot save to {path}: it is a directory; give a file name such as "
                                    f"{path / 'fit.nc'}.")
        directory = path.parent
        if not directory.is_dir():
            raise FileNotFoundError(f"Cannot save to {path}: the directory {directory} does not exist.")
        idata = self.idata_
        idata.attrs[_DATA_HASH_ATTR] = _data_digest(idata)
        tmp = directory / f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:12]}.tmp"
        try:
            import h5netcdf

            with h5netcdf.File(str(tmp), "w", userblock_size=_USERBLOCK_SIZE):
                pass  # an empty netCDF-4 file with room for the file checksum at its start
            idata.to_netcdf(str(tmp), overwrite_existing=False)  # appends every group to that file
            with open(tmp, "r+b") as fh:
                fh.write(_userblock(_file_digest(tmp)))
            os.replace(tmp, path)  # atomic: path holds the old file or the new one, never a partial one
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    @classmethod
    def load(cls, path: str | Path, **expected) -> BayesianGMM:
        """Load a saved fit into memory, refusing a file that is damaged or does not match.

        Everything is read into memory and the file is closed, so it can be
        overwritten (e.g. saved back to the same path) right away.

        Parameters
        ----------
        path : str or Path
        **expected
            Optional config the file must have (``n_components``,
            ``covariance_type``, ``priors``, ``ordered``); any difference is an error.

        Returns
        -------
        BayesianGMM
            With ``idata_`` set; summaries equal those of the saved fit.

        Raises
        ------
        FileNotFoundError
            If there is no file at ``path``.
        ValueError
            If the file is not a netCDF file written by :meth:`save`, is damaged
            (truncated, zeroed or altered: its checksums do not match), or holds a
            model other than ``expected``.
        """
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or a Path, got {path!r} ({type(path).__name__}).")
        unknown = sorted(set(expected) - {"n_components", "covariance_type", "priors", "ordered"})
        if unknown:
            raise TypeError(f"Unknown expected config {unknown}; allowed: n_components, covariance_type, priors, "
                            "ordered.")
        path = Path(path)
        idata = _read_verified(path)
        raw = idata.attrs[_CONFIG_ATTR]
        try:
            config = json.loads(raw)
            model = cls(**config)
        except (TypeError, ValueError) as err:
            raise ValueError(f"{path}: the stored model config is invalid ({err}).") from err
        if expected:
            wanted = cls(**{**config, **expected}).config
            diff = sorted(k for k in wanted if wanted[k] != model.config[k])
            if diff:
                details = ", ".join(f"{k}: file has {model.config[k]!r}, expected {wanted[k]!r}" for k in diff)
                raise ValueError(f"{path} holds a different model ({details}).")
        model.idata_ = idata
        model._scaling = _stored_scaling(idata, path, model.n_components)
        return model


def _read_verified(path: Path):
    """A file written by :meth:`BayesianGMM.save`, read into memory after checking its checksums."""
    import arviz as az

    if not path.is_file():
        raise FileNotFoundError(f"No saved fit at {path}" + (" (it is a directory)." if path.is_dir() else "."))
    damaged = (f"{path} is damaged (truncated, zeroed or altered) or is not a file written by "
               "BayesianGMM.save")
    with open(path, "rb") as fh:
        head = fh.read(_USERBLOCK_SIZE)
    if head.startswith(_FILE_MAGIC):
        if head != _userblock(_file_digest(path)):
            raise ValueError(f"{damaged}: its contents do not match the file checksum.")
    elif not head.startswith(_HDF5_SIGNATURE):  # files saved by older versions start with the signature
        raise ValueError(f"{damaged}: it does not start like a netCDF-4 file.")
    try:
        with az.rc_context({"data.load": "eager"}), warnings.catch_warnings():
            # ADVI fits hold a fit_history group, which ArviZ notes is not a standard one.
            warnings.filterwarnings("ignore", ".*not defined in the InferenceData scheme", UserWarning)
            idata = az.from_netcdf(str(path))  # eager: every group is read, then the file is closed
    except Exception as err:  # h5py/netCDF raise many types (OSError, KeyError, RuntimeError, ...)
        raise ValueError(f"{damaged}: it cannot be read as netCDF ({type(err).__name__}: {err}).") from err
    raw = idata.attrs.get(_CONFIG_ATTR)
    if raw is None:
        raise ValueError(f"{path} was not written by BayesianGMM.save (no {_CONFIG_ATTR!r} attribute).")
    if idata.attrs.get(_HASH_ATTR) != _config_hash(str(raw)):
        raise ValueError(f"{path}: the stored model config does not match its checksum; the file was altered.")
    stored = idata.attrs.get(_DATA_HASH_ATTR)
    if stored is None:
        warnings.warn(f"{path} has no data checksum (saved by an older bayesgmm); its data cannot be verified.",
                      UserWarning, stacklevel=3)
    elif str(stored) != _data_digest(idata):
        raise ValueError(f"{damaged}: the stored data do not match their checksum.")
    return idata


def _stored_scaling(idata, path: Path, n_components: int) -> dict:
    """The data scaling a loaded fit holds, checked against its posterior."""
    if "posterior" not in idata.groups():
        raise ValueError(f"{path} holds no posterior group.")
    post = idata.posterior
    if post.sizes.get("component") != n_components:
        raise ValueError(f"{path}: posterior has {post.sizes.get('component')} components, config says "
                         f"{n_components}.")
    features = [str(f) for f in post.coords["feature"].values] if "feature" in post.coords else []
    centre = np.atleast_1d(np.asarray(idata.attrs.get("data_centre", []), dtype=float))
    scale = np.atleast_1d(np.asarray(idata.attrs.get("data_scale", []), dtype=float))
    if not (len(features) == centre.size == scale.size and np.all(np.isfinite(centre))
            and np.all(np.isfinite(scale)) and np.all(scale > 0)):
        raise ValueError(f"{path}: the stored data scaling does not match the posterior's {len(features)} "
                         "features.")
    return {"centre": centre, "scale": scale, "feature": features}


def _config_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


# ------------------------------------------------------------- argument checks
def _check_config(n_components, covariance_type, priors, ordered) -> dict:
    """The constructor's arguments, checked and normalised (one place for all of them)."""
    n_components = check_n_components(n_components)
    covariance_type = check_option(covariance_type, "covariance_type", _COVARIANCE_TYPES)
    priors = Priors.from_config(priors)
    priors.alpha_vector(n_components)  # checks the length of a vector alpha
    if isinstance(ordered, (bool, np.bool_)):
        ordered = bool(ordered)
    elif isinstance(ordered, numbers.Integral):
        if ordered < 0:
            raise ValueError(f"ordered must be False, True, a feature index >= 0 or a feature name, got {ordered!r}.")
        ordered = int(ordered)
    elif isinstance(ordered, str):
        if not ordered:
            raise ValueError("ordered must be False, True, a feature index >= 0 or a feature name, got ''.")
    else:
        raise TypeError(f"ordered must be False, True, a feature index >= 0 or a feature name, got {ordered!r} "
                        f"({type(ordered).__name__}).")
    return {"n_components": n_components, "covariance_type": covariance_type, "priors": priors, "ordered": ordered}


def _generative_features(priors: Priors, n_features) -> int:
    """D for prior draws: the length of a fixed ``location`` / ``scale``, or ``n_features``; refuses no prior."""
    if not priors.generative:
        missing = [name for name in ("location", "scale") if getattr(priors, name) is None]
        raise ValueError(
            f"sample_prior_predictive needs a generative prior, but priors {missing} are not set: by default "
            "they are the training data's mean and sd (empirical Bayes), so there is no prior before data. "
            "Set them in the data's units, e.g. BayesianGMM(K, priors={'location': 0.0, 'scale': 1.0})."
        )
    lengths = {len(v) for v in (priors.location, priors.scale) if isinstance(v, tuple)}
    if len(lengths) > 1:
        raise ValueError(f"priors['location'] and priors['scale'] have different lengths {sorted(lengths)}.")
    if n_features is not None:
        n_features = check_integer_param(n_features, "n_features", minimum=1)
        if lengths and n_features not in lengths:
            raise ValueError(f"n_features={n_features} does not match the {lengths.pop()} values of "
                             "priors['location'] / priors['scale'].")
        return n_features
    if lengths:
        return lengths.pop()
    raise ValueError("priors['location'] and priors['scale'] are single numbers: pass n_features.")


# --------------------------------------------------------------- file checksums
def _canonical(value) -> bytes:
    """Bytes that stand for a value however netCDF round-trips its type (bool/int8, list/array, bytes/str)."""
    array = np.asarray(value)
    if array.dtype.kind in "biuf":
        return b"n" + np.ascontiguousarray(array, dtype="<f8").tobytes()
    items = [v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in array.ravel().tolist()]
    return b"s" + json.dumps(items).encode()


def _data_digest(idata) -> str:
    """SHA-256 over every group's variables (names, dims, values) and attributes, and the file's attributes."""
    digest = hashlib.sha256()

    def attrs(mapping, skip=()):
        for key in sorted(str(k) for k in mapping if str(k) not in skip):
            digest.update(b"attr:" + key.encode() + b"=" + _canonical(mapping[key]))

    for group in sorted(idata.groups()):
        dataset = idata[group]
        digest.update(b"group:" + group.encode())
        attrs(dataset.attrs)
        for name in sorted(str(v) for v in dataset.variables):
            variable = dataset.variables[name]
            digest.update(f"var:{name}:{list(variable.dims)}:{list(variable.shape)}".encode())
            digest.update(_canonical(variable.values))
    attrs(idata.attrs, skip=(_DATA_HASH_ATTR,))
    return digest.hexdigest()


def _file_digest(path) -> str:
    """SHA-256 of a saved file after its user block."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        fh.seek(_USERBLOCK_SIZE)
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _userblock(hexdigest: str) -> bytes:
    return (_FILE_MAGIC + hexdigest.encode() + b"\n").ljust(_USERBLOCK_SIZE, b"\0")
