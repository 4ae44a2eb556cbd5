"""The compiled-kernel likelihood Op against the plain PyTensor graph, scipy and finite differences."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pymc.blocking import DictToArrayBijection
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

from bayesgmm import BayesianGMM
from bayesgmm._likelihood import MixtureLogLike, _log_likelihood, _log_likelihood_grad
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


@pytest.mark.parametrize("n_rows", [40, 300])  # one block of rows; two full blocks and a ragged one
@pytest.mark.parametrize("full", [True, False])
def test_op_matches_scipy_and_responsibilities(full, n_rows):
    rng = np.random.default_rng(0)
    K, D = 3, 3
    X = rng.normal(size=(n_rows, D)) * [1.0, 10.0, 0.1] + 5
    centre, scale = X.mean(0), X.std(0)
    w, mu, params, L = _random_params(rng, K, D, full)
    log_p, resp = (out.eval() for out in MixtureLogLike(full)(X, centre, scale, w, mu, params))
    chol = scale[:, None] * L
    means = centre + scale * mu
    per_component = np.stack([np.log(w[k]) + multivariate_normal(means[k], chol[k] @ chol[k].T).logpdf(X)
                              for k in range(K)], axis=1)
    np.testing.assert_allclose(log_p, logsumexp(per_component, axis=1), rtol=1e-12)
    np.testing.assert_allclose(resp, np.exp(per_component - log_p[:, None]), rtol=1e-10, atol=1e-300)


@pytest.mark.parametrize("n_rows", [25, 300])
@pytest.mark.parametrize("full", [True, False])
def test_op_gradient_matches_finite_differences(full, n_rows):
    rng = np.random.default_rng(1)
    K, D = 2, 3
    X = rng.normal(size=(n_rows, D))
    centre, scale = X.mean(0), X.std(0)
    w, mu, params, _ = _random_params(rng, K, D, full)
    g = rng.normal(size=n_rows)  # a general output gradient, not just ones

    def weighted_log_p(w_, mu_, params_):
        return (MixtureLogLike(full)(X, centre, scale, w_, mu_, params_)[0] * g).sum()

    # One-sided differences: their error grows with the sum's size (checked with central
    # differences to 5e-8 at 300 rows).
    tol = 1e-6 * n_rows / 25
    pytensor.gradient.verify_grad(weighted_log_p, [w, mu, params], rng=rng, abs_tol=tol, rel_tol=tol)


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


@pytest.mark.parametrize("n_rows", [5, 300])
def test_degenerate_factor_gives_minus_inf_not_an_exception(n_rows):
    X = np.random.default_rng(0).normal(size=(n_rows, 2))
    params = np.array([[1.0, 0.2, 0.0], [1.0, 0.0, 1.0]])  # first factor singular
    log_p, _ = (o.eval() for o in MixtureLogLike(True)(X, np.zeros(2), np.ones(2), [0.5, 0.5], np.zeros((2, 2)),
                                                      params))
    # No exception (numba's default error model raises ZeroDivisionError), and never
    # +inf: NaN or -inf, which NUTS rejects as a divergence.
    assert log_p.shape == (n_rows,) and not np.any(log_p == np.inf)


def test_a_row_with_zero_density_is_minus_inf_and_its_block_neighbours_exact():
    # Both factors singular in the first feature: the rows on its line x0 = 0 have a huge but
    # finite density, row 57 (off the line) zero density. Its block takes the row-by-row path.
    X = np.zeros((200, 2))
    X[:, 1] = np.linspace(-1, 1, 200)
    X[57, 0] = 1.0
    params = np.array([[1e-300, 0.0, 1.0], [1e-300, 0.0, 1.0]])
    log_p, resp = (o.eval() for o in MixtureLogLike(True)(X, np.zeros(2), np.ones(2), [0.5, 0.5],
                                                          np.zeros((2, 2)), params))
    expected = -np.log(2 * np.pi) - np.log(1e-300) - 0.5 * X[:, 1] ** 2
    assert log_p[57] == -np.inf and np.all(resp[57] == 0.0)
    np.testing.assert_allclose(np.delete(log_p, 57), np.delete(expected, 57), rtol=1e-12)
    np.testing.assert_allclose(np.delete(resp, 57, axis=0), 0.5)


def test_gradient_of_rows_whose_weights_cancel_is_not_dropped():
    # A general output gradient can cancel over a block (here 1 - 1): the rows still count.
    X = np.array([[0.5], [-1.5]])
    w, mu, params = np.array([1.0]), np.zeros((1, 1)), np.ones((1, 1))
    log_p, resp = _log_likelihood(X, np.zeros(1), np.ones(1), w, mu, params, False)
    _, grad_mu, grad_sd = _log_likelihood_grad(X, np.zeros(1), np.ones(1), w, mu, params, False, log_p, resp,
                                               np.array([1.0, -1.0]))
    # d/dmu of log N(0.5) - log N(-1.5) = 0.5 - (-1.5); d/dsd = (0.25 - 1) - (2.25 - 1)
    np.testing.assert_allclose(grad_mu, [[2.0]])
    np.testing.assert_allclose(grad_sd, [[-2.0]])


def test_a_row_of_responsibility_zero_cannot_make_the_gradient_nan():
    # Component 1's sd is 1e-160: row 1 (x = 1) is 1e160 sds from it (its residual's square
    # overflows), but that row's responsibility there is 0 and must add exactly 0.
    X = np.array([[0.0], [1.0]])
    w, mu, params = np.array([0.5, 0.5]), np.zeros((2, 1)), np.array([[1.0], [1e-160]])
    log_p, resp = _log_likelihood(X, np.zeros(1), np.ones(1), w, mu, params, False)
    assert np.all(np.isfinite(log_p)) and resp[1, 1] == 0.0
    grads = _log_likelihood_grad(X, np.zeros(1), np.ones(1), w, mu, params, False, log_p, resp, np.ones(2))
    assert all(np.all(np.isfinite(g)) for g in grads)
    np.testing.assert_allclose(grads[1], [[1.0], [0.0]])


@pytest.mark.parametrize("cov_type", ["full", "diag"])
def test_numba_backend_runs_the_kernels_and_agrees_with_the_c_backend(cov_type):
    # nutpie compiles the model with PyTensor's numba backend: the Ops must run there as
    # compiled kernels with a cache key (not through Python), with the same values.
    from pytensor.link.numba.dispatch.basic import numba_funcify_and_cache_key

    from bayesgmm._likelihood import MixtureLogLikeGrad

    X, _ = make_mixture(300, n_components=3, n_features=2, random_state=4, separation=4)
    model = BayesianGMM(3, covariance_type=cov_type).build_model(X, likelihood="kernel")
    values = model.value_vars
    rng = np.random.default_rng(3)
    start = model.initial_point()
    point = [start[v.name] + rng.normal(0, 0.3, start[v.name].shape) for v in values]
    logp = model.logp()
    outputs = [logp, *pytensor.grad(logp, values)]
    numba_fn = pytensor.function(values, outputs, mode="NUMBA")
    c_fn = pytensor.function(values, outputs)
    for ours, reference in zip(numba_fn(*point), c_fn(*point)):
        np.testing.assert_allclose(ours, reference, rtol=1e-12, atol=1e-12)
    for op in (MixtureLogLike(cov_type == "full"), MixtureLogLikeGrad(cov_type == "full")):
        assert numba_funcify_and_cache_key(op)[1] is not None
