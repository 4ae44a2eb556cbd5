r"""Covariance structures of the Bayesian mixture, each represented once.

The Bayesian counterpart of :mod:`bayesgmm.covariance` (the EM side's strategy
objects). Every covariance type of :class:`~bayesgmm.BayesianGMM` is one
:class:`BayesCovariance` object that owns

* its latent variable (name, dims) and the PyMC declaration of its prior,
* what the likelihood gets: a (K, P) array of per-component parameters, packed
  Cholesky factors (``kernel_full``) or standard deviations, in both the
  compiled-kernel Op and the plain-graph path (``tied`` is broadcast to a full
  factor per component, ``spherical`` to a diagonal one),
* the start at given covariances (e.g. an EM fit's) and the per-chain jitter,
* the unpacking of posterior draws into Cholesky factors (..., K, D, D),
* the number of free parameters (for the ``"auto"`` mass matrix),
* draws from the prior (:meth:`BayesianGMM.sample_prior_predictive`).

Everything here is on the standardised scale :math:`z = (x - c) / s` the model
works on; :func:`bayesgmm._posterior.parameters_dataset` moves the factors to the
data's units. With :math:`\sigma \sim` ``sd_dist(sd_scale)`` and LKJ(:math:`\eta`)
correlations :math:`\Omega` (see :class:`~bayesgmm.Priors`):

* ``full``: :math:`\Sigma_k = \mathrm{diag}(\sigma_k)\Omega_k\mathrm{diag}(\sigma_k)`,
  one LKJ-Cholesky covariance per component (latent ``chol_cov_z``, (K, D(D+1)/2));
* ``diag``: :math:`\Sigma_k = \mathrm{diag}(\sigma_k)^2` (latent ``sds_z``, (K, D));
* ``tied``: :math:`\Sigma_k = \Sigma = \mathrm{diag}(\sigma)\Omega\mathrm{diag}(\sigma)`
  for every k, one LKJ-Cholesky covariance shared by all components (latent
  ``chol_cov_z``, (D(D+1)/2,));
* ``spherical``: :math:`\Sigma_k = \sigma_k^2 I` on the standardised scale, that
  is :math:`\mathrm{diag}(s)^2\sigma_k^2` in data units, with one
  :math:`\sigma_k \sim` ``sd_dist(sd_scale)`` per component (latent ``sd_z``, (K,)),
  as the EM side defines it.

Examples
--------
>>> from bayesgmm.bayes_covariance import get_bayes_covariance
>>> cov = get_bayes_covariance("tied")
>>> cov.latent, cov.dims, cov.n_parameters(3, 2)
('chol_cov_z', ('chol_entry',), 3)
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from ._lkj import draw_packed, identity_packed, unpack_cholesky
from .covariance import check_feature_rank

#: ``GaussianMixtureEM``'s default ``reg_covar``, which the EM start uses: data whose
#: correlation matrix has an eigenvalue below it are refused for full and tied covariances.
EM_START_REG_COVAR = 1e-6

__all__ = ["add_noise", "BayesCovariance", "FullBayesCovariance", "DiagBayesCovariance", "TiedBayesCovariance",
           "SphericalBayesCovariance", "BAYES_COVARIANCE_TYPES", "get_bayes_covariance"]

#: Relative per-chain jitter of the covariance latents (positive entries stay positive).
_JITTER_SD = 0.05


class BayesCovariance(ABC):
    """What depends on the covariance structure in the Bayesian model (standardised scale)."""

    #: The ``covariance_type`` this object implements.
    name: str
    #: Name of the latent variable.
    latent: str
    #: Its dims (without chain and draw).
    dims: tuple[str, ...]
    #: True when the likelihood gets packed Cholesky factors (K, D(D+1)/2), False for sds (K, D).
    kernel_full: bool
    #: True when components have correlations (the posterior then stores ``corr``).
    correlated: bool

    @abstractmethod
    def n_parameters(self, n_components: int, n_features: int) -> int:
        """Number of free covariance parameters."""

    def check_data_rank(self, Z: np.ndarray, names: list[str]) -> None:
        """Raise a ValueError where the standardised data ``Z`` cannot support this type's covariances.

        Only correlated covariances (full, tied) need the features to be linearly independent.
        """
        return None

    @abstractmethod
    def declare(self, priors, n_components: int, n_features: int):
        """Declare the latent variable with its prior in the current PyMC model; returns it."""

    @abstractmethod
    def kernel_params(self, latent, n_components: int, n_features: int):
        """The symbolic (K, P) parameters the likelihood gets, from the latent variable."""

    @abstractmethod
    def start(self, covariances: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """The latent's value nearest to covariances (K, D, D) with component weights (K,)."""

    @abstractmethod
    def cholesky(self, draws: np.ndarray, n_components: int, n_features: int) -> np.ndarray:
        """Draws of the latent (..., *shape) as lower Cholesky factors (..., K, D, D)."""

    @abstractmethod
    def draw_prior(self, rng: np.random.Generator, priors, n_components: int, n_features: int) -> np.ndarray:
        """One draw from the prior as Cholesky factors (K, D, D)."""

    def with_noise(self, params, noise_variance, n_components: int, n_features: int, likelihood: str = "kernel"):
        """The symbolic (K, P) likelihood parameters of ``Sigma_k + diag(noise_variance)``.

        ``noise_variance`` (D,) is the rounding error's variance (standardised scale).
        ``likelihood="kernel"`` refactors with a compiled Op
        (:class:`bayesgmm._likelihood.NoisyFactor`), ``"graph"`` with PyTensor's
        Cholesky (which the JAX backend compiles).
        """
        import pytensor.tensor as pt

        if not self.kernel_full:  # static shapes: the JAX backend (numpyro) needs them for the gradient
            return pt.sqrt(pt.square(pt.specify_shape(params, (n_components, n_features))) + noise_variance[None, :])
        if likelihood == "kernel":
            from ._likelihood import NoisyFactor

            return NoisyFactor()(params, noise_variance)
        rows, cols = np.tril_indices(n_features)
        factor = pt.zeros((n_components, n_features, n_features))[:, rows, cols].set(params)
        covariance = factor @ pt.swapaxes(factor, -1, -2) + pt.diag(noise_variance)[None]
        return pt.linalg.cholesky(covariance)[:, rows, cols]

    def start_without_noise(self, covariances: np.ndarray, weights: np.ndarray,
                            noise_variance: np.ndarray) -> np.ndarray:
        """:meth:`start` at ``covariances`` less the rounding error (each variance kept >= 1/4 of its own).

        A start given as observed-value covariances (an EM fit's) is ``Sigma_k +
        diag(noise_variance)`` in the model; the cap keeps every matrix positive definite.
        """
        covariances = np.array(covariances, dtype=float)
        diagonal = np.diagonal(covariances, axis1=-2, axis2=-1)
        reduced = np.maximum(diagonal - noise_variance, diagonal / 4)
        shrink = np.sqrt(reduced / diagonal)
        return self.start(covariances * shrink[..., :, None] * shrink[..., None, :], weights)

    def jitter(self, value: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A slightly perturbed start (each entry times exp(N(0, 0.05^2)): positive stays positive)."""
        value = np.asarray(value, dtype=float)
        return value * np.exp(rng.normal(0, _JITTER_SD, value.shape))

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


def add_noise(chol: np.ndarray, noise_variance: np.ndarray) -> np.ndarray:
    """Cholesky factors (..., K, D, D) of ``L L' + diag(noise_variance)``: the observed values' covariances."""
    noise_variance = np.asarray(noise_variance, dtype=float)
    if not np.any(noise_variance > 0):
        return chol
    return np.linalg.cholesky(chol @ np.swapaxes(chol, -1, -2) + np.diag(noise_variance))


# --------------------------------------------------------------- LKJ-Cholesky
class _LKJCovariance(BayesCovariance):
    """Packed LKJ-Cholesky covariances: one per component (full) or one shared (tied)."""

    latent = "chol_cov_z"
    kernel_full = True
    correlated = True

    @abstractmethod
    def _n_matrices(self, n_components: int) -> int:
        """How many covariance matrices the latent holds."""

    def n_parameters(self, n_components, n_features):
        return self._n_matrices(n_components) * n_features * (n_features + 1) // 2

    def check_data_rank(self, Z, names):
        # The same data as EM's full and tied fits refuse, at its default cut-off: the EM
        # start could not fit them, and the covariances' posterior would press against
        # singular matrices along that direction (improper without a rounding term).
        check_feature_rank(Z, np.ones(Z.shape[0]), names, EM_START_REG_COVAR,
                           f"{EM_START_REG_COVAR:.0e}, the default reg_covar of the EM fit that starts the sampler",
                           "the EM start cannot fit them, and the posterior of the covariances would press against "
                           "singular matrices along that direction")

    def _shape(self, n_components: int, n_features: int) -> tuple[int, ...]:
        """The latent's shape: (K, P) for one factor per component, (P,) for the shared one."""
        packed = n_features * (n_features + 1) // 2
        return (n_components, packed) if "component" in self.dims else (packed,)

    def declare(self, priors, n_components, n_features):
        import pymc as pm
        import pytensor.tensor as pt

        from ._lkj import lkj_cholesky_cov_logp
        from ._transforms import BatchedCholeskyCovPacked

        D = n_features
        # The LKJ prior, as pm.LKJCholeskyCov, but batched (see _lkj). The packed
        # identity gives the variable its support shape (signature "(p)->(p)") and
        # its default start; the log-density does not use it.
        return pm.CustomDist(
            self.latent, identity_packed(D),
            logp=lambda value, _: lkj_cholesky_cov_logp(value, priors.eta, D, priors.sd_prior()),
            support_point=lambda rv, size, identity: pt.zeros_like(rv) + identity,
            random=lambda identity, rng=None, size=None: draw_packed(
                rng, priors.eta, D, priors.draw_sds, size if size is not None else identity.shape[:-1]),
            signature="(p)->(p)", dims=self.dims, transform=BatchedCholeskyCovPacked(D),
            shape=self._shape(n_components, D),  # static: the JAX backend (numpyro) needs it for the gradient
        )


class FullBayesCovariance(_LKJCovariance):
    r"""One covariance per component: :math:`\Sigma_k = L_k L_k'`, ``L_k ~ LKJCholeskyCov(eta, sd_dist)``."""

    name = "full"
    dims = ("component", "chol_entry")

    def _n_matrices(self, n_components):
        return n_components

    def kernel_params(self, latent, n_components, n_features):
        return latent

    def start(self, covariances, weights):
        D = covariances.shape[-1]
        return np.linalg.cholesky(covariances)[:, *np.tril_indices(D)]

    def cholesky(self, draws, n_components, n_features):
        return unpack_cholesky(draws, n_features)

    def draw_prior(self, rng, priors, n_components, n_features):
        return unpack_cholesky(draw_packed(rng, priors.eta, n_features, priors.draw_sds, (n_components,)), n_features)


class TiedBayesCovariance(_LKJCovariance):
    r"""One covariance shared by every component.

    .. math::

        \sigma_j &\sim \text{sd\_dist}(\text{sd\_scale}), \quad \Omega \sim \mathrm{LKJ}(\eta) \\
        \Sigma_k &= \Sigma = \mathrm{diag}(\sigma)\,\Omega\,\mathrm{diag}(\sigma) \quad (k = 1..K)

    on the standardised scale, declared as one packed LKJ-Cholesky factor
    ``chol_cov_z`` (dims ``chol_entry``); the likelihood sees it repeated per
    component, and so does the posterior (``cov``, ``chol``, ``stds``, ``corr``
    per component, all equal).
    """

    name = "tied"
    dims = ("chol_entry",)

    def _n_matrices(self, n_components):
        return 1

    def kernel_params(self, latent, n_components, n_features):
        import pytensor.tensor as pt

        return pt.broadcast_to(latent[None, :], (n_components, n_features * (n_features + 1) // 2))

    def start(self, covariances, weights):
        D = covariances.shape[-1]
        pooled = np.einsum("k,kde->de", np.asarray(weights, dtype=float) / np.sum(weights), covariances)
        return np.linalg.cholesky(pooled)[np.tril_indices(D)]

    def cholesky(self, draws, n_components, n_features):
        chol = unpack_cholesky(draws, n_features)[..., None, :, :]
        return np.broadcast_to(chol, chol.shape[:-3] + (n_components, n_features, n_features)).copy()

    def draw_prior(self, rng, priors, n_components, n_features):
        chol = unpack_cholesky(draw_packed(rng, priors.eta, n_features, priors.draw_sds, ()), n_features)
        return np.broadcast_to(chol, (n_components, n_features, n_features)).copy()


# ------------------------------------------------------------------ diagonal
class DiagBayesCovariance(BayesCovariance):
    r"""Independent features: :math:`\Sigma_k = \mathrm{diag}(\sigma_k)^2`, :math:`\sigma_{kj} \sim` sd_dist."""

    name = "diag"
    latent = "sds_z"
    dims = ("component", "feature")
    kernel_full = False
    correlated = False

    def n_parameters(self, n_components, n_features):
        return n_components * n_features

    def declare(self, priors, n_components, n_features):
        return priors.sd_distribution(self.latent, dims=self.dims)

    def kernel_params(self, latent, n_components, n_features):
        return latent

    def start(self, covariances, weights):
        return np.sqrt(np.diagonal(covariances, axis1=-2, axis2=-1))

    def cholesky(self, draws, n_components, n_features):
        return np.einsum("...d,de->...de", draws, np.eye(n_features))

    def draw_prior(self, rng, priors, n_components, n_features):
        return np.einsum("kd,de->kde", priors.draw_sds(rng, (n_components, n_features)), np.eye(n_features))


class SphericalBayesCovariance(BayesCovariance):
    r"""One variance per component, the same for every (standardised) feature.

    .. math::

        \sigma_k \sim \text{sd\_dist}(\text{sd\_scale}), \qquad \Sigma_k = \sigma_k^2 I

    on the standardised scale (the prior of each :math:`\sigma_k` is that of one of
    ``diag``'s sds), i.e. :math:`\Sigma_k = \sigma_k^2\,\mathrm{diag}(s)^2` in data
    units, as EM's ``spherical`` is defined. Latent ``sd_z`` (dims ``component``);
    the likelihood sees it as a diagonal factor.
    """

    name = "spherical"
    latent = "sd_z"
    dims = ("component",)
    kernel_full = False
    correlated = False

    def n_parameters(self, n_components, n_features):
        return n_components

    def declare(self, priors, n_components, n_features):
        return priors.sd_distribution(self.latent, dims=self.dims)

    def kernel_params(self, latent, n_components, n_features):
        import pytensor.tensor as pt

        return pt.broadcast_to(latent[:, None], (n_components, n_features))

    def start(self, covariances, weights):
        return np.sqrt(np.diagonal(covariances, axis1=-2, axis2=-1).mean(axis=-1))

    def cholesky(self, draws, n_components, n_features):
        return draws[..., :, None, None] * np.eye(n_features)

    def draw_prior(self, rng, priors, n_components, n_features):
        return priors.draw_sds(rng, (n_components,))[:, None, None] * np.eye(n_features)


#: The covariance types of :class:`~bayesgmm.BayesianGMM`, by name.
BAYES_COVARIANCE_TYPES: dict[str, BayesCovariance] = {
    cov.name: cov for cov in (FullBayesCovariance(), DiagBayesCovariance(), TiedBayesCovariance(),
                              SphericalBayesCovariance())
}


def get_bayes_covariance(name: str) -> BayesCovariance:
    """The strategy object of a covariance type, with a clear error listing the four."""
    try:
        return BAYES_COVARIANCE_TYPES[name]
    except (KeyError, TypeError):
        raise ValueError(f"covariance_type must be one of {list(BAYES_COVARIANCE_TYPES)!r}, got {name!r}.") from None
