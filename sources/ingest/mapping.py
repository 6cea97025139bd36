"""Rules shared by the OMOP and Synthea adapters: visits, conditions and drugs to events.

Every function returns the contract events it made and the source rows it did not map, each
with a reason, so that rows in = rows mapped + rows ignored for every source table.

Visits (care settings from ``codes/omop_visits.csv`` and ``codes/synthea_encounters.csv``):

- emergency, urgentcare: ``ae_attendance``, code ``admitted`` if it led to an emergency
  admission, else ``discharged``.
- inpatient: ``emergency_admission`` when admitted through the emergency room (below), else
  ``elective_admission``; value: days in hospital.
- er_inpatient (OMOP 262): ``emergency_admission`` and an ``ae_attendance`` (admitted).
- outpatient: ``outpatient`` (attended); ``gp_contact`` when the provider is a GP.
- gp, virtual: ``gp_contact`` ``face_to_face`` / ``telephone``.
- home, hospice: ``community_contact`` ``home_health`` / ``hospice``.
- snf: up to 90 days ``social_care_package`` ``reablement`` (an intermediate-care bed);
  longer or open ``care_home_admission``. long_term_care: ``care_home_admission``.
- none: not mapped (reason ``no_contract_kind``).

An inpatient visit is an emergency admission when it is an "emergency room and inpatient"
visit (262), when it was admitted from the emergency room (``admitted_from_concept_id``), or
when an emergency room or urgent care visit of the same person started or ended on the day
of admission or the day before.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from riskstrat.contract.schema import EventKind as K
from riskstrat.sources.ingest import codes

if TYPE_CHECKING:
    from riskstrat.sources.ingest.tables import Extract, Spec

RISKSTRAT = "riskstrat"
ISSUE_DAYS = 28
SHORT_STAY_DAYS = 90
IGNORED_COLUMNS = [
    "source_table",
    "source_row",
    "source_id",
    "date",
    "code_system",
    "code",
    "description",
    "reason",
]
ER_LIKE = ("emergency", "urgentcare")
NO_CODE = "no_code"


@dataclass(slots=True)
class Ledger:
    """Rows in per source table, and the rows not mapped with their reason."""

    rows_in: dict[str, int] = field(default_factory=dict)
    ignored: list[pd.DataFrame] = field(default_factory=list)
    facts: dict[str, object] = field(default_factory=dict)

    def read(self, table: str, frame: pd.DataFrame) -> None:
        self.rows_in[table] = self.rows_in.get(table, 0) + len(frame)

    def take(self, extract: Extract, spec: Spec) -> pd.DataFrame | None:
        """The table read from ``extract``, its rows counted in (None: an absent optional table)."""
        rows = extract.read(spec)
        if rows is not None:
            self.read(spec.name, rows)
        return rows

    def ignore(
        self,
        table: str,
        frame: pd.DataFrame,
        reason: str,
        date: str = "start",
        system: str | None = "code_system",
        code: str | None = "code",
        description: str | None = "description",
    ) -> None:
        """Record ``frame``'s rows (index = source row) as not mapped, for ``reason``."""
        if frame.empty:
            return
        none = pd.Series(pd.NA, index=frame.index, dtype="str")

        def pick(column: str | None) -> pd.Series:
            if column is None or column not in frame:
                return none
            return frame[column].astype("str")

        self.ignored.append(
            pd.DataFrame(
                {
                    "source_table": table,
                    "source_row": frame.index.to_numpy(dtype="int64"),
                    "source_id": pick("source_id").to_numpy(),
                    "date": frame[date].to_numpy() if date in frame else pd.NaT,
                    "code_system": pick(system).to_numpy(),
                    "code": pick(code).to_numpy(),
                    "description": pick(description).to_numpy(),
                    "reason": reason,
                }
            )
        )

    def ignored_frame(self) -> pd.DataFrame:
        if not self.ignored:
            return pd.DataFrame(columns=IGNORED_COLUMNS)
        frame = pd.concat(self.ignored, ignore_index=True)
        frame["date"] = pd.to_datetime(frame["date"]).astype("datetime64[s]")
        return frame[IGNORED_COLUMNS]


def _events(
    frame: pd.DataFrame,
    kind: K,
    code: str | pd.Series,
    end: pd.Series | None = None,
    value: pd.Series | None = None,
) -> pd.DataFrame:
    index = frame.index
    return pd.DataFrame(
        {
            "source_id": frame["source_id"].to_numpy(),
            "kind": kind.value,
            "start": frame["start"].to_numpy(),
            "end": (end if end is not None else pd.Series(pd.NaT, index=index)).to_numpy(
                dtype="datetime64[s]"
            ),
            "code_system": RISKSTRAT,
            "code": code.to_numpy() if isinstance(code, pd.Series) else code,
            "value": (value if value is not None else pd.Series(np.nan, index=index)).to_numpy(
                dtype="float64"
            ),
            "cost": np.nan,
        },
        index=index,
    )


def _stay_days(frame: pd.DataFrame) -> pd.Series:
    return (frame["end"] - frame["start"]).dt.days.astype("float64")


def admission_routes(visits: pd.DataFrame) -> tuple[pd.Series, pd.Index]:
    """For each inpatient visit, how it counts as an emergency (or NA); the ER rows used.

    ``visits`` has ``source_id``, ``setting``, ``start``, ``end`` and ``admitted_from_er``.
    """
    inpatient = visits[visits["setting"] == "inpatient"]
    route = pd.Series(pd.NA, index=inpatient.index, dtype="str")
    route[inpatient["admitted_from_er"].fillna(False).astype(bool)] = "admitted_from_er"
    er = visits[visits["setting"].isin(ER_LIKE)]
    pairs = (
        inpatient[["source_id", "start"]]
        .reset_index(names="ip_row")
        .merge(
            er[["source_id", "start", "end"]]
            .rename(columns={"start": "start_er", "end": "end_er"})
            .reset_index(names="er_row"),
            on="source_id",
        )
    )
    lag_start = (pairs["start"] - pairs["start_er"]).dt.days
    lag_end = (pairs["start"] - pairs["end_er"]).dt.days
    near = lag_start.between(0, 1) | lag_end.between(0, 1)
    pairs = pairs[near.fillna(False).astype(bool)]
    preceded = route.index.isin(pairs["ip_row"]) & route.isna().to_numpy()
    route[preceded] = "preceding_er_visit"
    used = pairs.loc[pairs["ip_row"].isin(route.dropna().index), "er_row"].unique()
    return route, pd.Index(used)


def visit_events(
    visits: pd.DataFrame, table: str, ledger: Ledger, unknown_reason: str
) -> pd.DataFrame:
    """Contract events from visits (see the module docstring); ignored rows go to the ledger.

    ``visits``: ``source_id``, ``setting`` (NA when the source value is not in the mapping),
    ``start``, ``end``, ``admitted_from_er``, ``gp_provider``, ``code``, ``description``.
    """
    settings = visits["setting"]
    ledger.ignore(table, visits[settings.isna()], unknown_reason, system=None)
    ledger.ignore(table, visits[settings == "none"], "no_contract_kind", system=None)
    route, er_used = admission_routes(visits)
    parts: list[pd.DataFrame] = []

    def of(*names: str) -> pd.DataFrame:
        return visits[settings.isin(names)]

    er = of(*ER_LIKE)
    er_code = pd.Series("discharged", index=er.index).mask(er.index.isin(er_used), "admitted")
    both = of("er_inpatient")
    inpatient = of("inpatient")
    emergency = inpatient[route.notna()]
    elective = inpatient[route.isna()]
    outpatient = of("outpatient")
    by_gp = outpatient["gp_provider"].fillna(False).astype(bool)
    snf = of("snf")
    short = (_stay_days(snf) <= SHORT_STAY_DAYS).fillna(False)
    for rows, kind, code in (
        (er, K.AE_ATTENDANCE, er_code),
        (both, K.AE_ATTENDANCE, "admitted"),
        (both, K.EMERGENCY_ADMISSION, "emergency"),
        (emergency, K.EMERGENCY_ADMISSION, "emergency"),
        (elective, K.ELECTIVE_ADMISSION, "elective"),
        (outpatient[~by_gp], K.OUTPATIENT, "attended"),
        (outpatient[by_gp], K.GP_CONTACT, "face_to_face"),
        (of("gp"), K.GP_CONTACT, "face_to_face"),
        (of("virtual"), K.GP_CONTACT, "telephone"),
        (of("home"), K.COMMUNITY_CONTACT, "home_health"),
        (of("hospice"), K.COMMUNITY_CONTACT, "hospice"),
        (snf[short], K.SOCIAL_CARE_PACKAGE, "reablement"),
        (snf[~short], K.CARE_HOME_ADMISSION, "care_home"),
        (of("long_term_care"), K.CARE_HOME_ADMISSION, "care_home"),
    ):
        stay = kind in (K.EMERGENCY_ADMISSION, K.ELECTIVE_ADMISSION)
        parts.append(_events(rows, kind, code, rows["end"], _stay_days(rows) if stay else None))

    counts = settings.fillna("unknown").value_counts().sort_index()
    ledger.facts[f"{table}_by_setting"] = {str(k): int(v) for k, v in counts.items()}
    by_route = route.value_counts()
    ledger.facts["admissions"] = {
        "inpatient_visits": len(inpatient),
        "emergency_room_and_inpatient_visits": len(both),
        "emergency_room_visits": int((settings == "emergency").sum()),
        "urgent_care_visits": int((settings == "urgentcare").sum()),
        "emergency_admissions": int(len(emergency) + len(both)),
        "emergency_admissions_by_rule": {
            "er_and_inpatient_visit": len(both),
            "admitted_from_er": int(by_route.get("admitted_from_er", 0)),
            "preceding_er_visit": int(by_route.get("preceding_er_visit", 0)),
        },
        "elective_admissions": len(elective),
        "er_visits_followed_by_admission": len(er_used),
    }
    return pd.concat([p for p in parts if len(p)] or [_empty_events()])


def _empty_events() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "source_id": pd.Series(dtype="str"),
            "kind": pd.Series(dtype="str"),
            "start": pd.Series(dtype="datetime64[s]"),
            "end": pd.Series(dtype="datetime64[s]"),
            "code_system": pd.Series(dtype="str"),
            "code": pd.Series(dtype="str"),
            "value": pd.Series(dtype="float64"),
            "cost": pd.Series(dtype="float64"),
        }
    )


def _looked_up(
    frame: pd.DataFrame, columns: list[str], find: Callable[..., tuple[str, ...]]
) -> pd.Series:
    """``find(*values)`` for each row's ``columns``, asked once per distinct combination.

    Missing values are passed as None: NaN is not equal to itself, so as part of a dict key
    it would not find its own entry.
    """
    values = frame[columns].astype(object)
    keys = list(values.where(values.notna(), None).itertuples(index=False, name=None))
    lookup = {key: find(*key) for key in set(keys)}
    return pd.Series([lookup[key] for key in keys], index=frame.index, dtype=object)


def condition_events(conditions: pd.DataFrame, table: str, ledger: Ledger) -> pd.DataFrame:
    """Long-term conditions (first record per person and condition) and social circumstances.

    ``conditions``: ``source_id``, ``start``, ``code_system``, ``code``, ``description``.
    Rows without a code (``no_code``), unmapped codes and later records of a condition
    already recorded are ignored with their reason.
    """
    targets = _looked_up(conditions, ["code_system", "code"], codes.condition_targets)
    mapped = targets.str.len() > 0
    no_code = conditions["code"].isna()
    ledger.ignore(table, conditions[~mapped & no_code], NO_CODE)
    ledger.ignore(table, conditions[~mapped & ~no_code], "unmapped_code")
    pairs = targets[mapped].explode()
    rows = conditions.loc[pairs.index].assign(
        kind=[k for k, _ in pairs], target=[t for _, t in pairs]
    )
    ltc = rows[rows["kind"] == K.LTC_DIAGNOSIS.value].sort_values("start", kind="stable")
    first = ~ltc.duplicated(["source_id", "target"], keep="first")
    kept = pd.concat([ltc[first], rows[rows["kind"] != K.LTC_DIAGNOSIS.value]])
    repeats = conditions.loc[conditions.index.difference(kept.index).intersection(pairs.index)]
    ledger.ignore(table, repeats, "condition_already_recorded")
    out = pd.DataFrame(
        {
            "source_id": kept["source_id"].to_numpy(),
            "kind": kept["kind"].to_numpy(),
            "start": kept["start"].to_numpy(),
            "end": pd.NaT,
            "code_system": RISKSTRAT,
            "code": kept["target"].to_numpy(),
            "value": np.nan,
            "cost": np.nan,
        },
        index=kept.index,
    )
    out["end"] = out["end"].astype("datetime64[s]")
    return out


def prescription_events(drugs: pd.DataFrame, table: str, ledger: Ledger) -> pd.DataFrame:
    """One ``prescription`` per drug class and 28 days of each record's covered period.

    ``drugs``: ``source_id``, ``start``, ``end`` (the covered period's last day; for an
    ongoing course the adapter gives the person's death or the end of the data),
    ``code_system``, ``code``, ``description`` (the drug's name). A record without an end
    covers 28 days. Drugs of no known class are ignored (``unmapped_code``), and so are rows
    with neither a code nor a name (``no_code``: say, a concept missing from the extract's
    vocabulary and an empty source value).
    """
    classes = _looked_up(drugs, ["code_system", "code", "description"], codes.drug_classes)
    mapped = classes.str.len() > 0
    no_code = drugs["code"].isna() & drugs["description"].isna()
    ledger.ignore(table, drugs[~mapped & no_code], NO_CODE)
    ledger.ignore(table, drugs[~mapped & ~no_code], "unmapped_code")
    rows = drugs[mapped].assign(drug_class=classes[mapped]).explode("drug_class")
    days = (rows["end"] - rows["start"]).dt.days
    issues = (days.fillna(0).clip(lower=0) // ISSUE_DAYS + 1).astype("int64").to_numpy()
    repeated = rows.iloc[np.repeat(np.arange(len(rows)), issues)]
    step = np.concatenate([np.arange(n) for n in issues]) if len(issues) else np.array([], int)
    offset = pd.to_timedelta(step * ISSUE_DAYS, unit="D").to_numpy()
    start = repeated["start"] + offset
    last = start + pd.Timedelta(days=ISSUE_DAYS - 1)
    end = last.where(repeated["end"].isna() | (last < repeated["end"]), repeated["end"])
    ledger.facts[f"{table}_issues"] = len(repeated)
    out = pd.DataFrame(
        {
            "source_id": repeated["source_id"].to_numpy(),
            "kind": K.PRESCRIPTION.value,
            "start": start.to_numpy(dtype="datetime64[s]"),
            "end": end.to_numpy(dtype="datetime64[s]"),
            "code_system": RISKSTRAT,
            "code": repeated["drug_class"].to_numpy(),
            "value": 1.0,
            "cost": np.nan,
        },
        index=repeated.index,
    )
    return out


def count_only(frame: pd.DataFrame, table: str, ledger: Ledger) -> None:
    """A table with no contract kind (procedures, care plans): counted, codes reported."""
    ledger.read(table, frame)
    ledger.ignore(table, frame, "no_contract_kind")


def practices_frame(
    practices: pd.DataFrame, practices_file: pd.DataFrame | None
) -> tuple[pd.DataFrame, int]:
    """Practices with cluster and locality from ``--practices`` (else Unassigned / source).

    ``practices``: ``practice_id``, ``practice_name``, ``locality`` (may be empty).
    Returns the contract frame and how many practices the file assigned.
    """
    out = practices.drop_duplicates("practice_id").copy()
    out["gp_cluster"] = "Unassigned"
    out["locality"] = out["locality"].fillna("Unassigned")
    out, assigned = with_practices_file(
        out, practices_file, ("gp_cluster", "locality", "practice_name")
    )
    return out[["practice_id", "practice_name", "gp_cluster", "locality"]], assigned


def with_practices_file(
    practices: pd.DataFrame, practices_file: pd.DataFrame | None, columns: tuple[str, ...]
) -> tuple[pd.DataFrame, int]:
    """``practices`` with ``columns`` taken from the ``--practices`` file for the practices it
    names (where it gives a value), and how many practices it named."""
    if practices_file is None:
        return practices, 0
    out = practices.copy()
    table = practices_file.drop_duplicates("practice_id").set_index("practice_id")
    known = out["practice_id"].isin(table.index)
    for column in columns:
        if column in table:
            values = out.loc[known, "practice_id"].map(table[column])
            out.loc[known, column] = values.fillna(out.loc[known, column])
    return out, int(known.sum())


@dataclass(frozen=True, slots=True)
class Mapped:
    """One extract in contract shape, still with source identifiers (``source_id``).

    ``events`` carries ``source_table`` and ``source_row`` so counts reconcile per table.
    ``unconfirmed``: source ids of patients rows that cannot stand alone (a death
    registration of a person in no other record: no birth, sex or practice); the linkage
    keeps them only when another source names the person.
    """

    practices: pd.DataFrame
    patients: pd.DataFrame
    events: pd.DataFrame
    ledger: Ledger
    about: dict[str, object]
    unconfirmed: frozenset[str] = frozenset()


# A value the contract requires that a mapped row lacks, and the reason its source row is
# then not mapped; checked in this order, the first missing one is the reason.
REQUIRED = {
    "source_id": "no_person_id",
    "birth_month": "no_birth_date",
    "sex": "no_sex",
    "registration_start": "no_registration_start",
    "start": "no_date",
}


def _first_missing(frame: pd.DataFrame) -> pd.Series:
    reason = pd.Series(pd.NA, index=frame.index, dtype="str")
    for column in reversed([c for c in REQUIRED if c in frame]):
        reason = reason.mask(frame[column].isna(), REQUIRED[column])
    return reason


def complete_rows(
    patients: pd.DataFrame, events: pd.DataFrame, patients_table: str, ledger: Ledger
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Patients (index = source row of ``patients_table``) and tagged events without the rows
    that lack a value the contract requires (``REQUIRED``): those source rows are not mapped,
    each with its reason, so a person without an id, a birth date, a sex or any date, or an
    event without a person or a date, is counted, never passed on half-empty."""
    lacking = _first_missing(patients)
    for reason, rows in patients[lacking.notna()].groupby(lacking.dropna(), sort=True):
        ledger.ignore(patients_table, rows, str(reason), "registration_start", None, None, None)
    missing = _first_missing(events)
    gaps = events[missing.notna()].assign(reason=missing.dropna())
    for (table, reason), rows in gaps.groupby(["source_table", "reason"], sort=True):
        ledger.ignore(
            str(table), rows.drop_duplicates("source_row").set_index("source_row"), str(reason)
        )
    return patients[lacking.isna()], events[missing.isna()]


def tag(events: pd.DataFrame, table: str) -> pd.DataFrame:
    """Mark events with the source table they came from; the index is the source row."""
    return events.assign(source_table=table, source_row=events.index.to_numpy(dtype="int64"))


def lookup(keys: pd.Series, values: pd.Series) -> pd.Series:
    """``values`` (unique index) at each of ``keys``, missing where absent, in ``values``'
    dtype. Unlike ``keys.map(values)`` it holds when ``values`` is empty dates."""
    found = values.reindex(keys.to_numpy())
    return pd.Series(found.to_numpy(), index=keys.index, dtype=values.dtype)


def first_of_month(year: pd.Series, month: pd.Series) -> pd.Series:
    """The first day of the birth month; an unknown month becomes July (mid-year)."""
    y = pd.to_numeric(year, errors="coerce")
    m = pd.to_numeric(month, errors="coerce").where(lambda s: s.between(1, 12), 7)
    text = y.astype("Int64").astype("str") + "-" + m.astype("Int64").astype("str") + "-01"
    return pd.to_datetime(text, format="%Y-%m-%d", errors="coerce").astype("datetime64[s]")


UNASSIGNED = "UNASSIGNED"
