"""Train from contract tables: snapshots, fit, out-of-time test, MLflow run, registration."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from features.contract import TABLES
from features.engine import build_features, cohort_context, feature_specs
from features.labels import build_labels
from features.sources import Sources
from models.bundle import ModelBundle
from training.assess import Assessment, assess, write_report
from training.config import TrainConfig
from training.fit import Snapshots, fit_bundle
from training.tracking import LoggedRun, log_training

Progress = Callable[[str], None]


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


def later_as_of(sources: Sources, test_as_of: date, horizon_days: int) -> tuple[date, ...]:
    """Quarterly as-of dates after the test date whose whole horizon the data covers."""
    (last,) = sources.connection.execute("SELECT max(start) FROM events").fetchall()[0]
    dates = []
    for months in (3, 6, 9, 12, 15, 18):
        index = test_as_of.year * 12 + test_as_of.month - 1 + months
        as_of = date(index // 12, index % 12 + 1, test_as_of.day)
        if as_of + timedelta(days=horizon_days) <= last:
            dates.append(as_of)
    return tuple(dates)


def train_from_contract(
    data_dir: Path,
    config: TrainConfig,
    *,
    tracking_uri: str,
    artifact_root: Path | None,
    report_dir: Path,
    truth_path: Path | None = None,
    progress: Progress | None = None,
) -> TrainResult:
    """The whole training run on validated contract tables in ``data_dir``."""
    say = progress or (lambda _: None)
    sources = Sources.from_dir(data_dir)
    later = later_as_of(sources, config.test_as_of, config.outcome.horizon_days)
    dates = (*config.train_as_of, config.test_as_of, *later)
    say(f"building features and labels for {len(dates)} as-of dates")
    features = build_features(sources, dates)
    labels = build_labels(sources, dates, config.outcome)
    train = _rows(features, labels, config.train_as_of)
    test = _rows(features, labels, (config.test_as_of,))
    say(f"training on {len(train.labels):,} snapshots, testing on {len(test.labels):,} people")
    bundle, facts = fit_bundle(train, feature_specs(), config)
    say(f"assessing out of time on {config.test_as_of} and {len(later)} later date(s)")
    truth = pd.read_parquet(truth_path) if truth_path is not None else None
    assessment = assess(
        bundle,
        train=train,
        test=test,
        test_as_of=config.test_as_of,
        later={d: _rows(features, labels, (d,)) for d in later},
        context=cohort_context(sources, [config.test_as_of]),
        truth=truth,
        bootstrap=config.bootstrap,
        seed=config.seed,
    )
    metrics = assessment.metrics | {k: float(v) for k, v in facts.items()}
    risk = bundle.predict(test.features)
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
    write_report(report_dir, Assessment(metrics, assessment.tables), bundle)
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
        datasets={
            "training": (train.features.assign(label=train.labels), str(data_dir)),
            "test": (test.features.assign(label=test.labels), str(data_dir)),
        },
    )
    return TrainResult(bundle, metrics, run, report_dir)
