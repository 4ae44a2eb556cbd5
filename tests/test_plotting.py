import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import PathCollection, PolyCollection  # noqa: E402
from matplotlib.patches import Ellipse  # noqa: E402

from bayesgmm import (  # noqa: E402
    GaussianMixtureEM,
    assignments,
    em_to_idata,
    marginal_density,
    predictive_density,
    relabel,
    select_model,
)
from bayesgmm import plotting as bp  # noqa: E402


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def fitted(three_blobs, three_blob_fit):
    X, _ = three_blobs
    _, idata = three_blob_fit
    em = GaussianMixtureEM(3, random_state=0).fit(X)
    aligned = relabel(idata, reference=em)
    return X, em, aligned, assignments(aligned, X, relabel_draws=False)


def test_plot_clusters_draws_points_and_ellipses(fitted):
    X, em, idata, assign = fitted
    fig, ax = plt.subplots()
    out = bp.plot_clusters(X, assign, idata=idata, em=em, n_draws=4, ax=ax)
    assert out is ax
    scatter = [c for c in ax.collections if isinstance(c, PathCollection)]
    assert len(scatter) == 1 and len(scatter[0].get_offsets()) == len(X)
    ellipses = [p for p in ax.patches if isinstance(p, Ellipse)]
    # per component: posterior 1+2 sigma, 4 draws, EM 1+2 sigma
    assert len(ellipses) == 3 * (2 + 4 + 2)
    alphas = scatter[0].get_facecolors()[:, 3]
    assert alphas.min() < alphas.max()  # opacity carries certainty


def test_plot_density_1d_band_line_and_rug(fitted):
    X, em, idata, _ = fitted
    grid = np.linspace(X[:, 0].min() - 3, X[:, 0].max() + 3, 200)
    dens = marginal_density(idata, 0, grid)
    ax = bp.plot_density_1d(dens, X=X[:, 0], em_density=np.ones_like(grid) * 0.01)
    assert any(isinstance(c, PolyCollection) for c in ax.collections)  # the band
    assert len(ax.lines) == 3  # posterior, EM, rug
    np.testing.assert_allclose(ax.lines[0].get_ydata(), dens["density"].values)


def test_plot_weights_uncertainty_selection_loo(fitted, three_blobs):
    X, em, idata, assign = fitted
    assert bp.plot_weights(idata, em=em).get_xlabel() == "component"
    ax = bp.plot_uncertainty(assign)
    heights = [p.get_height() for p in ax.patches]
    assert sum(heights) == len(X)
    table = select_model(X, range(1, 4), covariance_types=("full", "diag")).table
    ax = bp.plot_selection(table)
    assert len(ax.lines) == 2
    np.testing.assert_allclose(sorted(ax.lines[0].get_ydata()), sorted(table[table.covariance_type == "diag"].bic))
    loo_table = table.assign(elpd_loo=-table["bic"] / 2, se=1.0).query("covariance_type == 'full'")
    assert bp.plot_loo(loo_table).get_ylabel().startswith("elpd")


def test_plot_pairs_and_trace(fitted):
    X, _, idata, assign = fitted
    marg = {j: marginal_density(idata, j, np.linspace(X[:, j].min(), X[:, j].max(), 50)) for j in range(2)}
    fig = bp.plot_pairs(X, assign, marg)
    assert len(fig.axes) == 4
    axes = bp.plot_trace(idata)
    assert axes.shape[1] == 2


def render_baseline_figure(path):
    """A 1-D density figure from a fixed (one-draw) posterior, no text, fixed size."""
    rng = np.random.default_rng(0)
    X = np.r_[rng.normal(0, 1, 60), rng.normal(5, 0.7, 40)][:, None]
    em = GaussianMixtureEM(2, random_state=0).fit(X)
    grid = np.linspace(-4, 8, 120)[:, None]
    dens = predictive_density(em_to_idata(em), grid)
    fig, ax = plt.subplots(figsize=(4, 3), dpi=60)
    bp.plot_density_1d(dens, X=X, em_density=np.exp(em.score_samples(grid)), ax=ax)
    ax.get_legend().remove()
    ax.set_xticks([]), ax.set_yticks([]), ax.set_ylabel("")
    fig.savefig(path)
    return ax


def test_figure_matches_baseline_image(tmp_path):
    from pathlib import Path

    from matplotlib.testing.compare import compare_images

    render_baseline_figure(tmp_path / "result.png")
    baseline = Path(__file__).with_name("baseline") / "density_1d.png"
    assert compare_images(str(baseline), str(tmp_path / "result.png"), tol=5) is None


# ------------------------------------------------------------------ many features
@pytest.fixture(scope="module")
def wide():
    """Six named features of very different scales: two separate the three blobs, four are noise."""
    import pandas as pd

    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1, 2], 40)
    frame = pd.DataFrame({
        "noise_a": rng.normal(0, 1, 120), "split_small": labels * 0.01 + rng.normal(0, 0.002, 120),
        "noise_b": rng.normal(0, 50, 120), "split_big": labels * 1000.0 + rng.normal(0, 150, 120),
        "noise_c": rng.normal(5, 2, 120), "noise_d": rng.normal(0, 1e-3, 120),
    })
    em = GaussianMixtureEM(3, covariance_type="diag", random_state=0).fit(frame)
    return frame, em, assignments(em_to_idata(em), frame.to_numpy())


def test_feature_ranking_is_unitless_and_puts_separating_features_first(wide):
    frame, em, _ = wide
    ranking = bp.feature_ranking(em, names=list(frame.columns))
    assert set(ranking.index[:2]) == {"split_small", "split_big"}
    assert list(ranking["rank"]) == list(range(1, 7))
    assert (np.diff(ranking["separation"]) <= 0).all()
    scaled = GaussianMixtureEM(3, covariance_type="diag", random_state=0).fit(frame * [1, 1e3, 1, 1e-3, 1, 1])
    np.testing.assert_allclose(bp.feature_ranking(scaled, names=list(frame.columns))["separation"].sort_index(),
                               ranking["separation"].sort_index(), rtol=1e-3)
    with pytest.raises(ValueError, match="name the 6 features"):
        bp.feature_ranking(em, names=["a"])


def test_projection_then_plot_projection(wide):
    frame, _, assign = wide
    proj = bp.projection(frame)
    assert proj["scores"].shape == (120, 2) and list(proj["feature"].values) == list(frame.columns)
    assert 0 < float(proj["explained_variance_ratio"].sum()) <= 1
    ax = bp.plot_projection(proj, assign)
    assert ax.get_xlabel().startswith("PC1") and "split_" in ax.get_xlabel()  # names the leading features
    assert len(ax.collections[0].get_offsets()) == 120
    fig, given = plt.subplots()
    assert bp.plot_projection(proj, assign, ax=given) is given
    with pytest.raises(ValueError, match="rows"):
        bp.plot_projection(proj, assign.isel(obs_id=slice(0, 10)))


def test_plot_pairs_draws_chosen_features_with_their_names(wide):
    frame, em, assign = wide
    fig = bp.plot_pairs(frame, assign, {}, features=["split_big", "split_small", "noise_a"])
    assert len(fig.axes) == 9
    labels = " ".join(ax.get_xlabel() + " " + ax.get_ylabel() for ax in fig.axes)
    for name in ("split_big", "split_small", "noise_a"):
        assert name in labels
    assert "feature" not in labels and "noise_b" not in labels
    with pytest.raises(ValueError, match="not a feature"):
        bp.plot_pairs(frame, assign, {}, features=["nope"])
    with pytest.raises(ValueError, match="distinct"):
        bp.plot_pairs(frame, assign, {}, features=[0, 0])


def test_plot_clusters_names_axes_from_a_frame(wide):
    frame, em, assign = wide
    ax = bp.plot_clusters(frame, assign, em=em, features=("split_big", "noise_c"))
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("split_big", "noise_c")


@pytest.mark.filterwarnings("ignore::UserWarning")  # ArviZ on a one-draw posterior
def test_plot_trace_one_row_per_feature_bounded(wide):
    frame, em, _ = wide
    idata = em_to_idata(em)
    idata.posterior = idata.posterior.assign_coords(feature=list(frame.columns))
    axes = bp.plot_trace(idata, features=["split_big", "split_small"])
    titles = [ax.get_title() for ax in axes[:, 0]]
    assert titles == ["weights", "means[split_big]", "means[split_small]"]
    axes = bp.plot_trace(idata, max_features=3)
    assert axes.shape[0] == 1 + 3
