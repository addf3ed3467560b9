"""Per-buyer predictions from the night's fit (int_customer__clv_fit): probability alive, expected
purchase days in the next 90 and 365 days, expected spend per purchase and predicted 365-day CLV.
No rows when the night could not fit the models (see fit_problem there)."""

import pandas as pd

from predictions.clv import BgNbd, GammaGamma, predict_customers, rfm_summary

COLUMNS = [
    "customer_key",
    "probability_alive",
    "expected_purchases_90d",
    "expected_purchases_365d",
    "expected_average_order_value",
    "predicted_clv_365d",
]


def model(dbt, session):
    dbt.config(materialized="table")
    fit = dbt.ref("int_customer__clv_fit").df().iloc[0]
    days = dbt.ref("int_customer__purchase_days").df()
    if pd.isna(fit["bgnbd_r"]) or days.empty:
        return pd.DataFrame({column: pd.Series(dtype="float64") for column in COLUMNS}).astype(
            {"customer_key": "string"}
        )
    bgnbd = BgNbd(
        fit["bgnbd_r"],
        fit["bgnbd_alpha"],
        fit["bgnbd_a"],
        fit["bgnbd_b"],
        fit["bgnbd_log_likelihood"],
        int(fit["buyers"]),
    )
    gamma_gamma = GammaGamma(
        fit["gamma_gamma_p"],
        fit["gamma_gamma_q"],
        fit["gamma_gamma_gamma"],
        fit["gamma_gamma_log_likelihood"],
        int(fit["repeat_buyers"]),
    )
    summary = rfm_summary(days, observation_end=fit["as_of_local_date"])
    predictions = predict_customers(summary, bgnbd, gamma_gamma)
    return predictions.rename_axis("customer_key").reset_index()[COLUMNS]
