"""scikit-learn style prediction from a fitted posterior: ``predict``, ``predict_proba``, ``score_samples``, ``sample``.

A mixin for :class:`~bayesgmm.BayesianGMM`. Every method averages over posterior
draws (the posterior predictive), after the draws' labels have been aligned once
(:func:`bayesgmm.relabel`), so the component ``k`` of one call is the component
``k`` of the next and of :func:`bayesgmm.summary`. New rows are given in the
data's units; a DataFrame is matched to the training features by column name (in
any order, extra columns refused), an array by position. The computations are
those of :func:`~bayesgmm.assignments`, :func:`~bayesgmm.predictive_density` and
:func:`~bayesgmm.sample_posterior_predictive`; these methods only hold the aligned
posterior and shape the results as scikit-learn's ``GaussianMixture`` does.
"""

from __future__ import annotations

import numpy as np
from sklearn.exceptions import NotFittedError

from ._validation import check_probability

__all__ = ["PosteriorPredictionMixin"]


class PosteriorPredictionMixin:
    """Posterior-averaged ``predict``/``predict_proba``/``score_samples``/``score``/``sample``.

    Needs ``self.idata_`` (an ``arviz.InferenceData`` from ``fit`` or ``load``).
    """

    idata_ = None

    def aligned_posterior(self):
        """The fit with its draws' labels aligned (:func:`bayesgmm.relabel`), computed once per fit.

        Returns
        -------
        arviz.InferenceData
        """
        from .labels import relabel

        idata = self._fitted_idata()
        cached = getattr(self, "_aligned", None)
        if cached is None or cached[0] is not idata:
            cached = (idata, relabel(idata))
            self._aligned = cached
        return cached[1]

    def predict_proba(self, X, *, return_interval: bool = False, hdi_prob: float = 0.94):
        """Posterior probability of each component for each row of X.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Rows in the data's units; a DataFrame is matched by column name.
        return_interval : bool, default=False
            Also return the ``hdi_prob`` highest-density interval of each
            probability across posterior draws.
        hdi_prob : float, default=0.94

        Returns
        -------
        probability : ndarray of shape (n_samples, n_components)
            Posterior mean of ``p(z = k | x, draw)``; rows sum to 1.
        lower, upper : ndarray of shape (n_samples, n_components)
            Only with ``return_interval=True``.
        """
        result = self._assignments(X, return_interval, hdi_prob)
        probability = result["probability"].values
        if not return_interval:
            return probability
        return probability, result["probability_lower"].values, result["probability_upper"].values

    def predict(self, X) -> np.ndarray:
        """The most probable component of each row (posterior mean responsibilities).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        return self._assignments(X, False, 0.94)["most_probable"].values.astype(int)

    def score_samples(self, X, *, return_interval: bool = False, hdi_prob: float = 0.94):
        """Log of the posterior predictive density of each row, ``log mean_draws p(x | draw)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        return_interval : bool, default=False
            Also return the log of the ``hdi_prob`` interval of ``p(x | draw)``
            across draws.
        hdi_prob : float, default=0.94

        Returns
        -------
        log_density : ndarray of shape (n_samples,)
            In the data's units (a density per unit of each feature).
        lower, upper : ndarray of shape (n_samples,)
            Only with ``return_interval=True``.
        """
        from .summaries import predictive_density

        hdi_prob = check_probability(hdi_prob, "hdi_prob")
        result = predictive_density(self._fitted_idata(X), X, hdi_prob=hdi_prob)
        log_density = result["log_density"].values
        if not return_interval:
            return log_density
        with np.errstate(divide="ignore"):
            return log_density, np.log(result["density_lower"].values), np.log(result["density_upper"].values)

    def score(self, X, y=None) -> float:
        """Mean log posterior predictive density of the rows of X (scikit-learn's ``score``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : ignored

        Returns
        -------
        float
        """
        return float(np.mean(self.score_samples(X)))

    def sample(self, n_samples: int = 1, random_seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Draw new rows from the posterior predictive (a draw, then a component, then a point).

        Parameters
        ----------
        n_samples : int, default=1
        random_seed : int, optional

        Returns
        -------
        X : ndarray of shape (n_samples, n_features)
            In the data's units.
        labels : ndarray of shape (n_samples,)
            The (aligned) component each row came from.
        """
        from .summaries import sample_posterior_predictive

        draws = sample_posterior_predictive(self.aligned_posterior(), n_samples, random_seed=random_seed)
        return draws["X"].values, draws["component"].values.astype(int)

    # ----------------------------------------------------------------- helpers
    def _fitted_idata(self, X=0):
        if X is None:
            raise TypeError("X must be an array-like of shape (n_samples, n_features), got None.")
        if self.idata_ is None:
            raise NotFittedError(f"This {type(self).__name__} is not fitted yet: call fit(X) (or load a saved "
                                 "fit) before predicting.")
        return self.idata_

    def _assignments(self, X, return_interval: bool, hdi_prob: float):
        from .summaries import assignments

        if not isinstance(return_interval, (bool, np.bool_)):
            raise TypeError(f"return_interval must be True or False, got {return_interval!r}.")
        self._fitted_idata(X)
        return assignments(self.aligned_posterior(), X, hdi_prob=hdi_prob, relabel_draws=False)
