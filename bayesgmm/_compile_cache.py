"""An on-disk cache of the compiled NUTS log-density for :class:`~bayesgmm.BayesianGMM`.

PyTensor caches the C code it compiles, but not the graph work before it:
building the model's log-density, differentiating it and rewriting the graph
take ~2 s in every fresh Python process, longer than sampling the reference
problem. The compiled function pickles with its rewritten graph, and unpickling
skips all of that, so we keep one pickle per model structure next to PyTensor's
own compile cache (``<compiledir>/bayesgmm``; deleting it is always safe).

The key covers everything the graph depends on (model config, number of
features, the source of the modules that declare it, library versions and the
PyTensor settings); the data are not in the graph but in shared variables, which
are refreshed from the model on every load.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import sys
import tempfile
import warnings
from pathlib import Path


def _source_digest() -> str:
    # Every module of the package, not a list of the ones that build the graph today:
    # a list would go stale when a new module starts shaping the graph, and a stale
    # key would load the wrong log-density.
    digest = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def cache_dir() -> Path:
    """Where compiled functions are kept: ``<pytensor compiledir>/bayesgmm``."""
    import pytensor

    return Path(pytensor.config.compiledir) / "bayesgmm"


def cache_key(model_config: dict, n_features: int) -> str:
    """Hash of everything the compiled log-density depends on."""
    import numpy
    import pymc
    import pytensor

    cfg = pytensor.config
    parts = {
        "model": model_config,
        "n_features": int(n_features),
        "source": _source_digest(),
        "versions": [sys.version, numpy.__version__, pymc.__version__, pytensor.__version__],
        "pytensor": [str(getattr(cfg, name)) for name in ("floatX", "mode", "linker", "optimizer", "blas__ldflags",
                                                          "cxx", "gcc__cxxflags")],
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _refresh_data(function, model) -> None:
    # The pickled function holds its own copies of the model's shared variables (reached
    # through PyMC's _pytensor_function: ValueGradFunction has no public accessor in 5.28).
    for shared in function._pytensor_function.get_shared():
        if shared.name in model.named_vars:
            shared.set_value(model[shared.name].get_value(), borrow=True)


def enabled() -> bool:
    """False when the environment sets ``BAYESGMM_COMPILE_CACHE=0``."""
    return os.environ.get("BAYESGMM_COMPILE_CACHE", "1").strip().lower() not in ("0", "false", "no", "off")


def logp_dlogp_function(model, key: str, initial_point: dict, *, use_cache: bool | None = None):
    """``model.logp_dlogp_function(ravel_inputs=True)``, loaded from the cache when possible."""
    use_cache = enabled() if use_cache is None else use_cache
    path = cache_dir() / f"{key}.pkl"
    if use_cache and path.exists():
        try:
            with open(path, "rb") as fh:
                function = pickle.load(fh)
            _refresh_data(function, model)
            return function
        except Exception as err:  # a stale or truncated entry: rebuild it below
            warnings.warn(f"Ignoring unreadable compile cache entry {path} ({err}).", RuntimeWarning, stacklevel=2)
    function = model.logp_dlogp_function(ravel_inputs=True, initial_point=initial_point)
    if use_cache:
        _store(function, path)
    return function


def _store(function, path: Path) -> None:
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, delete=False, suffix=".tmp") as fh:
            tmp = fh.name
            _dump_without_data(function, fh)
        os.replace(tmp, path)  # atomic: concurrent processes never see half a file
    except Exception as err:  # a read-only or unpicklable cache only costs speed
        if tmp is not None and os.path.exists(tmp):
            os.remove(tmp)
        if not isinstance(err, OSError):
            warnings.warn(f"Could not cache the compiled log-density ({err}).", RuntimeWarning, stacklevel=3)


def _dump_without_data(function, fh) -> None:
    # The data are refreshed on load, so keep them out of the file (X can be large).
    import numpy as np

    shared = function._pytensor_function.get_shared()
    saved = [var.get_value(borrow=True) for var in shared]
    try:
        for var, value in zip(shared, saved):
            if var.name != "__weights":
                var.set_value(np.zeros((0,) * np.ndim(value), dtype=np.asarray(value).dtype))
        pickle.dump(function, fh, protocol=pickle.HIGHEST_PROTOCOL)
    finally:
        for var, value in zip(shared, saved):
            var.set_value(value, borrow=True)
