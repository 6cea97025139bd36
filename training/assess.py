"""Assess a fitted bundle out of time and write the report folder.

The folder holds ``metrics.json`` (headline figures), one CSV per table, the plots as PNG
beside their CSVs, and ``model_card.html``. Every number in the card is one of these.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from riskstrat.common.errors import UserError
from riskstrat.features.absent import describe_absent
from riskstrat.models.bundle import ModelBundle
from riskstrat.models.tiers import TierPolicy, Tiers
from riskstrat.training import report
from riskstrat.training.baselines import PRIOR_ADMISSIONS, logistic_regression, prior_admissions
from riskstrat.training.evaluate import (
    calibration_in_the_large,
    calibration_slope,
    discrimination,
    evaluate,
    top_share_table,
    truth_auroc,
    truth_calibration_slope,
)
from riskstrat.training.fit import Snapshots
from riskstrat.training.model_card import model_card


@dataclass(frozen=True, slots=True)
class Assessment:
    """The report's figures and tables, the tier cut-offs fixed on the test population, and
    the test population's risks (from which the percentiles are saved)."""

    metrics: dict[str, float]
    tables: dict[str, pd.DataFrame]
    tiers: Tiers
    test_risk: np.ndarray


ORACLE, UNTREATED = "oracle", "untreated"  # ``matched_truth``'s risk columns


class OracleMismatchError(UserError):
    """The ground truth answers another question than the model's labels."""


class Outcome(Protocol):
    """What the labels count: ``features.labels.Outcome`` or a bundle's description of it."""

    @property
    def horizon_days(self) -> int: ...

    @property
    def include_death(self) -> bool: ...

    @property
    def admissions(self) -> str: ...


def _truth_columns(outcome: Outcome) -> dict[str, str]:
    """The truth's columns for the outcome's risk and (when it has one) its untreated risk."""
    if outcome.include_death:
        return {"p_admission_or_death": ORACLE}
    if outcome.admissions == "avoidable":
        return {"p_avoidable_admission": ORACLE, "p_avoidable_admission_untreated": UNTREATED}
    return {"p_admission": ORACLE, "p_admission_untreated": UNTREATED}


def matched_truth(truth: pd.DataFrame, outcome: Outcome) -> pd.DataFrame:
    """The synthetic truth's exact risk of the labels' very outcome: ``patient_id``,
    ``as_of``, ``ORACLE`` and, for admissions alone (any, or potentially avoidable ones),
    ``UNTREATED`` (the risk without the list's actions; the generator has none for admission
    or death).

    ``OracleMismatchError`` when the truth lacks the outcome's risk, or records no horizon or
    another horizon than the labels': joined by as-of date alone, a 180-day label would be
    scored against a 365-day risk.
    """
    if "horizon_days" not in truth.columns:
        raise OracleMismatchError(
            "the truth file records no horizon_days, so it cannot be matched with the labels"
        )
    horizons = sorted(int(h) for h in truth["horizon_days"].unique())
    if horizons != [outcome.horizon_days]:
        shown = ", ".join(f"{h} days" for h in horizons)
        raise OracleMismatchError(
            f"the truth file's risks are for a horizon of {shown} and the labels' for "
            f"{outcome.horizon_days} days: they cannot be compared (generate the borough with "
            f"that horizon, or leave the truth out)"
        )
    wanted = _truth_columns(outcome)
    risk = next(iter(wanted))
    if risk not in truth.columns:
        raise OracleMismatchError(
            f"the truth file has no {risk} column (written by an older generator): generate "
            "the borough again, or leave the truth out"
        )
    columns = {k: v for k, v in wanted.items() if k in truth.columns}
    matched = truth[["patient_id", "as_of", *columns]].rename(columns=columns)
    return matched.assign(as_of=pd.to_datetime(matched["as_of"]).dt.date)


def _oracle(
    truth: pd.DataFrame | None, rows: Snapshots, as_of: date | None, column: str = ORACLE
) -> np.ndarray | None:
    """The truth's risk (``column`` of ``matched_truth``) for the rows, if it covers nearly
    all of them."""
    if truth is None or as_of is None or column not in truth.columns:
        return None
    at = truth[truth["as_of"] == as_of].set_index("patient_id")
    risk = at[column].reindex(rows.features.index.get_level_values("patient_id"))
    return risk.to_numpy() if risk.notna().mean() > 0.99 else None


def intervention_metrics(
    y: np.ndarray,
    risk: np.ndarray,
    untouched: np.ndarray | None,
    untreated: np.ndarray | None,
) -> dict[str, float]:
    """The test figures that list-triggered help cannot bend: AUROC and calibration slope on
    the rows no help touched (when help touched some), and against the generator's risk
    without list-triggered help (when known)."""
    metrics: dict[str, float] = {}
    if untouched is not None and not untouched.all():
        kept_y, kept_risk = y[untouched], risk[untouched]
        metrics["unaffected_rows"] = float(untouched.sum())
        if kept_y.min() != kept_y.max():
            metrics["unaffected_auroc"] = float(roc_auc_score(kept_y, kept_risk))
            metrics["unaffected_calibration_slope"] = calibration_slope(kept_y, kept_risk)
    if untreated is not None:
        known = ~np.isnan(untreated)
        metrics["untreated_truth_auroc"] = truth_auroc(untreated[known], risk[known])
        metrics["untreated_truth_calibration_slope"] = truth_calibration_slope(
            untreated[known], risk[known]
        )
    return metrics


def _oracle_discrimination(y: np.ndarray, oracle: np.ndarray) -> dict:
    """The true risk's discrimination over the rows it covers (``_oracle`` allows 1% gaps)."""
    known = ~np.isnan(oracle)
    return discrimination(y[known], oracle[known])


def compare(
    bundle: ModelBundle,
    risk: np.ndarray,
    train: Snapshots,
    test: Snapshots,
    truth: pd.DataFrame | None,
    as_of: date | None,
    seed: int,
) -> pd.DataFrame:
    """The model's ``risk`` on the test rows beside logistic regression, prior admissions and
    (if known) the oracle."""
    y = test.labels.to_numpy()
    scores = {
        "model (LightGBM, calibrated)": risk,
        "logistic regression": logistic_regression(
            train.features, train.labels, test.features, bundle.specs, 200_000, seed
        ),
    }
    if PRIOR_ADMISSIONS in test.features.columns:
        scores["prior emergency admissions"] = prior_admissions(test.features)
    rows = [{"score": name, **discrimination(y, score)} for name, score in scores.items()]
    oracle = _oracle(truth, test, as_of)
    if oracle is not None:
        rows.append({"score": "oracle (true risk)", **_oracle_discrimination(y, oracle)})
    return pd.DataFrame(rows)


def drift_table(
    bundle: ModelBundle, later: Mapping[date, Snapshots], truth: pd.DataFrame | None
) -> pd.DataFrame:
    """Discrimination and calibration at each later as-of date (each date's rows asked for
    in turn: ``later`` may build them on demand)."""
    rows = []
    for as_of in sorted(later):
        rows_at = later[as_of]
        y, risk = rows_at.labels.to_numpy(), bundle.predict(rows_at.features)
        row = {  # what evaluate() says of these, without its smoothed calibration fit
            "as_of": as_of.isoformat(),
            "people": len(y),
            "auroc": float(roc_auc_score(y, risk)),
            "observed_rate": float(y.mean()),
            "mean_predicted": float(risk.mean()),
            "calibration_slope": calibration_slope(y, risk),
            "calibration_intercept": calibration_in_the_large(y, risk),
        }
        oracle = _oracle(truth, rows_at, as_of)
        if oracle is not None:
            row["oracle_auroc"] = _oracle_discrimination(y, oracle)["auroc"]
        rows.append(row)
    return pd.DataFrame(rows)


def assess(
    bundle: ModelBundle,
    *,
    train: Snapshots,
    test: Snapshots,
    test_as_of: date | None,
    later: Mapping[date, Snapshots],
    context: pd.DataFrame,
    truth: pd.DataFrame | None,
    policy: TierPolicy,
    bootstrap: int,
    seed: int,
    test_unaffected: np.ndarray | None = None,
) -> Assessment:
    """Every figure and table of the report, for the test and later dates; the ``policy``'s
    tier cut-offs are fixed on the test population's risks. ``test_unaffected`` marks the
    test rows no list-triggered help touched (None: not known). ``truth`` is the synthetic
    borough's, matched with the labels' outcome by ``matched_truth``."""
    y, risk = test.labels.to_numpy(), bundle.predict(test.features)
    tiers = policy.cut(risk)
    metrics = evaluate(y, risk, bootstrap, seed)
    comparison = compare(bundle, risk, train, test, truth, test_as_of, seed)
    for row in comparison.itertuples():
        key = {
            "logistic regression": "baseline_logistic",
            "prior emergency admissions": "baseline_prior_admissions",
            "oracle (true risk)": "oracle",
        }.get(row.score)
        if key:
            metrics |= {f"{key}_auroc": row.auroc, f"{key}_ppv_top_1pct": row.ppv_top_1pct}
    metrics |= {"test_rows": float(len(y)), "test_events": float(y.sum())}
    untreated = _oracle(truth, test, test_as_of, UNTREATED)
    metrics |= intervention_metrics(y, risk, test_unaffected, untreated)
    vocabularies = {s.name: s.vocabulary for s in bundle.specs if s.categorical}
    groups = report.subgroup_groups(test.features, context, vocabularies)
    tables = {
        "comparison": comparison,
        "top_shares": top_share_table(y, risk),
        "calibration_deciles": report.calibration_table(y, risk),
        "calibration_smoothed": report.smoothed_calibration_table(y, risk),
        "decision_curve": report.decision_curve(y, risk),
        "subgroups": report.subgroup_table(groups, y, risk, tiers.high),
    }
    if later:
        tables["drift"] = drift_table(bundle, later, truth)
    return Assessment(metrics, tables, tiers, risk)


def write_report(
    folder: Path,
    assessment: Assessment,
    bundle: ModelBundle,
    absent: Mapping[str, tuple[str, ...]] | None = None,
) -> Path:
    """metrics.json, the tables as CSV, the plots as PNG, and the model card; ``absent``
    names the features whose event kinds the data lacked (the card says so)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(json.dumps(assessment.metrics, indent=2))
    report.write_plots(folder, assessment.tables, bundle.described.test.phrase())
    card = model_card(
        description=bundle.described,
        specs=bundle.specs,
        comparison=assessment.tables["comparison"],
        top_shares=assessment.tables["top_shares"],
        subgroups=assessment.tables["subgroups"],
        drift=assessment.tables.get("drift", pd.DataFrame()),
        absent=describe_absent(absent or {}),
    )
    (folder / "model_card.html").write_text(card)
    return folder
