"""Labels: the outcome window starts on the as-of date; leavers are censored, not negatives."""

from __future__ import annotations

from datetime import date, timedelta

import pandas as pd
from contract_frames import patients_frame

from riskstrat.contract.tables import ContractTables
from riskstrat.features.labels import EVENT, LEFT_AREA, NO_EVENT, Outcome, build_labels

AS_OF = date(2024, 1, 1)


def _sources(
    registration_end: list, death_date: list, admissions: list[tuple[str, date]]
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
            "code_system": None,
            "code": None,
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
