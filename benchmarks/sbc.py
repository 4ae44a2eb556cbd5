"""Simulation-based calibration of BayesianGMM (NUTS and ADVI, full and diag, K=2,3, D=1,2).

Each replication draws the parameters and a dataset of --n rows from the generative
prior (location 0, scale 1, the package's other default priors), fits it with the
package's defaults (NUTS: --chains x --draws after --tune, every --thin-th draw
ranked; ADVI: its defaults, --draws draws of the approximation) and ranks the true
label-invariant quantities among the posterior draws (see bayesgmm.validation).
Fits run in parallel processes, one core each; results are written to --out as
they finish (a partial file is usable, and --resume continues it).

Prints one row per setting: replications, failed fits, fraction of NUTS fits with
divergences and with R-hat > 1.01, seconds per fit, the smallest p-value (chi-square
or KS) of each quantity's ranks, and the verdict at the Bonferroni-corrected 5%
level; then seconds per fit (warm, and the first fit's compilation) and an estimate
of the full run's wall time.

Usage:
  python benchmarks/sbc.py --settings all --reps 200 --n-jobs 16 --out sbc_results.json
  python benchmarks/sbc.py --quick                       # every setting, 3 replications
  python benchmarks/sbc.py --table sbc_results.json      # the table of a (partial) run
  # the same run in two halves, into one file:
  python benchmarks/sbc.py --settings 'nuts-*-*-*' --reps 200 --n-jobs 16 --out sbc_results.json
  python benchmarks/sbc.py --settings 'advi-*-*-*' --reps 200 --n-jobs 16 --out sbc_results.json --resume
"""

from __future__ import annotations

import ast
import os

# One thread per worker process; set before NumPy loads any BLAS.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import argparse  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402


def _value(text: str):
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--settings", default="all",
                        help="'all' or comma-separated names like nuts-full-K2-D1 ('*' for any part)")
    parser.add_argument("--reps", type=int, default=200, help="replications per setting (default 200)")
    parser.add_argument("--n-jobs", type=int, default=-1, help="worker processes (default: every core)")
    parser.add_argument("--out", default="sbc_results.json", help="results file (JSON, written as fits finish)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n", type=int, default=None, help="rows per simulated dataset (default 50)")
    parser.add_argument("--draws", type=lambda t: t if t == "auto" else int(t), default=None,
                        help="NUTS draws per chain, or 'auto' (nutpie: until the diagnostics pass; 50 evenly "
                             "spaced draws per chain ranked) (default 200)")
    parser.add_argument("--chains", type=int, default=None, help="NUTS chains (default 2)")
    parser.add_argument("--tune", type=int, default=None, help="NUTS warm-up per chain (default 200)")
    parser.add_argument("--thin", type=int, default=None, help="rank every thin-th NUTS draw (default 4)")
    parser.add_argument("--init", choices=("em", "em_dispersed"), default=None,
                        help="NUTS chains' starts (default em; em_dispersed: each chain at its own EM optimum)")
    parser.add_argument("--sampler", choices=("pymc", "nutpie"), default=None,
                        help="NUTS's implementation for the NUTS settings (default PyMC's; nutpie needs its extra)")
    parser.add_argument("--prior", action="append", default=[], metavar="KEY=VALUE",
                        help="a prior setting for every setting, e.g. rounding=0.3 (repeatable)")
    parser.add_argument("--advi-draws", type=int, default=None, help="ADVI draws ranked (default 200)")
    parser.add_argument("--resume", action="store_true", help="keep the replications already in --out")
    parser.add_argument("--quick", action="store_true", help="tiny run: every setting, 3 replications")
    parser.add_argument("--plot", default=None, help="also save rank histograms to this image file")
    parser.add_argument("--table", metavar="RESULTS", default=None,
                        help="only print the table of an existing results file")
    parser.add_argument("--estimate-reps", type=int, default=200, help="reps for the run-time estimate")
    parser.add_argument("--estimate-jobs", type=int, default=16, help="cores for the run-time estimate")
    args = parser.parse_args(argv)

    from bayesgmm.validation import (
        estimate_runtime,
        format_sbc_table,
        load_sbc_results,
        plot_rank_histograms,
        reliable_advi_fits,
        run_sbc,
        sbc_settings,
        timing_table,
    )

    if args.table:
        results = load_sbc_results(args.table)
    else:
        if args.quick:
            args.reps = 3
            if args.out == "sbc_results.json":
                args.out = "sbc_quick.json"
        nuts = {k: v for k, v in (("n_samples", args.n), ("draws", args.draws), ("tune", args.tune),
                                  ("chains", args.chains),
                                  ("thin", args.thin), ("init", args.init), ("sampler", args.sampler))
                if v is not None}
        advi = {k: v for k, v in (("n_samples", args.n), ("draws", args.advi_draws)) if v is not None}
        # The grid's order; each method's own options (a NUTS sampler means nothing to ADVI).
        priors = {key: _value(value) for key, _, value in (item.partition("=") for item in args.prior)}
        settings = [replace(s, **(nuts if s.method == "nuts" else advi), **({"priors": priors} if priors else {}))
                    for s in sbc_settings(args.settings)]
        n_jobs = os.cpu_count() if args.n_jobs == -1 else args.n_jobs
        fits = {s.method: s for s in settings}
        how = [f"NUTS {s.chains} chains x ({s.tune} tune + {s.draws} draws), "
               + ("50 evenly spaced per chain" if s.auto_draws else f"every {s.thin}th") + f" ranked (L="
               f"{s.n_rank_draws})" for s in [fits.get("nuts")] if s is not None]
        how += [f"ADVI defaults, L={s.n_rank_draws} draws ranked" for s in [fits.get("advi")] if s is not None]
        print(f"SBC: {len(settings)} setting(s) x {args.reps} replications on {n_jobs} process(es), "
              f"N={settings[0].n_samples}; {'; '.join(how)}; priors {priors or 'default'}; results -> {args.out}",
              flush=True)
        start = time.perf_counter()
        state = {"last": start}

        def progress(record, done, total):
            now = time.perf_counter()
            if record.get("error"):
                print(f"  {record['setting']} rep {record['rep']}: fit failed: {record['error']}", flush=True)
            if now - state["last"] >= 15 or done == total:
                state["last"] = now
                elapsed = now - start
                eta = elapsed / done * (total - done)
                print(f"  {done}/{total} fits, {elapsed:.0f} s elapsed, about {eta:.0f} s to go", flush=True)

        results = run_sbc(settings, args.reps, n_jobs=n_jobs, out=args.out, random_seed=args.seed,
                          resume=args.resume, progress=progress)
        print(f"done in {time.perf_counter() - start:.1f} s; results in {args.out}\n")

    print(format_sbc_table(results))
    reliable = reliable_advi_fits(results)
    if reliable:
        print("\nThe ADVI fits whose verdict is reliable (loss at its plateau, Pareto k-hat check passed), "
              "tested on their own:")
        print(format_sbc_table(reliable))
    timing = timing_table(results)
    if len(timing):
        print("\nSeconds per fit (warm: excluding each process's first fit of a setting; cpu = one core):")
        print(timing.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
        print(f"\nEstimated wall time of {args.estimate_reps} replications on {args.estimate_jobs} idle cores "
              "(mean warm CPU seconds per fit x fits / cores + first-fit compilation per worker):")
        groups = {"all measured settings": None}
        for method in ("nuts", "advi"):
            names = [n for n in timing["setting"] if n.startswith(method + "-")]
            if names and len(names) < len(timing):
                groups[f"{method} settings only"] = names
        for label, names in groups.items():
            est = estimate_runtime(results, reps=args.estimate_reps, n_jobs=args.estimate_jobs, settings=names)
            print(f"  {label}: {est['fits']} fits, {est['cpu_s'] / 3600:.2f} CPU hours, about "
                  f"{est['wall_s'] / 60:.1f} min (compilation {est['compile_s']:.0f} s)")
    if args.plot:
        fig, _ = plot_rank_histograms(results)
        fig.savefig(args.plot, dpi=110)
        print(f"rank histograms -> {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
