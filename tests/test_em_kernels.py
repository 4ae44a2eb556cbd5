"""The fused E+M passes (diagonal kernel, tied products) against the generic NumPy pass they replace."""

import numpy as np
import pytest

from bayesgmm import GaussianMixtureEM
from bayesgmm._em_kernels import diag_pass
from bayesgmm.covariance import get_covariance_type


def _generic_pass(monkeypatch, model, Z, weights):
    """The same pass through the generic (whiten + NumPy) code path."""
    for name in ("full", "diag", "spherical", "tied"):
        monkeypatch.setattr(type(get_covariance_type(name)), "fused_pass", lambda self, *args: None)
    return model.accumulate(Z, weights, model._params)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # 3 passes, on purpose
@pytest.mark.parametrize("cov_type", ["full", "diag", "spherical", "tied"])
@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-10), (np.float32, 2e-5)])
@pytest.mark.parametrize("n_features", [3, 20])  # above 16 features the blocks are 128 rows
def test_fused_pass_equals_generic_pass(monkeypatch, cov_type, dtype, rtol, n_features):
    rng = np.random.default_rng(0)
    # 1000 rows: several 256-row (or 128-row) blocks and a ragged last one.
    X = np.vstack([rng.normal(0, 1, (500, n_features)), rng.normal(4, 0.5, (500, n_features))]).astype(dtype)
    weights = rng.uniform(0.5, 2.0, len(X))
    model = GaussianMixtureEM(3, covariance_type=cov_type, max_iter=3, random_state=0).fit(X)
    Z = model.scaling_.transform(X, dtype=X.dtype)
    cov = get_covariance_type(cov_type)
    info = model._begin_pass(Z, model._params)
    assert cov.fused_pass(Z, weights, info.prepared, info.log_norm) is not None  # the kernel is what runs
    fused = model.accumulate(Z, weights, model._params)
    generic = _generic_pass(monkeypatch, model, Z, weights)
    for name in ("nk", "sum_y", "second"):
        np.testing.assert_allclose(getattr(fused, name), getattr(generic, name), rtol=rtol, atol=rtol * len(X),
                                   err_msg=name)
    assert fused.log_likelihood == pytest.approx(generic.log_likelihood, rel=rtol)
    assert fused.total_weight == pytest.approx(generic.total_weight)


def test_empty_component_gets_zero_responsibility():
    """A component of weight 0 (log-weight -inf) gets nothing and spoils nothing."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 2))
    means = np.array([[0.0, 0.0], [5.0, 5.0]])
    scale = np.ones((2, 2))
    log_norm = np.array([np.log(1.0) - np.log(2 * np.pi), -np.inf])
    nk, sum_y, second, loglik = diag_pass(X, np.ones(len(X)), means, scale, log_norm)
    assert nk[1] == 0.0 and np.all(sum_y[1] == 0.0) and np.all(second[1] == 0.0)
    assert nk[0] == pytest.approx(300.0)
    expected = np.sum(-0.5 * np.sum(X**2, axis=1) - np.log(2 * np.pi))
    assert loglik == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("cov_type", ["full", "diag", "spherical", "tied"])
def test_float32_fit_matches_float64(cov_type):
    rng = np.random.default_rng(2)
    X = np.vstack([rng.normal(0, 1, (400, 4)), rng.normal(3, 0.3, (400, 4))])
    kw = dict(covariance_type=cov_type, init_params="kmeans", random_state=0, tol=1e-6, max_iter=1000)
    m64 = GaussianMixtureEM(2, **kw).fit(X)
    m32 = GaussianMixtureEM(2, **kw).fit(X.astype(np.float32))
    assert m32.means_.dtype == np.float32
    assert m32.lower_bound_ == pytest.approx(m64.lower_bound_, rel=1e-5)
    np.testing.assert_allclose(m32.means_, m64.means_, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 2e-14), (np.float32, 2e-7)])
def test_vectorised_exp_matches_numpy(dtype, rtol):
    """The kernels' own exp: accurate over the whole non-positive range, 0 at -inf and below underflow."""
    from numba import njit

    from bayesgmm._em_kernels import _exp_nonpositive

    @njit
    def run(values):
        _exp_nonpositive(values, np.empty_like(values))

    rng = np.random.default_rng(3)
    floor = -708.0 if dtype == np.float64 else -87.0
    x = np.concatenate([[0.0, -0.0, -1e-300, floor + 1e-3, floor - 1e-3, -1e4, -np.inf],
                        -rng.exponential(5.0, 2000), rng.uniform(floor, 0.0, 2000)]).astype(dtype)
    values = x.copy()
    run(values)
    expected = np.exp(x.astype(np.float64))
    kept = x >= floor  # below the floor, under 1e-307 (float32: 1e-38) of the row's largest term: 0
    np.testing.assert_allclose(values[kept], expected[kept], rtol=rtol, atol=0)
    assert np.all(values[~kept] == 0.0) and np.all(expected[~kept] < 4 * np.finfo(dtype).tiny)


@pytest.mark.parametrize("dtype,rtol", [(np.float64, 1e-15), (np.float32, 2e-7)])
def test_vectorised_log_matches_numpy(dtype, rtol):
    """The kernels' own log, over [1, largest float): exact at 1, across the sqrt(2) switch, at the top."""
    from numba import njit

    from bayesgmm._em_kernels import _log_at_least_one

    @njit
    def run(values, out):
        _log_at_least_one(values, out)

    rng = np.random.default_rng(4)
    top = np.finfo(dtype).max
    x = np.concatenate([[1.0, 2.0, 4.0, 1.4142135, 1.4142137, 1.0 + 1e-12, top],
                        rng.uniform(1.0, 2.0, 2000), np.exp(rng.uniform(0.0, 80.0, 2000))]).astype(dtype)
    out = np.empty_like(x)
    run(x, out)
    expected = np.log(x.astype(np.float64))
    assert out[0] == 0.0
    np.testing.assert_allclose(out[1:], expected[1:], rtol=rtol, atol=0)


def test_pass_keeps_a_nan_log_density():
    """A NaN log-density (outside the fast log's domain) reaches the log-likelihood as NaN, as before."""
    X = np.random.default_rng(0).normal(size=(40, 2))
    for kernel, scale in (("diag", np.ones((2, 2))), ("full", np.tile(np.eye(2), (2, 1, 1)))):
        from bayesgmm import _em_kernels

        run = _em_kernels.diag_pass if kernel == "diag" else _em_kernels.full_pass
        result = run(X, np.ones(40), np.zeros((2, 2)), scale, np.array([np.nan, 0.0]))
        assert np.isnan(result[3])


def test_full_kernel_empty_component_and_ragged_block():
    """Full kernel: a weight-0 component gets nothing; 300 rows end in a ragged block (padding adds nothing)."""
    from bayesgmm._em_kernels import full_pass

    rng = np.random.default_rng(4)
    X = rng.normal(size=(300, 2))
    means = np.array([[0.0, 0.0], [5.0, 5.0]])
    factor = np.stack([np.eye(2), np.eye(2)])
    log_norm = np.array([-np.log(2 * np.pi), -np.inf])
    nk, sum_y, second, loglik = full_pass(X, np.ones(len(X)), means, factor, log_norm)
    assert nk[1] == 0.0 and np.all(sum_y[1] == 0.0) and np.all(second[1] == 0.0)
    assert nk[0] == pytest.approx(300.0)
    np.testing.assert_allclose(sum_y[0], X.sum(axis=0), rtol=1e-12)
    np.testing.assert_allclose(second[0], X.T @ X, rtol=1e-12)
    assert loglik == pytest.approx(np.sum(-0.5 * np.sum(X**2, axis=1) - np.log(2 * np.pi)), rel=1e-12)


@pytest.mark.parametrize("cov_type", ["full", "tied"])
@pytest.mark.parametrize("n_components,n_features", [(1, 1), (3, 2), (5, 13)])
def test_compiled_m_step_equals_numpy_m_step(cov_type, n_components, n_features):
    # The compiled M-step of full/tied covariances against the NumPy/LAPACK composition it replaces.
    from bayesgmm.covariance import CovarianceType

    rng = np.random.default_rng(n_features)
    cov = get_covariance_type(cov_type)
    A = rng.normal(size=(n_components, n_features, n_features))
    covariances = A @ A.transpose(0, 2, 1) + np.eye(n_features)
    if cov_type == "tied":
        covariances = covariances[0]
    factor = cov.precision_cholesky(covariances)
    nk = rng.uniform(1, 50, n_components)
    sum_y = rng.normal(size=(n_components, n_features)) * nk[:, None]
    B = rng.normal(size=(n_components, n_features, n_features + 3))
    second = B @ B.transpose(0, 2, 1) * nk[:, None, None] + sum_y[:, :, None] * sum_y[:, None, :] / nk[:, None, None]
    if cov_type == "tied":
        second = second.sum(axis=0)
    compiled = cov.m_step(nk, sum_y, second, factor, 1e-6, np.float64)
    numpy_path = CovarianceType.m_step(cov, nk, sum_y, second, factor, 1e-6, np.float64)
    for ours, reference in zip(compiled, numpy_path):
        assert ours.shape == reference.shape
        np.testing.assert_allclose(ours, reference, rtol=1e-12, atol=1e-14 * np.abs(reference).max())
    # A second moment that is not positive definite is refused as LAPACK's Cholesky refuses it.
    with pytest.raises(ValueError, match="ill-defined empirical covariance"):
        cov.m_step(nk, sum_y, -second, factor, 1e-6, np.float64)


def test_triangular_inverse_matches_numpy():
    from bayesgmm._em_kernels import triangular_inverse

    rng = np.random.default_rng(0)
    lower = np.tril(rng.normal(size=(4, 6, 6))) + 3 * np.eye(6)
    for stack, is_lower in ((lower, True), (lower.transpose(0, 2, 1), False)):
        inverse = triangular_inverse(stack, is_lower)
        np.testing.assert_allclose(inverse, np.linalg.inv(stack), rtol=1e-12, atol=1e-14)
        assert np.all((np.triu(inverse, 1) if is_lower else np.tril(inverse, -1)) == 0)  # exact zeros
    singular = lower.copy()
    singular[2, 3, 3] = 0.0
    with pytest.raises(np.linalg.LinAlgError):
        triangular_inverse(singular, True)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # 3 passes, on purpose
@pytest.mark.parametrize("cov_type", ["full", "diag", "spherical", "tied"])
@pytest.mark.parametrize("n_features", [1, 2, 9, 20])
def test_compiled_em_pass_equals_the_hooks(cov_type, n_features):
    # One whole compiled pass (small float64 data) against _e_step then _m_step, which it replaces there.
    rng = np.random.default_rng(n_features)
    X = np.vstack([rng.normal(0, 1, (300, n_features)), rng.normal(3, 0.5, (300, n_features))])
    weights = rng.uniform(0.5, 2.0, len(X))
    model = GaussianMixtureEM(4, covariance_type=cov_type, max_iter=3, random_state=0).fit(X)
    Z = model.scaling_.transform(X)
    start = model._params
    compiled = model._compiled_pass(Z, weights)
    assert compiled is not None
    value = compiled()
    ours = model._params
    model._params = start
    stats = model._e_step(Z, weights)
    model._m_step(stats)
    assert value == pytest.approx(model._compute_lower_bound(stats), rel=1e-14)
    for name in ("weights", "means", "covariances", "precisions_cholesky"):
        reference = getattr(model._params, name)
        assert getattr(ours, name).shape == reference.shape
        np.testing.assert_allclose(getattr(ours, name), reference, rtol=1e-12, atol=1e-14, err_msg=name)


def test_compiled_em_pass_is_not_used_where_it_does_not_apply():
    X = np.random.default_rng(0).normal(size=(200, 2))
    model = GaussianMixtureEM(2, max_iter=2, random_state=0).fit(X)
    Z = model.scaling_.transform(X)
    w = np.ones(len(X))
    assert model._compiled_pass(Z.astype(np.float32), w) is None  # float32 keeps the chunked hooks
    assert model._compiled_pass(np.asfortranarray(Z), w) is None
    big = np.repeat(Z, 400, axis=0)  # more than one chunk: threads share the chunks
    assert model._compiled_pass(big, np.ones(len(big))) is None
    # float32 parameters (a warm start from a float32 fit) keep the hooks' precision
    p = model._params
    model._params = type(p)(*(a.astype(np.float32) for a in (p.weights, p.means, p.covariances,
                                                             p.precisions_cholesky)))
    assert model._compiled_pass(Z, w) is None
    model._params = p

    class Counting(GaussianMixtureEM):  # a subclass that overrides a hook keeps it
        calls = 0

        def accumulate(self, *args, **kwargs):
            type(self).calls += 1
            return super().accumulate(*args, **kwargs)

    counted = Counting(2, max_iter=5, tol=0.0, random_state=0, acceleration=None).fit(X)
    assert counted._compiled_pass(Z, w) is None
    assert Counting.calls >= 5


@pytest.mark.parametrize("cov_type", ["full", "diag", "spherical", "tied"])
def test_compiled_em_pass_refuses_a_covariance_that_is_not_positive_definite(cov_type):
    # As the hooks do (a ValueError naming the cause), never NaN parameters: a
    # negative ridge (set past validation) makes every new covariance indefinite.
    X = np.random.default_rng(0).normal(size=(100, 3))
    model = GaussianMixtureEM(2, covariance_type=cov_type, max_iter=1, random_state=0).fit(X)
    model.reg_covar = -10.0
    with pytest.raises(ValueError, match="ill-defined empirical covariance"):
        model._compiled_pass(model.scaling_.transform(X), np.ones(len(X)))()


@pytest.mark.parametrize("n_components", [4, 9])  # from 8 on, NumPy sums the weights in another order
@pytest.mark.parametrize("acceleration", ["squarem", None])
@pytest.mark.parametrize("cov_type", ["full", "diag", "spherical", "tied"])
def test_compiled_em_run_takes_the_python_loops_steps(cov_type, acceleration, n_components, capsys):
    # The whole run in one compiled call against _run_em's Python loop over compiled
    # passes (which verbose output keeps): the same passes, SQUAREM steps and rejected
    # jumps, so the same history, iteration count and optimum.
    from sklearn.datasets import load_wine

    X = load_wine().data
    weights = np.random.default_rng(0).uniform(0.5, 2.0, len(X))
    # One k-means start: verbose output also keeps the multi-start's Python path (whose
    # starts equal the batched ones to rounding only; see the test after this one).
    kw = dict(n_components=n_components, covariance_type=cov_type, acceleration=acceleration, random_state=0,
              tol=1e-8, max_iter=3000, init_params="kmeans")
    ours = GaussianMixtureEM(**kw).fit(X, sample_weight=weights)
    loop = GaussianMixtureEM(verbose=1, verbose_interval=10**6, **kw).fit(X, sample_weight=weights)
    capsys.readouterr()
    assert ours.n_iter_ == loop.n_iter_ and ours.converged_ == loop.converged_
    # The same arithmetic in the same order. Run alone the two are equal to the last bit;
    # after other tests in the same process they have differed by 2.6e-13 (the starts'
    # NumPy reductions, not the loops, are the suspect), so equal to rounding here.
    np.testing.assert_allclose(ours.lower_bounds_, loop.lower_bounds_, rtol=1e-11)
    for name in ("weights_", "means_", "covariances_", "precisions_cholesky_"):
        np.testing.assert_allclose(getattr(ours, name), getattr(loop, name), rtol=1e-9, err_msg=name)


class _PythonStarts(GaussianMixtureEM):
    """Overriding ``_start_from`` keeps the multi-start's Python path: one start and one run at a time."""

    def _start_from(self, *args, **kwargs):
        return super()._start_from(*args, **kwargs)


@pytest.mark.parametrize("scale", [1.0, 1e-100, 1e100])
@pytest.mark.parametrize("cov_type", ["full", "diag", "spherical", "tied"])
def test_batched_multi_start_equals_the_python_multi_start(cov_type, scale):
    # The "auto" start's 14 short runs and its continued runs, each batch in one compiled
    # call, against the same starts and runs one at a time in Python: the same optimum
    # for every K, in any units (the starts' moments are summed in another order, so
    # equal to rounding). Weighted rows, a zero weight among them, and iris's ties.
    from sklearn.datasets import load_iris

    X = load_iris().data * scale
    weights = np.random.default_rng(1).uniform(0.5, 2.0, len(X))
    weights[7] = 0.0
    for K in (2, 3, 5, 8):
        kw = dict(n_components=K, covariance_type=cov_type, random_state=0)
        batched = GaussianMixtureEM(**kw).fit(X, sample_weight=weights)
        one_by_one = _PythonStarts(**kw).fit(X, sample_weight=weights)
        assert batched._runs_compile(batched.scaling_.transform(X)) and not one_by_one._runs_compile(X)
        assert batched.degenerate_ == one_by_one.degenerate_
        assert batched.lower_bound_ == pytest.approx(one_by_one.lower_bound_, rel=1e-9, abs=1e-9), K
        np.testing.assert_allclose(batched.means_, one_by_one.means_, rtol=1e-6, err_msg=str(K))
        np.testing.assert_allclose(batched.weights_, one_by_one.weights_, rtol=1e-6, atol=1e-9, err_msg=str(K))


@pytest.mark.parametrize("cov_type", ["full", "diag", "spherical", "tied"])
def test_partition_starts_equal_the_python_start(cov_type):
    # Each start's M-step from its hard partition (weighted rows), as _start_from computes it.
    from bayesgmm._em_kernels import partition_starts
    from bayesgmm.initialization import PARTITIONS, with_one_hot

    rng = np.random.default_rng(3)
    Z = np.vstack([rng.normal(0, 1, (60, 3)), rng.normal(3, 0.5, (40, 3))])
    w = rng.uniform(0.2, 3.0, len(Z))
    model = GaussianMixtureEM(4, covariance_type=cov_type, reg_covar=1e-6)
    model._cov = get_covariance_type(cov_type)
    partitions = [PARTITIONS[name](Z, 4, w, np.random.RandomState(5)) for name in ("kmeans", "k-means++")]
    codes, *stacked = partition_starts(Z, w, partitions, 4, model._cov.compiled_kernels == "diagonal",
                                       model._cov.pooled, model.reg_covar)
    assert (codes == 0).all()
    for s, name in enumerate(("kmeans", "k-means++")):
        reference = model._start_from(with_one_hot(PARTITIONS[name]), Z, w, np.random.RandomState(5))
        # k-means++ starts each group from one row: its covariance is the ridge plus the
        # rounding of a cancellation (~1e-16), which its precision factor (~1000) magnifies.
        for value, attr in zip(stacked, ("weights", "means", "covariances", "precisions_cholesky")):
            expected = getattr(reference, attr)
            loose = name == "k-means++" and attr == "precisions_cholesky"
            np.testing.assert_allclose(value[s].reshape(expected.shape), expected, rtol=1e-8 if loose else 1e-10,
                                       atol=1e-4 if loose else 1e-12, err_msg=f"{name} {attr}")


def test_a_start_whose_covariance_cannot_be_formed_is_skipped_and_a_failed_run_reported():
    from bayesgmm._em_kernels import em_runs, partition_starts

    Z = np.random.default_rng(0).normal(size=(50, 2))
    w = np.ones(len(Z))
    # Two points in one group, spherical: variance 0 + ridge -1 is not positive.
    codes, *params = partition_starts(Z, w, [(np.arange(50), np.repeat([0, 1], 25)), (np.arange(2), np.zeros(2, int))],
                                      2, True, True, -1.0)
    assert codes.tolist()[1] == 2
    codes, *params = partition_starts(Z, w, [(np.arange(50), np.repeat([0, 1], 25))] * 2, 2, False, False, 1e-6)
    # A negative ridge set past validation: both runs fail, each with its code; an inactive one is not run.
    codes, lower_bounds, proper = em_runs(Z, w, *params, np.array([True, False]), -10.0, False, 5, 1e-6, True, 0.0,
                                          0.0)
    assert codes.tolist() == [2, 0] and lower_bounds[1] == -np.inf
    codes, lower_bounds, proper = em_runs(Z, w, *params, np.ones(2, bool), -10.0, False, 5, 1e-6, True, 0.0, 0.0)
    assert codes.tolist() == [2, 2]
    # In the multi-start: every start skipped, then the error that says so.
    model = GaussianMixtureEM(2, random_state=0).fit(Z)
    model.reg_covar = -10.0
    with pytest.raises(ValueError, match="No starting partition gave positive definite"):
        model._best_short_run(model.scaling_.transform(Z), w, np.random.RandomState(0), 0)


@pytest.mark.parametrize("model_class", [GaussianMixtureEM, _PythonStarts])
def test_a_start_that_fails_in_its_first_pass_is_passed_over(model_class):
    # reg_covar=0: a k-means start's covariance has a smallest eigenvalue of 2e-16. NumPy's
    # factorisation refused it and the compiled one accepts it, to fail in its first pass; either
    # way the multi-start goes on with its other starts (it once made the whole fit fail).
    from sklearn.datasets import load_iris

    model = model_class(6, covariance_type="full", reg_covar=0.0, random_state=0).fit(load_iris().data)
    assert np.isfinite(model.lower_bound_)
    assert model.lower_bound_ == pytest.approx(-0.913, abs=5e-3)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # the one-pass fits that make the starts
@pytest.mark.parametrize("acceleration", ["squarem", None])
@pytest.mark.parametrize(("cov_type", "seed"), [("full", 1), ("diag", 1), ("spherical", 0)])
def test_em_run_stops_at_the_first_collapsed_component_when_asked(cov_type, seed, acceleration, capsys):
    # Six (nearly) repeated rows: from these random starts a component collapses onto
    # them. The multi-start's short runs stop there, compiled or not, at the same pass.
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(80, 2)), np.tile([[2.0, 2.0]], (6, 1)) + rng.normal(scale=1e-9, size=(6, 2))])
    kw = dict(covariance_type=cov_type, init_params="random_from_data", max_iter=1, random_state=seed,
              acceleration=acceleration)
    compiled = GaussianMixtureEM(3, **kw).fit(X)
    loop = GaussianMixtureEM(3, verbose=1, verbose_interval=10**6, **kw).fit(X)
    Z, w, start = compiled.scaling_.transform(X), np.ones(len(X)), compiled._params
    runs = {}
    for name, model in (("compiled", compiled), ("loop", loop)):
        model._params = start
        runs[name] = model._run_em(Z, w, 0, warm=False, max_iter=60, tol=0.0, stop_collapsed=True), model._params
    capsys.readouterr()
    (lb, passes, converged, history), params = runs["compiled"]
    assert 1 <= passes < 60 and not converged
    assert runs["loop"][0][:3] == pytest.approx((lb, passes, converged), rel=1e-12)
    np.testing.assert_allclose(runs["loop"][1].covariances, params.covariances, rtol=1e-9)
    compiled._params = params
    assert compiled._degenerate_components(2).size > 0
    # Without the stop the same start runs on; without acceleration the pass before
    # the stop had no collapsed component (the stop is at the first).
    compiled._params = start
    assert compiled._run_em(Z, w, 0, warm=False, max_iter=60, tol=0.0)[1] == 60
    if acceleration is None:
        compiled._params = start
        compiled._run_em(Z, w, 0, warm=False, max_iter=passes - 1, tol=0.0)
        assert compiled._degenerate_components(2).size == 0


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # tol=0: no convergence, on purpose
def test_compiled_em_run_history_grows_and_max_iter_can_be_huge(capsys):
    X = np.random.default_rng(0).normal(size=(120, 2))
    long = GaussianMixtureEM(3, tol=0.0, max_iter=700, acceleration=None, random_state=0).fit(X)
    loop = GaussianMixtureEM(3, tol=0.0, max_iter=700, acceleration=None, random_state=0, verbose=1,
                             verbose_interval=10**6).fit(X)
    capsys.readouterr()
    assert len(long.lower_bounds_) == long.n_iter_ == 700
    np.testing.assert_allclose(long.lower_bounds_, loop.lower_bounds_, rtol=1e-13)
    # No buffer sized by max_iter: "run until converged" with an enormous cap works.
    for cap in (10**15, 10**20):  # past int64 too
        unbounded = GaussianMixtureEM(3, max_iter=cap, random_state=0).fit(X)
        assert unbounded.converged_ and len(unbounded.lower_bounds_) < 10**4


@pytest.mark.parametrize("cov_type", ["full", "diag", "spherical", "tied"])
def test_compiled_em_run_refuses_a_covariance_that_is_not_positive_definite(cov_type):
    X = np.random.default_rng(0).normal(size=(100, 3))
    model = GaussianMixtureEM(2, covariance_type=cov_type, max_iter=1, random_state=0).fit(X)
    model.reg_covar = -10.0
    start = model._params
    with pytest.raises(ValueError, match="ill-defined empirical covariance"):
        model._run_em(model.scaling_.transform(X), np.ones(len(X)), 0, warm=False, max_iter=5)
    np.testing.assert_array_equal(model._params.means, start.means)  # where the failed pass started


def test_precision_factors_and_squarem_helpers_match_numpy():
    from bayesgmm._em_kernels import precision_factors, squarem_lengths, squarem_point

    rng = np.random.default_rng(1)
    A = rng.normal(size=(3, 5, 5))
    covs = A @ A.transpose(0, 2, 1) + np.eye(5)
    factors = precision_factors(covs)
    reference = np.swapaxes(np.linalg.inv(np.linalg.cholesky(covs)), -1, -2)
    np.testing.assert_allclose(factors, reference, rtol=1e-12, atol=1e-14)
    assert precision_factors(-covs) is None
    bad = covs.copy()
    bad[1, 0, 0] = np.nan
    assert precision_factors(bad) is None
    trio = [tuple(rng.normal(size=shape) for shape in ((3,), (3, 5), (3, 5, 5))) for _ in range(3)]
    r = [b - a for a, b in zip(trio[0], trio[1])]
    v = [c - 2 * b + a for a, b, c in zip(*trio)]
    rr, vv = squarem_lengths(*trio)
    assert rr == pytest.approx(sum(float(np.vdot(x, x)) for x in r), rel=1e-13)
    assert vv == pytest.approx(sum(float(np.vdot(x, x)) for x in v), rel=1e-13)
    for point, a, ri, vi in zip(squarem_point(*trio, -2.5), trio[0], r, v):
        np.testing.assert_allclose(point, a - 2 * -2.5 * ri + 6.25 * vi, rtol=1e-13, atol=1e-13)
    # The points' dtype is NumPy's promotion of the three (float32 first, float64 after).
    mixed = [tuple(a.astype(np.float32) for a in trio[0]), trio[1], trio[2]]
    assert all(point.dtype == np.float64 for point in squarem_point(*mixed, -2.0))
    single = [tuple(a.astype(np.float32) for a in t) for t in trio]
    assert all(point.dtype == np.float32 for point in squarem_point(*single, -2.0))


@pytest.mark.parametrize("n_components,n_features", [(1, 1), (2, 2), (4, 5), (9, 13)])
@pytest.mark.parametrize("dtype,rtol,spread", [(np.float64, 1e-11, 100.0), (np.float32, 1e-4, 10.0)])
def test_tied_kernel_equals_full_kernel_with_the_shared_factor(n_components, n_features, dtype, rtol, spread):
    """The tied pass (rows whitened once) gives the full kernel's statistics for one repeated factor, pooled.

    Components ``spread`` sds from the origin: the pooled second moment is summed
    without the cancellation an expansion around the origin would suffer. A
    residual is y - c_k rather than (x - m_k) P, which rounds at eps |y|: in
    float32 at 100 sds that is 1e-4 of a residual (the full kernel's 3x better),
    so float32 is checked at 10 sds, far apart for standardised data.
    """
    from bayesgmm._em_kernels import full_pass, tied_pass

    rng = np.random.default_rng(n_features)
    n = 700  # two whole 256-row blocks and a ragged one
    means = rng.normal(0, spread, (n_components, n_features))
    X = means[rng.integers(n_components, size=n)] + rng.normal(size=(n, n_features))
    weights = rng.uniform(0.5, 2.0, n)
    weights[::7] = 0.0
    A = rng.normal(size=(n_features, n_features))
    factor = np.linalg.cholesky(np.linalg.inv(A @ A.T / n_features + np.eye(n_features))).T  # upper, P P' = precision
    log_norm = np.log(rng.dirichlet(np.ones(n_components))) + np.log(np.diag(factor)).sum()
    if n_components > 2:
        log_norm[1] = -np.inf  # an empty component
    args = (X.astype(dtype), weights.astype(dtype), means.astype(dtype))
    nk, sum_y, second, loglik = tied_pass(*args, factor.astype(dtype), log_norm)
    f_nk, f_sum_y, f_second, f_loglik = full_pass(*args, np.tile(factor, (n_components, 1, 1)).astype(dtype),
                                                  log_norm)
    # float32 rounds at 1e-7 of the largest terms, so the sums are compared at that scale
    for ours, full in ((nk, f_nk), (sum_y, f_sum_y), (second, f_second.sum(axis=0))):
        np.testing.assert_allclose(ours, full, rtol=rtol, atol=rtol * np.abs(full).max())
    np.testing.assert_array_equal(second, second.T)
    assert loglik == pytest.approx(f_loglik, rel=rtol)
    if n_components > 2:
        assert nk[1] == 0.0 and np.all(sum_y[1] == 0.0)


@pytest.mark.parametrize("n_components,n_features", [(1, 1), (2, 2), (4, 5), (9, 13)])
@pytest.mark.parametrize("spread", [3.0, 10.0, 1000.0])
def test_expanded_tied_pass_gives_the_tied_statistics(n_components, n_features, spread):
    """The short runs' tied pass (distances expanded around the origin) against the exact tied pass.

    Components up to 10 sds from the origin lose at most ~3 digits to the expansion;
    at 1000 sds (|c_k|^2 > 1e4), where it would lose ~6, the pass is the exact
    kernel's (compiled inside another function, so equal to rounding).
    """
    from bayesgmm._em_kernels import _EXPANDED_MAX_SQUARE, _tied_pass_expanded_kernel, tied_pass

    rng = np.random.default_rng(n_features)
    n = 700  # whole blocks and a ragged one
    means = rng.normal(0, spread / np.sqrt(n_features), (n_components, n_features))
    X = means[rng.integers(n_components, size=n)] + rng.normal(size=(n, n_features))
    weights = rng.uniform(0.5, 2.0, n)
    weights[::7] = 0.0
    A = rng.normal(size=(n_features, n_features))
    factor = np.linalg.cholesky(np.linalg.inv(A @ A.T / n_features + np.eye(n_features))).T
    log_norm = np.log(rng.dirichlet(np.ones(n_components))) + np.log(np.diag(factor)).sum()
    if n_components > 2:
        log_norm[1] = -np.inf  # an empty component
    nk, sum_y, second, loglik = tied_pass(X, weights, means, factor, log_norm)
    gram = (X * weights[:, None]).T @ X
    e_nk, e_sum_y, e_second = np.zeros(n_components), np.zeros((n_components, n_features)), np.zeros_like(second)
    e_loglik = _tied_pass_expanded_kernel(X, weights, means, factor, log_norm, gram, e_nk, e_sum_y, e_second)
    assert (((means @ factor) ** 2).sum(axis=1).max() > _EXPANDED_MAX_SQUARE) == (spread > 10.0)
    for ours, exact in ((e_nk, nk), (e_sum_y, sum_y), (e_second, second)):
        np.testing.assert_allclose(ours, exact, rtol=1e-11, atol=1e-11 * np.abs(exact).max())
    np.testing.assert_array_equal(e_second, e_second.T)
    assert e_loglik == pytest.approx(loglik, rel=1e-11)
    if n_components > 2:
        assert e_nk[1] == 0.0 and np.all(e_sum_y[1] == 0.0)


def test_below_floor_agrees_with_the_smallest_eigenvalue():
    """The degenerate check's Cholesky test against eigvalsh, for eigenvalues on both sides of the floor."""
    from bayesgmm._em_kernels import below_floor

    rng = np.random.default_rng(5)
    floor = 2e-6
    for n_features in (1, 2, 5, 30):
        Q, _ = np.linalg.qr(rng.normal(size=(n_features, n_features)))
        matrices = []
        for smallest in (floor * 0.5, floor * 0.99, floor * 1.01, floor * 3, 1.0, -1.0):
            eigenvalues = np.concatenate([[smallest], rng.uniform(0.1, 10, n_features - 1)])
            matrices.append((Q * eigenvalues) @ Q.T)
        matrices = np.array(matrices)
        expected = np.linalg.eigvalsh(matrices)[:, 0] < floor
        np.testing.assert_array_equal(below_floor(matrices, floor), expected)
    assert below_floor(np.full((1, 2, 2), np.nan), floor).tolist() == [True]


def test_float32_data_up_to_10000_rows_are_fitted_in_float64():
    # Only float64 runs compile: small float32 data are fitted in float64 (10x faster on faithful's
    # select_model), with float32 attributes; above 10,000 rows float32 keeps its memory and speed.
    from sklearn.datasets import load_wine

    X = load_wine().data
    f64 = GaussianMixtureEM(4, covariance_type="diag", random_state=0).fit(X)
    f32 = GaussianMixtureEM(4, covariance_type="diag", random_state=0).fit(X.astype(np.float32))
    assert f32.means_.dtype == np.float32 and f32._params.means.dtype == np.float64
    assert f32.lower_bound_ == pytest.approx(f64.lower_bound_, rel=1e-6)
    np.testing.assert_allclose(f32.means_, f64.means_, rtol=1e-5)
    big = np.random.default_rng(0).normal(size=(10_001, 2)).astype(np.float32)
    assert GaussianMixtureEM(2, max_iter=3, random_state=0).fit(big)._params.means.dtype == np.float32
