"""A one-page HTML model card with the headings of the TRIPOD+AI reporting guideline."""

from __future__ import annotations

from html import escape

import pandas as pd


def _table(frame: pd.DataFrame, digits: int = 3) -> str:
    return frame.to_html(
        index=False, float_format=lambda v: f"{v:.{digits}f}", border=0, classes="t", na_rep="-"
    )


def _figure(name: str, caption: str) -> str:
    return (
        f'<figure><img src="{name}.png" alt="{escape(caption)}" width="420">'
        f"<figcaption>{escape(caption)} (data: {name}*.csv)</figcaption></figure>"
    )


def model_card(
    *,
    metadata: dict,
    metrics: dict[str, float],
    comparison: pd.DataFrame,
    top_shares: pd.DataFrame,
    subgroups: pd.DataFrame,
    drift: pd.DataFrame,
    n_features: int,
) -> str:
    """The card's HTML; every number comes from ``metrics.json`` or a CSV beside it."""
    m = metrics
    sections = {
        "Source of data": (
            "Linked GP, hospital, community, mental-health and social-care events in the "
            "riskstrat contract (data fingerprint "
            f"<code>{escape(metadata['data_fingerprint'][:16])}</code>). "
            f"Training as-of dates: {', '.join(metadata['train_as_of'])}; "
            f"out-of-time test as-of date: {metadata['test_as_of']}."
        ),
        "Participants": (
            "Everyone registered with a practice and alive on each as-of date. People who "
            "left the practice list before the horizon ended are censored and excluded."
        ),
        "Outcome": f"<code>{escape(metadata['outcome'])}</code>: an emergency admission "
        f"starting within {metadata['horizon_days']} days of the as-of date (the as-of date "
        "included).",
        "Predictors": (
            f"{n_features} features from events strictly before the as-of date: person and "
            "place, hospital use, primary care, long-term conditions, medicines, social care, "
            "community and mental-health contacts, trends and a frailty index."
        ),
        "Sample size": (
            f"{m['rows_train']:,.0f} training snapshots ({m['patients_train']:,.0f} people), "
            f"{m['rows_validation']:,.0f} for early stopping, {m['rows_calibration']:,.0f} for "
            f"calibration; {m['test_rows']:,.0f} people in the test, "
            f"{m['test_events']:,.0f} with the outcome."
        ),
        "Missing data": (
            "No events means the declared default (0 for counts, 730 for days since). An "
            "unrecorded deprivation decile stays missing and LightGBM routes it; an unknown "
            "category is its own code."
        ),
        "Analysis": (
            "LightGBM (deterministic, no class reweighting), early stopping and Platt "
            "calibration each on their own patients; splits by patient. Baselines: logistic "
            "regression on the same features and prior emergency admissions alone."
        ),
        "Performance": (
            _table(comparison)
            + _table(top_shares)
            + _figure("calibration", "Calibration on the out-of-time test")
            + _figure("decision_curve", "Net benefit by risk threshold")
            + _figure("drift", "AUROC at later as-of dates")
            + _table(drift)
        ),
        "Fairness": (
            "Observed against expected risk, AUROC and error rates at the list threshold "
            "(top 3%) by subgroup:" + _table(subgroups)
        ),
        "Limitations": (
            "Validated here only on data like its training data. On the synthetic borough the "
            "oracle AUROC is the ceiling. Real populations drift: watch the drift table and "
            "retrain when discrimination or calibration falls."
        ),
        "Intended use": (
            "Case finding for admission prevention by integrated locality teams: ranking "
            "people for a conversation about reablement, care coordination or social "
            "prescribing. Not for rationing care, nor for decisions about an individual "
            "without a clinician's or social worker's judgement."
        ),
    }
    body = "".join(f"<h2>{escape(h)}</h2><div>{text}</div>" for h, text in sections.items())
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        "<title>Model card: admission-risk</title><style>"
        "body{font-family:Arial,sans-serif;max-width:60em;margin:2em auto;color:#212b32}"
        "h2{color:#005eb8;border-bottom:1px solid #d8dde0}"
        "table.t{border-collapse:collapse;margin:.5em 0;font-size:90%}"
        "table.t td,table.t th{padding:2px 8px;border-bottom:1px solid #d8dde0;text-align:right}"
        "figure{display:inline-block;margin:.5em}"
        f"</style></head><body><h1>Model card: admission-risk ({escape(metadata['outcome'])})"
        f"</h1>{body}</body></html>"
    )
