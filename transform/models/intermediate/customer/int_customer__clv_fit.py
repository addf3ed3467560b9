"""The night's purchase models: BG/NBD (purchase counts) and Gamma-Gamma (spend per purchase),
fitted by maximum likelihood on every buyer's purchase days (predictions.clv), and how well the
same fit predicted the last 90 days when made without them. One row per run.

A shop too young or too small to fit (fewer than 20 buyers, no repeat buyer) gets a row without
parameters and the reason in fit_problem: predictions stay empty instead of failing the night.
"""

from datetime import date

import pandas as pd

from predictions.clv import fit_models, holdout_accuracy, rfm_summary

HOLDOUT_DAYS = 90


def _fit(days: pd.DataFrame, as_of: date) -> dict:
    summary = rfm_summary(days, observation_end=as_of)
    bgnbd, gamma_gamma = fit_models(summary)
    return {
        "buyers": len(summary),
        "repeat_buyers": int((summary["frequency"] > 0).sum()),
        "bgnbd_r": bgnbd.r,
        "bgnbd_alpha": bgnbd.alpha,
        "bgnbd_a": bgnbd.a,
        "bgnbd_b": bgnbd.b,
        "bgnbd_log_likelihood": bgnbd.log_likelihood,
        "gamma_gamma_p": gamma_gamma.p,
        "gamma_gamma_q": gamma_gamma.q,
        "gamma_gamma_gamma": gamma_gamma.gamma,
        "gamma_gamma_log_likelihood": gamma_gamma.log_likelihood,
    }


def _holdout(days: pd.DataFrame, as_of: date) -> dict:
    accuracy = holdout_accuracy(days, observation_end=as_of, holdout_days=HOLDOUT_DAYS)
    return {
        "holdout_customers": accuracy.customers,
        "holdout_actual_purchases": accuracy.actual_total,
        "holdout_predicted_purchases": accuracy.predicted_total,
        "holdout_aggregate_error": accuracy.aggregate_error,
        "holdout_mae_per_customer": accuracy.mae_per_customer,
    }


def model(dbt, session):
    dbt.config(materialized="table")
    days = dbt.ref("int_customer__purchase_days").df()
    as_of = days["as_of_local_date"].max() if len(days) else None
    row = {"as_of_local_date": as_of, "holdout_days": HOLDOUT_DAYS}
    row |= {"fit_problem": None, "holdout_problem": None}
    fit_columns = [
        "buyers",
        "repeat_buyers",
        "bgnbd_r",
        "bgnbd_alpha",
        "bgnbd_a",
        "bgnbd_b",
        "bgnbd_log_likelihood",
        "gamma_gamma_p",
        "gamma_gamma_q",
        "gamma_gamma_gamma",
        "gamma_gamma_log_likelihood",
    ]
    holdout_columns = [
        "holdout_customers",
        "holdout_actual_purchases",
        "holdout_predicted_purchases",
        "holdout_aggregate_error",
        "holdout_mae_per_customer",
    ]
    row.update(dict.fromkeys(fit_columns + holdout_columns))
    try:
        row.update(_fit(days, as_of))
    except ValueError as problem:
        row["fit_problem"] = str(problem)
    try:
        row.update(_holdout(days, as_of))
    except ValueError as problem:
        row["holdout_problem"] = str(problem)
    return pd.DataFrame([row])
