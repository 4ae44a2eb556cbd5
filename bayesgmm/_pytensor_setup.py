"""Point PyTensor's C backend at the system OpenBLAS.

PyTensor installed by pip cannot find a BLAS on its own: its detection looks for
``libcblas`` or a gfortran/OpenMP tool chain, which a plain Debian OpenBLAS does
not provide, and numpy's bundled OpenBLAS has renamed symbols. It then warns
"could not link to a BLAS installation" and falls back to slow Python ops.
``make install`` installs OpenBLAS (``scripts/ensure_blas.sh``); here we hand its
link flag to PyTensor, unless the user configured BLAS themselves. Setting the
flag also skips PyTensor's detection, which compiles test programs at start-up.
"""

from __future__ import annotations

import ctypes.util
import logging
import os
import sys
import traceback
from pathlib import Path


def _user_configured_blas() -> bool:
    if "blas__ldflags" in os.environ.get("PYTENSOR_FLAGS", ""):
        return True
    rc_files = os.environ.get("PYTENSORRC", str(Path.home() / ".pytensorrc"))
    for rc in rc_files.split(os.pathsep):
        try:
            text = Path(rc).read_text()
        except OSError:
            continue
        if "ldflags" in text:
            return True
    return False


def openblas_ldflags() -> str | None:
    """Linker flag for the system OpenBLAS, or None when there is none."""
    name = ctypes.util.find_library("openblas")
    return f"-l:{name}" if name else None


class _KnownFusionFailure(logging.Filter):
    """Drop PyTensor's log of one known, harmless rewrite failure (pytensor#2145).

    PyTensor 2.38's FusionOptimizer can order two fusions wrongly and fail with a
    ``KeyError`` in ``elemwise_to_scalar`` (seen with a sparse Dirichlet prior,
    ``alpha < 1``, under ADVI). PyTensor logs a traceback and skips that fusion;
    the compiled function is correct. Only records logged while handling exactly
    that exception are dropped; every other rewrite failure is still logged.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        exc = sys.exc_info()[1]
        if not isinstance(exc, KeyError) or exc.__traceback__ is None:
            return True
        return not any(frame.name == "elemwise_to_scalar" for frame in traceback.extract_tb(exc.__traceback__))


_FUSION_FILTER = _KnownFusionFailure()


def configure_pytensor() -> None:
    """Give PyTensor the OpenBLAS link flag and hide one known harmless rewrite log (idempotent, cheap)."""
    logger = logging.getLogger("pytensor.graph.rewriting.basic")
    if _FUSION_FILTER not in logger.filters:
        logger.addFilter(_FUSION_FILTER)
    if _user_configured_blas():
        return
    flags = openblas_ldflags()
    if flags is None:
        return
    import pytensor

    pytensor.config.blas__ldflags = flags
