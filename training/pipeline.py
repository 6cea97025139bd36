"""Train from contract tables: snapshots, fit, out-of-time test, MLflow run, registration."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from features.contract import TABLES
from features.engine import build_features, feature_specs
from features.labels import build_labels
from features.sources import Sources
from models.bundle import ModelBundle
from training.config import TrainConfig
from training.evaluate import evaluate
from training.fit import Snapshots, fit_bundle
from training.tracking import LoggedRun, log_training

Progress = Callable[[str], None]
PRIOR_ADMISSIONS = "emergency_admissions_365d"


@dataclass(frozen=True, slots=True)
class TrainResult:
    bundle: ModelBundle
    metrics: dict[str, float]
    run: LoggedRun
    report_dir: Path


def fingerprint(data_dir: Path) -> str:
    """SHA-256 over the contract files, so a run names exactly the data it saw."""
    digest = hashlib.sha256()
    for table in TABLES:
        with (data_dir / table.file_name).open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


def _rows(features: pd.DataFrame, labels: pd.DataFrame, as_of: tuple[date, ...]) -> Snapshots:
    keep = features.index.get_level_values("as_of").isin(as_of) & labels["label"].notna().to_numpy()
    return Snapshots(features[keep], labels.loc[keep, "label"].astype(float))


def _oracle_auroc(truth_path: Path, test: Snapshots, as_of: date) -> dict[str, float]:
    """The best achievable AUROC on the same test rows, from the generator's exact risk."""
    truth = pd.read_parquet(truth_path)
    truth = truth[pd.to_datetime(truth["as_of"]).dt.date == as_of].set_index("patient_id")
    ids = test.features.index.get_level_values("patient_id")
    risk = truth["p_admission"].reindex(ids).to_numpy()
    known = ~np.isnan(risk)
    if known.sum() < len(risk) * 0.99:
        raise ValueError(f"{truth_path}: no exact risk as of {as_of} for most test rows")
    return {
        "oracle_auroc": float(roc_auc_score(test.labels.to_numpy()[known], risk[known])),
        "oracle_rows": float(known.sum()),
    }


def train_from_contract(
    data_dir: Path,
    config: TrainConfig,
    *,
    tracking_uri: str,
    artifact_root: Path | None,
    report_dir: Path,
    truth_path: Path | None = None,
    promote: bool = True,
    progress: Progress | None = None,
) -> TrainResult:
    """The whole training run on validated contract tables in ``data_dir``."""
    say = progress or (lambda _: None)
    sources = Sources.from_dir(data_dir)
    dates = (*config.train_as_of, config.test_as_of)
    say(f"building features and labels for {len(dates)} as-of dates")
    features = build_features(sources, dates)
    labels = build_labels(sources, dates, config.outcome)
    train, test = (
        _rows(features, labels, config.train_as_of),
        _rows(features, labels, (config.test_as_of,)),
    )
    say(f"training on {len(train.labels):,} snapshots, testing on {len(test.labels):,} people")
    bundle, facts = fit_bundle(train, feature_specs(), config)
    risk = bundle.predict(test.features)
    y = test.labels.to_numpy()
    metrics = evaluate(y, risk, config.bootstrap, config.seed)
    metrics["baseline_prior_admissions_auroc"] = float(
        roc_auc_score(y, test.features[PRIOR_ADMISSIONS].to_numpy())
    )
    if truth_path is not None:
        metrics |= _oracle_auroc(truth_path, test, config.test_as_of)
    metrics |= {k: float(v) for k, v in facts.items()}
    metadata = {
        "outcome": config.outcome.name,
        "horizon_days": config.outcome.horizon_days,
        "train_as_of": [d.isoformat() for d in config.train_as_of],
        "test_as_of": config.test_as_of.isoformat(),
        "data_fingerprint": fingerprint(data_dir),
        "metrics": metrics,
        "tier_thresholds": {
            "very_high": float(np.quantile(risk, 0.995)),
            "high": float(np.quantile(risk, 0.97)),
        },
        "test_population_risk_quantiles": np.quantile(risk, np.linspace(0, 1, 101)).tolist(),
    }
    bundle = ModelBundle(bundle.booster, bundle.calibration, bundle.specs, metadata)
    report_dir.mkdir(parents=True, exist_ok=True)
    (report_dir / "metrics.json").write_text(json.dumps(metrics, indent=2))
    say("logging the run and registering the model in MLflow")
    params = {
        "seed": config.seed,
        "outcome": config.outcome.name,
        "train_as_of": ",".join(d.isoformat() for d in config.train_as_of),
        "test_as_of": config.test_as_of.isoformat(),
        "data_fingerprint": metadata["data_fingerprint"],
        **{f"lgb_{k}": v for k, v in config.lightgbm.booster_params(config.seed).items()},
    }
    run = log_training(
        tracking_uri=tracking_uri,
        artifact_root=artifact_root,
        bundle=bundle,
        params=params,
        metrics=metrics,
        example=test.features.head(50),
        report_dir=report_dir,
        promote=promote,
    )
    return TrainResult(bundle, metrics, run, report_dir)
