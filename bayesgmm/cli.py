"""Command line: ``bayesgmm {em, fit, report, demo}``.

Bad input (unreadable file, non-numeric columns, missing values, too few rows, an
existing output) ends with a one-line error and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

EXIT_USAGE = 2


class CLIError(Exception):
    """A user error, reported as one line with exit code 2."""


def _parse_range(text: str) -> list[int]:
    try:
        if ".." in text:
            low, high = text.split("..")
            values = list(range(int(low), int(high) + 1))
        else:
            values = [int(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected K or LOW..HIGH, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"component counts must be positive, got {text!r}")
    return values


def load_data(path: str, columns: str | None = None, dropna: bool = False,
              standardize: bool = False) -> tuple[pd.DataFrame, list[int]]:
    """Read a CSV and check it is usable; returns the data and the dropped row numbers."""
    try:
        data = pd.read_csv(path)
    except FileNotFoundError:
        raise CLIError(f"cannot read {path}: no such file") from None
    except IsADirectoryError:
        raise CLIError(f"cannot read {path}: it is a directory") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CLIError(f"cannot read {path} as CSV: {first_line}") from None
    if columns:
        wanted = [c.strip() for c in columns.split(",") if c.strip()]
        unknown = [c for c in wanted if c not in data.columns]
        if unknown:
            raise CLIError(f"unknown column(s) {unknown}; the file has {list(data.columns)}")
        data = data[wanted]
    non_numeric = [str(c) for c in data.columns if not pd.api.types.is_numeric_dtype(data[c])]
    if non_numeric:
        numeric = [str(c) for c in data.columns if c not in non_numeric]
        raise CLIError(f"non-numeric column(s) {non_numeric}; pick numeric ones with --columns "
                       f"{','.join(numeric) or 'NAME,...'}")
    if data.shape[1] == 0 or len(data) == 0:
        raise CLIError(f"{path} has no data rows or no columns")
    missing = data.isna()
    dropped: list[int] = []
    if missing.to_numpy().any():
        bad_rows = np.flatnonzero(missing.any(axis=1).to_numpy())
        bad_cols = [str(c) for c in data.columns[missing.any(axis=0).to_numpy()]]
        if not dropna:
            shown = ", ".join(str(r + 2) for r in bad_rows[:5])  # +2: header line and 1-based lines
            raise CLIError(f"{int(missing.to_numpy().sum())} missing value(s) in {len(bad_rows)} row(s) (file lines "
                           f"{shown}{'...' if len(bad_rows) > 5 else ''}; columns {bad_cols}); pass --dropna to "
                           "drop those rows")
        dropped = [int(r) for r in bad_rows]
        data = data.dropna().reset_index(drop=True)
    if not np.isfinite(data.to_numpy(dtype=float)).all():
        raise CLIError("the data contain infinite values")
    if standardize:
        std = data.std(ddof=0).replace(0, 1.0)
        data = (data - data.mean()) / std
    return data, dropped


def _check_rows(data: pd.DataFrame, ks: list[int]) -> None:
    if len(data) < max(ks):
        raise CLIError(f"{len(data)} rows but up to {max(ks)} components requested; use fewer components")


def _check_out(out: str, force: bool) -> Path:
    path = Path(out)
    if path.exists() and not force:
        raise CLIError(f"{out} exists; pass --force to overwrite it")
    if not path.parent.exists():
        raise CLIError(f"cannot write {out}: folder {path.parent} does not exist")
    return path


def _print_selection(result) -> None:
    cols = ["n_components", "covariance_type", "log_likelihood", "n_parameters", "bic", "icl", "degenerate", "rank"]
    table = result.table.sort_values(result.criterion)[cols]
    with pd.option_context("display.width", 120, "display.float_format", "{:.2f}".format):
        print(table.head(12).to_string(index=False))
    best = result.best_estimator_
    print(f"\nChosen by {result.criterion.upper()}: K={best.n_components}, covariance={best.covariance_type}")


def _select(data, ks, cov_types, seed, quiet):
    from .selection import select_model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return select_model(data.to_numpy(dtype=float), ks, covariance_types=cov_types, random_state=seed,
                            progressbar=not quiet)


# -------------------------------------------------------------------- commands
def _cmd_em(args) -> int:
    data, _ = load_data(args.data, args.columns, args.dropna, args.standardize)
    ks = args.components or args.select
    _check_rows(data, ks)
    cov_types = ("full", "tied", "diag", "spherical") if args.covariance == "all" else (args.covariance,)
    result = _select(data, ks, cov_types, args.seed, args.quiet)
    _print_selection(result)
    best = result.best_estimator_
    print("weights:", np.round(best.weights_, 3))
    print("means:\n", pd.DataFrame(best.means_, columns=data.columns).round(3).to_string())
    return 0


def _cmd_fit(args) -> int:
    from .model import BayesianGMM

    out = _check_out(args.out, args.force)
    data, _ = load_data(args.data, args.columns, args.dropna, args.standardize)
    _check_rows(data, [args.components])
    kwargs = dict(method=args.method, draws=args.draws, random_seed=args.seed, progressbar=not args.quiet)
    if args.method == "nuts":
        kwargs.update(tune=args.tune, chains=args.chains)
    model = BayesianGMM(args.components, covariance_type=args.covariance)
    model.fit(data, **kwargs)
    model.save(out)
    print(f"Saved the posterior to {out}")
    return 0


def _cmd_report(args) -> int:
    from .report import ReportSettings, build_report

    out = _check_out(args.out, args.force)
    data, dropped = load_data(args.data, args.columns, args.dropna, args.standardize)
    ks = [args.components] if args.components else args.select
    _check_rows(data, ks)
    settings = ReportSettings(
        n_components=args.components, select=ks, method=args.method, draws=args.draws, tune=args.tune,
        chains=args.chains, seed=args.seed, progressbar=not args.quiet, source=str(args.data),
        standardized=args.standardize, dropped_rows=dropped,
    )
    if not args.quiet:
        print("Building the report (EM model selection, Bayesian fits, summaries)...", file=sys.stderr)
    out.write_text(build_report(data, settings), encoding="utf-8")
    print(f"Report written to {out.resolve()}")
    return 0


def _cmd_demo(args) -> int:
    from .datasets import load_faithful
    from .model import BayesianGMM
    from .report import ReportSettings, build_report
    from .summaries import summary

    data = load_faithful()
    print(f"Old Faithful: {len(data)} eruptions, columns {list(data.columns)}\n")
    result = _select(data, list(range(1, 10)), ("full", "tied", "diag", "spherical"), 0, args.quiet)
    print("EM model selection (K = 1..9, four covariance types), best 12 by BIC:")
    _print_selection(result)
    K = result.best_estimator_.n_components
    print(f"\nBayesian mixture, K={K} (chosen by EM BIC), NUTS 2 chains x {args.draws} draws:")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = BayesianGMM(K).fit(data, draws=args.draws, tune=args.draws, chains=2, random_seed=0,
                                   progressbar=not args.quiet)
        summ = summary(idata)
    rows = []
    for var in ("weights", "means", "stds"):
        frame = summ[var].to_dataframe().unstack("metric")[var][["mean", "sd", "hdi_3%", "hdi_97%", "r_hat"]]
        frame.index = [f"{var}{list(i) if isinstance(i, tuple) else [i]}" for i in frame.index]
        rows.append(frame)
    with pd.option_context("display.width", 120, "display.float_format", "{:.3f}".format):
        print(pd.concat(rows).to_string())
    out = Path(args.out)
    settings = ReportSettings(select=list(range(1, 7)), draws=args.draws, tune=args.draws, progressbar=not args.quiet,
                              source="bayesgmm/data/faithful.csv (bundled)")
    out.write_text(build_report(data, settings), encoding="utf-8")
    print(f"\nReport written to {out.resolve()}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bayesgmm", description="Gaussian mixtures by EM and by Bayes.")
    sub = parser.add_subparsers(dest="command", required=True)

    def data_options(p):
        p.add_argument("data", help="CSV file with a header line")
        p.add_argument("--columns", help="comma-separated numeric columns to use (default: all)")
        p.add_argument("--standardize", action="store_true", help="centre and scale every column first")
        p.add_argument("--dropna", action="store_true", help="drop rows with missing values (else refuse)")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--quiet", action="store_true", help="no progress output")

    def sampler_options(p):
        p.add_argument("--method", choices=["nuts", "advi"], default="nuts")
        p.add_argument("--draws", type=int, default=1000)
        p.add_argument("--tune", type=int, default=1000)
        p.add_argument("--chains", type=int, default=2)

    demo = sub.add_parser("demo", help="the main job on the bundled Old Faithful data")
    demo.add_argument("--out", default="report.html")
    demo.add_argument("--draws", type=int, default=1000)
    demo.add_argument("--quiet", action="store_true")
    demo.set_defaults(func=_cmd_demo)

    em = sub.add_parser("em", help="EM model selection")
    data_options(em)
    group = em.add_mutually_exclusive_group()
    group.add_argument("--components", type=_parse_range)
    group.add_argument("--select", type=_parse_range, default=list(range(1, 10)))
    em.add_argument("--covariance", default="all", choices=["full", "tied", "diag", "spherical", "all"])
    em.set_defaults(func=_cmd_em)

    fit = sub.add_parser("fit", help="fit the Bayesian mixture and save the posterior (netCDF)")
    data_options(fit)
    sampler_options(fit)
    fit.add_argument("--components", type=int, required=True)
    fit.add_argument("--covariance", default="full", choices=["full", "diag"])
    fit.add_argument("--out", required=True)
    fit.add_argument("--force", action="store_true", help="overwrite --out")
    fit.set_defaults(func=_cmd_fit)

    report = sub.add_parser("report", help="write a self-contained HTML clustering report")
    data_options(report)
    sampler_options(report)
    group = report.add_mutually_exclusive_group()
    group.add_argument("--components", type=int)
    group.add_argument("--select", type=_parse_range, default=list(range(1, 7)))
    report.add_argument("--out", required=True)
    report.add_argument("--force", action="store_true", help="overwrite --out")
    report.set_defaults(func=_cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "quiet", False):
        import logging

        for name in ("pymc", "pytensor", "arviz"):
            logging.getLogger(name).setLevel(logging.ERROR)
    if getattr(args, "components", None) is not None and isinstance(args.components, int) and args.components < 1:
        print("bayesgmm: error: --components must be positive", file=sys.stderr)
        return EXIT_USAGE
    try:
        return args.func(args)
    except CLIError as err:
        print(f"bayesgmm: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except (ValueError, TypeError) as err:  # the library's own input checks
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"bayesgmm: error: {message}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
