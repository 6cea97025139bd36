"""OMOP CDM v5.3 / v5.4 to the contract.

Tables read: ``person`` and ``visit_occurrence`` (required); ``observation_period``,
``condition_occurrence``, ``drug_exposure``, ``procedure_occurrence``, ``death``,
``care_site``, ``location``, ``provider``, ``concept`` and ``cdm_source`` when present.

- Patients: birth month from ``year_of_birth``/``month_of_birth`` (July when the month is
  unknown); sex 8507 M, 8532 F (anything else is kept and quarantined as ``invalid_sex``);
  ethnicity from ``race_concept_id`` or the race/ethnicity source text; no deprivation.
- Registration: the person's observation periods, first start to last end; the end is
  left empty (still registered) when it reaches the end of the data or the death. People
  without an observation period are registered from their first to their last recorded
  activity (counted in the report); with no activity either they are not mapped
  (``no_registration_start``).
- Practice: the person's care site (its source value, else its id), locality from the care
  site's location (county, else city); no care site: one ``UNASSIGNED`` practice.
- Visits: see ``features.sources.ingest.mapping``; ``admitted_from_concept_id`` (v5.4) or
  ``admitting_source_concept_id`` (v5.3) 8870/9203/262 marks an admission from the ER;
  an outpatient visit (9202) with a general-practice provider is a GP contact.
- Conditions: the standard concept's SNOMED code, else the source concept's code (ICD-10 or
  SNOMED), else the source value read as ICD-10 or SNOMED. Drugs: the concept's name and
  code (RxNorm names by ingredient; ATC/BNF by prefix), else the source value; a course
  without an end date lasts ``days_supply`` (ignored above 10 years), else 28 days.
  Procedures are counted, not mapped.
- A row without a person, a date or (for people) a birth year or sex is not mapped, with its
  reason (``mapping.complete_rows``).
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
    first_of_month,
    lookup,
    practices_frame,
    prescription_events,
    tag,
    visit_events,
)
from riskstrat.sources.ingest.tables import Extract, Spec, parse_numbers

PERSON = Spec(
    "person",
    True,
    ("person_id", "gender_concept_id", "year_of_birth"),
    (
        "month_of_birth",
        "birth_datetime",
        "race_concept_id",
        "race_source_value",
        "ethnicity_source_value",
        "care_site_id",
    ),
)
OBSERVATION_PERIOD = Spec(
    "observation_period",
    False,
    ("person_id", "observation_period_start_date", "observation_period_end_date"),
)
VISITS = Spec(
    "visit_occurrence",
    True,
    ("person_id", "visit_concept_id", "visit_start_date"),
    ("visit_end_date", "admitted_from_concept_id", "provider_id", "visit_source_value"),
    aliases={"admitted_from_concept_id": ("admitting_source_concept_id",)},
)
CONDITIONS = Spec(
    "condition_occurrence",
    False,
    ("person_id", "condition_concept_id", "condition_start_date"),
    ("condition_source_value", "condition_source_concept_id"),
)
DRUGS = Spec(
    "drug_exposure",
    False,
    ("person_id", "drug_concept_id", "drug_exposure_start_date"),
    ("drug_exposure_end_date", "days_supply", "drug_source_value", "drug_source_concept_id"),
)
PROCEDURES = Spec(
    "procedure_occurrence",
    False,
    ("person_id", "procedure_concept_id", "procedure_date"),
    ("procedure_source_value",),
)
DEATH = Spec("death", False, ("person_id", "death_date"))
CARE_SITE = Spec(
    "care_site",
    False,
    ("care_site_id",),
    ("care_site_name", "care_site_source_value", "location_id"),
)
LOCATION = Spec("location", False, ("location_id",), ("county", "city"))
PROVIDER = Spec(
    "provider", False, ("provider_id",), ("specialty_concept_id", "specialty_source_value")
)
CDM_SOURCE = Spec("cdm_source", False, (), ("cdm_version",))

SEX = {"8507": "M", "8532": "F"}
ER_ORIGINS = frozenset({"8870", "9203", "262"})
GP_SPECIALTIES = frozenset({"38004446", "38004453"})  # General Practice, Family Practice
MAX_DAYS_SUPPLY = 3660


def _concepts(extract: Extract, *columns: pd.Series) -> pd.DataFrame:
    ids = pd.concat(columns).dropna().unique() if columns else []
    table = extract.concepts(ids).set_index("concept_id")
    table["vocabulary_id"] = table["vocabulary_id"].map(codes.normalise_system).astype("str")
    return table


def _people(extract: Extract, ledger: Ledger) -> tuple[pd.DataFrame, pd.DataFrame]:
    person = ledger.take(extract, PERSON)
    assert person is not None
    birth_stamp = extract.dates(PERSON, person, "birth_datetime")
    month = person["month_of_birth"].fillna(birth_stamp.dt.month.astype("Int64").astype("str"))
    birth = first_of_month(person["year_of_birth"], month)
    ledger.facts["birth_month_unknown_set_to_july"] = int(
        (~pd.to_numeric(month, errors="coerce").between(1, 12)).sum()
    )
    ethnicity = [
        codes.ethnicity_group(c, r, e)
        for c, r, e in zip(
            person["race_concept_id"],
            person["race_source_value"],
            person["ethnicity_source_value"],
            strict=True,
        )
    ]
    care_sites = extract.read(CARE_SITE)
    locations = extract.read(LOCATION)
    practice = person["care_site_id"]
    if care_sites is not None:
        sites = care_sites.drop_duplicates("care_site_id").set_index("care_site_id")
        code = sites["care_site_source_value"].fillna(pd.Series(sites.index, index=sites.index))
        practice = practice.map(code).astype("str").fillna(practice)
    practice = practice.fillna(UNASSIGNED).astype("str")
    patients = pd.DataFrame(
        {
            "source_id": person["person_id"],
            "birth_month": birth,
            "sex": person["gender_concept_id"].map(SEX).fillna(person["gender_concept_id"]),
            "practice_id": practice,
            "deprivation_decile": pd.array([pd.NA] * len(person), dtype="Int8"),
            "ethnicity_group": ethnicity,
        },
        index=person.index,
    )
    return patients, _practices(practices_of=patients, sites=care_sites, locations=locations)


def _practices(
    practices_of: pd.DataFrame, sites: pd.DataFrame | None, locations: pd.DataFrame | None
) -> pd.DataFrame:
    ids = pd.Series(practices_of["practice_id"].unique(), dtype="str")
    frame = pd.DataFrame({"practice_id": ids, "practice_name": pd.NA, "locality": pd.NA})
    frame = frame.astype("str")
    frame.loc[frame["practice_id"] == UNASSIGNED, "practice_name"] = "Unassigned (no care site)"
    if sites is not None:
        by_code = sites.assign(
            key=sites["care_site_source_value"].fillna(sites["care_site_id"])
        ).drop_duplicates("key")
        if locations is not None:
            place = locations.drop_duplicates("location_id").set_index("location_id")
            where = place["county"].fillna(place["city"])
            by_code["locality"] = by_code["location_id"].map(where)
        else:
            by_code["locality"] = pd.NA
        info = by_code.set_index("key")
        frame["practice_name"] = (
            frame["practice_id"]
            .map(info["care_site_name"])
            .astype("str")
            .fillna(frame["practice_name"])
        )
        locality = frame["practice_id"].map(info["locality"]).astype("str")
        frame["locality"] = locality.fillna(frame["locality"])
    return frame


def _registration(
    extract: Extract, patients: pd.DataFrame, activity: pd.DataFrame, ledger: Ledger
) -> pd.DataFrame:
    """Registration start/end and death per person (see the module docstring)."""
    deaths = ledger.take(extract, DEATH)
    death = pd.Series(pd.NaT, index=patients["source_id"].unique(), dtype="datetime64[s]")
    if deaths is not None:
        deaths = deaths.assign(date=extract.dates(DEATH, deaths, "death_date"))
        first = deaths.sort_values("date").drop_duplicates("person_id")
        ledger.ignore(
            "death",
            deaths.loc[deaths.index.difference(first.index)],
            "duplicate_death_record",
            date="date",
            system=None,
            code=None,
            description=None,
        )
        orphan = ~first["person_id"].isin(death.index)
        ledger.ignore("death", first[orphan], "unknown_person", "date", None, None, None)
        first = first[~orphan]
        death.loc[first["person_id"].to_numpy()] = first["date"].to_numpy()
    periods = ledger.take(extract, OBSERVATION_PERIOD)
    span = pd.DataFrame(columns=["start", "end", "periods"])
    if periods is not None:
        periods = periods.assign(
            start=extract.dates(OBSERVATION_PERIOD, periods, "observation_period_start_date"),
            end=extract.dates(OBSERVATION_PERIOD, periods, "observation_period_end_date"),
        )
        span = periods.groupby("person_id").agg(
            start=("start", "min"), end=("end", "max"), periods=("start", "size")
        )
        unknown = ~periods["person_id"].isin(death.index)
        ledger.ignore("observation_period", periods[unknown], "unknown_person", "start")
    seen = activity.groupby("source_id")["start"].agg(["min", "max"])
    data_end = span["end"].max() if len(span) else seen["max"].max()
    ids = patients["source_id"]
    start = lookup(ids, span["start"]) if len(span) else pd.Series(pd.NaT, index=ids.index)
    end = lookup(ids, span["end"]) if len(span) else pd.Series(pd.NaT, index=ids.index)
    no_period = start.isna() & end.isna()
    start = start.fillna(lookup(ids, seen["min"])).astype("datetime64[s]")
    died = lookup(ids, death).astype("datetime64[s]")
    open_end = end.isna() | (end >= data_end) | (died.notna() & (end >= died))
    ledger.facts["people"] = {
        "in": len(patients),
        "without_observation_period": int(no_period.sum()),
        "registered_from_first_activity": int((no_period & start.notna()).sum()),
        "without_period_or_activity": int((no_period & start.isna()).sum()),
        "with_several_observation_periods": int(
            (ids.map(span["periods"]).fillna(0) > 1).sum() if len(span) else 0
        ),
        "deaths": int(died.notna().sum()),
    }
    return patients.assign(
        registration_start=start,
        registration_end=end.where(~open_end).astype("datetime64[s]"),
        death_date=died,
    )


def _visits(extract: Extract, ledger: Ledger) -> pd.DataFrame:
    visits = ledger.take(extract, VISITS)
    assert visits is not None
    providers = extract.read(PROVIDER)
    gp = pd.Series(False, index=visits.index)
    if providers is not None:
        text = providers["specialty_source_value"].fillna("").str.lower()
        is_gp = providers["specialty_concept_id"].isin(GP_SPECIALTIES) | text.str.contains(
            "general practi|family (?:practice|medicine)", regex=True
        )
        gp_ids = set(providers.loc[is_gp, "provider_id"])
        gp = visits["provider_id"].isin(gp_ids)
    settings = codes.omop_visit_settings()
    frame = pd.DataFrame(
        {
            "source_id": visits["person_id"],
            "setting": visits["visit_concept_id"].map(settings),
            "start": extract.dates(VISITS, visits, "visit_start_date"),
            "end": extract.dates(VISITS, visits, "visit_end_date"),
            "admitted_from_er": visits["admitted_from_concept_id"].isin(ER_ORIGINS),
            "gp_provider": gp,
            "code": visits["visit_concept_id"],
            "description": visits["visit_source_value"],
        },
        index=visits.index,
    )
    return tag(
        visit_events(frame, "visit_occurrence", ledger, "unknown_visit_concept"), "visit_occurrence"
    )


def _pick_codes(candidates: list[tuple[pd.Series, pd.Series]]) -> tuple[pd.Series, pd.Series]:
    """Per row, the first (system, code) candidate that maps; else the first one present."""
    system = pd.Series(pd.NA, index=candidates[0][0].index, dtype="str")
    code = system.copy()
    chosen = pd.Series(False, index=system.index)
    for s, c in candidates:
        maps = pd.Series(
            [bool(codes.condition_targets(a, b)) for a, b in zip(s, c, strict=True)],
            index=system.index,
        )
        take = maps & ~chosen
        system[take], code[take] = s[take], c[take]
        chosen |= take
    for s, c in candidates:
        fill = system.isna() & s.notna() & c.notna()
        system[fill], code[fill] = s[fill], c[fill]
    return system, code


def _conditions(extract: Extract, ledger: Ledger) -> pd.DataFrame | None:
    rows = ledger.take(extract, CONDITIONS)
    if rows is None:
        return None
    concept = _concepts(extract, rows["condition_concept_id"], rows["condition_source_concept_id"])
    source = rows["condition_source_value"]
    standard = rows["condition_concept_id"]
    from_source = rows["condition_source_concept_id"]
    by_concept = [
        (lookup(ids, concept["vocabulary_id"]), lookup(ids, concept["concept_code"]))
        for ids in (standard, from_source)
    ]
    guessed = (source.map(codes.guess_system).astype("str"), source)
    system, code = _pick_codes([*by_concept, guessed])
    frame = pd.DataFrame(
        {
            "source_id": rows["person_id"],
            "start": extract.dates(CONDITIONS, rows, "condition_start_date"),
            "code_system": system,
            "code": code,
            "description": lookup(standard, concept["concept_name"]).fillna(source),
        },
        index=rows.index,
    )
    return tag(condition_events(frame, "condition_occurrence", ledger), "condition_occurrence")


def _drugs(extract: Extract, ledger: Ledger) -> pd.DataFrame | None:
    rows = ledger.take(extract, DRUGS)
    if rows is None:
        return None
    concept = _concepts(extract, rows["drug_concept_id"], rows["drug_source_concept_id"])
    drug, source_concept = rows["drug_concept_id"], rows["drug_source_concept_id"]
    names = concept["concept_name"]
    name = lookup(drug, names).fillna(lookup(source_concept, names))
    source = rows["drug_source_value"]
    start = extract.dates(DRUGS, rows, "drug_exposure_start_date")
    days = parse_numbers(rows["days_supply"])
    days = days.where(days <= MAX_DAYS_SUPPLY)  # a longer supply is a typo: end unknown
    supply = pd.to_timedelta(days.clip(lower=1) - 1, unit="D")
    end = extract.dates(DRUGS, rows, "drug_exposure_end_date").fillna(start + supply)
    looks_atc = source.str.fullmatch(r"[A-Z]\d{2}[A-Z]{0,2}\d{0,2}", na=False)
    frame = pd.DataFrame(
        {
            "source_id": rows["person_id"],
            "start": start,
            "end": end.astype("datetime64[s]"),
            "code_system": lookup(drug, concept["vocabulary_id"]).mask(looks_atc, codes.ATC),
            "code": lookup(drug, concept["concept_code"]).mask(looks_atc, source),
            "description": name.fillna(source),
        },
        index=rows.index,
    )
    return tag(prescription_events(frame, "drug_exposure", ledger), "drug_exposure")


def _procedures(extract: Extract, ledger: Ledger) -> None:
    rows = extract.read(PROCEDURES)
    if rows is None:
        return
    concept = _concepts(extract, rows["procedure_concept_id"])
    frame = pd.DataFrame(
        {
            "source_id": rows["person_id"],
            "start": extract.dates(PROCEDURES, rows, "procedure_date"),
            "code_system": lookup(rows["procedure_concept_id"], concept["vocabulary_id"]),
            "code": rows["procedure_source_value"].fillna(rows["procedure_concept_id"]),
            "description": lookup(rows["procedure_concept_id"], concept["concept_name"]),
        },
        index=rows.index,
    )
    count_only(frame, "procedure_occurrence", ledger)


def _version(extract: Extract) -> str:
    source = extract.read(CDM_SOURCE)
    if source is not None and source["cdm_version"].notna().any():
        return str(source["cdm_version"].dropna().iloc[0])
    found = extract.columns("visit_occurrence")
    if "admitted_from_concept_id" in found:
        return "5.4 (from the visit columns)"
    return "5.3 (from the visit columns)" if "admitting_source_concept_id" in found else "unknown"


def map_omop(extract: Extract, practices_file: pd.DataFrame | None) -> Mapped:
    """The whole extract in contract shape (see the module docstring)."""
    ledger = Ledger()
    patients, practices = _people(extract, ledger)
    parts = [_visits(extract, ledger), _conditions(extract, ledger), _drugs(extract, ledger)]
    _procedures(extract, ledger)
    events = pd.concat([p for p in parts if p is not None], ignore_index=True)
    patients = _registration(extract, patients, events, ledger)
    patients, events = complete_rows(patients, events, PERSON.name, ledger)
    practices, assigned = practices_frame(practices, practices_file)
    used = set(extract.tables) & {
        s.name for s in (PERSON, OBSERVATION_PERIOD, VISITS, CONDITIONS, DRUGS, PROCEDURES, DEATH)
    } | {"care_site", "location", "provider", "cdm_source", "concept"}
    about = {
        "source": "omop",
        "cdm_version": _version(extract),
        "tables_used": sorted(used),
        "tables_not_used": sorted(set(extract.tables) - used),
        "practices_from_file": assigned,
    }
    return Mapped(practices, patients, events, ledger, about)
