#!/usr/bin/env bash
# PyTensor compiles its C backend against a system BLAS; pip wheels bring none it can link
# (numpy's bundled OpenBLAS has renamed symbols). Install Debian's OpenBLAS when it is
# missing and we may; bayesgmm then points PyTensor at it (bayesgmm/_pytensor_setup.py).
set -u
if ldconfig -p 2>/dev/null | grep -q "libopenblas.so"; then
    echo "OpenBLAS found: PyTensor will link to it."
    exit 0
fi
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = "0" ]; then
    echo "Installing OpenBLAS (Debian package libopenblas0-pthread) for PyTensor..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends libopenblas0-pthread >/dev/null \
        && echo "OpenBLAS installed." && exit 0
fi
echo "WARNING: no OpenBLAS found and it cannot be installed here (needs root and apt-get)."
echo "  Install it with your system package manager (e.g. 'sudo apt-get install libopenblas0')."
echo "  Without it bayesgmm still works: NUTS defaults to nutpie, which needs no BLAS."
exit 0
