"""The batched LKJ Cholesky-covariance prior equals PyMC's LKJCholeskyCov, component by component."""

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
from scipy import integrate
from scipy.stats import beta as beta_dist

from bayesgmm._lkj import identity_packed, lkj_cholesky_cov_logp, lkj_log_normaliser, unpack_cholesky


def _random_packed(rng, K, D):
    L = np.tril(rng.normal(scale=0.5, size=(K, D, D)), -1) + np.einsum("kd,de->kde", rng.uniform(0.3, 2.0, (K, D)),
                                                                       np.eye(D))
    return L[:, *np.tril_indices(D)]


@pytest.mark.parametrize("D", [1, 2, 3, 5])
@pytest.mark.parametrize("eta", [1.0, 2.0, 4.5])
def test_batched_logp_equals_lkj_cholesky_cov_per_component(D, eta):
    from pymc.distributions.multivariate import _lkj_normalizing_constant

    rng = np.random.default_rng(D * 7 + int(eta * 2))
    packed = _random_packed(rng, 4, D)
    value = pt.dmatrix("packed")
    ours = pytensor.function([value], lkj_cholesky_cov_logp(value, eta, D, pm.HalfNormal.dist(1.3)))(packed)
    lkj = pm.LKJCholeskyCov.dist(n=D, eta=eta, sd_dist=pm.HalfNormal.dist(1.3, shape=D), compute_corr=False)
    vector = pt.dvector("vector")
    pymc_logp = pytensor.function([vector], pm.logp(lkj, vector))
    # PyMC adds the log normaliser instead of subtracting it, and computes it to float32
    # precision (its log 2 is 0.69314718246); everything else is identical.
    offset = -2 * float(_lkj_normalizing_constant(eta, D).eval()) if D > 1 else 0.0
    np.testing.assert_allclose(ours, [pymc_logp(p) + offset for p in packed], rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("eta", [1.0, 2.0, 4.5])
def test_normaliser_makes_a_density(eta):
    # D = 2: the correlation r has density (1 - r^2)^(eta - 1) / c, i.e. 2 Beta(eta, eta) - 1.
    c = np.exp(lkj_log_normaliser(eta, 2))
    total, _ = integrate.quad(lambda r: (1 - r * r) ** (eta - 1) / c, -1, 1)
    assert total == pytest.approx(1.0, rel=1e-8)
    assert 1 / c == pytest.approx(beta_dist(eta, eta).pdf(0.5) / 2, rel=1e-10)  # density of r = 0


def test_helpers():
    np.testing.assert_array_equal(unpack_cholesky(identity_packed(3), 3), np.eye(3))
    packed = _random_packed(np.random.default_rng(0), 2, 3)
    L = unpack_cholesky(packed, 3)
    np.testing.assert_array_equal(L[:, *np.tril_indices(3)], packed)
    assert np.all(np.triu(L, 1) == 0)


def test_prior_draws_have_lkj_marginals_and_the_sd_prior():
    # Under LKJ(eta) in D dimensions each correlation is 2 Beta(b, b) - 1, b = eta - 1 + D / 2.
    from bayesgmm._lkj import draw_packed

    rng = np.random.default_rng(2)
    D, eta, n = 4, 2.0, 20_000
    L = unpack_cholesky(draw_packed(rng, eta, D, lambda r, shape: np.abs(r.normal(0, 1.5, shape)), (n,)), D)
    cov = L @ np.swapaxes(L, -1, -2)
    sd = np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1))
    corr = cov[:, 3, 1] / (sd[:, 3] * sd[:, 1])
    b = eta - 1 + D / 2
    assert np.var(corr) == pytest.approx(1 / (2 * b + 1), rel=0.05)
    assert sd.mean() == pytest.approx(1.5 * np.sqrt(2 / np.pi), rel=0.02)


def test_prior_draws_of_the_latents_run_on_the_model():
    from bayesgmm import BayesianGMM

    X = np.random.default_rng(0).normal(size=(30, 3))
    with BayesianGMM(2).build_model(X):
        prior = pm.sample_prior_predictive(draws=50, random_seed=0, var_names=["weights", "means_z", "chol_cov_z"])
    packed = prior.prior["chol_cov_z"].values
    assert packed.shape == (1, 50, 2, 6) and np.all(unpack_cholesky(packed, 3)[..., np.arange(3), np.arange(3)] > 0)


def test_batched_transform_matches_cholesky_cov_packed():
    from pymc.distributions.transforms import CholeskyCovPacked

    from bayesgmm._transforms import BatchedCholeskyCovPacked

    packed = _random_packed(np.random.default_rng(4), 3, 3)
    ours, theirs = BatchedCholeskyCovPacked(3), CholeskyCovPacked(3)
    for method in ("forward", "backward"):
        x = packed if method == "forward" else np.log(np.abs(packed))
        np.testing.assert_allclose(getattr(ours, method)(pt.as_tensor(x)).eval(),
                                   np.stack([getattr(theirs, method)(pt.as_tensor(row)).eval() for row in x]))
    np.testing.assert_allclose(ours.log_jac_det(pt.as_tensor(packed)).eval(),
                               [theirs.log_jac_det(pt.as_tensor(row)).eval() for row in packed])
