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
    ``j`` in the training data (or ``location`` and ``scale``, when given),

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
    location : float or sequence of float, optional
        ``c``, in the data's units: one value for every feature or one per feature.
        None (default): the training data's mean of each feature.
    scale : float or sequence of float, optional
        ``s`` (finite, > 0), in the data's units: one value for every feature or one
        per feature. None (default): the training data's standard deviation.
    rounding : "auto", float or sequence of float, default="auto"
        Not a prior on a parameter but a fixed part of the data model: the step
        ``h_j >= 0`` (data units) to which feature ``j`` was recorded. Values
        rounded to a grid of step ``h`` carry a rounding error of variance
        ``h**2 / 12``, which is added to every component's covariance
        (``Sigma_k + diag(h**2 / 12)``: the observed values' covariance, which the
        fit reports). Without it, rows tied at one value make the likelihood
        unbounded and the posterior improper (see the model docs). ``0`` means
        recorded exactly. ``"auto"``: for each feature with tied values, the
        median spacing between its distinct values; 0 for a feature without ties.
        For a generative model give numbers (``"auto"`` looks at the data).

    Notes
    -----
    By default ``c`` and ``s`` come from the training data: the prior is set by the
    data it is applied to (empirical Bayes, as Richardson & Green, 1997, set theirs
    from the data's range). That suits a single analysis but is not a generative
    model: it cannot be simulated from before seeing data, and two datasets get two
    different priors. Fixing ``location`` and ``scale`` (from domain knowledge, or
    from a reference dataset) makes the model generative: the same prior for any
    data, which can be drawn from
    (:meth:`~bayesgmm.BayesianGMM.sample_prior_predictive`), compared between
    datasets and calibrated by simulation (:mod:`bayesgmm.validation`).

    Examples
    --------
    >>> from bayesgmm import Priors
    >>> Priors.from_config({"alpha": 0.5}).alpha
    0.5
    >>> Priors(location=[0.0, 70.0], scale=[1.0, 10.0]).location_vector(2).tolist()
    [0.0, 70.0]
    """

    alpha: float | tuple[float, ...] = 1.0
    eta: float = 2.0
    mean_scale: float = 2.0
    sd_scale: float = 1.0
    sd_dist: str = "halfnormal"
    location: float | tuple[float, ...] | None = None
    scale: float | tuple[float, ...] | None = None
    rounding: str | float | tuple[float, ...] = "auto"

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
        object.__setattr__(self, "location", _check_per_feature(self.location, "location", positive=False))
        object.__setattr__(self, "scale", _check_per_feature(self.scale, "scale", positive=True))
        if not (isinstance(self.rounding, str) and self.rounding == "auto"):
            if isinstance(self.rounding, str) or self.rounding is None:
                raise ValueError(f"priors['rounding'] must be 'auto' or a finite number >= 0 (or one per feature), "
                                 f"got {self.rounding!r}.")
            rounding = _check_per_feature(self.rounding, "rounding", positive=False)
            if np.any(np.asarray(rounding) < 0):
                raise ValueError(f"priors['rounding'] must be 'auto' or a finite number >= 0 (or one per feature), "
                                 f"got {self.rounding!r}.")
            object.__setattr__(self, "rounding", rounding)

    @property
    def generative(self) -> bool:
        """True when both ``location`` and ``scale`` are fixed (the prior does not depend on the data)."""
        return self.location is not None and self.scale is not None

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

    def location_vector(self, n_features: int) -> np.ndarray | None:
        """``location`` as a vector of length ``n_features`` (None when not set)."""
        return _per_feature_vector(self.location, "location", n_features)

    def scale_vector(self, n_features: int) -> np.ndarray | None:
        """``scale`` as a vector of length ``n_features`` (None when not set)."""
        return _per_feature_vector(self.scale, "scale", n_features)

    def rounding_vector(self, n_features: int) -> np.ndarray | None:
        """``rounding`` as a vector of length ``n_features`` in data units (None for ``"auto"``)."""
        return None if self.rounding == "auto" else _per_feature_vector(self.rounding, "rounding", n_features)

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
        for name in ("alpha", "location", "scale", "rounding"):
            if isinstance(out[name], tuple):
                out[name] = list(out[name])
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


#: A fixed scale must keep covariances (scale**2) and precisions normal float64 numbers,
#: as :class:`~bayesgmm.scaling.FeatureScaling` requires of a scale computed from data.
_FIXED_SCALE_LIMITS = (1e-152, 1e152)


def _check_per_feature(value, name: str, *, positive: bool):
    """None, a finite number or a non-empty 1-D sequence of them; stored as a float or a tuple."""
    if value is None:
        return None
    kind = "finite positive number" if positive else "finite number"
    shown = value
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value.item()
    if isinstance(value, (list, tuple, np.ndarray)):
        array = np.asarray(value, dtype=object)
        if array.ndim != 1:
            raise ValueError(f"priors[{name!r}] must be a {kind} or a 1-D sequence of them (one per feature), "
                             f"got an array of shape {array.shape}.")
        if array.size == 0:
            raise ValueError(f"priors[{name!r}] must be a {kind} or a non-empty sequence of them (one per "
                             "feature), got an empty sequence.")
        values = list(array)
    else:
        values = [value]
    out = []
    for item in values:
        if isinstance(item, (bool, np.bool_)) or not isinstance(item, numbers.Real):
            raise TypeError(f"priors[{name!r}] must be a {kind} or a sequence of them (one per feature), got "
                            f"{shown!r} (holding {type(item).__name__}).")
        item = float(item)
        if not np.isfinite(item) or (positive and item <= 0):
            raise ValueError(f"priors[{name!r}] must be a {kind} or a sequence of them (one per feature), got "
                             f"{shown!r}.")
        if positive and not _FIXED_SCALE_LIMITS[0] <= item <= _FIXED_SCALE_LIMITS[1]:
            raise ValueError(f"priors[{name!r}] values must lie within {_FIXED_SCALE_LIMITS[0]:g}.."
                             f"{_FIXED_SCALE_LIMITS[1]:g} (covariances in those units must fit in float64), got "
                             f"{shown!r}.")
        out.append(item)
    return tuple(out) if isinstance(value, (list, tuple, np.ndarray)) else out[0]


def _per_feature_vector(value, name: str, n_features: int) -> np.ndarray | None:
    if value is None:
        return None
    if isinstance(value, tuple):
        if len(value) != n_features:
            raise ValueError(f"priors[{name!r}] has {len(value)} values but the data have {n_features} "
                             f"feature(s); give one value per feature, or a single number for all of them.")
        return np.asarray(value, dtype=float)
    return np.full(n_features, float(value))
