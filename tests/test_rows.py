"""The sampling rule of the training rows: every positive, a stated share of the negatives
weighted back, calibration kept on the unsampled test rows, and no test-period row fitted."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from riskstrat.contract.tables import ContractTables
from riskstrat.features.engine import feature_specs
from riskstrat.features.exposure import ExposureRule
from riskstrat.features.spec import FeatureSpec
from riskstrat.training.config import LightGBMParams, TrainConfig
from riskstrat.training.fit import Snapshots, fit_bundle
from riskstrat.training.pipeline import snapshots_at, training_data
from riskstrat.training.rows import (
    HASHED_AT_ONCE,
    RowSampling,
    choose_rows,
    uniform,
    unweighted_share,
)

DATES = (date(2023, 1, 1), date(2023, 7, 1), date(2024, 1, 1))
TEST = date(2025, 1, 1)
SMALL_TREES = LightGBMParams(
    learning_rate=0.3, min_child_samples=20, max_rounds=100, early_stopping_rounds=10
)


def _labels(patients: int, prevalence: float, seed: int) -> pd.Series:
    rng = np.random.default_rng(seed)
    index = pd.MultiIndex.from_product(
        [[f"p{i:05d}" for i in range(patients)], (*DATES, TEST)], names=["patient_id", "as_of"]
    )
    y = (rng.uniform(size=len(index)) < prevalence).astype(float)
    y[rng.uniform(size=len(index)) < 0.05] = np.nan  # censored
    return pd.Series(y, index=index)


def test_each_rows_draw_is_the_keyed_hash_of_its_patient_and_date() -> None:
    """The rule that says which rows are kept: the same draws however the keys are made
    (in slices, from an index with unused levels, with dates as dates or timestamps)."""
    people = [f"p{i:05d}" for i in range(HASHED_AT_ONCE // len(DATES) + 7)]
    days = pd.MultiIndex.from_product([people, DATES], names=["patient_id", "as_of"])
    stamps = days.set_levels(pd.to_datetime(list(DATES)), level="as_of")
    key = "rows:9".ljust(16, "\0")
    for index in (days, stamps[:999], days[::50]):
        text = [f"{p}|{d:%Y-%m-%d}" for p, d in index]
        expected = pd.util.hash_array(np.array(text, dtype=object), hash_key=key) / 2.0**64
        assert np.array_equal(expected, uniform(index, 9))


def test_every_positive_and_the_stated_share_of_negatives_are_kept_weighted_back() -> None:
    labels = _labels(20_000, 0.1, seed=3)
    chosen = choose_rows(labels, DATES, RowSampling(negative_fraction=0.25), seed=42)
    kept = labels.reindex(chosen.weights.index)
    training = labels[labels.index.get_level_values("as_of").isin(DATES) & labels.notna()]
    assert (kept == 1).sum() == (training == 1).sum()
    assert abs((kept == 0).sum() / (training == 0).sum() - 0.25) < 0.01
    assert set(chosen.weights[kept == 1]) == {1.0} and set(chosen.weights[kept == 0]) == {4.0}
    # Weighted, the kept rows have the training rows' outcome rate.
    assert abs(np.average(kept, weights=chosen.weights) - training.mean()) < 0.005
    assert chosen.labelled == len(training)
    # The uniform share of the kept rows (the drift reference's) has it unweighted.
    share = unweighted_share(kept.index, RowSampling(negative_fraction=0.25), seed=42)
    assert abs(share.sum() / len(training) - 0.25) < 0.01
    assert abs(kept[share].mean() - training.mean()) < 0.01
    again = choose_rows(labels, DATES, RowSampling(negative_fraction=0.25), seed=42)
    assert again.weights.index.equals(chosen.weights.index)
    other = choose_rows(labels, DATES, RowSampling(negative_fraction=0.25), seed=43)
    assert not other.weights.index.equals(chosen.weights.index)


def test_a_model_fitted_on_sampled_rows_is_calibrated_on_the_unsampled_test_rows() -> None:
    rng = np.random.default_rng(5)
    patients = 4_000
    index = pd.MultiIndex.from_product(
        [[f"p{i:05d}" for i in range(patients)], (*DATES, TEST)], names=["patient_id", "as_of"]
    )
    x = rng.normal(size=len(index))
    y = (rng.uniform(size=len(index)) < 1 / (1 + np.exp(-(-2.5 + x)))).astype(float)
    features, labels = pd.DataFrame({"x": x}, index=index), pd.Series(y, index=index)
    chosen = choose_rows(labels, DATES, RowSampling(negative_fraction=0.2), seed=42)
    rows = chosen.weights.index
    train = Snapshots(features.loc[rows], labels.loc[rows], chosen.weights)
    spec = FeatureSpec(name="x", description="x", template="x {value:g}", concept="x", default=None)
    bundle, _ = fit_bundle(train, (spec,), TrainConfig(lightgbm=SMALL_TREES, refit="none"))
    at_test = index.get_level_values("as_of") == TEST
    risk = bundle.predict(features[at_test])
    observed = labels[at_test].mean()
    assert abs(risk.mean() - observed) < 0.01  # unweighted, it would be about 0.2 too high
    assert observed < 0.15


def test_no_test_period_row_reaches_the_fit_and_only_chosen_rows_leave_the_engine(
    validated: Path,
) -> None:
    config = TrainConfig(
        train_as_of=DATES[-1:],
        rows=RowSampling(negative_fraction=0.3),
        intervention={"strategy": "naive"},
    )
    horizon = config.outcome.horizon_days
    with ContractTables.from_dir(validated) as sources:
        data = training_data(sources, config, ExposureRule(), (DATES[-1], TEST))
        test = snapshots_at(sources, data.labels, TEST)
    as_of = pd.Index(data.train.features.index.get_level_values("as_of"))
    assert set(as_of) == {DATES[-1]}
    assert all(d + timedelta(days=horizon) <= TEST for d in set(as_of))
    assert data.train.features.index.equals(data.chosen.weights.index)
    assert list(data.train.features.columns) == [s.name for s in feature_specs()]
    assert {str(t) for t in data.train.features.dtypes} <= {"float32", "int8"}
    assert len(data.train.labels) < data.chosen.labelled
    # The test rows are every labelled person on the test date, unsampled.
    at_test = data.labels.xs(TEST, level="as_of")["label"].dropna()
    assert len(test.labels) == len(at_test)
    assert test.labels.sum() == at_test.sum()
