"""Covariance structures of a Gaussian mixture, each represented once.

Every covariance type is one :class:`CovarianceType` object that knows how to

* whiten data against each component (``y = (x - m_k) P_k`` with ``P_k`` the
  Cholesky factor of the precision, so ``||y||^2`` is the Mahalanobis distance),
* accumulate the weighted second moment of whitened residuals that the M-step
  needs,
* turn those statistics back into covariances,
* and answer the bookkeeping questions (log-determinant, parameter count,
  smallest variance, full matrices).

Shapes follow scikit-learn: ``full`` (K, D, D), ``tied`` (D, D), ``diag`` (K, D),
``spherical`` (K,).

The M-step works in whitened coordinates around the *previous* means. In those
coordinates the residuals are O(1) and almost centred, so the one-pass formula
``E[y y'] - E[y] E[y]'`` does not suffer the cancellation the textbook
``E[x x'] - mu mu'`` has on uncentred data, and the covariance needs no second
pass over X.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

_CHOLESKY_ERROR = (
    "Fitting the mixture model failed because some components have an ill-defined "
    "empirical covariance (for instance caused by singleton or collapsed samples, or "
    "a constant column). Try to decrease the number of components, increase "
    "reg_covar, or scale the input data."
)


class CovarianceType(ABC):
    """Operations that depend on the covariance structure."""

    name: str

    # -- bookkeeping -------------------------------------------------------
    @abstractmethod
    def n_parameters(self, n_components: int, n_features: int) -> int:
        """Number of free covariance parameters."""

    @abstractmethod
    def identity_precision_cholesky(self, n_components: int, n_features: int, dtype) -> np.ndarray:
        """Precision Cholesky factors equal to the identity (used to whiten nothing)."""

    @abstractmethod
    def precision_cholesky(self, covariances: np.ndarray) -> np.ndarray:
        """Cholesky factor of the precision from covariances (raises on non-PD input)."""

    @abstractmethod
    def precision_cholesky_from_precisions(self, precisions: np.ndarray) -> np.ndarray:
        """Cholesky factor of the precision from precisions."""

    @abstractmethod
    def precisions(self, precisions_cholesky: np.ndarray) -> np.ndarray:
        """Precisions from their Cholesky factor."""

    @abstractmethod
    def log_det_cholesky(self, precisions_cholesky: np.ndarray, n_features: int) -> np.ndarray:
        """log |P_k| for every component, shape (K,) (or a scalar for ``tied``)."""

    @abstractmethod
    def expected_shape(self, n_components: int, n_features: int) -> tuple[int, ...]:
        """Shape of ``covariances_`` / ``precisions_``."""

    @abstractmethod
    def full_matrices(self, covariances: np.ndarray, n_components: int, n_features: int) -> np.ndarray:
        """Covariances as (K, D, D) matrices."""

    def smallest_variance(self, covariances: np.ndarray, n_components: int, n_features: int) -> np.ndarray:
        """Smallest eigenvalue of each component's covariance, shape (K,)."""
        return np.linalg.eigvalsh(self.full_matrices(covariances, n_components, n_features))[:, 0]

    def collapsed(self, covariances: np.ndarray, n_components: int, n_features: int, floor: float) -> np.ndarray:
        """Whether each component's smallest variance is below ``floor``, shape (K,) bool."""
        smallest = self.smallest_variance(covariances, n_components, n_features)
        return np.broadcast_to(smallest < floor, (n_components,))

    def validate_precisions(self, precisions: np.ndarray, n_components: int, n_features: int) -> np.ndarray:
        """Check shape and positive definiteness of user-given precisions."""
        precisions = np.asarray(precisions, dtype=float)
        shape = self.expected_shape(n_components, n_features)
        if precisions.shape != shape:
            raise ValueError(
                f"precisions_init for covariance_type={self.name!r} must have shape {shape}, "
                f"got {precisions.shape}."
            )
        mats = self.full_matrices(precisions, n_components, n_features)
        if not np.all(np.isfinite(mats)):
            raise ValueError("precisions_init contains NaN or infinite values.")
        if not np.allclose(mats, np.swapaxes(mats, -1, -2)):
            raise ValueError("precisions_init must be symmetric.")
        if np.any(np.linalg.eigvalsh(mats)[:, 0] <= 0):
            raise ValueError("precisions_init must be positive definite.")
        return precisions

    # -- E-step ------------------------------------------------------------
    @abstractmethod
    def prepare_whitening(self, means: np.ndarray, precisions_cholesky: np.ndarray, dtype) -> tuple:
        """Precompute, once per pass, what :meth:`whiten` needs for every chunk."""

    @abstractmethod
    def whiten(self, X: np.ndarray, prepared: tuple, out: np.ndarray) -> np.ndarray:
        """Write whitened residuals ``y[n, k] = (x_n - m_k) P_k`` into ``out`` (n, K, D)."""

    def fused_pass(self, X: np.ndarray, weights: np.ndarray, prepared: tuple, log_norm: np.ndarray):
        """A chunk's whole E-step and whitened statistics with few trips over memory, or None.

        Returns ``(nk, sum_y, second, log_likelihood)`` as the generic pass computes
        them, or None where this type has no such kernel (the generic pass, built on
        :meth:`whiten` and :meth:`second_moment`, is then used).
        """
        return None

    def check_data_rank(self, Z: np.ndarray, sample_weight: np.ndarray, reg_covar: float, names: list[str]) -> None:
        """Raise a ValueError where the standardised data ``Z`` cannot support this type's covariances.

        Only matrix covariances (full, tied) need the features to be linearly
        independent; per-feature variances do not.
        """
        return None

    #: The compiled kernels that run whole float64 EM passes of this type: "matrix"
    #: (full and tied), "diagonal" (diag and spherical) or None (the hooks run them).
    compiled_kernels: str | None = None
    pooled = False  # tied and spherical: one factor (tied) or variance (spherical) pooled

    def em_step(self, X: np.ndarray, row_weights: np.ndarray, total_weight: float, weights: np.ndarray,
                means: np.ndarray, precisions_cholesky: np.ndarray, reg_covar: float):
        """A whole float64 pass (E-step and M-step) over ``X`` in one compiled call, or None.

        Returns ``(code, log_likelihood, weights, means, covariances,
        precisions_cholesky)`` (see :func:`bayesgmm._em_kernels.matrix_em_step`);
        None for a type without :attr:`compiled_kernels` (the fit then runs the hooks).
        """
        if self.compiled_kernels is None:
            return None
        from ._em_kernels import diagonal_em_step, matrix_em_step

        step = diagonal_em_step if self.compiled_kernels == "diagonal" else matrix_em_step
        return step(X, row_weights, total_weight, weights, means, precisions_cholesky, reg_covar, self.pooled)

    def em_run(self, X: np.ndarray, row_weights: np.ndarray, total_weight: float, weights: np.ndarray,
               means: np.ndarray, covariances: np.ndarray, precisions_cholesky: np.ndarray, reg_covar: float,
               max_iter: int, tol: float, lower_bound: float, accelerate: bool, collapse_floor: float = 0.0):
        """EM passes of :meth:`em_step` until ``tol`` or ``max_iter`` in one compiled call, or None.

        With ``collapse_floor > 0`` the run also stops at the first kept parameters
        where :meth:`collapsed` (at that floor) holds for a component.

        Returns what :func:`bayesgmm._em_kernels.em_loop` returns; None for a type
        without :attr:`compiled_kernels`.
        """
        if self.compiled_kernels is None:
            return None
        from ._em_kernels import em_loop

        return em_loop(X, row_weights, total_weight, weights, means, covariances, precisions_cholesky, reg_covar,
                       self.compiled_kernels == "diagonal", self.pooled, max_iter, tol, lower_bound, accelerate,
                       collapse_floor)

    # -- M-step ------------------------------------------------------------
    def per_component_second(self, second: np.ndarray, nk: np.ndarray) -> np.ndarray:
        """The summed second moments as :meth:`covariances_from_moments` takes them (divided by ``nk``)."""
        return second / nk.reshape((-1,) + (1,) * (second.ndim - 1))

    def m_step(self, nk: np.ndarray, sum_y: np.ndarray, second: np.ndarray, precisions_cholesky: np.ndarray,
               reg_covar: float, dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(mean shifts (K, D), covariances, precision factors)`` from one pass's whitened statistics.

        ``nk`` (K,) already guarded against empty components; ``sum_y`` and
        ``second`` as the pass summed them; covariances and factors in ``dtype``.
        """
        mean_y = sum_y / nk[:, None]
        covariances = np.asarray(
            self.covariances_from_moments(nk, mean_y, self.per_component_second(second, nk), precisions_cholesky,
                                          reg_covar),
            dtype=dtype,
        )
        return self.unwhiten_shift(mean_y, precisions_cholesky), covariances, self.precision_cholesky(covariances)

    @abstractmethod
    def second_moment(self, weighted_y: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Sum over rows of the weighted second moment of whitened residuals."""

    def shared_second_moment(self, resp: np.ndarray, y: np.ndarray) -> np.ndarray:
        """:meth:`second_moment` where every component's residual is the same ``y`` (n, D).

        ``resp`` (n, K) are the weighted responsibilities. This is the start's pass,
        whitened against the identity at one centre; written per type so that it
        needs no (n, K, D) copies of ``y``.
        """
        n, K = resp.shape
        return self.second_moment(resp[:, :, None] * y[:, None, :], np.broadcast_to(y[:, None, :], (n, K, y.shape[1])))

    @abstractmethod
    def covariances_from_moments(
        self,
        nk: np.ndarray,
        mean_y: np.ndarray,
        second: np.ndarray,
        precisions_cholesky: np.ndarray,
        reg_covar: float,
    ) -> np.ndarray:
        """New covariances from whitened moments (``second`` from :meth:`per_component_second`)."""

    @abstractmethod
    def unwhiten_shift(self, mean_y: np.ndarray, precisions_cholesky: np.ndarray) -> np.ndarray:
        """Map whitened mean residuals back to data space: ``ybar_k P_k^{-1}``, shape (K, D)."""

    def covariances_from_precisions(self, precisions: np.ndarray) -> np.ndarray:
        """Covariances (inverse precisions), same shape."""
        return 1.0 / precisions

    # -- change of units ---------------------------------------------------
    @abstractmethod
    def rescale(self, matrices: np.ndarray, factor: np.ndarray) -> np.ndarray:
        """Covariances of the features multiplied by ``factor`` (shape (D,)).

        Precisions change with ``1 / factor``. ``spherical`` is defined on the
        standardised scale, so its variances do not change.
        """

    @abstractmethod
    def rescale_cholesky(self, precisions_cholesky: np.ndarray, factor: np.ndarray) -> np.ndarray:
        """Precision Cholesky factors of the features multiplied by ``factor``."""



def _cholesky_lower(mat: np.ndarray) -> np.ndarray:
    """Lower Cholesky factors of one matrix or a stack (..., D, D), as one batched call."""
    if not np.all(np.isfinite(mat)):  # LAPACK would not say so: a NaN factor would follow
        raise ValueError(_CHOLESKY_ERROR)
    try:
        return np.linalg.cholesky(mat)
    except np.linalg.LinAlgError:
        raise ValueError(_CHOLESKY_ERROR) from None


def _triangular_inverse(factors: np.ndarray, lower: bool) -> np.ndarray:
    """Inverses of triangular matrices (..., D, D), the other triangle exactly zero (one compiled call)."""
    from ._em_kernels import triangular_inverse

    return triangular_inverse(factors, lower)


def _prec_chol_from_cov(cov: np.ndarray) -> np.ndarray:
    # P = L^{-T} with cov = L L', so that P P' = cov^{-1} (scikit-learn's convention).
    if cov.dtype == np.float64:  # one compiled call (SQUAREM checks every extrapolated point with it)
        from ._em_kernels import precision_factors

        factors = precision_factors(cov)
        if factors is None:
            raise ValueError(_CHOLESKY_ERROR)
        return factors
    return np.swapaxes(_triangular_inverse(_cholesky_lower(cov), lower=True), -1, -2)


def _prec_chol_from_prec(prec: np.ndarray) -> np.ndarray:
    # P upper triangular with P P' = prec: flip, take lower Cholesky, flip back.
    flipped = _cholesky_lower(prec[::-1, ::-1])
    return np.ascontiguousarray(flipped[::-1, ::-1])


def check_feature_rank(Z: np.ndarray, sample_weight: np.ndarray, names: list[str], cutoff: float, cutoff_label: str,
                       consequence: str) -> None:
    """Raise a ValueError where full or tied covariances cannot be fitted to ``Z``.

    That is where there are no more rows with a positive weight than features, or
    where the weighted correlation matrix of the standardised data ``Z`` (n_rows,
    n_features) has an eigenvalue below ``cutoff``: features that are (nearly) linear
    combinations of others. The message names the features of that eigenvector,
    ``cutoff_label`` (how the cut-off is set) and ``consequence`` (what would go wrong).
    Shared by EM (:meth:`CovarianceType.check_data_rank`) and the Bayesian model
    (:meth:`bayesgmm.bayes_covariance.BayesCovariance.check_data_rank`), so that both
    fitters accept the same data.
    """
    rows = sample_weight > 0
    n_rows, n_features = int(rows.sum()), Z.shape[1]
    if n_rows <= n_features:
        raise ValueError(
            f"Full and tied covariances need more rows with a positive weight than features (got {n_rows} "
            f"rows for {n_features} features): use covariance_type='diag' or 'spherical', or fewer features.")
    w = sample_weight[rows] / sample_weight[rows].sum()
    centred = Z[rows] - w @ Z[rows]
    covariance = (centred * w[:, None]).T @ centred
    # A correlation matrix whatever the scale of Z: Z is standardised by the data's spread
    # in EM, but by a fixed priors["scale"] in the Bayesian model, and may be a sample.
    spread = np.sqrt(np.diag(covariance))
    spread[spread == 0] = 1.0  # a column constant over these rows: an eigenvalue of 0, named below
    values, vectors = np.linalg.eigh(covariance / np.outer(spread, spread))
    if values[0] >= cutoff:
        return
    loadings = np.abs(vectors[:, 0])
    involved = [names[j] for j in np.flatnonzero(loadings >= 0.1 * loadings.max())]
    raise ValueError(
        f"Features {involved} are (nearly) linearly dependent: their correlation matrix has an eigenvalue of "
        f"{max(values[0], 0.0):.1e}, below {cutoff_label} (for example one is the sum of others, or the same "
        f"quantity in two units), so {consequence}. Full and tied covariances cannot model that: drop one of "
        "them, or use covariance_type='diag' or 'spherical'.")


class _MatrixCovariance(CovarianceType):
    """Shared linear algebra of ``full`` and ``tied``."""

    compiled_kernels = "matrix"

    def check_data_rank(self, Z, sample_weight, reg_covar, names):
        # Where the data's own correlation matrix has an eigenvalue below reg_covar
        # (features that are linear combinations of others, near enough: a total beside its
        # parts, one length in two units; or fewer rows than features), every component's
        # covariance sits at the collapse floor (2 reg_covar) along that direction: every
        # fit, K=1 included, would read as "collapsed", and its log-likelihood would gain
        # a large term that diag and spherical fits do not. (K=1 reaches that floor exactly
        # where an eigenvalue is below reg_covar.)
        check_feature_rank(Z, sample_weight, names, reg_covar, f"reg_covar={reg_covar:.1e}",
                           "every component's covariance would sit at the reg_covar floor along that direction")

    def _inverse_factor(self, prec_chol: np.ndarray) -> np.ndarray:
        # Q = P^{-1}, upper triangular: x - m = y Q (one matrix or a stack).
        return _triangular_inverse(prec_chol, lower=False)

    def m_step(self, nk, sum_y, second, precisions_cholesky, reg_covar, dtype):
        # One compiled call instead of ~15 NumPy/LAPACK calls on K small matrices: on
        # small data (the many short runs of the multi-start) those calls were half
        # of every EM pass. Measured against the NumPy path: K=5, D=13 18 us vs 81 us;
        # K=8, D=30 179 vs 317 us; K=2, D=128 2.8 vs 4.7 ms. Float32 fits are large,
        # where the overhead does not matter, and keep the NumPy path.
        if np.dtype(dtype) != np.float64:
            return super().m_step(nk, sum_y, second, precisions_cholesky, reg_covar, dtype)
        from ._em_kernels import matrix_m_step

        pooled = precisions_cholesky.ndim == 2
        code, shift, covs, factors = matrix_m_step(
            nk, sum_y / nk[:, None], second[None] if pooled else second,
            precisions_cholesky[None] if pooled else precisions_cholesky, reg_covar, pooled)
        if code == 1:
            raise np.linalg.LinAlgError("Singular matrix")
        if code == 2:
            raise ValueError(_CHOLESKY_ERROR)
        return shift, (covs[0] if pooled else covs), (factors[0] if pooled else factors)

    def second_moment(self, weighted_y, y):
        # (K, D, D): sum_n r_nk y_nk y_nk'
        return np.matmul(weighted_y.transpose(1, 2, 0), y.transpose(1, 0, 2))

    def shared_second_moment(self, resp, y):
        return np.matmul(resp.T[:, None, :] * y.T[None], y)

    def collapsed(self, covariances, n_components, n_features, floor):
        # Below the floor exactly when cov - floor I has no Cholesky factor: one compiled
        # factorisation per matrix instead of an eigendecomposition. Every EM run of the
        # multi-start asks, and eigvalsh's per-call cost was a tenth of select_model's
        # time on wine.
        if np.asarray(covariances).dtype != np.float64:
            return super().collapsed(covariances, n_components, n_features, floor)
        from ._em_kernels import below_floor

        matrices = self.full_matrices(covariances, None if self.pooled else n_components, n_features)
        return np.broadcast_to(below_floor(matrices, floor), (n_components,))

    def _centred_moments(self, nk, mean_y, second):
        return second - mean_y[:, :, None] * mean_y[:, None, :]

    def covariances_from_precisions(self, precisions):
        return np.linalg.inv(precisions)

    def rescale(self, matrices, factor):
        return matrices * np.outer(factor, factor)

    def rescale_cholesky(self, precisions_cholesky, factor):
        # P' = diag(1/f) P diag(1/f) = (diag(1/f) U)(diag(1/f) U)': rows of U scale.
        return precisions_cholesky / np.asarray(factor)[:, None]


class FullCovariance(_MatrixCovariance):
    name = "full"

    def n_parameters(self, n_components, n_features):
        return n_components * n_features * (n_features + 1) // 2

    def expected_shape(self, n_components, n_features):
        return (n_components, n_features, n_features)

    def identity_precision_cholesky(self, n_components, n_features, dtype):
        return np.tile(np.eye(n_features, dtype=dtype), (n_components, 1, 1))

    def precision_cholesky(self, covariances):
        return _prec_chol_from_cov(covariances)

    def precision_cholesky_from_precisions(self, precisions):
        return np.stack([_prec_chol_from_prec(p) for p in precisions])

    def precisions(self, precisions_cholesky):
        return np.matmul(precisions_cholesky, precisions_cholesky.transpose(0, 2, 1))

    def log_det_cholesky(self, precisions_cholesky, n_features):
        return np.sum(np.log(np.diagonal(precisions_cholesky, axis1=1, axis2=2)), axis=1)

    def full_matrices(self, covariances, n_components, n_features):
        return np.asarray(covariances)

    def prepare_whitening(self, means, precisions_cholesky, dtype):
        # The fused pass whitens (x - m_k) P_k itself, block by block.
        return means.astype(dtype), precisions_cholesky.astype(dtype)

    def whiten(self, X, prepared, out):
        # One BLAS product for all components: X @ [P_1 ... P_K] - [m_1 P_1 ... m_K P_K].
        # Only starts from a partition take this path, so its O(K D^2) set-up is
        # built here rather than in every pass.
        means, factor = prepared
        n_features = means.shape[1]
        stacked = np.ascontiguousarray(factor.transpose(1, 0, 2).reshape(n_features, -1))
        offset = np.einsum("kd,kde->ke", means, factor).reshape(-1)
        flat = out.reshape(X.shape[0], -1)
        np.matmul(X, stacked, out=flat)
        flat -= offset
        return out

    def fused_pass(self, X, weights, prepared, log_norm):
        # One compiled trip per block of rows: triangular whitening, log-sum-exp,
        # responsibilities and moments (bayesgmm._em_kernels); 2.5x the BLAS
        # whitening + batched second-moment product it replaced.
        from ._em_kernels import full_pass

        means, factor = prepared
        return full_pass(X, weights, means, factor, log_norm)

    def unwhiten_shift(self, mean_y, precisions_cholesky):
        return np.matmul(mean_y[:, None, :], self._inverse_factor(precisions_cholesky))[:, 0, :]

    def covariances_from_moments(self, nk, mean_y, second, precisions_cholesky, reg_covar):
        centred = self._centred_moments(nk, mean_y, second)
        n_features = mean_y.shape[1]
        q = self._inverse_factor(precisions_cholesky)
        covs = np.matmul(np.matmul(q.transpose(0, 2, 1), centred), q)
        covs = 0.5 * (covs + covs.transpose(0, 2, 1))
        covs[:, np.arange(n_features), np.arange(n_features)] += reg_covar
        return covs


class TiedCovariance(_MatrixCovariance):
    name = "tied"
    pooled = True

    def n_parameters(self, n_components, n_features):
        return n_features * (n_features + 1) // 2

    def expected_shape(self, n_components, n_features):
        return (n_features, n_features)

    def identity_precision_cholesky(self, n_components, n_features, dtype):
        return np.eye(n_features, dtype=dtype)

    def precision_cholesky(self, covariances):
        return _prec_chol_from_cov(covariances)

    def precision_cholesky_from_precisions(self, precisions):
        return _prec_chol_from_prec(precisions)

    def precisions(self, precisions_cholesky):
        return precisions_cholesky @ precisions_cholesky.T

    def log_det_cholesky(self, precisions_cholesky, n_features):
        return np.sum(np.log(np.diag(precisions_cholesky)))

    def full_matrices(self, covariances, n_components, n_features):
        covariances = np.asarray(covariances)
        k = 1 if n_components is None else n_components
        return np.broadcast_to(covariances, (k, n_features, n_features))

    def prepare_whitening(self, means, precisions_cholesky, dtype):
        return means.astype(dtype), precisions_cholesky.astype(dtype)

    def whiten(self, X, prepared, out):
        means, factor = prepared
        return np.subtract((X @ factor)[:, None, :], (means @ factor)[None, :, :], out=out)

    def fused_pass(self, X, weights, prepared, log_norm):
        # Each row whitened once with the shared factor and the pooled second moment
        # summed without cancellation (bayesgmm._em_kernels.tied_pass): a K-th of the
        # full kernel run with the shared factor in every component, which it replaced.
        from ._em_kernels import tied_pass

        means, factor = prepared
        return tied_pass(X, weights, means, factor, log_norm)

    def second_moment(self, weighted_y, y):
        # Only the sum over components enters the shared covariance: (D, D).
        n_features = y.shape[-1]
        return weighted_y.reshape(-1, n_features).T @ y.reshape(-1, n_features)

    def shared_second_moment(self, resp, y):
        return (y * resp.sum(axis=1)[:, None]).T @ y  # the rows weighted by their totals over components

    def per_component_second(self, second, nk):
        return second  # pooled over components already; see covariances_from_moments

    def unwhiten_shift(self, mean_y, precisions_cholesky):
        return mean_y @ self._inverse_factor(precisions_cholesky)

    def covariances_from_moments(self, nk, mean_y, second, precisions_cholesky, reg_covar):
        # second: sum_k sum_n r_nk y y' (pooled); centre each component on its mean.
        pooled = (second - np.einsum("k,kd,ke->de", nk, mean_y, mean_y)) / nk.sum()
        q = self._inverse_factor(precisions_cholesky)
        cov = q.T @ pooled @ q
        cov = 0.5 * (cov + cov.T)
        cov[np.diag_indices_from(cov)] += reg_covar
        return cov


class DiagCovariance(CovarianceType):
    name = "diag"
    compiled_kernels = "diagonal"

    def n_parameters(self, n_components, n_features):
        return n_components * n_features

    def expected_shape(self, n_components, n_features):
        return (n_components, n_features)

    def identity_precision_cholesky(self, n_components, n_features, dtype):
        return np.ones((n_components, n_features), dtype=dtype)

    def precision_cholesky(self, covariances):
        if np.any(covariances <= 0.0):
            raise ValueError(_CHOLESKY_ERROR)
        return 1.0 / np.sqrt(covariances)

    def precision_cholesky_from_precisions(self, precisions):
        return np.sqrt(precisions)

    def precisions(self, precisions_cholesky):
        return precisions_cholesky**2

    def log_det_cholesky(self, precisions_cholesky, n_features):
        return np.sum(np.log(precisions_cholesky), axis=1)

    def full_matrices(self, covariances, n_components, n_features):
        covariances = np.asarray(covariances)
        return covariances[:, :, None] * np.eye(covariances.shape[1])

    def rescale(self, matrices, factor):
        return matrices * np.asarray(factor) ** 2

    def rescale_cholesky(self, precisions_cholesky, factor):
        return precisions_cholesky / np.asarray(factor)

    def smallest_variance(self, covariances, n_components, n_features):
        return np.min(covariances, axis=1)

    def prepare_whitening(self, means, precisions_cholesky, dtype):
        return means.astype(dtype), precisions_cholesky.astype(dtype)

    def whiten(self, X, prepared, out):
        means, scale = prepared
        np.subtract(X[:, None, :], means[None, :, :], out=out)
        out *= scale[None, :, :]
        return out

    def fused_pass(self, X, weights, prepared, log_norm):
        # Diagonal precisions: a few flops per (row, component, feature), so one fused
        # trip over the rows beats NumPy's several passes (bayesgmm._em_kernels).
        from ._em_kernels import diag_pass

        means, scale = prepared
        return diag_pass(X, weights, means, scale, log_norm)

    def second_moment(self, weighted_y, y):
        return np.einsum("nkd,nkd->kd", weighted_y, y)

    def shared_second_moment(self, resp, y):
        return resp.T @ (y * y)

    def unwhiten_shift(self, mean_y, precisions_cholesky):
        return mean_y / precisions_cholesky

    def covariances_from_moments(self, nk, mean_y, second, precisions_cholesky, reg_covar):
        return (second - mean_y**2) / precisions_cholesky**2 + reg_covar


class SphericalCovariance(CovarianceType):
    name = "spherical"
    pooled = True
    compiled_kernels = "diagonal"

    def n_parameters(self, n_components, n_features):
        return n_components

    def expected_shape(self, n_components, n_features):
        return (n_components,)

    def identity_precision_cholesky(self, n_components, n_features, dtype):
        return np.ones(n_components, dtype=dtype)

    def precision_cholesky(self, covariances):
        if np.any(covariances <= 0.0):
            raise ValueError(_CHOLESKY_ERROR)
        return 1.0 / np.sqrt(covariances)

    def precision_cholesky_from_precisions(self, precisions):
        return np.sqrt(precisions)

    def precisions(self, precisions_cholesky):
        return precisions_cholesky**2

    def log_det_cholesky(self, precisions_cholesky, n_features):
        return n_features * np.log(precisions_cholesky)

    def full_matrices(self, covariances, n_components, n_features):
        covariances = np.asarray(covariances)
        return covariances[:, None, None] * np.eye(n_features)

    def rescale(self, matrices, factor):
        return matrices  # one variance per component in units of each feature's variance

    def rescale_cholesky(self, precisions_cholesky, factor):
        return precisions_cholesky

    def smallest_variance(self, covariances, n_components, n_features):
        return np.asarray(covariances)

    def prepare_whitening(self, means, precisions_cholesky, dtype):
        scale = np.broadcast_to(precisions_cholesky[:, None], means.shape)
        return DiagCovariance.prepare_whitening(self, means, scale, dtype)

    whiten = DiagCovariance.whiten
    fused_pass = DiagCovariance.fused_pass

    def second_moment(self, weighted_y, y):
        # Per-feature squares, like diag: the average over features happens at the end.
        return np.einsum("nkd,nkd->kd", weighted_y, y)

    shared_second_moment = DiagCovariance.shared_second_moment

    def unwhiten_shift(self, mean_y, precisions_cholesky):
        return mean_y / precisions_cholesky[:, None]

    def covariances_from_moments(self, nk, mean_y, second, precisions_cholesky, reg_covar):
        per_feature = (second - mean_y**2) / precisions_cholesky[:, None] ** 2
        return per_feature.mean(axis=1) + reg_covar


COVARIANCE_TYPES: dict[str, CovarianceType] = {
    cov.name: cov
    for cov in (FullCovariance(), TiedCovariance(), DiagCovariance(), SphericalCovariance())
}


def get_covariance_type(name: str) -> CovarianceType:
    """Look up a covariance type by name, with a clear error for unknown names."""
    try:
        return COVARIANCE_TYPES[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"covariance_type must be one of {sorted(COVARIANCE_TYPES)}, got {name!r}."
        ) from None
