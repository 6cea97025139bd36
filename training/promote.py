"""The promotion gate: the challenger replaces the champion only if it is not worse.

Both models score the same test set: the challenger's own, rebuilt from its description (its
out-of-time test as-of date on the contract tables given, or its feature table's test rows).
A risk list changes the outcomes of the people it finds, so on contract tables the rows that
list-triggered help touched in their horizon (the ``[exposure]`` rule recorded with the
challenger; the default rule when none was) are left out: the models are compared on data the
list did not affect, and the gate refuses when too little is left to compare. A feature table
cannot tell help apart: the comparison then uses all rows and the decision says so.
The challenger passes when:
- discrimination: its AUROC is not significantly worse than the champion's (the upper end
  of the paired-bootstrap 95% interval of the difference is above zero; with no interval,
  because no resamples were asked for or the rows have too few events to resample, the gate
  cannot tell and refuses, saying why); and
- calibration: its calibration slope on that test set is within 0.9-1.1.
With no champion yet, only the calibration gate applies. Every decision is recorded as an
MLflow run in the ``admission-risk-promotions`` experiment and as tags on the challenger's
model version.

Each outcome is its own registered model (``models.registry.registered_name``): the gate
compares a model's challenger with the champion of that same model, and moves only its alias.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from riskstrat.common.errors import UserError
from riskstrat.contract.needs import present_kinds, require_for
from riskstrat.contract.tables import ContractTables
from riskstrat.features.engine import build_features
from riskstrat.features.exposure import ExposureRule, exposure
from riskstrat.features.labels import Outcome, build_labels
from riskstrat.models.bundle import ModelBundle
from riskstrat.models.registry import (
    CHALLENGER,
    CHAMPION,
    MODEL_NAME,
    MODEL_NAMES,
    RegisteredBundle,
    load_registered,
)
from riskstrat.models.store import store
from riskstrat.training.evaluate import Interval, auroc, bootstrap_interval, calibration_slope
from riskstrat.training.intervention import rule_of, unaffected
from riskstrat.training.table import load_table
from riskstrat.training.tracking import EXPERIMENT

if TYPE_CHECKING:
    from mlflow import MlflowClient

SLOPE_RANGE = (0.9, 1.1)
PROMOTIONS_EXPERIMENT = "admission-risk-promotions"


@dataclass(frozen=True, slots=True)
class Decision:
    challenger_version: str
    champion_version: str | None
    promoted: bool
    failed_gates: tuple[str, ...]
    figures: dict[str, float] = field(default_factory=dict)
    test_rows: str = ""  # which test rows the models were compared on, in words
    model_name: str = MODEL_NAME  # the registered model (one per outcome)

    def explain(self) -> str:
        rows = f" ({self.test_rows})" if self.test_rows else ""
        version = f"{self.model_name} version {self.challenger_version}"
        if self.promoted:
            return f"{version} promoted to champion{rows}"
        return f"{version} refused{rows}: " + "; ".join(self.failed_gates)


@dataclass(frozen=True, slots=True)
class TestSet:
    """The rows both models are compared on, and how many the list's help took out."""

    __test__ = False  # not a pytest test class, whatever its name

    features: pd.DataFrame
    labels: np.ndarray
    left_out: int  # rows left out because list-triggered help touched them
    phrase: str  # which rows, in words, for the decision

    def problem(self) -> str | None:
        """Why the models cannot be compared on these rows, or None."""
        if len(self.labels) == 0 or self.labels.min() == self.labels.max():
            what = "no row is left" if len(self.labels) == 0 else "the rows left have one outcome"
            return f"cannot compare on data the list did not affect: {what} ({self.phrase})"
        return None


def _auroc_difference(labels: np.ndarray, challenger: np.ndarray, champion: np.ndarray) -> float:
    return auroc(labels, challenger) - auroc(labels, champion)


def paired_auroc_difference(
    labels: np.ndarray, challenger: np.ndarray, champion: np.ndarray, resamples: int, seed: int
) -> tuple[float, Interval]:
    """AUROC(challenger) - AUROC(champion), with a paired percentile bootstrap 95% interval
    (both models scored on the same resampled people)."""
    point = _auroc_difference(labels, challenger, champion)
    samples = (labels, challenger, champion)
    return point, bootstrap_interval(_auroc_difference, samples, resamples, seed)


def gate(
    challenger: ModelBundle,
    champion: ModelBundle | None,
    features: pd.DataFrame,
    labels: np.ndarray,
    resamples: int = 200,
    seed: int = 0,
) -> tuple[tuple[str, ...], dict[str, float]]:
    """Which gates the challenger fails on this test set, and the figures behind them
    (``resamples`` paired bootstrap resamples, drawn from ``seed``, for the AUROC difference)."""
    new_risk = challenger.predict(features)
    slope = calibration_slope(labels, new_risk)
    figures = {
        "challenger_auroc": float(roc_auc_score(labels, new_risk)),
        "challenger_calibration_slope": slope,
        "test_rows": float(len(labels)),
    }
    failed = []
    if not SLOPE_RANGE[0] <= slope <= SLOPE_RANGE[1]:
        failed.append(f"calibration slope {slope:.2f} is outside {SLOPE_RANGE[0]}-{SLOPE_RANGE[1]}")
    if champion is not None:
        old_risk = champion.predict(features)
        diff, interval = paired_auroc_difference(labels, new_risk, old_risk, resamples, seed)
        figures |= {
            "champion_auroc": float(roc_auc_score(labels, old_risk)),
            "auroc_difference": diff,
        }
        if interval.missing:
            failed.append(
                f"cannot tell whether AUROC is worse than the champion's ({diff:+.4f}) without "
                f"an interval: {interval.missing}"
            )
        else:
            figures |= {
                "auroc_difference_ci_low": interval.low,
                "auroc_difference_ci_high": interval.high,
            }
            if interval.high < 0:
                failed.append(
                    f"AUROC is significantly worse than the champion's ({diff:+.4f}, 95% CI "
                    f"{interval.low:+.4f} to {interval.high:+.4f})"
                )
    return tuple(failed), figures


def _test_set(bundle: ModelBundle, data_dir: Path | None, table: Path | None) -> TestSet:
    """The challenger's test set, rebuilt from its description: the contract tables at its
    test as-of date less the rows list-triggered help touched, or its own feature table's
    test rows (all of them: a table cannot tell help apart)."""
    described = bundle.described
    if described.table is not None:
        if table is None:
            raise UserError(
                "the challenger was trained on a feature table: give that table (--features) "
                "to rebuild its test set"
            )
        if described.test.kind == "held_out_groups" and described.test.seed is None:
            raise UserError(
                "the challenger's held-out draw was not recorded (saved before model bundle "
                "format 2): retrain it to promote it"
            )
        columns = described.table
        data = load_table(
            table,
            columns.label,
            columns.group,
            columns.time,
            horizon_days=described.outcome.horizon_days,
            seed=described.test.seed or 0,  # unused when the table has a time column
        )
        return TestSet(
            data.test.features,
            data.test.labels.to_numpy(),
            0,
            "all test rows: a feature table cannot tell which rows list-triggered help touched",
        )
    if data_dir is None or described.test.as_of is None:
        raise UserError(
            "the challenger was trained on contract tables: give them (--data) to rebuild "
            "its out-of-time test set"
        )
    as_of = described.test.as_of
    outcome = Outcome(
        horizon_days=described.outcome.horizon_days,
        include_death=described.outcome.include_death,
        admissions=described.outcome.admissions,
    )
    sources = ContractTables.from_dir(data_dir)
    features = build_features(sources, [as_of])
    labels = build_labels(sources, [as_of], outcome)["label"]
    rule = rule_of(described.intervention)
    helped = exposure(sources, [as_of], outcome.horizon_days, rule)
    return unaffected_rows(features, labels, helped, rule)


def unaffected_rows(
    features: pd.DataFrame, labels: pd.Series, helped: pd.DataFrame, rule: ExposureRule
) -> TestSet:
    """The rows of ``features`` with an observed label that no list-triggered help (``helped``,
    found with ``rule``) touched in their horizon."""
    labels = labels.reindex(features.index)
    observed = labels.notna().to_numpy()
    untouched = unaffected(features.index, helped)
    keep = observed & untouched
    left_out = int((observed & ~untouched).sum())
    return TestSet(
        features[keep],
        labels[keep].to_numpy(),
        left_out,
        f"{int(keep.sum()):,} test rows; {left_out:,} that list-triggered help touched left "
        f"out ({rule.describe()})",
    )


def judge(
    challenger: ModelBundle,
    champion: ModelBundle | None,
    test: TestSet,
    resamples: int = 200,
    seed: int = 0,
) -> tuple[tuple[str, ...], dict[str, float]]:
    """The gate on ``test``, or its one failure when the rows cannot compare the models."""
    problem = test.problem()
    if problem is None:
        failed, figures = gate(challenger, champion, test.features, test.labels, resamples, seed)
    else:
        failed, figures = (problem,), {"test_rows": float(len(test.labels))}
    return failed, figures | {"test_rows_left_out_exposed": float(test.left_out)}


def _current(tracking_uri: str, alias: str, name: str) -> RegisteredBundle | None:
    from mlflow.exceptions import MlflowException

    try:
        return load_registered(tracking_uri, name=name, alias=alias)
    except MlflowException:
        return None


def latest_challenger(tracking_uri: str) -> str:
    """The registered model whose challenger was registered last (the one just trained): what
    ``riskstrat promote`` promotes unless told which; the any-admission model when none has
    one (``promote`` then says so, after checking the data)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    registered = {}
    for name in MODEL_NAMES.values():
        try:
            found = client.get_model_version_by_alias(name, CHALLENGER)
        except MlflowException:
            continue
        registered[name] = found.creation_timestamp
    if not registered:
        return MODEL_NAME
    return max(registered, key=registered.__getitem__)


def _promotions_experiment(client: MlflowClient) -> str:
    """The experiment recording decisions, its artifacts beside the training runs'."""
    existing = client.get_experiment_by_name(PROMOTIONS_EXPERIMENT)
    if existing:
        return existing.experiment_id
    training = client.get_experiment_by_name(EXPERIMENT)
    location = f"{training.artifact_location}/promotions" if training else None
    return client.create_experiment(PROMOTIONS_EXPERIMENT, artifact_location=location)


def promote(
    data_dir: Path | None,
    tracking_uri: str,
    resamples: int = 200,
    seed: int = 0,
    *,
    table: Path | None = None,
    name: str = MODEL_NAME,
) -> Decision:
    """Run the gate for registered model ``name``'s challenger against its own champion; move
    that ``champion`` if it passes; record it.

    The test set is the challenger's own (see ``_test_set``): ``data_dir`` for a model
    trained on contract tables, ``table`` for one trained on a feature table."""
    import mlflow

    if data_dir is not None:
        with ContractTables.from_dir(data_dir) as sources:
            require_for("promote", present_kinds(sources), str(data_dir))
    challenger = _current(tracking_uri, CHALLENGER, name)
    if challenger is None:
        raise UserError(f"no version of {name} has the alias '{CHALLENGER}': train one first")
    champion = _current(tracking_uri, CHAMPION, name)
    if champion is not None and champion.version == challenger.version:
        store(challenger)
        return Decision(challenger.version, champion.version, True, (), {}, model_name=name)
    test = _test_set(challenger.bundle, data_dir, table)
    failed, figures = judge(
        challenger.bundle, champion.bundle if champion else None, test, resamples, seed
    )
    decision = Decision(
        challenger.version,
        champion.version if champion else None,
        not failed,
        failed,
        figures,
        test.phrase,
        name,
    )
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    if decision.promoted:
        store(challenger)
        client.set_registered_model_alias(name, CHAMPION, challenger.version)
    client.set_model_version_tag(
        name, challenger.version, "promotion", "promoted" if decision.promoted else "refused"
    )
    client.set_model_version_tag(name, challenger.version, "promotion_reason", decision.explain())
    mlflow.set_tracking_uri(tracking_uri)
    with mlflow.start_run(experiment_id=_promotions_experiment(client)):
        mlflow.log_params(
            {
                "registered_model": name,
                "challenger_version": challenger.version,
                "champion_version": decision.champion_version or "none",
                "promoted": decision.promoted,
                "data": str(table or data_dir),
                "test_rows": decision.test_rows[:500],
            }
        )
        mlflow.log_metrics(figures)
        mlflow.set_tag("decision", decision.explain())
    return decision
