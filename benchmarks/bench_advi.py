"""Minibatch ADVI on a large problem, beside scikit-learn's variational mixture.

Problem (issue #3): N=100,000 points in 5-D from 4 well separated Gaussians.
Target: BayesianGMM(...).fit(method="advi") with default settings converges in
under a minute with every mean within 0.1 of the truth. The peer is
``sklearn.mixture.BayesianGaussianMixture`` (coordinate-ascent variational
Bayes), run on the same data in the same process.

Usage: python benchmarks/bench_advi.py [--n 100000]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from scipy.optimize import linear_sum_assignment


def max_mean_error(estimated: np.ndarray, truth: np.ndarray) -> float:
    cost = np.abs(estimated[:, None, :] - truth[None, :, :]).max(-1)
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    args = parser.parse_args()

    from sklearn.mixture import BayesianGaussianMixture

    from bayesgmm import BayesianGMM, PosteriorDiagnosticsWarning
    from bayesgmm.datasets import make_mixture

    X, truth = make_mixture(args.n, 4, 5, random_state=0, separation=6)

    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=PosteriorDiagnosticsWarning)  # the loss is reported below
        idata = BayesianGMM(4).fit(X, method="advi", random_seed=0, progressbar=False)
    ours = time.perf_counter() - start
    means = idata.posterior["means"].mean(("chain", "draw")).values
    history = idata.fit_history

    start = time.perf_counter()
    peer = BayesianGaussianMixture(n_components=4, random_state=0, max_iter=500).fit(X)
    theirs = time.perf_counter() - start

    print(f"N={args.n}, D=5, K=4 (well separated); target: < 60 s, every mean within 0.1 of the truth")
    print(f"{'variant':<44} {'seconds':>8} {'max |mean error|':>17} {'converged':>10}")
    print(f"{'bayesgmm minibatch ADVI':<44} {ours:8.1f} {max_mean_error(means, truth.means):17.3f} "
          f"{bool(history.attrs['converged'])!s:>10}  ({history.attrs['n_iterations']} iterations)")
    print(f"{'sklearn BayesianGaussianMixture':<44} {theirs:8.1f} {max_mean_error(peer.means_, truth.means):17.3f} "
          f"{bool(peer.converged_)!s:>10}  ({peer.n_iter_} iterations)")
    print(f"time ratio, sklearn / bayesgmm: {theirs / ours:.2f}x")


if __name__ == "__main__":
    main()
