"""The canonical data contract: the tables every source is mapped into.

Three Parquet tables (``patients``, ``events``, ``practices``). Every adapter (the synthetic
borough, OMOP CDM, Synthea) writes these, and every feature reads only these. docs/data.md
documents the same content for people; this module is the source of truth for code.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import pyarrow as pa


class EventKind(StrEnum):
    """What an event is. ``value``, ``code`` and ``end`` mean different things per kind."""

    GP_CONTACT = "gp_contact"
    PRESCRIPTION = "prescription"
    LTC_DIAGNOSIS = "ltc_diagnosis"
    AE_ATTENDANCE = "ae_attendance"
    EMERGENCY_ADMISSION = "emergency_admission"
    ELECTIVE_ADMISSION = "elective_admission"
    OUTPATIENT = "outpatient"
    COMMUNITY_CONTACT = "community_contact"
    MENTAL_HEALTH_CONTACT = "mental_health_contact"
    SOCIAL_CARE_ASSESSMENT = "social_care_assessment"
    SOCIAL_CARE_PACKAGE = "social_care_package"
    CARE_HOME_ADMISSION = "care_home_admission"
    CARE_COORDINATION_CALL = "care_coordination_call"
    SOCIAL_PRESCRIBING_REFERRAL = "social_prescribing_referral"
    SOCIAL_CIRCUMSTANCE = "social_circumstance"
    CASE_MANAGEMENT = "case_management"
    REABLEMENT_PLAN = "reablement_plan"
    RISK_LIST_SCORE = "risk_list_score"
    RISK_LIST_LOTTERY = "risk_list_lottery"


EVENT_KIND_MEANING: dict[EventKind, str] = {
    EventKind.GP_CONTACT: "GP practice appointment or contact; code: face_to_face, telephone, "
    "home_visit",
    EventKind.PRESCRIPTION: "prescription issue; code: drug class; start..end: period covered; "
    "value: items issued",
    EventKind.LTC_DIAGNOSIS: "long-term condition first recorded; code: condition (may predate "
    "the extract: problem lists keep old diagnoses)",
    EventKind.AE_ATTENDANCE: "A&E attendance; code: attendance category",
    EventKind.EMERGENCY_ADMISSION: "emergency (non-elective) admission; start: admission date; "
    "end: discharge date (length of stay = end - start); code: primary diagnosis (ICD10 when "
    "code_system is ICD10; see features.avoidable for the potentially avoidable ones)",
    EventKind.ELECTIVE_ADMISSION: "elective admission or day case; start..end as above",
    EventKind.OUTPATIENT: "outpatient appointment; code: attended or dna (did not attend)",
    EventKind.COMMUNITY_CONTACT: "community nursing or therapy contact; code: service",
    EventKind.MENTAL_HEALTH_CONTACT: "secondary mental-health service contact; code: crisis, "
    "community_team, talking_therapy",
    EventKind.SOCIAL_CARE_ASSESSMENT: "adult social-care needs assessment; code: outcome",
    EventKind.SOCIAL_CARE_PACKAGE: "social-care package of care; code: type (home_care, "
    "reablement); start..end (end empty while active); value: hours a week; cost: weekly cost",
    EventKind.CARE_HOME_ADMISSION: "permanent admission to a care home (may predate the extract)",
    EventKind.CARE_COORDINATION_CALL: "call to the 24/7 care coordination centre",
    EventKind.SOCIAL_PRESCRIBING_REFERRAL: "referral to a social prescribing link worker; "
    "code: who referred (link_worker: usual route, risk_list: triggered by the risk list)",
    EventKind.SOCIAL_CIRCUMSTANCE: "coded social circumstance; code: lives_alone, has_carer, "
    "bereavement",
    EventKind.CASE_MANAGEMENT: "integrated case management by a locality team; code: programme "
    "(integrated_locality_model); start..end (end empty while active)",
    EventKind.REABLEMENT_PLAN: "integrated reablement plan put in place; code: trigger "
    "(risk_list); start..end: the plan's active period",
    EventKind.RISK_LIST_SCORE: "a person's score on a risk-list run, kept for everyone the run "
    "scored within its saved band; start: the run's date; value: risk (0-1); code: listed or "
    "not_listed",
    EventKind.RISK_LIST_LOTTERY: "a person's draw in a risk-list run's lottery for scarce "
    "list-triggered help (more qualified than there were offers); start: the run's date; code: "
    "the help drawn for (reablement_plan, social_prescribing_referral); value: 1 drawn "
    "(offered), 0 not drawn",
}

SEXES: tuple[str, ...] = ("F", "M")
ETHNICITY_GROUPS: tuple[str, ...] = ("White", "Asian", "Black", "Mixed", "Other", "Unknown")


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a contract table."""

    name: str
    type: pa.DataType
    nullable: bool
    meaning: str

    def accepts(self, source: pa.DataType) -> bool:
        """Whether values of type ``source`` can be cast to this column's type without
        reinterpreting them (dates from dates or timestamps, numbers from numbers, text from
        text; an all-null column fits anywhere)."""
        target = self.type
        return (
            pa.types.is_null(source)
            or (
                pa.types.is_date(target)
                and (pa.types.is_date(source) or pa.types.is_timestamp(source))
            )
            or (
                pa.types.is_string(target)
                and (pa.types.is_string(source) or pa.types.is_large_string(source))
            )
            or (pa.types.is_integer(target) and pa.types.is_integer(source))
            or (
                pa.types.is_floating(target)
                and (pa.types.is_floating(source) or pa.types.is_integer(source))
            )
        )


@dataclass(frozen=True, slots=True)
class Table:
    """One contract table: its file name, key and columns."""

    name: str
    key: str
    columns: tuple[Column, ...]

    @property
    def file_name(self) -> str:
        return f"{self.name}.parquet"

    @property
    def schema(self) -> pa.Schema:
        return pa.schema([pa.field(c.name, c.type, nullable=c.nullable) for c in self.columns])

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


PRACTICES = Table(
    name="practices",
    key="practice_id",
    columns=(
        Column("practice_id", pa.string(), False, "GP practice code"),
        Column("practice_name", pa.string(), True, "GP practice name"),
        Column("gp_cluster", pa.string(), False, "GP cluster (primary care network)"),
        Column("locality", pa.string(), False, "locality team area"),
    ),
)

PATIENTS = Table(
    name="patients",
    key="patient_id",
    columns=(
        Column("patient_id", pa.string(), False, "pseudonymised identifier"),
        Column("birth_month", pa.date32(), False, "first day of the month of birth"),
        Column("sex", pa.string(), False, "F or M"),
        Column("practice_id", pa.string(), False, "registered GP practice"),
        Column("deprivation_decile", pa.int8(), True, "IMD decile of residence, 1 = most deprived"),
        Column("ethnicity_group", pa.string(), True, "ONS 5-group ethnicity, or Unknown"),
        Column("registration_start", pa.date32(), False, "first day registered with the practice"),
        Column("registration_end", pa.date32(), True, "last day registered; empty if still"),
        Column("death_date", pa.date32(), True, "date of death; empty if alive"),
    ),
)

EVENTS = Table(
    name="events",
    key="",
    columns=(
        Column("patient_id", pa.string(), False, "pseudonymised identifier"),
        Column("kind", pa.string(), False, "one of the event kinds"),
        Column("start", pa.date32(), False, "date the event started or happened"),
        Column("end", pa.date32(), True, "date it ended, for events with a duration"),
        Column("code_system", pa.string(), True, "vocabulary of code: riskstrat, SNOMED, ICD10..."),
        Column("code", pa.string(), True, "what happened, in code_system"),
        Column("value", pa.float64(), True, "a number whose meaning depends on kind"),
        Column("cost", pa.float64(), True, "cost in GBP (weekly for social-care packages)"),
    ),
)

TABLES: tuple[Table, ...] = (PRACTICES, PATIENTS, EVENTS)
