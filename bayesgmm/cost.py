"""What a Bayesian fit will cost, estimated before paying it.

NUTS's cost is (draws + tune) per chain x leapfrog steps per draw x one gradient
of the log-density. The gradient's cost grows as N·K·D² (one whitening per row
and component); the steps per draw grow with the number of free parameters and
how badly the posterior is conditioned, which is not known before sampling. The
figures below were measured on the project's 2-core reference machine:

* one gradient takes about ``5e-5 s + N·K·(D(D+1)/2 + 10·D) / 5e8 s`` (within a
  factor of 2 from N=272, D=2 to N=10,000, D=10 and N=569, D=30, any type);
* NUTS on these mixtures took about as many leapfrog steps per draw as there are
  free parameters (Old Faithful K=2 full, 11 parameters: tree depth 3-4;
  breast_cancer K=2 full, 991 parameters: tree depth 10, the cap), so that is
  the figure assumed, between 7 and ``2**max_treedepth``.

The estimate is rough (a factor of a few either way), meant to tell a 1-minute
fit from a 10-hour one before it starts.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from .fit_settings import AUTO_DRAWS_CHECKPOINTS

__all__ = ["CostEstimate", "ExpensiveFitWarning", "estimate_cost", "format_duration", "EXPENSIVE_FIT_SECONDS"]

#: Above this estimated wall time a fit warns before it starts.
EXPENSIVE_FIT_SECONDS = 600.0
_GRADIENT_OVERHEAD_S = 5e-5
_GRADIENT_RATE = 5e8  # multiply-adds per second in the compiled kernel
_MIN_STEPS = 7


class ExpensiveFitWarning(UserWarning):
    """A fit is expected to take longer than :data:`EXPENSIVE_FIT_SECONDS`; the message lists cheaper options."""


@dataclass(frozen=True)
class CostEstimate:
    """Expected cost of one Bayesian fit.

    Attributes
    ----------
    n_parameters : int
        Free parameters of the model (simplex, means, covariances).
    gradient_seconds : float
        Estimated time of one log-density gradient on all rows.
    gradient_evaluations : int
        Estimated gradients over the whole fit (per chain for NUTS, run side by side).
    seconds : float
        Estimated wall time of sampling (not counting compilation, ~5-20 s).
    method : str

    Examples
    --------
    >>> from bayesgmm.cost import estimate_cost
    >>> cost = estimate_cost(n_parameters=991, n_rows=569, n_features=30, n_components=2)
    >>> cost.expensive, cost.gradient_evaluations
    (True, 3964000)
    """

    n_parameters: int
    gradient_seconds: float
    gradient_evaluations: int
    seconds: float
    method: str

    @property
    def expensive(self) -> bool:
        """True when the estimate exceeds :data:`EXPENSIVE_FIT_SECONDS`."""
        return self.seconds > EXPENSIVE_FIT_SECONDS

    def brief(self) -> str:
        """``"about 7 min (121 parameters)"``."""
        return f"about {format_duration(self.seconds)} ({self.n_parameters} parameters)"

    def __str__(self) -> str:
        return (f"{self.method.upper()} on {self.n_parameters} free parameters: about "
                f"{format_duration(self.seconds)} ({self.gradient_evaluations:,} gradients of "
                f"{self.gradient_seconds * 1e3:.2g} ms; a rough estimate, a factor of a few either way)")


def gradient_seconds(n_rows: int, n_features: int, n_components: int) -> float:
    """Estimated time of one gradient of the mixture log-density (see the module notes)."""
    work = n_rows * n_components * (n_features * (n_features + 1) / 2 + 10 * n_features)
    return _GRADIENT_OVERHEAD_S + work / _GRADIENT_RATE


def estimate_cost(n_parameters: int, n_rows: int, n_features: int, n_components: int, *, method: str = "nuts",
                  draws: int | str = 1000, tune: int = 1000, chains: int = 2, cores: int | None = None,
                  max_treedepth: int = 10, n_iterations: int = 20_000, batch_rows: int | None = None
                  ) -> CostEstimate:
    """Estimate the wall time of a fit before running it.

    Parameters
    ----------
    n_parameters : int
        Free parameters (``BayesianGMM.spec.n_free_parameters(n_features)``).
    n_rows, n_features, n_components : int
    method : {"nuts", "advi", "fullrank_advi"}, default="nuts"
    draws, tune, chains : int
        NUTS settings (chains run ``cores`` at a time). ``draws="auto"`` (nutpie
        sampling until the diagnostics pass) is costed at its first checkpoint,
        1000 draws: the least it takes; a slowly mixing posterior takes up to
        10 times the draws.
    cores : int, optional
        Parallel chains; default the machine's CPU count.
    max_treedepth : int, default=10
        NUTS's cap on steps per draw (``2**max_treedepth - 1``).
    n_iterations : int, default=20000
        ADVI's maximum optimisation steps.
    batch_rows : int, optional
        ADVI minibatch rows (all rows when None).

    Returns
    -------
    CostEstimate
    """
    if isinstance(draws, str):  # "auto"
        draws = AUTO_DRAWS_CHECKPOINTS[0]
    if method == "nuts":
        per_gradient = gradient_seconds(n_rows, n_features, n_components)
        steps = min(max(n_parameters, _MIN_STEPS), 2**max_treedepth - 1)
        per_chain = (draws + tune) * steps
        rounds = math.ceil(chains / max(1, min(chains, cores or os.cpu_count() or 1)))
        return CostEstimate(n_parameters, per_gradient, per_chain * chains, per_chain * per_gradient * rounds,
                            method)
    per_gradient = gradient_seconds(batch_rows or n_rows, n_features, n_components)
    # Full-rank ADVI also differentiates through a dense Cholesky of all parameters.
    if method == "fullrank_advi":
        per_gradient += n_parameters**2 / _GRADIENT_RATE
    return CostEstimate(n_parameters, per_gradient, n_iterations, n_iterations * per_gradient, method)


def format_duration(seconds: float) -> str:
    """``"45 s"``, ``"7 min"``, ``"2.5 h"``: a duration as the cost estimates print it."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
