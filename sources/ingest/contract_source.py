"""Tables already in the contract's shape (CSV or Parquet, any letter case): only the
patient identifiers change (pseudonymised at the door); validation does the rest."""

from __future__ import annotations

import pandas as pd

from riskstrat.contract.schema import EVENTS, PATIENTS, PRACTICES, Table
from riskstrat.sources.ingest.mapping import Ledger, Mapped, with_practices_file
from riskstrat.sources.ingest.tables import Extract, Spec, parse_dates, parse_numbers


def _spec(table: Table) -> Spec:
    required = tuple(c.name for c in table.columns if not c.nullable)
    optional = tuple(c.name for c in table.columns if c.nullable)
    return Spec(table.name, True, required, optional)


def _typed(extract: Extract, table: Table, ledger: Ledger) -> pd.DataFrame:
    frame = ledger.take(extract, _spec(table))
    assert frame is not None
    out = {}
    for column in table.columns:
        values = frame[column.name]
        kind = str(column.type)
        if kind.startswith("date"):
            out[column.name] = parse_dates(values, extract.where(table.name), column.name)
        elif kind.startswith(("int", "double", "float")):
            numbers = parse_numbers(values)
            out[column.name] = numbers.astype("Int8") if kind == "int8" else numbers
        else:
            out[column.name] = values
    return pd.DataFrame(out, index=frame.index)


def map_contract(extract: Extract, practices_file: pd.DataFrame | None) -> Mapped:
    """Read the three contract tables; ``patient_id`` becomes ``source_id``."""
    ledger = Ledger()
    practices = _typed(extract, PRACTICES, ledger)
    patients = _typed(extract, PATIENTS, ledger).rename(columns={"patient_id": "source_id"})
    events = _typed(extract, EVENTS, ledger).rename(columns={"patient_id": "source_id"})
    events = events.assign(source_table=EVENTS.name, source_row=events.index.to_numpy())
    practices, assigned = with_practices_file(practices, practices_file, ("gp_cluster", "locality"))
    about = {
        "source": "contract",
        "tables_used": [PRACTICES.name, PATIENTS.name, EVENTS.name],
        "tables_not_used": sorted(set(extract.tables) - {"practices", "patients", "events"}),
        "practices_from_file": assigned,
    }
    return Mapped(practices, patients, events.reset_index(drop=True), ledger, about)
