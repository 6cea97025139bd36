"""One person's recent events in order, with labels a nurse or social worker can read.

For the patient page and for checking a score's reasons against the record. Like the
features, it shows only what happened strictly before the as-of date.
"""

from __future__ import annotations

from datetime import date, timedelta

import ibis.expr.types as ir
import pandas as pd

from riskstrat.common.months import DAYS_PER_MONTH
from riskstrat.contract.schema import EventKind
from riskstrat.contract.tables import ContractTables, unbound

KIND_LABELS: dict[str, str] = {
    EventKind.GP_CONTACT: "GP contact",
    EventKind.PRESCRIPTION: "Prescription",
    EventKind.LTC_DIAGNOSIS: "Long-term condition recorded",
    EventKind.AE_ATTENDANCE: "A&E attendance",
    EventKind.EMERGENCY_ADMISSION: "Emergency admission",
    EventKind.ELECTIVE_ADMISSION: "Planned admission",
    EventKind.OUTPATIENT: "Outpatient appointment",
    EventKind.COMMUNITY_CONTACT: "Community nursing or therapy",
    EventKind.MENTAL_HEALTH_CONTACT: "Mental-health service contact",
    EventKind.SOCIAL_CARE_ASSESSMENT: "Social-care assessment",
    EventKind.SOCIAL_CARE_PACKAGE: "Social-care package",
    EventKind.CARE_HOME_ADMISSION: "Moved into a care home",
    EventKind.CARE_COORDINATION_CALL: "Call to the care coordination centre",
    EventKind.SOCIAL_PRESCRIBING_REFERRAL: "Social prescribing referral",
    EventKind.SOCIAL_CIRCUMSTANCE: "Social circumstance recorded",
    EventKind.CASE_MANAGEMENT: "Integrated case management",
    EventKind.REABLEMENT_PLAN: "Reablement plan",
    EventKind.RISK_LIST_SCORE: "Scored on a risk list",
    EventKind.RISK_LIST_LOTTERY: "In a risk list's lottery for help",
}
STAYS = {EventKind.EMERGENCY_ADMISSION, EventKind.ELECTIVE_ADMISSION}


def _detail(row: pd.Series, as_of: date) -> str:
    code = "" if pd.isna(row["code"]) else str(row["code"]).replace("_", " ")
    if row["kind"] in STAYS:
        if pd.isna(row["end"]) or row["end"].date() >= as_of:
            return "still in hospital on the as-of date"
        days = (row["end"] - row["start"]).days
        return f"{days} day{'s' if days != 1 else ''} in hospital"
    if row["kind"] == EventKind.SOCIAL_CARE_PACKAGE and not pd.isna(row["value"]):
        return f"{code}, {row['value']:.0f} hours a week"
    if row["kind"] == EventKind.OUTPATIENT:
        return "did not attend" if code == "dna" else "attended"
    return code


def _history(patient_id: str, as_of: date, since: date) -> ir.Table:
    """The person's events from ``since`` to the day before ``as_of``, oldest first (ties
    in a fixed order, so every engine lists them alike)."""
    events = unbound("events")
    chosen = events.filter(
        (events.patient_id == patient_id) & (events.start < as_of) & (events.start >= since)
    )
    return chosen.select("kind", "start", "end", "code", "value").order_by(
        ["start", "kind", "end", "code", "value"]
    )


def patient_timeline(
    sources: ContractTables, patient_id: str, as_of: date, months: int = 12
) -> pd.DataFrame:
    """Events of ``patient_id`` in the ``months`` before ``as_of``, oldest first.

    Columns: ``date``, ``kind``, ``event`` (readable kind) and ``detail`` (code, stay,
    hours). Raises ``KeyError`` naming the patient when they are not in the data.
    """
    patients = unbound("patients")
    person = patients.filter(patients.patient_id == patient_id).select("patient_id")
    known = sources.run(person, keep=False)
    if known.empty:
        raise KeyError(f"patient {patient_id!r} is not in the patients table")
    since = as_of - timedelta(days=round(months * DAYS_PER_MONTH))
    events = sources.run(_history(patient_id, as_of, since), keep=False)
    for column in ("start", "end"):
        events[column] = pd.to_datetime(events[column])
    return pd.DataFrame(
        {
            "date": events["start"].dt.date,
            "kind": events["kind"],
            "event": events["kind"].map(KIND_LABELS),
            "detail": [_detail(row, as_of) for _, row in events.iterrows()],
        }
    )
