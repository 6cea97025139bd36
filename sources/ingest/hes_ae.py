"""HES A&E and Emergency Care Data Set (ECDS) attendances to ``ae_attendance`` events.

The two are told apart by their columns (``hes_fields.DATASETS``): HES A&E has
``AEATTENDCAT``; ECDS has ``EC_ATTENDANCE_CATEGORY``, a SNOMED CT chief complaint or a SNOMED CT
discharge destination. Both date the attendance by its arrival (``ARRIVALDATE``, ECDS
``ARRIVAL_DATE`` / ``EC_ARRIVAL_DATE``).

- Counted: first and unplanned follow-up attendances (HES A&E category 1 and 3; ECDS 1, 2 and
  3) and attendances whose category is not known (9 or empty: an attendance took place; only
  a known planned one is left out, and the number is reported).
- Not mapped: planned follow-ups (HES A&E 2, ECDS 4: ``planned_follow_up``), categories in
  neither dictionary (``invalid_attendance_category``), repeats of one attendance key
  (``AEKEY`` / ``EC_IDENT``) across financial-year files (``duplicate_attendance``), rows
  without a person or an arrival date.
- Code: ``admitted`` when the HES disposal is 01 or the ECDS discharge destination admits
  (ward, short-stay ward, intensive care...), else ``discharged``. The chief complaint has no
  place in the contract: attendances with one are counted.
"""

from __future__ import annotations

import pandas as pd

from riskstrat.contract.schema import EventKind as K
from riskstrat.sources.ingest import hes_fields as hf
from riskstrat.sources.ingest.mapping import Ledger
from riskstrat.sources.ingest.tables import Extract

# dataset -> (category field, disposal or destination field)
FIELDS = {
    "ae": ("aeattendcat", "aeattenddisp"),
    "ecds": ("ec_attendance_category", "ec_discharge_destination_snomed_ct"),
}
COUNTED = ("first", "unplanned_follow_up", "not_known")


def map_attendances(
    extract: Extract, dataset: str, rows: pd.DataFrame, ledger: Ledger
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``ae_attendance`` events and person records from all files of ``dataset``."""
    category_field, disposal_field = FIELDS[dataset]
    rows = rows.assign(start=hf.dates_by_file(extract, rows, "arrivaldate"))
    rows = hf.unique_records(rows, "aekey", ledger, "duplicate_attendance")
    rows = hf.present(ledger, rows, "source_id", "no_person_id")
    records = hf.person_records(rows, rows["start"])
    rows = hf.present(ledger, rows, "start", "no_date")
    raw = rows[category_field]
    category = hf.outcome(category_field, raw).mask(raw.isna(), "not_known")
    rows = rows.assign(code=raw, description=category)
    hf.each_file(ledger, rows[category == "planned_follow_up"], "planned_follow_up")
    hf.each_file(ledger, rows[category.isna()], "invalid_attendance_category")
    counted = rows[category.isin(COUNTED)]
    admitted = hf.outcome(disposal_field, counted[disposal_field]) == "admitted"
    code = pd.Series("discharged", index=counted.index).mask(admitted.fillna(False), "admitted")
    events = hf.event_frame(counted, K.AE_ATTENDANCE.value, start=counted["start"], code=code)
    facts: dict[str, object] = {
        "files": int(rows[hf.TABLE].nunique()),
        "attendances_counted": len(counted),
        "category_not_known_counted": int((category[counted.index] == "not_known").sum()),
        "planned_follow_ups_not_counted": int((category == "planned_follow_up").sum()),
        "admitted": int(admitted.fillna(False).sum()),
    }
    if dataset == "ecds":
        facts["with_snomed_chief_complaint"] = int(
            counted["ec_chief_complaint_snomed_ct"].notna().sum()
        )
    ledger.facts[f"{dataset}_attendances"] = facts
    return events, records
