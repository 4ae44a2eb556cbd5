"""The README's first example runs as written, and without a stray UserWarning from our own calls."""

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).parents[1] / "README.md"


def _first_look() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## A first look"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_quickstart_runs_under_warnings_as_errors():
    code = _first_look()
    assert "BayesianGMM" in code and "fit(" in code
    # The README's calls with the default draws (fewer would rightly be called unreliable), seeded.
    code = code.replace("gmm.fit(data, init=result.best_estimator_)",
                        "gmm.fit(data, init=result.best_estimator_, random_seed=0, progressbar=False)")
    assert "random_seed=0" in code
    run = subprocess.run([sys.executable, "-W", "error::UserWarning", "-c", code], capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Warning" not in run.stderr, run.stderr[-3000:]
