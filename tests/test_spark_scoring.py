"""The weekly run scored on Spark's executors writes the same bytes as scored in pandas."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from pyspark.sql import SparkSession

from riskstrat.common.progress import QUIET, Progress
from riskstrat.contract.engines import Engine, SparkEngine, spark_session
from riskstrat.models.benefit import BenefitModel
from riskstrat.models.bundle import ModelBundle
from riskstrat.models.registry import RegisteredBundle
from riskstrat.serving.weekly.config import WeeklyConfig
from riskstrat.serving.weekly.run import WeekInputs, local_inputs, weekly_run
from riskstrat.serving.weekly.scoring import LocalScorer, Scorer
from riskstrat.serving.weekly.spark_scoring import SparkScorer

LAST_WEEK, WEEK = date(2026, 10, 19), date(2026, 10, 26)


@pytest.fixture(scope="session")
def spark(spark_engine: SparkEngine) -> SparkSession:
    return spark_session(spark_engine.settings)


def _on_spark(spark: SparkSession) -> WeekInputs:
    """Features built as the default run builds them, then handed to Spark in three
    partitions, so that scoring (not feature building) is what differs."""

    def inputs(
        data_dir: Path, as_of: date, bundle: ModelBundle, config: WeeklyConfig, say: Progress
    ) -> tuple[pd.DataFrame, Scorer]:
        context, local = local_inputs(data_dir, as_of, bundle, config, say)
        assert isinstance(local, LocalScorer)
        frame = spark.createDataFrame(local.features.reset_index()).repartition(3)
        return context, SparkScorer(frame, bundle, config)

    return inputs


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_spark_scoring_writes_the_same_weeks(
    validated: Path, champion: RegisteredBundle, spark: SparkSession, tmp_path: Path
) -> None:
    weeks = {}
    for name, inputs in (("local", local_inputs), ("spark", _on_spark(spark))):
        for week in (LAST_WEEK, WEEK):  # the second week has rising risk and people who left
            result = weekly_run(validated, week, champion, tmp_path / name, inputs=inputs)
        weeks[name] = result
    local, on_spark = weeks["local"], weeks["spark"]
    assert local.manifest["counts"]["left"] > 0 and local.manifest["counts"]["by_tier"]["rising"]
    assert _files(local.folder) == _files(on_spark.folder)
    assert on_spark.manifest == local.manifest


def test_only_the_narrow_rows_and_the_explained_come_back(
    validated: Path, champion: RegisteredBundle, spark: SparkSession
) -> None:
    bundle, config = champion.bundle, WeeklyConfig()
    context, scorer = _on_spark(spark)(validated, WEEK, bundle, config, QUIET)
    rows = scorer.rows()
    assert len(rows) == len(context)
    assert len(rows.columns) < len(bundle.feature_names) / 2
    explained = rows.sort_values("risk").index[-5:]
    reasons = scorer.reasons(explained)
    assert list(dict.fromkeys(reasons["patient_id"])) == list(explained)
    assert reasons.groupby("patient_id")["position"].max().max() <= config.reasons_kept


def test_the_second_model_is_scored_on_the_executors_as_in_pandas(
    validated: Path,
    champion: RegisteredBundle,
    avoidable_champion: RegisteredBundle,
    spark: SparkSession,
) -> None:
    bundle, config = champion.bundle, WeeklyConfig()
    _, local = local_inputs(validated, WEEK, bundle, config, QUIET)
    _, on_spark = _on_spark(spark)(validated, WEEK, bundle, config, QUIET)
    second = avoidable_champion.bundle
    expected = local.risk(second)
    pd.testing.assert_series_equal(on_spark.risk(second).reindex(expected.index), expected)


def test_the_benefit_is_estimated_on_the_executors_as_in_pandas(
    validated: Path, champion: RegisteredBundle, benefit_file: Path, spark: SparkSession
) -> None:
    bundle, config = champion.bundle, WeeklyConfig()
    _, local = local_inputs(validated, WEEK, bundle, config, QUIET)
    _, on_spark = _on_spark(spark)(validated, WEEK, bundle, config, QUIET)
    model = BenefitModel.load(benefit_file)
    expected = local.benefit(model)
    assert expected.notna().all().all()
    pd.testing.assert_frame_equal(on_spark.benefit(model).reindex(expected.index), expected)


def test_features_without_a_model_column_are_refused(
    validated: Path, champion: RegisteredBundle, spark: SparkSession
) -> None:
    bundle = champion.bundle
    frame = spark.createDataFrame(pd.DataFrame({"patient_id": ["a"], "age": [70.0]}))
    with pytest.raises(ValueError, match=r"Spark features lack column.*sex"):
        SparkScorer(frame, bundle, WeeklyConfig())


def test_the_spark_engine_writes_the_same_week_as_duckdb(
    validated: Path, champion: RegisteredBundle, spark_engine: Engine, tmp_path: Path
) -> None:
    duckdb = weekly_run(validated, WEEK, champion, tmp_path / "duckdb")
    on_spark = weekly_run(validated, WEEK, champion, tmp_path / "spark", engine=spark_engine)
    assert _files(duckdb.folder) == _files(on_spark.folder)
