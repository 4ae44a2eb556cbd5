"""Command line: ``bayesgmm demo`` and ``bayesgmm em DATA.csv``."""

from __future__ import annotations

import argparse
import sys
import warnings

import numpy as np
import pandas as pd

from .selection import select_model


def _parse_range(text: str) -> list[int]:
    try:
        if ".." in text:
            low, high = text.split("..")
            return list(range(int(low), int(high) + 1))
        return [int(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected K or LOW..HIGH, got {text!r}") from None


def _print_selection(result, title: str) -> None:
    cols = ["n_components", "covariance_type", "log_likelihood", "n_parameters", "bic", "icl", "degenerate", "rank"]
    table = result.table.sort_values(result.criterion)[cols]
    with pd.option_context("display.width", 120, "display.float_format", "{:.2f}".format):
        print(title)
        print(table.head(12).to_string(index=False))
    best = result.best_estimator_
    print(f"\nChosen by {result.criterion.upper()}: K={best.n_components}, covariance={best.covariance_type}")
    print("weights:", np.round(best.weights_, 3))
    print("means:\n", np.round(best.means_, 3))


def _cmd_demo(args) -> int:
    from .datasets import load_faithful

    data = load_faithful()
    print(f"Old Faithful: {len(data)} eruptions, columns {list(data.columns)}\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = select_model(data.to_numpy(), n_components=range(1, 10), random_state=0)
    _print_selection(result, "EM model selection (K = 1..9, four covariance types), best 12 by BIC:")
    return 0


def _cmd_em(args) -> int:
    data = pd.read_csv(args.data)
    cov_types = ("full", "tied", "diag", "spherical") if args.covariance == "all" else (args.covariance,)
    ks = args.components or args.select
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = select_model(data.to_numpy(dtype=float), n_components=ks, covariance_types=cov_types,
                              random_state=args.seed)
    _print_selection(result, "EM model selection:")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bayesgmm", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("demo", help="run the main job on the bundled Old Faithful data").set_defaults(func=_cmd_demo)
    em = sub.add_parser("em", help="EM model selection on a CSV file")
    em.add_argument("data")
    em.add_argument("--components", type=_parse_range)
    em.add_argument("--select", type=_parse_range, default=list(range(1, 10)))
    em.add_argument("--covariance", default="all", choices=["full", "tied", "diag", "spherical", "all"])
    em.add_argument("--seed", type=int, default=0)
    em.set_defaults(func=_cmd_em)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
