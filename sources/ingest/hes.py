"""HES and SUS+ flat files (admitted patient care, A&E, ECDS, outpatients), ONS deaths and a
GP registration table, to the contract.

The extract is a folder of CSV or Parquet files named as the user likes; each file is
recognised by its columns (``hes_fields.DATASETS``), so several financial years of one
dataset may sit side by side. Field names are the HES data dictionary's, in any letter
case, or a SUS+/NCDR spelling from ``codes/hes_fields.csv`` (extensible: ``hes_fields``).
Files recognised as none of them are listed as not used.

The rules live with each dataset: ``hes_apc`` (episodes to spells, emergency and elective
admissions, care-home moves), ``hes_ae`` (HES A&E and ECDS), ``hes_op`` (outpatients) and
``hes_people`` (patients, registration, deaths, deprivation). Every row read is mapped or
not mapped with its reason, per file; the people the records name are counted as the
``patients`` table.
"""

from __future__ import annotations

import pandas as pd

from riskstrat.sources.ingest import hes_fields as hf
from riskstrat.sources.ingest.hes_ae import map_attendances
from riskstrat.sources.ingest.hes_apc import map_apc
from riskstrat.sources.ingest.hes_op import map_outpatients
from riskstrat.sources.ingest.hes_people import PATIENTS, build_people
from riskstrat.sources.ingest.mapping import Ledger, Mapped, complete_rows, practices_frame
from riskstrat.sources.ingest.tables import Extract, IngestError

ACTIVITY = ("apc", "ae", "ecds", "op")
ARTIFICIAL_PREFIX = "TEST"  # NHS England's Artificial HES marks every person id with it


def _grouped(extract: Extract) -> dict[str, list[str]]:
    """Dataset name -> the extract's tables recognised as it; refuses an extract of none."""
    found = hf.recognise(extract, hf.aliases())
    tables: dict[str, list[str]] = {}
    for table, name in found.items():
        tables.setdefault(name, []).append(table)
    if not any(name in tables for name in ACTIVITY):
        raise IngestError(
            f"{extract.where(extract.tables[0])}: no HES file among {', '.join(extract.tables)} "
            "(admitted patient care needs columns ADMIMETH and ADMIDATE, A&E AEATTENDCAT and "
            "ARRIVALDATE, ECDS ARRIVAL_DATE with EC_ATTENDANCE_CATEGORY, outpatients ATTENDED "
            "and APPTDATE; other spellings go in the file named by RISKSTRAT_HES_FIELDS)"
        )
    return tables


def _notes(events: pd.DataFrame, records: pd.DataFrame, rule: str, tables: dict) -> list[str]:
    """What the analyst should know about this extract, in plain words."""
    notes = [f"Registration: {rule}."]
    ids = records["source_id"].dropna()
    if len(ids) and ids.str.startswith(ARTIFICIAL_PREFIX).all():
        notes.append(
            "Every person id starts with TEST: this looks like NHS England's Artificial HES, "
            "whose fields are sampled independently; use it to test formats and handling, "
            "not to train or evaluate a model."
        )
    spans = events.groupby("source_table")["start"].agg(["min", "max"])
    if len(spans) > 1 and spans["min"].max() > spans["max"].min():
        listed = ", ".join(
            f"{t} {a:%Y-%m-%d}..{b:%Y-%m-%d}" for t, (a, b) in spans.sort_index().iterrows()
        )
        notes.append(
            f"The files cover periods that do not overlap ({listed}): features as of one date "
            "see only some of them."
        )
    if "deprivation" not in tables:
        notes.append(
            "No LSOA11 to IMD decile lookup file in the extract: deprivation is left empty."
        )
    return notes


def map_hes(extract: Extract, practices_file: pd.DataFrame | None) -> Mapped:
    """The whole extract in contract shape (see the module docstring)."""
    tables = _grouped(extract)
    spellings = hf.aliases()
    ledger = Ledger()

    def rows_of(name: str) -> pd.DataFrame | None:
        parts = [
            hf.read(extract, t, hf.dataset(name), spellings, ledger) for t in tables.get(name, [])
        ]
        return pd.concat(parts, ignore_index=True) if parts else None

    events: list[pd.DataFrame] = []
    records: list[pd.DataFrame] = []
    hospital_deaths = pd.DataFrame({"source_id": pd.Series(dtype="str"), "date": pd.NaT})
    if (episodes := rows_of("apc")) is not None:
        admitted = map_apc(extract, episodes, ledger)
        events.append(admitted.events)
        records.append(admitted.records)
        hospital_deaths = admitted.deaths
    for name in ("ae", "ecds"):
        if (rows := rows_of(name)) is not None:
            found, seen = map_attendances(extract, name, rows, ledger)
            events.append(found)
            records.append(seen)
    if (rows := rows_of("op")) is not None:
        found, seen = map_outpatients(extract, rows, ledger)
        events.append(found)
        records.append(seen)
    everyone = pd.concat(records, ignore_index=True)
    people = build_people(extract, tables, everyone, hospital_deaths, ledger)
    all_events = pd.concat(events, ignore_index=True)
    # a death-only row lacks what complete_rows asks of a person: the linkage decides on it
    alone = people.patients["source_id"].isin(people.death_only)
    patients, all_events = complete_rows(people.patients[~alone], all_events, PATIENTS, ledger)
    patients = pd.concat([patients, people.patients[alone]])
    practices, assigned = practices_frame(people.practices, practices_file)
    used = sorted(t for names in tables.values() for t in names)
    about = {
        "source": "hes",
        "datasets": {name: sorted(names) for name, names in sorted(tables.items())},
        "tables_used": used,
        "tables_not_used": sorted(set(extract.tables) - set(used)),
        "practices_from_file": assigned,
        "registration_rule": people.rule,
        "notes": _notes(all_events, everyone, people.rule, tables),
    }
    return Mapped(practices, patients, all_events, ledger, about, people.death_only)
