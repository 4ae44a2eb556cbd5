"""The Bayesian Gaussian mixture, declared in PyMC."""

from __future__ import annotations

import hashlib
import json
import numbers
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from ._validation import check_data, check_n_components
from .priors import Priors

__all__ = ["BayesianGMM"]

_COVARIANCE_TYPES = ("full", "diag")
_METHODS = ("nuts", "advi", "fullrank_advi")
_INITS = ("em", "prior")
_CONFIG_ATTR = "bayesgmm_config"
_HASH_ATTR = "bayesgmm_config_sha256"


class BayesianGMM:
    r"""Bayesian Gaussian mixture with the assignments marginalised out.

    The model, for rows :math:`x_n \in \mathbb{R}^D` and components
    :math:`k = 1..K`, with :math:`c_j, s_j` the mean and standard deviation of
    feature :math:`j` in the training data:

    .. math::

        w &\sim \mathrm{Dirichlet}(\alpha) \\
        \mu_{kj} &\sim \mathcal{N}(c_j,\ (\text{mean\_scale}\cdot s_j)^2) \\
        \sigma_{kj} &\sim \text{sd\_dist}(\text{sd\_scale}\cdot s_j)
            \quad \text{(default HalfNormal)} \\
        \Omega_k &\sim \mathrm{LKJ}(\eta) \quad \text{(full only; diag: } \Omega_k = I) \\
        \Sigma_k &= \mathrm{diag}(\sigma_k)\,\Omega_k\,\mathrm{diag}(\sigma_k) \\
        p(x_n) &= \textstyle\sum_k w_k\, \mathcal{N}(x_n \mid \mu_k, \Sigma_k)

    Defaults: :math:`\alpha = 1` (uniform on the simplex), :math:`\eta = 2`,
    mean_scale = 2, sd_dist = "halfnormal", sd_scale = 1 (see
    :class:`~bayesgmm.Priors`). The covariance prior is PyMC's ``LKJCholeskyCov``
    (LKJ correlations, sd_dist standard deviations, on the packed Cholesky
    factor) written once for all components instead of once per component. Because every
    scale is relative to the data's, the priors mean the same whether X is in
    units of 1e-6 or 1e6. Internally the sampler works on the standardised
    scale :math:`(x - c)/s` (better geometry for NUTS); the likelihood and every
    reported quantity are in the data's units.

    Parameters
    ----------
    n_components : int
        Number of components K.
    covariance_type : {"full", "diag"}, default="full"
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
        EM fit used to start the sampler when ``init="em"``.

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
        self.n_components = check_n_components(n_components)
        if covariance_type not in _COVARIANCE_TYPES:
            raise ValueError(f"covariance_type must be one of {_COVARIANCE_TYPES}, got {covariance_type!r}.")
        self.covariance_type = covariance_type
        self.priors = Priors.from_config(priors)
        self.priors.alpha_vector(self.n_components)  # checks the length of a vector alpha
        if not isinstance(ordered, (bool, numbers.Integral, str)):
            raise TypeError(f"ordered must be a bool, a feature index or a feature name, got {ordered!r}.")
        self.ordered = ordered
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

    def __repr__(self) -> str:
        return (
            f"BayesianGMM(n_components={self.n_components}, covariance_type={self.covariance_type!r}, "
            f"priors={self.priors}, ordered={self.ordered!r})"
        )

    # ------------------------------------------------------------------- data
    def _check_X(self, X, *, fitting: bool) -> tuple[np.ndarray, list[str]]:
        names = [str(c) for c in X.columns] if isinstance(X, pd.DataFrame) else None
        X = check_data(X, dtype=(np.float64,), min_samples=1)
        names = names or [f"x{j}" for j in range(X.shape[1])]
        if fitting:
            check_n_components(self.n_components, X.shape[0])
            if X.shape[0] < 2:
                raise ValueError("X needs at least 2 rows to fit a mixture.")
            sd = X.std(axis=0)
            constant = np.flatnonzero(sd == 0)
            if constant.size:
                raise ValueError(
                    f"Feature(s) {[names[j] for j in constant]} are constant; a mixture cannot "
                    "model a zero-variance column. Drop them."
                )
        elif self._scaling is not None and X.shape[1] != len(self._scaling["feature"]):
            raise ValueError(
                f"X has {X.shape[1]} features, but the model was fitted with {len(self._scaling['feature'])}."
            )
        return X, names

    def _order_feature(self, names: list[str]) -> int | None:
        if self.ordered is False:
            return None
        if self.ordered is True:
            return 0
        if isinstance(self.ordered, str):
            if self.ordered not in names:
                raise ValueError(f"ordered={self.ordered!r} is not a feature; features are {names}.")
            return names.index(self.ordered)
        if not 0 <= int(self.ordered) < len(names):
            raise ValueError(f"ordered={self.ordered} is out of range for {len(names)} features.")
        return int(self.ordered)

    # ------------------------------------------------------------------ model
    def build_model(
        self, X, *, batch_size: int | None = None, initvals: dict | None = None, likelihood: str = "kernel"
    ):
        """Declare the PyMC model for data X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        batch_size : int, optional
            Use a ``pm.Minibatch`` of this many rows (for minibatch ADVI).
        initvals : dict, optional
            Initial values of free variables (see :meth:`fit`'s ``init``).
        likelihood : {"kernel", "graph"}, default="kernel"
            How ``obs``'s log-density is written: "kernel" is one PyTensor Op
            running compiled loops (fast with PyMC's own sampler and ADVI);
            "graph" is plain PyTensor operations that the JAX and numba backends
            (``sampler="numpyro"`` / ``"nutpie"``) can compile. Both give the same
            values and gradients.

        Returns
        -------
        pymc.Model
            Free variables ``weights``, ``means_z`` and ``chol_cov_z`` (full: the
            packed Cholesky factors, dims (``component``, ``chol_entry``)) or
            ``sds_z`` (diag), all on the standardised scale; the observed
            variable ``obs`` with dims (``obs_id``, ``feature``).
        """
        from ._pytensor_setup import configure_pytensor

        configure_pytensor()
        import pymc as pm
        import pytensor.tensor as pt

        from ._likelihood import MixtureLogLike
        from ._lkj import draw_packed, identity_packed, lkj_cholesky_cov_logp
        from ._transforms import BatchedCholeskyCovPacked

        if likelihood not in ("kernel", "graph"):
            raise ValueError(f"likelihood must be 'kernel' or 'graph', got {likelihood!r}.")
        X, names = self._check_X(X, fitting=True)
        N, D = X.shape
        K = self.n_components
        centre, scale = X.mean(axis=0), X.std(axis=0)
        self._scaling = {"centre": centre, "scale": scale, "feature": names}
        order_feature = self._order_feature(names)
        tril = np.tril_indices(D)
        coords = {
            "obs_id": np.arange(N),
            "component": np.arange(K),
            "feature": names,
            "feature_bis": names,
            "chol_entry": [f"{names[i]}|{names[j]}" for i, j in zip(*tril)],
        }
        priors = self.priors
        with pm.Model(coords=coords) as model:
            if batch_size is None:
                data = pm.Data("X", X, dims=("obs_id", "feature"))
            else:
                data = pm.Minibatch(X, batch_size=int(batch_size))
            # The data's centre and spread are data too (not constants baked into the
            # graph), so one compiled logp serves any X of this shape of model.
            centre_data = pm.Data("data_centre", centre, dims="feature")
            scale_data = pm.Data("data_scale", scale, dims="feature")
            weights = pm.Dirichlet("weights", a=priors.alpha_vector(K), dims="component")
            if order_feature is None:
                means_z = pm.Normal("means_z", 0.0, priors.mean_scale, dims=("component", "feature"))
            else:
                from pymc.distributions.transforms import ordered

                # Ordered along one feature: that column is sorted; the others are free.
                cols = []
                for j in range(D):
                    if j == order_feature:
                        init = np.linspace(-1, 1, K) if K > 1 else np.zeros(1)
                        col = pm.Normal(f"means_z_{names[j]}_ordered", 0.0, priors.mean_scale, shape=K,
                                        transform=ordered, initval=init)
                    else:
                        col = pm.Normal(f"means_z_{names[j]}", 0.0, priors.mean_scale, shape=K)
                    cols.append(col)
                means_z = pm.Deterministic("means_z", pt.stack(cols, axis=1), dims=("component", "feature"))
            if self.covariance_type == "full":
                # One LKJ prior per component, as pm.LKJCholeskyCov, but batched (see _lkj).
                # The packed identity gives the variable its support shape (signature
                # "(p)->(p)") and its default start; the log-density does not use it.
                scale_params = pm.CustomDist(
                    "chol_cov_z", identity_packed(D),
                    logp=lambda value, _: lkj_cholesky_cov_logp(value, priors.eta, D, priors.sd_prior()),
                    support_point=lambda rv, size, identity: pt.zeros_like(rv) + identity,
                    random=lambda identity, rng=None, size=None: draw_packed(
                        rng, priors.eta, D, priors.draw_sds, size if size is not None else identity.shape[:-1]),
                    signature="(p)->(p)", dims=("component", "chol_entry"), transform=BatchedCholeskyCovPacked(D),
                    shape=(K, D * (D + 1) // 2),  # static: the JAX backend (numpyro) needs it for the gradient
                )  # (K, D(D+1)/2), row-major packed lower triangles
            else:
                scale_params = priors.sd_distribution("sds_z", dims=("component", "feature"))

            log_norm_const = -0.5 * D * np.log(2 * np.pi) - pt.log(scale_data).sum()
            packed_index = {(i, j): p for p, (i, j) in enumerate(zip(*tril))}
            full = self.covariance_type == "full"

            def mixture_logp(value, w, mu, params):
                # PyMC passes parameters with leading broadcast dims of size 1; they are
                # never batched over rows, so take their core shapes.
                w, mu = w.reshape((K,)), mu.reshape((K, D))
                params = params.reshape((K, -1))
                if likelihood == "kernel":
                    return MixtureLogLike(full)(value, centre_data, scale_data, w, mu, params)[0]
                xz = (value - centre_data) / scale_data
                # Whiten by forward substitution, y = L^{-1} (x - mu), feature by feature on
                # (N, K) arrays: only elementwise ops, which PyTensor fuses (no per-component
                # triangular solves, no matrix assembly) -- the reason this is fast.
                maha, log_det, ys = 0.0, 0.0, []
                for i in range(D):
                    resid = xz[:, i][:, None] - mu[:, i][None, :]
                    if full:
                        for j in range(i):
                            resid = resid - params[:, packed_index[i, j]][None, :] * ys[j]
                        diag = params[:, packed_index[i, i]]
                    else:
                        diag = params[:, i]
                    y = resid / diag[None, :]
                    ys.append(y)
                    maha = maha + y**2
                    log_det = log_det + pt.log(diag)
                log_prob = -0.5 * maha - log_det[None, :] + pt.log(w)[None, :] + log_norm_const
                return pt.logsumexp(log_prob, axis=1)

            pm.CustomDist(
                "obs", weights, means_z, scale_params, logp=mixture_logp, observed=data,
                dims=None if batch_size is not None else ("obs_id", "feature"),
                signature="(k),(k,d),(k,p)->(d)",
                total_size=N if batch_size is not None else None,
            )
        if initvals:
            for name, value in initvals.items():
                model.set_initval(model[name], value)
        self.model_ = model
        return model

    # ---------------------------------------------------------------- fitting
    def fit(
        self,
        X,
        method: str = "nuts",
        *,
        draws: int = 1000,
        tune: int = 1000,
        chains: int = 2,
        random_seed: int | None = None,
        progressbar: bool = True,
        init: str = "em",
        sampler: str = "pymc",
        mass_matrix: str = "auto",
        warmup_start: str = "laplace",
        batch_size: int | str | None = "auto",
        n_iterations: int = 20_000,
        learning_rate: float = 0.01,
        log_likelihood: bool | str = "auto",
        **sampler_kwargs,
    ):
        """Fit by NUTS or variational inference; always returns ``arviz.InferenceData``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        method : {"nuts", "advi", "fullrank_advi"}, default="nuts"
        draws : int, default=1000
            Posterior draws per chain (NUTS) or from the fitted approximation (ADVI).
        tune : int, default=1000
            NUTS warm-up iterations per chain.
        chains : int, default=2
        random_seed : int, optional
            The same seed gives identical draws.
        progressbar : bool, default=True
        init : {"em", "prior"}, default="em"
            ``"em"`` starts at an EM solution (the cheap way to avoid poor modes;
            the weights and covariances are jittered per chain, the means are not,
            so chains share one labelling); ``"prior"`` at PyMC's default point.
        sampler : {"pymc", "nutpie", "numpyro"}, default="pymc"
            NUTS implementation. "pymc" is PyMC's own sampler on PyTensor's C
            backend linked to OpenBLAS (see the README). "nutpie" needs the
            ``nutpie`` extra and "numpyro" the ``jax`` extra; "numpyro" supports
            only ``covariance_type="diag"`` for now.
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
            ADVI only: minibatch size. "auto" uses 2,000-row minibatches above
            20,000 rows and the full data below; None always uses all rows.
        n_iterations : int, default=20000
            ADVI only: maximum optimisation steps (stops earlier on convergence).
        learning_rate : float, default=0.01
            ADVI only: Adam step size.
        log_likelihood : bool or "auto", default="auto"
            Store the pointwise log-likelihood (needed by ``az.loo``). "auto" stores
            it unless draws x rows exceeds 2e7 (it would take gigabytes).
        **sampler_kwargs
            Passed to the NUTS implementation.

        Returns
        -------
        arviz.InferenceData
            ``posterior`` with ``weights``, ``means``, ``stds``, ``cov``, ``chol``
            and (full) ``corr`` in data units plus the standardised latents;
            ``log_likelihood`` (chain, draw, obs_id); ``observed_data``;
            ``sample_stats`` (NUTS) or ``fit_history`` (ADVI loss).
        """
        from . import inference

        self._check_X(X, fitting=True)  # every input check happens before any compilation
        if method not in _METHODS:
            raise ValueError(f"method must be one of {_METHODS}, got {method!r}.")
        if init not in _INITS:
            raise ValueError(f"init must be one of {_INITS}, got {init!r}.")
        for name, value, low in (("draws", draws, 1), ("tune", tune, 0), ("chains", chains, 1),
                                 ("n_iterations", n_iterations, 1)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}.")
        if method == "nuts" and sampler == "numpyro" and self.covariance_type == "full":
            # Known issue: under the JAX backend the batched LKJ prior's chains settle on
            # a wrong mode (all means at the data centre); the C and numba backends agree.
            raise NotImplementedError(
                "sampler='numpyro' does not support covariance_type='full' yet; use sampler='pymc' (default) "
                "or 'nutpie', or covariance_type='diag'."
            )
        if method == "nuts":
            inference.check_sampler(sampler)
        if mass_matrix not in ("auto", "full", "diag"):
            raise ValueError(f"mass_matrix must be 'auto', 'full' or 'diag', got {mass_matrix!r}.")
        if warmup_start not in ("laplace", "identity"):
            raise ValueError(f"warmup_start must be 'laplace' or 'identity', got {warmup_start!r}.")
        if not (batch_size is None or batch_size == "auto" or
                (isinstance(batch_size, numbers.Integral) and not isinstance(batch_size, bool) and batch_size > 0)):
            raise ValueError(f"batch_size must be a positive integer, 'auto' or None, got {batch_size!r}.")
        if log_likelihood not in (True, False, "auto"):
            raise ValueError(f"log_likelihood must be True, False or 'auto', got {log_likelihood!r}.")
        if random_seed is not None and not isinstance(random_seed, numbers.Integral):
            raise TypeError(f"random_seed must be an integer or None, got {random_seed!r}.")

        if method == "nuts":
            idata = inference.fit_nuts(self, X, draws=draws, tune=tune, chains=chains, random_seed=random_seed,
                                       progressbar=progressbar, init=init, sampler=sampler,
                                       mass_matrix=mass_matrix, warmup_start=warmup_start,
                                       log_likelihood=log_likelihood, **sampler_kwargs)
        else:
            idata = inference.fit_vi(self, X, method=method, draws=draws, random_seed=random_seed,
                                     progressbar=progressbar, init=init, batch_size=batch_size,
                                     n_iterations=n_iterations, learning_rate=learning_rate,
                                     log_likelihood=log_likelihood)
        idata.attrs[_CONFIG_ATTR] = json.dumps(self.config, sort_keys=True)
        idata.attrs[_HASH_ATTR] = _config_hash(idata.attrs[_CONFIG_ATTR])
        idata.attrs["inference_method"] = method
        idata.attrs["sampler"] = sampler if method == "nuts" else "pymc.fit"
        idata.attrs["random_seed"] = -1 if random_seed is None else int(random_seed)
        self.idata_ = idata
        if method == "nuts":
            inference.warn_on_diagnostics(idata)
        return idata

    # ---------------------------------------------------------------- save/load
    def save(self, path: str | Path) -> None:
        """Write the fit to netCDF, with the model config in the attributes.

        Parameters
        ----------
        path : str or Path
        """
        if self.idata_ is None:
            raise ValueError("Nothing to save: call fit() first.")
        self.idata_.to_netcdf(str(path))

    @classmethod
    def load(cls, path: str | Path, **expected) -> BayesianGMM:
        """Load a saved fit, refusing a file that does not match.

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
        """
        import arviz as az

        idata = az.from_netcdf(str(path))
        raw = idata.attrs.get(_CONFIG_ATTR)
        if raw is None:
            raise ValueError(f"{path} was not written by BayesianGMM.save (no {_CONFIG_ATTR!r} attribute).")
        if idata.attrs.get(_HASH_ATTR) != _config_hash(raw):
            raise ValueError(f"{path}: the stored model config does not match its checksum; the file was altered.")
        config = json.loads(raw)
        model = cls(**config)
        if expected:
            wanted = cls(**{**config, **expected}).config
            diff = sorted(k for k in wanted if wanted[k] != model.config[k])
            if diff:
                details = ", ".join(f"{k}: file has {model.config[k]!r}, expected {wanted[k]!r}" for k in diff)
                raise ValueError(f"{path} holds a different model ({details}).")
        post = idata.posterior
        if post.sizes.get("component") != model.n_components:
            raise ValueError(f"{path}: posterior has {post.sizes.get('component')} components, config says "
                             f"{model.n_components}.")
        model.idata_ = idata
        model._scaling = {
            "centre": np.asarray(idata.attrs.get("data_centre", [])),
            "scale": np.asarray(idata.attrs.get("data_scale", [])),
            "feature": list(post.coords["feature"].values),
        }
        return model


def _config_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()

