"""The PyMC declaration of the Bayesian mixture, from a model spec and prepared data.

:func:`declare_model` is what :meth:`BayesianGMM.build_model` and the samplers in
:mod:`bayesgmm.inference` call; it reads nothing but its arguments. The
covariance prior and what the likelihood gets come from the spec's covariance
strategy object (:mod:`bayesgmm.bayes_covariance`).
"""

from __future__ import annotations

import numpy as np

from ._validation import check_integer_param, check_option
from .pipeline import ModelSpec, PreparedData

__all__ = ["declare_model", "LIKELIHOODS", "NOISE_VARIANCE"]

#: Name of the ``pm.Data`` holding the rounding error's variance per feature (standardised scale).
NOISE_VARIANCE = "noise_variance_z"

#: How the observed variable's log-density is written (see :func:`declare_model`).
LIKELIHOODS = ("kernel", "graph")


def declare_model(spec: ModelSpec, data: PreparedData, *, batch_size: int | None = None,
                  likelihood: str = "kernel"):
    """The PyMC model of ``spec`` on the standardised data ``data.Z``.

    Parameters
    ----------
    spec : ModelSpec
    data : PreparedData
    batch_size : int, optional
        Use a ``pm.Minibatch`` of this many rows (for minibatch ADVI).
    likelihood : {"kernel", "graph"}, default="kernel"
        "kernel": one PyTensor Op running compiled loops
        (:class:`bayesgmm._likelihood.MixtureLogLike`; PyTensor's C and numba
        backends run it, so PyMC's sampler, ADVI and nutpie); "graph": plain PyTensor
        operations, which the JAX backend (numpyro) can compile. Same values and
        gradients.

    Returns
    -------
    pymc.Model
    """
    from ._pytensor_setup import configure_pytensor

    configure_pytensor()
    import pymc as pm
    import pytensor.tensor as pt

    likelihood = check_option(likelihood, "likelihood", LIKELIHOODS)
    if batch_size is not None:
        batch_size = check_integer_param(batch_size, "batch_size", minimum=1, maximum=data.X.shape[0])
    order_feature = spec.order_feature(data.names)
    Z, names = data.Z, data.names
    N, D = Z.shape
    K, covariance = spec.n_components, spec.covariance
    tril = np.tril_indices(D)
    coords = {
        "obs_id": np.arange(N),
        "component": np.arange(K),
        "feature": names,
        "feature_bis": names,
        "chol_entry": [f"{names[i]}|{names[j]}" for i, j in zip(*tril)],
    }
    with pm.Model(coords=coords) as model:
        # The standardised data: its centre and spread are 0 and 1 whatever X's
        # units, so one compiled logp serves any X of this shape of model.
        if batch_size is None:
            observed = pm.Data("X", Z, dims=("obs_id", "feature"))
        else:
            observed = pm.Minibatch(Z, batch_size=int(batch_size))
        weights = pm.Dirichlet("weights", a=spec.priors.alpha_vector(K), dims="component")
        means_z = _declare_means(spec.priors, K, names, order_feature)
        params = covariance.kernel_params(covariance.declare(spec.priors, K, D), K, D)
        if data.rounded:  # the observed values' covariances: Sigma_k + diag(h^2 / 12)
            noise = pm.Data(NOISE_VARIANCE, data.noise_variance_z, dims="feature")
            noise = pt.specify_shape(noise, (D,))  # static: the JAX backend (numpyro) needs it for the gradient
            params = covariance.with_noise(params, noise, K, D, likelihood)
        pm.CustomDist(
            "obs", weights, means_z, params, logp=_mixture_logp(K, D, covariance.kernel_full, likelihood),
            observed=observed, dims=None if batch_size is not None else ("obs_id", "feature"),
            signature="(k),(k,d),(k,p)->(d)", total_size=N if batch_size is not None else None,
        )
    return model


def _declare_means(priors, K: int, names: list, order_feature: int | None):
    """``means_z`` (K, D): free, or with one column ordered (the others free)."""
    import pymc as pm
    import pytensor.tensor as pt

    if order_feature is None:
        return pm.Normal("means_z", 0.0, priors.mean_scale, dims=("component", "feature"))
    from pymc.distributions.transforms import ordered

    cols = []
    for j, name in enumerate(names):
        if j == order_feature:
            init = np.linspace(-1, 1, K) if K > 1 else np.zeros(1)
            col = pm.Normal(f"means_z_{name}_ordered", 0.0, priors.mean_scale, shape=K, transform=ordered,
                            initval=init)
        else:
            col = pm.Normal(f"means_z_{name}", 0.0, priors.mean_scale, shape=K)
        cols.append(col)
    return pm.Deterministic("means_z", pt.stack(cols, axis=1), dims=("component", "feature"))


def _mixture_logp(K: int, D: int, full: bool, likelihood: str):
    """The observed rows' log-density ``logp(value, w, mu, params)`` for ``pm.CustomDist``.

    ``params`` is (K, P): packed lower Cholesky factors (``full``) or sds. Both
    versions live in :mod:`bayesgmm._likelihood`: the compiled kernel Op and the
    plain-graph one that the JAX backend compiles itself.
    """
    import pytensor.tensor as pt

    from ._likelihood import MixtureLogLike, graph_mixture_logp

    centre_z, scale_z = pt.as_tensor(np.zeros(D)), pt.as_tensor(np.ones(D))

    def logp(value, w, mu, params):
        # PyMC passes parameters with leading broadcast dims of size 1; they are
        # never batched over rows, so take their core shapes.
        w, mu = w.reshape((K,)), mu.reshape((K, D))
        params = params.reshape((K, -1))
        if likelihood == "kernel":
            return MixtureLogLike(full)(value, centre_z, scale_z, w, mu, params)[0]
        return graph_mixture_logp(value, w, mu, params, full, D)

    return logp
