"""Labels: the outcome window starts on the as-of date; leavers are censored, not negatives."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
import pytest
from contract_frames import patients_frame
from pydantic import ValidationError

from riskstrat.contract.tables import ContractTables
from riskstrat.features.avoidable import is_potentially_avoidable
from riskstrat.features.labels import (
    EVENT,
    LEFT_AREA,
    NO_EVENT,
    Outcome,
    build_labels,
    count_admissions,
)

AS_OF = date(2024, 1, 1)


def _sources(
    registration_end: list,
    death_date: list,
    admissions: list[tuple[str, date]],
    codes: list[tuple[str | None, str | None]] | None = None,
) -> ContractTables:
    n = len(registration_end)
    ids = [f"p{i}" for i in range(n)]
    patients = patients_frame(ids, registration_end=registration_end, death_date=death_date)
    events = pd.DataFrame(
        {
            "patient_id": [p for p, _ in admissions],
            "kind": "emergency_admission",
            "start": [d for _, d in admissions],
            "end": [d for _, d in admissions],
            "code_system": None if codes is None else [system for system, _ in codes],
            "code": None if codes is None else [code for _, code in codes],
            "value": None,
            "cost": None,
        }
    )
    practices = pd.DataFrame(
        {
            "practice_id": ["Z1"],
            "practice_name": ["One"],
            "gp_cluster": ["C"],
            "locality": ["North"],
        }
    )
    return ContractTables.from_frames(patients, events, practices)


def test_outcome_window_is_as_of_inclusive_to_horizon_exclusive() -> None:
    sources = _sources(
        [None] * 4,
        [None] * 4,
        [
            ("p0", AS_OF),
            ("p1", AS_OF + timedelta(days=364)),
            ("p2", AS_OF + timedelta(days=365)),
            ("p3", AS_OF - timedelta(days=1)),
        ],
    )
    labels = build_labels(sources, [AS_OF], Outcome())
    assert list(labels["label"]) == [1.0, 1.0, 0.0, 0.0]
    assert list(labels["status"]) == [EVENT, EVENT, NO_EVENT, NO_EVENT]


def test_leavers_are_censored_even_after_the_outcome() -> None:
    left = AS_OF + timedelta(days=100)
    last_day = AS_OF + timedelta(days=364)
    sources = _sources(
        [left, left, last_day, None], [None] * 4, [("p1", AS_OF + timedelta(days=50))]
    )
    labels = build_labels(sources, [AS_OF], Outcome())
    assert list(labels["status"]) == [LEFT_AREA, LEFT_AREA, NO_EVENT, NO_EVENT]
    assert labels["label"].isna().tolist() == [True, True, False, False]


def test_death_counts_only_when_asked() -> None:
    died = AS_OF + timedelta(days=30)
    sources = _sources([died], [died], [])
    assert build_labels(sources, [AS_OF], Outcome())["status"].tolist() == [NO_EVENT]
    with_death = build_labels(sources, [AS_OF], Outcome(include_death=True))
    assert with_death["label"].tolist() == [1.0]


def test_shorter_horizons() -> None:
    sources = _sources([None], [None], [("p0", AS_OF + timedelta(days=120))])
    assert build_labels(sources, [AS_OF], Outcome(horizon_days=90))["label"].tolist() == [0.0]
    assert build_labels(sources, [AS_OF], Outcome(horizon_days=180))["label"].tolist() == [1.0]


def test_avoidable_label_counts_only_ambulatory_care_sensitive_admissions() -> None:
    """The engine's test of a code agrees with ``is_potentially_avoidable`` on the forms
    extracts write (dots, case, spaces, 3- and 4-character prefixes, other vocabularies)."""
    day = AS_OF + timedelta(days=10)
    codes = [
        ("ICD10", "J44.1"),  # COPD
        ("ICD10", " n390 "),  # urinary tract infection, 4-character prefix
        ("ICD10", "N39.4"),  # N394: not N390
        ("ICD10", "S72.0"),  # hip fracture
        ("SNOMED", "J441"),  # looks like COPD, wrong vocabulary
        ("ICD10", None),
        (None, None),
    ]
    ids = [f"p{i}" for i in range(len(codes))]
    sources = _sources([None] * len(codes), [None] * len(codes), [(p, day) for p in ids], codes)
    avoidable = build_labels(sources, [AS_OF], Outcome(admissions="avoidable"))
    expected = [
        float(system == "ICD10" and is_potentially_avoidable(code)) for system, code in codes
    ]
    assert avoidable["label"].tolist() == expected == [1.0, 1.0, 0, 0, 0, 0, 0]
    assert build_labels(sources, [AS_OF], Outcome())["label"].tolist() == [1.0] * len(codes)


def test_the_first_avoidable_admission_dates_the_outcome() -> None:
    first, later = AS_OF + timedelta(days=5), AS_OF + timedelta(days=40)
    sources = _sources(
        [None], [None], [("p0", first), ("p0", later)], [("ICD10", "S720"), ("ICD10", "I50")]
    )
    labels = build_labels(sources, [AS_OF], Outcome(admissions="avoidable"), with_date=True)
    assert labels["first_event"].tolist() == [pd.Timestamp(later)]


def test_avoidable_outcome_is_its_own_name_and_refuses_death() -> None:
    assert Outcome(admissions="avoidable").name == "avoidable_emergency_admission_365d"
    with pytest.raises(ValidationError, match="not a potentially avoidable admission"):
        Outcome(admissions="avoidable", include_death=True)


def test_admission_counts_use_the_labels_window_and_avoidable_codes() -> None:
    """Every admission in the window counts, once per as-of date; the window's last day is
    inside and the next outside; only avoidable codes count for the avoidable outcome."""
    days = [AS_OF, AS_OF + timedelta(days=89), AS_OF + timedelta(days=90), AS_OF]
    codes = [("ICD10", "J441"), ("ICD10", "I50"), ("ICD10", "J441"), ("ICD10", "S720")]
    sources = _sources(
        [None, None], [None, None], [("p0", d) for d in days[:3]] + [("p1", days[3])], codes
    )
    later = AS_OF + timedelta(days=30)
    avoidable = count_admissions(
        sources, [AS_OF, later], Outcome(horizon_days=90, admissions="avoidable")
    )
    assert avoidable.to_dict() == {("p0", AS_OF): 2.0, ("p0", later): 2.0}
    every = count_admissions(sources, [AS_OF], Outcome(horizon_days=90))
    assert every.to_dict() == {("p0", AS_OF): 2.0, ("p1", AS_OF): 1.0}
