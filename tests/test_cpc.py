"""The CPC construction of the LKJ prior equals PyMC's LKJCholeskyCov."""

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
from scipy.stats import beta as beta_dist
from scipy.stats import halfnorm

from bayesgmm._cpc import beta_shapes, corr_cholesky, cpc_from_corr_cholesky, packed_scaled_cholesky


def _packed(sds, cpc, D):
    L = sds[:, :, None] * corr_cholesky(cpc, D)
    return L[:, *np.tril_indices(D)]


@pytest.mark.parametrize("D", [2, 3, 4])
@pytest.mark.parametrize("eta", [1.0, 2.0, 5.0])
def test_implied_density_of_the_cholesky_factor_is_lkj_cholesky_cov(D, eta):
    rng = np.random.default_rng(D * 10 + int(eta))
    sd_scale = 1.3
    M = D * (D - 1) // 2
    shapes = beta_shapes(eta, D)
    lkj = pm.LKJCholeskyCov.dist(n=D, eta=eta, sd_dist=pm.HalfNormal.dist(sd_scale, shape=D), compute_corr=False)
    value = pt.dvector("packed")
    lkj_logp = pytensor.function([value], pm.logp(lkj, value))
    offsets = []
    for _ in range(4):
        sds = rng.uniform(0.3, 2.0, size=D)
        unit = rng.uniform(0.1, 0.9, size=M)  # (cpc + 1) / 2

        def to_packed(theta):
            return _packed(theta[None, :D], 2 * theta[None, D:] - 1, D)[0]

        theta = np.concatenate([sds, unit])
        # log|det d packed / d (sds, unit)| by central differences (square: D + M = D(D+1)/2)
        h = 1e-6
        jac = np.stack([(to_packed(theta + h * e) - to_packed(theta - h * e)) / (2 * h) for e in np.eye(theta.size)],
                       axis=1)
        ours = (halfnorm(scale=sd_scale).logpdf(sds).sum() + beta_dist(shapes, shapes).logpdf(unit).sum()
                - np.linalg.slogdet(jac)[1])
        offsets.append(ours - float(lkj_logp(to_packed(theta))))
    # Equal up to one constant: PyMC's LKJ normalising constant enters with the opposite
    # sign (harmless for sampling); ours is a product of normalised densities.
    np.testing.assert_allclose(offsets, offsets[0], atol=1e-6)
    assert offsets[0] == pytest.approx(-2 * _pymc_lkj_log_normaliser(eta, D), abs=1e-6)


def _pymc_lkj_log_normaliser(eta, D):
    from pymc.distributions.multivariate import _lkj_normalizing_constant

    return float(_lkj_normalizing_constant(eta, D).eval())


def test_cpcs_round_trip_and_build_a_correlation_matrix():
    rng = np.random.default_rng(0)
    cpc = rng.uniform(-0.95, 0.95, size=(5, 6))
    C = corr_cholesky(cpc, 4)
    np.testing.assert_allclose(np.diagonal(C @ np.swapaxes(C, -1, -2), axis1=-2, axis2=-1), 1.0)
    np.testing.assert_allclose(cpc_from_corr_cholesky(C), cpc, atol=1e-12)


def test_symbolic_packing_matches_numpy():
    rng = np.random.default_rng(1)
    sds, cpc = rng.uniform(0.5, 2, size=(3, 4)), rng.uniform(-0.9, 0.9, size=(3, 6))
    np.testing.assert_allclose(packed_scaled_cholesky(pt.as_tensor(sds), pt.as_tensor(cpc), 4).eval(),
                               _packed(sds, cpc, 4), rtol=1e-12)


def test_draws_have_lkj_marginals():
    # Under LKJ(eta) in D dimensions each correlation is 2 * Beta(b, b) - 1 with b = eta - 1 + D / 2.
    rng = np.random.default_rng(2)
    D, eta, n = 4, 2.0, 20_000
    shapes = beta_shapes(eta, D)
    cpc = 2 * rng.beta(shapes, shapes, size=(n, shapes.size)) - 1
    C = corr_cholesky(cpc, D)
    corr = (C @ np.swapaxes(C, -1, -2))[:, 3, 1]
    b = eta - 1 + D / 2
    assert np.var(corr) == pytest.approx(1 / (2 * b + 1), rel=0.05)  # variance of 2 Beta(b, b) - 1
