"""Simulation-based calibration harness (bayesgmm.validation): mechanics fast, a small real run slow."""

import json

import numpy as np
import pytest
from scipy.stats import multivariate_normal

from bayesgmm.validation import (
    HELD_OUT_POINTS,
    SBCSetting,
    estimate_runtime,
    format_sbc_table,
    load_sbc_results,
    mixture_quantities,
    normalised_ranks,
    plot_rank_histograms,
    run_sbc,
    sbc_replication,
    sbc_settings,
    sbc_table,
    timing_table,
    uniformity_tests,
)


# ------------------------------------------------------------------------- settings
def test_settings_grid_and_names():
    every = sbc_settings("all")
    assert len(every) == 16 and len({s.name for s in every}) == 16
    assert {s.method for s in every} == {"nuts", "advi"} and {s.n_components for s in every} == {2, 3}
    assert [s.name for s in sbc_settings("nuts-*-K3-D2")] == ["nuts-full-K3-D2", "nuts-diag-K3-D2"]
    assert [s.name for s in sbc_settings(["advi-diag-K2-D1", "advi-diag-K2-D1"])] == ["advi-diag-K2-D1"]
    assert sbc_settings("nuts-full-K2-D1", n_samples=80)[0].n_samples == 80
    nuts, advi = SBCSetting("nuts", "full", 2, 1, draws=200, thin=4), SBCSetting("advi", "full", 2, 1, draws=60)
    assert nuts.n_rank_draws == 100 and advi.n_rank_draws == 60 and advi.thin == 1
    assert SBCSetting(**nuts.to_dict()) == nuts


@pytest.mark.parametrize(
    "spec, error, match",
    [
        ("", ValueError, "No SBC setting"),
        ("nuts-full-2-1", ValueError, "METHOD-COVARIANCE"),
        ("hmc-full-K2-D1", ValueError, "method"),
        ("nuts-tied-K2-D1", ValueError, "covariance_type"),
        ("nuts-full-Kx-D1", ValueError, "integers"),
        ("nuts-*-K5-*", ValueError, "matches no setting"),
    ],
)
def test_bad_setting_names(spec, error, match):
    with pytest.raises(error, match=match):
        sbc_settings(spec)


def test_bad_setting_options():
    with pytest.raises(TypeError, match="Unknown setting option"):
        sbc_settings("all", n_rows=10)
    with pytest.raises(ValueError, match="n_features"):
        SBCSetting("nuts", "full", 2, 3)
    with pytest.raises(ValueError, match="no draw to rank"):
        SBCSetting("nuts", "full", 2, 1, draws=3, thin=4)
    with pytest.raises(ValueError, match="location"):
        SBCSetting("nuts", "full", 2, 1, priors={"location": 1.0})
    with pytest.raises(ValueError, match="Unknown prior"):
        SBCSetting("nuts", "full", 2, 1, priors={"etta": 1.0})


# ------------------------------------------------------------------------ quantities
def test_quantities_are_label_invariant_and_correct():
    rng = np.random.default_rng(0)
    S, K, D = 4, 3, 2
    weights = rng.dirichlet(np.ones(K), size=S)
    means = rng.normal(size=(S, K, D))
    A = rng.normal(size=(S, K, D, D))
    cov = A @ np.swapaxes(A, -1, -2) + 0.5 * np.eye(D)
    points = HELD_OUT_POINTS[D]
    q = mixture_quantities(weights, means, cov, points)
    q_chol = mixture_quantities(weights, means, cov, points, chol=np.linalg.cholesky(cov))
    for name in q:
        np.testing.assert_allclose(q[name], q_chol[name], rtol=1e-12, err_msg=name)
    perm = rng.permutation(K)
    q_perm = mixture_quantities(weights[:, perm], means[:, perm], cov[:, perm], points)
    for name in q:
        np.testing.assert_allclose(q[name], q_perm[name], rtol=1e-12, err_msg=name)
    for s in range(S):
        np.testing.assert_allclose([q[f"w({k + 1})"][s] for k in range(K)], np.sort(weights[s]))
        low = np.argmin(means[s, :, 0])
        assert q["mu_min[x0]"][s] == means[s, low, 0] and q["mu_min[x1]"][s] == means[s, low, 1]
        # Moments along feature 0 by the law of total variance; densities by scipy.
        m = weights[s] @ means[s, :, 0]
        assert q["mix_mean"][s] == pytest.approx(m)
        assert q["mix_var"][s] == pytest.approx(weights[s] @ (cov[s, :, 0, 0] + (means[s, :, 0] - m) ** 2))
        for name, x in zip(("lpd_a", "lpd_b", "lpd_c"), points):
            density = sum(weights[s, k] * multivariate_normal(means[s, k], cov[s, k]).pdf(x) for k in range(K))
            assert q[name][s] == pytest.approx(np.log(density), rel=1e-10)


def test_ranks_split_ties_at_random_and_normalise_uniformly():
    rng = np.random.default_rng(1)
    assert normalised_ranks(0.0, np.array([-1.0, -0.5, 2.0]), rng)[0] == 2
    # Every draw equal to the truth: the rank is uniform on 0..L, and so is u on (0, 1).
    ranks = np.array([normalised_ranks(1.0, np.ones(9), rng)[0] for _ in range(4000)])
    assert ranks.min() == 0 and ranks.max() == 9
    assert np.bincount(ranks, minlength=10).min() > 300
    u = np.array([normalised_ranks(t, rng.normal(size=19), rng)[1] for t in rng.normal(size=2000)])
    assert 0 < u.min() and u.max() < 1
    assert abs(u.mean() - 0.5) < 0.02


def test_uniformity_tests_flag_skewed_ranks_with_bonferroni():
    rng = np.random.default_rng(2)
    records = [{"setting": "calibrated", "u": {"a": float(v), "b": float(w)}, "error": None}
               for v, w in rng.uniform(size=(200, 2))]
    records += [{"setting": "biased", "u": {"a": float(v) ** 2, "b": float(w)}, "error": None}
                for v, w in rng.uniform(size=(200, 2))]
    records += [{"setting": "biased", "error": "RuntimeError: no start", "rep": 999}]
    tests = uniformity_tests(records)
    assert len(tests) == 4 and tests.attrs["n_tests"] == 8
    assert tests.attrs["threshold"] == pytest.approx(0.05 / 8)
    assert set(tests.loc[tests["reject"], "setting"] + "/" + tests.loc[tests["reject"], "quantity"]) == {"biased/a"}
    assert (tests["bins"] == 10).all() and (tests["n"] == 200).all()
    table = sbc_table(records)
    assert table.set_index("setting").loc["biased", "verdict"] == "MISCALIBRATED: a"
    assert table.set_index("setting").loc["calibrated", "verdict"] == "ok"
    assert table.set_index("setting").loc["biased", "failed"] == 1
    text = format_sbc_table(records)
    assert "MISCALIBRATED: a" in text and "Bonferroni over 8 tests" in text


def test_reliable_advi_fits_are_those_with_a_plateau_and_a_passing_pareto_k():
    from bayesgmm.validation import reliable_advi_fits

    rng = np.random.default_rng(3)
    records = []
    for i, u in enumerate(rng.uniform(size=200)):
        # The approximation is over-confident (U-shaped ranks) exactly where k-hat fails.
        failing = i % 2 == 0
        u = float(u ** 4 if failing and u < 0.5 else u)
        records.append({"setting": "advi-x", "u": {"a": u}, "error": None, "converged": i % 10 != 1,
                        "pareto_k": 0.9 if failing else 0.3, "pareto_k_threshold": 0.7})
    records.append({"setting": "advi-x", "u": {"a": 0.5}, "error": None, "converged": True,
                    "pareto_k": float("nan"), "pareto_k_threshold": 0.7})  # not computed: not counted
    records.append({"setting": "advi-x", "u": {"a": 0.5}, "error": None, "converged": True,
                    "pareto_k": float("inf"), "pareto_k_threshold": 0.7})  # log-density not finite: fails
    table = sbc_table(records).set_index("setting")
    assert table.loc["advi-x", "advi_khat_fail"] == pytest.approx(101 / 201)
    assert table.loc["advi-x", "verdict"] == "MISCALIBRATED: a"
    kept = reliable_advi_fits(records)
    assert len(kept) == 80 and {r["setting"] for r in kept} == {"advi-x reliable"}
    assert sbc_table(kept).loc[0, "verdict"] == "ok"
    assert "k-hat>" in format_sbc_table(records)


# ------------------------------------------------------------------------- mechanics
def test_run_sbc_mechanics_with_tiny_advi(tmp_path):
    """Three replications of a small ADVI setting: records, file, resume, table, timing, plot."""
    setting = SBCSetting("advi", "diag", 2, 1, n_samples=30, draws=20)
    out = tmp_path / "sbc.json"
    seen = []
    results = run_sbc(setting, reps=3, out=out, random_seed=3,
                      progress=lambda r, done, total: seen.append((done, total)))
    assert seen == [(1, 3), (2, 3), (3, 3)]
    records = results["records"]
    assert [r["rep"] for r in records] == [0, 1, 2] and all(r["error"] is None for r in records)
    for r in records:
        assert set(r["u"]) == {"w(1)", "w(2)", "mu_min[x0]", "mix_mean", "mix_var", "lpd_a", "lpd_b", "lpd_c"}
        assert all(0 <= r["ranks"][q] <= 20 and 0 < r["u"][q] < 1 for q in r["u"])
        assert r["n_rank_draws"] == 20 and r["fit_cpu_s"] > 0 and isinstance(r["converged"], bool)
        assert 0 <= r["pareto_k"] < 5 and r["pareto_k_threshold"] == pytest.approx(0.7)
    saved = load_sbc_results(out)
    assert saved["meta"]["complete"] and saved["meta"]["seed"] == 3 and len(saved["records"]) == 3
    assert json.loads(out.read_text())["records"][0]["u"] == records[0]["u"]
    # Resuming a complete run fits nothing; asking for more replications fits only those.
    seen.clear()
    again = run_sbc(setting, reps=3, out=out, random_seed=3, resume=True, progress=lambda *a: seen.append(a))
    assert seen == [] and again["records"] == records
    with pytest.raises(ValueError, match="seed"):
        run_sbc(setting, reps=3, out=out, random_seed=4, resume=True)
    with pytest.raises(ValueError, match="other options"):
        run_sbc(SBCSetting("advi", "diag", 2, 1, n_samples=31, draws=20), reps=3, out=out, random_seed=3,
                resume=True)
    # Another setting resumed into the same file is added beside the first.
    other = SBCSetting("advi", "full", 2, 1, n_samples=30, draws=20)
    both = run_sbc(other, reps=1, out=out, random_seed=3, resume=True)
    assert [r["setting"] for r in both["records"]] == ["advi-diag-K2-D1"] * 3 + ["advi-full-K2-D1"]
    assert [s["covariance_type"] for s in load_sbc_results(out)["meta"]["settings"]] == ["diag", "full"]
    assert sbc_table(both)["setting"].tolist() == ["advi-diag-K2-D1", "advi-full-K2-D1"]
    table = sbc_table(saved)
    assert table["reps"].tolist() == [3] and np.isfinite(table["min_p"]).all()
    assert "advi-diag-K2-D1" in format_sbc_table(saved)
    timing = timing_table(saved)
    assert timing["fits"].iloc[0] >= 1 and timing["cpu_mean"].iloc[0] > 0
    estimate = estimate_runtime(saved, reps=200, n_jobs=16)
    assert estimate["fits"] == 200 and estimate["wall_s"] > 0
    fig, axes = plot_rank_histograms(saved)
    assert axes.shape == (1, 8)
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_run_sbc_checks_its_arguments(tmp_path):
    setting = SBCSetting("advi", "diag", 2, 1)
    with pytest.raises(TypeError, match="SBCSetting"):
        run_sbc(["advi-diag-K2-D1"], reps=1)
    with pytest.raises(ValueError, match="reps"):
        run_sbc(setting, reps=0)
    with pytest.raises(ValueError, match="same name"):
        run_sbc([setting, SBCSetting("advi", "diag", 2, 1, draws=50)], reps=1)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        run_sbc(setting, reps=1, out=tmp_path / "missing" / "sbc.json")
    with pytest.raises(TypeError, match="random_seed only"):
        run_sbc(setting, reps=1, random_seed=1, seed=2)


def test_init_option_reaches_the_nuts_fit_and_is_checked(monkeypatch):
    import bayesgmm.model as model_module

    seen = {}

    def fake_fit(self, X, **kwargs):
        seen.update(kwargs)
        raise RuntimeError("stop here")  # recorded as the replication's error

    monkeypatch.setattr(model_module.BayesianGMM, "fit", fake_fit)
    setting = SBCSetting("nuts", "full", 2, 1, n_samples=20, init="em_dispersed")
    record = sbc_replication(setting, 0, random_seed=0)
    assert seen["init"] == "em_dispersed" and record["error"].startswith("RuntimeError")
    assert SBCSetting("nuts", "full", 2, 1).init == "em"
    assert SBCSetting(**setting.to_dict()) == setting  # results files carry it
    with pytest.raises(ValueError, match="init"):
        SBCSetting("nuts", "full", 2, 1, init="prior_draws")
    with pytest.raises(ValueError, match="ADVI settings take init='em'"):
        SBCSetting("advi", "full", 2, 1, init="em_dispersed")


def test_setting_sampler_reaches_the_fit_and_names_the_setting(monkeypatch):
    import bayesgmm.model as model_module

    seen = {}

    def fake_fit(self, X, **kwargs):
        seen.update(kwargs)
        raise RuntimeError("stop here")

    monkeypatch.setattr(model_module.BayesianGMM, "fit", fake_fit)
    setting = SBCSetting("nuts", "full", 2, 1, n_samples=20, sampler="nutpie")
    assert setting.name == "nuts-full-K2-D1-nutpie" and SBCSetting("nuts", "full", 2, 1).name == "nuts-full-K2-D1"
    sbc_replication(setting, 0, random_seed=0)
    assert seen["sampler"] == "nutpie"
    assert SBCSetting(**setting.to_dict()) == setting
    with pytest.raises(ValueError, match="sampler"):
        SBCSetting("nuts", "full", 2, 1, sampler="stan")
    with pytest.raises(ValueError, match="needs method='nuts' and init='em'"):
        SBCSetting("advi", "full", 2, 1, sampler="nutpie")
    with pytest.raises(ValueError, match="needs method='nuts' and init='em'"):
        SBCSetting("nuts", "full", 2, 1, sampler="nutpie", init="em_dispersed")


def test_seed_is_a_deprecated_name_of_random_seed(monkeypatch):
    # The alias must reach every random draw as random_seed does: the fit is replaced by
    # a recorder of what it was given (the mechanics test above runs real fits).
    import bayesgmm.validation as validation

    def recorded_fit(gmm, setting, X, fit_seed, record):
        record.update(fit_seed=fit_seed, data=np.asarray(X).tolist())

    monkeypatch.setattr(validation, "_fit_replication", recorded_fit)
    setting = SBCSetting("advi", "diag", 2, 1, n_samples=30, draws=20)
    with pytest.warns(DeprecationWarning, match="random_seed"):
        old = run_sbc(setting, reps=1, seed=3)
    new = run_sbc(setting, reps=1, random_seed=3)
    other = run_sbc(setting, reps=1, random_seed=4)
    assert old["meta"]["seed"] == new["meta"]["seed"] == 3
    assert old["records"][0]["fit_seed"] == new["records"][0]["fit_seed"] != other["records"][0]["fit_seed"]
    assert old["records"][0]["data"] == new["records"][0]["data"] != other["records"][0]["data"]
    with pytest.warns(DeprecationWarning, match="random_seed"):
        assert sbc_replication(setting, 0, seed=3)["fit_seed"] == new["records"][0]["fit_seed"]


# ------------------------------------------------------------------------------ slow
@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("sampler", ["pymc", "nutpie"])
def test_small_sbc_run_is_calibrated(tmp_path, sampler):
    """30 replications of NUTS, full, K=2, D=1 on two processes: loose check of calibration."""
    if sampler == "nutpie":
        pytest.importorskip("nutpie")
    settings = sbc_settings("nuts-full-K2-D1", sampler=sampler)
    results = run_sbc(settings, reps=30, n_jobs=2, out=tmp_path / "sbc.json", random_seed=1)
    tests = uniformity_tests(results)
    assert len(tests) == 8 and (tests["n"] >= 27).all()  # at most a few failed fits
    assert np.isfinite(tests[["p_chi2", "p_ks"]]).all().all()
    # Loose: 30 replications only detect gross miscalibration (p below 1e-4).
    assert tests["p_min"].min() > 1e-4, tests.to_string()
    table = sbc_table(results)
    assert 0 <= table["div_fits"].iloc[0] <= 1
