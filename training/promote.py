"""The promotion gate: the challenger replaces the champion only if it is not worse.

Both models score the same out-of-time test set (the challenger's test as-of date, on the
data given). The challenger passes when:
- discrimination: its AUROC is not significantly worse than the champion's (the upper end
  of the paired-bootstrap 95% interval of the difference is above zero); and
- calibration: its calibration slope on that test set is within 0.9-1.1.
With no champion yet, only the calibration gate applies. Every decision is recorded as an
MLflow run in the ``admission-risk-promotions`` experiment and as tags on the challenger's
model version.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from features.engine import build_features
from features.labels import Outcome, build_labels
from features.tables import ContractTables
from models.bundle import ModelBundle
from models.registry import CHALLENGER, CHAMPION, MODEL_NAME, RegisteredBundle, load_registered
from models.store import store
from training.evaluate import calibration_slope
from training.tracking import EXPERIMENT

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

    def explain(self) -> str:
        if self.promoted:
            return f"version {self.challenger_version} promoted to champion"
        return f"version {self.challenger_version} refused: " + "; ".join(self.failed_gates)


def paired_auroc_difference(
    labels: np.ndarray, challenger: np.ndarray, champion: np.ndarray, resamples: int, seed: int
) -> tuple[float, float, float]:
    """AUROC(challenger) - AUROC(champion), with a paired percentile bootstrap 95% interval."""
    point = roc_auc_score(labels, challenger) - roc_auc_score(labels, champion)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples):
        idx = rng.integers(0, len(labels), len(labels))
        if labels[idx].min() != labels[idx].max():
            draws.append(
                roc_auc_score(labels[idx], challenger[idx])
                - roc_auc_score(labels[idx], champion[idx])
            )
    low, high = np.percentile(draws, [2.5, 97.5])
    return float(point), float(low), float(high)


def gate(
    challenger: ModelBundle,
    champion: ModelBundle | None,
    features: pd.DataFrame,
    labels: np.ndarray,
    resamples: int = 200,
    seed: int = 0,
) -> tuple[tuple[str, ...], dict[str, float]]:
    """Which gates the challenger fails on this test set, and the figures behind them."""
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
        diff, low, high = paired_auroc_difference(labels, new_risk, old_risk, resamples, seed)
        figures |= {
            "champion_auroc": float(roc_auc_score(labels, old_risk)),
            "auroc_difference": diff,
            "auroc_difference_ci_low": low,
            "auroc_difference_ci_high": high,
        }
        if high < 0:
            failed.append(
                f"AUROC is significantly worse than the champion's ({diff:+.4f}, 95% CI "
                f"{low:+.4f} to {high:+.4f})"
            )
    return tuple(failed), figures


def _test_set(data_dir: Path, bundle: ModelBundle) -> tuple[pd.DataFrame, np.ndarray]:
    metadata = bundle.metadata
    as_of = date.fromisoformat(metadata["test_as_of"])
    outcome = Outcome(
        horizon_days=int(metadata["horizon_days"]), include_death="or_death" in metadata["outcome"]
    )
    sources = ContractTables.from_dir(data_dir)
    features = build_features(sources, [as_of])
    labels = build_labels(sources, [as_of], outcome)["label"]
    observed = labels.notna().to_numpy()
    return features[observed], labels[observed].to_numpy()


def _current(tracking_uri: str, alias: str) -> RegisteredBundle | None:
    from mlflow.exceptions import MlflowException

    try:
        return load_registered(tracking_uri, alias=alias)
    except MlflowException:
        return None


def _promotions_experiment(client: MlflowClient) -> str:
    """The experiment recording decisions, its artifacts beside the training runs'."""
    existing = client.get_experiment_by_name(PROMOTIONS_EXPERIMENT)
    if existing:
        return existing.experiment_id
    training = client.get_experiment_by_name(EXPERIMENT)
    location = f"{training.artifact_location}/promotions" if training else None
    return client.create_experiment(PROMOTIONS_EXPERIMENT, artifact_location=location)


def promote(data_dir: Path, tracking_uri: str, resamples: int = 200, seed: int = 0) -> Decision:
    """Run the gate for the current challenger; move ``champion`` if it passes; record it."""
    import mlflow

    challenger = _current(tracking_uri, CHALLENGER)
    if challenger is None:
        raise ValueError(f"no model version has the alias '{CHALLENGER}': train one first")
    champion = _current(tracking_uri, CHAMPION)
    if champion is not None and champion.version == challenger.version:
        store(challenger)
        return Decision(challenger.version, champion.version, True, (), {})
    features, labels = _test_set(data_dir, challenger.bundle)
    failed, figures = gate(
        challenger.bundle, champion.bundle if champion else None, features, labels, resamples, seed
    )
    decision = Decision(
        challenger.version, champion.version if champion else None, not failed, failed, figures
    )
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    if decision.promoted:
        store(challenger)
        client.set_registered_model_alias(MODEL_NAME, CHAMPION, challenger.version)
    client.set_model_version_tag(
        MODEL_NAME, challenger.version, "promotion", "promoted" if decision.promoted else "refused"
    )
    client.set_model_version_tag(
        MODEL_NAME, challenger.version, "promotion_reason", decision.explain()
    )
    mlflow.set_tracking_uri(tracking_uri)
    with mlflow.start_run(experiment_id=_promotions_experiment(client)):
        mlflow.log_params(
            {
                "challenger_version": challenger.version,
                "champion_version": decision.champion_version or "none",
                "promoted": decision.promoted,
                "data": str(data_dir),
            }
        )
        mlflow.log_metrics(figures)
        mlflow.set_tag("decision", decision.explain())
    return decision
