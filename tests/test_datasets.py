"""The datasets a training run logs to MLflow: the same record as MLflow's own reading."""

from __future__ import annotations

import warnings
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mlflow.data.pandas_dataset import from_pandas

from riskstrat.training.datasets import snapshot_dataset


def _snapshots(rows: int) -> pd.DataFrame:
    """Features as training logs them: float32 numbers with gaps, integer codes, a label."""
    rng = np.random.default_rng(7)
    index = pd.MultiIndex.from_arrays(
        [[f"p{i}" for i in range(rows)], [date(2024, 1, 1)] * rows], names=["patient_id", "as_of"]
    )
    gappy = rng.normal(size=rows).astype("float32")
    gappy[::3] = np.nan
    return pd.DataFrame(
        {
            "age": rng.integers(18, 99, rows).astype("float32"),
            "days_since_admission": gappy,
            "sex": rng.integers(0, 2, rows).astype("int8"),
            "practice": rng.integers(-1, 30, rows),
            "label": rng.integers(0, 2, rows).astype("float64"),
        },
        index=index,
    )


@pytest.mark.parametrize("rows", [5, 12_000])  # fewer and more rows than MLflow's digest reads
def test_a_frame_of_numbers_gets_the_record_mlflow_would_make(tmp_path: Path, rows: int) -> None:
    frame = _snapshots(rows)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLflow's hint about integer columns
        expected = from_pandas(frame, source=str(tmp_path), name="training snapshots").to_dict()
        actual = snapshot_dataset(frame, str(tmp_path), "training snapshots").to_dict()
    assert expected == actual
    assert '"required": false' in actual["schema"]  # the gappy column


def test_a_frame_with_text_is_read_by_mlflow_itself(tmp_path: Path) -> None:
    frame = _snapshots(5).assign(area=["N", "S", "N", None, "S"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = from_pandas(frame, source=str(tmp_path), name="test snapshots").to_dict()
        actual = snapshot_dataset(frame, str(tmp_path), "test snapshots").to_dict()
    assert expected == actual
