"""Out-of-core EM on Dask: N rows x 10 features in a Zarr store on disk, K=8 full.

For every N the data are written to a Zarr store block by block (never all in memory),
then a fresh process fits ``GaussianMixtureEM(8, "full")`` on ``da.from_zarr(...)``
from a given start for a fixed number of EM passes (tol=0), and reports its peak
resident memory (``getrusage``: the whole process, Python and imports included),
the median seconds of an EM pass (every pass reads the store again; the fastest of
two fits), and the time before EM: the checks-and-scaling pass and the pass that
reads the random sample the start is computed from.
For comparison, the in-memory NumPy fit of the first size (X loaded into RAM; only
up to 1e7 rows) runs the same passes.

Usage: python benchmarks/bench_dask.py [--sizes 1e6 1e7] [--with-1e8] [--iters 5] [--repeats 2]
       [--block-rows 250000] [--dir /tmp/bayesgmm-bench] [--keep] [--distributed]

1e8 rows x 10 float64 need 8 GB of disk (checked before writing) and take minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

D, K = 10, 8


def _truth(seed: int = 0):
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=4.0, size=(K, D))
    factors = rng.normal(scale=0.5, size=(K, D, D)) + np.eye(D)
    covariances = factors @ factors.transpose(0, 2, 1)
    weights = rng.dirichlet(np.full(K, 5.0))
    return weights, means, covariances


def write_store(path: Path, n: int, block_rows: int) -> float:
    """Write n rows of the mixture to a Zarr array, block by block; return seconds."""
    import zarr

    weights, means, covariances = _truth()
    chol = np.linalg.cholesky(covariances)
    start = time.perf_counter()
    try:  # zarr 3
        store = zarr.create_array(str(path), shape=(n, D), chunks=(block_rows, D), dtype="f8", compressors=None,
                                  overwrite=True)
    except AttributeError:  # zarr 2
        store = zarr.open_array(str(path), mode="w", shape=(n, D), chunks=(block_rows, D), dtype="f8",
                                compressor=None)
    for b, lo in enumerate(range(0, n, block_rows)):
        hi = min(lo + block_rows, n)
        rng = np.random.default_rng([1, b])
        labels = rng.choice(K, size=hi - lo, p=weights)
        block = rng.standard_normal((hi - lo, D))
        for k in range(K):
            rows = labels == k
            block[rows] = means[k] + block[rows] @ chol[k].T
        store[lo:hi] = block
    return time.perf_counter() - start


def _start():
    """The true parameters, perturbed: EM has work to do from there."""
    weights, means, covariances = _truth()
    rng = np.random.default_rng(2)
    precisions = np.linalg.inv(covariances * 1.3)
    return dict(weights_init=weights, means_init=means + rng.normal(scale=0.3, size=means.shape),
                precisions_init=precisions)


def fit_one(path: str, iters: int, in_memory: bool, distributed: bool, repeats: int = 2) -> dict:
    """Runs in a fresh process, so that its peak RSS is the fit's; the fastest of ``repeats`` fits."""
    import dask.array as da
    from sklearn.exceptions import ConvergenceWarning

    from bayesgmm import GaussianMixtureEM

    passes: list[tuple[float, float]] = []

    class Timed(GaussianMixtureEM):
        def _accumulate(self, X, sample_weight, params, resp_rows=None):
            t0 = time.perf_counter()
            out = super()._accumulate(X, sample_weight, params, resp_rows)
            if resp_rows is None:  # an EM pass, not the start's M-step
                passes.append((t0, time.perf_counter()))
            return out

    X = da.from_zarr(path)
    if in_memory:
        X = X.compute()
    client = None
    if distributed:
        from dask.distributed import Client, LocalCluster

        client = Client(LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None))
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = None
    for _ in range(repeats):
        passes.clear()
        model = Timed(K, covariance_type="full", tol=0.0, max_iter=iters, init_params="random_from_data",
                      random_state=0, **_start())
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=ConvergenceWarning)  # tol=0: a fixed number of passes
            t0 = time.perf_counter()
            model.fit(X)
            total = time.perf_counter() - t0
        em = [b - a for a, b in passes]
        run = dict(
            n=int(X.shape[0]), in_memory=in_memory, total_s=total, passes=len(em),
            s_per_iter=float(np.median(em)),
            before_em_s=passes[0][0] - t0,  # validation, scaling pass, start sample (dask)
            lower_bound=float(model.lower_bound_),
        )
        if result is None or run["s_per_iter"] < result["s_per_iter"]:
            result = run
    result.update(peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  rss_before_fit_mib=rss_before)
    if client is not None:
        result["worker_peak_rss_mib"] = list(client.run(
            lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024).values())
        client.close()
    return result


def _run_child(path: Path, iters: int, in_memory: bool, distributed: bool, repeats: int) -> dict:
    code = (f"import json, sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import bench_dask; "
            f"print(json.dumps(bench_dask.fit_one({str(path)!r}, {iters}, {in_memory}, {distributed}, {repeats})))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[1e6, 1e7])
    parser.add_argument("--with-1e8", action="store_true", help="also 1e8 rows (8 GB on disk)")
    parser.add_argument("--iters", type=int, default=5, help="EM passes per fit (tol=0)")
    parser.add_argument("--block-rows", type=int, default=250_000)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/bayesgmm-bench"))
    parser.add_argument("--repeats", type=int, default=2, help="fits per size (the fastest is reported)")
    parser.add_argument("--keep", action="store_true", help="keep the Zarr stores")
    parser.add_argument("--distributed", action="store_true",
                        help="fit on a LocalCluster (2 worker processes) instead of the threaded scheduler")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes] + ([int(1e8)] if args.with_1e8 else [])
    args.dir.mkdir(parents=True, exist_ok=True)

    print(f"D={D}, K={K}, full, {args.iters} EM passes from a given start, Zarr blocks of {args.block_rows:,} rows, "
          f"{'LocalCluster 2x1' if args.distributed else 'threaded scheduler'}, {os.cpu_count()} CPUs")
    header = (f"{'N':>12} {'mode':>6} {'write s':>8} {'before EM s':>11} {'s/iter':>8} {'RSS before fit':>14} "
              f"{'peak RSS MiB':>12}")
    print(header)
    rows = []
    for i, n in enumerate(sizes):
        path = args.dir / f"X_{n}.zarr"
        need = n * D * 8
        free = shutil.disk_usage(args.dir).free
        if need > 0.9 * free:
            print(f"{n:>12,} skipped: needs {need / 2**30:.1f} GiB, {free / 2**30:.1f} GiB free")
            continue
        written = write_store(path, n, args.block_rows)
        runs = [_run_child(path, args.iters, False, args.distributed, args.repeats)]
        if i == 0 and n <= 10_000_000:  # the in-memory reference (X and its standardised copy in RAM)
            runs.append(_run_child(path, args.iters, True, False, args.repeats))
        for r in runs:
            mode = "numpy" if r["in_memory"] else "dask"
            print(f"{n:>12,} {mode:>6} {written if mode == 'dask' else 0:>8.1f} {r['before_em_s']:>11.2f} "
                  f"{r['s_per_iter']:>8.3f} {r['rss_before_fit_mib']:>14.0f} {r['peak_rss_mib']:>12.0f}"
                  + (f"  workers {r['worker_peak_rss_mib']}" if 'worker_peak_rss_mib' in r else ""), flush=True)
            rows.append(r)
        if not args.keep:
            shutil.rmtree(path)
    dask_rows = [r for r in rows if not r["in_memory"]]
    if len(dask_rows) > 1:
        base = dask_rows[0]
        print("Scaling of s/iter vs the first size: " + ", ".join(
            f"{r['n']:.0e}: x{r['s_per_iter'] / base['s_per_iter']:.1f} for x{r['n'] / base['n']:.0f} rows"
            for r in dask_rows[1:]))


if __name__ == "__main__":
    main()
