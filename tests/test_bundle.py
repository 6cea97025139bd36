"""The model bundle: saved without pickle, reloaded identically, explanations additive."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from riskstrat.features.engine import PERSON_SPECS
from riskstrat.features.spec import FeatureSpec
from riskstrat.models.bundle import (
    BUNDLE_FILE,
    MODEL_FILE,
    Calibration,
    FeatureMismatchError,
    ModelBundle,
)
from riskstrat.models.description import ModelDescription, OutcomeDescription, TestDesign
from riskstrat.models.drift import DriftReference, Profile
from riskstrat.models.tiers import TierPolicy

SPECS = (
    FeatureSpec(
        name="admissions",
        description="admissions",
        template="{value:.0f} admissions",
        zero_template="no admissions",
        concept="emergency admissions",
        default=0.0,
    ),
    FeatureSpec(
        name="bed_days",
        description="bed days",
        template="{value:.0f} bed days",
        concept="emergency admissions",
        default=0.0,
    ),
    *(spec for name in ("age", "sex") for spec in PERSON_SPECS if spec.name == name),
)


DESCRIPTION = ModelDescription(
    outcome=OutcomeDescription(name="emergency_admission_365d", horizon_days=365),
    train_as_of=(date(2023, 1, 1), date(2024, 1, 1)),
    test=TestDesign(kind="out_of_time", as_of=date(2025, 1, 1)),
    data_fingerprint="f" * 64,
    metrics={"auroc": 0.8, "calibration_slope": float("nan")},
    tiers=TierPolicy().cut(np.linspace(0.0, 0.5, 1001)),
    test_risk_quantiles=tuple(np.linspace(0.0, 0.5, 101)),
    drift_reference=DriftReference(
        score=Profile.of(np.linspace(0, 1, 50)), features={"age": Profile.of(np.arange(90.0))}
    ),
)


@pytest.fixture(scope="module")
def bundle() -> ModelBundle:
    rng = np.random.default_rng(0)
    n = 4000
    frame = pd.DataFrame(
        {
            "admissions": rng.poisson(0.3, n).astype(float),
            "bed_days": rng.poisson(1.0, n).astype(float),
            "age": rng.uniform(18, 95, n),
            "sex": rng.integers(0, 2, n),
        }
    )
    logit = -4 + 1.2 * frame["admissions"] + 0.04 * (frame["age"] - 50)
    y = rng.random(n) < 1 / (1 + np.exp(-logit))
    booster = lgb.train(
        {
            "objective": "binary",
            "verbosity": -1,
            "deterministic": True,
            "force_row_wise": True,
            "seed": 1,
            "num_threads": 1,
        },
        lgb.Dataset(frame, y, categorical_feature=["sex"]),
        num_boost_round=30,
    )
    return ModelBundle(booster, Calibration(0.9, -0.1), SPECS, DESCRIPTION)


def _rows() -> pd.DataFrame:
    return pd.DataFrame(
        {"admissions": [0.0, 3.0], "bed_days": [0.0, 12.0], "age": [30.0, 88.0], "sex": [0, 1]},
        index=["young", "old"],
    )


def test_save_and_load_round_trip_without_pickle(bundle: ModelBundle, tmp_path: Path) -> None:
    folder = bundle.save(tmp_path / "bundle")
    assert sorted(p.name for p in folder.iterdir()) == sorted([BUNDLE_FILE, MODEL_FILE])
    loaded = ModelBundle.load(folder)
    np.testing.assert_array_equal(loaded.predict(_rows()), bundle.predict(_rows()))
    assert loaded.specs == bundle.specs
    # compared as JSON: a NaN metric (undefined on a small test) survives as NaN
    assert loaded.described.model_dump_json() == DESCRIPTION.model_dump_json()
    assert np.isnan(loaded.described.metrics["calibration_slope"])


def test_one_pass_risk_equals_predict(bundle: ModelBundle) -> None:
    risk, reasons = bundle.predict_and_explain(_rows(), 3)
    np.testing.assert_allclose(risk, bundle.predict(_rows()), rtol=1e-12)
    assert [r[:3] for r in reasons] == bundle.explain(_rows(), 3)


def test_a_text_column_is_refused_by_name(bundle: ModelBundle) -> None:
    rows = _rows().astype({"age": "str"})
    with pytest.raises(FeatureMismatchError, match="must be numeric: age"):
        bundle.predict_and_explain(rows)


def test_contributions_sum_to_the_calibrated_log_odds(bundle: ModelBundle) -> None:
    risk = bundle.predict(_rows())
    total = bundle.contributions(_rows()).sum(axis=1).to_numpy()
    np.testing.assert_allclose(total, np.log(risk / (1 - risk)), rtol=1e-9)


def test_reasons_are_grouped_sentences_that_raise_risk(bundle: ModelBundle) -> None:
    young, old = bundle.explain(_rows(), top_k=3)
    assert old[0].concept == "emergency admissions"
    assert old[0].features == ("admissions", "bed_days")
    assert old[0].sentence == "3 admissions"
    assert (old[0].feature, old[0].value) == ("admissions", 3.0)
    assert all(r.contribution > 0 and r.direction == "raises risk" for r in old)
    assert all(r.contribution > 0 for r in young)


def test_column_order_does_not_matter_but_missing_columns_do(bundle: ModelBundle) -> None:
    shuffled = _rows()[["sex", "age", "bed_days", "admissions"]]
    np.testing.assert_array_equal(bundle.predict(shuffled), bundle.predict(_rows()))
    with pytest.raises(FeatureMismatchError, match="missing feature columns: bed_days"):
        bundle.predict(_rows().drop(columns="bed_days"))


def test_categorical_sentence_uses_the_vocabulary() -> None:
    assert SPECS[3].sentence(1) == "sex M"
    assert SPECS[3].sentence(-1) == "sex unknown"
    assert SPECS[0].sentence(0) == "no admissions"


def test_nobody_to_explain_gives_nothing(bundle: ModelBundle) -> None:
    risk, reasons = bundle.predict_and_explain(_rows().head(0))
    assert len(risk) == 0 and reasons == []


def test_a_bundle_saved_before_the_typed_description_still_loads(
    bundle: ModelBundle, tmp_path: Path
) -> None:
    folder = bundle.save(tmp_path / "old")
    body = json.loads((folder / BUNDLE_FILE).read_text())
    del body["description"]
    body["format_version"] = 1
    body["metadata"] = {
        "outcome": "emergency_admission_or_death_365d",
        "horizon_days": 365,
        "train_as_of": ["2023-01-01", "2024-01-01"],
        "test_as_of": "2025-01-01",
        "data_fingerprint": "f" * 64,
        "metrics": {"auroc": 0.8},
        "tier_thresholds": {"very_high": 0.4, "high": 0.2},
        "test_population_risk_quantiles": list(np.linspace(0.0, 0.5, 101)),
    }
    (folder / BUNDLE_FILE).write_text(json.dumps(body))
    about = ModelBundle.load(folder).described
    assert about.outcome.include_death and about.outcome.horizon_days == 365
    assert about.test == TestDesign(kind="out_of_time", as_of=date(2025, 1, 1))
    assert (about.tiers.very_high, about.tiers.high) == (0.4, 0.2)
    assert list(about.tiers.assign(np.array([0.5, 0.3, 0.1]))) == ["very high", "high", ""]
    assert about.drift_reference is None


def test_an_unknown_bundle_format_is_refused_by_name(bundle: ModelBundle, tmp_path: Path) -> None:
    folder = bundle.save(tmp_path / "future")
    body = json.loads((folder / BUNDLE_FILE).read_text())
    (folder / BUNDLE_FILE).write_text(json.dumps(body | {"format_version": 9}))
    with pytest.raises(ValueError, match=r"bundle\.json: unsupported format 9"):
        ModelBundle.load(folder)
