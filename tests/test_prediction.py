"""BayesianGMM's scikit-learn style prediction: posterior averages over aligned draws."""

import numpy as np
import pandas as pd
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal
from sklearn.exceptions import NotFittedError
from sklearn.metrics import adjusted_rand_score

from bayesgmm import BayesianGMM, GaussianMixtureEM
from bayesgmm.datasets import load_faithful, make_mixture


@pytest.fixture(scope="module")
def fitted():
    X, truth = make_mixture(150, 2, 2, random_state=3, separation=6)
    frame = pd.DataFrame(X, columns=["a", "b"])
    gmm = BayesianGMM(2, covariance_type="diag")
    gmm.fit(frame, method="advi", draws=200, random_seed=0, progressbar=False)
    return gmm, frame, truth


def test_predict_proba_predict_and_intervals(fitted):
    gmm, frame, truth = fitted
    proba = gmm.predict_proba(frame)
    assert proba.shape == (150, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    labels = gmm.predict(frame)
    np.testing.assert_array_equal(labels, proba.argmax(axis=1))
    assert adjusted_rand_score(truth.labels, labels) > 0.95
    mean, lower, upper = gmm.predict_proba(frame.iloc[:20], return_interval=True, hdi_prob=0.9)
    assert np.all(lower <= mean + 1e-12) and np.all(mean <= upper + 1e-12)
    # The same labels in every call: the aligned posterior is computed once.
    assert gmm.aligned_posterior() is gmm.aligned_posterior()


def test_new_rows_are_matched_by_column_name(fitted):
    gmm, frame, _ = fitted
    reordered = frame[["b", "a"]]
    np.testing.assert_array_equal(gmm.predict(reordered), gmm.predict(frame))
    np.testing.assert_allclose(gmm.score_samples(reordered), gmm.score_samples(frame))
    with pytest.raises(ValueError, match="c"):
        gmm.predict(frame.rename(columns={"a": "c"}))
    with pytest.raises(ValueError):
        gmm.predict_proba(frame.to_numpy()[:, :1])
    with pytest.raises(TypeError, match="X must be"):
        gmm.predict(None)
    with pytest.raises(TypeError, match="return_interval"):
        gmm.predict_proba(frame, return_interval="yes")


def test_score_samples_is_the_log_posterior_predictive_density(fitted):
    gmm, frame, _ = fitted
    post = gmm.idata_.posterior.stack(sample=("chain", "draw"))
    w, mu, cov = (post[name].transpose("sample", ...).values for name in ("weights", "means", "cov"))
    points = frame.to_numpy()[:5]
    per_draw = np.array([[logsumexp([np.log(w[s, k]) + multivariate_normal(mu[s, k], cov[s, k]).logpdf(x)
                                     for k in range(2)]) for x in points] for s in range(w.shape[0])])
    expected = logsumexp(per_draw, axis=0) - np.log(w.shape[0])
    np.testing.assert_allclose(gmm.score_samples(frame.iloc[:5]), expected, rtol=1e-9)
    assert gmm.score(frame.iloc[:5]) == pytest.approx(expected.mean())
    log_d, lower, upper = gmm.score_samples(frame.iloc[:5], return_interval=True)
    assert np.all(lower <= log_d) and np.all(log_d <= upper)


def test_sample_is_reproducible_and_in_the_data_units(fitted):
    gmm, frame, _ = fitted
    X1, y1 = gmm.sample(300, random_seed=4)
    X2, y2 = gmm.sample(300, random_seed=4)
    np.testing.assert_array_equal(X1, X2)
    assert X1.shape == (300, 2) and set(np.unique(y1)) <= {0, 1}
    np.testing.assert_allclose(X1.mean(axis=0), frame.to_numpy().mean(axis=0), atol=0.5 * frame.to_numpy().std())


def test_not_fitted_is_a_clear_error():
    with pytest.raises(NotFittedError, match="fit"):
        BayesianGMM(2).predict(np.zeros((3, 2)))


@pytest.mark.parametrize("factor", [1e-100, 1e100])
def test_prediction_does_not_depend_on_units(factor):
    X = load_faithful().to_numpy()[:80]
    scale = np.array([factor, 1.0 / factor])
    results = []
    for data in (X, X * scale):
        gmm = BayesianGMM(2, covariance_type="diag")
        gmm.fit(data, method="advi", draws=100, random_seed=1, progressbar=False)
        results.append((gmm.predict_proba(data), gmm.score_samples(data)))
    np.testing.assert_allclose(results[1][0], results[0][0], atol=1e-6)
    # A density per unit: rescaling feature j by s_j shifts the log-density by -sum(log s_j).
    np.testing.assert_allclose(results[1][1], results[0][1] - np.log(scale).sum(), rtol=1e-6)


def test_bayesian_and_em_predictions_agree_on_faithful():
    X = load_faithful()
    em = GaussianMixtureEM(2, random_state=0).fit(X)
    gmm = BayesianGMM(2)
    gmm.fit(X, method="advi", draws=200, random_seed=0, progressbar=False, init=em)
    assert adjusted_rand_score(em.predict(X), gmm.predict(X)) > 0.98
