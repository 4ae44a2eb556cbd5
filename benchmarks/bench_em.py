"""EM speed and memory: bayesgmm.GaussianMixtureEM against sklearn's GaussianMixture.

Both fit the same data from the same initial parameters for a fixed number of
iterations (tol=0). Seconds per iteration are the difference between a run of
1 + ITERS iterations and a run of 1, divided by ITERS, so start-up costs cancel.
Peak memory is the peak of NumPy allocations during a fit (tracemalloc), X excluded.

Usage: python benchmarks/bench_em.py [--n 1000000] [--d 10] [--k 8] [--iters 5] [--float32]
"""

from __future__ import annotations

import argparse
import time
import tracemalloc
import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

from bayesgmm import GaussianMixtureEM
from bayesgmm.datasets import make_mixture


def _fit(cls, X, cov_type, init, max_iter):
    model = cls(
        init["k"], covariance_type=cov_type, tol=0.0, max_iter=max_iter, init_params="random_from_data",
        weights_init=init["weights"], means_init=init["means"], precisions_init=init["precisions"],
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=ConvergenceWarning)  # a fixed number of passes
        start = time.perf_counter()
        model.fit(X)
        return time.perf_counter() - start, model


def _seconds_per_iteration(cls, X, cov_type, init, iters, repeats=2):
    best = np.inf
    for _ in range(repeats):
        t1, _ = _fit(cls, X, cov_type, init, 1)
        tn, model = _fit(cls, X, cov_type, init, 1 + iters)
        best = min(best, (tn - t1) / iters)
    return best, model


def _peak_bytes(cls, X, cov_type, init, iters):
    tracemalloc.start()
    _fit(cls, X, cov_type, init, 1 + iters)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--d", type=int, default=10)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--float32", action="store_true", help="also time our float32 path")
    args = parser.parse_args()

    X, _ = make_mixture(args.n, n_components=args.k, n_features=args.d, random_state=0, separation=3)
    print(f"N={args.n:,} D={args.d} K={args.k}, {args.iters} timed iterations (best of 2)")
    print(f"{'covariance':>10} {'impl':>16} {'s/iter':>9} {'peak MiB':>9}")
    for cov_type in ("full", "diag"):
        # Shared start: one sklearn iteration from random data points.
        start = GaussianMixture(args.k, covariance_type=cov_type, max_iter=1, init_params="random_from_data",
                                random_state=0)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=ConvergenceWarning)  # one iteration, on purpose
            start.fit(X[:20_000])
        init = {"k": args.k, "weights": start.weights_, "means": start.means_, "precisions": start.precisions_}
        rows = []
        for name, cls, data in (
            ("scikit-learn", GaussianMixture, X),
            ("bayesgmm", GaussianMixtureEM, X),
            *((("bayesgmm float32", GaussianMixtureEM, X.astype(np.float32)),) if args.float32 else ()),
        ):
            spi, model = _seconds_per_iteration(cls, data, cov_type, init, args.iters)
            peak = _peak_bytes(cls, data, cov_type, init, 1)
            rows.append((name, spi, peak, model))
            print(f"{cov_type:>10} {name:>16} {spi:9.3f} {peak / 2**20:9.1f}")
        sk, ours = rows[0], rows[1]
        gap = abs(sk[3].lower_bound_ - ours[3].lower_bound_) / abs(sk[3].lower_bound_)
        print(
            f"{cov_type:>10} speed-up {sk[1] / ours[1]:.2f}x per iteration; peak memory "
            f"{ours[2] / 2**20:.1f} vs {sk[2] / 2**20:.1f} MiB ({ours[2] / sk[2]:.2f}x); "
            f"lower bounds agree to {gap:.1e} relative"
        )


if __name__ == "__main__":
    main()
