"""Partition summaries (issue #14, point 1): allocations, similarity matrix, VI/Binder point estimates,
credible balls, occupied clusters; checked against brute force and simulated truth."""

import warnings

import arviz as az
import matplotlib
import numpy as np
import pytest
import xarray as xr
from sklearn.metrics import mutual_info_score

import bayesgmm.partition as bp
from bayesgmm import (
    BayesianGMM,
    GaussianMixtureEM,
    assignments,
    credible_ball,
    draw_allocations,
    em_to_idata,
    occupied_clusters,
    partition_distance,
    partition_summary,
    point_partition,
    similarity_matrix,
)
from bayesgmm.datasets import load_faithful, make_mixture

matplotlib.use("Agg")


# ------------------------------------------------------------------ brute force references
def set_partitions(n):
    """Every partition of n items, as restricted growth strings (Bell(n) of them)."""
    def grow(prefix, top):
        if len(prefix) == n:
            yield np.array(prefix)
            return
        for k in range(top + 2):
            yield from grow(prefix + [k], max(top, k))

    yield from grow([0], 0)


def entropy_bits(c):
    _, counts = np.unique(c, return_counts=True)
    p = counts / counts.sum()
    return float(-(p * np.log2(p)).sum())


def vi_reference(a, b):
    """H(a) + H(b) - 2 I(a, b), in bits, with scikit-learn's mutual information."""
    return entropy_bits(a) + entropy_bits(b) - 2 * mutual_info_score(a, b) / np.log(2)


def binder_reference(a, b):
    """Fraction of pairs together in one partition and apart in the other."""
    a, b = np.asarray(a), np.asarray(b)
    same_a = a[:, None] == a[None, :]
    same_b = b[:, None] == b[None, :]
    iu = np.triu_indices(a.size, 1)
    return float(np.mean(same_a[iu] != same_b[iu]))


def vi_lb_reference(c, P):
    """Wade and Ghahramani's VI_LB (as mcclust.ext::VI.lb), in bits."""
    c = np.asarray(c)
    same = c[:, None] == c[None, :]
    return float(np.mean(np.log2(same.sum(1)) + np.log2(P.sum(1)) - 2 * np.log2((same * P).sum(1))))


def all_expected_losses(parts, A):
    """Exact expected VI (bits) and Binder (fraction of pairs) of every partition, vectorised over partitions.

    Each distance comes from the contingency table n_kl of (c, a): with f = x log2 x (VI) or
    C(x, 2) (Binder), d = sum_k f(n_k) + sum_l f(m_l) - 2 sum_kl f(n_kl) (scaled by 1/n or 1/C(n, 2)).
    """
    parts = np.asarray(parts)
    n = parts.shape[1]
    one_c = (parts[:, :, None] == np.arange(n)).astype(float)  # (B, n, n)
    one_a = (A[:, :, None] == np.arange(A.max() + 1)).astype(float)  # (S, n, L)
    joint = np.einsum("bik,sil->bskl", one_c, one_a)

    def xlog2x(x):
        return np.where(x > 0, x * np.log2(np.where(x > 0, x, 1.0)), 0.0)

    def pairs(x):
        return x * (x - 1) / 2

    out = {}
    for name, f, scale in (("VI", xlog2x, n), ("binder", pairs, n * (n - 1) / 2)):
        d = (f(one_c.sum(1)).sum(-1)[:, None] + f(one_a.sum(1)).sum(-1)[None, :]
             - 2 * f(joint).sum((-1, -2))) / scale
        out[name] = d.mean(axis=1)
    return out


def random_allocations(rng, n_items, n_draws):
    """Draws scattered around a base partition (so the optimum is not trivial)."""
    A = rng.integers(0, rng.integers(2, 5), size=(n_draws, n_items))
    base = rng.integers(0, 3, n_items)
    A[: n_draws // 2] = base
    flip = rng.random(A.shape) < 0.2
    A[flip] = rng.integers(0, 3, flip.sum())
    return A


def fake_posterior(X, n_draws, noise, seed=0):
    """A posterior of n_draws around an EM fit (means jittered): quick, no sampler."""
    em = GaussianMixtureEM(3, random_state=0).fit(X)
    rng = np.random.default_rng(seed)
    base = em_to_idata(em, X).posterior
    K, D = em.means_.shape
    post = {
        "weights": np.broadcast_to(base["weights"].values, (1, n_draws, K)),
        "means": base["means"].values + rng.normal(0, noise, (1, n_draws, K, D)),
        "cov": np.broadcast_to(base["cov"].values, (1, n_draws, K, D, D)),
    }
    dims = {"weights": ["component"], "means": ["component", "feature"],
            "cov": ["component", "feature", "feature_bis"], "obs": ["obs_id", "feature"]}
    return az.from_dict(posterior=post, observed_data={"obs": X}, dims=dims)


# ------------------------------------------------------------------ losses against brute force
def test_vi_and_binder_distances_match_brute_force():
    rng = np.random.default_rng(0)
    for _ in range(30):
        n = int(rng.integers(2, 12))
        a, b = rng.integers(0, 4, n), rng.integers(0, 5, n)
        assert partition_distance(a, b) == pytest.approx(vi_reference(a, b), abs=1e-12)
        assert partition_distance(a, b, loss="binder") == pytest.approx(binder_reference(a, b), abs=1e-12)
        assert partition_distance(a, a + 7) == pytest.approx(0.0, abs=1e-12)  # labels do not matter
    # Extremes: all together vs all apart is log2(n) bits and every pair.
    assert partition_distance(np.zeros(8, int), np.arange(8)) == pytest.approx(3.0)
    assert partition_distance(np.zeros(8, int), np.arange(8), loss="binder") == pytest.approx(1.0)


def test_expected_losses_match_brute_force():
    rng = np.random.default_rng(1)
    A = random_allocations(rng, 6, 9)
    P = bp._psm_from_allocations(A).astype(float)
    parts = list(set_partitions(6))
    vectorised = all_expected_losses(parts, A)
    for name in ("VI", "binder"):  # the vectorised reference used below, against the pairwise one
        reference = [np.mean([(vi_reference if name == "VI" else binder_reference)(c, a) for a in A])
                     for c in parts[::7]]
        np.testing.assert_allclose(vectorised[name][::7], reference, atol=1e-12)
    for c in parts[::7]:
        np.testing.assert_allclose(bp.expected_loss_draws(c, A, "VI"), [vi_reference(c, a) for a in A], atol=1e-12)
        np.testing.assert_allclose(bp.expected_loss_draws(c, A, "binder"), [binder_reference(c, a) for a in A],
                                   atol=1e-12)
        # Binder's expected loss needs only the similarity matrix; VI_LB is a function of it.
        assert bp.psm_loss(c, P, "binder") == pytest.approx(np.mean([binder_reference(c, a) for a in A]), abs=1e-6)
        assert bp.psm_loss(c, P, "VI_lb") == pytest.approx(vi_lb_reference(c, P), abs=1e-9)


@pytest.mark.parametrize("seed", range(8))
def test_greedy_search_finds_the_exact_optimum(seed):
    rng = np.random.default_rng(seed)
    n = 7 if seed % 2 else 6
    A = random_allocations(rng, n, int(rng.integers(3, 12)))
    P = bp._psm_from_allocations(A).astype(float)
    parts = list(set_partitions(n))
    exact = {name: values.min() for name, values in all_expected_losses(parts, A).items()}
    exact["VI_lb"] = min(vi_lb_reference(c, P) for c in parts)
    for loss in ("VI", "binder", "VI_lb"):
        # No draw candidates: the greedy search alone must reach the optimum.
        found = point_partition(A, loss=loss, n_candidates=0, random_seed=seed)
        assert found.attrs["expected_loss"] == pytest.approx(exact[loss], abs=1e-6), loss
    found = point_partition(P, loss="binder", random_seed=seed)  # from the similarity matrix
    assert found.attrs["expected_loss"] == pytest.approx(exact["binder"], abs=1e-6)


def test_point_partition_is_deterministic_and_canonical():
    rng = np.random.default_rng(3)
    A = random_allocations(rng, 40, 30)
    first = point_partition(A, random_seed=5)
    again = point_partition(A, random_seed=5)
    np.testing.assert_array_equal(first.values, again.values)
    sizes = np.bincount(first.values)
    assert np.all(np.diff(sizes) <= 0)  # labels by decreasing cluster size
    assert first.dims == ("obs_id",) and first.attrs["loss"] == "VI"
    # max_clusters is honoured
    assert point_partition(A, loss="binder", max_clusters=1, random_seed=0).values.max() == 0
    # A unanimous posterior gives its partition, with zero expected loss.
    same = np.tile([3, 3, 1, 1, 0], (10, 1))
    result = point_partition(same, random_seed=0)
    np.testing.assert_array_equal(result.values, [0, 0, 1, 1, 2])
    assert result.attrs["expected_loss"] == pytest.approx(0.0, abs=1e-12)


# ------------------------------------------------------------------ similarity matrix, allocations
def test_similarity_from_allocations_is_the_pair_frequency(monkeypatch):
    rng = np.random.default_rng(2)
    A = rng.integers(0, 4, size=(23, 57))
    expected = (A[:, :, None] == A[:, None, :]).mean(axis=0)
    psm = similarity_matrix(A)
    assert psm.dims == ("obs_id", "obs_id_bis") and psm.dtype == np.float32
    np.testing.assert_allclose(psm.values, expected, atol=1e-6)
    monkeypatch.setattr(bp, "_GEMM_ELEMENTS", 300)  # many small blocks of draws and rows
    np.testing.assert_allclose(similarity_matrix(A).values, expected, atol=1e-6)


def test_allocations_and_similarity_follow_the_responsibilities():
    X, _ = make_mixture(60, n_components=3, n_features=2, random_state=0, separation=1.5)
    idata = fake_posterior(X, 400, noise=0.0)  # 400 identical draws: frequencies -> responsibilities
    resp = assignments(idata, relabel_draws=False)["probability"].values
    alloc = draw_allocations(idata, random_seed=0)
    assert alloc.dims == ("draw", "obs_id") and alloc.shape == (400, 60)
    freq = np.stack([(alloc.values == k).mean(axis=0) for k in range(3)], axis=1)
    assert np.abs(freq - resp).max() < 0.1  # 400 draws: sd at most 0.025
    np.testing.assert_array_equal(alloc.values, draw_allocations(idata, random_seed=0).values)  # seeded
    assert draw_allocations(idata, n_draws=50, random_seed=0).sizes["draw"] == 50
    # Rao-Blackwellised: exactly sum_k r_ik r_jk for identical draws; allocations agree within MC error.
    rb = similarity_matrix(idata)
    exact = resp @ resp.T
    np.fill_diagonal(exact, 1.0)
    np.testing.assert_allclose(rb.values, exact, atol=1e-5)
    mc = similarity_matrix(idata, method="allocations", random_seed=1)
    assert np.abs(mc.values - rb.values).max() < 0.15


def test_similarity_above_max_points_is_a_documented_sample():
    X, _ = make_mixture(50, n_components=3, n_features=2, random_state=0, separation=2)
    idata = fake_posterior(X, 20, noise=0.1)
    full = similarity_matrix(idata)
    part = similarity_matrix(idata, max_points=20, random_seed=0)
    assert part.shape == (20, 20) and part.attrs["approximate"] == 1 and part.attrs["n_points_total"] == 50
    ids = part["obs_id"].values
    assert len(set(ids.tolist())) == 20 and np.all(np.diff(ids) > 0)
    np.testing.assert_allclose(part.values, full.sel(obs_id=ids, obs_id_bis=ids).values, atol=1e-6)
    assert full.attrs["approximate"] == 0


# ------------------------------------------------------------------ credible ball, occupied clusters
def test_credible_ball_radius_and_bounds():
    point = np.array([0, 0, 0, 1, 1, 1])
    A = np.array([point] * 14 + [[0, 0, 1, 1, 1, 1], [0, 0, 0, 0, 0, 0], [0, 1, 2, 3, 4, 5],
                                 [0, 0, 0, 1, 1, 2], [0, 0, 0, 1, 2, 2], [0, 1, 0, 1, 1, 1]])
    ball = credible_ball(A, point, prob=0.95)
    dist = np.array([partition_distance(point, a) for a in A])
    np.testing.assert_allclose(ball["distance"].values, dist, atol=1e-12)
    radius = np.sort(dist)[int(np.ceil(0.95 * len(A))) - 1]
    assert float(ball["radius"]) == pytest.approx(radius)
    inside = dist <= radius + 1e-12
    np.testing.assert_array_equal(ball["in_ball"].values, inside)
    assert inside.mean() >= 0.95
    k = np.array([np.unique(a).size for a in A])
    bounds = ball["bound_n_clusters"].to_series()
    assert bounds["vertical_upper"] == k[inside].min() and bounds["vertical_lower"] == k[inside].max()
    assert float(ball["bound_distance"].sel(bound="horizontal")) == pytest.approx(dist[inside].max())
    assert partition_distance(point, [0, 1, 2, 3, 4, 5]) > float(ball["radius"])  # 6 singletons: outside
    labels = ball["bound_labels"].sel(bound="horizontal").values
    assert partition_distance(labels, A[int(ball["bound_draw"].sel(bound="horizontal"))]) == 0.0


def test_occupied_clusters_distribution():
    A = np.array([[0, 0, 1], [0, 0, 0], [2, 0, 1], [5, 5, 7]])
    probs = occupied_clusters(A)
    assert probs.dims == ("n_clusters",)
    np.testing.assert_allclose(probs.values, [0.25, 0.5, 0.25])
    np.testing.assert_array_equal(probs["n_clusters"].values, [1, 2, 3])
    assert probs.attrs["mean"] == pytest.approx(2.0)


# ------------------------------------------------------------------ one call, plot, bad input
def test_partition_summary_and_plot_on_bundled_data():
    X = load_faithful().to_numpy()
    idata = em_to_idata(GaussianMixtureEM(2, random_state=0).fit(X), X)
    result = partition_summary(idata, random_seed=0)
    assert isinstance(result, xr.Dataset)
    for name in ("allocations", "similarity", "point", "radius", "in_ball", "bound_labels",
                 "n_clusters_probability"):
        assert name in result
    assert result["similarity"].shape == (272, 272) and int(result["point"].max()) == 1
    # Same labels as EM's most probable component (up to relabelling): the one-draw posterior is EM.
    em_labels = assignments(idata)["most_probable"].values
    assert partition_distance(result["point"].values, em_labels) < 0.05
    assert result.attrs["approximate"] == 0 and result.attrs["loss"] == "VI"
    ax = bp.plot_similarity(result)
    assert ax.images and ax.get_title().startswith("Posterior similarity")
    ax2 = bp.plot_similarity(result["similarity"], order=result["point"].values, max_display=100)
    assert ax2.images[0].get_array().shape == (100, 100)
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.mark.parametrize(
    "call, error, match",
    [
        (lambda A, P: point_partition(A, loss="entropy"), ValueError, "loss"),
        (lambda A, P: point_partition(P, loss="VI"), ValueError, "VI_lb"),
        (lambda A, P: point_partition("abc"), TypeError, "allocations"),
        (lambda A, P: point_partition(A, n_restarts=0), ValueError, "n_restarts"),
        (lambda A, P: point_partition(A, max_clusters=1.5), TypeError, "max_clusters"),
        (lambda A, P: point_partition(P * 2), ValueError, r"\[0, 1\]"),
        (lambda A, P: point_partition(P[:3]), ValueError, "square"),
        (lambda A, P: point_partition(np.triu(P)), ValueError, "symmetric"),
        (lambda A, P: credible_ball(A, [0, 1]), ValueError, "rows"),
        (lambda A, P: credible_ball(A, np.zeros(A.shape[1]), prob=1.0), ValueError, "prob"),
        (lambda A, P: credible_ball(A, np.zeros(A.shape[1]), loss="VI_lb"), ValueError, "binder"),
        (lambda A, P: credible_ball(-A - 1, np.zeros(A.shape[1])), ValueError, "non-negative"),
        (lambda A, P: occupied_clusters(A[0]), ValueError, "2-D"),
        (lambda A, P: occupied_clusters(A + 0.5), ValueError, "integer"),
        (lambda A, P: similarity_matrix(A, max_points=1), ValueError, "max_points"),
        (lambda A, P: similarity_matrix(A, X=np.zeros((2, 2))), ValueError, "X"),
        (lambda A, P: partition_distance([0, 1], [0, 1, 2]), ValueError, "same rows"),
        (lambda A, P: partition_distance([0, 1], ["a", "b"]), TypeError, "integer"),
        (lambda A, P: bp.plot_similarity(P, order=[0]), ValueError, "order"),
        (lambda A, P: bp.plot_similarity(P, ax="ax"), TypeError, "Axes"),
    ],
)
def test_bad_arguments(call, error, match):
    A = np.random.default_rng(0).integers(0, 3, size=(5, 6))
    P = bp._psm_from_allocations(A).astype(float)
    with pytest.raises(error, match=match):
        call(A, P)


def test_bad_idata_and_points():
    X = load_faithful().to_numpy()
    idata = em_to_idata(GaussianMixtureEM(2, random_state=0).fit(X))  # no observed_data
    with pytest.raises(TypeError, match="InferenceData"):
        draw_allocations(X)
    with pytest.raises(ValueError, match="X is required"):
        partition_summary(idata)
    with pytest.raises(ValueError, match="features"):
        draw_allocations(idata, X[:, :1])
    with pytest.raises(ValueError, match="n_draws"):
        draw_allocations(idata, X, n_draws=0)
    with pytest.raises(TypeError, match="random_seed"):
        similarity_matrix(idata, X, random_seed="x")


# ------------------------------------------------------------------ simulated truth (MCMC)
def _fit_and_summarise(separation, seed, n=90):
    X, truth = make_mixture(n, n_components=3, n_features=2, random_state=seed, separation=separation)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = BayesianGMM(3).fit(X, draws=100, tune=100, chains=2, random_seed=seed, progressbar=False)
    result = partition_summary(idata, random_seed=seed)
    distance = partition_distance(truth.labels, result["point"].values)
    return distance, float(result["radius"]), result


def test_vi_to_truth_shrinks_as_separation_grows():
    # Seed 11 gives VI(truth, point) of about 1.56, 0.28 and 0 bits (1 cluster found at 1.0, then 3).
    found = {sep: _fit_and_summarise(sep, seed=11) for sep in (1.0, 1.25, 2.0)}
    distance = {sep: d for sep, (d, _, _) in found.items()}
    assert distance[1.0] >= distance[1.25] - 0.1 and distance[1.25] >= distance[2.0] - 0.1
    assert distance[2.0] < 0.1 and distance[1.0] > 0.5
    # Fast version of the coverage check: the truth is in the 95% ball once clusters are distinguishable.
    for sep in (1.25, 2.0):
        d, radius, result = found[sep]
        assert d <= radius + 1e-9, (sep, d, radius)
        assert result["n_clusters_probability"].sel(n_clusters_occupied=3) > 0.5


@pytest.mark.slow
def test_credible_ball_covers_the_truth_at_about_its_nominal_rate():
    hits = []
    for rep in range(30):
        d, radius, _ = _fit_and_summarise(2.0, seed=100 + rep, n=60)
        hits.append(d <= radius + 1e-9)
    coverage = float(np.mean(hits))
    print(f"credible ball (95%) coverage of the truth over 30 replications: {coverage:.2f}")
    assert coverage >= 0.8
