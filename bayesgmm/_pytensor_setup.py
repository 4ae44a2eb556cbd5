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
import os
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


def configure_pytensor() -> None:
    """Give PyTensor the OpenBLAS link flag (idempotent, cheap)."""
    if _user_configured_blas():
        return
    flags = openblas_ldflags()
    if flags is None:
        return
    import pytensor

    pytensor.config.blas__ldflags = flags
