"""nutpie's numba model, with the two C callbacks cached on disk between processes.

``nutpie.compile_pymc_model`` compiles PyMC's log-density and its gradient with
PyTensor's numba backend (cached on disk by PyTensor 2.38: 0.08 s in a second
process) and wraps it in two ``numba.cfunc`` callbacks (log-density and gradient;
the draws' "expansion" to every variable) that nutpie's Rust sampler calls. Those
wrappers close over the model's data arrays, which numba refuses to cache ("dynamic
globals"), so every process compiled them again: 7.7-8.2 s of a K=3 Old Faithful fit
whose draws take about as long (see docs/sampling.md).

Here the wrappers are generated from source that reads the data through nutpie's
``user_data`` pointers instead, and are registered with PyTensor's numba cache
locator under a key that covers everything they are compiled from (their source,
PyTensor's key of the function they call, the data's layout, the versions), so numba
caches them like PyTensor's own functions. The log-density, its gradient and the
draws are those of ``nutpie.compile_pymc_model`` (the tests compare the draws).

This reads nutpie's internals (pinned below 0.17 in the ``nutpie`` extra); where they
or PyTensor's cache are not as expected, :func:`compile_model` falls back to
``nutpie.compile_pymc_model`` (slower to compile, same draws).
"""

from __future__ import annotations

import hashlib
import threading
import warnings

import numpy as np

__all__ = ["compile_model"]

# Part of every cache key: change it whenever the generated source's meaning changes.
_WRAPPER_VERSION = "1"
# The warning filters that turn "cannot cache" into a fallback are process-wide.
_COMPILE_LOCK = threading.Lock()

_LOGP_SOURCE = """
def logp_callback(dim, x_, out_, logp_, user_data_):
    if dim != N_DIM:
        return -1
    try:
        x = numba.carray(x_, (N_DIM,))
        out = numba.carray(out_, (N_DIM,))
        logp = numba.carray(logp_, ())
        shared = numba.carray(user_data_, (), RECORD)["shared"]
{extract}
        logp_value, grad = INNER(x{arguments})
        logp[()] = logp_value
        out[...] = grad
        if not np.all(np.isfinite(out)):
            return 3
        if not np.isfinite(logp_value):
            return 4
    except Exception:
        return 1
    return 0
"""

_EXPAND_SOURCE = """
def expand_callback(dim, expanded, x_, out_, user_data_):
    if dim != N_DIM:
        return -1
    if expanded != N_EXPANDED:
        return -1
    try:
        x = numba.carray(x_, (N_DIM,))
        out = numba.carray(out_, (N_EXPANDED,))
        shared = numba.carray(user_data_, (), RECORD)["shared"]
{extract}
        (values,) = INNER(x{arguments})
        out[...] = values
    except Exception:
        return -2
    return 0
"""


def _shared_reads(names: list[str], shared_data: dict[str, np.ndarray]) -> tuple[str, str]:
    """Source lines that view each shared array through its ``user_data`` pointer, and the call's arguments."""
    lines, arguments = [], []
    for i, name in enumerate(names):
        array = shared_data[name]
        shape = "".join(f"shared['shape'][{name!r}][{axis}], " for axis in range(array.ndim))
        lines.append(f"        s{i} = numba.carray(address_as_void_pointer(shared['data'][{name!r}][()]), "
                     f"({shape}), np.dtype({array.dtype.str!r}))")
        arguments.append(f", s{i}")
    return "\n".join(lines) or "        pass", "".join(arguments)


def _cached_callback(template: str, name: str, signature, inner, shared_names: list[str],
                     shared_data: dict[str, np.ndarray], record_dtype, constants: dict):
    """``numba.cfunc(signature, cache=True)`` of the generated ``name`` that calls ``inner``."""
    import numba
    import nutpie
    import pytensor
    from nutpie.compile_pymc import address_as_void_pointer
    from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS

    inner_key = CACHED_SRC_FUNCTIONS.get(getattr(inner, "py_func", None))
    if inner_key is None:
        raise RuntimeError("PyTensor did not register the compiled log-density with its numba cache")
    extract, arguments = _shared_reads(shared_names, shared_data)
    source = template.format(extract=extract, arguments=arguments)
    key = hashlib.sha256(repr((_WRAPPER_VERSION, source, inner_key, str(record_dtype), sorted(constants.items()),
                               nutpie.__version__, numba.__version__, pytensor.__version__)).encode()).hexdigest()
    # __name__ names an importable module: numba rebuilds a cached function's
    # environment from it when loading.
    namespace = dict(__name__=__name__, numba=numba, np=np, INNER=inner, RECORD=record_dtype,
                     address_as_void_pointer=address_as_void_pointer, **constants)
    exec(compile(source, f"<bayesgmm nutpie {name}>", "exec"), namespace)
    function = namespace[name]
    CACHED_SRC_FUNCTIONS[function] = key
    with _COMPILE_LOCK, warnings.catch_warnings():
        # A wrapper numba cannot cache must not pass silently (it would cost the
        # compile in every process again): it falls back instead, with a warning.
        warnings.filterwarnings("error", message="Cannot cache compiled function", category=numba.NumbaWarning)
        return numba.cfunc(signature, cache=True)(function)


def _compile_cached(model, initial_point_fn):
    import numba
    from nutpie import compile_pymc as nutpie_pymc

    n_dim, n_expanded, logp_fn, expand_fn, initial_point, shape_info = nutpie_pymc._make_functions(
        model, mode="NUMBA", compute_grad=True, join_expanded=True, pymc_initial_point_fn=initial_point_fn,
        var_names=None)
    shared_data, shared_vars = {}, {}
    for variable in [*logp_fn.get_shared(), *expand_fn.get_shared()]:
        if variable.name in shared_vars and shared_vars[variable.name] is not variable:
            raise ValueError(f"Shared variables must have unique names: {variable.name}")
        shared_data[variable.name] = np.array(variable.get_value(), order="C", copy=True)
        shared_vars[variable.name] = variable
    for value in shared_data.values():
        value.flags.writeable = False
    user_data = nutpie_pymc.make_user_data(shared_vars, shared_data)
    double = numba.types.CPointer(numba.types.double)
    logp_signature = numba.types.int64(numba.types.uint64, double, double, double, numba.types.voidptr)
    expand_signature = numba.types.int64(numba.types.uint64, numba.types.uint64, double, double,
                                         numba.types.voidptr)
    logp_callback = _cached_callback(
        _LOGP_SOURCE, "logp_callback", logp_signature, logp_fn.vm.jit_fn, [v.name for v in logp_fn.get_shared()],
        shared_data, user_data.dtype, {"N_DIM": n_dim})
    expand_callback = _cached_callback(
        _EXPAND_SOURCE, "expand_callback", expand_signature, expand_fn.vm.jit_fn,
        [v.name for v in expand_fn.get_shared()], shared_data, user_data.dtype,
        {"N_DIM": n_dim, "N_EXPANDED": n_expanded})
    dims, coords = nutpie_pymc._prepare_dims_and_coords(model, shape_info)
    return nutpie_pymc.CompiledPyMCModel(
        _n_dim=n_dim, dims=dims, _coords=coords,
        _shapes={name: tuple(shape) for name, _, shape in zip(*shape_info)},
        compiled_logp_func=logp_callback, compiled_expand_func=expand_callback, initial_point_func=initial_point,
        shared_data=shared_data, user_data=user_data, n_expanded=n_expanded, shape_info=shape_info,
        logp_func=logp_fn, expand_func=expand_fn)


def compile_model(model, initial_points: dict | None = None, jitter_rvs: set | None = None):
    """What ``nutpie.compile_pymc_model(model, initial_points=..., jitter_rvs=...)`` returns, cached on disk.

    Parameters
    ----------
    model : pymc.Model
        The model (PyTensor operations with a numba implementation: numba compiles its graph).
    initial_points : dict, optional
        Start values by variable name, as for ``nutpie.compile_pymc_model``.
    jitter_rvs : set of variables, optional
        The variables whose start nutpie jitters (every free variable when None).
    """
    import nutpie
    from nutpie import compile_pymc as nutpie_pymc
    from pymc.initial_point import make_initial_point_fn

    jitter = set(model.free_RVs) if jitter_rvs is None else jitter_rvs
    try:
        initial_point_fn = nutpie_pymc._wrap_with_lock(make_initial_point_fn(
            model=model, overrides=initial_points, default_strategy="support_point", jitter_rvs=jitter,
            return_transformed=True))
        return _compile_cached(model, initial_point_fn)
    except Exception as error:  # noqa: BLE001 - nutpie's own compile is the answer (it raises where the model is bad)
        warnings.warn(f"nutpie's callbacks could not be cached ({type(error).__name__}: {error}); compiling them "
                      "with nutpie.compile_pymc_model, as every process will", RuntimeWarning, stacklevel=2)
        return nutpie.compile_pymc_model(model, initial_points=initial_points, jitter_rvs=jitter)
