"""Synthea CSV exports (older and newer column layouts) to the contract.

Tables read: ``patients`` and ``encounters`` (required); ``conditions``, ``medications``,
``procedures``, ``careplans`` and ``organizations`` when present. Older exports spell some
columns differently (``ID``, ``DATE`` for ``START``, no ``ORGANIZATION``, no ``SYSTEM``);
they are read under the newer names.

- Patients: birth month from ``BIRTHDATE``; sex ``GENDER``; ethnicity from ``RACE``
  (Hispanic ethnicity is not an ONS group); no deprivation; death from ``DEATHDATE``.
- Registration: Synthea follows each person for life and nobody moves away, so a person is
  registered from their first encounter (birth when they have none) and stays registered
  (empty end) until death.
- Practice: the organisation of the person's latest wellness encounter (else latest
  ambulatory, else any); locality: the organisation's city; none known: ``UNASSIGNED``.
- Encounters: ``ENCOUNTERCLASS`` through ``codes/synthea_encounters.csv`` and the visit
  rules in ``features.sources.ingest.mapping`` (urgent care counts as an A&E attendance, as
  England counts urgent treatment centres; SNF stays of up to 90 days are reablement).
- Conditions: ``SYSTEM`` (SNOMED when absent) and ``CODE``. Medications: a row is a
  course from ``START`` to ``STOP`` (ongoing: to death or the end of the data), issued
  every 28 days; class by RxNorm ingredient name. Costs are in US dollars and not kept.
  Procedures and care plans are counted, not mapped.
"""

from __future__ import annotations

import pandas as pd

from riskstrat.sources.ingest import codes
from riskstrat.sources.ingest.mapping import (
    UNASSIGNED,
    Ledger,
    Mapped,
    complete_rows,
    condition_events,
    count_only,
    lookup,
    practices_frame,
    prescription_events,
    tag,
    visit_events,
)
from riskstrat.sources.ingest.tables import Extract, Spec

PATIENTS = Spec("patients", True, ("id", "birthdate", "gender"), ("deathdate", "race", "ethnicity"))
ENCOUNTERS = Spec(
    "encounters",
    True,
    ("patient", "start", "encounterclass"),
    ("stop", "organization", "code", "description"),
    aliases={"start": ("date",)},
)
CONDITIONS = Spec(
    "conditions", False, ("patient", "start", "code"), ("stop", "description", "system")
)
MEDICATIONS = Spec(
    "medications", False, ("patient", "start", "code"), ("stop", "description", "system")
)
PROCEDURES = Spec(
    "procedures",
    False,
    ("patient", "start", "code"),
    ("description", "system"),
    aliases={"start": ("date",)},
)
CAREPLANS = Spec("careplans", False, ("patient", "start", "code"), ("description",))
ORGANIZATIONS = Spec("organizations", False, ("id",), ("name", "city"))
PRACTICE_PREFERENCE = {"wellness": 0, "ambulatory": 1}


def _encounters(extract: Extract, ledger: Ledger) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = ledger.take(extract, ENCOUNTERS)
    assert rows is not None
    klass = rows["encounterclass"].str.strip().str.lower()
    frame = pd.DataFrame(
        {
            "source_id": rows["patient"],
            "setting": klass.map(codes.synthea_settings()),
            "start": extract.dates(ENCOUNTERS, rows, "start"),
            "end": extract.dates(ENCOUNTERS, rows, "stop"),
            "admitted_from_er": False,
            "gp_provider": False,
            "code": klass,
            "description": rows["description"],
            "organization": rows["organization"],
        },
        index=rows.index,
    )
    events = visit_events(frame, "encounters", ledger, "unknown_encounter_class")
    return tag(events, "encounters"), frame


def _conditions(extract: Extract, ledger: Ledger) -> pd.DataFrame | None:
    rows = ledger.take(extract, CONDITIONS)
    if rows is None:
        return None
    system = rows["system"].map(codes.normalise_system).fillna(codes.SNOMED).astype("str")
    frame = pd.DataFrame(
        {
            "source_id": rows["patient"],
            "start": extract.dates(CONDITIONS, rows, "start"),
            "code_system": system,
            "code": rows["code"],
            "description": rows["description"],
        },
        index=rows.index,
    )
    return tag(condition_events(frame, "conditions", ledger), "conditions")


def _medications(extract: Extract, ledger: Ledger, open_end: pd.Series) -> pd.DataFrame | None:
    rows = ledger.take(extract, MEDICATIONS)
    if rows is None:
        return None
    system = rows["system"].map(codes.normalise_system).fillna(codes.RXNORM).astype("str")
    end = extract.dates(MEDICATIONS, rows, "stop")
    frame = pd.DataFrame(
        {
            "source_id": rows["patient"],
            "start": extract.dates(MEDICATIONS, rows, "start"),
            "end": end.fillna(lookup(rows["patient"], open_end)).astype("datetime64[s]"),
            "code_system": system,
            "code": rows["code"],
            "description": rows["description"],
        },
        index=rows.index,
    )
    ledger.facts["medications_ongoing"] = int(end.isna().sum())
    return tag(prescription_events(frame, "medications", ledger), "medications")


def _counted(extract: Extract, spec: Spec, ledger: Ledger) -> None:
    rows = extract.read(spec)
    if rows is None:
        return
    frame = pd.DataFrame(
        {
            "source_id": rows["patient"],
            "start": extract.dates(spec, rows, "start"),
            "code_system": codes.SNOMED,
            "code": rows["code"],
            "description": rows["description"],
        },
        index=rows.index,
    )
    count_only(frame, spec.name, ledger)


def _practices(
    extract: Extract, encounters: pd.DataFrame, ids: pd.Series
) -> tuple[pd.Series, pd.DataFrame]:
    """Each person's practice (see the module docstring) and the practices table."""
    known = encounters[encounters["organization"].notna()].assign(
        rank=lambda f: f["code"].map(PRACTICE_PREFERENCE).fillna(2)
    )
    latest = known.sort_values(["rank", "start"], ascending=[True, False], kind="stable")
    choice = latest.drop_duplicates("source_id").set_index("source_id")["organization"]
    practice = ids.map(choice).astype("str").fillna(UNASSIGNED)
    frame = pd.DataFrame({"practice_id": practice.unique()}).astype("str")
    frame["practice_name"] = pd.Series(pd.NA, index=frame.index, dtype="str")
    frame["locality"] = pd.Series(pd.NA, index=frame.index, dtype="str")
    organisations = extract.read(ORGANIZATIONS)
    if organisations is not None:
        info = organisations.drop_duplicates("id").set_index("id")
        frame["practice_name"] = frame["practice_id"].map(info["name"])
        frame["locality"] = frame["practice_id"].map(info["city"].str.title())
    frame.loc[frame["practice_id"] == UNASSIGNED, "practice_name"] = "Unassigned (no organisation)"
    return practice, frame


def map_synthea(extract: Extract, practices_file: pd.DataFrame | None) -> Mapped:
    """The whole export in contract shape (see the module docstring)."""
    ledger = Ledger()
    people = ledger.take(extract, PATIENTS)
    assert people is not None
    visits, encounters = _encounters(extract, ledger)
    death = extract.dates(PATIENTS, people, "deathdate")
    data_end = pd.concat([encounters["start"], encounters["end"]]).max()
    open_end = pd.Series(death.fillna(data_end).to_numpy(), index=people["id"].to_numpy())
    open_end = open_end[~open_end.index.duplicated()]
    parts = [visits, _conditions(extract, ledger), _medications(extract, ledger, open_end)]
    _counted(extract, PROCEDURES, ledger)
    _counted(extract, CAREPLANS, ledger)
    events = pd.concat([p for p in parts if p is not None], ignore_index=True)
    birth = extract.dates(PATIENTS, people, "birthdate")
    first_seen = encounters.groupby("source_id")["start"].min()
    start = lookup(people["id"], first_seen).fillna(birth).astype("datetime64[s]")
    practice, practices = _practices(extract, encounters, people["id"])
    patients = pd.DataFrame(
        {
            "source_id": people["id"],
            "birth_month": birth.dt.to_period("M").dt.start_time.astype("datetime64[s]"),
            "sex": people["gender"].str.strip().str.upper(),
            "practice_id": practice,
            "deprivation_decile": pd.array([pd.NA] * len(people), dtype="Int8"),
            "ethnicity_group": [codes.ethnicity_group(None, r) for r in people["race"]],
            "registration_start": start,
            "registration_end": pd.Series(pd.NaT, index=people.index, dtype="datetime64[s]"),
            "death_date": death,
        },
        index=people.index,
    )
    ledger.facts["people"] = {
        "in": len(people),
        "without_encounters_registered_from_birth": int(
            (~people["id"].isin(first_seen.index)).sum()
        ),
        "deaths": int(death.notna().sum()),
    }
    patients, events = complete_rows(patients, events, PATIENTS.name, ledger)
    practices, assigned = practices_frame(practices, practices_file)
    used = {s.name for s in (PATIENTS, ENCOUNTERS, CONDITIONS, MEDICATIONS, PROCEDURES)} | {
        CAREPLANS.name,
        ORGANIZATIONS.name,
    }
    about = {
        "source": "synthea",
        "layout": "newer (ORGANIZATION column)"
        if "organization" in extract.columns("encounters")
        else "older (no ORGANIZATION column)",
        "tables_used": sorted(used & set(extract.tables)),
        "tables_not_used": sorted(set(extract.tables) - used),
        "practices_from_file": assigned,
    }
    return Mapped(practices, patients, events, ledger, about)
