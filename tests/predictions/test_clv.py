"""BG/NBD and Gamma-Gamma against the published CDNOW estimates; the RFM summary on a hand-made table."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from predictions.clv import BgNbd, GammaGamma, holdout_accuracy, predict_customers, rfm_summary

CDNOW = Path(__file__).parents[1] / "data" / "cdnow"


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    return pd.read_csv(CDNOW / "cdnow_customers_summary_with_transactions.csv")


@pytest.fixture(scope="module")
def cdnow_bgnbd(cdnow: pd.DataFrame) -> BgNbd:
    return BgNbd.fit(cdnow["x"], cdnow["t_x"], cdnow["T"])


def test_bgnbd_matches_the_paper_on_cdnow(cdnow_bgnbd: BgNbd) -> None:
    # Fader, Hardie & Lee (2005), "Counting Your Customers the Easy Way", section 5.
    fitted = (cdnow_bgnbd.r, cdnow_bgnbd.alpha, cdnow_bgnbd.a, cdnow_bgnbd.b)
    assert fitted == pytest.approx((0.243, 4.414, 0.793, 2.426), rel=0.01)
    assert cdnow_bgnbd.log_likelihood == pytest.approx(-9582.4, abs=0.5)
    assert cdnow_bgnbd.customers == 2357


@pytest.mark.parametrize(
    "params",
    [(0.243, 4.414, 0.793, 2.426), (0.6, 38.3, 4.8, 42.0), (0.5, 10.0, 0.1, 0.2)],
    ids=["cdnow", "size M", "heavy drop-out"],
)
def test_bgnbd_gradient_is_the_log_likelihoods(cdnow: pd.DataFrame, params: tuple) -> None:
    # the fit's BFGS steps follow it: central differences of the log-likelihood on CDNOW's buyers
    params = np.array(params)
    rfm = cdnow["x"].to_numpy(float), cdnow["t_x"].to_numpy(float), cdnow["T"].to_numpy(float)
    log_likelihood, gradient = BgNbd._log_likelihood_and_gradient(params, *rfm)
    assert log_likelihood == pytest.approx(BgNbd._log_likelihood(params, *rfm), rel=1e-12)
    gradient = gradient.sum(axis=1)
    steps = np.diag(params * 1e-6)
    differences = [
        (BgNbd._log_likelihood(params + step, *rfm).sum() - BgNbd._log_likelihood(params - step, *rfm).sum())
        / (2 * step[i])
        for i, step in enumerate(steps)
    ]
    assert gradient == pytest.approx(differences, rel=1e-4, abs=1e-3)


def test_bgnbd_fit_is_the_same_from_the_lifetimes_column_names() -> None:
    summary = pd.read_csv(CDNOW / "cdnow_customers_summary.csv")
    fitted = BgNbd.fit(summary["frequency"], summary["recency"], summary["T"])
    assert (fitted.r, fitted.alpha, fitted.a, fitted.b) == pytest.approx(
        (0.243, 4.414, 0.793, 2.426), rel=0.01
    )


def test_bgnbd_conditional_expectation_matches_the_worked_example(cdnow_bgnbd: BgNbd) -> None:
    # Hardie's BG/NBD notes: a customer with x = 2, t_x = 30.43, T = 38.86 weeks expects 1.226
    # purchases in the next 39 weeks.
    assert cdnow_bgnbd.expected_purchases(39, 2, 30.43, 38.86) == pytest.approx(1.226, abs=0.001)


def test_fits_on_distinct_rows_score_every_customer(cdnow: pd.DataFrame, cdnow_bgnbd: BgNbd) -> None:
    """The fits run on distinct rows weighted by their counts; the likelihood they report is still
    the sum over every customer, row by row (CDNOW: 2,357 customers, fewer distinct rows)."""
    rows = cdnow[["x", "t_x", "T"]].to_numpy(dtype=float)
    assert len(np.unique(rows, axis=0)) < len(rows)
    params = (cdnow_bgnbd.r, cdnow_bgnbd.alpha, cdnow_bgnbd.a, cdnow_bgnbd.b)
    per_customer = BgNbd._log_likelihood(params, *rows.T)
    assert cdnow_bgnbd.log_likelihood == pytest.approx(per_customer.sum(), rel=1e-12)


def test_gamma_gamma_matches_the_note_on_cdnow(cdnow: pd.DataFrame) -> None:
    # Fader & Hardie (2013), "The Gamma-Gamma Model of Monetary Value".
    fitted = GammaGamma.fit(cdnow["x"], cdnow["zbar"])
    assert fitted.customers == 946
    assert (fitted.p, fitted.q, fitted.gamma) == pytest.approx((6.25, 3.74, 15.44), rel=0.01)


def test_gamma_gamma_gives_the_population_mean_without_repeat_purchases() -> None:
    model = GammaGamma(p=6.0, q=3.0, gamma=10.0, log_likelihood=0.0, customers=0)
    # p·γ/(q-1) = 30; with one purchase of 20: p(γ + z̄)/(p + q - 1) = 6·30/8 = 22.5.
    assert model.expected_average_value([0, 1], [0.0, 20.0]) == pytest.approx([30.0, 22.5])


def test_probability_alive_and_expected_purchases_behave(cdnow_bgnbd: BgNbd) -> None:
    assert cdnow_bgnbd.probability_alive([0, 0], [0.0, 0.0], [5.0, 38.0]) == pytest.approx([1.0, 1.0])
    recent, long_ago = cdnow_bgnbd.probability_alive([3, 3], [35.0, 10.0], [38.0, 38.0])
    assert long_ago < recent < 1.0
    horizons = np.array([1.0, 10.0, 39.0, 100.0])
    conditional = cdnow_bgnbd.expected_purchases(horizons, 3, 35.0, 38.0)
    unconditional = cdnow_bgnbd.expected_purchases_new_customer(horizons)
    assert np.all(np.diff(conditional) > 0)
    assert np.all(np.diff(unconditional) > 0)
    assert cdnow_bgnbd.expected_purchases(0.0, 3, 35.0, 38.0) == pytest.approx(0.0, abs=1e-12)


def _transactions() -> pd.DataFrame:
    rows = [
        ("a", date(2026, 1, 1), 10.0),
        ("a", date(2026, 1, 1), 5.0),  # a second order on the first day: one purchase day
        ("a", date(2026, 1, 11), 20.0),
        ("a", date(2026, 2, 10), 40.0),
        ("a", date(2026, 3, 5), 7.0),
        ("a", date(2026, 3, 20), 3.0),
        ("a", date(2026, 4, 2), 99.0),  # after the observation end: ignored
        ("b", date(2026, 2, 1), 12.0),
        ("c", date(2026, 3, 10), 50.0),
        ("d", date(2026, 1, 20), 8.0),
        ("d", date(2026, 1, 20), 2.0),
        ("d", date(2026, 3, 1), 4.0),
    ]
    return pd.DataFrame(rows, columns=["customer_key", "purchase_date", "net_revenue"])


def test_rfm_summary_with_a_calibration_cut() -> None:
    summary = rfm_summary(
        _transactions(), observation_end=date(2026, 3, 31), calibration_end=date(2026, 2, 28)
    )
    # a: purchase days Jan 1, Jan 11, Feb 10 up to Feb 28 → 2 repeats, last - first = 40 days,
    #    Feb 28 - Jan 1 = 58 days, repeat spend (20 + 40) / 2; Mar 5 and Mar 20 in the holdout.
    # b: one purchase Feb 1 → T = 27.  d: one purchase day Jan 20 → T = 11 + 28 = 39; Mar 1 in the holdout.
    # c first buys on Mar 10, after the calibration end: left out.
    expected = pd.DataFrame(
        {
            "frequency": [2, 0, 0],
            "recency": [40.0, 0.0, 0.0],
            "T": [58.0, 27.0, 39.0],
            "monetary_value": [30.0, 0.0, 0.0],
            "holdout_purchases": [2, 0, 1],
        },
        index=pd.Index(["a", "b", "d"], name="customer_key"),
    )
    pd.testing.assert_frame_equal(summary, expected, check_dtype=False)


def test_rfm_summary_without_a_calibration_cut() -> None:
    summary = rfm_summary(_transactions(), observation_end=date(2026, 3, 31))
    # a: Jan 1, Jan 11, Feb 10, Mar 5, Mar 20 → 4 repeats over 31 + 28 + 19 = 78 days, T = 89,
    #    repeat spend (20 + 40 + 7 + 3) / 4.  c: one purchase Mar 10 → T = 21.  d: Jan 20, Mar 1 → 40 days.
    expected = pd.DataFrame(
        {
            "frequency": [4, 0, 0, 1],
            "recency": [78.0, 0.0, 0.0, 40.0],
            "T": [89.0, 58.0, 21.0, 70.0],
            "monetary_value": [17.5, 0.0, 0.0, 4.0],
        },
        index=pd.Index(["a", "b", "c", "d"], name="customer_key"),
    )
    pd.testing.assert_frame_equal(summary, expected, check_dtype=False)


def test_predict_customers_combines_both_models(cdnow_bgnbd: BgNbd) -> None:
    summary = rfm_summary(_transactions(), observation_end=date(2026, 3, 31))
    gamma_gamma = GammaGamma(p=6.0, q=3.0, gamma=10.0, log_likelihood=0.0, customers=0)
    predictions = predict_customers(summary, cdnow_bgnbd, gamma_gamma)
    assert list(predictions.columns) == [
        "probability_alive",
        "expected_purchases_90d",
        "expected_purchases_365d",
        "expected_average_order_value",
        "predicted_clv_365d",
    ]
    assert predictions.index.equals(summary.index)
    clv = predictions["expected_purchases_365d"] * predictions["expected_average_order_value"]
    pd.testing.assert_series_equal(predictions["predicted_clv_365d"], clv, check_names=False)


def test_holdout_accuracy_reports_the_totals() -> None:
    # 40 customers: every one buys on 2026-01-01, every 4th again each 30 days; 90-day holdout after Jan 31.
    rows = [(c, date(2026, 1, 1), 10.0) for c in range(40)]
    rows += [
        (c, date(2026, 1, 1) + pd.Timedelta(days=d), 10.0) for c in range(0, 40, 4) for d in (15, 30, 60)
    ]
    rows += [(c, date(2026, 1, 11), 5.0 + c) for c in range(1, 40, 4)]
    transactions = pd.DataFrame(rows, columns=["customer_key", "purchase_date", "net_revenue"])
    accuracy = holdout_accuracy(transactions, observation_end=date(2026, 5, 1), holdout_days=90)
    # Calibration ends Jan 31: customers 0, 4, … (10) have Jan 16 and Jan 31 as repeats, Mar 2 in the holdout.
    assert accuracy.customers == 40
    assert accuracy.actual_total == 10
    assert accuracy.aggregate_error == pytest.approx(accuracy.predicted_total / 10 - 1)
    assert re.fullmatch(
        r"Holdout 90 days, 40 customers: .* purchase days predicted vs 10 actual .*", accuracy.render()
    )


@pytest.mark.parametrize(
    ("frequency", "recency", "T", "message"),
    [
        (
            [1] * 20,
            [1.0] * 19 + [-1.0],
            [5.0] * 20,
            "BG/NBD: recency must be finite and >= 0; row 19 has -1.0",
        ),
        (
            [1] * 20,
            [1.0, 6.0] + [1.0] * 18,
            [5.0] * 20,
            "BG/NBD: recency must not exceed T; row 1 has frequency 1.0, recency 6.0, T 5.0",
        ),
        (
            [1, 1, 0] + [1] * 17,
            [1.0, 1.0, 2.0] + [1.0] * 17,
            [5.0] * 20,
            "BG/NBD: recency must be 0 when frequency is 0; row 2 has frequency 0.0, recency 2.0, T 5.0",
        ),
        (
            [0] * 12,
            [0.0] * 12,
            [5.0] * 12,
            "BG/NBD needs at least 20 customers with at least one repeat buyer; "
            "got 12 customers, 0 repeat buyers",
        ),
        (
            [0] * 25,
            [0.0] * 25,
            [5.0] * 25,
            "BG/NBD needs at least 20 customers with at least one repeat buyer; "
            "got 25 customers, 0 repeat buyers",
        ),
    ],
)
def test_bgnbd_rejects_bad_inputs(frequency, recency, T, message) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        BgNbd.fit(frequency, recency, T)


def test_gamma_gamma_rejects_bad_inputs() -> None:
    with pytest.raises(ValueError, match=r"^Gamma-Gamma needs at least 10 repeat buyers; got 9$"):
        GammaGamma.fit([1] * 9 + [0] * 20, [10.0] * 9 + [0.0] * 20)
    message = (
        "Gamma-Gamma needs positive monetary values for repeat buyers; "
        "row 3 has frequency 2.0, monetary_value 0.0"
    )
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        GammaGamma.fit([1, 0, 1, 2] + [1] * 10, [10.0, 0.0, 10.0, 0.0] + [10.0] * 10)
