"""Scoring a week on Spark: the model runs on the executors, next to the features.

The executors apply the week's one scoring code path (``serving.weekly.scoring``) to each
partition with ``mapInPandas``: the model bundle travels inside the function (the booster
pickles as its model text). What comes back to the driver:

- for everyone, the narrow ``person_rows``: risk, the flags and the few feature columns the
  week's files and drift check show (``people.parquet`` has a row per person, so the driver
  needs one; the model's other inputs never leave the executors);
- for the explained people only (everyone listed and the top ``explain_share``), their
  reasons, from a second pass over just those people (who they are depends on everyone's
  risk, so it cannot be decided within a partition).

The features are persisted (memory, then disk) between the two passes so that they are
computed once.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pandas as pd

from models.bundle import ModelBundle
from serving.weekly.config import WeeklyConfig
from serving.weekly.flags import COLUMNS as FLAG_COLUMNS
from serving.weekly.scoring import (
    KEY,
    REASON_COLUMNS,
    RISK,
    in_order,
    kept_features,
    person_rows,
    reason_table,
)

if TYPE_CHECKING:
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
