"""HES / SUS+ outpatient appointments to ``outpatient`` events.

``ATTENDED`` (SUS+ ``Attendance_Status``): 5 (seen on time) and 6 (late but seen) give code
``attended``; 3 (did not attend) and 7 (late, not seen) give ``dna``. Cancelled appointments
(2, 4: ``cancelled_appointment``), 0 and 9 (``attendance_not_known``) and codes in no
dictionary (``invalid_attendance_code``) are not mapped, nor are repeats of one
``ATTENDKEY`` across financial-year files (``duplicate_appointment``) and rows without a
person or an appointment date.
"""

from __future__ import annotations

import pandas as pd

from riskstrat.contract.schema import EventKind as K
from riskstrat.sources.ingest import hes_fields as hf
from riskstrat.sources.ingest.mapping import Ledger
from riskstrat.sources.ingest.tables import Extract

CODES = ("attended", "dna")
NOT_MAPPED = {"cancelled": "cancelled_appointment", "not_known": "attendance_not_known"}


def map_outpatients(
    extract: Extract, rows: pd.DataFrame, ledger: Ledger
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``outpatient`` events and person records from all outpatient files."""
    rows = rows.assign(start=hf.dates_by_file(extract, rows, "apptdate"))
    rows = hf.unique_records(rows, "attendkey", ledger, "duplicate_appointment")
    rows = hf.present(ledger, rows, "source_id", "no_person_id")
    records = hf.person_records(rows, rows["start"])
    rows = hf.present(ledger, rows, "start", "no_date")
    status = hf.outcome("attended", rows["attended"])
    rows = rows.assign(code=rows["attended"], description=status)
    for outcome, reason in NOT_MAPPED.items():
        hf.each_file(ledger, rows[status == outcome], reason)
    hf.each_file(ledger, rows[status.isna()], "invalid_attendance_code")
    seen = rows[status.isin(CODES)]
    ledger.facts["outpatient_appointments"] = {
        str(k): int(v) for k, v in status.fillna("invalid").value_counts().sort_index().items()
    }
    events = hf.event_frame(seen, K.OUTPATIENT.value, start=seen["start"], code=status[seen.index])
    return events, records
