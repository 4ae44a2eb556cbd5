"""Speed and memory of assignments() and predictive_density() on a large posterior.

2,000 draws x 10,000 points x K=5 in D=2 (target: each under 10 s with bounded
memory). The posterior is synthetic (draws scattered around a fitted EM solution),
so no sampling is timed. Peak memory is NumPy's, from tracemalloc.

Usage: python benchmarks/bench_summaries.py [--draws 2000] [--points 10000] [--k 5]
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

import arviz as az
import numpy as np

from bayesgmm import GaussianMixtureEM, assignments, predictive_density
from bayesgmm.datasets import make_mixture


def synthetic_posterior(X, k, draws, seed=0):
    em = GaussianMixtureEM(k, random_state=seed).fit(X)
    rng = np.random.default_rng(seed)
    weights = rng.dirichlet(em.weights_ * 2000, size=(1, draws))
    means = em.means_[None, None] + rng.normal(0, 0.02, size=(1, draws) + em.means_.shape)
    chol = np.broadcast_to(np.linalg.cholesky(em.covariances_), (1, draws) + em.covariances_.shape).copy()
    post = {"weights": weights, "means": means, "chol": chol}
    dims = {"weights": ["component"], "means": ["component", "feature"],
            "chol": ["component", "feature", "feature_bis"]}
    idata = az.from_dict(posterior=post, dims=dims)
    idata.posterior.attrs["relabel_permuted_per_chain"] = [0]  # consistent labels by construction
    return idata


def measure(fn):
    tracemalloc.start()
    start = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return elapsed, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=int, default=2000)
    parser.add_argument("--points", type=int, default=10_000)
    parser.add_argument("--k", type=int, default=5)
    args = parser.parse_args()
    X, _ = make_mixture(args.points, n_components=args.k, n_features=2, random_state=0)
    idata = synthetic_posterior(X, args.k, args.draws)
    naive = args.draws * args.points * args.k * 2 * 8
    print(f"{args.draws} draws x {args.points} points x K={args.k}, D=2 "
          f"(a (draws, N, K, D) float64 array would be {naive / 2**20:.0f} MiB)")
    for name, fn in (("assignments", lambda: assignments(idata, X)),
                     ("predictive_density", lambda: predictive_density(idata, X))):
        elapsed, peak = measure(fn)
        print(f"{name:>20}: {elapsed:6.2f} s, peak {peak / 2**20:6.1f} MiB (target < 10 s)")


if __name__ == "__main__":
    main()
