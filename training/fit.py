"""Fit LightGBM with early stopping on its own patients, then Platt-calibrate on others."""

from __future__ import annotations

from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from features.spec import FeatureSpec
from models.bundle import Calibration, ModelBundle
from training.config import TrainConfig
from training.split import CALIBRATION, TRAIN, VALIDATION, patient_parts


@dataclass(frozen=True, slots=True)
class Snapshots:
    """Features and labels for training: rows are (patient, as-of date), censored removed."""

    features: pd.DataFrame
    labels: pd.Series

    def __post_init__(self) -> None:
        if not self.features.index.equals(self.labels.index):
            raise ValueError("features and labels must share one index")
        if self.labels.isna().any():
            raise ValueError("labels must not be missing: drop censored rows first")

    def part(self, parts: pd.Series, name: str) -> Snapshots:
        mask = parts.reindex(self.features.index.get_level_values("patient_id")).to_numpy() == name
        return Snapshots(self.features[mask], self.labels[mask])


def platt(raw: np.ndarray, labels: np.ndarray) -> Calibration:
    """Logistic regression of the label on the raw log-odds (no regularisation to speak of)."""
    model = LogisticRegression(C=1e6, max_iter=1000).fit(raw.reshape(-1, 1), labels)
    return Calibration(slope=float(model.coef_[0, 0]), intercept=float(model.intercept_[0]))


def fit_bundle(
    data: Snapshots, specs: tuple[FeatureSpec, ...], config: TrainConfig
) -> tuple[ModelBundle, dict]:
    """Train on the train patients; stop early on validation; calibrate on calibration.

    Returns the bundle (metadata filled in by the caller) and facts about the fit.
    """
    parts = patient_parts(
        data.features.index.get_level_values("patient_id"),
        config.validation_share,
        config.calibration_share,
        config.seed,
    )
    train, valid, calib = (data.part(parts, p) for p in (TRAIN, VALIDATION, CALIBRATION))
    for name, part in ((TRAIN, train), (VALIDATION, valid), (CALIBRATION, calib)):
        if part.labels.nunique() < 2:
            raise ValueError(f"the {name} patients have only one outcome class: too few to train")
    names = [s.name for s in specs]
    categorical = [s.name for s in specs if s.categorical]
    params = config.lightgbm.booster_params(config.seed)
    train_set = lgb.Dataset(
        train.features[names], train.labels, categorical_feature=categorical, free_raw_data=False
    )
    valid_set = lgb.Dataset(
        valid.features[names], valid.labels, reference=train_set, categorical_feature=categorical
    )
    booster = lgb.train(
        params,
        train_set,
        num_boost_round=config.lightgbm.max_rounds,
        valid_sets=[valid_set],
        valid_names=[VALIDATION],
        callbacks=[lgb.early_stopping(config.lightgbm.early_stopping_rounds, verbose=False)],
    )
    booster.free_dataset()
    uncalibrated = ModelBundle(booster, Calibration(1.0, 0.0), specs)
    calibration = platt(uncalibrated.raw_score(calib.features), calib.labels.to_numpy())
    facts = {
        "best_iteration": booster.best_iteration,
        "rows_train": len(train.labels),
        "rows_validation": len(valid.labels),
        "rows_calibration": len(calib.labels),
        "patients_train": int((parts == TRAIN).sum()),
        "patients_validation": int((parts == VALIDATION).sum()),
        "patients_calibration": int((parts == CALIBRATION).sum()),
        "prevalence_train": float(train.labels.mean()),
    }
    return ModelBundle(booster, calibration, specs), facts
