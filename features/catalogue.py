"""The feature families riskstrat computes from events, with their plain-English templates."""

from __future__ import annotations

import ibis
import ibis.expr.types as ir

from riskstrat.contract.schema import EventKind as K
from riskstrat.features.definitions import (
    ActiveFlag,
    ActiveValue,
    Count,
    DaysInStay,
    DaysSince,
    DaysSinceEnd,
    Derived,
    DistinctCodes,
    Family,
    Flag,
    Trend,
    YearsSinceFirst,
)

DAYS_SINCE_CAP = 730.0

# Long-term condition codes (code_system riskstrat) and how a person would say them.
CONDITIONS: dict[str, str] = {
    "heart_failure": "heart failure",
    "copd": "COPD",
    "asthma": "asthma",
    "diabetes": "diabetes",
    "ckd": "chronic kidney disease",
    "atrial_fibrillation": "atrial fibrillation",
    "chd": "coronary heart disease",
    "stroke_tia": "stroke or TIA",
    "hypertension": "high blood pressure",
    "dementia": "dementia",
    "depression": "depression",
    "anxiety": "anxiety",
    "serious_mental_illness": "serious mental illness",
    "cancer": "cancer",
    "epilepsy": "epilepsy",
    "parkinsons": "Parkinson's disease",
    "rheumatoid_arthritis": "rheumatoid arthritis",
    "osteoporosis": "osteoporosis",
    "learning_disability": "a learning disability",
    "falls": "falls",
    "frailty": "frailty",
}


PERIODS = {30: "30 days", 90: "3 months", 365: "12 months", 730: "2 years"}
HIGH_RISK_DRUGS = ("opioid", "anticoagulant", "insulin", "benzodiazepine", "antipsychotic")
POLYPHARMACY_CLASSES = 5


def _trend(name: str, kind: K, days: int, recent: int, what: str, concept: str) -> Trend:
    return Trend(
        name=name,
        kinds=(kind.value,),
        days=days,
        recent_days=recent,
        description=(
            f"{what} a year in the last {PERIODS[recent]} minus the yearly rate in the "
            f"{PERIODS[days]} before that (positive: rising)"
        ),
        template=f"{what} {{value:+.1f}} a year compared with earlier",
        zero_template=f"{what} steady",
        concept=concept,
    )


def _count(name: str, kind: K, days: int, what: str, concept: str, **kw: object) -> Count:
    period = PERIODS[days]
    return Count(
        name=name,
        kinds=(kind.value,),
        days=days,
        description=f"number of {what} in the last {period}",
        template=f"{{value:.0f}} {what} in the last {period}",
        zero_template=f"no {what} in the last {period}",
        concept=concept,
        **kw,
    )


HOSPITAL = Family(
    name="hospital",
    lookback_days=730,
    definitions=(
        *(
            _count(
                f"emergency_admissions_{d}d",
                K.EMERGENCY_ADMISSION,
                d,
                "emergency admissions",
                "emergency admissions",
            )
            for d in (30, 90, 365, 730)
        ),
        DaysInStay(
            name="emergency_bed_days_365d",
            kinds=(K.EMERGENCY_ADMISSION.value,),
            days=365,
            description="days in hospital after emergency admissions in the last 12 months",
            template=(
                "{value:.0f} days in hospital after emergency admissions in the last 12 months"
            ),
            zero_template="no days in hospital in the last 12 months",
            concept="emergency admissions",
        ),
        DaysSince(
            name="days_since_emergency_admission",
            kinds=(K.EMERGENCY_ADMISSION.value,),
            days=730,
            default=DAYS_SINCE_CAP,
            description="days since the last emergency admission (730 if none in 2 years)",
            template="last emergency admission {value:.0f} days ago",
            concept="emergency admissions",
        ),
        _count("ae_attendances_90d", K.AE_ATTENDANCE, 90, "A&E attendances", "A&E attendances"),
        _count("ae_attendances_365d", K.AE_ATTENDANCE, 365, "A&E attendances", "A&E attendances"),
        _trend(
            "emergency_admissions_trend",
            K.EMERGENCY_ADMISSION,
            730,
            365,
            "emergency admissions",
            "emergency admissions",
        ),
        _count(
            "elective_admissions_365d",
            K.ELECTIVE_ADMISSION,
            365,
            "planned admissions",
            "planned hospital care",
        ),
        _count(
            "outpatient_attended_365d",
            K.OUTPATIENT,
            365,
            "outpatient appointments attended",
            "planned hospital care",
            codes=("attended",),
        ),
        _count(
            "outpatient_missed_365d",
            K.OUTPATIENT,
            365,
            "missed outpatient appointments",
            "missed appointments",
            codes=("dna",),
        ),
    ),
)

PRIMARY_CARE = Family(
    name="primary_care",
    lookback_days=730,
    definitions=(
        _count("gp_contacts_30d", K.GP_CONTACT, 30, "GP contacts", "GP contacts"),
        _count("gp_contacts_90d", K.GP_CONTACT, 90, "GP contacts", "GP contacts"),
        _count("gp_contacts_365d", K.GP_CONTACT, 365, "GP contacts", "GP contacts"),
        _count("gp_contacts_730d", K.GP_CONTACT, 730, "GP contacts", "GP contacts"),
        _trend("gp_contacts_trend", K.GP_CONTACT, 365, 90, "GP contacts", "GP contacts"),
        _count(
            "gp_home_visits_365d",
            K.GP_CONTACT,
            365,
            "GP home visits",
            "GP contacts",
            codes=("home_visit",),
        ),
    ),
)

CONDITION_FLAGS = Family(
    name="conditions",
    lookback_days=None,
    definitions=(
        *(
            Flag(
                name=f"has_{code}",
                kinds=(K.LTC_DIAGNOSIS.value,),
                codes=(code,),
                description=f"{label} recorded",
                template=f"{label} recorded",
                zero_template=f"no {label} recorded",
                concept=label,
            )
            for code, label in CONDITIONS.items()
        ),
        DistinctCodes(
            name="ltc_count",
            kinds=(K.LTC_DIAGNOSIS.value,),
            description="number of long-term conditions recorded",
            template="{value:.0f} long-term conditions",
            zero_template="no long-term conditions recorded",
            concept="long-term conditions",
        ),
        YearsSinceFirst(
            name="years_since_first_ltc",
            kinds=(K.LTC_DIAGNOSIS.value,),
            description="years since the first long-term condition was recorded (0 if none)",
            template="first long-term condition recorded {value:.0f} years ago",
            zero_template="no long-term condition recorded",
            concept="long-term conditions",
        ),
    ),
)

MEDICINES = Family(
    name="medicines",
    lookback_days=365,
    definitions=(
        DistinctCodes(
            name="drug_classes_90d",
            kinds=(K.PRESCRIPTION.value,),
            days=90,
            description="different drug classes prescribed in the last 3 months",
            template="{value:.0f} different kinds of medicine in the last 3 months",
            zero_template="no medicines in the last 3 months",
            concept="medicines",
        ),
        *(
            Flag(
                name=f"on_{drug}",
                kinds=(K.PRESCRIPTION.value,),
                codes=(drug,),
                days=90,
                description=f"{drug} prescribed in the last 3 months (high-risk medicine)",
                template=f"prescribed {drug} medicine",
                zero_template=f"no {drug} medicine",
                concept="high-risk medicines",
            )
            for drug in HIGH_RISK_DRUGS
        ),
        DistinctCodes(
            name="drug_classes_365d",
            kinds=(K.PRESCRIPTION.value,),
            days=365,
            description="different drug classes prescribed in the last 12 months",
            template="{value:.0f} different kinds of medicine in the last 12 months",
            zero_template="no medicines in the last 12 months",
            concept="medicines",
        ),
    ),
)

CARE = Family(
    name="care",
    lookback_days=None,
    definitions=(
        Flag(
            name="care_home_resident",
            kinds=(K.CARE_HOME_ADMISSION.value,),
            description="admitted to a care home",
            template="lives in a care home",
            zero_template="does not live in a care home",
            concept="care home",
        ),
        ActiveFlag(
            name="social_care_package_active",
            kinds=(K.SOCIAL_CARE_PACKAGE.value,),
            description="a social-care package running on the as-of date",
            template="receives a social-care package",
            zero_template="no social-care package",
            concept="social care",
        ),
        ActiveValue(
            name="social_care_weekly_cost",
            kinds=(K.SOCIAL_CARE_PACKAGE.value,),
            description="weekly cost in GBP of social care running on the as-of date",
            template="social care costing {value:.0f} pounds a week",
            zero_template="no social care cost",
            concept="social care",
            column="cost",
            maximum=100_000.0,
        ),
        _count(
            "social_care_assessments_365d",
            K.SOCIAL_CARE_ASSESSMENT,
            365,
            "social-care assessments",
            "social care",
        ),
        _count(
            "reablement_episodes_365d",
            K.SOCIAL_CARE_PACKAGE,
            365,
            "reablement episodes",
            "reablement",
            codes=("reablement",),
        ),
        _count(
            "care_home_admissions_365d",
            K.CARE_HOME_ADMISSION,
            365,
            "care-home admissions",
            "care home",
        ),
        Flag(
            name="has_carer_coded",
            kinds=(K.SOCIAL_CIRCUMSTANCE.value,),
            codes=("has_carer",),
            description="recorded as having a carer (where known)",
            template="has a carer recorded",
            zero_template="no carer recorded",
            concept="carer",
        ),
        _count(
            "bereavements_365d",
            K.SOCIAL_CIRCUMSTANCE,
            365,
            "bereavements recorded",
            "bereavement",
            codes=("bereavement",),
        ),
        ActiveValue(
            name="social_care_hours_per_week",
            kinds=(K.SOCIAL_CARE_PACKAGE.value,),
            description="hours a week of social care running on the as-of date",
            template="{value:.0f} hours of social care a week",
            zero_template="no social care hours",
            concept="social care",
            maximum=1_000.0,
        ),
        Flag(
            name="lives_alone_coded",
            kinds=(K.SOCIAL_CIRCUMSTANCE.value,),
            codes=("lives_alone",),
            description="recorded as living alone (where known)",
            template="recorded as living alone",
            zero_template="not recorded as living alone",
            concept="living alone",
        ),
    ),
)

COMMUNITY = Family(
    name="community",
    lookback_days=365,
    definitions=(
        _count(
            "community_contacts_365d",
            K.COMMUNITY_CONTACT,
            365,
            "community nursing or therapy contacts",
            "community care",
        ),
        _count(
            "community_contacts_90d",
            K.COMMUNITY_CONTACT,
            90,
            "community nursing or therapy contacts",
            "community care",
        ),
        _count(
            "mental_health_crisis_contacts_365d",
            K.MENTAL_HEALTH_CONTACT,
            365,
            "mental-health crisis contacts",
            "mental health",
            codes=("crisis",),
        ),
        _count(
            "mental_health_contacts_365d",
            K.MENTAL_HEALTH_CONTACT,
            365,
            "mental-health service contacts",
            "mental health",
        ),
        _count(
            "care_coordination_calls_365d",
            K.CARE_COORDINATION_CALL,
            365,
            "calls to the care coordination centre",
            "care coordination calls",
        ),
        _count(
            "social_prescribing_referrals_365d",
            K.SOCIAL_PRESCRIBING_REFERRAL,
            365,
            "social prescribing referrals",
            "social prescribing",
        ),
    ),
)

FAMILIES: tuple[Family, ...] = (HOSPITAL, PRIMARY_CARE, CONDITION_FLAGS, MEDICINES, CARE, COMMUNITY)
# The longest bounded look-back of the model's features: the history an as-of date needs
# before it for every window to be full.
LOOKBACK_DAYS = max(f.lookback_days for f in FAMILIES if f.lookback_days is not None)

# Facts the weekly lists and the social prescribing filter need about a person that the
# model does not use: computed by the same engine and windows, never fed to the model.
LIST_CONTEXT = Family(
    name="list_context",
    lookback_days=730,
    definitions=(
        DaysSinceEnd(
            name="days_since_emergency_discharge",
            kinds=(K.EMERGENCY_ADMISSION.value,),
            days=730,
            default=DAYS_SINCE_CAP,
            description="days since discharge from the last emergency admission that has ended "
            "(730 if none; a stay still running is not a discharge)",
            template="discharged from an emergency admission {value:.0f} days ago",
            concept="emergency admissions",
        ),
        DaysSince(
            name="days_since_social_prescribing_referral",
            kinds=(K.SOCIAL_PRESCRIBING_REFERRAL.value,),
            days=730,
            default=DAYS_SINCE_CAP,
            description="days since the last social prescribing referral (730 if none)",
            template="referred to social prescribing {value:.0f} days ago",
            concept="social prescribing",
        ),
        _count(
            "mental_health_crisis_contacts_90d",
            K.MENTAL_HEALTH_CONTACT,
            90,
            "mental-health crisis contacts",
            "mental health",
            codes=("crisis",),
        ),
        _count(
            "mental_health_contacts_90d",
            K.MENTAL_HEALTH_CONTACT,
            90,
            "mental-health service contacts",
            "mental health",
        ),
    ),
)

# Deficits counted by the frailty index, in the spirit of the electronic Frailty Index (eFI):
# conditions, falls and frailty codes, polypharmacy, and signs of needing help at home.
FRAILTY_DEFICITS: tuple[str, ...] = (
    "has_falls",
    "has_frailty",
    "has_dementia",
    "has_stroke_tia",
    "has_heart_failure",
    "has_copd",
    "has_ckd",
    "has_diabetes",
    "has_parkinsons",
    "has_osteoporosis",
    "has_atrial_fibrillation",
    "has_chd",
    "has_hypertension",
    "has_depression",
    "has_cancer",
    "has_rheumatoid_arthritis",
    "polypharmacy",
    "social_care_package_active",
    "care_home_resident",
    "gp_home_visits_365d",
    "community_contacts_365d",
    "lives_alone_coded",
)


def _frailty_index(table: ir.Table) -> ir.Value:
    present = [ibis.ifelse(table[c] > 0, 1, 0) for c in FRAILTY_DEFICITS]
    return (sum(present[1:], present[0]) / len(FRAILTY_DEFICITS)).cast("float64")


DERIVED: tuple[Derived, ...] = (
    Derived(
        name="polypharmacy",
        inputs=("drug_classes_90d",),
        expression=lambda t: ibis.ifelse(t.drug_classes_90d >= POLYPHARMACY_CLASSES, 1, 0).cast(
            "float64"
        ),
        description=f"{POLYPHARMACY_CLASSES} or more drug classes in the last 3 months",
        template="many medicines (polypharmacy)",
        zero_template="no polypharmacy",
        concept="medicines",
        minimum=0.0,
        maximum=1.0,
    ),
    Derived(
        name="frailty_index",
        inputs=FRAILTY_DEFICITS,
        expression=_frailty_index,
        description=(
            f"share of {len(FRAILTY_DEFICITS)} frailty deficits recorded (eFI-like: about 0.12 "
            "mild, 0.24 moderate, 0.36 severe)"
        ),
        template="frailty index {value:.2f}",
        zero_template="no frailty deficits recorded",
        concept="frailty",
        minimum=0.0,
        maximum=1.0,
    ),
)
