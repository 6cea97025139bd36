"""Care still running on the extract date is data: validation keeps it (only starts after
the extract date are quarantined), the list's help counts as running, and no feature reads
the part of an episode that lies after the as-of date."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from contract_frames import patients_frame

from riskstrat.contract.schema import EVENTS, PATIENTS, PRACTICES
from riskstrat.contract.tables import ContractTables
from riskstrat.contract.validation import QUARANTINE_DIR, validate_dir
from riskstrat.features.engine import build_features
from riskstrat.features.exposure import ExposureRule, exposure, help_started

EXTRACT = date(2026, 10, 31)
PLAN = "reablement_plan"
PRACTICE = pd.DataFrame(
    {"practice_id": ["Z1"], "practice_name": ["One"], "gp_cluster": ["C"], "locality": ["N"]}
)


def day(offset: int) -> date:
    return EXTRACT + timedelta(days=offset)


# (patient, kind, code, start, end, value, cost) relative to the extract date
RUNNING = [
    ("a", PLAN, "risk_list", -30, 60, None, None),  # a plan started last month, 2 more months
    ("a", "social_care_package", "home_care", -200, 90, 10.0, 240.0),  # to its review date
    ("b", "emergency_admission", "emergency", -3, 4, 7.0, None),  # planned discharge
    ("b", "case_management", "integrated_locality_model", -100, 300, None, None),
    ("c", "care_home_admission", "care_home", -50, 4000, None, None),
    ("c", "prescription", "opioid", -10, 17, 1.0, None),
    ("c", "gp_contact", "face_to_face", -400, -400, None, None),
]


def _events(rows: list[tuple], end: object = None) -> pd.DataFrame:
    """Events of ``rows``; ``end`` (a function of the planned end) replaces each end."""
    ends = (
        [day(e) for *_, e, _, _ in rows] if end is None else [end(day(e)) for *_, e, _, _ in rows]
    )
    return pd.DataFrame(
        {
            "patient_id": [r[0] for r in rows],
            "kind": [r[1] for r in rows],
            "start": [day(r[3]) for r in rows],
            "end": ends,
            "code_system": "riskstrat",
            "code": [r[2] for r in rows],
            "value": [r[5] for r in rows],
            "cost": [r[6] for r in rows],
        }
    )


@pytest.fixture(scope="module")
def validated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    raw = tmp_path_factory.mktemp("raw")
    late = [("a", "gp_contact", "face_to_face", 5, 5, None, None)]  # starts after: quarantined
    frames = (
        (PRACTICES, PRACTICE),
        (PATIENTS, patients_frame(["a", "b", "c"])),
        (EVENTS, _events(RUNNING + late)),
    )
    for table, frame in frames:
        pq.write_table(
            pa.Table.from_pandas(frame, schema=table.schema, preserve_index=False),
            raw / table.file_name,
        )
    out = tmp_path_factory.mktemp("validated") / "out"
    report = validate_dir(raw, out, EXTRACT)
    events = next(t for t in report.tables if t.table == "events")
    assert events.by_reason == {"future_date": 1}
    assert events.running_after_extract_date == {
        "care_home_admission": 1,
        "case_management": 1,
        "emergency_admission": 1,
        "prescription": 1,
        PLAN: 1,
        "social_care_package": 1,
    }
    return out


def test_only_events_starting_after_the_extract_date_are_quarantined(validated: Path) -> None:
    accepted = pd.read_parquet(validated / "events.parquet")
    assert len(accepted) == len(RUNNING)
    plan = accepted[accepted["kind"] == PLAN].iloc[0]
    assert plan["end"] == day(60)  # the end as planned
    quarantined = pd.read_parquet(validated / QUARANTINE_DIR / "events.parquet")
    assert list(zip(quarantined["start"], quarantined["reason"], strict=True)) == [
        (day(5), "future_date")
    ]


def test_a_plan_running_on_the_as_of_date_counts_as_help(validated: Path) -> None:
    sources = ContractTables.from_dir(validated)
    found = exposure(sources, [EXTRACT], 365, ExposureRule())
    row = found.loc[("a", EXTRACT)]
    assert bool(row["running"])
    assert row["first_help"] == pd.Timestamp(EXTRACT)
    assert row[f"days_{PLAN}"] == 61  # the as-of date to the planned end
    started = help_started(sources, day(-31), day(1), ExposureRule())
    assert list(zip(started["patient_id"], started["start"], strict=True)) == [("a", day(-30))]


@pytest.fixture(scope="module")
def planned() -> pd.DataFrame:
    """Features as of the extract date with every end as planned."""
    patients = patients_frame(["a", "b", "c"])
    return build_features(
        ContractTables.from_frames(patients, _events(RUNNING), PRACTICE), [EXTRACT]
    )


@pytest.mark.parametrize(
    "later_end",
    [
        pytest.param(lambda end: end if end < EXTRACT else None, id="open"),
        pytest.param(lambda end: min(end, EXTRACT), id="cut-at-as-of"),
        pytest.param(lambda end: end if end < EXTRACT else end + timedelta(3650), id="later"),
    ],
)
def test_no_feature_reads_an_end_after_the_as_of_date(
    later_end: object, planned: pd.DataFrame
) -> None:
    """What an episode running on the as-of date will do after it (its planned end, or no
    end) never changes a feature: the window clips every stay at the as-of date."""
    patients = patients_frame(["a", "b", "c"])
    other = build_features(
        ContractTables.from_frames(patients, _events(RUNNING, later_end), PRACTICE), [EXTRACT]
    )
    pd.testing.assert_frame_equal(planned, other)
    a = planned.loc[("a", EXTRACT)]
    assert (a["social_care_package_active"], a["social_care_hours_per_week"]) == (1, 10)
