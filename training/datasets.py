"""The record MLflow keeps of a training run's datasets, made a column at a time.

``mlflow.data.from_pandas`` visits every cell in Python, twice: ``df.map(type)`` for the
digest and a NaN test per value for the schema's ``required`` flags. That took 38 s of a
265,000-person training run (its training and test rows) and grows with the rows. For a
frame of numbers (what training logs: the model's features and the label) the same digest
and schema come from column operations. Imported only where a run is logged: importing
MLflow takes about a second.
"""

from __future__ import annotations

from functools import cached_property

import numpy as np
import pandas as pd
from mlflow.data.dataset_source_registry import resolve_dataset_source
from mlflow.data.digest_utils import MAX_ROWS, get_normalized_md5_digest
from mlflow.data.pandas_dataset import PandasDataset, from_pandas
from mlflow.models import infer_signature
from mlflow.types import ColSpec, Schema


class _NumberDataset(PandasDataset):
    """A frame of numbers with MLflow's digest and schema, computed by column."""

    def _compute_digest(self) -> str:
        # MLflow's rule: the first MAX_ROWS rows of the string and number columns (here all
        # of them), the row count and the column names.
        return get_normalized_md5_digest(
            [
                pd.util.hash_pandas_object(self._df.head(MAX_ROWS)).values,
                np.int64(len(self._df)),
            ]
            + [str(x).encode() for x in self._df.columns]
        )

    @cached_property
    def schema(self) -> Schema:
        typed = infer_signature(self._df.head(0)).inputs  # the column types, no values
        missing = self._df.isna().any()
        return Schema(
            [ColSpec(type=c.type, name=c.name, required=not missing[c.name]) for c in typed.inputs]
        )


def snapshot_dataset(frame: pd.DataFrame, source: str, name: str) -> PandasDataset:
    """The dataset MLflow logs for ``frame`` (digest, schema, row count); a frame with any
    column that is not a number is left to MLflow's own cell-by-cell reading."""
    if not all(pd.api.types.is_numeric_dtype(dtype) for dtype in frame.dtypes):
        return from_pandas(frame, source=source, name=name)
    return _NumberDataset(df=frame, source=resolve_dataset_source(source), name=name)
