"""Scoring a week on Spark: the model runs on the executors, next to the features.

The executors apply the week's one scoring code path (``serving.weekly.scoring``) to each
partition with ``mapInPandas``: the model bundle travels inside the function (the booster
pickles as its model text). What comes back to the driver:

- for everyone, the narrow ``person_rows``: risk, the flags and the few feature columns the
  week's files and drift check show (``people.parquet`` has a row per person, so the driver
  needs one; the model's other inputs never leave the executors); and, when the week has a
  second model (potentially avoidable admissions), its risk from a pass of its own;
- for the explained people only (everyone listed and the top ``explain_share``), their
  reasons, from a second pass over just those people (who they are depends on everyone's
  risk, so it cannot be decided within a partition).

The features are persisted (memory, then disk) between the two passes so that they are
computed once.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import pyarrow as pa

from riskstrat.common.progress import Progress
from riskstrat.contract.engines import Engine
from riskstrat.contract.tables import AS_OF_TABLE, ContractTables
from riskstrat.features.catalogue import DERIVED, FAMILIES, LIST_CONTEXT
from riskstrat.features.engine import cohort_context, feature_expression, feature_specs
from riskstrat.features.spec import FeatureSpec
from riskstrat.models.benefit import BenefitModel, benefit_column, expected_prevented
from riskstrat.models.bundle import ModelBundle
from riskstrat.serving.weekly.config import WeeklyConfig
from riskstrat.serving.weekly.flags import COLUMNS as FLAG_COLUMNS
from riskstrat.serving.weekly.scoring import (
    KEY,
    REASON_COLUMNS,
    RISK,
    in_order,
    kept_features,
    person_rows,
    reason_table,
)

if TYPE_CHECKING:
    from pyspark.sql import Column
    from pyspark.sql import DataFrame as SparkFrame
    from pyspark.sql.types import StructType

_PANDAS_TYPES = {"string": "str", "double": "float64", "bigint": "int64", "boolean": "bool"}


def _schema(fields: list[tuple[str, str]]) -> StructType:
    from pyspark.sql.types import StructType, _parse_datatype_string

    schema = StructType()
    for name, kind in fields:
        schema.add(name, _parse_datatype_string(kind))
    return schema


def _collect(frame: SparkFrame, fields: list[tuple[str, str]]) -> pd.DataFrame:
    """The frame on the driver with the dtypes pandas gives the same columns locally."""
    collected = frame.toPandas()
    return collected.astype({name: _PANDAS_TYPES[kind] for name, kind in fields})


class SparkScorer:
    """Scores a Spark DataFrame of model-ready features (a ``patient_id`` column and the
    bundle's feature columns, as ``features.engine`` makes them) on the executors."""

    def __init__(self, features: SparkFrame, bundle: ModelBundle, config: WeeklyConfig) -> None:
        from pyspark import StorageLevel

        missing = [c for c in (KEY, *bundle.feature_names) if c not in features.columns]
        if missing:
            raise ValueError(f"Spark features lack column(s): {', '.join(missing)}")
        context = features.sparkSession.sparkContext
        if "PYSPARK_PYTHON" not in os.environ and context.master.startswith("local"):
            context.pythonExec = sys.executable  # local workers score with this environment
        self.features = features.persist(StorageLevel.MEMORY_AND_DISK)
        self.bundle, self.config = bundle, config

    def _type(self, column: str) -> str:
        return self.features.schema[column].dataType.simpleString()

    def rows(self) -> pd.DataFrame:
        bundle, config = self.bundle, self.config
        kept = kept_features(bundle, self.features.columns)
        fields = [
            (KEY, "string"),
            *((c, self._type(c)) for c in kept),
            (RISK, "double"),
            *((c, "boolean") for c in FLAG_COLUMNS[:-1]),
            (FLAG_COLUMNS[-1], "string"),
        ]
        names = [name for name, _ in fields]

        def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
            for batch in batches:
                rows = person_rows(batch.set_index(KEY), bundle, config)
                yield rows.reset_index()[names]

        scored = self.features.mapInPandas(score, _schema(fields))
        return _collect(scored, fields).set_index(KEY)

    def risk(self, bundle: ModelBundle) -> pd.Series:
        missing = [c for c in bundle.feature_names if c not in self.features.columns]
        if missing:
            raise ValueError(f"Spark features lack column(s): {', '.join(missing)}")
        fields = [(KEY, "string"), (RISK, "double")]

        def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
            for batch in batches:
                yield pd.DataFrame({KEY: batch[KEY], RISK: bundle.predict(batch.set_index(KEY))})

        scored = self.features.mapInPandas(score, _schema(fields))
        return _collect(scored, fields).set_index(KEY)[RISK]

    def benefit(self, model: BenefitModel) -> pd.DataFrame:
        missing = [c for c in model.features if c not in self.features.columns]
        if missing:
            raise ValueError(f"Spark features lack column(s): {', '.join(missing)}")
        fields = [(KEY, "string"), *((benefit_column(k), "double") for k in model.kinds)]

        def estimate(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
            for batch in batches:
                yield expected_prevented(model, batch.set_index(KEY)).reset_index()

        scored = self.features.mapInPandas(estimate, _schema(fields))
        return _collect(scored, fields).set_index(KEY)

    def reasons(self, explained: pd.Index) -> pd.DataFrame:
        """The last pass: the persisted features are released after it."""
        bundle, kept = self.bundle, self.config.reasons_kept
        if len(explained) == 0:
            self.features.unpersist()
            empty = pd.DataFrame(columns=bundle.feature_names, dtype="float64")
            return reason_table(bundle, empty, kept)
        from pyspark.sql.functions import broadcast

        fields = list(
            zip(
                REASON_COLUMNS,
                ("string", "bigint", "string", "string", "double", "double", "string"),
                strict=True,
            )
        )

        def explain(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
            for batch in batches:
                yield reason_table(bundle, batch.set_index(KEY), kept)

        session = self.features.sparkSession
        people = session.createDataFrame(pd.DataFrame({KEY: explained.astype("str")}))
        chosen = self.features.join(broadcast(people), KEY)
        found = _collect(chosen.mapInPandas(explain, _schema(fields)), fields)
        self.features.unpersist()
        return in_order(found, explained)


def _model_ready(spec: FeatureSpec) -> Column:
    """A feature column as ``features.engine.build_features`` gives it: a categorical as its
    code in the spec's vocabulary (-1 outside it), anything else as a double."""
    from pyspark.sql import functions as fn

    if not spec.categorical:
        return fn.col(spec.name).cast("double").alias(spec.name)
    codes = fn.create_map(*(fn.lit(x) for i, v in enumerate(spec.vocabulary) for x in (v, i)))
    return fn.coalesce(codes[fn.col(spec.name)], fn.lit(-1)).cast("bigint").alias(spec.name)


def spark_inputs(
    data_dir: Path,
    as_of: date,
    bundle: ModelBundle,
    config: WeeklyConfig,
    say: Progress,
    engine: Engine,
) -> tuple[pd.DataFrame, SparkScorer]:
    """The week on Spark: the cohort context collected (a handful of columns a person), the
    features left on the executors for ``SparkScorer``."""
    sources = ContractTables.from_dir(data_dir, engine)
    families = (*FAMILIES, LIST_CONTEXT)
    context = cohort_context(sources, [as_of]).droplevel("as_of")
    sql = engine.compile(sources.backend, feature_expression(families, DERIVED))
    dates = pa.table({"as_of": pa.array([as_of], pa.date32())})
    engine.attach_arrow(sources.backend, AS_OF_TABLE, dates)
    session = sources.backend._session  # Ibis's PySpark backend: the tables' session
    specs = feature_specs(families, DERIVED)
    features = session.sql(sql).select(KEY, *(_model_ready(s) for s in specs))
    say(f"features of {len(context):,} people stay on Spark for scoring")
    return context, SparkScorer(features, bundle, config)
