"""HES and SUS+ field names, code tables and file recognition, shared by the HES modules.

Field names are the HES data dictionary's, lower case (``admidate``, ``gpprac``), with the
person id under ``person_id``. Other spellings (SUS+ and NCDR names such as
``Admission_Date``, ``Der_Pseudo_NHS_Number``) come from the alias table
``codes/hes_fields.csv`` and, for a local extract, from a TOML file the user names in
``RISKSTRAT_HES_FIELDS``::

    [hes.aliases]
    admidate = ["Date_Admitted"]
    gpprac = ["Practice"]

When a file holds several spellings of one field, the first in the table wins (the HES name,
then the aliases in file order, then the user's). Each file of the extract is recognised by
its columns (``DATASETS``): one extract may hold several financial years of each dataset.
Code values (admission methods, discharge destinations, attendance categories, ...) are in
``codes/hes_codes.csv``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pandas as pd

from riskstrat.common.settings import SettingsError, read_toml
from riskstrat.sources.ingest.mapping import RISKSTRAT, Ledger
from riskstrat.sources.ingest.tables import Extract, Spec, parse_dates

CODES_DIR = Path(__file__).parent / "codes"
FIELDS_ENV = "RISKSTRAT_HES_FIELDS"
TABLE, ROW = "_table", "_row"  # which file and row of it a record came from
PERSON = "person_id"
SOURCE_ID = "source_id"  # the person id as the adapters hand it on
# A date before this is one of HES's null placeholders (1800-01-01, 1801-01-01, 1582-10-15).
FIRST_REAL_DATE = pd.Timestamp("1850-01-01")
PERSON_FIELDS = ("gpprac", "sex", "mydob", "age", "ethnos", "lsoa11")


@dataclass(frozen=True, slots=True)
class Dataset:
    """One kind of HES file: the columns that identify it, must be present, may be present."""

    name: str
    marks: tuple[tuple[str, ...], ...]  # any one of these sets of fields identifies the file
    required: tuple[str, ...]
    optional: tuple[str, ...]


DATASETS: tuple[Dataset, ...] = (
    Dataset(
        "apc",
        (("admimeth", "admidate"), ("admimeth", "epistart")),
        (PERSON, "admimeth"),
        (
            "epikey",
            "partyear",
            "admidate",
            "admisorc",
            "epiorder",
            "epistart",
            "epiend",
            "spelbgin",
            "spelend",
            "disdate",
            "disdest",
            "dismeth",
            "procode3",
            "diag_4_01",
            *PERSON_FIELDS,
        ),
    ),
    Dataset(
        "ae",
        (("aeattendcat", "arrivaldate"),),
        (PERSON, "arrivaldate", "aeattendcat"),
        ("aekey", "partyear", "aeattenddisp", *PERSON_FIELDS),
    ),
    Dataset(
        "ecds",
        (
            ("ec_attendance_category", "arrivaldate"),
            ("ec_chief_complaint_snomed_ct", "arrivaldate"),
            ("ec_discharge_destination_snomed_ct", "arrivaldate"),
        ),
        (PERSON, "arrivaldate"),
        (
            "aekey",
            "ec_attendance_category",
            "ec_chief_complaint_snomed_ct",
            "ec_discharge_destination_snomed_ct",
            *PERSON_FIELDS,
        ),
    ),
    Dataset(
        "op",
        (("attended", "apptdate"),),
        (PERSON, "apptdate", "attended"),
        ("attendkey", "partyear", "firstatt", *PERSON_FIELDS),
    ),
    Dataset(
        "deaths",
        (("reg_date_of_death",),),
        (PERSON, "reg_date_of_death"),
        ("s_underlying_cod_icd10", "sex", "mydob"),
    ),
    Dataset(
        "registration",
        (("registration_start", "gpprac"),),
        (PERSON, "gpprac", "registration_start"),
        ("registration_end", "sex", "mydob", "ethnos", "lsoa11"),
    ),
    Dataset("deprivation", (("lsoa11", "imd_decile"),), ("lsoa11", "imd_decile"), ()),
)


@cache
def _builtin_aliases() -> dict[str, tuple[str, ...]]:
    table = pd.read_csv(CODES_DIR / "hes_fields.csv", dtype="str", keep_default_na=False)
    out: dict[str, list[str]] = {}
    for field, alias in zip(table["field"], table["alias"], strict=True):
        out.setdefault(field, []).append(alias)
    return {field: tuple(aliases) for field, aliases in out.items()}


def known_fields() -> frozenset[str]:
    return frozenset(f for d in DATASETS for f in (*d.required, *d.optional))


def _user_aliases(path: Path) -> dict[str, tuple[str, ...]]:
    """``[hes.aliases]`` of a settings file: field -> extra spellings; errors name the file."""
    table = read_toml(path).get("hes", {})
    aliases = table.get("aliases", {}) if isinstance(table, dict) else None
    if not isinstance(aliases, dict):
        raise SettingsError(str(path), "must be a table of field = [spellings]", "[hes.aliases]")
    known = known_fields()
    out: dict[str, tuple[str, ...]] = {}
    for field, spellings in aliases.items():
        name = field.strip().lower()
        if name not in known:
            raise SettingsError(
                str(path),
                f"unknown field (known: {', '.join(sorted(known))})",
                "[hes.aliases]",
                field,
            )
        if isinstance(spellings, str):
            spellings = [spellings]
        if not isinstance(spellings, list) or not all(isinstance(s, str) for s in spellings):
            raise SettingsError(str(path), "must be a list of column names", "[hes.aliases]", field)
        out[name] = tuple(s.strip().lower() for s in spellings)
    return out


def aliases(settings_file: Path | None = None) -> Mapping[str, tuple[str, ...]]:
    """Field -> other spellings: the built-in table, then ``settings_file`` (default: the file
    named in ``RISKSTRAT_HES_FIELDS``, if any)."""
    named = settings_file or (Path(os.environ[FIELDS_ENV]) if os.environ.get(FIELDS_ENV) else None)
    merged = dict(_builtin_aliases())
    for field, extra in (_user_aliases(named) if named else {}).items():
        merged[field] = (*merged.get(field, ()), *extra)
    return merged


def _present(columns: set[str], field: str, spellings: Mapping[str, tuple[str, ...]]) -> bool:
    return any(c in columns for c in (field, *spellings.get(field, ())))


def recognise(extract: Extract, spellings: Mapping[str, tuple[str, ...]]) -> dict[str, str]:
    """Table name -> dataset name, for every table whose columns identify a HES dataset."""
    found: dict[str, str] = {}
    for table in extract.tables:
        columns = set(extract.columns(table))
        for dataset in DATASETS:
            if any(all(_present(columns, f, spellings) for f in mark) for mark in dataset.marks):
                found[table] = dataset.name
                break
    return found


def read(
    extract: Extract,
    table: str,
    dataset: Dataset,
    spellings: Mapping[str, tuple[str, ...]],
    ledger: Ledger,
) -> pd.DataFrame:
    """The table's fields as text, with its name and row numbers in ``_table`` and ``_row``."""
    spec = Spec(
        table,
        True,
        dataset.required,
        dataset.optional,
        {f: spellings.get(f, ()) for f in (*dataset.required, *dataset.optional)},
    )
    frame = ledger.take(extract, spec)
    assert frame is not None
    if PERSON in frame:
        person = frame.pop(PERSON).str.replace(r"\s+", "", regex=True)
        frame.insert(0, SOURCE_ID, person.mask(person == ""))
    return frame.assign(**{TABLE: table, ROW: frame.index.to_numpy(dtype="int64")})


def unique_records(
    frame: pd.DataFrame, key: str, ledger: Ledger, reason: str = "duplicate_record"
) -> pd.DataFrame:
    """One row per record ``key`` (EPIKEY, AEKEY...): the same record in two financial-year
    files (``partyear``) or twice in one is kept once, from the latest year and file; the
    other copies are not mapped (``reason``). Rows without a key are all kept."""
    year = pd.to_numeric(frame["partyear"], errors="coerce") if "partyear" in frame else None
    order = frame.assign(_year=year if year is not None else 0.0)
    order = order.sort_values(["_year", TABLE, ROW], na_position="first", kind="stable")
    keyed = order[key].notna()
    copies = keyed & order.duplicated(key, keep="last")
    each_file(ledger, order[copies], reason)
    return frame.loc[order.index[~copies.to_numpy()]].sort_index()


def dataset(name: str) -> Dataset:
    return next(d for d in DATASETS if d.name == name)


def dates_by_file(extract: Extract, frame: pd.DataFrame, column: str) -> pd.Series:
    """A date field read by the shared rule (``tables.parse_dates``), file by file so that an
    error names the file it comes from; HES's null placeholders (dates before 1850) become
    missing."""
    spellings = aliases().get(column, ())
    parts = [
        parse_dates(
            rows[column],
            extract.where(str(table)),
            extract.spelling(str(table), column, spellings),
        )
        for table, rows in frame.groupby(TABLE, sort=False)
    ]
    if not parts:
        return pd.Series(pd.NaT, index=frame.index, dtype="datetime64[s]")
    stamps = pd.concat(parts).reindex(frame.index).astype("datetime64[s]")
    return stamps.mask(stamps < FIRST_REAL_DATE)


@cache
def _codes() -> pd.DataFrame:
    return pd.read_csv(CODES_DIR / "hes_codes.csv", dtype="str", keep_default_na=False)


def outcome(field: str, values: pd.Series) -> pd.Series:
    """Each value's outcome in ``codes/hes_codes.csv`` for ``field`` (missing if not listed).

    Values are compared upper-case and trimmed; a numeric code also matches without leading
    zeros or a trailing ``.0`` (``01``, ``1`` and ``1.0`` are one code) unless the table
    spells it with its zero (A&E disposals ``01``..``14``).
    """
    table = _codes()
    rows = table[table["field"] == field]
    lookup = dict(zip(rows["code"].str.upper(), rows["outcome"], strict=True))
    for code, result in list(lookup.items()):
        if code.isdigit():
            lookup.setdefault(str(int(code)), result)
    text = values.astype("str").str.strip().str.upper().str.replace(r"\.0+$", "", regex=True)
    found = text.map(lookup)
    unpadded = text.str.lstrip("0").replace("", "0")
    return found.fillna(unpadded.map(lookup)).astype("str")


def each_file(ledger: Ledger, rows: pd.DataFrame, reason: str, date: str = "start") -> None:
    """Record ``rows`` (records of any files) as not mapped, per file, for ``reason``."""
    for table, part in rows.groupby(TABLE, sort=True):
        ledger.ignore(str(table), part.set_index(ROW), reason, date=date)


def present(ledger: Ledger, rows: pd.DataFrame, column: str, reason: str) -> pd.DataFrame:
    """``rows`` that have ``column``; the others recorded as not mapped for ``reason``."""
    missing = rows[column].isna()
    each_file(ledger, rows[missing], reason)
    return rows[~missing]


def event_frame(
    rows: pd.DataFrame,
    kind: str,
    *,
    start: pd.Series,
    code: pd.Series | str | None,
    code_system: pd.Series | str | None = RISKSTRAT,
    end: pd.Series | None = None,
    value: pd.Series | None = None,
) -> pd.DataFrame:
    """Contract events for ``rows``, tagged with the file and row each came from."""

    def column(values: pd.Series | str | None, dtype: str) -> object:
        if isinstance(values, pd.Series):
            return values.to_numpy(dtype=object if dtype == "str" else dtype)
        return values

    return pd.DataFrame(
        {
            SOURCE_ID: rows[SOURCE_ID].to_numpy(),
            "kind": kind,
            "start": start.to_numpy(dtype="datetime64[s]"),
            "end": (end if end is not None else pd.Series(pd.NaT, index=rows.index)).to_numpy(
                dtype="datetime64[s]"
            ),
            "code_system": column(code_system, "str"),
            "code": column(code, "str"),
            "value": (
                value if value is not None else pd.Series(float("nan"), index=rows.index)
            ).to_numpy(dtype="float64"),
            "cost": float("nan"),
            "source_table": rows[TABLE].to_numpy(),
            "source_row": rows[ROW].to_numpy(dtype="int64"),
        }
    ).astype({"code_system": "str", "code": "str", "source_table": "str"})


def person_records(frame: pd.DataFrame, date: pd.Series) -> pd.DataFrame:
    """What each record says about its person (practice, sex, birth, ...), dated."""
    out = frame.reindex(columns=[SOURCE_ID, *PERSON_FIELDS, TABLE]).astype("str")
    return out.assign(date=date.to_numpy(dtype="datetime64[s]"))
