"""The people of a HES extract: patients rows, registration, deaths and deprivation.

- **Registration table given** (a file with a person, ``GPPRAC`` and a registration start):
  each person's latest registration gives the practice, start and end; earlier rows are not
  mapped (``earlier_registration``). People in HES but in no registration keep the rule
  below (counted): the linkage of several sources decides what happens to them.
- **Otherwise**, from what the records say, each field from the person's most recent record
  (by event date) that has a usable value: practice (``GPPRAC``, a six-character practice
  code; V81997-V81999 and ``&`` mean none, and with none at all the person is in the
  ``UNASSIGNED`` practice), sex (``SEX`` 1 male, 2 female; 0 and 9 are not usable, and a
  person with no usable sex is not mapped: ``no_sex``), birth month (``MYDOB`` mmyyyy, or a
  full date of birth; else estimated from the age at the record, ``STARTAGE`` /
  ``ARRIVALAGE`` / ``APPTAGE``, as the month six months before the birthday that age implies:
  counted), ethnicity (``ETHNOS``, 2001 and 1991 census codes, to the five ONS groups; else
  Unknown) and ``LSOA11``. Registration starts at the person's first record.
- **Deprivation**: the IMD decile of the person's latest ``LSOA11`` from a lookup file in the
  extract (columns ``LSOA11``, ``IMD_DECILE``) when given; else empty.
- **Deaths** (ONS civil registration: ``REG_DATE_OF_DEATH`` or ``DOD``, underlying cause
  ``S_UNDERLYING_COD_ICD10``): the earliest date per person is the death date (other rows
  ``duplicate_death_record``); a death of a person in no other record of the extract is a
  patients row of its own (the death date, nothing else: counted, and ``unconfirmed``), which
  the linkage keeps only when another source (a GP registration) names the person, and sets
  aside as ``not_registered`` otherwise. Without an ONS death, a death in hospital (admitted
  patient care) gives the date. The cause has no place in the contract: counted.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from riskstrat.common.months import month_start
from riskstrat.sources.ingest import hes_fields as hf
from riskstrat.sources.ingest.mapping import UNASSIGNED, Ledger, first_of_month
from riskstrat.sources.ingest.tables import Extract, read_dates

NO_PRACTICE = frozenset({"V81997", "V81998", "V81999"})
INFANT_AGES = range(7001, 7008)  # HES codes for ages under one year
PATIENTS = "patients"  # the ledger's name for the people the records name


@dataclass(frozen=True, slots=True)
class People:
    """The patients frame (source ids), the practices it names and the rule used."""

    patients: pd.DataFrame
    practices: pd.DataFrame
    rule: str
    death_only: frozenset[str] = frozenset()  # people known only from an ONS death


def _latest(records: pd.DataFrame, values: pd.Series) -> pd.Series:
    """Per person, the value of their most recent record where ``values`` is present."""
    rows = records.assign(_value=values).dropna(subset=["_value"])
    rows = rows.sort_values(["date", hf.TABLE], na_position="first", kind="stable")
    return rows.groupby("source_id")["_value"].last()


def practice_codes(values: pd.Series) -> pd.Series:
    code = values.astype("str").str.strip().str.upper()
    usable = code.str.fullmatch(r"[A-Z]\d{5}", na=False) & ~code.isin(NO_PRACTICE)
    return code.where(usable)


def birth_months(values: pd.Series) -> pd.Series:
    """``MYDOB`` (mmyyyy, or yyyymm), or a date of birth (``tables.read_dates``), as the
    first of the month; missing when unreadable or outside 1880-2100."""
    text = values.astype("str").str.strip()
    digits = text.where(text.str.fullmatch(r"\d{5,6}", na=False)).str.zfill(6)
    month_first = digits.str[:2].astype("Float64").between(1, 12)
    month, year = digits.str[:2].where(month_first, digits.str[4:]), digits.str[2:]
    year = year.where(month_first, digits.str[:4])
    dated = read_dates(text.where(digits.isna()))
    year = year.fillna(dated.dt.year.astype("Int64").astype("str"))
    month = month.fillna(dated.dt.month.astype("Int64").astype("str"))
    valid = pd.to_numeric(month, errors="coerce").between(1, 12) & pd.to_numeric(
        year, errors="coerce"
    ).between(1880, 2100)
    return first_of_month(year.where(valid), month.where(valid)).where(valid)


def births_from_age(records: pd.DataFrame) -> pd.Series:
    """The birth month an age in years at a record's date implies (its midpoint)."""
    age = pd.to_numeric(records["age"], errors="coerce")
    age = age.mask(age.isin(list(INFANT_AGES)), 0).where(lambda a: a.between(0, 120))
    usable = age.notna() & records["date"].notna()
    pairs = pd.DataFrame({"date": records["date"][usable], "age": age[usable].astype("int64")})
    found = {
        (d, a): pd.Timestamp(month_start(d.date(), -(12 * a + 6)))
        for d, a in set(pairs.itertuples(index=False, name=None))
    }
    births = [found[(d, a)] for d, a in pairs.itertuples(index=False, name=None)]
    out = pd.Series(pd.NaT, index=records.index, dtype="datetime64[s]")
    out[usable] = pd.Series(births, index=pairs.index, dtype="datetime64[s]")
    return out


def _deprivation(extract: Extract, tables: dict[str, list[str]], ledger: Ledger) -> pd.Series:
    """LSOA11 -> IMD decile from the extract's lookup files (empty when none)."""
    parts = [
        hf.read(extract, t, hf.dataset("deprivation"), hf.aliases(), ledger)
        for t in tables.get("deprivation", [])
    ]
    if not parts:
        return pd.Series(dtype="Int8")
    rows = pd.concat(parts, ignore_index=True).assign(start=pd.NaT, source_id=pd.NA)
    rows["lsoa11"] = rows["lsoa11"].str.upper()
    decile = pd.to_numeric(rows["imd_decile"], errors="coerce")
    bad = ~decile.between(1, 10) | rows["lsoa11"].isna()
    hf.each_file(ledger, rows[bad], "invalid_decile")
    good = rows[~bad].assign(decile=decile[~bad])
    repeat = good["lsoa11"].duplicated()
    hf.each_file(ledger, good[repeat], "duplicate_area")
    good = good[~repeat]
    return pd.Series(good["decile"].to_numpy(), index=good["lsoa11"].to_numpy()).astype("Int8")


def _registrations(extract: Extract, rows: pd.DataFrame | None, ledger: Ledger) -> pd.DataFrame:
    """Each registered person's latest registration: practice, start, end (index: person)."""
    if rows is None:
        return pd.DataFrame(
            {
                "practice": pd.Series(dtype="str"),
                "start": pd.Series(dtype="datetime64[s]"),
                "end": pd.Series(dtype="datetime64[s]"),
            }
        )
    rows = rows.assign(
        start=hf.dates_by_file(extract, rows, "registration_start"),
        end=hf.dates_by_file(extract, rows, "registration_end"),
    )
    rows = hf.present(ledger, rows, "source_id", "no_person_id")
    rows = hf.present(ledger, rows, "start", "no_date").sort_values(
        ["start", hf.TABLE, hf.ROW], kind="stable"
    )
    earlier = rows.duplicated("source_id", keep="last")
    hf.each_file(ledger, rows[earlier], "earlier_registration")
    latest = rows[~earlier].set_index("source_id")
    return pd.DataFrame(
        {
            "practice": practice_codes(latest["gpprac"]).fillna(UNASSIGNED),
            "start": latest["start"],
            "end": latest["end"].where(latest["end"] >= latest["start"]),
        }
    )


def _deaths(extract: Extract, rows: pd.DataFrame | None, ledger: Ledger) -> pd.Series:
    """The ONS death date per person (see the module docstring)."""
    if rows is None:
        return pd.Series(dtype="datetime64[s]")
    rows = rows.assign(start=hf.dates_by_file(extract, rows, "reg_date_of_death"))
    rows = hf.present(ledger, rows, "source_id", "no_person_id")
    rows = hf.present(ledger, rows, "start", "no_date").sort_values(
        ["start", hf.TABLE, hf.ROW], kind="stable"
    )
    repeat = rows.duplicated("source_id", keep="first")
    hf.each_file(ledger, rows[repeat], "duplicate_death_record")
    rows = rows[~repeat]
    ledger.facts["ons_deaths"] = {
        "deaths": len(rows),
        "with_underlying_cause": int(rows["s_underlying_cod_icd10"].notna().sum()),
    }
    return rows.set_index("source_id")["start"].astype("datetime64[s]")


def build_people(
    extract: Extract,
    tables: dict[str, list[str]],
    records: pd.DataFrame,
    hospital_deaths: pd.DataFrame,
    ledger: Ledger,
) -> People:
    """Patients with registration, death and deprivation (see the module docstring)."""
    spellings = hf.aliases()

    def rows_of(name: str) -> pd.DataFrame | None:
        parts = [
            hf.read(extract, t, hf.dataset(name), spellings, ledger) for t in tables.get(name, [])
        ]
        return pd.concat(parts, ignore_index=True) if parts else None

    registration_rows = rows_of("registration")
    registered = _registrations(extract, registration_rows, ledger)
    if registration_rows is not None:
        kept = registration_rows[registration_rows["source_id"].isin(registered.index)]
        dated = hf.dates_by_file(extract, kept, "registration_start")
        records = pd.concat([records, hf.person_records(kept, dated)], ignore_index=True)
    records = records[records["source_id"].notna()]
    people = pd.Index(records["source_id"].unique(), name="source_id")
    death = _deaths(extract, rows_of("deaths"), ledger)
    in_hospital = hospital_deaths.sort_values("date").drop_duplicates("source_id")
    in_hospital = in_hospital.set_index("source_id")["date"]
    alone = death[~death.index.isin(people)]
    frame = pd.concat(
        [_patients(records, people, registered, death, in_hospital), _death_only(alone)],
        ignore_index=True,
    )
    frame["deprivation_decile"] = (
        frame["lsoa11"].map(_deprivation(extract, tables, ledger)).astype("Int8")
    )
    ledger.read(PATIENTS, frame)
    rule = (
        "practice and registration from the registration table; people in no registration: "
        "practice on their most recent record, registered from their first record"
        if registration_rows is not None
        else "no registration table: practice on each person's most recent record, "
        "registered from their first record"
    )
    ledger.facts["people"] = {
        "in_records": len(people),
        "from_registration_table": int(people.isin(registered.index).sum()),
        "practice_from_most_recent_record": int((~people.isin(registered.index)).sum()),
        "without_usable_practice": int((frame["practice_id"] == UNASSIGNED).sum()),
        "birth_month_estimated_from_age": int(frame.pop("birth_from_age").sum()),
        "deaths_ons": int(people.isin(death.index).sum()),
        "deaths_of_people_in_no_other_record": len(alone),
        "deaths_in_hospital_only": int(
            (frame["death_date"].notna() & ~frame["source_id"].isin(death.index)).sum()
        ),
        "with_deprivation_decile": int(frame["deprivation_decile"].notna().sum()),
    }
    practices = pd.DataFrame(
        {
            "practice_id": frame["practice_id"].dropna().unique(),
            "practice_name": pd.NA,
            "locality": pd.NA,
        }
    ).astype("str")
    practices.loc[practices["practice_id"] == UNASSIGNED, "practice_name"] = (
        "Unassigned (no practice code in the records)"
    )
    return People(frame.drop(columns="lsoa11"), practices, rule, frozenset(alone.index))


def _death_only(deaths: pd.Series) -> pd.DataFrame:
    """A patients row per person known only from a death: the date, nothing else."""
    empty = pd.Series(pd.NaT, index=deaths.index).to_numpy(dtype="datetime64[s]")
    return pd.DataFrame(
        {
            "source_id": deaths.index.to_numpy(),
            "birth_month": empty,
            "sex": pd.Series(pd.NA, index=deaths.index, dtype="str").to_numpy(),
            "practice_id": pd.Series(pd.NA, index=deaths.index, dtype="str").to_numpy(),
            "ethnicity_group": "Unknown",
            "registration_start": empty,
            "registration_end": empty,
            "death_date": deaths.to_numpy(dtype="datetime64[s]"),
            "lsoa11": pd.Series(pd.NA, index=deaths.index, dtype="str").to_numpy(),
            "birth_from_age": False,
        }
    )


def _patients(
    records: pd.DataFrame,
    people: pd.Index,
    registered: pd.DataFrame,
    death: pd.Series,
    in_hospital: pd.Series,
) -> pd.DataFrame:
    def latest(values: pd.Series) -> pd.Series:
        return _latest(records, values).reindex(people)

    sex = hf.outcome("sex", records["sex"])
    stated = latest(sex.where(sex.isin(["F", "M"])))
    from_dob = latest(birth_months(records["mydob"]))
    from_age = latest(births_from_age(records))
    estimated = from_dob.isna() & from_age.notna()
    birth = from_dob.fillna(from_age)
    ethnicity = latest(hf.outcome("ethnos", records["ethnos"]).mask(lambda s: s == "Unknown"))
    practice = latest(practice_codes(records["gpprac"]))
    practice = registered["practice"].reindex(people).fillna(practice).fillna(UNASSIGNED)
    first_seen = records.groupby("source_id")["date"].min().reindex(people)
    lsoa = latest(records["lsoa11"].str.upper().where(lambda s: s.str.fullmatch(r"[EW]0\d{7}")))
    return pd.DataFrame(
        {
            "source_id": people.to_numpy(),
            "birth_month": birth.to_numpy(dtype="datetime64[s]"),
            "sex": stated.to_numpy(),
            "practice_id": practice.to_numpy(),
            "ethnicity_group": ethnicity.fillna("Unknown").to_numpy(),
            "registration_start": registered["start"]
            .reindex(people)
            .fillna(first_seen)
            .to_numpy(dtype="datetime64[s]"),
            "registration_end": registered["end"].reindex(people).to_numpy(dtype="datetime64[s]"),
            "death_date": death.reindex(people)
            .fillna(in_hospital.reindex(people))
            .to_numpy(dtype="datetime64[s]"),
            "lsoa11": lsoa.to_numpy(),
            "birth_from_age": estimated.to_numpy(dtype=bool),
        }
    )
