"""The rounding error of recorded values: detection, the model's likelihood, its gradient, fits in any units."""

import warnings

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
from scipy.stats import multivariate_normal

from bayesgmm import BayesianGMM, Priors
from bayesgmm.bayes_covariance import add_noise
from bayesgmm.datasets import make_mixture
from bayesgmm.pipeline import prepare_data, recording_resolution


def _rounded_data(n=80, seed=0):
    X, _ = make_mixture(n, n_components=2, n_features=2, random_state=seed, separation=5)
    return np.column_stack([np.round(X[:, 0] * 2) / 2, X[:, 1]])  # feature 0 on a grid of 0.5, feature 1 exact


# ---------------------------------------------------------------- detection
def test_resolution_is_the_grid_step_of_tied_features_only():
    X = _rounded_data()
    h = recording_resolution(X)
    assert h[0] == pytest.approx(0.5, rel=1e-12)
    assert h[1] == 0.0  # all values distinct: nothing to collapse onto


def test_resolution_is_robust_to_a_few_finer_gaps():
    # Whole seconds written as minutes to 3 decimals (Old Faithful's eruptions): the gaps
    # are 0.017 or 0.016, the median is the step.
    x = np.round(np.repeat(np.arange(100, 300, 1.0), 2) / 60, 3)
    assert recording_resolution(x[:, None])[0] == pytest.approx(1 / 60, abs=1e-3)


@pytest.mark.parametrize("unit", [1e-100, 1.0, 1e100])
def test_resolution_and_noise_do_not_depend_on_units(unit):
    X = _rounded_data()
    data = prepare_data(X * [unit, 1 / unit])
    reference = prepare_data(X)
    np.testing.assert_allclose(data.rounding, reference.rounding * [unit, 1 / unit], rtol=1e-12)
    np.testing.assert_allclose(data.noise_variance_z, reference.noise_variance_z, rtol=1e-10)
    assert data.rounded and reference.noise_variance_z[1] == 0


def test_fixed_rounding_overrides_detection_and_zero_turns_it_off():
    X = _rounded_data()
    assert not prepare_data(X, priors=Priors(rounding=0)).rounded
    data = prepare_data(X, priors=Priors(rounding=[0.25, 0.1]))
    np.testing.assert_allclose(data.rounding, [0.25, 0.1])
    np.testing.assert_allclose(data.noise_variance_z, (np.array([0.25, 0.1]) / data.scale) ** 2 / 12)


@pytest.mark.parametrize("value, error, match", [
    ("manual", ValueError, "rounding"),
    (None, ValueError, "rounding"),
    (-0.1, ValueError, "rounding"),
    ([0.1, -1.0], ValueError, "rounding"),
    (float("nan"), ValueError, "rounding"),
    (True, TypeError, "rounding"),
    ([[0.1]], ValueError, "rounding"),
])
def test_bad_rounding_is_refused_up_front(value, error, match):
    with pytest.raises(error, match=match):
        Priors(rounding=value)


def test_rounding_of_the_wrong_length_names_the_argument():
    with pytest.raises(ValueError, match=r"priors\['rounding'\] has 3 values but the data have 2"):
        BayesianGMM(2, priors={"rounding": [0.1, 0.1, 0.1]}).build_model(_rounded_data())


# ---------------------------------------------------------------- likelihood
@pytest.mark.parametrize("likelihood", ["kernel", "graph"])
@pytest.mark.parametrize("cov_type", ["full", "diag", "tied", "spherical"])
def test_likelihood_adds_the_rounding_variance(cov_type, likelihood):
    X = _rounded_data() * [1e-1, 1e1]
    gmm = BayesianGMM(2, covariance_type=cov_type)
    data = gmm.prepare(X)
    model = gmm.build_model(X, likelihood=likelihood)
    rng = np.random.default_rng(1)
    K, D = 2, 2
    weights, means_z = rng.dirichlet(np.ones(K)), rng.normal(size=(K, D))
    latent = gmm.spec.covariance.latent
    value = {"chol_cov_z": lambda: np.array([0.8, 0.3, 0.6]) if cov_type == "tied" else
             np.array([[0.8, 0.3, 0.6], [1.1, -0.2, 0.4]]),
             "sds_z": lambda: np.array([[0.7, 1.2], [0.5, 0.9]]),
             "sd_z": lambda: np.array([0.7, 1.3])}[latent]()
    fixed = pm.do(model, {"weights": weights, "means_z": means_z, latent: value})
    ours = fixed.compile_logp(vars=[fixed["obs"]], sum=True)({})
    chol_z = gmm.spec.covariance.cholesky(value, K, D)
    cov_z = chol_z @ np.swapaxes(chol_z, -1, -2) + np.diag(data.noise_variance_z)
    cov = cov_z * np.outer(data.scale, data.scale)
    means = data.centre + data.scale * means_z
    density = sum(weights[k] * multivariate_normal(means[k], cov[k]).pdf(X) for k in range(K))
    assert ours - X.shape[0] * np.log(data.scale).sum() == pytest.approx(np.log(density).sum(), rel=1e-9)


@pytest.mark.parametrize("mode", ["FAST_RUN", "NUMBA"])
def test_noisy_factor_gradient_matches_finite_differences(mode):
    from bayesgmm._likelihood import NoisyFactor

    rng = np.random.default_rng(0)
    K, D = 3, 3
    rows, cols = np.tril_indices(D)
    A = rng.normal(size=(K, D, D))
    factors = np.linalg.cholesky(A @ np.swapaxes(A, -1, -2) + np.eye(D))
    params, noise = factors[:, rows, cols], rng.uniform(0.1, 1.0, D)
    expected = np.linalg.cholesky(factors @ np.swapaxes(factors, -1, -2) + np.diag(noise))[:, rows, cols]
    p, n = pt.matrix("p"), pt.vector("n")
    weights = rng.normal(size=params.shape)
    loss = (NoisyFactor()(p, n) * weights).sum()
    f = pytensor.function([p, n], [NoisyFactor()(p, n), loss, *pytensor.grad(loss, [p, n])], mode=mode)
    out, _, grad_p, grad_n = f(params, noise)
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    eps = 1e-6
    numeric_p = np.zeros_like(params)
    for index in np.ndindex(params.shape):
        step = np.zeros_like(params)
        step[index] = eps
        numeric_p[index] = (f(params + step, noise)[1] - f(params - step, noise)[1]) / (2 * eps)
    numeric_n = np.array([(f(params, noise + eps * e)[1] - f(params, noise - eps * e)[1]) / (2 * eps)
                          for e in np.eye(D)])
    np.testing.assert_allclose(grad_p, numeric_p, atol=1e-7)
    np.testing.assert_allclose(grad_n, numeric_n, atol=1e-7)


def test_add_noise_is_the_identity_without_noise():
    chol = np.linalg.cholesky(np.array([[[2.0, 0.5], [0.5, 1.0]]]))
    assert add_noise(chol, np.zeros(2)) is chol
    noisy = add_noise(chol, np.array([0.25, 0.0]))
    np.testing.assert_allclose(noisy @ np.swapaxes(noisy, -1, -2), [[[2.25, 0.5], [0.5, 1.0]]], rtol=1e-12)


# ---------------------------------------------------------------- fits
def _fit(X, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return BayesianGMM(2).fit(X, draws=150, tune=200, chains=2, random_seed=3, progressbar=False, **kwargs)


def test_tied_values_cannot_collapse_a_component():
    # 12 rows on one value of feature 0 form a third, narrow group: without the
    # rounding error a component could shrink onto them without bound.
    X = _rounded_data(60)
    X = np.vstack([X, np.column_stack([np.full(12, 10.0), np.linspace(-1, 1, 12)])])
    idata = _fit(X)
    floor = 0.5 / np.sqrt(12)
    assert float(idata.posterior["stds"].sel(feature="x0").min()) >= floor * (1 - 1e-9)
    assert idata.attrs["data_rounding"] == pytest.approx([0.5, 0.0])


@pytest.mark.parametrize("unit", [1e-100, 1e100])
def test_rounded_fit_does_not_depend_on_units(unit):
    # Short chains: NUTS trajectories are chaotic, and the standardised data of the
    # scaled X differ from the original's in the last bits.
    X = _rounded_data(60)
    fits = []
    for factor in (np.ones(2), np.array([unit, 1 / unit])):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fits.append(BayesianGMM(2).fit(X * factor, draws=30, tune=30, chains=1, random_seed=4,
                                           progressbar=False))
    reference, scaled = fits
    np.testing.assert_allclose(scaled.posterior["chol_cov_z"].values, reference.posterior["chol_cov_z"].values,
                               rtol=0, atol=1e-5)
    np.testing.assert_allclose(scaled.posterior["stds"].values, reference.posterior["stds"].values * [unit, 1 / unit],
                               rtol=1e-4)
    np.testing.assert_allclose(scaled.attrs["data_rounding"], np.array(reference.attrs["data_rounding"])
                               * [unit, 1 / unit], rtol=1e-12)


def test_compiled_logp_of_rounded_and_exact_data_are_not_mixed_up():
    # Same model config and shape: the cache key must tell a graph with the rounding
    # error from one without, or the second fit would run the first one's log-density.
    X = _rounded_data(60)
    rounded = _fit(X)
    X_exact = X + np.random.default_rng(0).normal(scale=1e-3, size=X.shape)  # no ties
    exact = _fit(X_exact)
    assert rounded.attrs["data_rounding"][0] > 0 and exact.attrs["data_rounding"] == [0.0, 0.0]
    # The exact fit's sds are free to go below the first fit's floor in feature 0.
    reference = BayesianGMM(2, priors={"rounding": 0})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = reference.fit(X_exact, draws=150, tune=200, chains=2, random_seed=3, progressbar=False)
    np.testing.assert_allclose(exact.posterior["stds"].values, ref.posterior["stds"].values, rtol=1e-9)


def test_prior_predictive_with_fixed_rounding_includes_its_variance():
    gmm = BayesianGMM(2, priors={"location": 0.0, "scale": 1.0, "rounding": [0.6, 0.0]})
    draw = gmm.sample_prior_predictive(10, n_features=2, random_seed=0)
    plain = BayesianGMM(2, priors={"location": 0.0, "scale": 1.0, "rounding": 0.0}).sample_prior_predictive(
        10, n_features=2, random_seed=0)
    np.testing.assert_allclose(draw["covariances"] - plain["covariances"],
                               np.broadcast_to(np.diag([0.03, 0.0]), (2, 2, 2)), atol=1e-12)


@pytest.mark.parametrize("cov_type", ["full", "tied", "diag", "spherical"])
def test_rounded_graph_compiles_with_jax_and_matches_the_kernel(cov_type):
    # numpyro runs the graph (PyTensor's Cholesky, in JAX); PyMC's sampler and nutpie the Op.
    pytest.importorskip("jax")
    X = _rounded_data(40)
    gmm = BayesianGMM(2, covariance_type=cov_type)
    graph, kernel = gmm.build_model(X, likelihood="graph"), gmm.build_model(X, likelihood="kernel")
    assert "noise_variance_z" in graph.named_vars
    point = graph.initial_point()
    reference = kernel.compile_dlogp()(point)
    np.testing.assert_allclose(graph.compile_dlogp(mode="JAX")(point), reference, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(graph.compile_logp(mode="JAX")(point), kernel.compile_logp()(point), rtol=1e-10)


def test_analysis_passes_rounding_to_every_fit_and_refuses_bad_values():
    from bayesgmm.analysis import AnalysisSettings, analyse

    with pytest.raises(ValueError, match="rounding"):
        analyse(_rounded_data(40), AnalysisSettings(n_components=2, rounding=-1.0, method="advi"))
    settings = AnalysisSettings(n_components=2, rounding=0.0, method="advi", draws=50, progressbar=False,
                                fit_options={"n_iterations": 2000})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = analyse(_rounded_data(40), settings)
    assert result.idata.attrs["data_rounding"] == [0.0, 0.0] and result.model.priors.rounding == 0.0
