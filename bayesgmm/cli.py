"""Command line: ``bayesgmm {em, fit, report, assign, demo}``.

Bad input (unreadable file, non-numeric columns, missing values, too few rows, an
existing output) ends with a one-line error and exit code 2, never a traceback.

``assign`` applies a saved fit to new rows, whose columns are matched by name to
the fit's features; ``fit --assignments`` and ``report --assignments`` write the
same per-row CSV for the training rows.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import logging
import os
import re
import secrets
import sys
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

EXIT_USAGE = 2


class CLIError(Exception):
    """A user error, reported as one line with exit code 2."""


def _parse_range(text: str) -> list[int]:
    """``K``, ``LOW..HIGH`` or a comma-separated list of those (``1..3,5``)."""
    values: list[int] = []
    for part in str(text).split(","):
        part = part.strip()
        try:
            if ".." in part:
                low, high = (int(v) for v in part.split(".."))
                if low > high:
                    raise argparse.ArgumentTypeError(f"empty range {part!r}: LOW must not exceed HIGH")
                values.extend(range(low, high + 1))
            else:
                values.append(int(part))
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected K, LOW..HIGH or a comma-separated list, got {text!r}") from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"component counts must be positive integers, got {text!r}")
    return sorted(set(values))


def _parse_rounding(text: str):
    """``auto``, or the step each feature was recorded to: one number for all, or comma-separated per feature."""
    text = str(text).strip()
    if text == "auto":
        return "auto"
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto', a number >= 0 or one per feature separated by commas "
                                         f"(e.g. 0.01,1), got {text!r}") from None
    if not all(np.isfinite(v) and v >= 0 for v in values):
        raise argparse.ArgumentTypeError(f"rounding steps must be finite numbers >= 0, got {text!r}")
    return values[0] if len(values) == 1 else tuple(values)


def _integer(text: str, low: int, what: str, high: int | None = None) -> int:
    try:
        value = int(str(text).strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
    if value < low or (high is not None and value > high):
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    return _integer(text, 1, "a positive integer")


def _nonnegative_int(text: str) -> int:
    return _integer(text, 0, "an integer >= 0")


def _or_auto(parse):
    """A flag's parser that also takes 'auto' (``draws``, ``tune``, ``chains``: chosen for the sampler)."""
    def parse_or_auto(text: str):
        if str(text).strip() == "auto":
            return "auto"
        try:
            return parse(text)
        except argparse.ArgumentTypeError as err:
            raise argparse.ArgumentTypeError(f"{err} or 'auto'") from None
    return parse_or_auto


def _seed(text: str) -> int:
    return _integer(text, 0, "an integer in 0..4294967295", 2**32 - 1)


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number strictly between 0 and 1, got {text!r}") from None
    if not 0.0 < value < 1.0:  # also refuses nan
        raise argparse.ArgumentTypeError(f"must be a number strictly between 0 and 1, got {text!r}")
    return value


def _name_list(text: str) -> list[str]:
    names = [n.strip() for n in str(text).split(",")]
    if not any(names) or not all(names):
        raise argparse.ArgumentTypeError(f"expected comma-separated column names, got {text!r}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise argparse.ArgumentTypeError(f"column(s) {repeated} listed more than once")
    return names


def _note(message: str) -> None:
    """Our own notes about how the input was read: stderr, printed even with --quiet."""
    print(f"bayesgmm: note: {message}", file=sys.stderr)


# ------------------------------------------------------------------ reading CSV
_DELIMITERS = (",", ";", "\t", "|")
_DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
_SAMPLE_BYTES = 65536
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$|^[+-]?(inf|infinity|nan)$", re.IGNORECASE)
_COMMA_NUMBER = re.compile(r"^[+-]?(\d+(,\d*)?|,\d+)([eE][+-]?\d+)?$")
_ID_NAME = re.compile(r"^(id|index|idx|row|rownames|row[ _.]?(id|no|num|number)|unnamed: ?0)$|[ _.]id$", re.IGNORECASE)


def _is_number(cell: str, decimal_comma: bool) -> bool:
    cell = cell.strip()
    return bool(_NUMBER.match(cell) or (decimal_comma and _COMMA_NUMBER.match(cell)))


def _existing_file(path: str) -> Path:
    """``path`` as a Path, or a one-line error when it is missing or a directory."""
    file = Path(path)
    if not file.exists():
        raise CLIError(f"cannot read {path}: no such file")
    if file.is_dir():
        raise CLIError(f"cannot read {path}: it is a directory")
    return file


def _read_sample(path: str) -> str:
    """The first bytes of the file as text, with clear errors for missing, empty or binary files."""
    file = _existing_file(path)
    try:
        with open(file, "rb") as handle:
            raw = handle.read(_SAMPLE_BYTES)
    except OSError as err:
        raise CLIError(f"cannot read {path}: {err.strerror or err}") from None
    if not raw.strip():
        raise CLIError(f"{path} is empty")
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in raw:
        raise CLIError(f"cannot read {path} as CSV: it is not UTF-8 text (binary data or UTF-16)")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        if len(raw) == _SAMPLE_BYTES and err.start >= len(raw) - 3:  # a character cut at the sample's end
            text = raw[:err.start].decode("utf-8-sig", errors="replace")
        else:
            raise CLIError(f"cannot read {path} as CSV: it is not UTF-8 text (byte {err.start}); "
                           "save it as UTF-8") from None
    if len(raw) == _SAMPLE_BYTES:  # drop the line cut at the sample's end
        text = text[: text.rfind("\n") + 1] or text
    return text


def _sniff(text: str) -> tuple[str, bool, list[str]]:
    """Delimiter, whether numbers use decimal commas, and the first row's cells.

    A delimiter qualifies when it splits the header and at least 90% of the lines
    into the same number (>= 2) of fields; among those the one whose cells parse as
    numbers most often (then the most fields) wins. No candidate: a single column.
    """
    lines = [line for line in text.splitlines() if line.strip()][:200]
    best = None
    for delimiter in _DELIMITERS:
        rows = list(csv.reader(lines, delimiter=delimiter, skipinitialspace=True))
        counts = [len(r) for r in rows]
        mode = max(set(counts), key=counts.count)
        if mode < 2 or counts[0] != mode or counts.count(mode) < 0.9 * len(counts):
            continue
        cells = [c.strip() for r in (rows[1:] or rows) for c in r if c.strip()]
        decimal_comma = delimiter != "," and any(_COMMA_NUMBER.match(c) and not _NUMBER.match(c) for c in cells)
        numeric = sum(_is_number(c, decimal_comma) for c in cells) / max(len(cells), 1)
        score = (numeric, mode)
        if best is None or score > best[0]:
            best = (score, delimiter, decimal_comma, rows[0])
    if best is not None:
        return best[1], best[2], best[3]
    # No consistent split: if a delimiter splits the header, use it (pandas then names the ragged line).
    header_splits = [(sum(len(r) == len(rows[0]) for r in rows), d, rows[0]) for d in _DELIMITERS
                     for rows in [list(csv.reader(lines, delimiter=d, skipinitialspace=True))]
                     if rows and len(rows[0]) >= 2]
    if header_splits:
        _, delimiter, first = max(header_splits, key=lambda t: t[0])
        return delimiter, False, first
    # One column: read with a delimiter that does not occur, so commas in it stay decimal commas.
    unused = next((d for d in _DELIMITERS[1:] if d not in text), "\t")
    cells = [line.strip() for line in lines[1:]]
    decimal_comma = any(_COMMA_NUMBER.match(c) and not _NUMBER.match(c) for c in cells)
    return unused, decimal_comma, [lines[0].strip()] if lines else []


def _is_id_column(name: str, column: pd.Series) -> bool:
    """Named like an ID/index, or integers counting up by one from 0 or 1."""
    if _ID_NAME.search(name.strip()):
        return True
    if pd.api.types.is_bool_dtype(column) or not pd.api.types.is_numeric_dtype(column) or len(column) < 3:
        return False
    values = column.to_numpy(dtype=float)
    if not np.isfinite(values).all() or not np.array_equal(values, np.round(values)):
        return False
    return values[0] in (0.0, 1.0) and bool(np.all(np.diff(values) == 1.0))


def load_data(path: str, columns: str | list[str] | None = None, dropna: bool = False,
              standardize: bool = False, drop: str | list[str] | None = None) -> tuple[pd.DataFrame, list[int]]:
    """Read a CSV and check it is usable; returns the data and the dropped row numbers.

    The delimiter (comma, semicolon, tab, pipe) and decimal commas are detected; a
    file whose first row is all numbers is read without a header (columns x0, x1,
    ...); a column that looks like a row index or ID is left out (unless
    ``columns`` names it). Every such decision is printed to stderr.
    """
    table = load_table(path, columns, drop, dropna)
    data = table.data
    if standardize:  # kept for callers of this function; the commands no longer standardise (see _standardize_note)
        std = data.std(ddof=0).replace(0, 1.0)
        data = (data - data.mean()) / std
    return data, table.dropped


class Table(NamedTuple):
    """A checked CSV: the float features, the dropped row numbers, and one row id per kept row."""

    data: pd.DataFrame
    dropped: list[int]
    row_ids: pd.Series


def load_table(path: str, columns=None, drop=None, dropna: bool = False, features: list[str] | None = None,
               min_rows: int = 2) -> Table:
    """Read and check a CSV as :func:`load_data` does, keeping a row id for every row.

    With ``features`` (a fit's feature names) the columns are matched to them by
    name, in any order, and returned in the fit's order: a missing feature or an
    extra column is an error (``columns``/``drop`` pick the columns as usual). The
    row ids are the file's ID-like column when there is one (not fitted), else the
    data row numbers counted from 0 (named ``row``), those of dropped rows removed.
    """
    columns = _name_list(columns) if isinstance(columns, str) else columns
    drop = _name_list(drop) if isinstance(drop, str) else drop
    if columns and drop:
        raise CLIError("give either --columns or --drop, not both")
    data, layout = _read_csv(path)
    if features is None:
        picked, id_column = _pick_columns(data, path, columns, drop)
    else:
        picked, id_column = _match_features(data, path, [str(f) for f in features], columns, drop)
    n_rows = len(picked)
    picked = _numeric_columns(picked, layout)
    picked, dropped = _missing_rows(picked, dropna, layout.line_offset)
    _check_values(picked, path, min_rows)
    kept = np.setdiff1d(np.arange(n_rows), np.asarray(dropped, dtype=int))
    if id_column is None:
        row_ids = pd.Series(kept, name="row")
    else:
        name = "row" if id_column.startswith("Unnamed:") else id_column
        row_ids = data[id_column].iloc[kept].reset_index(drop=True).rename(name)
    return Table(picked.astype(float), dropped, row_ids)


class _Layout(NamedTuple):
    """How a CSV was read: its delimiter, decimal commas, and the file line of data row 0."""

    delimiter: str
    decimal_comma: bool
    line_offset: int


def _read_csv(path: str) -> tuple[pd.DataFrame, _Layout]:
    """The file read by pandas with the detected delimiter, decimals and header; notes on what was detected."""
    text = _read_sample(path)
    delimiter, decimal_comma, first_row = _sniff(text)
    headerless = bool(first_row) and all(c.strip() and _is_number(c, decimal_comma) for c in first_row)
    options = dict(sep=delimiter, decimal="," if decimal_comma else ".", skipinitialspace=True, index_col=False,
                   encoding="utf-8-sig")
    if headerless:
        options.update(header=None, names=[f"x{i}" for i in range(len(first_row))])
    else:  # pandas would rename a repeated name to "a.1" and fit both columns
        names = [c.strip().lstrip("\ufeff") for c in first_row if c.strip()]
        repeated = sorted({c for c in names if names.count(c) > 1})
        if repeated:
            raise CLIError(f"{path} repeats the column name(s) {repeated} in its header; names must be unique")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            data = pd.read_csv(path, **options)
    except pd.errors.ParserWarning:
        raise CLIError(f"cannot read {path} as CSV: some rows have more fields than the header") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError, ValueError) as err:
        first_line = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CLIError(f"cannot read {path} as CSV: {first_line}") from None
    data.columns = [str(c).strip() for c in data.columns]
    if (delimiter != "," and data.shape[1] > 1) or decimal_comma:  # one column: no delimiter to speak of
        decimals = " with decimal commas" if decimal_comma else ""
        _note(f"read {path} as {_DELIMITER_NAMES.get(delimiter, repr(delimiter))}-separated{decimals}")
    if headerless:
        _note(f"{path} has no header line (its first row is all numbers): read every row as data and named the "
              f"columns {', '.join(data.columns[:3])}{', ...' if data.shape[1] > 3 else ''}")
    return data, _Layout(delimiter, decimal_comma, 1 if headerless else 2)


def _check_known(available: list[str], columns, drop) -> None:
    for option, names in (("--columns", columns), ("--drop", drop)):
        unknown = [c for c in names or [] if c not in available]
        if unknown:
            raise CLIError(f"{option}: unknown column(s) {unknown}; the file has {available}")


def _pick_columns(data: pd.DataFrame, path: str, columns, drop) -> tuple[pd.DataFrame, str | None]:
    """The columns to fit: those named in ``columns``, else all but ``drop``, empty and ID-like ones;
    and the first ID-like column left out (the row ids of an assignments CSV), if any."""
    available = list(data.columns)
    _check_known(available, columns, drop)
    ids: list[str] = []
    if columns:
        everything, data = data, data[columns]
        ids = [c for c in available if c not in columns and _is_id_column(c, everything[c])]
    else:
        if drop:
            data = data.drop(columns=drop)
        empty = [c for c in data.columns if c.startswith("Unnamed:") and data[c].isna().all()]
        if empty:  # e.g. a delimiter at the end of every line
            data = data.drop(columns=empty)
        ids = [c for c in data.columns if _is_id_column(c, data[c])]
        if ids and len(ids) == data.shape[1]:
            raise CLIError(f"every column looks like a row index or ID ({ids}); name the columns to fit with "
                           "--columns")
        if ids:
            data = data.drop(columns=ids)
            _note(f"left out column(s) {ids}: they look like a row index or ID (name them in --columns to fit them)")
    if data.shape[1] == 0:
        raise CLIError(f"{path} has no columns left to fit")
    if len(data) == 0:
        raise CLIError(f"{path} has no data rows")
    return data, (ids[0] if ids else None)


def _match_features(data: pd.DataFrame, path: str, features: list[str], columns, drop) -> tuple[pd.DataFrame,
                                                                                                  str | None]:
    """The fit's feature columns, by name and in the fit's order; every other column must be left out.

    Without ``columns``, empty columns and ID-like columns that are not features are
    left out (the first of those gives the row ids), as when fitting.
    """
    available = list(data.columns)
    _check_known(available, columns, drop)
    if columns:
        chosen = list(columns)
        others = [c for c in available if c not in chosen]
    else:
        chosen = [c for c in available if c not in (drop or [])
                  and not (c.startswith("Unnamed:") and c not in features and data[c].isna().all())]
        others = [c for c in chosen if c not in features and _is_id_column(c, data[c])]
        chosen = [c for c in chosen if c not in others]
    missing = [f for f in features if f not in chosen]
    if missing:
        left_out = [f for f in missing if f in available]
        why = f" (left out by {'--columns' if columns else '--drop'}: {left_out})" if left_out else ""
        raise CLIError(f"{path} lacks the fit's feature column(s) {missing}{why}; the fit's features are "
                       f"{features} and the file has {available}")
    extra = [c for c in chosen if c not in features]
    if extra:
        raise CLIError(f"{path} has column(s) {extra} that are not features of the fit ({features}); leave them out "
                       f"with --drop {','.join(extra)} or pick the features with --columns {','.join(features)}")
    id_column = next((c for c in others if c not in (drop or []) and _is_id_column(c, data[c])), None)
    if id_column is not None:
        _note(f"column {id_column!r} looks like a row index or ID: it is not a feature and names the rows")
    if len(data) == 0:
        raise CLIError(f"{path} has no data rows")
    return data[features], id_column


def _numeric_columns(data: pd.DataFrame, layout: _Layout) -> pd.DataFrame:
    """Every column numeric (decimal commas the sniffing missed are read), or an error naming the others."""
    non_numeric = [c for c in data.columns if not pd.api.types.is_numeric_dtype(data[c])
                   or pd.api.types.is_bool_dtype(data[c])]
    if non_numeric and layout.delimiter != ",":  # decimal commas the sniffing did not see (e.g. mixed with points)
        data = data.copy()
        for c in list(non_numeric):
            cells = data[c].dropna().astype(str).str.strip()
            if len(cells) and cells.map(lambda v: bool(_NUMBER.match(v) or _COMMA_NUMBER.match(v))).all():
                data[c] = pd.to_numeric(data[c].astype(str).str.strip().str.replace(",", ".", regex=False)
                                        .where(data[c].notna()))
                non_numeric.remove(c)
                _note(f"read decimal commas in column {c!r}")
    if not non_numeric:
        return data
    numeric = [c for c in data.columns if c not in non_numeric]
    examples = []
    for c in non_numeric[:3]:
        bad = data[c].notna() & pd.to_numeric(data[c], errors="coerce").isna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            examples.append(f"{c!r} has {str(data[c].iloc[row])[:30]!r} on line {row + layout.line_offset}")
    detail = f" ({'; '.join(examples)})" if examples else ""
    raise CLIError(f"non-numeric column(s) {non_numeric}{detail}; pick numeric ones with --columns "
                   f"{','.join(numeric) or 'NAME,...'} or leave them out with --drop {','.join(non_numeric)}")


def _missing_rows(data: pd.DataFrame, dropna: bool, line_offset: int) -> tuple[pd.DataFrame, list[int]]:
    """Refuse missing values, or (``dropna``) drop their rows and say which."""
    missing = data.isna()
    if not missing.to_numpy().any():
        return data, []
    bad_rows = np.flatnonzero(missing.any(axis=1).to_numpy())
    per_column = missing.sum(axis=0)
    bad_cols = ", ".join(f"{c} ({int(n)})" for c, n in per_column.items() if n)
    shown = ", ".join(str(r + line_offset) for r in bad_rows[:5])
    where = f"file lines {shown}{'...' if len(bad_rows) > 5 else ''}"
    if not dropna:
        raise CLIError(f"{int(missing.to_numpy().sum())} missing value(s) in {len(bad_rows)} row(s) ({where}; "
                       f"columns {bad_cols}); pass --dropna to drop those rows")
    dropped = [int(r) for r in bad_rows]
    data = data.dropna().reset_index(drop=True)
    _note(f"--dropna dropped {len(dropped)} of {len(dropped) + len(data)} row(s) with missing values "
          f"({where}; columns {bad_cols}); {len(data)} remain")
    return data, dropped


def _check_values(data: pd.DataFrame, path: str, min_rows: int = 2) -> None:
    """Finite values, and at least ``min_rows`` rows."""
    values = data.to_numpy(dtype=float)
    if not np.isfinite(values).all():
        bad_cols = [c for c, ok in zip(data.columns, np.isfinite(values).all(axis=0)) if not ok]
        raise CLIError(f"the data contain infinite values (column(s) {bad_cols})")
    if len(data) < min_rows:
        raise CLIError(f"{path} has only {len(data)} usable data row{'s' if len(data) != 1 else ''}; at least "
                       f"{min_rows} {'are' if min_rows > 1 else 'is'} needed")


def _check_rows(data: pd.DataFrame, ks: list[int]) -> None:
    if len(data) < max(ks):
        raise CLIError(f"{len(data)} rows but up to {max(ks)} components requested; use fewer components")


def _check_out(out: str, force: bool, data: str | None = None, option: str = "--out",
               inputs: tuple[tuple[str, str], ...] = ()) -> Path:
    """Check that ``out`` can be written and is none of the input files, before any fitting."""
    if not str(out).strip():
        raise CLIError(f"{option} is empty; give a file name")
    path = Path(out).expanduser()
    if path.is_dir():
        raise CLIError(f"cannot write {out}: it is a directory; give a file name")
    parent = path.parent
    if not parent.exists():
        raise CLIError(f"cannot write {out}: folder {parent} does not exist")
    if not parent.is_dir():
        raise CLIError(f"cannot write {out}: {parent} is not a folder")
    if path.exists() and not force:
        raise CLIError(f"{out} exists; pass --force to overwrite it")
    for what, source in (("data file", data), *(("input " + kind, name) for kind, name in inputs)):
        if source is not None and path.exists() and path.resolve() == Path(source).resolve():
            raise CLIError(f"{option} {out} is the {what}; choose another name")
    probe = parent / f".{path.name}.{secrets.token_hex(4)}.probe"
    try:
        probe.open("x").close()
        probe.unlink()
    except OSError as err:
        raise CLIError(f"cannot write {out}: folder {parent} is not writable ({err.strerror or err})") from None
    return path


def _write_atomically(path: Path, write) -> None:
    """Call ``write(temporary_path)`` in the target's folder, then rename it onto ``path``.

    Readers never see a half-written file and a failure leaves nothing behind (an
    existing file stays as it was).
    """
    temporary = path.with_name(f".{path.stem}.{secrets.token_hex(4)}.tmp{path.suffix}")
    try:
        write(temporary)
        os.replace(temporary, path)
    except OSError as err:
        raise CLIError(f"cannot write {path}: {err.strerror or err}") from None
    finally:
        with contextlib.suppress(OSError):
            temporary.unlink()


def _print_selection(result) -> None:
    cols = ["n_components", "covariance_type", "log_likelihood", "n_parameters", "bic", "icl", "degenerate", "rank"]
    table = result.table.assign(_excluded=result.table["rank"].isna(),  # chosen-eligible rows first
                                # a count, not 32.00 (a failed fit's NaN made the column float)
                                n_parameters=result.table["n_parameters"].round().astype("Int64"))
    table = table.sort_values(["_excluded", result.criterion])[cols]
    with pd.option_context("display.width", 120, "display.float_format", "{:.2f}".format):
        print(table.head(12).to_string(index=False))
    best = result.best_estimator_
    print(f"\nChosen by {result.criterion.upper()}: K={best.n_components}, covariance={best.covariance_type}")


def _select(data, ks, cov_types, seed, quiet):
    from sklearn.exceptions import ConvergenceWarning

    from .em import DegenerateFitWarning
    from .selection import select_model

    with warnings.catch_warnings():
        # Degenerate and unconverged fits are marked in the table the command prints.
        warnings.simplefilter("ignore", DegenerateFitWarning)
        warnings.simplefilter("ignore", ConvergenceWarning)
        # The frame, so that messages name its columns (not x0, x1...).
        return select_model(data.astype(float), ks, covariance_types=cov_types, random_state=seed,
                            progressbar=not quiet)


# ------------------------------------------------------------- assignments CSV
def _standardize_note(args) -> None:
    """``--standardize`` is accepted but the data are fitted as they are: the models are unit-invariant."""
    if getattr(args, "standardize", False):
        _note("--standardize is no longer needed and is ignored: EM and the Bayesian model standardise every "
              "column internally and report in the data's units (results are identical up to units), so the "
              "data are fitted as they are and a saved fit applies to new rows in the same units")


def _load_fit(path: str):
    """A fit saved by ``bayesgmm fit`` (BayesianGMM.save), with one-line errors."""
    from .model import BayesianGMM

    file = _existing_file(path)
    try:
        return BayesianGMM.load(file)
    except OSError as err:
        raise CLIError(f"cannot read {path}: {err.strerror or err}") from None
    except (ValueError, TypeError) as err:
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise CLIError(f"{message} (expected a fit saved by 'bayesgmm fit --out FILE')") from None


def _fit_features(model) -> list[str]:
    from ._posterior import feature_names

    return [str(f) for f in feature_names(model.idata_)]


def _hdi_prob(args) -> float:
    """The interval probability of ``--intervals`` (``--hdi-prob`` only with it)."""
    if args.hdi_prob is not None and not args.intervals:
        raise CLIError("--hdi-prob applies only with --intervals")
    return 0.94 if args.hdi_prob is None else args.hdi_prob


def _assignment_table(posterior, data: pd.DataFrame, row_ids: pd.Series, intervals: bool, hdi_prob: float,
                      assigned=None) -> pd.DataFrame:
    """One row per data row: its id, most_probable, max_probability, uncertainty, ``p_<k>`` per component
    (with ``p_<k>_lower``/``p_<k>_upper``, the HDI across draws, if ``intervals``), and ``log_density``.

    ``posterior`` is an aligned fit (labels those of the summaries and the report);
    ``assigned``, :func:`bayesgmm.assignments` of ``data`` already computed, is reused.
    """
    from .summaries import assignments, predictive_density

    if assigned is None or (intervals and float(assigned.attrs.get("hdi_prob", -1)) != hdi_prob):
        assigned = assignments(posterior, data, hdi_prob=hdi_prob, relabel_draws=False)
    density = predictive_density(posterior, data)
    labels = [str(k) for k in assigned["component"].values]
    table = pd.DataFrame({row_ids.name: row_ids.to_numpy(),
                          "most_probable": assigned["most_probable"].values,
                          "max_probability": assigned["max_probability"].values,
                          "uncertainty": assigned["uncertainty"].values})
    probability = assigned["probability"].values
    for j, k in enumerate(labels):
        table[f"p_{k}"] = probability[:, j]
    if intervals:
        lower, upper = assigned["probability_lower"].values, assigned["probability_upper"].values
        for j, k in enumerate(labels):
            table[f"p_{k}_lower"] = lower[:, j]
            table[f"p_{k}_upper"] = upper[:, j]
    table["log_density"] = density["log_density"].values
    return table


def _write_assignments(path: Path, table: pd.DataFrame) -> None:
    _write_atomically(path, lambda tmp: table.to_csv(tmp, index=False))
    counts = table["most_probable"].value_counts().sort_index()
    per = ", ".join(f"{k}: {n}" for k, n in counts.items())
    print(f"Assignments of {len(table)} rows (most probable component {per}) written to {path.resolve()}")


def _check_assignments_out(args, inputs: tuple[tuple[str, str], ...] = ()) -> Path | None:
    """The ``--assignments`` path of fit/report checked like ``--out`` (and not the same file)."""
    if args.assignments is None:
        if args.intervals or args.hdi_prob is not None:
            raise CLIError(f"{'--intervals' if args.intervals else '--hdi-prob'} applies only with --assignments")
        return None
    _hdi_prob(args)
    path = _check_out(args.assignments, args.force, args.data, option="--assignments", inputs=inputs)
    if path.resolve() == Path(args.out).expanduser().resolve():
        raise CLIError("--assignments and --out name the same file; give two names")
    return path


# -------------------------------------------------------------------- commands
def _cmd_em(args) -> int:
    _standardize_note(args)
    data, _ = load_data(args.data, args.columns, args.dropna, drop=args.drop)
    ks = args.components or args.select
    _check_rows(data, ks)
    cov_types = ("full", "tied", "diag", "spherical") if args.covariance == "all" else (args.covariance,)
    result = _select(data, ks, cov_types, args.seed, args.quiet)
    _print_selection(result)
    collapsed = int(result.table["degenerate"].sum())
    if collapsed > len(result.table) / 2:
        _note(f"{collapsed} of {len(result.table)} fits had collapsed components (a component on too few "
              "distinct rows); fewer components or another covariance type may suit these data better")
    best = result.best_estimator_
    print("weights:", np.round(best.weights_, 3))
    # Four significant digits, whatever the units (1e-12 values must not print as 0.000).
    with pd.option_context("display.float_format", "{:.4g}".format):
        print("means:\n", pd.DataFrame(best.means_, columns=data.columns).to_string())
    return 0


def _cmd_fit(args) -> int:
    from .fit_settings import fit_settings
    from .model import BayesianGMM

    out = _check_out(args.out, args.force, args.data)
    assignments_out = _check_assignments_out(args)
    _standardize_note(args)
    table = load_table(args.data, args.columns, args.drop, args.dropna)
    data = table.data
    _check_rows(data, [args.components])
    sampler = _sampler_values(args)
    kwargs = fit_settings(_nuts_options(args, sampler["method"]), **sampler, random_seed=args.seed,
                          progressbar=not args.quiet)
    model = BayesianGMM(args.components, covariance_type=args.covariance, priors={"rounding": args.rounding})
    # The verdict is printed below; fit's warning would print the same paragraph once more.
    idata = model.fit(data, **{**kwargs, "check_diagnostics": False})
    if idata is not None:
        from .diagnostics import assess

        # The verdict is the first thing printed about the posterior (reasons and advice below it).
        print(assess(idata).details())
    _write_atomically(out, model.save)
    print(f"Saved the posterior to {out.resolve()}")
    if assignments_out is not None:
        _write_assignments(assignments_out, _assignment_table(model.aligned_posterior(), data, table.row_ids,
                                                              args.intervals, _hdi_prob(args)))
    return 0


def _sampler_values(args) -> dict:
    """``--method``, ``--draws``, ``--tune``, ``--chains``, unset ones at their defaults (``FIT_DEFAULTS``)."""
    from .fit_settings import FIT_DEFAULTS

    return {name: FIT_DEFAULTS[name] if getattr(args, name) is None else getattr(args, name)
            for name in _SAMPLER_FLAGS}


_SAMPLER_FLAGS = ("method", "draws", "tune", "chains")
_NUTS_FLAGS = ("sampler", "target_accept")


def _nuts_options(args, method: str) -> dict:
    """``--sampler`` and ``--target-accept`` where given; an error with ``--method advi`` (they are NUTS's)."""
    options = {name: getattr(args, name) for name in _NUTS_FLAGS if getattr(args, name) is not None}
    if options and method != "nuts":
        flags = ", ".join("--" + name.replace("_", "-") for name in options)
        raise CLIError(f"{flags} set(s) NUTS's sampler; --method {method} does not use it")
    return options


def _cmd_report(args) -> int:
    from . import analysis as analysis_module
    from . import report
    from .analysis import AnalysisSettings

    inputs = (("fit", args.posterior),) if args.posterior else ()
    out = _check_out(args.out, args.force, args.data, inputs=inputs)
    assignments_out = _check_assignments_out(args, inputs)
    _standardize_note(args)
    extra = {}
    if args.posterior:
        table, settings, extra = _report_from_posterior(args)
    else:
        table = load_table(args.data, args.columns, args.drop, args.dropna)
        sampler = _sampler_values(args)
        settings = AnalysisSettings(
            n_components=args.components, select=[args.components] if args.components else args.select or
            AnalysisSettings().select, **sampler, seed=args.seed, progressbar=not args.quiet,
            source=str(args.data), dropped_rows=table.dropped, k_rule=args.k_rule,
            fit_options=_nuts_options(args, sampler["method"]), rounding=args.rounding)
    data = table.data
    _check_rows(data, settings.ks)
    settings.fit_kwargs()  # the fit settings are checked before anything is fitted
    if not args.quiet:
        what = "summaries of the saved fit" if args.posterior else "Bayesian fits, summaries"
        print(f"Building the report (EM model selection, {what})...", file=sys.stderr)
    result = analysis_module.analyse(data, settings, **extra)
    text = report.render_report(result)
    _write_atomically(out, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    print(f"Report written to {out.resolve()}")
    if assignments_out is not None:
        _write_assignments(assignments_out, _assignment_table(result.posterior, data, table.row_ids, args.intervals,
                                                              _hdi_prob(args), assigned=result.assignments))
    return 0


def _report_from_posterior(args):
    """``report --posterior``: the saved fit's K and covariance type, its features matched to the data."""
    from .analysis import AnalysisSettings
    from .fit_settings import FIT_DEFAULTS

    given = [f"--{name.replace('_', '-')}" for name in (*_SAMPLER_FLAGS, *_NUTS_FLAGS)
             if getattr(args, name) is not None]
    if args.select is not None:
        given.insert(0, "--select")
    if given:
        raise CLIError(f"{', '.join(given)} cannot be used with --posterior: the report uses the saved fit "
                       f"{args.posterior} instead of fitting")
    model = _load_fit(args.posterior)
    K, covariance = model.n_components, model.covariance_type
    if args.components is not None and args.components != K:
        raise CLIError(f"--components {args.components} does not match the saved fit, which has K={K}")
    table = load_table(args.data, args.columns, args.drop, args.dropna, features=_fit_features(model))
    _check_same_data(model, table.data, args)
    idata = model.idata_
    post = idata.posterior
    settings = AnalysisSettings(
        n_components=K, select=[K], covariance_types=(covariance,), seed=_stored_seed(idata, args.seed),
        method=str(idata.attrs.get("inference_method", FIT_DEFAULTS["method"])),
        draws=int(post.sizes.get("draw", FIT_DEFAULTS["draws"])), chains=int(post.sizes.get("chain", 1)),
        tune=int(post.attrs["tuning_steps"]) if "tuning_steps" in post.attrs else FIT_DEFAULTS["tune"],
        progressbar=not args.quiet,
        source=str(args.data), dropped_rows=table.dropped, loo_neighbours=0)
    return table, settings, {"models": {K: model}}


def _stored_seed(idata, default: int) -> int:
    try:
        return int(idata.attrs.get("random_seed", default))
    except (TypeError, ValueError):
        return default


def _check_same_data(model, data: pd.DataFrame, args) -> None:
    """A report describes a fit on its own data: the CSV's rows must be those the fit was made on."""
    idata = model.idata_
    if "observed_data" not in idata.groups() or "obs" not in idata.observed_data:
        return
    obs = idata.observed_data["obs"]
    if "feature" in obs.dims:
        obs = obs.transpose(..., "feature")
    fitted = np.asarray(obs.values, dtype=float)
    if fitted.shape != data.shape or not np.allclose(fitted, data.to_numpy(), rtol=1e-9, atol=0.0):
        rows = f"{fitted.shape[0]} rows" if fitted.shape[0] != len(data) else "the same number of rows, other values"
        raise CLIError(f"{args.data} is not the data {args.posterior} was fitted to ({len(data)} rows, the fit "
                       f"has {rows}); use 'bayesgmm assign {args.posterior} {args.data} --out FILE' for new rows")


def _cmd_assign(args) -> int:
    """Per-row assignments of new rows under a saved fit."""
    hdi_prob = _hdi_prob(args)
    out = _check_out(args.out, args.force, args.data, inputs=(("fit", args.posterior),))
    model = _load_fit(args.posterior)
    table = load_table(args.data, args.columns, args.drop, args.dropna, features=_fit_features(model), min_rows=1)
    result = _assignment_table(model.aligned_posterior(), table.data, table.row_ids, args.intervals, hdi_prob)
    _write_assignments(out, result)
    return 0


def _print_posterior(summ) -> None:
    """The posterior means, sds, intervals and R-hat of the weights, means and sds, one row each."""
    rows = []
    for var in ("weights", "means", "stds"):
        frame = summ[var].to_dataframe().unstack("metric")[var]
        frame = frame[[c for c in ("mean", "sd", "hdi_3%", "hdi_97%", "r_hat") if c in frame.columns]]
        frame.index = [f"{var}{list(i) if isinstance(i, tuple) else [i]}" for i in frame.index]
        rows.append(frame)
    with pd.option_context("display.width", 120, "display.float_format", "{:.3f}".format):
        print(pd.concat(rows).to_string())


def _cmd_demo(args) -> int:
    """The whole pipeline once on Old Faithful: what it prints and the report come from the same analysis."""
    from .analysis import AnalysisSettings, analyse
    from .datasets import load_faithful
    from .report import render_report

    out = _check_out(args.out, force=True)  # the demo always refreshes its report
    data = load_faithful()
    settings = AnalysisSettings(draws=args.draws, tune=args.draws, progressbar=not args.quiet,
                                source="bayesgmm/data/faithful.csv (bundled)")
    print(f"Old Faithful: {len(data)} eruptions, columns {list(data.columns)}\n")
    if not args.quiet:
        print("Fitting (EM model selection, Bayesian fits, summaries)...", file=sys.stderr)
    analysis = analyse(data, settings)
    ks = settings.ks
    print(f"EM model selection (K = {ks[0]}..{ks[-1]}, {', '.join(settings.covariance_types)} covariances), "
          "best 12 by BIC:")
    _print_selection(analysis.selection)
    sizes = analysis.idata.posterior.sizes  # the draws made ("auto" decides how many)
    print(f"\nChoice of K: {analysis.k_choice.headline()}")
    print(f"\nBayesian mixture, K={analysis.K} with {analysis.covariance_type} covariance, "
          f"NUTS ({analysis.idata.attrs.get('sampler')}) {sizes['chain']} chains x {sizes['draw']} draws, "
          "labels aligned to EM:")
    # The verdict before any number: reliable, or why not and what to do.
    print(analysis.verdict.details())
    _print_posterior(analysis.summary)
    text = render_report(analysis)
    _write_atomically(out, lambda tmp: tmp.write_text(text, encoding="utf-8"))
    print(f"\nReport written to {out.resolve()}")
    return 0


class _ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad flag is a one-line CLIError (exit code 2) instead of usage text and SystemExit."""

    def error(self, message):
        raise CLIError(f"{message} (see '{self.prog} --help')")


_CSV_HELP = ("CSV file (delimiter and decimal commas detected; a header line is expected, a first row of numbers "
             "is read as data)")


def _column_options(p, what: str = "use") -> None:
    picks = p.add_mutually_exclusive_group()
    picks.add_argument("--columns", type=_name_list,
                       help=f"comma-separated numeric columns to {what} (default: all but ID-like columns)")
    picks.add_argument("--drop", type=_name_list, help="comma-separated columns to leave out")
    p.add_argument("--dropna", action="store_true", help="drop rows with missing values (else refuse)")


def _data_options(p) -> None:
    p.add_argument("data", help=_CSV_HELP)
    _column_options(p)
    p.add_argument("--standardize", action="store_true",
                   help="no longer needed (the models standardise internally and report in data units): "
                        "accepted, with a note, and the data are fitted as they are")
    p.add_argument("--seed", type=_seed, default=0, help="random seed, 0..4294967295")
    p.add_argument("--quiet", action="store_true",
                   help="no progress output or library warnings (our diagnostics are still printed)")


def _sampler_options(p) -> None:
    """The Bayesian fit's flags; unset, they are those of every fit (``FIT_DEFAULTS``, see ``_sampler_values``)."""
    from .fit_settings import FIT_DEFAULTS, SAMPLERS

    p.add_argument("--method", choices=["nuts", "advi"], default=None,
                   help=f"default: {FIT_DEFAULTS['method']}")
    p.add_argument("--draws", type=_or_auto(_positive_int), default=None,
                   help="draws per chain (default: auto: with nutpie, sample until the diagnostics pass, checked "
                        "at 1000 to 10000 draws per chain; 1000 otherwise)")
    p.add_argument("--tune", type=_or_auto(_nonnegative_int), default=None,
                   help="warm-up iterations per chain (default: auto: 2000 with nutpie, 1000 otherwise)")
    p.add_argument("--chains", type=_or_auto(_positive_int), default=None,
                   help="default: auto: 4 with nutpie, 2 otherwise")
    p.add_argument("--sampler", choices=("auto", *SAMPLERS), default=None,
                   help=f"NUTS's implementation (default: {FIT_DEFAULTS['sampler']}: the environment variable "
                        "BAYESGMM_SAMPLER if set, else nutpie, at target acceptance 0.97)")
    p.add_argument("--target-accept", type=_probability, default=None,
                   help="NUTS target acceptance rate in (0, 1) (default: the sampler's)")
    p.add_argument("--rounding", type=_parse_rounding, default="auto",
                   help="the step each feature was recorded to, in its units: one number, one per feature "
                        "(comma-separated), 0 for exact values, or 'auto' (default: for every feature with tied "
                        "values, the median spacing of its distinct values); the rounding error's variance "
                        "step^2/12 is added to every component's covariance")


def _output_options(p, assignments: bool = True) -> None:
    p.add_argument("--out", required=True)
    p.add_argument("--force", action="store_true",
                   help="overwrite --out" + (" and --assignments" if assignments else "") + " if it exists")


def _interval_options(p) -> None:
    p.add_argument("--intervals", action="store_true",
                   help="add p_<k>_lower and p_<k>_upper: the HDI of each probability across posterior draws")
    p.add_argument("--hdi-prob", type=_probability, default=None,
                   help="probability of the --intervals HDI, in (0, 1) (default: 0.94)")


def _assignments_options(p) -> None:
    p.add_argument("--assignments", metavar="CSV", default=None,
                   help="also write the per-row assignments of the training rows (as 'bayesgmm assign' does)")
    _interval_options(p)


def build_parser() -> argparse.ArgumentParser:
    from .analysis import K_RULES, AnalysisSettings
    from .fit_settings import FIT_DEFAULTS

    parser = _ArgumentParser(prog="bayesgmm", description="Gaussian mixtures by EM and by Bayes.")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="the main job on the bundled Old Faithful data")
    demo.add_argument("--out", default="report.html")
    demo.add_argument("--draws", type=_or_auto(_positive_int), default=FIT_DEFAULTS["draws"],
                      help="NUTS draws and tuning steps per chain (default: auto, see 'bayesgmm fit --help')")
    demo.add_argument("--quiet", action="store_true")
    demo.set_defaults(func=_cmd_demo)

    em = sub.add_parser("em", help="EM model selection")
    _data_options(em)
    group = em.add_mutually_exclusive_group()
    group.add_argument("--components", type=_parse_range)
    group.add_argument("--select", type=_parse_range, default=list(range(1, 10)))
    em.add_argument("--covariance", default="all", choices=["full", "tied", "diag", "spherical", "all"])
    em.set_defaults(func=_cmd_em)

    fit = sub.add_parser("fit", help="fit the Bayesian mixture and save the posterior (netCDF)")
    _data_options(fit)
    _sampler_options(fit)
    fit.add_argument("--components", type=_positive_int, required=True)
    fit.add_argument("--covariance", default="full", choices=["full", "tied", "diag", "spherical"])
    _output_options(fit)
    _assignments_options(fit)
    fit.set_defaults(func=_cmd_fit)

    report = sub.add_parser("report", help="write a self-contained HTML clustering report")
    _data_options(report)
    _sampler_options(report)
    group = report.add_mutually_exclusive_group()
    group.add_argument("--components", type=_positive_int)
    group.add_argument("--select", type=_parse_range, default=None,
                       help=f"the K of the EM grid (default: {_format_ks(AnalysisSettings().select)})")
    report.add_argument("--k-rule", choices=K_RULES, default=AnalysisSettings().k_rule,
                        help="how K is chosen: EM's BIC, LOO's winner when it beats BIC's K by more than 2 dse "
                             "(default), or the sparse mixture's posterior mode of occupied clusters")
    report.add_argument("--posterior", metavar="FIT", default=None,
                        help="build the report from a fit saved by 'bayesgmm fit' instead of sampling")
    _output_options(report)
    _assignments_options(report)
    report.set_defaults(func=_cmd_report)

    assign = sub.add_parser("assign", help="per-row assignments of new rows under a saved fit (CSV)")
    assign.add_argument("posterior", metavar="FIT", help="a fit saved by 'bayesgmm fit --out FIT'")
    assign.add_argument("data", help=_CSV_HELP + "; its columns are matched to the fit's features by name")
    _column_options(assign, what="match to the fit's features")
    _interval_options(assign)
    _output_options(assign, assignments=False)
    assign.add_argument("--quiet", action="store_true", help="no library warnings")
    assign.set_defaults(func=_cmd_assign)
    return parser


def _format_ks(ks: list[int]) -> str:
    return f"{ks[0]}..{ks[-1]}" if ks == list(range(ks[0], ks[-1] + 1)) else ",".join(map(str, ks))


_LIBRARY_LOGGERS = ("pymc", "pytensor", "arviz", "numba", "jax", "nutpie")
_PACKAGE_DIR = str(Path(__file__).resolve().parent)


def _warning_origin(depth: int = 2) -> str:
    """The file of the code that called ``warnings.warn`` (seen from inside ``showwarning``)."""
    frame = sys._getframe(depth)
    while frame is not None and frame.f_globals.get("__name__") == "warnings":
        frame = frame.f_back
    return frame.f_code.co_filename if frame is not None else ""


@contextlib.contextmanager
def _output_control(quiet: bool, uses_pymc: bool = False):
    """Route warnings: the package's own (divergences, R-hat, collapsed fits) always print as one line;
    other libraries' warnings and their INFO/WARNING log lines are dropped with ``quiet``."""
    if quiet and uses_pymc:
        import pymc  # noqa: F401  (importing PyMC/PyTensor resets their loggers' levels: do it first)
    saved = {name: logging.getLogger(name).level for name in _LIBRARY_LOGGERS}

    def show(message, category, filename, lineno, file=None, line=None):
        text = str(message).strip().splitlines()[0] if str(message).strip() else category.__name__
        origin = _warning_origin()
        ours = (category.__module__.startswith("bayesgmm")
                or (issubclass(category, UserWarning) and origin.startswith(_PACKAGE_DIR)))
        if ours:
            print(f"bayesgmm: warning: {text}", file=sys.stderr)
        elif not quiet:
            print(f"warning ({category.__name__}): {text}", file=sys.stderr)

    try:
        if quiet:
            for name in _LIBRARY_LOGGERS:
                logging.getLogger(name).setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.showwarning = show
            yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def main(argv: list[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        with _output_control(getattr(args, "quiet", False), args.command in ("fit", "report", "assign", "demo")):
            return args.func(args)
    except CLIError as err:
        print(f"bayesgmm: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except (ValueError, TypeError) as err:  # the library's own input checks
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"bayesgmm: error: {message}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as err:  # anything else: one line, not a deep traceback
        if os.environ.get("BAYESGMM_TRACEBACK"):
            raise
        message = str(err).strip().splitlines()[0] if str(err).strip() else ""
        print(f"bayesgmm: error: unexpected {type(err).__name__}: {message} (set BAYESGMM_TRACEBACK=1 to see "
              "the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
