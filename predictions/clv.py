"""Customer lifetime value: BG/NBD purchase counts and Gamma-Gamma spend, fitted by maximum likelihood.

References: Fader, Hardie & Lee (2005), "Counting Your Customers the Easy Way" (BG/NBD, equations
quoted below); Fader, Hardie & Lee (2005), "RFM and CLV: Using Iso-Value Curves", and Fader & Hardie
(2013), "The Gamma-Gamma Model of Monetary Value". Time is in whatever unit the inputs use.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import betaln, digamma, gammaln, hyp2f1

MIN_CUSTOMERS_BGNBD = 20
MIN_REPEAT_BUYERS_GAMMA_GAMMA = 10
# Below this drop-out probability per purchase, a/(a+b), eq. 10 is evaluated as its no-drop-out limit.
NO_DROPOUT = 1e-5


def rfm_summary(
    transactions: pd.DataFrame,
    *,
    observation_end: date,
    calibration_end: date | None = None,
    customer: str = "customer_key",
    day: str = "purchase_date",
    amount: str = "net_revenue",
) -> pd.DataFrame:
    """One row per customer: frequency, recency, T (days) and monetary_value, up to the calibration end.

    With `calibration_end`, `holdout_purchases` counts purchase days after it, up to `observation_end`.
    """
    cutoff = pd.Timestamp(calibration_end or observation_end)
    days = transactions[[customer, day, amount]].copy()
    days[day] = pd.to_datetime(days[day]).dt.normalize()
    days = days[days[day] <= pd.Timestamp(observation_end)]
    # The caller sums orders per day already; summing again keeps a purchase day one purchase.
    days = days.groupby([customer, day], as_index=False)[amount].sum()

    calibration = days[days[day] <= cutoff]
    first_day = calibration.groupby(customer)[day].transform("min")
    repeat_amount = calibration[amount].where(calibration[day] > first_day)
    per_customer = calibration.assign(repeat_amount=repeat_amount).groupby(customer)
    first, last = per_customer[day].min(), per_customer[day].max()
    summary = pd.DataFrame(
        {
            "frequency": per_customer[day].count() - 1,
            "recency": (last - first).dt.days.astype(float),
            "T": (cutoff - first).dt.days.astype(float),
            "monetary_value": per_customer["repeat_amount"].mean().fillna(0.0),
        }
    )
    if calibration_end is not None:
        holdout = days[days[day] > cutoff].groupby(customer)[day].count()
        summary["holdout_purchases"] = holdout.reindex(summary.index, fill_value=0)
    return summary


def _as_arrays(model: str, **columns) -> list[np.ndarray]:
    try:
        arrays = np.broadcast_arrays(*(np.asarray(values, dtype=float) for values in columns.values()))
    except ValueError:
        raise ValueError(f"{model}: {', '.join(columns)} must have the same length") from None
    for name, values in zip(columns, arrays, strict=True):
        bad = np.flatnonzero(~np.isfinite(values) | (values < 0))
        if bad.size:
            raise ValueError(f"{model}: {name} must be finite and >= 0; row {bad[0]} has {values[bad[0]]}")
    return arrays


def _check_rfm(frequency, recency, T) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, t_x, age = _as_arrays("BG/NBD", frequency=frequency, recency=recency, T=T)
    problems = [
        (t_x > age, "recency must not exceed T"),
        ((x == 0) & (t_x > 0), "recency must be 0 when frequency is 0"),
    ]
    for mask, problem in problems:
        if mask.any():
            row = np.flatnonzero(mask)[0]
            raise ValueError(
                f"BG/NBD: {problem}; row {row} has frequency {x[row]}, recency {t_x[row]}, T {age[row]}"
            )
    return x, t_x, age


def _distinct_rows(*columns: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """The distinct rows of the columns and how often each occurs. The likelihoods depend on nothing
    but these values, so a fit on the distinct rows weighted by their counts is the same fit, made
    with fewer evaluations per step (at 60k buyers, about half as many rows)."""
    rows, counts = np.unique(np.column_stack(columns), axis=0, return_counts=True)
    return list(rows.T), counts


def _minimise_over_logs(
    model: str, neg_log_likelihood, start: np.ndarray, with_gradient: bool = False
) -> np.ndarray:
    """Parameters minimising the function of their logs (keeps them positive), by BFGS (with the
    function's gradient over the logs when ``with_gradient``: the function then returns the value
    and the gradient, computed together; else by finite differences).

    Where the likelihood is flat, BFGS stops on the ridge ("precision loss"), which is the answer:
    at size M BG/NBD's a and b grow together at a fixed ratio (next to no spread in drop-out), and
    the Nelder-Mead search used before went on for 40,000 evaluations (104 s) to gain 1.5 of
    770,000 log-likelihood units; BFGS takes about 400 (2 s), and with BG/NBD's exact gradient 28
    evaluations of it and of the gradient (the night's fit and holdout fit at M: 1.05 s against 1.64 s
    by finite differences, the same optimum to the fourth digit).
    """
    result = minimize(
        neg_log_likelihood, np.log(start), jac=with_gradient, method="BFGS", options={"gtol": 1e-6}
    )
    if not np.all(np.isfinite(result.x)) or not np.isfinite(result.fun):
        raise ValueError(f"{model}: the likelihood has no finite maximum on these customers")
    return np.exp(result.x)


@dataclass(frozen=True)
class BgNbd:
    """BG/NBD: Poisson purchases at gamma(r, alpha) rates; drop-out after a purchase with beta(a, b) odds."""

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float
    customers: int

    @staticmethod
    def _alive_and_dropped(params, x, t_x, age) -> tuple[np.ndarray, np.ndarray]:
        """The logs of eq. 6's two customer-specific terms: still alive, and dropped out after the
        last purchase (-inf for a first-time buyer, who cannot have; b + x - 1 > 0 for the others)."""
        r, alpha, a, b = params
        still_alive = betaln(a, b + x) - (r + x) * np.log(alpha + age)
        dropped = np.where(
            x > 0, betaln(a + 1, np.maximum(b + x - 1, 1e-300)) - (r + x) * np.log(alpha + t_x), -np.inf
        )
        return still_alive, dropped

    @staticmethod
    def _shared(params, x) -> np.ndarray:
        """The log of eq. 6's factor common to both terms."""
        r, alpha, a, b = params
        return gammaln(r + x) - gammaln(r) + r * np.log(alpha) - betaln(a, b)

    @classmethod
    def _log_likelihood(cls, params, x, t_x, age) -> np.ndarray:
        """Per-customer log of FHL 2005 eq. 6."""
        return cls._shared(params, x) + np.logaddexp(*cls._alive_and_dropped(params, x, t_x, age))

    @classmethod
    def _log_likelihood_and_gradient(cls, params, x, t_x, age) -> tuple[np.ndarray, np.ndarray]:
        """Per-customer _log_likelihood and its gradient over (r, alpha, a, b), one row per
        parameter, from one evaluation of eq. 6's terms (BFGS asks for both at each point)."""
        r, alpha, a, b = params
        still_alive, dropped = cls._alive_and_dropped(params, x, t_x, age)
        either = np.logaddexp(still_alive, dropped)
        # the two terms' shares of their sum
        alive_share = np.exp(still_alive - either)
        dropped_share = 1 - alive_share
        b_dropped = np.where(x > 0, b + x - 1, b)  # digamma's argument only where it counts
        gradient = np.array(
            [
                digamma(r + x) - digamma(r) + np.log(alpha)
                - alive_share * np.log(alpha + age) - dropped_share * np.log(alpha + t_x),
                r / alpha - (r + x) * (alive_share / (alpha + age) + dropped_share / (alpha + t_x)),
                digamma(a + b) - digamma(a) + alive_share * digamma(a) + dropped_share * digamma(a + 1)
                - digamma(a + b + x),
                digamma(a + b) - digamma(b) + alive_share * digamma(b + x)
                + dropped_share * digamma(b_dropped) - digamma(a + b + x),
            ]
        )  # fmt: skip
        return cls._shared(params, x) + either, gradient

    @classmethod
    def fit(cls, frequency, recency, T) -> BgNbd:
        x, t_x, age = _check_rfm(frequency, recency, T)
        repeat_buyers = int((x > 0).sum())
        if len(x) < MIN_CUSTOMERS_BGNBD or repeat_buyers == 0:
            raise ValueError(
                f"BG/NBD needs at least {MIN_CUSTOMERS_BGNBD} customers with at least one repeat buyer; "
                f"got {len(x)} customers, {repeat_buyers} repeat buyers"
            )
        (x, t_x, age), counts = _distinct_rows(x, t_x, age)
        weights = counts / counts.sum()

        def neg_mean_log_likelihood(log_params):
            # the mean keeps the optimiser's tolerances independent of the number of customers
            point = np.exp(log_params)
            log_likelihood, gradient = cls._log_likelihood_and_gradient(point, x, t_x, age)
            # over the logs: d/d(log p) = p · d/dp
            return -(log_likelihood @ weights), -point * (gradient @ weights)

        params = _minimise_over_logs(
            "BG/NBD",
            neg_mean_log_likelihood,
            np.array([1.0, max(age @ weights, 1e-3), 1.0, 1.0]),
            with_gradient=True,
        )
        log_likelihood = float(cls._log_likelihood(params, x, t_x, age) @ counts)
        return cls(*map(float, params), log_likelihood=log_likelihood, customers=int(counts.sum()))

    def _dropout_odds(self, x, t_x, age) -> np.ndarray:
        """a/(b+x-1)·((alpha+T)/(alpha+t_x))^(r+x) for repeat buyers, 0 otherwise (in log space)."""
        repeat = x > 0
        log_odds = (
            np.log(self.a)
            - np.log(np.where(repeat, self.b + x - 1, 1.0))
            + (self.r + x) * (np.log(self.alpha + age) - np.log(self.alpha + t_x))
        )
        return np.where(repeat, np.exp(np.minimum(log_odds, 700.0)), 0.0)

    def probability_alive(self, frequency, recency, T) -> np.ndarray:
        """P(still active | x, t_x, T); 1 for customers without a repeat purchase."""
        x, t_x, age = _check_rfm(frequency, recency, T)
        return 1.0 / (1.0 + self._dropout_odds(x, t_x, age))

    def expected_purchases(self, t, frequency, recency, T) -> np.ndarray:
        """E[purchases in the next t | x, t_x, T], FHL 2005 eq. 10."""
        x, t_x, age = _check_rfm(frequency, recency, T)
        t = np.asarray(t, dtype=float)
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        if a / (a + b) < NO_DROPOUT:
            # Next to no one drops out (short histories fit that way): eq. 10's limit, the NBD
            # expectation, where the hypergeometric form cancels into rounding noise.
            return t * (r + x) / (alpha + age) / (1 + self._dropout_odds(x, t_x, age))
        horizon = alpha + age + t
        tail = np.exp((r + x) * (np.log(alpha + age) - np.log(horizon)))
        tail = tail * hyp2f1(r + x, b + x, a + b + x - 1, t / horizon)
        return (a + b + x - 1) / (a - 1) * (1 - tail) / (1 + self._dropout_odds(x, t_x, age))

    def expected_purchases_new_customer(self, t) -> np.ndarray:
        """E[X(t)] for a customer just acquired, FHL 2005 eq. 7."""
        t = np.asarray(t, dtype=float)
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        tail = (alpha / (alpha + t)) ** r * hyp2f1(r, b, a + b - 1, t / (alpha + t))
        return (a + b - 1) / (a - 1) * (1 - tail)


@dataclass(frozen=True)
class GammaGamma:
    """Gamma-Gamma: spend per purchase ~ gamma(p, nu), nu ~ gamma(q, gamma) across customers."""

    p: float
    q: float
    gamma: float
    log_likelihood: float
    customers: int

    @staticmethod
    def _log_likelihood(params, x, z_bar) -> np.ndarray:
        """Per-customer log density of the mean spend z_bar over x purchases (Fader & Hardie 2013)."""
        p, q, gamma = params
        return (
            gammaln(p * x + q) - gammaln(p * x) - gammaln(q) + q * np.log(gamma)
            + (p * x - 1) * np.log(z_bar) + p * x * np.log(x) - (p * x + q) * np.log(gamma + x * z_bar)
        )  # fmt: skip

    @classmethod
    def fit(cls, frequency, monetary_value) -> GammaGamma:
        """Fit on repeat buyers (frequency > 0); monetary_value is their mean repeat spend."""
        x, z_bar = _as_arrays("Gamma-Gamma", frequency=frequency, monetary_value=monetary_value)
        repeat = np.flatnonzero(x > 0)
        if len(repeat) < MIN_REPEAT_BUYERS_GAMMA_GAMMA:
            raise ValueError(
                f"Gamma-Gamma needs at least {MIN_REPEAT_BUYERS_GAMMA_GAMMA} repeat buyers; got {len(repeat)}"
            )
        non_positive = repeat[z_bar[repeat] <= 0]
        if non_positive.size:
            row = non_positive[0]
            raise ValueError(
                f"Gamma-Gamma needs positive monetary values for repeat buyers; row {row} has "
                f"frequency {x[row]}, monetary_value {z_bar[row]}"
            )
        (x, z_bar), counts = _distinct_rows(x[repeat], z_bar[repeat])
        weights = counts / counts.sum()
        params = _minimise_over_logs(
            "Gamma-Gamma",
            lambda log_params: -(cls._log_likelihood(np.exp(log_params), x, z_bar) @ weights),
            np.array([1.0, 2.0, z_bar @ weights]),
        )
        log_likelihood = float(cls._log_likelihood(params, x, z_bar) @ counts)
        return cls(*map(float, params), log_likelihood=log_likelihood, customers=int(counts.sum()))

    def expected_average_value(self, frequency, monetary_value) -> np.ndarray:
        """E[spend per purchase | x, z_bar]: a weighted mean of the population mean and z_bar."""
        x, z_bar = _as_arrays("Gamma-Gamma", frequency=frequency, monetary_value=monetary_value)
        z_bar = np.where(x > 0, z_bar, 0.0)  # frequency 0 → population mean p·gamma/(q-1)
        return self.p * (self.gamma + x * z_bar) / (self.p * x + self.q - 1)


def fit_models(summary: pd.DataFrame) -> tuple[BgNbd, GammaGamma]:
    """Both models fitted on an `rfm_summary`; Gamma-Gamma on the repeat buyers with positive spend
    (a fully refunded repeat purchase is worth nothing, and the model needs spend above zero)."""
    bgnbd = BgNbd.fit(summary["frequency"], summary["recency"], summary["T"])
    spend_frequency = summary["frequency"].where(summary["monetary_value"] > 0, 0)
    return bgnbd, GammaGamma.fit(spend_frequency, summary["monetary_value"])


def predict_customers(
    summary: pd.DataFrame, bgnbd: BgNbd, gamma_gamma: GammaGamma, *, horizons_days=(90, 365)
) -> pd.DataFrame:
    """Per-customer predictions from an `rfm_summary` in days.

    predicted_clv_365d is expected purchase days in the next 365 days × expected value per purchase
    day, undiscounted and before margin.
    """
    rfm = summary["frequency"], summary["recency"], summary["T"]
    predictions = pd.DataFrame({"probability_alive": bgnbd.probability_alive(*rfm)}, index=summary.index)
    for days in horizons_days:
        predictions[f"expected_purchases_{days}d"] = bgnbd.expected_purchases(days, *rfm)
    average_value = gamma_gamma.expected_average_value(summary["frequency"], summary["monetary_value"])
    predictions["expected_average_order_value"] = average_value
    predictions["predicted_clv_365d"] = bgnbd.expected_purchases(365, *rfm) * average_value
    return predictions


@dataclass(frozen=True)
class HoldoutAccuracy:
    """Predicted vs actual purchase days per customer in a holdout after the calibration period."""

    holdout_days: int
    customers: int
    actual_total: int
    predicted_total: float
    aggregate_error: float
    mae_per_customer: float
    bgnbd: BgNbd
    gamma_gamma: GammaGamma

    def render(self) -> str:
        return (
            f"Holdout {self.holdout_days} days, {self.customers:,} customers: "
            f"{self.predicted_total:,.1f} purchase days predicted vs {self.actual_total:,} actual "
            f"({self.aggregate_error:+.1%}), mean absolute error {self.mae_per_customer:.3f} per customer"
        )


def holdout_accuracy(
    transactions: pd.DataFrame, *, observation_end: date, holdout_days: int = 90
) -> HoldoutAccuracy:
    """Fit on everything up to observation_end - holdout_days and score the purchase days after it."""
    calibration_end = observation_end - timedelta(days=holdout_days)
    summary = rfm_summary(transactions, observation_end=observation_end, calibration_end=calibration_end)
    rfm = summary["frequency"], summary["recency"], summary["T"]
    bgnbd, gamma_gamma = fit_models(summary)
    predicted = bgnbd.expected_purchases(holdout_days, *rfm)
    actual = summary["holdout_purchases"].to_numpy()
    actual_total = int(actual.sum())
    return HoldoutAccuracy(
        holdout_days=holdout_days,
        customers=len(summary),
        actual_total=actual_total,
        predicted_total=float(predicted.sum()),
        aggregate_error=float(predicted.sum() / actual_total - 1) if actual_total else float("nan"),
        mae_per_customer=float(np.abs(predicted - actual).mean()),
        bgnbd=bgnbd,
        gamma_gamma=gamma_gamma,
    )
