"""Mean-field and full-rank ADVI against NUTS on a well-separated mixture (issue #11, point 4).

Problem: ``make_mixture(300, 3, 2, random_state=seed)`` (K=3, D=2, N=300, well
separated), seeds 0-4, package defaults for every method (NUTS: nutpie, 4 chains
sampling until the diagnostics pass; ADVI: 1000 draws from the fitted approximation).
For weights, means, sds and correlations (data units; NUTS's draws relabelled first,
since a chain may settle in another labelling; ADVI's components matched to NUTS's
by their means) it prints, per seed and method:

* ``max|dmean|/sd``: the largest |ADVI mean - NUTS mean| in NUTS posterior sds;
* ``sd ratio``: the range of ADVI sd / NUTS sd;
* the wall time, whether the fit reports convergence, the Pareto k-hat of its
  importance-sampling check and its verdict (:func:`bayesgmm.assess`).

``--dataset faithful --k 3`` runs the same comparison on the bundled Old Faithful
data (clusters that overlap at K=3; the seed changes only the fits' seeds).

Target for full-rank ADVI: max|dmean|/sd <= 0.5 and sd ratio within [0.5, 2] on
5 of 5 seeds.

Usage: python benchmarks/bench_vi.py [--seeds 0 1 2 3 4] [--n 300] [--dataset mixture|faithful] [--k 3]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
from scipy.optimize import linear_sum_assignment

QUANTITIES = ("weights", "means", "stds", "corr")


def draws_of(idata) -> dict[str, np.ndarray]:
    """(S, K, ...) draws of every compared quantity; corr as its off-diagonal pairs."""
    post = idata.posterior
    out = {}
    for name in QUANTITIES:
        values = post[name].stack(sample=("chain", "draw")).transpose("sample", ...).values
        if name == "corr":
            rows, cols = np.triu_indices(values.shape[-1], 1)
            values = values[..., rows, cols]
        out[name] = values
    return out


def compare(approx: dict, reference: dict) -> tuple[float, float, float]:
    """Max |mean difference| / reference sd, and min and max sd ratio, after matching components."""
    cost = ((approx["means"].mean(0)[:, None, :] - reference["means"].mean(0)[None]) ** 2).sum(-1)
    rows, cols = linear_sum_assignment(cost)
    order = rows[np.argsort(cols)]  # approx component matched to reference component k
    z, ratio = [], []
    for name in QUANTITIES:
        a, b = approx[name][:, order], reference[name]
        z.append((np.abs(a.mean(0) - b.mean(0)) / b.std(0)).ravel())
        ratio.append((a.std(0) / b.std(0)).ravel())
    z, ratio = np.concatenate(z), np.concatenate(ratio)
    return float(z.max()), float(ratio.min()), float(ratio.max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--dataset", choices=["mixture", "faithful"], default="mixture")
    parser.add_argument("--k", type=int, default=3)
    args = parser.parse_args()

    from bayesgmm import BayesianGMM, PosteriorDiagnosticsWarning, assess, relabel
    from bayesgmm.datasets import load_faithful, make_mixture

    K = args.k
    if args.dataset == "faithful":
        print(f"Old Faithful (272 x 2), K={K}; defaults for every method")
    else:
        print(f"make_mixture({args.n}, 3, 2): K=3, D=2, well separated, fitted with K={K}; defaults for every method")
    print(f"{'seed':>4} {'method':<14} {'seconds':>8} {'iterations':>10} {'converged':>9} {'max|dmean|/sd':>13} "
          f"{'sd ratio':>14} {'k-hat':>5} {'verdict':>10}  target")
    passed = {"advi": 0, "fullrank_advi": 0}
    for seed in args.seeds:
        X = load_faithful().to_numpy() if args.dataset == "faithful" else make_mixture(args.n, 3, 2,
                                                                                        random_state=seed)[0]
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=PosteriorDiagnosticsWarning)  # divergences printed below
            start = time.perf_counter()
            nuts = BayesianGMM(K).fit(X, random_seed=seed, progressbar=False)
            nuts_time = time.perf_counter() - start
        n_div = int(nuts.sample_stats["diverging"].sum())
        print(f"{seed:>4} {'nuts':<14} {nuts_time:8.1f} {'':>10} {'':>9} {'(reference)':>13} {'':>14} {'':>5} "
              f"{assess(nuts).label:>10}  {n_div} divergences")
        # Label-invariant diagnostics pass with one of the 4 chains in another labelling (seed 0
        # here): unrelabelled, its averaged means made NUTS's sds 50-100x too wide.
        reference = draws_of(relabel(nuts))
        for method in ("advi", "fullrank_advi"):
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                start = time.perf_counter()
                idata = BayesianGMM(K).fit(X, method=method, random_seed=seed, progressbar=False)
                seconds = time.perf_counter() - start
            z, low, high = compare(draws_of(idata), reference)
            ok = z <= 0.5 and 0.5 <= low and high <= 2.0
            passed[method] += ok
            attrs = idata.fit_history.attrs
            noted = [str(w.message).split("(")[0] for w in caught if "did not converge" in str(w.message)]
            print(f"{seed:>4} {method:<14} {seconds:8.1f} {attrs['n_iterations']:>10} "
                  f"{bool(attrs['converged'])!s:>9} {z:13.2f} {f'[{low:.2f}, {high:.2f}]':>14} "
                  f"{attrs['pareto_k']:5.2f} {assess(idata).label:>10}  "
                  f"{'ok' if ok else 'MISSED'}{'  warned: ' + noted[0] if noted else ''}")
    n = len(args.seeds)
    print(f"within 0.5 NUTS sds and 0.5-2x NUTS sds: mean-field {passed['advi']}/{n}, "
          f"full-rank {passed['fullrank_advi']}/{n} (target: full-rank {n}/{n})")


if __name__ == "__main__":
    main()
