"""Helpers shared by the CLI and report tests."""

import shutil

from bayesgmm.cli import main


def run_cli(args, capsys):
    """``bayesgmm ARGS`` in-process: (exit code, stdout, stderr)."""
    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def cli_error(args, capsys):
    """Exit code 2 and one error line (after notes on how the file was read at most), no traceback."""
    code, _, err = run_cli(args, capsys)
    lines = err.strip().splitlines()
    assert code == 2, err
    assert lines and lines[-1].startswith("bayesgmm: error:"), err
    assert all(line.startswith("bayesgmm: note:") for line in lines[:-1]), err
    assert "Traceback" not in err
    return lines[-1]


def find_chromium():
    """Path of a Chromium-like browser, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None
