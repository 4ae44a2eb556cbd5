"""NUTS where clusters overlap: Old Faithful, K=3 and K=4, full covariances, many seeds.

The table of issue #11: for every (K, seed) one ``BayesianGMM(K).fit(X)`` on the
bundled Old Faithful data with the package's defaults (or the settings given with
``--set``), and the figures :func:`bayesgmm.diagnostics.assess` reads from it:

* divergent transitions (count and % of draws); "1st" is the first run's count
  when ``fit`` sampled twice (``retry_on_divergence``, on by default; "*" marks that
  the first run was kept, having fewer), "-" when one run sufficed;
* the worst rank-normalised split R-hat and the smallest bulk ESS over the
  label-invariant quantities (the total log-likelihood per draw and the relabelled
  weights and means), and the same two on the log-likelihood alone;
* wall time of the whole fit (EM start, compile, warm-up, draws);
* the verdict's first line.

A summary row per K gives the runs meeting each target (divergences <= 0.1% of
draws; R-hat <= 1.01 and bulk ESS >= 400 on the log-likelihood and on the relabelled
weights and means) and the median wall time.

Usage::

    python benchmarks/bench_overlap.py                       # K=3,4 x 8 seeds, defaults
    python benchmarks/bench_overlap.py --set target_accept=0.8 --set chains=2   # compare settings
    python benchmarks/bench_overlap.py --n-jobs 8 --json out.jsonl   # many cores: fits in parallel

Fits run in worker processes (one per job; each fit's chains use ``cores=chains``),
so times are comparable only between runs with the same ``--n-jobs`` on the same
machine. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import statistics
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor

DIV_MAX_PCT = 0.1
RHAT_MAX = 1.01
ESS_MIN = 400


def one_fit(K: int, seed: int, settings: dict, covariance: str, priors: dict | None = None) -> dict:
    from bayesgmm import BayesianGMM, PosteriorDiagnosticsWarning
    from bayesgmm.datasets import load_faithful
    from bayesgmm.diagnostics import assess

    X = load_faithful()
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PosteriorDiagnosticsWarning)  # the figures are printed below
        model = BayesianGMM(K, covariance_type=covariance, priors=priors or None)
        idata = model.fit(X, random_seed=seed, progressbar=False, **settings)
    seconds = time.perf_counter() - start
    verdict = assess(idata)
    m = verdict.metrics
    from bayesgmm.diagnostics import _rhat_ess, _total_log_likelihood

    ll_rhat, ll_ess, _ = _rhat_ess(_total_log_likelihood(idata))
    modes = idata.attrs.get("modes")
    return {"K": K, "seed": seed, "seconds": seconds, "divergences": m.get("divergences"),
            "divergence_pct": m.get("divergence_pct"), "max_rhat": m.get("max_rhat"),
            "max_rhat_on": m.get("max_rhat_on"), "min_ess_bulk": m.get("min_ess_bulk"),
            "loglik_rhat": ll_rhat, "loglik_ess": ll_ess, "chains": int(idata.posterior.sizes["chain"]),
            "draws": int(idata.posterior.sizes["draw"]), "modes": modes, "headline": verdict.headline(),
            # fit(retry_on_divergence=True): the first run's count when it sampled twice, and which run it kept
            "first_run_divergences": idata.attrs.get("first_run_divergences"),
            "kept_run": idata.attrs.get("kept_run"), "sampler": idata.attrs.get("sampler"),
            # draws="auto" (nutpie): where sampling stopped, and why ("reliable" or "limit")
            "auto_draws_stop": idata.attrs.get("auto_draws_stop")}


def _value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def meets(row: dict) -> dict:
    return {"div": (row["divergence_pct"] or 0.0) <= DIV_MAX_PCT,
            "rhat": row["max_rhat"] is not None and row["max_rhat"] <= RHAT_MAX,
            "ess": row["min_ess_bulk"] is not None and row["min_ess_bulk"] >= ESS_MIN}


def _draws(row: dict) -> str:
    """Chains x draws per chain, with "auto"'s stop ("reliable"/"limit") when draws="auto" chose them."""
    stop = row.get("auto_draws_stop")
    return f"{row['chains']}x{row['draws']}" + ("" if stop is None else f" {stop[:3]}")


def print_table(rows: list[dict]) -> None:
    print(f"{'K':>2} {'seed':>4} {'1st':>5} {'div':>5} {'div%':>6} {'R-hat':>7} {'on':<20} {'ESS':>6} "
          f"{'ll R-hat':>8} {'ll ESS':>7} {'draws':>11} {'sec':>6}  verdict")
    for r in sorted(rows, key=lambda r: (r["K"], r["seed"])):
        first = r.get("first_run_divergences")
        first = "-" if first is None else f"{first}{'*' if r.get('kept_run') == 'first' else ''}"
        print(f"{r['K']:>2} {r['seed']:>4} {first:>5} {r['divergences']:>5} {r['divergence_pct']:>6.2f} "
              f"{r['max_rhat']:>7.3f} "
              f"{str(r['max_rhat_on']):<20} {r['min_ess_bulk']:>6.0f} {r['loglik_rhat']:>8.3f} "
              f"{r['loglik_ess']:>7.0f} {_draws(r):>11} {r['seconds']:>6.1f}  {r['headline'][:90]}")
    for K in sorted({r["K"] for r in rows}):
        sub = [r for r in rows if r["K"] == K]
        ok = [meets(r) for r in sub]
        print(f"K={K}: {len(sub)} runs; divergences <= {DIV_MAX_PCT}%: {sum(o['div'] for o in ok)}; "
              f"R-hat <= {RHAT_MAX}: {sum(o['rhat'] for o in ok)}; bulk ESS >= {ESS_MIN}: "
              f"{sum(o['ess'] for o in ok)}; all three: {sum(all(o.values()) for o in ok)}; "
              f"median wall {statistics.median(r['seconds'] for r in sub):.1f} s "
              f"(range {min(r['seconds'] for r in sub):.1f}-{max(r['seconds'] for r in sub):.1f})")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--K", type=int, nargs="+", default=[3, 4])
    parser.add_argument("--seeds", type=int, default=8, help="seeds 0..N-1 (default 8)")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--covariance", default="full")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a fit setting, e.g. target_accept=0.95 (repeatable)")
    parser.add_argument("--prior", action="append", default=[], metavar="KEY=VALUE",
                        help="a prior setting, e.g. alpha=2 (repeatable)")
    parser.add_argument("--n-jobs", type=int, default=1, help="fits run in parallel (default 1)")
    parser.add_argument("--json", help="append one JSON line per fit to this file")
    args = parser.parse_args(argv)
    settings = {}
    for item in args.set:
        key, _, value = item.partition("=")
        settings[key] = _value(value)
    priors = {}
    for item in args.prior:
        key, _, value = item.partition("=")
        priors[key] = _value(value)
    jobs = [(K, seed) for K in args.K for seed in range(args.first_seed, args.first_seed + args.seeds)]
    print(f"Old Faithful, covariance={args.covariance}, settings={settings or 'defaults'}, "
          f"priors={priors or 'defaults'}, {len(jobs)} fits, {args.n_jobs} at a time, "
          f"{os.cpu_count()} cores", flush=True)
    rows = []
    with ProcessPoolExecutor(args.n_jobs) as pool:
        futures = [pool.submit(one_fit, K, seed, settings, args.covariance, priors) for K, seed in jobs]
        for future in futures:
            row = future.result()
            rows.append(row)
            print(json.dumps(row), file=sys.stderr, flush=True)
            if args.json:
                with open(args.json, "a") as fh:
                    fh.write(json.dumps({**row, "settings": settings, "priors": priors}) + "\n")
    print_table(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
