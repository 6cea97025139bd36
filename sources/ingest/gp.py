"""GP extracts (GP extraction service, EMIS or SystmOne reports) to the contract.

Three tables, each under any of several file names and with column aliases (``docs/sources/gp.md``
has the full table): ``registrations`` (required), ``coded_events`` (required) and
``prescriptions`` (optional). SNOMED CT codes map through the code lists of ``gp_codes``.

- Patients: one per person id from their registrations: the practice, sex, birth month and
  ethnicity of the most recent registration (latest start) that gives one; registered from the
  earliest start to the most recent registration's end (empty: still registered); death from
  the earliest date of death given. Sex ``M``/``Male``/``1`` and ``F``/``Female``/``2``
  (anything else is kept and quarantined as ``invalid_sex``); birth from a date, ``YYYY-MM``,
  ``YYYYMM`` or a year (July when the month is unknown), else ``year_of_birth`` and
  ``month_of_birth``; ethnicity from a SNOMED CT concept or the NHS ethnic category letter.
- Coded events: a code in a condition list is an ``ltc_diagnosis`` on its first record per
  person; a code in a social-circumstance list a ``social_circumstance`` (once per person, day
  and circumstance); a person whose distinct eFI deficits reach ``EFI_MODERATE`` of 36 (moderate
  frailty) gets ``ltc_diagnosis`` ``frailty`` on the day the last of them was first recorded,
  unless a frailty code came earlier. A consultation type that is a contact makes one
  ``gp_contact`` per person, day and contact code.
- Prescriptions: drug classes from the BNF code (by prefix) or, for dm+d codes, from the
  drug's name (by ingredient); the issue covers ``duration`` days (else 28).
- People with events but no registration keep their events (a linked run can place them);
  alone, validation sets those events aside as ``unknown_patient``. They are counted.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from riskstrat.contract.schema import EventKind as K
from riskstrat.sources.ingest import gp_codes
from riskstrat.sources.ingest.mapping import (
    NO_CODE,
    RISKSTRAT,
    UNASSIGNED,
    Ledger,
    Mapped,
    complete_rows,
    first_of_month,
    lookup,
    practices_frame,
    prescription_events,
    tag,
)
from riskstrat.sources.ingest.tables import Extract, IngestError, Spec, parse_numbers

EFI_MODERATE = 9  # deficits of 36: an eFI above 0.24 is moderate frailty (Clegg et al. 2016)
MAX_DAYS = 3660
TOP_TYPES = 10
SEX = {"M": "M", "MALE": "M", "1": "M", "F": "F", "FEMALE": "F", "2": "F"}
DMD, BNF = "dm+d", "BNF"

REGISTRATION_NAMES = ("registrations", "registration", "patients", "patient", "gp_registrations")
CODED_NAMES = (
    "coded_events",
    "events",
    "observations",
    "observation",
    "journals",
    "journal",
    "clinical_events",
    "gp_events",
)
PRESCRIPTION_NAMES = ("prescriptions", "medications", "medication_issues", "medicines", "issues")

PERSON_ALIASES = ("nhs_number", "nhsnumber", "patient_id", "patid", "patient_guid", "pseudo_id")
REGISTRATION_COLUMNS = {
    "person_id": PERSON_ALIASES,
    "registration_start": (
        "registration_start_date",
        "registration_date",
        "reg_start_date",
        "date_of_registration",
        "registered_date",
        "start_date",
    ),
    "practice_id": (
        "practice_code",
        "gp_practice_code",
        "ods_code",
        "organisation_code",
        "practice",
    ),
    "sex": ("gender", "sex_code", "person_stated_gender_code", "gender_code"),
    "registration_end": (
        "registration_end_date",
        "deregistration_date",
        "reg_end_date",
        "date_of_deregistration",
        "end_date",
    ),
    "date_of_birth": ("dob", "birth_date", "month_year_of_birth", "year_month_of_birth"),
    "year_of_birth": ("birth_year",),
    "month_of_birth": ("birth_month_number",),
    "ethnicity": ("ethnic_category", "ethnic_category_code", "ethnic_origin", "ethnicity_code"),
    "date_of_death": ("death_date", "dod", "reg_date_of_death"),
}
CODED_COLUMNS = {
    "person_id": PERSON_ALIASES,
    "event_date": ("date", "effective_date", "consultation_date", "entry_date", "obsdate"),
    "snomed_code": (
        "snomed_concept_id",
        "snomedct_concept_id",
        "snomed_ct_code",
        "snomedctconceptid",
        "concept_id",
        "code",
    ),
    "term": ("description", "rubric", "snomed_term"),
    "value": ("numeric_value", "result_value"),
    "consultation_type": (
        "appointment_type",
        "consultation_source",
        "encounter_type",
        "appointment_mode",
        "delivery_mechanism",
    ),
}
PRESCRIPTION_COLUMNS = {
    "person_id": PERSON_ALIASES,
    "issue_date": ("date_of_issue", "prescription_date", "issued_date", "effective_date", "date"),
    "dmd_code": ("dmd", "dmd_id", "dmd_product_code", "vmp", "amp", "vmp_code", "amp_code"),
    "bnf_code": ("bnf",),
    "drug_name": ("term", "description", "drug", "product_name", "dmd_name", "drug_description"),
    "quantity": ("qty",),
    "duration": ("duration_days", "days", "days_duration"),
}


def _spec(
    extract: Extract, names: tuple[str, ...], required: bool, columns: dict, needed: int
) -> Spec:
    """The table under the first of ``names`` present; its first ``needed`` columns required."""
    name = next((n for n in names if extract.has(n)), None)
    if name is None and required:
        raise IngestError(
            f"no {names[0]} table: name the file one of {', '.join(names)} (CSV or Parquet); "
            f"tables present: {', '.join(extract.tables)}"
        )
    canonical = tuple(columns)
    return Spec(name or names[0], required, canonical[:needed], canonical[needed:], aliases=columns)


def _dedupe_by(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return frame[~frame.duplicated(keys, keep="first")]


def _birth_month(extract: Extract, spec: Spec, rows: pd.DataFrame) -> pd.Series:
    """First day of the birth month from a date, ``YYYY-MM``/``YYYYMM``, a year, or the
    separate year and month columns (see the module docstring)."""
    text = rows["date_of_birth"].str.strip()
    partial = text.str.extract(r"^(\d{4})(?:-?(\d{2}))?$")
    full = extract.dates(
        spec, rows.assign(date_of_birth=text.where(partial[0].isna())), "date_of_birth"
    )
    year = partial[0].fillna(full.dt.year.astype("Int64").astype("str"))
    month = partial[1].fillna(full.dt.month.astype("Int64").astype("str"))
    from_columns = year.isna()
    year = year.where(~from_columns, rows["year_of_birth"])
    month = month.where(~from_columns, rows["month_of_birth"])
    return first_of_month(year, month)


def _latest(rows: pd.DataFrame, column: str) -> pd.Series:
    """Per person, the value of the most recent registration that gives one."""
    return rows.dropna(subset=[column]).groupby("person_id")[column].last()


def _people(extract: Extract, ledger: Ledger) -> pd.DataFrame:
    """Patients, one per person, indexed by the source row of their latest registration;
    ``_rows`` lists all their registration rows."""
    spec = _spec(extract, REGISTRATION_NAMES, True, REGISTRATION_COLUMNS, 2)
    rows = ledger.take(extract, spec)
    assert rows is not None
    found = extract.columns(spec.name)
    births = {"date_of_birth", "year_of_birth", *REGISTRATION_COLUMNS["date_of_birth"]}
    if not births & set(found):
        raise IngestError(
            f"{extract.where(spec.name)}: missing column 'date_of_birth' (or year_of_birth); "
            f"columns present: {', '.join(found)}"
        )
    rows = rows.assign(
        start=extract.dates(spec, rows, "registration_start"),
        end=extract.dates(spec, rows, "registration_end"),
        died=extract.dates(spec, rows, "date_of_death"),
        birth=_birth_month(extract, spec, rows),
        sex_code=rows["sex"].str.strip().str.upper().map(SEX).fillna(rows["sex"]),
    )
    no_id = rows["person_id"].isna()
    ledger.ignore(spec.name, rows[no_id], "no_person_id", "start", None, None, None)
    rows = rows[~no_id].sort_values(["person_id", "start"], kind="stable", na_position="first")
    last = rows.groupby("person_id").tail(1)
    ids = last["person_id"]
    by_person = rows.groupby("person_id")

    def latest(column: str) -> pd.Series:
        return lookup(ids, _latest(rows, column))

    patients = pd.DataFrame(
        {
            "source_id": ids,
            "birth_month": latest("birth").astype("datetime64[s]"),
            "sex": latest("sex_code").astype("str"),
            "practice_id": latest("practice_id").astype("str").fillna(UNASSIGNED),
            "deprivation_decile": pd.array([pd.NA] * len(ids), dtype="Int8"),
            "ethnicity_group": latest("ethnicity").map(gp_codes.ethnicity_group).astype("str"),
            "registration_start": lookup(ids, by_person["start"].min()).astype("datetime64[s]"),
            "registration_end": last["end"].astype("datetime64[s]"),
            "death_date": lookup(ids, by_person["died"].min()).astype("datetime64[s]"),
            "_rows": lookup(ids, rows.reset_index().groupby("person_id")["source_row"].agg(list)),
        },
        index=last.index,
    )
    patients["ethnicity_group"] = patients["ethnicity_group"].fillna("Unknown")
    counts = by_person.agg(
        registrations=("start", "size"),
        births=("birth", "nunique"),
        sexes=("sex_code", "nunique"),
        practices=("practice_id", "nunique"),
    )
    ledger.facts["people"] = {
        "in": len(patients),
        "with_several_registrations": int((counts["registrations"] > 1).sum()),
        "with_several_practices": int((counts["practices"] > 1).sum()),
        "with_disagreeing_birth_months": int((counts["births"] > 1).sum()),
        "with_disagreeing_sexes": int((counts["sexes"] > 1).sum()),
        "without_practice": int((patients["practice_id"] == UNASSIGNED).sum()),
        "deaths": int(patients["death_date"].notna().sum()),
    }
    return patients


def _valid(rows: pd.DataFrame, table: str, date: str, ledger: Ledger) -> pd.DataFrame:
    """Rows with a person and a date; the others are not mapped, with their reason."""
    no_person = rows["source_id"].isna()
    no_date = rows[date].isna() & ~no_person
    ledger.ignore(table, rows[no_person], "no_person_id", date, None, None, None)
    ledger.ignore(table, rows[no_date], "no_date", date, None, None, None)
    return rows[~no_person & ~no_date]


def _events(rows: pd.DataFrame, kind: K, code: pd.Series | str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "source_id": rows["source_id"].to_numpy(),
            "kind": kind.value,
            "start": rows["start"].to_numpy(dtype="datetime64[s]"),
            "end": np.full(len(rows), np.datetime64("NaT"), dtype="datetime64[s]"),
            "code_system": RISKSTRAT,
            "code": code.to_numpy() if isinstance(code, pd.Series) else code,
            "value": np.nan,
            "cost": np.nan,
        },
        index=rows.index,
    )


def _frailty_rows(deficits: pd.DataFrame, ledger: Ledger) -> pd.DataFrame:
    """The row on which each person's distinct eFI deficits reach ``EFI_MODERATE``."""
    first = _dedupe_by(deficits.sort_values("start", kind="stable"), ["source_id", "target"])
    order = first.groupby("source_id").cumcount() + 1
    reached = first[order == EFI_MODERATE]
    per_person = first.groupby("source_id").size()
    ledger.facts["efi"] = {
        "deficits_with_lists": len(gp_codes.efi_deficits()),
        "people_with_a_deficit": len(per_person),
        "people_reaching_moderate": len(reached),
        "moderate_threshold_deficits": EFI_MODERATE,
    }
    return reached.assign(kind=K.LTC_DIAGNOSIS.value, target="frailty")


def _contacts(
    rows: pd.DataFrame, mapped_rows: pd.Index, table: str, ledger: Ledger
) -> pd.DataFrame:
    """One ``gp_contact`` per person, day and contact code (carried by a row already mapped
    when there is one, so that the others keep their own reason)."""
    code = rows["consultation_type"].map(gp_codes.contact_code)
    present = rows["consultation_type"].notna()
    types = code.fillna("unrecognised").where(present, "not_given").value_counts()
    unknown = rows.loc[present & code.isna(), "consultation_type"].value_counts().head(TOP_TYPES)
    ledger.facts[f"{table}_consultation_types"] = {str(k): int(v) for k, v in types.items()}
    ledger.facts[f"{table}_unrecognised_consultation_types"] = {
        str(k): int(v) for k, v in unknown.items()
    }
    contacts = rows[code.isin(["face_to_face", "telephone", "home_visit"])].assign(contact=code)
    contacts = contacts.assign(carrier=~contacts.index.isin(mapped_rows)).sort_values(
        "carrier", kind="stable"
    )
    contacts = _dedupe_by(contacts, ["source_id", "start", "contact"])
    return _events(contacts, K.GP_CONTACT, contacts["contact"])


def _coded(extract: Extract, ledger: Ledger) -> pd.DataFrame:
    spec = _spec(extract, CODED_NAMES, True, CODED_COLUMNS, 3)
    table = spec.name
    raw = ledger.take(extract, spec)
    assert raw is not None
    rows = raw.assign(
        source_id=raw["person_id"],
        start=extract.dates(spec, raw, "event_date"),
        code_system="SNOMED",
        code=raw["snomed_code"],
        description=raw["term"],
    )
    rows = _valid(rows, table, "start", ledger)
    found = rows["code"].map({c: gp_codes.targets(c) for c in rows["code"].dropna().unique()})
    listed = found.dropna().explode().dropna()
    in_no_list = rows["code"].notna() & ~rows.index.isin(listed.index)
    ledger.facts[f"{table}_codes_in_no_list"] = {
        "rows": int(in_no_list.sum()),
        "distinct_codes": int(rows.loc[in_no_list, "code"].nunique()),
    }
    pairs = rows.loc[listed.index].assign(
        kind=[t.kind for t in listed], target=[t.code for t in listed]
    )
    deficits = pairs[pairs["kind"] == gp_codes.FRAILTY_DEFICIT]
    ltc = pd.concat(
        [pairs[pairs["kind"] == K.LTC_DIAGNOSIS.value], _frailty_rows(deficits, ledger)]
    )
    ltc = _dedupe_by(ltc.sort_values("start", kind="stable"), ["source_id", "target"])
    social = pairs[pairs["kind"] == K.SOCIAL_CIRCUMSTANCE.value]
    social = _dedupe_by(social, ["source_id", "start", "target"])
    parts = [_events(ltc, K.LTC_DIAGNOSIS, ltc["target"])]
    parts.append(_events(social, K.SOCIAL_CIRCUMSTANCE, social["target"]))
    mapped_rows = ltc.index.union(social.index)
    parts.append(_contacts(rows, mapped_rows, table, ledger))
    events = pd.concat([p for p in parts if len(p)] or [parts[0]])
    _ignore_unmade(rows, pairs, events.index, table, ledger)
    return tag(events, table)


def _ignore_unmade(
    rows: pd.DataFrame, pairs: pd.DataFrame, made: pd.Index, table: str, ledger: Ledger
) -> None:
    """Rows that made no event, with the first reason that applies."""
    left = rows[~rows.index.isin(made)]
    kinds = pairs.groupby(level=0)["kind"].agg(set)
    has = left.index.to_series().map(kinds)

    def with_kind(kind: str) -> pd.Series:
        return has.map(lambda s: isinstance(s, set) and kind in s).astype(bool)

    no_code = left["code"].isna()
    unlisted = has.isna() & ~no_code
    repeat = ~no_code & ~unlisted & with_kind(K.LTC_DIAGNOSIS.value)
    duplicate = ~no_code & ~unlisted & ~repeat & with_kind(K.SOCIAL_CIRCUMSTANCE.value)
    deficit = ~no_code & ~unlisted & ~repeat & ~duplicate
    ledger.ignore(table, left[no_code], NO_CODE)
    ledger.ignore(table, left[unlisted], "unmapped_code")
    ledger.ignore(table, left[repeat], "condition_already_recorded")
    ledger.ignore(table, left[duplicate], "duplicate_record")
    ledger.ignore(table, left[deficit], "counted_in_frailty_index")


def _prescriptions(extract: Extract, ledger: Ledger) -> pd.DataFrame | None:
    spec = _spec(extract, PRESCRIPTION_NAMES, False, PRESCRIPTION_COLUMNS, 2)
    raw = ledger.take(extract, spec)
    if raw is None:
        return None
    found = set(extract.columns(spec.name))
    names = {"dmd_code", "bnf_code", *PRESCRIPTION_COLUMNS["dmd_code"], "bnf"}
    if not names & found:
        raise IngestError(
            f"{extract.where(spec.name)}: missing column 'dmd_code' (or bnf_code); "
            f"columns present: {', '.join(sorted(found))}"
        )
    start = extract.dates(spec, raw, "issue_date")
    days = parse_numbers(raw["duration"])
    days = days.where((days >= 1) & (days <= MAX_DAYS))
    bnf = raw["bnf_code"].notna()
    rows = pd.DataFrame(
        {
            "source_id": raw["person_id"],
            "start": start,
            "end": (start + pd.to_timedelta(days - 1, unit="D")).astype("datetime64[s]"),
            "code_system": pd.Series(DMD, index=raw.index).mask(bnf, BNF),
            "code": raw["bnf_code"].fillna(raw["dmd_code"]),
            "description": raw["drug_name"],
        },
        index=raw.index,
    )
    rows = _valid(rows, spec.name, "start", ledger)
    ledger.facts[f"{spec.name}_without_duration"] = int(rows["end"].isna().sum())
    return tag(prescription_events(rows, spec.name, ledger), spec.name)


def _unregistered(events: pd.DataFrame, patients: pd.DataFrame, ledger: Ledger) -> None:
    outside = ~events["source_id"].isin(patients["source_id"])
    ledger.facts["people_in_no_registration"] = {
        "people": int(events.loc[outside, "source_id"].nunique()),
        "events": int(outside.sum()),
    }


def _drop_other_rows(before: pd.DataFrame, after: pd.DataFrame, table: str, ledger: Ledger) -> None:
    """The earlier registration rows of people not mapped are not mapped either."""
    gone = before[~before.index.isin(after.index)]
    rows = [
        r
        for kept, others in zip(gone.index, gone["_rows"], strict=True)
        for r in others
        if r != kept
    ]
    frame = pd.DataFrame({"start": pd.NaT}, index=pd.Index(rows, dtype="int64"))
    ledger.ignore(table, frame, "person_not_mapped", "start", None, None, None)


def map_gp(extract: Extract, practices_file: pd.DataFrame | None) -> Mapped:
    """The whole GP extract in contract shape (see the module docstring)."""
    ledger = Ledger()
    people = _people(extract, ledger)
    registrations = _spec(extract, REGISTRATION_NAMES, True, REGISTRATION_COLUMNS, 2).name
    parts = [_coded(extract, ledger), _prescriptions(extract, ledger)]
    events = pd.concat([p for p in parts if p is not None], ignore_index=True)
    _unregistered(events, people, ledger)
    patients, events = complete_rows(people.drop(columns="_rows"), events, registrations, ledger)
    _drop_other_rows(people, patients, registrations, ledger)
    practices = pd.DataFrame(
        {"practice_id": patients["practice_id"].unique(), "practice_name": pd.NA, "locality": pd.NA}
    ).astype("str")
    practices, assigned = practices_frame(practices, practices_file)
    used = {registrations, _spec(extract, CODED_NAMES, True, CODED_COLUMNS, 3).name}
    used.add(_spec(extract, PRESCRIPTION_NAMES, False, PRESCRIPTION_COLUMNS, 2).name)
    about = {
        "source": "gp",
        "code_lists": len(gp_codes.manifest().lists),
        "tables_used": sorted(used & set(extract.tables)),
        "tables_not_used": sorted(set(extract.tables) - used),
        "practices_from_file": assigned,
    }
    return Mapped(practices, patients, events, ledger, about)
