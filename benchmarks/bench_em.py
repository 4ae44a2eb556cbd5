"""EM speed and memory: bayesgmm.GaussianMixtureEM against sklearn's GaussianMixture.

Both fit the same data from the same initial parameters for a fixed number of
iterations (tol=0). Seconds per iteration are the difference between a run of
1 + ITERS iterations and a run of 1, divided by ITERS, so start-up costs cancel.
Our passes take a few hundredths of a second beside a start-up of about one (checks,
standardising X), so ours run OUR_ITERS iterations: over 10, the start-up's noise
alone moved float32 against float64 by 0.5x either way.
Peak memory is the peak of NumPy allocations during a fit (tracemalloc), X excluded.

Prints every covariance type, float64 and float32, scikit-learn beside us, the ratios,
and for full covariances the distance to the arithmetic limit measured on this machine.

Usage: python benchmarks/bench_em.py [--n 1000000] [--d 10] [--k 8] [--iters 10] [--our-iters 60]
       [--types full diag]
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
    # Plain EM passes on our side too: SQUAREM changes how many passes a run makes.
    extra = {"acceleration": None} if cls is GaussianMixtureEM else {}
    model = cls(
        init["k"], covariance_type=cov_type, tol=0.0, max_iter=max_iter, init_params="random_from_data",
        weights_init=init["weights"], means_init=init["means"], precisions_init=init["precisions"],
        random_state=0, **extra,
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=ConvergenceWarning)  # a fixed number of passes
        start = time.perf_counter()
        model.fit(X)
        return time.perf_counter() - start, model


def _seconds_per_iteration(cls, X, cov_type, init, iters, repeats=3):
    # The best of each run length separately: start-up (checks, standardising X) is
    # noisy and would otherwise swamp a few fast iterations.
    short = long = np.inf
    for _ in range(repeats):
        short = min(short, _fit(cls, X, cov_type, init, 1)[0])
        t_long, model = _fit(cls, X, cov_type, init, 1 + iters)
        long = min(long, t_long)
    return (long - short) / iters, model


def _peak_bytes(cls, X, cov_type, init, iters):
    tracemalloc.start()
    _fit(cls, X, cov_type, init, 1 + iters)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def _gemm_flops_per_second(dtype, size: int = 2000) -> float:
    """This machine's measured matrix-product rate (all cores), for the arithmetic limit."""
    a = np.random.default_rng(0).standard_normal((size, size)).astype(dtype)
    a @ a
    best = np.inf
    for _ in range(3):
        start = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def _warm_up(cls, X, cov_type, init) -> None:
    """One short fit first, so that no timed run pays for imports or the kernels' compilation."""
    _fit(cls, X[:2000], cov_type, init, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--d", type=int, default=10)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--iters", type=int, default=10, help="timed iterations of scikit-learn")
    parser.add_argument("--our-iters", type=int, default=60, help="timed iterations of ours")
    parser.add_argument("--types", nargs="+", default=["full", "tied", "diag", "spherical"])
    parser.add_argument("--no-float32", action="store_true", help="skip our float32 path")
    args = parser.parse_args()

    X, _ = make_mixture(args.n, n_components=args.k, n_features=args.d, random_state=0, separation=3)
    # Standardised features: our spherical model is spherical on that scale (scikit-learn's
    # in data units), so on raw features the two would fit different models.
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    n, d, k = args.n, args.d, args.k
    # Full covariances: whitening is N x D x (K D) multiply-adds and the weighted second
    # moment about as many again: 2 N K D^2 multiply-adds, 4 N K D^2 flops.
    limit = {np.dtype(dt).name: 4 * n * k * d * d / _gemm_flops_per_second(dt) for dt in (np.float64, np.float32)}
    print(f"N={n:,} D={d} K={k}, {args.iters} timed iterations of scikit-learn and {args.our_iters} of ours "
          f"(best of 3); arithmetic limit of one full "
          f"iteration (4 N K D^2 flops at this machine's measured matrix-product rate): "
          f"{limit['float64']:.3f} s float64, {limit['float32']:.3f} s float32")
    print(f"{'covariance':>10} {'impl':>16} {'s/iter':>9} {'peak MiB':>9}")
    for cov_type in args.types:
        # Shared start: one sklearn iteration from random data points.
        start = GaussianMixture(k, covariance_type=cov_type, max_iter=1, init_params="random_from_data",
                                random_state=0)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=ConvergenceWarning)  # one iteration, on purpose
            start.fit(X[:20_000])
        init = {"k": k, "weights": start.weights_, "means": start.means_, "precisions": start.precisions_}
        rows = {}
        for name, cls, data in (
            ("scikit-learn", GaussianMixture, X),
            ("bayesgmm", GaussianMixtureEM, X),
            *((("bayesgmm float32", GaussianMixtureEM, X.astype(np.float32)),) if not args.no_float32 else ()),
        ):
            _warm_up(cls, data, cov_type, init)
            iters = args.our_iters if cls is GaussianMixtureEM else args.iters
            spi, model = _seconds_per_iteration(cls, data, cov_type, init, iters)
            if iters != args.iters:  # lower bounds are compared after the same number of passes
                model = _fit(cls, data, cov_type, init, 1 + args.iters)[1]
            peak = _peak_bytes(cls, data, cov_type, init, 1)
            rows[name] = (spi, peak, model)
            print(f"{cov_type:>10} {name:>16} {spi:9.3f} {peak / 2**20:9.1f}")
        sk, ours = rows["scikit-learn"], rows["bayesgmm"]
        gap = abs(sk[2].lower_bound_ - ours[2].lower_bound_) / abs(sk[2].lower_bound_)
        line = (f"{cov_type:>10} speed-up vs scikit-learn {sk[0] / ours[0]:.2f}x (float64)")
        if "bayesgmm float32" in rows:
            f32 = rows["bayesgmm float32"]
            agree = abs(f32[2].lower_bound_ - ours[2].lower_bound_) / abs(ours[2].lower_bound_)
            line += (f", {sk[0] / f32[0]:.2f}x (float32); float32 {ours[0] / f32[0]:.2f}x faster than float64, "
                     f"lower bounds agree to {agree:.1e}")
        print(line)
        print(f"{'':>10} peak memory {ours[1] / 2**20:.1f} vs {sk[1] / 2**20:.1f} MiB ({ours[1] / sk[1]:.2f}x); "
              f"lower bound vs scikit-learn's {gap:.1e} relative")
        if cov_type == "full":
            dist = f"{ours[0] / limit['float64']:.1f}x the float64 limit"
            if "bayesgmm float32" in rows:
                dist += f", {rows['bayesgmm float32'][0] / limit['float32']:.1f}x the float32 limit"
            print(f"{'':>10} distance to the arithmetic limit: {dist}")


if __name__ == "__main__":
    main()
