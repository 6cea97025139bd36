"""The synthetic borough: deterministic by seed, plausible, and with an exact, calibrated oracle."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import numpy as np
import pandas as pd
import pytest

from riskstrat.contract.schema import EVENTS, PATIENTS, EventKind
from riskstrat.features.avoidable import potentially_avoidable
from riskstrat.features.catalogue import CONDITIONS
from riskstrat.features.labels import Outcome
from riskstrat.sources.synthetic.borough import Borough, generate
from riskstrat.sources.synthetic.config import SynthConfig
from riskstrat.sources.synthetic.truth import month_fractions
from riskstrat.training.assess import ORACLE, OracleMismatchError, matched_truth

TINY = SynthConfig(patients=400, seed=11, truth_as_of=())


def test_same_seed_gives_identical_tables() -> None:
    first, second = generate(TINY), generate(TINY)
    assert first.patients.equals(second.patients)
    assert first.events.equals(second.events)
    assert first.practices.equals(second.practices)


def test_another_seed_gives_another_borough() -> None:
    assert not generate(TINY).events.equals(generate(replace(TINY, seed=12)).events)


def test_asking_for_ground_truth_does_not_change_the_data() -> None:
    with_truth = generate(replace(TINY, truth_as_of=(date(2024, 1, 1),)))
    assert with_truth.events.equals(generate(TINY).events)
    assert len(with_truth.truth) > 0


def test_tables_follow_the_contract_and_hold_no_hidden_state(small_borough: Borough) -> None:
    assert small_borough.patients.schema.equals(PATIENTS.schema)
    assert small_borough.events.schema.equals(EVENTS.schema)
    kinds = set(small_borough.events.column("kind").to_pylist())
    assert kinds == {k.value for k in EventKind}


def test_borough_shape(small_borough: Borough) -> None:
    practices = small_borough.practices.to_pandas()
    assert practices["locality"].nunique() == 3
    assert practices["gp_cluster"].nunique() == 7
    assert 25 <= len(practices) <= 35


@pytest.mark.parametrize(
    ("kind", "low", "high"),
    [
        ("emergency_admission", 0.08, 0.15),
        ("ae_attendance", 0.3, 0.6),
        ("gp_contact", 4.5, 7.5),
        ("outpatient", 1.5, 3.0),
        ("elective_admission", 0.1, 0.2),
        ("care_coordination_call", 0.1, 0.3),
        ("social_prescribing_referral", 0.008, 0.03),
    ],
)
def test_yearly_event_rates_are_in_the_guide_ranges(
    small_borough: Borough, kind: str, low: float, high: float
) -> None:
    assert low <= small_borough.summary["yearly_rate_per_person"][kind] <= high


def test_death_rate_is_plausible(small_borough: Borough) -> None:
    assert 0.005 <= small_borough.summary["yearly_death_rate"] <= 0.015


def test_prevalence_and_oracle_auroc_are_realistic(small_borough: Borough) -> None:
    (truth,) = small_borough.summary["truth"]
    assert 0.06 <= truth["observed_prevalence"] <= 0.12
    assert 0.80 <= truth["oracle_auroc"] <= 0.90


def _truth_with_outcomes(borough: Borough) -> pd.DataFrame:
    """Each person's exact risk beside what happened to them in the next 365 days."""
    truth = borough.truth
    as_of = truth["as_of"].iloc[0]
    events = borough.events.to_pandas(date_as_object=False)
    admissions = events[
        (events["kind"] == "emergency_admission")
        & (events["start"] >= as_of)
        & (events["start"] < as_of + pd.Timedelta(days=365))
    ]
    patients = borough.patients.to_pandas(date_as_object=False).set_index("patient_id")
    frame = truth.set_index("patient_id").join(patients)
    frame["admitted"] = frame.index.isin(admissions["patient_id"])
    avoidable = potentially_avoidable(admissions["code"], admissions["code_system"])
    frame["avoidable_admitted"] = frame.index.isin(admissions.loc[avoidable, "patient_id"])
    left = frame["registration_end"] < as_of + pd.Timedelta(days=364)
    frame["age"] = (as_of - frame["birth_month"]).dt.days / 365.25
    return frame[~left]


def test_the_truth_records_its_horizon_and_is_compared_only_with_labels_of_it(
    small_borough: Borough,
) -> None:
    truth = small_borough.truth
    assert set(truth["horizon_days"]) == {SynthConfig().horizon_days} == {Outcome().horizon_days}
    matched = matched_truth(truth, Outcome())
    assert matched[ORACLE].tolist() == truth["p_admission"].tolist()
    with pytest.raises(OracleMismatchError) as caught:
        matched_truth(truth, Outcome(horizon_days=180))
    assert "horizon of 365 days and the labels' for 180 days" in str(caught.value)


def test_the_borough_diagnoses_exactly_the_catalogues_conditions(small_borough: Borough) -> None:
    events = small_borough.events.select(["kind", "code"]).to_pandas()
    coded = events.loc[events["kind"] == EventKind.LTC_DIAGNOSIS.value, "code"]
    assert set(coded) == set(CONDITIONS)


def test_oracle_is_calibrated_by_risk_group(small_borough: Borough) -> None:
    frame = _truth_with_outcomes(small_borough)
    groups = pd.qcut(frame["p_admission"], 5, labels=False)
    for _, group in frame.groupby(groups):
        expected = group["p_admission"].mean()
        observed = group["admitted"].mean()
        standard_error = np.sqrt(expected * (1 - expected) / len(group))
        assert abs(observed - expected) < 3.5 * standard_error + 0.005


def test_the_avoidable_oracle_is_calibrated_and_below_any_admission(
    small_borough: Borough,
) -> None:
    """Any potentially avoidable admission in the horizon counts, as in the labels: the
    truth's risk of one matches the observed rate, overall and by risk group, and is below the
    risk of any admission for everyone (and never above its untreated version)."""
    truth = small_borough.truth
    assert (truth["p_avoidable_admission"] < truth["p_admission"]).all()
    assert (truth["p_avoidable_admission"] <= truth["p_avoidable_admission_untreated"]).all()
    frame = _truth_with_outcomes(small_borough)
    groups = pd.qcut(frame["p_avoidable_admission"], 5, labels=False)
    for group in (frame, *(g for _, g in frame.groupby(groups))):
        expected = group["p_avoidable_admission"].mean()
        observed = group["avoidable_admitted"].mean()
        standard_error = np.sqrt((group["p_avoidable_admission"] * (1 - expected)).sum()) / len(
            group
        )
        assert abs(observed - expected) < 3.5 * standard_error + 0.003


def test_risk_rises_steeply_with_age(small_borough: Borough) -> None:
    frame = _truth_with_outcomes(small_borough)
    young = frame.loc[(frame["age"] >= 18) & (frame["age"] < 40), "admitted"].mean()
    old = frame.loc[frame["age"] >= 75, "admitted"].mean()
    assert old > 4 * young


def test_month_fractions_cover_the_horizon_exactly() -> None:
    parts = month_fractions(date(2024, 1, 1), 365)
    assert [m for m, _ in parts] == [*range(1, 13)]
    assert parts[-1][1] == pytest.approx(30 / 31)  # 2024 is a leap year: Dec 31 is outside
    assert month_fractions(date(2025, 1, 1), 365)[-1] == (12, 1.0)
