"""Sphinx configuration: numpydoc API reference, MyST pages, notebooks executed in fast mode."""

import os
import shutil
from pathlib import Path

import bayesgmm

ROOT = Path(__file__).resolve().parents[1]

# The research notebooks live in ../notebooks (jupytext percent scripts); copy them in
# and execute them in fast mode so the rendered pages carry real outputs.
os.environ["BAYESGMM_FAST"] = "1"
# Like the test suite, the build pins PyMC's sampler: the default (nutpie) compiles each
# model structure once per machine (8-30 s each), which would dominate a fresh build.
os.environ.setdefault("BAYESGMM_SAMPLER", "pymc")
# The kernels must use matplotlib's inline backend so figures land in the pages.
os.environ.pop("MPLBACKEND", None)
_nb_dir = Path(__file__).parent / "notebooks"
_nb_dir.mkdir(exist_ok=True)
for source in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py")):
    shutil.copyfile(source, _nb_dir / source.name)

project = "bayesgmm"
author = "bayesgmm developers"
release = bayesgmm.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.intersphinx",
    "numpydoc",
    "myst_nb",
]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".py": "myst-nb"}
nb_custom_formats = {".py": ["jupytext.reads", {"fmt": "py:percent"}]}
nb_execution_mode = "force"
nb_execution_timeout = 900
nb_execution_raise_on_error = True
nb_merge_streams = True
exclude_patterns = ["_build", "conf.py", "**.ipynb_checkpoints", "jupyter_execute"]
myst_enable_extensions = ["dollarmath", "amsmath"]

autosummary_generate = True
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

intersphinx_mapping = {}
html_theme = "pydata_sphinx_theme"
html_title = "bayesgmm"
html_theme_options = {"navigation_with_keys": False}
suppress_warnings = ["mystnb.unknown_mime_type"]
