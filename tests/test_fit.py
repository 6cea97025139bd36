"""Fitting: the final booster learns the validation rows, Platt scaling sees only scores of
patients the scoring booster never saw, the latest snapshot drives calibration when asked, and
a seed fixes the result."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from riskstrat.features.spec import FeatureSpec
from riskstrat.training.config import LightGBMParams, TrainConfig
from riskstrat.training.evaluate import calibration_in_the_large
from riskstrat.training.fit import Snapshots, fit_bundle, platt
from riskstrat.training.split import VALIDATION, patient_folds, patient_parts

REFITS = ("none", "validation", "crossfit")
DATES = (date(2023, 1, 1), date(2023, 7, 1), date(2024, 1, 1))
SMALL_TREES = LightGBMParams(min_child_samples=20, max_rounds=300, early_stopping_rounds=20)


def _spec(name: str) -> FeatureSpec:
    return FeatureSpec(
        name=name, description=name, template=f"{name} {{value:g}}", concept=name, default=None
    )


def _snapshots(columns: dict[str, np.ndarray], labels: np.ndarray, ids, dates) -> Snapshots:
    index = pd.MultiIndex.from_arrays(
        [np.asarray(ids), np.asarray(dates)], names=["patient_id", "as_of"]
    )
    return Snapshots(pd.DataFrame(columns, index=index), pd.Series(labels, index=index))


def _shifted(patients: int, shift: float, seed: int) -> Snapshots:
    """Risk from one feature; the latest as-of date's log-odds are ``shift`` higher."""
    rng = np.random.default_rng(seed)
    ids = np.repeat([f"p{i:05d}" for i in range(patients)], len(DATES))
    dates = np.tile(DATES, patients)
    x = rng.normal(size=len(ids))
    logit = -2.0 + x + shift * (dates == DATES[-1])
    y = (rng.uniform(size=len(ids)) < 1 / (1 + np.exp(-logit))).astype(float)
    return _snapshots({"x": x}, y, ids, dates)


@pytest.mark.parametrize("refit", REFITS)
def test_the_final_booster_learns_a_signal_planted_only_in_validation_patients(refit: str) -> None:
    data = _shifted(3000, 0.0, seed=1)
    config = TrainConfig(lightgbm=SMALL_TREES, refit=refit)
    parts = patient_parts(data.patient_ids, 0.15, 0.15, config.seed)
    in_validation = parts.reindex(data.patient_ids).to_numpy() == VALIDATION
    planted = np.where(in_validation, data.labels.to_numpy(), 0.0)
    data = Snapshots(data.features.assign(planted=planted), data.labels)
    bundle, facts = fit_bundle(data, (_spec("x"), _spec("planted")), config)
    splits_on_planted = bundle.booster.feature_importance("split")[1]
    if refit == "none":
        assert splits_on_planted == 0
        assert facts["rows_final"] == facts["rows_train"]
    else:
        assert splits_on_planted > 0
        assert facts["rows_final"] >= facts["rows_train"] + facts["rows_validation"]


@pytest.mark.parametrize("refit", REFITS)
def test_latest_snapshot_calibration_matches_a_shift_in_the_latest_snapshot(refit: str) -> None:
    data = _shifted(10_000, 1.0, seed=2)
    fresh = _shifted(20_000, 1.0, seed=3)
    latest = fresh.rows(fresh.latest())
    in_the_large = {}
    for snapshots in ("latest", "all"):
        config = TrainConfig(lightgbm=SMALL_TREES, refit=refit, calibration_snapshots=snapshots)
        bundle, _ = fit_bundle(data, (_spec("x"),), config)
        risk = bundle.predict(latest.features)
        in_the_large[snapshots] = calibration_in_the_large(latest.labels.to_numpy(), risk)
    assert in_the_large == {
        "latest": pytest.approx(0.0, abs=0.12),
        "all": pytest.approx(0.6, abs=0.2),
    }


@pytest.mark.parametrize("refit", REFITS)
def test_platt_scaling_never_sees_scores_of_patients_the_booster_learnt(refit: str) -> None:
    """Each patient's ten rows share a feature value and a coin-flip label: a booster can
    memorise the patients it learns but predicts no one else. Calibrating on scores of learnt
    patients would give a clearly positive slope; honest scores give a slope near zero."""
    rng = np.random.default_rng(5)
    patients, rows_each = 3000, 10
    ids = np.repeat([f"p{i:05d}" for i in range(patients)], rows_each)
    dates = np.tile([date(2020 + j // 12, j % 12 + 1, 1) for j in range(rows_each)], patients)
    x = np.repeat(rng.uniform(size=patients), rows_each)
    y = np.repeat((rng.uniform(size=patients) < 0.5).astype(float), rows_each)
    memorising = LightGBMParams(
        learning_rate=1.0,
        num_leaves=255,
        max_depth=-1,
        min_child_samples=5,
        lambda_l2=0.0,
        feature_fraction=1.0,
        max_rounds=50,
        early_stopping_rounds=5,
    )
    config = TrainConfig(lightgbm=memorising, refit=refit, calibration_snapshots="all")
    data = _snapshots({"x": x}, y, ids, dates)
    bundle, _ = fit_bundle(data, (_spec("x"),), config)
    assert platt(bundle.raw_score(data.features), y).slope > 0.5  # it memorised what it learnt
    assert abs(bundle.calibration.slope) < 0.25


def test_the_same_seed_gives_the_same_model_and_calibration() -> None:
    data = _shifted(2000, 0.5, seed=4)
    config = TrainConfig(lightgbm=SMALL_TREES)
    first, first_facts = fit_bundle(data, (_spec("x"),), config)
    second, second_facts = fit_bundle(data, (_spec("x"),), config)
    assert first.booster.model_to_string() == second.booster.model_to_string()
    assert (first.calibration, first_facts) == (second.calibration, second_facts)
    other, _ = fit_bundle(data, (_spec("x"),), replace(config, seed=config.seed + 1))
    assert other.calibration != first.calibration


def test_every_patient_has_one_fold_and_folds_are_near_equal() -> None:
    ids = pd.Index([f"p{i}" for i in range(5000)] * 3)
    folds = patient_folds(ids, 5, seed=1)
    per_patient = pd.Series(folds).groupby(np.asarray(ids)).nunique()
    assert (per_patient == 1).all()
    shares = pd.Series(folds[:5000]).value_counts(normalize=True)
    assert sorted(shares.index) == [0, 1, 2, 3, 4]
    assert shares.max() - shares.min() < 0.04


def test_latest_calibration_refuses_a_latest_snapshot_with_one_outcome_class() -> None:
    data = _shifted(2000, 0.0, seed=6)
    latest = data.latest()
    data = Snapshots(data.features, data.labels.where(~latest, 0.0))
    with pytest.raises(ValueError, match="latest as-of date have only one outcome class"):
        config = TrainConfig(lightgbm=SMALL_TREES, calibration_snapshots="latest")
        fit_bundle(data, (_spec("x"),), config)


def test_undated_rows_are_all_latest() -> None:
    data = _snapshots(
        {"x": np.arange(4.0)}, np.array([0.0, 1, 0, 1]), ["a", "b", "c", "d"], [pd.NaT] * 4
    )
    assert data.latest().all()


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ('refit = "all"', "refit: must be one of 'none', 'validation' or 'crossfit' (got 'all')"),
        ('calibration_snapshots = "first"', "calibration_snapshots: must be one of 'latest' or"),
        ("crossfit_folds = 1", "crossfit_folds: must be between 2 and 20 (got 1)"),
        ('refit_scale_rounds = "yes"', "refit_scale_rounds: must be true or false (got 'yes')"),
    ],
)
def test_bad_fit_settings_are_refused_naming_the_field(
    setting: str, message: str, tmp_path: Path
) -> None:
    path = tmp_path / "train.toml"
    path.write_text(f"[train]\n{setting}\n")
    with pytest.raises(ValueError) as caught:
        TrainConfig.from_toml(path)
    assert str(caught.value).startswith(f"{path}: [train] {message}")


def test_fit_settings_load_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "train.toml"
    path.write_text(
        '[train]\nrefit = "validation"\ncalibration_snapshots = "all"\ncrossfit_folds = 3\n'
    )
    config = TrainConfig.from_toml(path)
    assert (config.refit, config.calibration_snapshots, config.crossfit_folds) == (
        "validation",
        "all",
        3,
    )
