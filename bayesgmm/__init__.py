"""bayesgmm: Gaussian mixtures by EM and by full Bayesian inference, side by side."""

from ._posterior import em_to_idata
from .compare import FitComparison, KComparison, compare_fits, compare_k
from .cost import CostEstimate, ExpensiveFitWarning
from .diagnostics import PosteriorDiagnosticsWarning, Verdict, assess, chain_modes
from .em import DegenerateFitWarning, GaussianMixtureEM
from .fit_settings import fit_settings
from .labels import relabel
from .model import BayesianGMM
from .partition import (
    credible_ball,
    draw_allocations,
    occupied_clusters,
    partition_distance,
    partition_summary,
    point_partition,
    similarity_matrix,
)
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


def _package_version() -> str:
    """The installed distribution's version (pyproject.toml's), or ``"0+unknown"`` from an uninstalled tree."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bayesgmm")
    except PackageNotFoundError:
        return "0+unknown"


__version__ = _package_version()

__all__ = [
    "fit_settings",
    "CostEstimate",
    "ExpensiveFitWarning",
    "BayesianGMM",
    "DegenerateFitWarning",
    "PosteriorDiagnosticsWarning",
    "Verdict",
    "assess",
    "chain_modes",
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
    "draw_allocations",
    "similarity_matrix",
    "point_partition",
    "credible_ball",
    "occupied_clusters",
    "partition_summary",
    "partition_distance",
]
