"""Adult Social Care Client Level Data (CLD, release 1, quarterly since April 2023) to the
contract (``riskstrat ingest --source asc-cld``; field mapping in docs/sources/asc-cld.md).

A CLD file has one row per event (request, assessment, service or review) with the person's
details repeated on each. Every table of the extract with ``Event_Type`` and
``Event_Start_Date`` columns is read (quarterly submissions may come as several files);
field names as in the specification, in any case, with spaces or underscores; dates by
the shared rule (``tables.parse_dates``: ISO, ``YYYYMMDD``, day-first ``DD/MM/YYYY``).

- Validity: rows failing the return's own rules (``asc_cld_rules``) are not mapped, with
  the rule as reason; carers known only by association have no event
  (``carer_known_by_association``). An event resubmitted in a later quarter (same
  ``LA_Code``, ``Event_Reference`` and type) keeps its latest submission
  (``superseded_by_later_submission``); identical rows without a reference are kept once
  (``duplicate_row``).
- Person: the NHS number (10 digits passing the Modulus 11 check, or an already
  pseudonymised value); else the local authority's person identifier, which takes the NHS
  number given for it on any other row.
- Requests and reviews: counted by route of access and by review reason, not mapped (the
  contract has no kind for them). Assessments: ``social_care_assessment`` (code: the
  outcome); financial assessments are not needs assessments and are not mapped.
- Services, by ``Service_Type`` (``codes/asc_cld.csv``): long-term nursing and residential
  care give a ``social_care_package`` and, when the person was not already in long-term
  residential or nursing care the day before, a ``care_home_admission`` on the start date;
  other long-term and short-term support a ``social_care_package``; ST-Max a
  ``reablement_plan`` (code ``st_max``) and a ``reablement`` package; carer support is not
  mapped. A service still running keeps its planned end (empty when open).
- Weekly cost: ``Unit_Cost`` times the units a week its ``Cost_Frequency_Unit_Type`` gives
  (weekly 1, fortnightly 1/2, 4-weekly 1/4, monthly 12/52, quarterly 4/52, annually 1/52;
  hourly, daily and per session: ``Planned_Units_Per_Week``); one-off costs and missing
  parts leave it empty (counted). Value: hours a week, for hourly costed services.
- Patients: one row per person from their most recent record that gives each detail
  (sex, birth month, ethnicity, GP practice, death); registered from their first event.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from riskstrat.contract.schema import EventKind as K
from riskstrat.sources.ingest import asc_cld_codes as lists
from riskstrat.sources.ingest.asc_cld_rules import first_failure
from riskstrat.sources.ingest.linkage import not_valid
from riskstrat.sources.ingest.mapping import (
    UNASSIGNED,
    Ledger,
    Mapped,
    complete_rows,
    first_of_month,
    practices_frame,
)
from riskstrat.sources.ingest.tables import Extract, IngestError, Spec, parse_numbers

SOURCE = "asc-cld"
CODE_SYSTEM = "asc_cld"
PEOPLE = "asc_cld_people"
REQUIRED = ("event_type", "event_start_date")
OPTIONAL = (
    "la_code",
    "reporting_period_start_date",
    "reporting_period_end_date",
    "nhs_number",
    "la_person_unique_identifier",
    "gp_practice_code",
    "gp_practice_name",
    "gender",
    "ethnicity",
    "date_of_birth",
    "der_birth_year",
    "der_birth_month",
    "date_of_death",
    "client_type",
    "event_reference",
    "event_end_date",
    "event_outcome",
    "request_route_of_access",
    "assessment_type",
    "review_reason",
    "service_type",
    "service_component",
    "delivery_mechanism",
    "unit_cost",
    "cost_frequency_unit_type",
    "planned_units_per_week",
)
ALIASES = {
    "nhs_number": ("der_nhs_number_traced_pseudo", "der_nhs_number_pseudo"),
    "la_person_unique_identifier": ("der_la_person_unique_identifier_pseudo",),
    "cost_frequency_unit_type": ("cost_frequency_(unit_type)", "cost_frequency"),
    "request_route_of_access": ("request:_route_of_access", "route_of_access"),
}
UNITS_PER_WEEK = {
    "weekly": 1.0,
    "fortnightly": 1 / 2,
    "four_weekly": 1 / 4,
    "monthly": 12 / 52,
    "quarterly": 4 / 52,
    "annually": 1 / 52,
}
DATES = (
    "event_start_date",
    "event_end_date",
    "reporting_period_start_date",
    "reporting_period_end_date",
    "date_of_birth",
    "date_of_death",
)
PER_PLANNED_UNIT = ("hourly", "daily", "per_session")
CARE_HOME = ("residential_care", "nursing_care")
OPEN_END = pd.Timestamp("9999-12-31").as_unit("s")


def _spec(name: str) -> Spec:
    """The table's spec; every name also read with spaces for underscores (``Event Type``)."""
    aliases = {
        c: (*ALIASES.get(c, ()), *(a.replace("_", " ") for a in (c, *ALIASES.get(c, ()))))
        for c in (*REQUIRED, *OPTIONAL)
    }
    return Spec(name, True, REQUIRED, OPTIONAL, aliases)


def _tables(extract: Extract) -> tuple[str, ...]:
    """The extract's tables with the CLD event columns."""

    def has(name: str, column: str) -> bool:
        found = extract.columns(name)
        return column in found or column.replace("_", " ") in found

    found = tuple(t for t in extract.tables if all(has(t, c) for c in REQUIRED))
    if not found:
        raise IngestError(
            f"no Client Level Data table found (one with columns 'Event_Type' and "
            f"'Event_Start_Date'); tables present: {', '.join(extract.tables)}"
        )
    return found


def _nhs_numbers(values: pd.Series) -> tuple[pd.Series, int]:
    """Valid NHS numbers (spaces removed) or pseudonymised values; NA otherwise, and how
    many were given but invalid (digits failing the length or Modulus 11 check)."""
    text = values.str.replace(r"[\s-]", "", regex=True)
    invalid = text.map(lambda v: isinstance(v, str) and not_valid(v)).astype(bool)
    return text.where(~invalid & text.notna()), int(invalid.sum())


def _read(extract: Extract, name: str, ledger: Ledger) -> pd.DataFrame:
    """One table's rows with the fields the mapping uses, parsed and looked up."""
    spec = _spec(name)
    taken = ledger.take(extract, spec)
    assert taken is not None
    raw = taken.mask(taken.apply(lambda c: c.str.upper() == "NULL"))  # SQL Server exports
    date = {c: extract.dates(spec, raw, c) for c in DATES}
    birth = date["date_of_birth"]
    born = birth - pd.to_timedelta(birth.dt.day - 1, unit="D")
    derived = first_of_month(raw["der_birth_year"], raw["der_birth_month"])
    nhs, invalid = _nhs_numbers(raw["nhs_number"])
    ledger.facts[f"{name}_invalid_nhs_numbers"] = invalid
    rows = pd.DataFrame(
        {
            "source_table": name,
            "source_row": raw.index.to_numpy(dtype="int64"),
            "nhs_number": nhs,
            "la_person": "LA:"
            + raw["la_code"].fillna("")
            + ":"
            + raw["la_person_unique_identifier"],
            "la_code": raw["la_code"],
            "event_reference": raw["event_reference"],
            "event_type_raw": raw["event_type"],
            "event_type": lists.lookup("event_type", raw["event_type"]),
            "client_type_raw": raw["client_type"],
            "client_type": lists.lookup("client_type", raw["client_type"]),
            "start_raw": raw["event_start_date"],
            "start": date["event_start_date"],
            "end_raw": raw["event_end_date"],
            "end": date["event_end_date"],
            "period_start": date["reporting_period_start_date"],
            "period_end": date["reporting_period_end_date"],
            "outcome_raw": raw["event_outcome"],
            "outcome": lists.lookup("event_outcome", raw["event_outcome"]),
            "route": raw["request_route_of_access"],
            "assessment_type": raw["assessment_type"],
            "review_reason": raw["review_reason"],
            "service_type_raw": raw["service_type"],
            "service_type": lists.lookup("service_type", raw["service_type"]),
            "service_component": raw["service_component"],
            "delivery_mechanism_raw": raw["delivery_mechanism"],
            "delivery_mechanism": lists.lookup("delivery_mechanism", raw["delivery_mechanism"]),
            "unit_cost": parse_numbers(raw["unit_cost"]),
            "cost_frequency_raw": raw["cost_frequency_unit_type"],
            "cost_frequency": lists.lookup("cost_frequency", raw["cost_frequency_unit_type"]),
            "planned_units": parse_numbers(raw["planned_units_per_week"]),
            "gender": raw["gender"],
            "code_system": CODE_SYSTEM,  # what the unmapped rows report
            "code": raw["event_type"],
            "description": raw["service_type"]
            .fillna(raw["request_route_of_access"])
            .fillna(raw["review_reason"]),
            "ethnicity": raw["ethnicity"],
            "birth_month": born.fillna(derived),
            "death_date": date["date_of_death"],
            "practice_id": raw["gp_practice_code"].str.upper(),
            "practice_name": raw["gp_practice_name"],
        }
    )
    return rows


def _people(rows: pd.DataFrame) -> pd.Series:
    """Each row's person: its NHS number, else the one its LA identifier has elsewhere, else
    the LA identifier itself (``LA:<LA_Code>:<id>``)."""
    known = rows.dropna(subset=["nhs_number", "la_person"]).drop_duplicates(
        "la_person", keep="last"
    )
    linked = rows["la_person"].map(known.set_index("la_person")["nhs_number"])
    return rows["nhs_number"].fillna(linked.astype("str")).fillna(rows["la_person"])


def _ignore(ledger: Ledger, rows: pd.DataFrame, reason: str) -> None:
    """Record ``rows`` as not mapped, per source table (their event type is the code)."""
    for table, part in rows.groupby("source_table", sort=True):
        ledger.ignore(str(table), part.set_index("source_row"), reason)


def _valid(rows: pd.DataFrame, ledger: Ledger) -> pd.DataFrame:
    """Rows passing the return's validity rules, deduplicated (see the module docstring)."""
    by_association = rows["client_type"] == "carer_by_association"
    _ignore(ledger, rows[by_association], "carer_known_by_association")
    rows = rows[~by_association]
    failed = first_failure(rows)
    for rule, part in rows[failed.notna()].groupby(failed.dropna(), sort=True):
        _ignore(ledger, part, str(rule))
    rows = rows[failed.isna()]
    ledger.facts["asc_cld_validity_failures"] = {
        str(k): int(v) for k, v in failed.value_counts().sort_index().items()
    }
    ledger.facts["asc_cld_rows_without_reporting_period"] = int(
        (rows["period_start"].isna() | rows["period_end"].isna()).sum()
    )
    return _deduplicated(rows, ledger)


def _deduplicated(rows: pd.DataFrame, ledger: Ledger) -> pd.DataFrame:
    """The latest submission of each referenced event; one of identical unreferenced rows."""
    order = rows.sort_values(["period_end", "source_table", "source_row"], na_position="first")
    referenced = order["event_reference"].notna()
    stale = referenced & order.duplicated(["la_code", "event_reference", "event_type"], keep="last")
    _ignore(ledger, order[stale], "superseded_by_later_submission")
    order = order[~stale]
    same = [c for c in order.columns if c not in ("source_table", "source_row", "code_system")]
    copy = order["event_reference"].isna() & order.duplicated(same, keep="last")
    _ignore(ledger, order[copy], "duplicate_row")
    return order[~copy].sort_index()


def _events(
    rows: pd.DataFrame,
    kind: K,
    code: str | pd.Series,
    end: pd.Series | None = None,
    value: pd.Series | None = None,
    cost: pd.Series | None = None,
) -> pd.DataFrame:
    def numbers(s: pd.Series | None) -> np.ndarray:
        return np.full(len(rows), np.nan) if s is None else s.to_numpy(dtype="float64")

    return pd.DataFrame(
        {
            "source_id": rows["source_id"].to_numpy(),
            "kind": kind.value,
            "start": rows["start"].to_numpy(dtype="datetime64[s]"),
            "end": (rows["end"] if end is None else end).to_numpy(dtype="datetime64[s]"),
            "code_system": "riskstrat",
            "code": code.to_numpy() if isinstance(code, pd.Series) else code,
            "value": numbers(value),
            "cost": numbers(cost),
            "source_table": rows["source_table"].to_numpy(),
            "source_row": rows["source_row"].to_numpy(dtype="int64"),
        }
    )


def _weekly_costs(services: pd.DataFrame, ledger: Ledger) -> pd.Series:
    """Weekly cost of each service (NA when it cannot be computed; counted by cause)."""
    frequency = services["cost_frequency"]
    units = frequency.map(UNITS_PER_WEEK).astype("float64")
    planned = services["planned_units"].where(services["planned_units"] >= 0)
    units = units.fillna(planned.where(frequency.isin(PER_PLANNED_UNIT)))
    cost = services["unit_cost"].where(services["unit_cost"] >= 0)
    weekly = cost * units
    cause = pd.Series(pd.NA, index=services.index, dtype="str")
    for reason, gap in (
        ("no_planned_units", frequency.isin(PER_PLANNED_UNIT) & planned.isna()),
        ("unknown_cost_frequency", services["cost_frequency_raw"].notna() & frequency.isna()),
        ("no_cost_frequency", services["cost_frequency_raw"].isna()),
        ("one_off_cost", frequency == "one_off"),
        ("negative_unit_cost", services["unit_cost"] < 0),
        ("no_unit_cost", services["unit_cost"].isna()),
    ):
        cause = cause.mask(gap & weekly.isna(), reason)
    ledger.facts["asc_cld_services_without_weekly_cost"] = {
        str(k): int(v) for k, v in cause.value_counts().sort_index().items()
    }
    return weekly


def _admissions(homes: pd.DataFrame) -> pd.DataFrame:
    """Long-term residential or nursing services that start a stay in a care home: the
    person was in none the day before (an open service runs on)."""
    ordered = homes.sort_values(["source_id", "start", "source_table", "source_row"])
    person = ordered["source_id"]
    reach = ordered["end"].astype("datetime64[s]").fillna(OPEN_END)
    before = reach.groupby(person).cummax().groupby(person).shift()
    new = before.isna() | (before < ordered["start"] - pd.Timedelta(days=1))
    return ordered[new.to_numpy()]


def _services(rows: pd.DataFrame, ledger: Ledger) -> list[pd.DataFrame]:
    services = rows[rows["event_type"] == "service"]
    carer = services["service_type"] == "carer_support"
    _ignore(ledger, services[carer], "no_contract_kind")
    services = services[~carer]
    weekly = _weekly_costs(services, ledger)
    hours = services["planned_units"].where(services["cost_frequency"] == "hourly")
    type_ = services["service_type"]
    admissions = _admissions(services[type_.isin(CARE_HOME)])
    ledger.facts["asc_cld_care_home_admissions"] = len(admissions)
    permanent = pd.Series(pd.NaT, index=admissions.index, dtype="datetime64[s]")
    return [
        _events(services, K.SOCIAL_CARE_PACKAGE, type_, value=hours, cost=weekly),
        _events(admissions, K.CARE_HOME_ADMISSION, admissions["service_type"], end=permanent),
        _events(services[type_ == "reablement"], K.REABLEMENT_PLAN, "st_max"),
    ]


def _assessments(rows: pd.DataFrame, ledger: Ledger) -> pd.DataFrame:
    assessments = rows[rows["event_type"] == "assessment"]
    financial = assessments["assessment_type"].map(lists.key).str.startswith("financial")
    _ignore(ledger, assessments[financial.fillna(False)], "financial_assessment")
    needs = assessments[~financial.fillna(False)]
    unlisted = needs["outcome_raw"].notna() & needs["outcome"].isna()
    ledger.facts["asc_cld_outcomes_not_in_list"] = int(unlisted.sum())
    code = needs["outcome"].fillna(needs["outcome_raw"].map(lists.key).astype("str"))
    return _events(needs, K.SOCIAL_CARE_ASSESSMENT, code)


def _counted(rows: pd.DataFrame, ledger: Ledger) -> None:
    """Requests and reviews: no contract kind; counted by route of access and by reason."""
    for kind, column in (("request", "route"), ("review", "review_reason")):
        part = rows[rows["event_type"] == kind]
        _ignore(ledger, part, "no_contract_kind")
        counts = part[column].fillna("not recorded").value_counts().sort_index()
        ledger.facts[f"asc_cld_{kind}s_by_{column}"] = {str(k): int(v) for k, v in counts.items()}


def _patients(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per person from their most recent record giving each detail."""
    ordered = rows.sort_values(["start", "period_end", "source_table", "source_row"])
    latest = ordered.groupby("source_id", sort=True)[
        ["gender", "ethnicity", "birth_month", "death_date", "practice_id"]
    ].last()
    sex = lists.lookup("gender", latest["gender"])
    return pd.DataFrame(
        {
            "source_id": latest.index.astype("str"),
            "birth_month": latest["birth_month"].astype("datetime64[s]").to_numpy(),
            "sex": sex.fillna(latest["gender"]).to_numpy(),
            "practice_id": latest["practice_id"].fillna(UNASSIGNED).to_numpy(),
            "deprivation_decile": pd.array([pd.NA] * len(latest), dtype="Int8"),
            "ethnicity_group": lists.ethnicity_groups(latest["ethnicity"]).to_numpy(),
            "registration_start": ordered.groupby("source_id", sort=True)["start"]
            .min()
            .to_numpy(dtype="datetime64[s]"),
            "registration_end": pd.NaT,
            "death_date": latest["death_date"].astype("datetime64[s]").to_numpy(),
        }
    ).astype({"registration_end": "datetime64[s]"})


def _practices(rows: pd.DataFrame, patients: pd.DataFrame) -> pd.DataFrame:
    names = rows.dropna(subset=["practice_id", "practice_name"]).drop_duplicates(
        "practice_id", keep="last"
    )
    ids = pd.Series(patients["practice_id"].unique(), dtype="str")
    name = ids.map(names.set_index("practice_id")["practice_name"]).astype("str")
    name = name.mask(ids == UNASSIGNED, "Unassigned (no GP practice recorded)")
    return pd.DataFrame({"practice_id": ids, "practice_name": name, "locality": pd.NA})


def map_asc_cld(extract: Extract, practices_file: pd.DataFrame | None) -> Mapped:
    """The whole extract in contract shape (see the module docstring)."""
    ledger = Ledger()
    tables = _tables(extract)
    rows = pd.concat([_read(extract, t, ledger) for t in tables], ignore_index=True)
    rows = rows.assign(source_id=_people(rows))
    rows = _valid(rows, ledger)
    _counted(rows, ledger)
    parts = [_assessments(rows, ledger), *_services(rows, ledger)]
    events = pd.concat([p for p in parts if len(p)] or parts[:1], ignore_index=True)
    patients = _patients(rows)
    by_nhs = patients["source_id"].str.startswith("LA:")
    ledger.facts["people"] = {
        "in": len(patients),
        "identified_by_nhs_number": int((~by_nhs).sum()),
        "identified_by_la_id_only": int(by_nhs.sum()),
        "registered_from_first_activity": len(patients),
        "deaths": int(patients["death_date"].notna().sum()),
    }
    patients, events = complete_rows(patients, events, PEOPLE, ledger)
    practices, assigned = practices_frame(_practices(rows, patients), practices_file)
    periods = rows[["period_start", "period_end"]]
    about = {
        "source": SOURCE,
        "reporting_periods": {
            "first": str(periods["period_start"].min().date())
            if periods["period_start"].notna().any()
            else None,
            "last": str(periods["period_end"].max().date())
            if periods["period_end"].notna().any()
            else None,
        },
        "tables_used": list(tables),
        "tables_not_used": sorted(set(extract.tables) - set(tables)),
        "practices_from_file": assigned,
    }
    return Mapped(practices, patients, events, ledger, about)
