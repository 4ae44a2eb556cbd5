"""bayesgmm: Gaussian mixtures by EM and by full Bayesian inference, side by side."""

from .em import DegenerateFitWarning, GaussianMixtureEM
from .model import BayesianGMM
from .priors import Priors
from .selection import ModelSelection, select_model

__version__ = "0.1.0"

__all__ = [
    "BayesianGMM",
    "DegenerateFitWarning",
    "GaussianMixtureEM",
    "ModelSelection",
    "Priors",
    "select_model",
]
