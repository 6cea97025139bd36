"""Parity: Spark computes exactly what DuckDB computes, on the same contract tables.

Every feature column (the model's and the weekly lists' extra ones), every label (both
outcomes), the cohort context and people's timelines, at two as-of dates: on a small
synthetic borough, on hand-made edge cases, and on the public OMOP and Synthea samples after
ingest. Floats may differ only in summation order (within 1e-9); everything else is equal.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest
from ingest_support import OMOP, SYNTHEA, key_file, run

from riskstrat.cli import main
from riskstrat.common.settings import SettingsError
from riskstrat.contract.engines import DuckDBEngine, Engine, EngineSettings, make_engine
from riskstrat.contract.schema import EventKind as K
from riskstrat.contract.tables import ContractTables
from riskstrat.contract.validation import validate_dir
from riskstrat.features.catalogue import FAMILIES, LIST_CONTEXT
from riskstrat.features.engine import build_features, cohort_context, feature_expression
from riskstrat.features.labels import Outcome, build_labels
from riskstrat.features.timeline import patient_timeline
from riskstrat.sources.synthetic.borough import generate, write
from riskstrat.sources.synthetic.config import SynthConfig

AS_OF = (date(2024, 3, 1), date(2025, 1, 1))
OUTCOMES = (
    Outcome(),
    Outcome(horizon_days=90, include_death=True),
    Outcome(admissions="avoidable"),
)


def _both(duckdb: ContractTables, spark: ContractTables, compute) -> pd.DataFrame:
    """``compute`` on each engine; the frames must be equal (floats within 1e-9)."""
    expected, actual = compute(duckdb), compute(spark)
    pd.testing.assert_frame_equal(expected, actual, check_exact=False, rtol=0, atol=1e-9)
    return expected


def assert_same_everything(
    duckdb: ContractTables, spark: ContractTables, as_of: tuple[date, ...]
) -> pd.DataFrame:
    """Features (with the list context), labels and cohort context agree; the features."""
    features = _both(
        duckdb, spark, lambda s: build_features(s, as_of, families=(*FAMILIES, LIST_CONTEXT))
    )
    for outcome in OUTCOMES:
        labels = _both(duckdb, spark, lambda s, o=outcome: build_labels(s, as_of, o))
        assert labels.index.equals(features.index)
    _both(duckdb, spark, lambda s: cohort_context(s, as_of))
    return features


def _on_both(folder: Path, spark_engine: Engine) -> tuple[ContractTables, ContractTables]:
    return ContractTables.from_dir(folder), ContractTables.from_dir(folder, spark_engine)


@pytest.fixture(scope="module")
def borough_2000(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("borough-2000")
    write(generate(SynthConfig(patients=2_000, seed=11, truth_as_of=(AS_OF[1],))), folder / "raw")
    validate_dir(folder / "raw", folder / "validated", date(2026, 10, 31))
    return folder / "validated"


def test_a_small_borough_gives_equal_features_labels_and_context(
    borough_2000: Path, spark_engine: Engine
) -> None:
    duckdb, spark = _on_both(borough_2000, spark_engine)
    features = assert_same_everything(duckdb, spark, AS_OF)
    # The cases parity must cover are in this borough: people with no events in a look-back,
    # episodes still running, events on the as-of dates themselves.
    events = pd.read_parquet(borough_2000 / "events.parquet")
    starts = pd.to_datetime(events["start"]).dt.date
    assert (features["gp_contacts_730d"] == 0).any() and (features["ltc_count"] == 0).any()
    assert (features["social_care_package_active"] == 1).any()
    assert events["end"].isna().any() and starts.isin(AS_OF).sum() > 10
    for person in features.index.get_level_values("patient_id")[:2]:
        _both(duckdb, spark, lambda s, p=person: patient_timeline(s, p, AS_OF[1], months=24))
    assert duckdb.last_event_date() == spark.last_event_date()


def _edge_cases() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Five people: no events at all, an admission on the as-of date, a stay running over
    it, an open-ended care package, and one who left before the horizon ended."""
    as_of = AS_OF[1]
    ids = ["none", "on_the_day", "in_hospital", "open_package", "left"]
    patients = pd.DataFrame(
        {
            "patient_id": ids,
            "birth_month": [date(1940, 5, 1)] * 5,
            "sex": ["F", "M", "F", "M", "F"],
            "practice_id": ["Z1"] * 5,
            "deprivation_decile": pd.array([1, None, 3, 4, 10], dtype="Int8"),
            "ethnicity_group": ["White", None, "Asian", "Black", "Other"],
            "registration_start": [date(2010, 1, 1)] * 5,
            "registration_end": [None, None, None, None, as_of + timedelta(days=30)],
            "death_date": [None] * 5,
        }
    )

    def event(who: str, kind: K, start: date, end: date | None = None, **more: object) -> dict:
        return {"patient_id": who, "kind": kind.value, "start": start, "end": end} | {
            "code_system": "riskstrat",
            "code": more.get("code"),
            "value": more.get("value"),
            "cost": more.get("cost"),
        }

    day = timedelta(days=1)
    events = pd.DataFrame(
        [
            event("on_the_day", K.EMERGENCY_ADMISSION, as_of, as_of + 3 * day),
            event("on_the_day", K.GP_CONTACT, as_of - day, code="surgery"),
            event("in_hospital", K.EMERGENCY_ADMISSION, as_of - 5 * day, as_of + 2 * day),
            event("in_hospital", K.LTC_DIAGNOSIS, date(2015, 1, 1), code="copd"),
            event(
                "open_package",
                K.SOCIAL_CARE_PACKAGE,
                as_of - 400 * day,
                code="reablement",
                value=10.5,
                cost=231.25,
            ),
            event("left", K.EMERGENCY_ADMISSION, as_of + 10 * day, as_of + 12 * day),
        ]
    )
    practices = pd.DataFrame(
        {"practice_id": ["Z1"], "practice_name": ["One"], "gp_cluster": ["C"], "locality": ["L"]}
    )
    return patients, events, practices


def test_edge_cases_and_an_empty_event_table_agree(spark_engine: Engine) -> None:
    patients, events, practices = _edge_cases()
    duckdb = ContractTables.from_frames(patients, events, practices)
    spark = ContractTables.from_frames(patients, events, practices, spark_engine)
    features = assert_same_everything(duckdb, spark, AS_OF)
    row = features.loc[("in_hospital", AS_OF[1])]
    assert row["emergency_bed_days_365d"] == 5 and row["days_since_emergency_discharge"] == 730
    assert features.loc[("open_package", AS_OF[1]), "social_care_weekly_cost"] == 231.25
    assert features.loc[("on_the_day", AS_OF[1]), "emergency_admissions_730d"] == 0
    labels = build_labels(spark, AS_OF, Outcome())
    assert labels.loc[("on_the_day", AS_OF[1]), "label"] == 1
    assert labels.loc[("left", AS_OF[1]), "status"] == "left_area"
    no_events = (
        ContractTables.from_frames(patients, events.iloc[:0], practices),
        ContractTables.from_frames(patients, events.iloc[:0], practices, spark_engine),
    )
    empty = _both(*no_events, lambda s: build_features(s, AS_OF))
    assert len(empty) == 2 * len(patients) and (empty["emergency_admissions_730d"] == 0).all()
    _both(*no_events, lambda s: build_labels(s, AS_OF, Outcome()))


@pytest.mark.slow
@pytest.mark.parametrize(("source", "path"), [("omop", OMOP), ("synthea", SYNTHEA)])
def test_the_public_samples_after_ingest_agree(
    source: str, path: Path, tmp_path: Path, spark_engine: Engine
) -> None:
    out = run(source, path, tmp_path / "ingested", key_file(tmp_path / "keys")).out
    patients = pd.read_parquet(out / "patients.parquet")
    # Two dates most people were registered on: the median end of registration and a year
    # before it (or, with nobody's registration ended, the extract's last year).
    ends = pd.to_datetime(patients["registration_end"]).dropna()
    last = ends.median().date() if len(ends) else date(2023, 10, 16)
    as_of = (last - timedelta(days=365), last)
    duckdb, spark = _on_both(out, spark_engine)
    features = assert_same_everything(duckdb, spark, as_of)
    assert len(features) >= 5
    assert features.index.get_level_values("as_of").nunique() == 2


def test_the_features_command_on_spark_writes_what_duckdb_computes(
    borough_2000: Path, spark_engine: Engine, tmp_path: Path
) -> None:
    out = tmp_path / "features.parquet"
    argv = ["features", "--data", str(borough_2000), "--as-of", AS_OF[1].isoformat()]
    main([*argv, "--out", str(out), "--engine", "spark"])
    written = pd.read_parquet(out)
    written["as_of"] = pd.to_datetime(written["as_of"]).dt.date
    expected = build_features(ContractTables.from_dir(borough_2000), [AS_OF[1]]).reset_index()
    pd.testing.assert_frame_equal(expected, written, check_exact=False, rtol=0, atol=1e-9)


def test_engine_settings_read_from_toml_and_refuse_an_unknown_engine(tmp_path: Path) -> None:
    good = tmp_path / "good.toml"
    good.write_text('[engine]\nname = "spark"\n[engine.spark]\nshuffle_partitions = 4\n')
    settings = EngineSettings.from_toml(good)
    assert (settings.name, settings.spark.options()["spark.sql.shuffle.partitions"]) == (
        "spark",
        "4",
    )
    assert isinstance(make_engine(EngineSettings()), DuckDBEngine)
    bad = tmp_path / "bad.toml"
    bad.write_text('[engine]\nname = "postgres"\n')
    with pytest.raises(SettingsError, match=r"bad.toml: \[engine\] name: "):
        EngineSettings.from_toml(bad)


def test_spark_counts_days_between_dates_without_timestamps(spark_engine: Engine) -> None:
    """Every day difference in Spark's feature query is the two-argument DATEDIFF on the
    dates: the three-argument form is ``timestampdiff``, a time-zone conversion per event.
    The parity tests above check the days are equal."""
    backend = spark_engine.connect()
    sql = spark_engine.compile(backend, feature_expression(), keep=False)
    spark_engine.close(backend)
    assert sql.count("DATEDIFF(") >= 3
    assert "DATEDIFF(DAY" not in sql and "TIMESTAMPDIFF" not in sql.upper()
