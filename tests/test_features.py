"""Feature engine on hand-made tables: windows, defaults, cohort, and no look into the future."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import ibis.expr.types as ir
import pandas as pd
import pytest
from contract_frames import patients_frame
from hypothesis import given
from hypothesis import strategies as st

from riskstrat.contract.schema import EventKind
from riskstrat.contract.tables import AS_OF_TABLE, ContractTables, unbound
from riskstrat.features.catalogue import DAYS_SINCE_CAP, FAMILIES, LIST_CONTEXT
from riskstrat.features.definitions import Count, DistinctCodes, Family
from riskstrat.features.engine import (
    build_features,
    cohort,
    feature_expression,
    feature_specs,
    feature_sql,
    kind_reach,
)
from riskstrat.features.timeline import KIND_LABELS, patient_timeline
from riskstrat.features.window import cut

AS_OF = date(2024, 1, 1)


def _patients(**overrides: list) -> pd.DataFrame:
    base = {
        "patient_id": ["a", "b"],
        "birth_month": [date(1940, 6, 1), date(1990, 1, 1)],
        "sex": ["F", "M"],
        "practice_id": ["Z1", "Z1"],
        "deprivation_decile": [2, 9],
        "ethnicity_group": ["White", "Martian"],
        "registration_start": [date(2000, 1, 1), date(2000, 1, 1)],
        "registration_end": [None, None],
        "death_date": [None, None],
    }
    return pd.DataFrame(base | overrides).astype({"deprivation_decile": "Int8"})


PRACTICES = pd.DataFrame(
    {"practice_id": ["Z1"], "practice_name": ["One"], "gp_cluster": ["C"], "locality": ["North"]}
)


def _events(rows: list[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["patient_id", "kind", "start", "end", "code", "value"])
    return frame.assign(code_system="riskstrat", cost=None)


def features_of(
    rows: list[tuple], patients: pd.DataFrame | None = None, as_of: tuple[date, ...] = (AS_OF,)
) -> pd.DataFrame:
    sources = ContractTables.from_frames(
        _patients() if patients is None else patients, _events(rows), PRACTICES
    )
    return build_features(sources, as_of)


def before(days: int) -> date:
    return AS_OF - timedelta(days=days)


def test_an_event_on_the_as_of_date_is_excluded() -> None:
    out = features_of([("a", "emergency_admission", AS_OF, AS_OF, None, None)])
    assert out.loc[("a", AS_OF), "emergency_admissions_365d"] == 0


def test_window_far_edge_is_included_and_one_day_more_is_not() -> None:
    rows = [
        ("a", "gp_contact", before(365), None, "telephone", None),
        ("a", "gp_contact", before(366), None, "telephone", None),
        ("a", "gp_contact", before(1), None, "telephone", None),
    ]
    out = features_of(rows)
    assert out.loc[("a", AS_OF), "gp_contacts_365d"] == 2
    assert out.loc[("a", AS_OF), "gp_contacts_90d"] == 1


def test_no_events_gives_the_declared_defaults() -> None:
    out = features_of([("a", "gp_contact", before(3), None, "telephone", None)])
    row = out.loc[("b", AS_OF)]
    for spec in feature_specs()[4:]:
        assert row[spec.name] == spec.default, spec.name
    assert row["days_since_emergency_admission"] == DAYS_SINCE_CAP


def test_person_columns_and_codes() -> None:
    out = features_of([])
    assert out.loc[("a", AS_OF), "age"] == (AS_OF - date(1940, 6, 1)).days / 365.25
    assert out.loc[("a", AS_OF), "sex"] == 0 and out.loc[("b", AS_OF), "sex"] == 1
    assert out.loc[("b", AS_OF), "ethnicity_group"] == -1  # not in the vocabulary
    assert all(pd.api.types.is_numeric_dtype(t) for t in out.dtypes)


def test_stays_are_counted_only_up_to_the_as_of_date() -> None:
    rows = [
        ("a", "emergency_admission", before(10), before(4), None, 6.0),
        ("a", "emergency_admission", before(2), AS_OF + timedelta(days=20), None, 22.0),
    ]
    out = features_of(rows)
    assert out.loc[("a", AS_OF), "emergency_bed_days_365d"] == 6 + 2
    assert out.loc[("a", AS_OF), "days_since_emergency_admission"] == 2


def test_cohort_is_everyone_registered_and_alive_on_the_date() -> None:
    patients = _patients(
        patient_id=["a", "b"],
        registration_end=[before(1), None],
        death_date=[None, AS_OF],
    )
    out = features_of([], patients)
    assert list(out.index) == [("b", AS_OF)]


def test_several_as_of_dates_give_one_row_per_person_and_date() -> None:
    later = date(2024, 7, 1)
    out = features_of(
        [("a", "gp_contact", date(2024, 3, 1), None, "telephone", None)], as_of=(later, AS_OF)
    )
    assert list(out.index) == [("a", AS_OF), ("b", AS_OF), ("a", later), ("b", later)]
    assert out.loc[("a", AS_OF), "gp_contacts_365d"] == 0
    assert out.loc[("a", later), "gp_contacts_365d"] == 1


KINDS = [
    "gp_contact",
    "emergency_admission",
    "ae_attendance",
    "ltc_diagnosis",
    "prescription",
    "social_care_package",
    "care_home_admission",
    "outpatient",
]
event = st.tuples(
    st.sampled_from(["a", "b"]),
    st.sampled_from(KINDS),
    st.integers(-800, 400),
    st.integers(0, 30),
    st.sampled_from(["heart_failure", "attended", "dna", "opioid", None]),
)


def _rows(spec: list[tuple]) -> list[tuple]:
    return [
        (p, k, AS_OF + timedelta(days=d), AS_OF + timedelta(days=d + n), c, float(n))
        for p, k, d, n, c in spec
    ]


@given(
    past=st.lists(event.filter(lambda e: e[2] < 0), max_size=12),
    future=st.lists(event.filter(lambda e: e[2] >= 0), min_size=1, max_size=6),
)
@pytest.mark.slow
def test_events_on_or_after_the_as_of_date_never_change_features(past: list, future: list) -> None:
    without = features_of(_rows(past))
    with_future = features_of(_rows(past + future))
    pd.testing.assert_frame_equal(without, with_future)


@given(rows=st.lists(event, max_size=12), seed=st.integers(0, 1000))
@pytest.mark.slow
def test_shuffling_input_rows_changes_nothing(rows: list, seed: int) -> None:
    events = _rows(rows)
    shuffled = pd.DataFrame(events).sample(frac=1.0, random_state=seed)
    pd.testing.assert_frame_equal(
        features_of(events), features_of(list(shuffled.itertuples(index=False, name=None)))
    )


def test_timeline_lists_recent_events_in_order_with_readable_labels() -> None:
    rows = [
        ("a", "emergency_admission", before(40), before(34), None, None),
        ("a", "outpatient", before(20), None, "dna", None),
        ("a", "gp_contact", before(400), None, "telephone", None),
        ("a", "gp_contact", AS_OF, None, "telephone", None),
        ("b", "gp_contact", before(5), None, "telephone", None),
    ]
    sources = ContractTables.from_frames(_patients(), _events(rows), PRACTICES)
    timeline = patient_timeline(sources, "a", AS_OF, months=12)
    assert timeline.to_dict("records") == [
        {
            "date": before(40),
            "kind": "emergency_admission",
            "event": "Emergency admission",
            "detail": "6 days in hospital",
        },
        {
            "date": before(20),
            "kind": "outpatient",
            "event": "Outpatient appointment",
            "detail": "did not attend",
        },
    ]
    with pytest.raises(KeyError, match="'nobody' is not in the patients table"):
        patient_timeline(sources, "nobody", AS_OF)


def test_trend_compares_recent_use_with_the_persons_earlier_use() -> None:
    rows = [("a", "gp_contact", before(d), None, "telephone", None) for d in (10, 20, 30, 200)]
    out = features_of(rows)
    # 3 contacts in the last 90 days (12.2 a year) against 1 in the 275 days before (1.3).
    assert out.loc[("a", AS_OF), "gp_contacts_trend"] == 3 * 365 / 90 - 1 * 365 / 275
    assert out.loc[("b", AS_OF), "gp_contacts_trend"] == 0


def test_medicines_polypharmacy_and_frailty_index() -> None:
    drugs = ["opioid", "statin", "diuretic", "insulin", "antidepressant"]
    rows = [("a", "prescription", before(30), before(-54), d, 3.0) for d in drugs]
    rows += [
        ("a", "ltc_diagnosis", before(3000), None, "heart_failure", None),
        ("b", "prescription", before(30), before(-54), "statin", 3.0),
    ]
    out = features_of(rows)
    a, b = out.loc[("a", AS_OF)], out.loc[("b", AS_OF)]
    assert (a["drug_classes_90d"], a["on_opioid"], a["on_insulin"], a["polypharmacy"]) == (
        5,
        1,
        1,
        1,
    )
    assert (b["drug_classes_90d"], b["on_opioid"], b["polypharmacy"]) == (1, 0, 0)
    assert a["frailty_index"] == pytest.approx(2 / 22)  # heart failure and polypharmacy
    assert a["years_since_first_ltc"] == pytest.approx(3000 / 365.25)
    assert b["frailty_index"] == 0


def test_social_care_running_on_the_as_of_date() -> None:
    rows = [
        ("a", "social_care_package", before(100), None, "home_care", 10.0),
        ("a", "social_care_package", before(300), before(200), "home_care", 5.0),
        ("b", "social_care_package", before(50), before(8), "reablement", 12.0),
    ]
    events = _events(rows)
    events["cost"] = [240.0, 120.0, 360.0]
    sources = ContractTables.from_frames(_patients(), events, PRACTICES)
    out = build_features(sources, [AS_OF])
    a, b = out.loc[("a", AS_OF)], out.loc[("b", AS_OF)]
    assert (a["social_care_package_active"], a["social_care_hours_per_week"]) == (1, 10)
    assert a["social_care_weekly_cost"] == 240
    assert (b["social_care_package_active"], b["reablement_episodes_365d"]) == (0, 1)


def list_context_of(rows: list[tuple], patients: pd.DataFrame | None = None) -> pd.DataFrame:
    sources = ContractTables.from_frames(
        _patients() if patients is None else patients, _events(rows), PRACTICES
    )
    return build_features(sources, [AS_OF], families=(LIST_CONTEXT,), derived=())


def test_a_person_still_in_hospital_has_not_been_discharged() -> None:
    rows = [
        ("a", "emergency_admission", before(5), None, "emergency", None),  # still in
        ("b", "emergency_admission", before(40), before(30), "emergency", 10.0),
        ("b", "emergency_admission", before(3), AS_OF, "emergency", None),  # leaves today
    ]
    patients = _patients(
        patient_id=["a", "b", "c"],
        birth_month=[date(1940, 6, 1)] * 3,
        sex=["F", "M", "F"],
        practice_id=["Z1"] * 3,
        deprivation_decile=[2, 9, 5],
        ethnicity_group=["White"] * 3,
        registration_start=[date(2000, 1, 1)] * 3,
        registration_end=[None] * 3,
        death_date=[None] * 3,
    )
    rows.append(("c", "emergency_admission", before(9), before(2), "emergency", 7.0))
    days = list_context_of(rows, patients)["days_since_emergency_discharge"]
    # a: in hospital, never discharged; b: the last stay that ended; c: discharged 2 days ago
    assert days.tolist() == [DAYS_SINCE_CAP, 30.0, 2.0]


registration = st.tuples(
    st.integers(-3000, 10),  # registration start, days from the as-of date
    st.one_of(st.none(), st.integers(-20, 20)),  # registration end
    st.one_of(st.none(), st.integers(-20, 20)),  # death
)


@given(people=st.lists(registration, min_size=1, max_size=8))
@pytest.mark.slow
def test_output_index_is_exactly_the_cohort(people: list) -> None:
    def day(offset: int | None) -> date | None:
        return None if offset is None else AS_OF + timedelta(days=offset)

    ids = [f"p{i}" for i in range(len(people))]
    patients = patients_frame(
        ids,
        registration_start=[day(s) for s, _, _ in people],
        registration_end=[day(e) for _, e, _ in people],
        death_date=[day(d) for _, _, d in people],
    )
    expected = [
        (pid, AS_OF)
        for pid, (s, e, d) in zip(ids, people, strict=True)
        if s <= 0 and (e is None or e >= 0) and (d is None or d >= 0)
    ]
    assert list(features_of([], patients).index) == sorted(expected)


@pytest.mark.parametrize("dialect", ["mssql", "databricks", "postgres"])
def test_the_same_definitions_compile_for_warehouse_engines(dialect: str) -> None:
    sql = feature_sql(dialect=dialect)
    assert "emergency_admissions_365d" in sql and "frailty_index" in sql


def test_community_mental_health_and_coordination_contacts() -> None:
    rows = [
        ("a", "mental_health_contact", before(10), None, "crisis", None),
        ("a", "mental_health_contact", before(100), None, "community_team", None),
        ("a", "care_coordination_call", before(400), None, "call", None),
        ("a", "community_contact", before(60), None, "district_nursing", None),
        ("b", "social_prescribing_referral", before(200), None, "link_worker", None),
    ]
    out = features_of(rows)
    a, b = out.loc[("a", AS_OF)], out.loc[("b", AS_OF)]
    assert (a["mental_health_contacts_365d"], a["mental_health_crisis_contacts_365d"]) == (2, 1)
    assert (a["care_coordination_calls_365d"], a["community_contacts_90d"]) == (0, 1)
    assert b["social_prescribing_referrals_365d"] == 1


def test_every_event_kind_has_a_readable_name_in_the_timeline() -> None:
    assert set(KIND_LABELS) == set(EventKind)


def _one_join_per_family(families: tuple[Family, ...]) -> ir.Table:
    """The features the plain way: each family's own window, aggregated and joined apart
    (DISTINCT for distinct codes), then the declared defaults."""
    as_of = unbound(AS_OF_TABLE)
    events = unbound("events")
    result = cohort().select("patient_id", "as_of")
    for family in families:
        window = cut(events, as_of, dict.fromkeys(family.kinds, family.lookback_days))
        columns = {
            d.name: window.code.nunique(where=d.matches(window)).cast("float64")
            if isinstance(d, DistinctCodes)
            else d.aggregate(window)
            for d in family.definitions
        }
        aggregated = window.group_by(["patient_id", "as_of"]).aggregate(**columns)
        result = result.left_join(aggregated, ["patient_id", "as_of"]).drop(
            "patient_id_right", "as_of_right"
        )
        result = result.mutate(
            **{d.name: result[d.name].fill_null(d.default) for d in family.definitions}
        )
    return result


def test_one_pass_gives_exactly_what_one_join_per_family_gives(validated: Path) -> None:
    families = (*FAMILIES, LIST_CONTEXT)
    names = [d.name for f in families for d in f.definitions]
    dates = [date(2023, 3, 1), date(2025, 1, 1)]
    with ContractTables.from_dir(validated) as sources:
        one_pass = sources.run(feature_expression(families, ()), dates, keep=False)
        per_family = sources.run(_one_join_per_family(families), dates, keep=False)
    key = ["as_of", "patient_id"]
    expected = per_family.sort_values(key).reset_index(drop=True)[key + names]
    actual = one_pass.sort_values(key).reset_index(drop=True)[key + names]
    assert len(actual) > 10_000
    pd.testing.assert_frame_equal(expected, actual, check_exact=True)


def test_each_kind_is_read_as_far_back_as_its_longest_reading_family() -> None:
    def family(name: str, lookback: int | None, *kinds: str) -> Family:
        definitions = tuple(
            Count(
                name=f"{name}_{k}",
                kinds=(k,),
                days=lookback,
                description="",
                template="",
                concept="",
            )
            for k in kinds
        )
        return Family(name=name, lookback_days=lookback, definitions=definitions)

    families = [
        family("short", 365, "gp_contact", "prescription", "outpatient"),
        family("long", 730, "gp_contact"),
        family("ever", None, "prescription", "ltc_diagnosis"),
    ]
    assert kind_reach(families) == {
        "gp_contact": 730,
        "prescription": None,
        "outpatient": 365,
        "ltc_diagnosis": None,
    }
    assert kind_reach(families[:1]) == dict.fromkeys(
        ("gp_contact", "prescription", "outpatient"), 365
    )


def test_an_old_condition_counts_where_an_old_contact_does_not() -> None:
    rows = [
        ("a", "ltc_diagnosis", before(3000), None, "copd", None),
        ("a", "gp_contact", before(3000), None, "telephone", None),
        ("a", "prescription", before(400), None, "opioid", None),
    ]
    out = features_of(rows).loc[("a", AS_OF)]
    assert out["has_copd"] == 1 and out["ltc_count"] == 1
    assert out["gp_contacts_730d"] == 0 and out["drug_classes_365d"] == 0


def test_events_are_read_twice_whatever_the_number_of_families() -> None:
    """Once for every family's aggregates, once for the distinct codes."""
    fewer, more = feature_sql(FAMILIES), feature_sql((*FAMILIES, LIST_CONTEXT))
    assert fewer.count('"events"') == more.count('"events"') == 2
    assert fewer.count("JOIN") == more.count("JOIN")
