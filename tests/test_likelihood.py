"""The compiled-kernel likelihood Op against the plain PyTensor graph, scipy and finite differences."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pymc.blocking import DictToArrayBijection
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from bayesgmm import BayesianGMM
from bayesgmm._likelihood import MixtureLogLike
from bayesgmm.datasets import make_mixture
from bayesgmm.density import pointwise_log_likelihood


def _random_params(rng, K, D, full):
    w = rng.dirichlet(np.ones(K))
    mu = rng.normal(size=(K, D))
    if full:
        L = np.tril(rng.normal(scale=0.3, size=(K, D, D)), -1) + np.einsum("kd,de->kde", rng.uniform(0.5, 1.5, (K, D)),
                                                                         np.eye(D))
        params = L[:, *np.tril_indices(D)]
    else:
        params = rng.uniform(0.5, 1.5, size=(K, D))
        L = np.einsum("kd,de->kde", params, np.eye(D))
    return w, mu, params, L


@pytest.mark.parametrize("full", [True, False])
def test_op_matches_scipy_and_responsibilities(full):
    rng = np.random.default_rng(0)
    K, D = 3, 3
    X = rng.normal(size=(40, D)) * [1.0, 10.0, 0.1] + 5
    centre, scale = X.mean(0), X.std(0)
    w, mu, params, L = _random_params(rng, K, D, full)
    log_p, resp = (out.eval() for out in MixtureLogLike(full)(X, centre, scale, w, mu, params))
    chol = scale[:, None] * L
    means = centre + scale * mu
    per_component = np.stack([np.log(w[k]) + multivariate_normal(means[k], chol[k] @ chol[k].T).logpdf(X)
                              for k in range(K)], axis=1)
    np.testing.assert_allclose(log_p, logsumexp(per_component, axis=1), rtol=1e-12)
    np.testing.assert_allclose(resp, np.exp(per_component - log_p[:, None]), rtol=1e-10, atol=1e-300)


@pytest.mark.parametrize("full", [True, False])
def test_op_gradient_matches_finite_differences(full):
    rng = np.random.default_rng(1)
    K, D = 2, 3
    X = rng.normal(size=(25, D))
    centre, scale = X.mean(0), X.std(0)
    w, mu, params, _ = _random_params(rng, K, D, full)
    g = rng.normal(size=25)  # a general output gradient, not just ones

    def weighted_log_p(w_, mu_, params_):
        return (MixtureLogLike(full)(X, centre, scale, w_, mu_, params_)[0] * g).sum()

    pytensor.gradient.verify_grad(weighted_log_p, [w, mu, params], rng=rng, abs_tol=1e-6, rel_tol=1e-6)


def test_zero_weight_component_has_exact_value_and_finite_gradient():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(20, 2))
    centre, scale = np.zeros(2), np.ones(2)
    mu = np.array([[0.0, 0.0], [1.0, -1.0]])
    params = np.tile([1.0, 0.3, 0.8], (2, 1))
    w = pt.dvector("w")
    log_p = MixtureLogLike(True)(X, centre, scale, w, mu, params)[0]
    f = pytensor.function([w], [log_p, pytensor.grad(log_p.sum(), w)])
    value, grad_w = f(np.array([1.0, 0.0]))
    L0 = np.array([[1.0, 0.0], [0.3, 0.8]])
    L1 = L0
    np.testing.assert_allclose(value, multivariate_normal(mu[0], L0 @ L0.T).logpdf(X), rtol=1e-12)
    # d/dw_k sum_n log p(x_n) = sum_n N_k(x_n) / p(x_n), finite even where w_k = 0
    expected = [np.exp(multivariate_normal(mu[k], L @ L.T).logpdf(X) - value).sum() for k, L in ((0, L0), (1, L1))]
    np.testing.assert_allclose(grad_w, expected, rtol=1e-10)


@pytest.mark.parametrize("cov_type", ["full", "diag"])
def test_model_logp_and_gradient_agree_between_kernel_and_graph(cov_type):
    X, _ = make_mixture(200, n_components=3, n_features=2, random_state=4, separation=4)
    gmm = BayesianGMM(3, covariance_type=cov_type)
    kernel, graph = gmm.build_model(X, likelihood="kernel"), gmm.build_model(X, likelihood="graph")
    start = kernel.initial_point()
    rng = np.random.default_rng(2)
    point = DictToArrayBijection.map({k: v + rng.normal(0, 0.3, v.shape) for k, v in start.items()}).data
    f_kernel = kernel.logp_dlogp_function(ravel_inputs=True, initial_point=start)
    f_graph = graph.logp_dlogp_function(ravel_inputs=True, initial_point=start)
    (lp_k, g_k), (lp_g, g_g) = f_kernel(point, extra_vars={}), f_graph(point, extra_vars={})
    assert lp_k == pytest.approx(lp_g, rel=1e-12)
    np.testing.assert_allclose(g_k, g_g, rtol=1e-9, atol=1e-9)


def test_build_model_rejects_unknown_likelihood():
    with pytest.raises(ValueError, match="likelihood"):
        BayesianGMM(2).build_model(np.random.default_rng(0).normal(size=(10, 2)), likelihood="jax")


def test_pointwise_log_likelihood_matches_scipy():
    rng = np.random.default_rng(3)
    S, K, D = 4, 3, 2
    X = rng.normal(size=(30, D))
    weights = rng.dirichlet(np.ones(K), size=S)
    means = rng.normal(size=(S, K, D))
    A = rng.normal(size=(S, K, D, D))
    cov = A @ np.swapaxes(A, -1, -2) + np.eye(D)
    ours = pointwise_log_likelihood(X, weights, means, np.linalg.cholesky(cov))
    expected = np.array([
        logsumexp([np.log(weights[s, k]) + multivariate_normal(means[s, k], cov[s, k]).logpdf(X) for k in range(K)],
                  axis=0)
        for s in range(S)
    ])
    np.testing.assert_allclose(ours, expected, rtol=1e-12)


def test_degenerate_factor_gives_minus_inf_not_an_exception():
    X = np.random.default_rng(0).normal(size=(5, 2))
    params = np.array([[1.0, 0.2, 0.0], [1.0, 0.0, 1.0]])  # first factor singular
    log_p, _ = (o.eval() for o in MixtureLogLike(True)(X, np.zeros(2), np.ones(2), [0.5, 0.5], np.zeros((2, 2)),
                                                      params))
    # No exception (numba's default error model raises ZeroDivisionError), and never
    # +inf: NaN or -inf, which NUTS rejects as a divergence.
    assert log_p.shape == (5,) and not np.any(log_p == np.inf)
