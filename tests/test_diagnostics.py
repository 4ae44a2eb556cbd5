"""The posterior verdict (bayesgmm.diagnostics) and where it is shown: warnings, CLI, summary, report."""

import warnings

import arviz as az
import numpy as np
import pandas as pd
import pytest

from bayesgmm import BayesianGMM, PosteriorDiagnosticsWarning, assess, em_to_idata, summary
from bayesgmm.cli import main
from bayesgmm.datasets import make_mixture
from bayesgmm.em import GaussianMixtureEM
from bayesgmm.inference import LossPlateau, warn_on_diagnostics


def _posterior(n_chains=2, n_draws=200, *, stuck=False, n_div=0, low_bfmi=False, seed=0):
    """A hand-made two-component, one-feature posterior with chosen defects."""
    rng = np.random.default_rng(seed)
    shape = (n_chains, n_draws)
    means = np.stack([rng.normal(0, 0.1, shape), rng.normal(5, 0.1, shape)], axis=-1)[..., None]
    loglik = rng.normal(-15, 0.3, shape + (20,))
    if stuck:  # each chain sits in its own mode: means and log-likelihood differ between chains
        means[1] += 1.5
        loglik[1] -= 0.5
    jitter = rng.normal(0, 0.01, shape + (1,)) * [1, -1]
    weights = np.stack([np.full(shape, 0.4), np.full(shape, 0.6)], axis=-1) + jitter
    cov = np.broadcast_to(np.ones((1, 1)), shape + (2, 1, 1)).copy()
    diverging = np.zeros(shape, dtype=bool)
    diverging.ravel()[:n_div] = True
    energy = np.cumsum(rng.normal(0, 1, shape), axis=1) if low_bfmi else rng.normal(0, 1, shape)
    return az.from_dict(
        posterior={"weights": weights, "means": means, "cov": cov},
        log_likelihood={"obs": loglik},
        sample_stats={"diverging": diverging, "energy": energy},
        dims={"weights": ["component"], "means": ["component", "feature"],
              "cov": ["component", "feature", "feature_bis"], "obs": ["obs_id"]},
    )


# --------------------------------------------------------------------------- assess
def test_bad_posterior_is_unreliable_with_the_right_reasons():
    verdict = assess(_posterior(stuck=True, n_div=34, low_bfmi=True))
    assert not verdict.reliable and verdict.label == "unreliable"
    reasons = " | ".join(verdict.reasons)
    assert "34 divergent transitions (8.5% of draws)" in reasons
    assert "R-hat" in reasons and "log-likelihood" in reasons
    assert "different modes" in reasons  # chains settled at different log-likelihoods
    assert "E-BFMI" in reasons
    assert verdict.metrics["divergences"] == 34 and verdict.metrics["max_rhat"] > 1.1
    assert verdict.metrics["min_ebfmi"] < 0.3
    headline = verdict.headline()
    assert headline.startswith("UNRELIABLE posterior: 34 divergent transitions (8.5% of draws), R-hat ")
    assert "Try: " in headline and "target_accept" in headline and "\n" not in headline


def test_clean_hand_made_posterior_is_reliable_and_says_so():
    verdict = assess(_posterior(n_draws=1000))
    assert verdict.reliable and verdict.label == "reliable" and verdict.reasons == []
    assert verdict.headline().startswith("Reliable posterior: no divergences, R-hat <= 1.0")
    assert "bulk ESS >= " in verdict.headline()
    assert verdict.metrics["quantities"][0] == "log-likelihood"


def test_low_ess_and_single_chain_are_named():
    idata = _posterior(n_chains=1, n_draws=60)
    verdict = assess(idata)
    assert any("bulk ESS" in r and "(< 400)" in r for r in verdict.reasons)
    assert any("cannot see" in n for n in verdict.notes)


def test_low_ess_advice_says_how_many_draws_at_this_rate():
    # Slowly mixing chains: an AR(1) log-likelihood whose ESS is a small fraction of the draws.
    idata = _posterior(n_draws=500)
    rng = np.random.default_rng(3)
    noise = rng.normal(size=(2, 500))
    ar = np.zeros((2, 500))
    for t in range(1, 500):
        ar[:, t] = 0.97 * ar[:, t - 1] + noise[:, t]
    idata.log_likelihood["obs"].values[:] += ar[:, :, None]
    verdict = assess(idata)
    lowest = min(v for v in (verdict.metrics["min_ess_bulk"], verdict.metrics["min_ess_tail"]))
    assert lowest < 400
    expected = int(np.ceil(500 * 400 / lowest / 100)) * 100
    advice = " | ".join(verdict.advice)
    assert f"about {expected} draws per chain with 2 chains" in advice
    impractical = expected > 10 * 500
    assert ("simpler model" in advice) == impractical
    # A number of draws nobody should run is not suggested as a call.
    assert (f"e.g. draws={expected} (--draws {expected} on the command line)" in advice) == (not impractical)


@pytest.mark.parametrize("sampler, recipe", [("pymc", True), ("nutpie", False), (None, False)])
def test_slow_mixing_under_pymc_advises_the_overlap_recipe(sampler, recipe):
    from bayesgmm.diagnostics import OVERLAP_RECIPE

    idata = _posterior(n_draws=60)  # too few draws: low ESS, one mode
    if sampler is not None:
        idata.attrs["sampler"] = sampler
    verdict = assess(idata)
    assert not verdict.reliable and "modes" not in verdict.metrics
    assert (OVERLAP_RECIPE in verdict.advice) is recipe
    # Chains in different modes are not a mixing-speed problem: no recipe there.
    stuck = _posterior(stuck=True)
    stuck.attrs["sampler"] = "pymc"
    verdict = assess(stuck)
    assert len(verdict.metrics["modes"]) == 2 and OVERLAP_RECIPE not in verdict.advice


def test_no_recipe_where_the_chains_disagree_even_without_modes_found(monkeypatch):
    import bayesgmm.diagnostics as diagnostics

    def no_pointwise(idata):
        raise ValueError("no pointwise log-likelihood")

    monkeypatch.setattr(diagnostics, "chain_modes", no_pointwise)
    stuck = _posterior(stuck=True)
    stuck.attrs["sampler"] = "pymc"
    verdict = assess(stuck)
    assert "modes" not in verdict.metrics and any("different modes" in r for r in verdict.reasons)
    assert diagnostics.OVERLAP_RECIPE not in verdict.advice


def test_more_draws_advice_names_a_simpler_model_only_when_impractical():
    from bayesgmm.diagnostics import _more_draws_advice

    assert "about 1000 draws per chain with 2 chains" in _more_draws_advice(200.0, 500, 2)
    assert "simpler model" not in _more_draws_advice(200.0, 500, 2)
    many = _more_draws_advice(6.0, 1000, 2)
    assert "about 66700 draws per chain" in many and "simpler model" in many
    assert _more_draws_advice(0.0, 1000, 2).startswith("draw more samples (an effective sample size")


def test_point_estimate_is_not_assessed():
    X, _ = make_mixture(60, 2, 2, random_state=0)
    idata = em_to_idata(GaussianMixtureEM(2, random_state=0).fit(X), X)
    verdict = assess(idata)
    assert verdict.label == "not assessed" and not verdict.reliable
    assert verdict.headline().startswith("Posterior not assessed:")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summ = summary(idata)
    assert summ.attrs["verdict_label"] == "not assessed" and summ.attrs["reliable"] == 0


def test_assess_refuses_what_is_not_a_posterior():
    with pytest.raises(TypeError, match="InferenceData"):
        assess({"posterior": 1})
    with pytest.raises(ValueError, match="relabel_draws"):
        assess(_posterior(), relabel_draws="sometimes")


def test_variational_verdict_reads_the_fit_history():
    idata = _posterior()
    idata.posterior = idata.posterior.isel(chain=[0])
    import xarray as xr

    for converged, label in ((1, "reliable"), (0, "unreliable")):
        copy = idata.copy()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            copy.add_groups(fit_history=xr.Dataset(
                {"loss": ("iteration", np.ones(3000))},
                attrs={"method": "fullrank_advi", "converged": converged, "n_iterations": 3000, "loss_window": 500,
                       "loss_windows": 3, "loss_range": 4.2 if not converged else 0.01, "loss_tolerance": 0.3}))
        verdict = assess(copy)
        assert verdict.label == label
        if converged:
            assert verdict.headline().startswith("Reliable variational fit")
        else:
            assert "still moving" in verdict.headline() and "spread over 4.2, tolerance 0.3" in verdict.headline()


@pytest.mark.parametrize("converged, k_hat, label, expected", [
    (1, 0.31, "reliable", "Reliable variational fit: the loss reached a plateau (0.01 over the last windows, "
                          "tolerance 0.3) and Pareto k-hat is 0.31 (<= 0.70)"),
    (1, 0.93, "unreliable", "UNRELIABLE variational fit: Pareto k-hat 0.93 > 0.70: the advi approximation is too "
                            "far from the posterior"),
    (0, 0.93, "unreliable", "UNRELIABLE variational fit: the advi loss was still moving"),
    (1, np.nan, "reliable", "Reliable variational fit: the loss reached a plateau (0.01 over the last windows, "
                            "tolerance 0.3); variational"),
    (1, np.inf, "unreliable", "UNRELIABLE variational fit: the model's log-density is not finite at some draws"),
])
def test_variational_verdict_reads_the_pareto_k_check(converged, k_hat, label, expected):
    import xarray as xr

    idata = _posterior()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata.add_groups(fit_history=xr.Dataset(
            {"loss": ("iteration", np.ones(3000))},
            attrs={"method": "advi", "converged": converged, "n_iterations": 3000, "loss_window": 500,
                   "loss_windows": 3, "loss_range": 0.01 if converged else 4.2, "loss_tolerance": 0.3,
                   "pareto_k": k_hat, "pareto_k_draws": 4000, "pareto_k_threshold": 0.7}))
    verdict = assess(idata)
    assert verdict.label == label and verdict.headline().startswith(expected)
    assert ("Pareto k-hat 0.93 > 0.70" in verdict.details()) == (k_hat == 0.93)
    assert any("not computed" in note for note in verdict.notes) == bool(np.isnan(k_hat))


# ---------------------------------------------------------------- warnings, summary
def test_warning_starts_with_the_headline_and_is_exported():
    assert issubclass(PosteriorDiagnosticsWarning, UserWarning)
    idata = _posterior(stuck=True, n_div=3)
    with pytest.warns(PosteriorDiagnosticsWarning) as record:
        verdict = warn_on_diagnostics(idata)
    message = str(record[0].message)
    assert message.splitlines()[0] == verdict.headline()
    assert "why:" in message and "to do:" in message


def test_healthy_nuts_fit_is_not_falsely_unreliable(three_blobs):
    X, _ = three_blobs
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        # 2 x 2000 draws: at 2 x 600 the healthy fit's R-hat is 1.001-1.017 between seeds (over
        # 1.01 in 2 of 8, with either likelihood kernel); at 2 x 2000 it is 1.001-1.003.
        idata = BayesianGMM(3).fit(X, draws=2000, tune=500, chains=2, random_seed=1, progressbar=False)
    verdict = assess(idata)
    assert not any("R-hat" in r for r in verdict.reasons), verdict.details()
    assert verdict.metrics["divergences"] == 0 and verdict.metrics["max_rhat"] <= 1.01
    assert verdict.metrics["quantities"] == ["log-likelihood", "relabelled weights", "relabelled means"]
    assert verdict.reliable, verdict.details()
    assert not any(issubclass(w.category, PosteriorDiagnosticsWarning) for w in record)
    summ = summary(idata)
    assert summ.attrs["verdict"] == verdict.headline() and summ.attrs["reliable"] == 1


def test_summary_attaches_the_verdict(three_blob_fit):
    _, idata = three_blob_fit
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        summ = summary(idata)
    assert summ.attrs["verdict"] == assess(idata).headline()
    assert summ.attrs["verdict"].split(":")[0] in ("Reliable posterior", "UNRELIABLE posterior")
    assert summ.attrs["reliable"] in (0, 1) and summ.attrs["verdict_label"] in ("reliable", "unreliable")


# --------------------------------------------------------------------------- CLI
def test_headline_is_the_first_line_of_fit_output(tmp_path, capsys):
    X, _ = make_mixture(60, 2, 2, random_state=2, separation=8)
    csv = tmp_path / "tiny.csv"
    pd.DataFrame(X, columns=["a", "b"]).to_csv(csv, index=False)
    code = main(["fit", str(csv), "--components", "2", "--draws", "60", "--tune", "60", "--quiet",
                 "--out", str(tmp_path / "fit.nc")])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0].startswith(("Reliable posterior:", "UNRELIABLE posterior:")), out
    assert out[-1].startswith("Saved the posterior to")
    # 120 draws cannot reach an ESS of 400: the verdict must say so, first
    assert out[0].startswith("UNRELIABLE posterior:") and "ESS" in out[0]


# ------------------------------------------------------------------------- report
def test_report_puts_the_verdict_before_any_table():
    from bayesgmm.report import ReportSettings, build_report

    X, _ = make_mixture(80, 2, 2, random_state=4, separation=8)
    settings = ReportSettings(n_components=2, method="advi", draws=50, progressbar=False, source="tiny")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        text = build_report(pd.DataFrame(X, columns=["a", "b"]), settings)
    body = text[text.index("<body>"):]
    after_title = body[body.index("</h1>") + len("</h1>"):].lstrip()
    assert after_title.startswith('<div id="verdict" class="verdict verdict-')
    assert body.index('id="verdict"') < body.index("<table") and body.index('id="verdict"') < body.index("<nav>")
    assert "variational fit" in after_title[:400]


def test_verdict_box_is_red_with_reasons_and_advice():
    from bayesgmm.report import _verdict_box

    box = _verdict_box(assess(_posterior(stuck=True, n_div=5)), "a test fit")
    assert 'class="verdict verdict-unreliable"' in box and "UNRELIABLE posterior" in box
    assert "<b>Why:</b>" in box and "<b>What to do:</b>" in box and "5 divergent transitions" in box
    assert 'class="verdict verdict-reliable"' in _verdict_box(assess(_posterior(n_draws=1000)), "x")


# ----------------------------------------------------------------------------- VI
def test_vi_non_convergence_warns_with_figures():
    X, _ = make_mixture(60, 2, 2, random_state=3, separation=8)
    with pytest.warns(PosteriorDiagnosticsWarning, match=r"did not converge in 100 iterations \(only 100 "):
        idata = BayesianGMM(2).fit(X, method="fullrank_advi", n_iterations=100, draws=50, random_seed=0,
                                   progressbar=False)
    attrs = idata.fit_history.attrs
    assert attrs["converged"] == 0 and np.isnan(attrs["loss_range"])
    verdict = assess(idata)
    assert verdict.label == "unreliable" and "too few to see a plateau" in verdict.headline()


def _feed(plateau, losses):
    try:
        for i in range(1, len(losses) + 1):
            plateau(None, losses[:i], i)
    except StopIteration:
        return True
    return False


def test_loss_plateau_rule():
    import pytensor

    rng = np.random.default_rng(0)
    n = 20_000
    # still falling (slowly, like a stalled optimiser): never a plateau
    falling = 1000 - 0.01 * np.arange(n) + rng.normal(0, 1, n)
    assert not _feed(LossPlateau(n_rows=100), falling)
    # swinging between levels (learning rate too large): never a plateau
    swinging = np.repeat(rng.choice([60.0, 400.0, 800.0], n // 250), 250) + rng.normal(0, 5, n)
    assert not _feed(LossPlateau(n_rows=300), swinging)
    # flat and noisy: a plateau at each learning rate, the rate cut by 10 twice, then converged
    rate = pytensor.shared(np.float64(0.01))
    plateau = LossPlateau(n_rows=300, learning_rates=[rate])
    assert _feed(plateau, 500 + rng.normal(0, 2, n)) and plateau.converged
    assert plateau.plateaus == [1500, 3000, 4500] and rate.get_value() == pytest.approx(1e-4)


def test_advi_on_overlapping_clusters_fails_the_pareto_k_check_in_any_units():
    # Old Faithful with K=3: two of the components share a cluster. NUTS mixes there
    # (docs/sampling.md); mean-field ADVI's sds come out down to 0.08x NUTS's, with
    # k-hat 0.80-0.98 (benchmarks/bench_vi.py --dataset faithful, seeds 0-4), where on
    # well-separated K=3 data it has 0.43-0.60.
    from bayesgmm.datasets import load_faithful

    X = load_faithful().to_numpy()
    k_hats = []
    for units in (1.0, 1e-100, 1e100):
        with pytest.warns(PosteriorDiagnosticsWarning, match=r"^UNRELIABLE variational fit: Pareto k-hat"):
            idata = BayesianGMM(3).fit(X * units, method="advi", draws=100, random_seed=0, progressbar=False)
        assert idata.fit_history.attrs["converged"] == 1 and assess(idata).label == "unreliable"
        k_hats.append(idata.fit_history.attrs["pareto_k"])
    np.testing.assert_allclose(k_hats, k_hats[0], rtol=1e-6)


def test_fullrank_advi_finds_both_blobs():
    # The two-blob example: full-rank ADVI stopped at weights [0.017, 0.983].
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal([0, 0], 1, (100, 2)), rng.normal([5, 5], 1, (100, 2))])
    with warnings.catch_warnings():
        warnings.simplefilter("error", PosteriorDiagnosticsWarning)
        idata = BayesianGMM(2).fit(X, method="fullrank_advi", draws=300, random_seed=1, progressbar=False)
    weights = np.sort(idata.posterior["weights"].mean(("chain", "draw")).values)
    np.testing.assert_allclose(weights, [0.5, 0.5], atol=0.05)
    assert idata.fit_history.attrs["converged"] == 1 and assess(idata).reliable


def test_chains_in_different_modes_are_grouped_and_weighted_by_stacking():
    from bayesgmm.diagnostics import chain_modes

    idata = _posterior(n_chains=4, stuck=True)  # chain 1 sits 0.5 lower at every point
    modes = chain_modes(idata)
    assert modes.attrs["n_modes"] == 2
    assert modes["mode"].values.tolist() == [0, 1, 0, 0]
    np.testing.assert_allclose(modes["stacking_weight"].sum(), 1.0)
    assert modes["stacking_weight"].values[1] < 0.01  # worse at every point: no weight
    verdict = assess(idata)
    assert [m["chains"] for m in verdict.metrics["modes"]] == [[0, 2, 3], [1]]
    reason = next(r for r in verdict.reasons if "modes that the chains do not mix" in r)
    assert reason.startswith("2 modes") and "mode 2 (chain 1: stacking weight 0.00" in reason
    assert chain_modes(_posterior(n_chains=4)).attrs["n_modes"] == 1


@pytest.mark.parametrize("shift", [-1000.0, 1000.0])
def test_stacking_weights_do_not_depend_on_the_units(shift):
    # Data in other units shift every pointwise log-density by -D log(units) (about +460 per
    # feature at 1e-100): the weights once went to 1/4 each, from exp overflowing.
    from bayesgmm.diagnostics import chain_modes

    idata = _posterior(n_chains=4, stuck=True)
    reference = chain_modes(idata)["stacking_weight"].values
    idata.log_likelihood["obs"] = idata.log_likelihood["obs"] + shift
    np.testing.assert_allclose(chain_modes(idata)["stacking_weight"].values, reference, atol=1e-6)
    assert reference[1] < 0.01


def test_chain_modes_refuses_what_it_cannot_weigh():
    from bayesgmm.diagnostics import chain_modes

    with pytest.raises(ValueError, match="2 or more chains"):
        chain_modes(_posterior(n_chains=1))
    no_loglik = az.from_dict(posterior={"weights": np.full((2, 50, 2), 0.5)})
    with pytest.raises(ValueError, match="pointwise log-likelihood"):
        chain_modes(no_loglik)


def _with_factors(idata, collapsed_chain=None, units=1.0):
    """Add ``chol`` (data units) and the observed data to a hand-made posterior; one chain's component 1 collapsed."""
    post = idata.posterior
    n_chains, n_draws = post.sizes["chain"], post.sizes["draw"]
    chol = np.ones((n_chains, n_draws, 2, 1, 1)) * units
    if collapsed_chain is not None:
        chol[collapsed_chain, :, 1] = 1e-9 * units  # as on Old Faithful's tied waiting times
    x = np.tile([-units, units], 20)[:, None]  # sd exactly `units`
    return az.from_dict(
        posterior={**{k: post[k].values for k in ("weights", "means")}, "chol": chol},
        observed_data={"obs": x},
        dims={"weights": ["component"], "means": ["component", "feature"],
              "chol": ["component", "feature", "feature_bis"], "obs": ["obs_id", "feature"]},
    )


@pytest.mark.parametrize("units", [1e-100, 1.0, 1e100])
def test_a_chain_on_a_collapsed_component_is_named_first(units):
    idata = _with_factors(_posterior(n_chains=3, n_draws=400), collapsed_chain=2, units=units)
    idata.add_groups(sample_stats={"diverging": np.eye(3, 400, dtype=bool)})  # 3 divergences: still second
    verdict = assess(idata)
    assert not verdict.reliable and verdict.metrics["collapsed_chains"] == [2]
    assert verdict.reasons[0].startswith("chain 2 sits on a collapsed component (chain 2: a component of weight 0.60")
    assert "9.9e-10 of the data's" in verdict.reasons[0] and "not a cluster" in verdict.reasons[0]
    assert verdict.reasons[1].startswith("3 divergent transitions")
    advice = next(a for a in verdict.advice if a.startswith("leave those chains out"))
    kept = eval(advice.split("(", 1)[1].split("); ")[0], {"idata": idata})  # the advice runs as written
    assert kept.posterior.chain.values.tolist() == [0, 1]
    healthy = assess(_with_factors(_posterior(n_chains=3, n_draws=400), units=units))
    assert "collapsed_chains" not in healthy.metrics and not any("collapsed" in r for r in healthy.reasons)


def test_collapsed_chains_are_named_by_their_label_not_their_position():
    idata = _with_factors(_posterior(n_chains=4, n_draws=400), collapsed_chain=3).sel(chain=[1, 3])
    verdict = assess(idata)
    assert verdict.metrics["collapsed_chains"] == [3] and verdict.reasons[0].startswith("chain 3 sits")


def test_a_tight_but_real_cluster_is_not_called_collapsed():
    # Two clusters of sd 1 placed 1e4 apart: a component sd of 2e-4 of the data's, which is real.
    idata = _with_factors(_posterior(n_chains=2, n_draws=400))
    idata.posterior["chol"] = idata.posterior["chol"] * 2e-4
    assert "collapsed_chains" not in assess(idata).metrics


def test_collapse_is_measured_against_the_recorded_scale_without_observed_data():
    idata = _with_factors(_posterior(n_draws=400), collapsed_chain=0)
    del idata.observed_data
    idata.attrs["data_scale"] = [1.0]
    assert assess(idata).metrics["collapsed_chains"] == [0]
    idata.attrs["data_scale"] = [float("nan")]  # no usable scale: no judgement rather than a wrong one
    assert "collapsed_chains" not in assess(idata).metrics
