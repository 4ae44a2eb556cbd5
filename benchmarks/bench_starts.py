"""EM starts, acceleration and model-selection speed against scikit-learn, on real data.

Prints three tables, every figure measured in this run:

1. For each dataset, K and covariance type: the log-likelihood our default start
   reaches (``init_params="auto"``) and its time, beside EM from the hierarchical
   start alone, EM from the best of 10 k-means runs (the partition's weights, means
   and covariances, as scikit-learn's k-means start computes them), scikit-learn's default
   ``GaussianMixture`` and scikit-learn with ``n_init=10`` (all at tol=1e-6).
   Log-likelihoods are shown relative to the best non-degenerate fit of the three
   classic starts (hierarchical, k-means-10, scikit-learn's default); "D" marks a
   fit with a collapsed component (smallest eigenvalue below 2e-6 on the
   standardised scale), which model selection rejects.
2. SQUAREM: EM passes to tol=1e-6 from the same start with and without it.
3. ``select_model`` over K=1..9 x 4 types beside the same scikit-learn grid (best of 3
   alternating runs each, and the range of the 3 ratios).
4. The same on simulated data larger than the bundled sets (5,000 x 10 and 20,000 x 5).

Every dataset is standardised, so that ``spherical`` means the same model for
scikit-learn and for us (ours is spherical on the standardised scale).

Run on a quiet machine: ``python benchmarks/bench_starts.py [--quick]``.
"""

from __future__ import annotations

import argparse
import os
import time
import warnings

import numpy as np
from sklearn.cluster import KMeans
from sklearn.datasets import load_breast_cancer, load_digits, load_iris, load_wine
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture
from threadpoolctl import threadpool_limits

from bayesgmm import DegenerateFitWarning, GaussianMixtureEM, select_model
from bayesgmm.covariance import get_covariance_type
from bayesgmm.datasets import load_faithful
from bayesgmm.initialization import _PARTITION_CACHE, _TREE_CACHE

TYPES = ("full", "tied", "diag", "spherical")
TOL = 1e-6


def datasets(quick: bool) -> dict[str, np.ndarray]:
    def std(X):
        return (X - X.mean(axis=0)) / X.std(axis=0)

    data = {"faithful": std(load_faithful().to_numpy()), "iris": std(load_iris().data)}
    if not quick:
        data.update(
            wine=std(load_wine().data),
            breast_cancer=std(load_breast_cancer().data),
            digits_pca5=std(PCA(5, random_state=0).fit_transform(load_digits().data)),
        )
    return data


def degenerate(model, K: int, cov_type: str, D: int) -> bool:
    covs = getattr(model, "full_covariances_", None)
    if covs is None:
        covs = get_covariance_type(cov_type).full_matrices(model.covariances_, K, D)
    return bool(np.linalg.eigvalsh(covs)[:, 0].min() < 2e-6)


def timed(make, X):
    start = time.perf_counter()
    model = make().fit(X)
    return model, time.perf_counter() - start


def kmeans10_start(X, K: int, cov: str, reg_covar: float = 1e-6) -> dict:
    """EM's start from the best of 10 k-means runs: the partition's weights, means and covariances.

    As scikit-learn's ``init_params="kmeans"`` computes them (one M-step on the hard
    partition, ``reg_covar`` on the diagonal), with ``n_init=10`` k-means runs.
    """
    labels = KMeans(K, n_init=10, random_state=0).fit(X).labels_
    resp = np.eye(K)[labels]
    nk = resp.sum(axis=0)
    means = resp.T @ X / nk[:, None]
    diff = X[None, :, :] - means[:, None, :]  # (K, N, D)
    full = np.einsum("nk,kni,knj->kij", resp, diff, diff) / nk[:, None, None] + reg_covar * np.eye(X.shape[1])
    if cov == "full":
        precisions = np.linalg.inv(full)
    elif cov == "tied":
        pooled = np.einsum("nk,kni,knj->ij", resp, diff, diff) / len(X) + reg_covar * np.eye(X.shape[1])
        precisions = np.linalg.inv(pooled)
    elif cov == "diag":
        precisions = 1.0 / np.diagonal(full, axis1=1, axis2=2)
    else:  # spherical
        precisions = 1.0 / np.diagonal(full, axis1=1, axis2=2).mean(axis=1)
    return {"weights_init": nk / len(X), "means_init": means, "precisions_init": precisions}


def _makers(X, K: int, cov: str) -> dict:
    return {
        "auto": lambda: GaussianMixtureEM(K, covariance_type=cov, random_state=0),
        "hier": lambda: GaussianMixtureEM(K, covariance_type=cov, init_params="hierarchical"),
        # Seeded: the weights and covariances that go with means_init come from a start
        # that would otherwise be random, so this column changed between runs.
        # The user start replaces every parameter, so the (cheap) init_params is never used.
        "km10": lambda: GaussianMixtureEM(K, covariance_type=cov, random_state=0, init_params="random_from_data",
                                          **kmeans10_start(X, K, cov)),
        "skl": lambda: GaussianMixture(K, covariance_type=cov, tol=TOL, max_iter=1000, random_state=0),
        "skl10": lambda: GaussianMixture(K, covariance_type=cov, tol=TOL, max_iter=1000, n_init=10, random_state=0),
    }


def start_table(data, ks) -> None:
    print("\n1. Optimum reached (log-likelihood minus the best non-degenerate classic start) and time")
    print(f"{'dataset':14s} {'type':9s} {'K':>2s} | {'ours (auto)':>17s} | {'hierarchical':>17s} | {'k-means-10':>17s} "
          f"| {'sklearn':>17s} | {'sklearn n_init=10':>17s}")
    totals = dict.fromkeys(("auto", "hier", "km10", "skl", "skl10"), 0.0)
    reached = cells = 0
    for name, X in data.items():
        for cov in TYPES:
            for K in ks:
                makers = _makers(X, K, cov)
                row = {}
                for label, make in makers.items():
                    model, seconds = timed(make, X)
                    totals[label] += seconds
                    row[label] = (model.score(X) * len(X), seconds, degenerate(model, K, cov, X.shape[1]))
                classic = [row[k] for k in ("hier", "km10", "skl")]
                proper = [ll for ll, _, bad in classic if not bad]
                best = max(proper) if proper else max(ll for ll, _, _ in classic)
                ok = row["auto"][0] >= best - 1e-6 * abs(best) - 1e-3 or (not proper and not row["auto"][2])
                reached += ok
                cells += 1
                cells_text = " | ".join(f"{ll - best:+9.2f}{'D' if bad else ' '} {seconds * 1e3:5.0f}ms"
                                        for ll, seconds, bad in row.values())
                print(f"{name:14s} {cov:9s} {K:2d} | {cells_text} {'' if ok else ' <- below the best classic start'}")
    print(f"ours reaches the best non-degenerate classic start in {reached} of {cells} cells")
    print("total seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in totals.items())
          + f"; ours / sklearn n_init=10 = {totals['auto'] / totals['skl10']:.2f}")


def squarem_table(data, ks) -> None:
    print("\n2. EM passes to tol=1e-6 from the same k-means++ start: plain EM vs SQUAREM")
    plain_total = fast_total = 0
    worse = 0
    for name, X in data.items():
        for cov in TYPES:
            for K in ks:
                start = GaussianMixtureEM(K, covariance_type=cov, init_params="k-means++", random_state=0,
                                          max_iter=1).fit(X)
                init = dict(weights_init=start.weights_, means_init=start.means_, precisions_init=start.precisions_,
                            covariance_type=cov, max_iter=5000)
                plain = GaussianMixtureEM(K, acceleration=None, **init).fit(X)
                fast = GaussianMixtureEM(K, acceleration="squarem", **init).fit(X)
                plain_total += plain.n_iter_
                fast_total += fast.n_iter_
                gap = (fast.lower_bound_ - plain.lower_bound_) * len(X)
                worse += gap < -1e-2
                print(f"{name:14s} {cov:9s} K={K}: plain {plain.n_iter_:5d}, SQUAREM {fast.n_iter_:5d}, "
                      f"log-likelihood difference {gap:+.4f}")
    print(f"total passes: plain {plain_total}, SQUAREM {fast_total} (ratio {plain_total / fast_total:.2f}); "
          f"fits where SQUAREM ended lower by > 0.01: {worse}")


def _sklearn_grid(X) -> tuple[float, dict]:
    """scikit-learn's GaussianMixture for every K x type with its defaults: seconds and BICs."""
    start = time.perf_counter()
    bics = {}
    for cov in TYPES:
        for K in range(1, 10):
            gm = GaussianMixture(K, covariance_type=cov, random_state=0).fit(X)
            bics[(K, cov)] = gm.bic(X)
    return time.perf_counter() - start, bics


def selection_table(data, repeats: int = 3) -> None:
    print(f"\n3. select_model over K=1..9 x 4 types vs the same scikit-learn grid (its defaults); "
          f"best of {repeats} alternating runs, our k-means and tree caches cleared before each.\n"
          "   scikit-learn is timed with OpenBLAS's default threads and with one BLAS thread (on some "
          "machines its tied fits are\n   10-20x slower with two threads); the ratio is to the faster of the two. "
          f"Ours runs with its defaults: the grid's fits on one thread per core ({os.cpu_count()} here).")
    for name, X in data.items():
        _compare_grids(f"{name:14s}", X, repeats)


def _compare_grids(label: str, X: np.ndarray, repeats: int) -> None:
    """Print select_model's time beside the scikit-learn grid's (both thread settings), alternating runs."""
    t_ours, t_skl, t_skl1 = [], [], []
    for _ in range(repeats):
        _PARTITION_CACHE.clear()  # every run computes its starts and tree, as a fresh process would
        _TREE_CACHE.clear()
        start = time.perf_counter()
        ours = select_model(X, n_components=range(1, 10), random_state=0)
        t_ours.append(time.perf_counter() - start)
        seconds, bics = _sklearn_grid(X)
        t_skl.append(seconds)
        with threadpool_limits(1, user_api="blas"):
            t_skl1.append(_sklearn_grid(X)[0])
    skl_best = min(bics, key=bics.get)
    peer = np.minimum(t_skl, t_skl1)
    ratios = np.array(t_ours) / peer
    print(f"{label} ours {min(t_ours):6.2f}s (BIC: K={ours.best_params_['n_components']} "
          f"{ours.best_params_['covariance_type']}), sklearn {min(t_skl):6.2f}s / one BLAS thread "
          f"{min(t_skl1):6.2f}s (BIC: K={skl_best[0]} {skl_best[1]}), ours/sklearn {min(t_ours) / peer.min():.2f} "
          f"(per run {ratios.min():.2f}-{ratios.max():.2f})")


def larger_data_table(repeats: int = 2) -> None:
    """select_model on simulated data larger than the bundled sets, beside the same scikit-learn grid."""
    from bayesgmm.datasets import make_mixture

    print("\n4. select_model over K=1..9 x 4 types on simulated data (4 true components), best of "
          f"{repeats} alternating runs, against the same scikit-learn grid (default threads / one BLAS thread)")
    for n, d in ((5_000, 10), (20_000, 5)):
        X = np.asarray(make_mixture(n, n_components=4, n_features=d, random_state=0)[0], dtype=float)
        _compare_grids(f"N={n:6d} D={d:2d} ", X, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two small datasets, K in {2, 3}")
    parser.add_argument("--tables", default="1234", help="which tables to print, e.g. 3")
    args = parser.parse_args()
    # Degenerate and unconverged fits are counted in the tables, not warned about one by one.
    for category in (ConvergenceWarning, DegenerateFitWarning):
        warnings.filterwarnings("ignore", category=category)
    data = datasets(args.quick)
    ks = (2, 3) if args.quick else (2, 3, 4, 6)
    if "1" in args.tables:
        start_table(data, ks)
    if "2" in args.tables:
        squarem_table(data, ks)
    if "3" in args.tables:
        selection_table(data)
    if "4" in args.tables and not args.quick:
        larger_data_table()


if __name__ == "__main__":
    main()
