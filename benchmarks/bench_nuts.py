"""NUTS end to end: BayesianGMM against the textbook PyMC formulation.

Reference problem: N=1000 points in 2-D from 3 well separated Gaussians, 2 chains x
(500 tune + 500 draws), chains started at the EM means. Each variant runs in a fresh
Python process. "seconds" is end to end as the issue defines it: model build (with
the EM fit that starts the chains), compile and sampling, up to the InferenceData;
the import time of the libraries is printed beside it and a second ESS/s column
counts it too.

* textbook: ``pm.Mixture`` over a Python list of ``pm.MvNormal.dist`` components,
  PyMC's default sampler;
* bayesgmm, cold: our defaults with empty PyTensor and numba caches (a fresh machine);
* bayesgmm, warm: the same again in those caches, now filled by the cold run, and in
  this machine's own caches (which grow with everything compiled on it: PyTensor
  scans its whole cache index once per process).

Prints seconds, the minimum bulk ESS over weights and means, ESS per second, and
the ratio to the textbook formulation.

Usage: python benchmarks/bench_nuts.py [--skip-textbook]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

DATA = "from bayesgmm.datasets import make_mixture; X, truth = make_mixture(1000, 3, 2, random_state=0, separation=8)"

OURS = f"""
import time, json, warnings
t0 = time.perf_counter()
import arviz as az
from bayesgmm import BayesianGMM, PosteriorDiagnosticsWarning
{DATA}
imports = time.perf_counter() - t0
t0 = time.perf_counter()
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", category=PosteriorDiagnosticsWarning)  # the ESS is reported below
    idata = BayesianGMM(3).fit(X, draws=500, tune=500, chains=2, random_seed=1, progressbar=False)
elapsed = time.perf_counter() - t0
ess = az.ess(idata.posterior[["weights", "means"]], method="bulk")
print(json.dumps({{"seconds": elapsed, "imports": imports, "ess": min(float(ess[v].min()) for v in ess.data_vars)}}))
"""

TEXTBOOK = f"""
import time, json, warnings
t0 = time.perf_counter()
import numpy as np, pymc as pm, arviz as az
from bayesgmm import GaussianMixtureEM
{DATA}
imports = time.perf_counter() - t0
t0 = time.perf_counter()
K, D = 3, 2
em = GaussianMixtureEM(K, random_state=0).fit(X)
centre, spread = X.mean(0), X.std(0)
with pm.Model() as model:
    w = pm.Dirichlet("w", np.ones(K))
    comps, mus = [], []
    for k in range(K):
        chol, _, _ = pm.LKJCholeskyCov(f"chol{{k}}", n=D, eta=2.0, sd_dist=pm.HalfNormal.dist(spread),
                                       compute_corr=True)
        mu = pm.Normal(f"mu{{k}}", centre, 2 * spread, shape=D)
        mus.append(mu)
        comps.append(pm.MvNormal.dist(mu=mu, chol=chol))
    pm.Mixture("obs", w=w, comp_dists=comps, observed=X)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning, module="pymc")
        warnings.filterwarnings("ignore", "(overflow|invalid value|divide by zero) encountered", RuntimeWarning)
        idata = pm.sample(500, tune=500, chains=2, random_seed=1, progressbar=False,
                          initvals={{f"mu{{k}}": em.means_[k] for k in range(K)}}, compute_convergence_checks=False)
elapsed = time.perf_counter() - t0
ess = az.ess(idata.posterior[["w"] + [f"mu{{k}}" for k in range(K)]], method="bulk")
print(json.dumps({{"seconds": elapsed, "imports": imports, "ess": min(float(ess[v].min()) for v in ess.data_vars)}}))
"""


def run(code: str, env_extra: dict | None = None) -> dict:
    env = {**os.environ, **(env_extra or {})}
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    if out.returncode != 0:
        raise RuntimeError(out.stderr[-3000:])
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["wall"] = time.perf_counter() - start
    return result


def _median_of(code: str, repeats: int, env_extra: dict | None = None) -> list[dict]:
    return sorted((run(code, env_extra) for _ in range(max(1, repeats))), key=lambda r: r["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-textbook", action="store_true", help="skip the slow textbook run (~1 min)")
    parser.add_argument("--repeats", type=int, default=3, help="warm runs of ours per cache (the median is compared)")
    args = parser.parse_args()

    rows, medians = [], []
    if not args.skip_textbook:
        rows.append(("textbook pm.Mixture + MvNormal list", run(TEXTBOOK)))
    with tempfile.TemporaryDirectory() as cache:
        # A fresh machine: empty PyTensor and numba caches for the cold run, which
        # fills them for the warm runs after it.
        flags = os.environ.get("PYTENSOR_FLAGS", "")
        fresh = {"PYTENSOR_FLAGS": f"{flags},compiledir={cache}/pytensor" if flags else f"compiledir={cache}/pytensor",
                 "NUMBA_CACHE_DIR": f"{cache}/numba"}
        rows.append(("bayesgmm, cold (empty caches)", run(OURS, fresh)))
        warm_fresh = _median_of(OURS, args.repeats, fresh)
    warm_here = _median_of(OURS, args.repeats)
    for label, runs in (("warm, caches from the cold run", warm_fresh), ("warm, this machine's caches", warm_here)):
        for i, r in enumerate(runs):
            rows.append((f"bayesgmm, {label} #{i + 1}", r))
        medians.append((f"bayesgmm, {label} (median)", runs[len(runs) // 2]))

    print("Reference: N=1000, D=2, K=3; 2 chains x (500 tune + 500 draws); fresh process each")
    print("seconds: model build + compile + sampling; imports: library import time (not in seconds)")
    print(f"{'variant':<50} {'seconds':>8} {'imports':>8} {'min ESS':>8} {'ESS/s':>7} {'ESS/s incl. imports':>20}")
    for name, r in rows + medians:
        with_imports = r["ess"] / (r["seconds"] + r["imports"])
        print(f"{name:<50} {r['seconds']:8.1f} {r['imports']:8.1f} {r['ess']:8.0f} {r['ess'] / r['seconds']:7.1f} "
              f"{with_imports:20.1f}")
    if not args.skip_textbook:
        base = rows[0][1]["ess"] / rows[0][1]["seconds"]
        base_all = rows[0][1]["ess"] / (rows[0][1]["seconds"] + rows[0][1]["imports"])
        for name, r in [rows[1]] + medians:
            print(f"ESS/s ratio, {name} / textbook: {r['ess'] / r['seconds'] / base:.1f}x "
                  f"({r['ess'] / (r['seconds'] + r['imports']) / base_all:.1f}x counting imports)")


if __name__ == "__main__":
    main()
