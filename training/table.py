"""Train from a data scientist's own feature table instead of contract tables.

``riskstrat train --features TABLE.parquet --label COLUMN [--group COLUMN] [--time COLUMN]``:
every other column is a feature. Rows of one ``group`` (a person) never straddle parts.
With ``--time`` (a date column) the test set is the latest date and training uses only rows
whose outcome horizon ends by then (an honest out-of-time test); without it, a share of the
groups is held out instead and the report says the test is not out of time.

Each numeric feature's valid range (which the service checks) is its training range widened
by the range's width on both sides (at least 1), and never below 0 for a column that never
was: the table says nothing of what its columns mean, so only a value far outside anything
seen in training is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd

from riskstrat.common.errors import UserError
from riskstrat.features.spec import FeatureSpec
from riskstrat.models.description import TestDesign
from riskstrat.training.fit import Snapshots
from riskstrat.training.split import held_out

TEST_SHARE_WITHOUT_TIME = 0.2


@dataclass(frozen=True, slots=True)
class TableData:
    train: Snapshots
    test: Snapshots
    specs: tuple[FeatureSpec, ...]
    test_design: TestDesign
    train_times: tuple[date, ...]
    unlabelled: int  # rows left out because their label is empty (censored)


def observed_range(values: pd.Series) -> tuple[float | None, float | None]:
    """The valid range of a numeric column seen in training (see the module's docstring);
    unbounded if it holds no finite value."""
    seen = values.dropna().astype("float64")
    seen = seen[seen.abs() < float("inf")]
    if seen.empty:
        return None, None
    low, high = float(seen.min()), float(seen.max())
    margin = max(high - low, 1.0)
    return (max(low - margin, 0.0) if low >= 0 else low - margin), high + margin


def _specs(frame: pd.DataFrame, columns: list[str]) -> tuple[FeatureSpec, ...]:
    specs = []
    for name in columns:
        values = frame[name]
        if pd.api.types.is_bool_dtype(values) or pd.api.types.is_numeric_dtype(values):
            low, high = observed_range(values)
            specs.append(
                FeatureSpec(
                    name=name,
                    description=name,
                    template=f"{name} {{value:g}}",
                    concept=name,
                    default=None,
                    minimum=low,
                    maximum=high,
                )
            )
        else:
            vocabulary = tuple(sorted(values.dropna().astype(str).unique()))
            specs.append(
                FeatureSpec(
                    name=name,
                    description=name,
                    template=f"{name} {{label}}",
                    concept=name,
                    default=-1,
                    vocabulary=vocabulary,
                )
            )
    return tuple(specs)


def _encode(frame: pd.DataFrame, specs: tuple[FeatureSpec, ...]) -> pd.DataFrame:
    out = {}
    for spec in specs:
        if spec.categorical:
            codes = {v: i for i, v in enumerate(spec.vocabulary)}
            out[spec.name] = frame[spec.name].astype("str").map(codes).fillna(-1).astype("int64")
        else:
            out[spec.name] = frame[spec.name].astype("float64")
    return pd.DataFrame(out, index=frame.index)


def load_table(
    path: Path,
    label: str,
    group: str | None,
    time: str | None,
    *,
    horizon_days: int,
    seed: int,
) -> TableData:
    """Read, check and split the table; raise ``ValueError`` naming the file and column.

    With ``time``, training rows are those whose ``horizon_days`` end by the latest time;
    without, the held-out groups are drawn with ``seed`` (saved in the test design, so that
    promotion rebuilds the same test set)."""
    frame = pd.read_parquet(path)
    for role, column in (("label", label), ("group", group), ("time", time)):
        if column is not None and column not in frame.columns:
            raise UserError(f"{path}: no {role} column '{column}'")
    y = frame[label]
    if not y.dropna().isin([0, 1, True, False]).all():
        raise UserError(f"{path}: label column '{label}' must hold 0/1 (or empty)")
    unlabelled = int(y.isna().sum())
    frame = frame[y.notna()]
    groups = (
        frame[group].astype(str) if group else pd.Series(frame.index.astype(str), index=frame.index)
    )
    times = (
        pd.to_datetime(frame[time], errors="raise")
        if time
        else pd.Series(pd.NaT, index=frame.index)
    )
    features = [c for c in frame.columns if c not in {label, group, time}]
    specs = _specs(frame, features)
    encoded = _encode(frame, specs)
    encoded.index = pd.MultiIndex.from_arrays(
        [groups.to_numpy(), times.dt.date.to_numpy()], names=["patient_id", "as_of"]
    )
    labels = pd.Series(frame[label].astype(float).to_numpy(), index=encoded.index)
    if time:
        latest = times.max()
        test_mask = (times == latest).to_numpy()
        horizon_end = times + pd.Timedelta(days=horizon_days)
        train_mask = (horizon_end <= latest).to_numpy()
        design = TestDesign(kind="out_of_time", as_of=latest.date())
        if not train_mask.any():
            raise UserError(
                f"{path}: no rows end their {horizon_days}-day horizon "
                f"by the latest '{time}' ({latest.date()}): nothing to train on"
            )
    else:
        test_mask = held_out(groups, TEST_SHARE_WITHOUT_TIME, seed)
        train_mask = ~test_mask
        design = TestDesign(
            kind="held_out_groups", held_out_share=TEST_SHARE_WITHOUT_TIME, seed=seed
        )
    train_times = tuple(sorted({t.date() for t in times[train_mask].dropna()}))
    return TableData(
        Snapshots(encoded[train_mask], labels[train_mask]),
        Snapshots(encoded[test_mask], labels[test_mask]),
        specs,
        design,
        train_times,
        unlabelled,
    )
