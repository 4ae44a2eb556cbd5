"""bayesgmm: Gaussian mixtures by EM and by full Bayesian inference, side by side."""

from ._posterior import em_to_idata
from .compare import FitComparison, KComparison, compare_fits, compare_k
from .em import DegenerateFitWarning, GaussianMixtureEM
from .labels import relabel
from .model import BayesianGMM
from .priors import Priors
from .selection import ModelSelection, select_model
from .summaries import (
    assignments,
    density_grid,
    effective_components,
    marginal_density,
    predictive_density,
    sample_posterior_predictive,
    summary,
)

__version__ = "0.1.0"

__all__ = [
    "BayesianGMM",
    "DegenerateFitWarning",
    "GaussianMixtureEM",
    "ModelSelection",
    "Priors",
    "select_model",
    "relabel",
    "summary",
    "assignments",
    "predictive_density",
    "density_grid",
    "marginal_density",
    "sample_posterior_predictive",
    "effective_components",
    "compare_k",
    "KComparison",
    "compare_fits",
    "FitComparison",
    "em_to_idata",
]
