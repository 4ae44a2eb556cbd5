"""Prior configuration of the Bayesian mixture, merged over documented defaults."""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields

import numpy as np

__all__ = ["Priors"]

#: Families for the component sds' prior: PyMC class, its keyword arguments for a scale,
#: and a NumPy sampler (rng, scale, shape) -> draws.
_SD_DISTS = {
    "halfnormal": ("HalfNormal", lambda scale: {"sigma": scale},
                   lambda rng, scale, shape: np.abs(rng.normal(0.0, scale, shape))),
    "halfstudentt": ("HalfStudentT", lambda scale: {"nu": 3.0, "sigma": scale},
                     lambda rng, scale, shape: np.abs(scale * rng.standard_t(3.0, shape))),
    "exponential": ("Exponential", lambda scale: {"scale": scale},
                    lambda rng, scale, shape: rng.exponential(scale, shape)),
}


@dataclass(frozen=True)
class Priors:
    """Priors of :class:`~bayesgmm.BayesianGMM`, on the scale of the data.

    Scales are relative to each feature's spread, so the same defaults suit data in
    any units: with ``c_j`` the mean and ``s_j`` the standard deviation of feature
    ``j`` in the training data,

    * ``weights ~ Dirichlet(alpha)``; ``alpha < 1`` favours switching extra
      components off (a sparse mixture),
    * ``means[k, j] ~ Normal(c_j, mean_scale * s_j)``,
    * component standard deviations ``sd[k, j] ~ sd_dist(sd_scale * s_j)``, with
      ``sd_dist`` one of ``"halfnormal"`` (default), ``"halfstudentt"`` (3 degrees
      of freedom: heavier tail), ``"exponential"`` (mean ``sd_scale * s_j``),
    * correlations (full covariance) ``~ LKJ(eta)`` per component; ``eta > 1``
      shrinks towards independence, ``eta = 1`` is uniform.

    Parameters
    ----------
    alpha : float or sequence of float, default=1.0
        Dirichlet concentration, one value for all components or one per component.
    eta : float, default=2.0
        LKJ shape of each component's correlation matrix.
    mean_scale : float, default=2.0
        Prior sd of the means, in units of the data's sd.
    sd_scale : float, default=1.0
        Scale of the component sds' prior, in units of the data's sd.
    sd_dist : {"halfnormal", "halfstudentt", "exponential"}, default="halfnormal"
        Family of the component sds' prior.

    Examples
    --------
    >>> from bayesgmm import Priors
    >>> Priors.from_config({"alpha": 0.5}).alpha
    0.5
    """

    alpha: float | tuple[float, ...] = 1.0
    eta: float = 2.0
    mean_scale: float = 2.0
    sd_scale: float = 1.0
    sd_dist: str = "halfnormal"

    def __post_init__(self):
        if not isinstance(self.sd_dist, str):
            raise TypeError(f"priors['sd_dist'] must be one of {sorted(_SD_DISTS)}, got {self.sd_dist!r}.")
        if self.sd_dist not in _SD_DISTS:
            raise ValueError(f"priors['sd_dist'] must be one of {sorted(_SD_DISTS)}, got {self.sd_dist!r}.")
        alpha = self.alpha
        if isinstance(alpha, np.ndarray) and alpha.ndim == 0:
            alpha = alpha.item()
        if isinstance(alpha, (list, tuple, np.ndarray)):
            values = list(np.asarray(alpha, dtype=object).ravel())
            if not values:
                raise ValueError("priors['alpha'] must be a positive number or a non-empty sequence of them "
                                 "(one per component), got an empty sequence.")
        else:
            values = [alpha]
        for value in values:
            _check_positive(value, "alpha", self.alpha)
        alpha = tuple(float(a) for a in values) if isinstance(alpha, (list, tuple, np.ndarray)) else float(alpha)
        object.__setattr__(self, "alpha", alpha)
        for name in ("eta", "mean_scale", "sd_scale"):
            object.__setattr__(self, name, _check_positive(getattr(self, name), name))

    @classmethod
    def from_config(cls, config: Priors | Mapping | None) -> Priors:
        """Merge a dict (or a Priors) over the defaults, refusing unknown keys."""
        if config is None:
            return cls()
        if isinstance(config, Priors):
            return config
        if not isinstance(config, Mapping):
            raise TypeError(f"priors must be a dict or a Priors, got {config!r} ({type(config).__name__}).")
        known = {f.name for f in fields(cls)}
        unknown = {str(key) for key in config} - known
        if unknown:
            raise ValueError(f"Unknown prior(s) {sorted(unknown)}; expected some of {sorted(known)}.")
        return cls(**config)

    def alpha_vector(self, n_components: int) -> np.ndarray:
        """Dirichlet concentration as a vector of length ``n_components``."""
        if isinstance(self.alpha, tuple):
            if len(self.alpha) != n_components:
                raise ValueError(
                    f"priors['alpha'] has {len(self.alpha)} values but n_components is {n_components}."
                )
            return np.asarray(self.alpha)
        return np.full(n_components, float(self.alpha))

    def sd_distribution(self, name: str, dims):
        """Declare the component sds' prior (standardised scale) in the current PyMC model."""
        import pymc as pm

        family, kwargs, _ = _SD_DISTS[self.sd_dist]
        return getattr(pm, family)(name, dims=dims, **kwargs(self.sd_scale))

    def sd_prior(self):
        """The component sds' prior (standardised scale) as an unnamed PyMC distribution."""
        import pymc as pm

        family, kwargs, _ = _SD_DISTS[self.sd_dist]
        return getattr(pm, family).dist(**kwargs(self.sd_scale))

    def draw_sds(self, rng: np.random.Generator, shape: tuple) -> np.ndarray:
        """Draws of the component sds' prior (standardised scale), in NumPy."""
        return _SD_DISTS[self.sd_dist][2](rng, self.sd_scale, shape)

    def to_dict(self) -> dict:
        """Plain dict (JSON-serialisable)."""
        out = asdict(self)
        if isinstance(out["alpha"], tuple):
            out["alpha"] = list(out["alpha"])
        return out


def _check_positive(value, name: str, shown=None) -> float:
    """A finite positive real number (not a bool), else an error naming ``priors[name]``."""
    shown = value if shown is None else shown
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"priors[{name!r}] must be a finite positive number, got {shown!r} "
                        f"({type(value).__name__}).")
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"priors[{name!r}] must be a finite positive number, got {shown!r}.")
    return float(value)
