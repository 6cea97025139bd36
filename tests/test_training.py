"""Training settings and splits: no leakage of the test period, no patient in two parts."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from riskstrat.features.labels import Outcome
from riskstrat.training.assess import ORACLE, UNTREATED, OracleMismatchError, matched_truth
from riskstrat.training.config import TrainConfig
from riskstrat.training.split import CALIBRATION, TRAIN, VALIDATION, patient_parts
from riskstrat.training.table import load_table


def test_a_training_label_running_into_the_test_period_is_refused() -> None:
    with pytest.raises(ValueError, match="the test would leak"):
        TrainConfig(train_as_of=(date(2024, 6, 1),), test_as_of=date(2025, 1, 1))


def test_the_latest_label_may_end_on_the_test_date() -> None:
    config = TrainConfig(train_as_of=(date(2024, 1, 2),), test_as_of=date(2025, 1, 1))
    assert config.test_as_of == date(2025, 1, 1)


def test_every_snapshot_of_a_patient_falls_in_one_part() -> None:
    ids = pd.Index([f"p{i}" for i in range(5000)] * 3)
    parts = patient_parts(ids, 0.15, 0.15, seed=1)
    assert parts.index.is_unique and len(parts) == 5000
    shares = parts.value_counts(normalize=True)
    assert shares[VALIDATION] == pytest.approx(0.15, abs=0.02)
    assert shares[CALIBRATION] == pytest.approx(0.15, abs=0.02)
    assert shares[TRAIN] == pytest.approx(0.70, abs=0.02)


def test_a_patient_keeps_their_part_whoever_else_is_in_the_data() -> None:
    few = patient_parts(pd.Index(["x", "y"]), 0.15, 0.15, seed=3)
    many = patient_parts(pd.Index(["x", "y", *[f"p{i}" for i in range(100)]]), 0.15, 0.15, seed=3)
    assert few["x"] == many["x"] and few["y"] == many["y"]


def test_settings_load_from_toml(tmp_path: Path) -> None:
    path = tmp_path / "train.toml"
    path.write_text(
        "[train]\nseed = 5\ntrain_as_of = [2023-01-01]\ntest_as_of = 2024-06-01\n"
        "[train.outcome]\nhorizon_days = 180\n[train.lightgbm]\nnum_leaves = 15\n"
    )
    config = TrainConfig.from_toml(path)
    assert (config.seed, config.outcome.horizon_days, config.lightgbm.num_leaves) == (5, 180, 15)
    path.write_text("[train]\nlearning_rat = 0.1\n")
    with pytest.raises(ValueError, match=r"\[train\] learning_rat: unknown setting"):
        TrainConfig.from_toml(path)


def _table(tmp_path: Path) -> Path:
    rng = np.random.default_rng(4)
    rows = []
    for person in range(1500):
        risk = rng.uniform(-4, 0)
        for as_of in (date(2022, 1, 1), date(2023, 1, 1), date(2024, 1, 1)):
            rows.append(
                {
                    "person": f"p{person}",
                    "when": as_of,
                    "score": risk + rng.normal(0, 0.3),
                    "area": rng.choice(["N", "S"]),
                    "y": float(rng.random() < 1 / (1 + np.exp(-risk))),
                }
            )
    frame = pd.DataFrame(rows)
    frame.loc[0, "y"] = np.nan
    path = tmp_path / "table.parquet"
    frame.to_parquet(path)
    return path


def test_own_feature_table_tests_on_the_latest_date_and_trains_only_on_finished_horizons(
    tmp_path: Path,
) -> None:
    data = load_table(_table(tmp_path), "y", "person", "when", horizon_days=365, seed=43)
    assert set(data.test.features.index.get_level_values("as_of")) == {date(2024, 1, 1)}
    assert set(data.train.features.index.get_level_values("as_of")) == {
        date(2022, 1, 1),
        date(2023, 1, 1),
    }
    assert data.unlabelled == 1
    assert [s.name for s in data.specs] == ["score", "area"]
    assert data.specs[1].vocabulary == ("N", "S")


def test_own_feature_table_without_time_holds_out_whole_people(tmp_path: Path) -> None:
    data = load_table(_table(tmp_path), "y", "person", None, horizon_days=365, seed=43)
    train_people = set(data.train.features.index.get_level_values("patient_id"))
    test_people = set(data.test.features.index.get_level_values("patient_id"))
    assert not train_people & test_people
    assert 0.15 < len(test_people) / 1500 < 0.25
    assert data.test_design.kind == "held_out_groups"
    assert data.test_design.phrase() == "on 20% of groups held out (not out of time)"


def test_own_feature_table_errors_name_the_file_and_column(tmp_path: Path) -> None:
    path = _table(tmp_path)
    with pytest.raises(ValueError, match=r"table\.parquet: no label column 'outcome'"):
        load_table(path, "outcome", None, None, horizon_days=365, seed=43)
    with pytest.raises(ValueError, match="label column 'score' must hold 0/1"):
        load_table(path, "score", None, None, horizon_days=365, seed=43)


def test_a_feature_table_model_says_how_it_was_tested_and_promotion_rebuilds_its_test(
    tmp_path: Path,
) -> None:
    """Without a time column the test is on held-out groups, and the card, the description and
    the MLflow run say so; promotion rebuilds the same test rows from the table itself."""
    from riskstrat.training.pipeline import train_from_table
    from riskstrat.training.promote import _test_set, gate

    path = _table(tmp_path)
    result = train_from_table(
        path,
        "y",
        TrainConfig(bootstrap=10),
        group="person",
        time=None,
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        artifact_root=tmp_path / "artifacts",
        report_dir=tmp_path / "report",
    )
    about = result.bundle.described
    assert about.test.kind == "held_out_groups" and about.test.as_of is None
    assert about.outcome.label_column == "y" and about.table.group == "person"
    card = (tmp_path / "report" / "model_card.html").read_text()
    assert "on 20% of groups held out (not out of time)" in card
    assert "out of time (as of" not in card
    assert "the feature table&#39;s label column &#39;y&#39;" in card
    assert "emergency admission" not in card
    test = _test_set(result.bundle, None, path)
    assert len(test.labels) == result.metrics["test_rows"] and test.left_out == 0
    assert "a feature table cannot tell which rows list-triggered help touched" in test.phrase
    _, figures = gate(result.bundle, None, test.features, test.labels, resamples=10)
    assert figures["challenger_auroc"] == pytest.approx(result.metrics["auroc"])
    with pytest.raises(ValueError, match="trained on a feature table"):
        _test_set(result.bundle, tmp_path, None)


def test_the_card_derives_its_words_from_the_description_and_specs() -> None:
    from riskstrat.features.engine import feature_specs
    from riskstrat.models.description import OutcomeDescription
    from riskstrat.training.model_card import missing_data

    with_death = OutcomeDescription(name="x", horizon_days=180, include_death=True)
    assert with_death.sentence().startswith("an emergency admission or death within 180 days")
    specs = feature_specs()
    days_since = {s.default for s in specs if s.name.startswith("days_since")}
    text = missing_data(specs)
    assert all(f"take {d:g}" in text for d in days_since | {0.0})
    assert "unknown category is its own code" in text


def test_the_oracle_is_the_truth_of_the_labels_outcome() -> None:
    truth = pd.DataFrame(
        {
            "patient_id": ["a", "b"],
            "as_of": pd.to_datetime(["2024-01-01", "2024-01-01"]),
            "horizon_days": [180, 180],
            "p_admission": [0.1, 0.2],
            "p_admission_or_death": [0.15, 0.3],
            "p_admission_untreated": [0.12, 0.2],
        }
    )
    admission = matched_truth(truth, Outcome(horizon_days=180))
    assert admission[[ORACLE, UNTREATED]].to_numpy().tolist() == [[0.1, 0.12], [0.2, 0.2]]
    assert admission["as_of"].tolist() == [date(2024, 1, 1)] * 2
    either = matched_truth(truth, Outcome(horizon_days=180, include_death=True))
    assert (either[ORACLE].tolist(), UNTREATED in either.columns) == ([0.15, 0.3], False)
    with pytest.raises(OracleMismatchError, match="horizon of 180 days and the labels' for 365"):
        matched_truth(truth, Outcome())
    with pytest.raises(OracleMismatchError, match="records no horizon_days"):
        matched_truth(truth.drop(columns="horizon_days"), Outcome(horizon_days=180))
    avoidable = Outcome(horizon_days=180, admissions="avoidable")
    with pytest.raises(OracleMismatchError, match="no p_avoidable_admission column"):
        matched_truth(truth, avoidable)
    truth = truth.assign(
        p_avoidable_admission=[0.03, 0.05], p_avoidable_admission_untreated=[0.04, 0.05]
    )
    matched = matched_truth(truth, avoidable)
    assert matched[[ORACLE, UNTREATED]].to_numpy().tolist() == [[0.03, 0.04], [0.05, 0.05]]
