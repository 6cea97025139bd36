"""Which snapshots the fit learns from: the one rule, and the weights that undo it.

Every positive snapshot of a training as-of date is kept, and each negative one with
probability ``negative_fraction`` (``[train.rows]``), drawn per (patient, as-of date) by a
keyed hash of the seed, so the same data and seed keep the same rows on any engine. A kept
negative carries the weight 1 / ``negative_fraction``: it stands for itself and the negatives
left out, so the weighted rows have the population's outcome rate and every weighted fit
(LightGBM, early stopping's loss, Platt scaling) estimates what it would on every row. The
features of the rows left out never leave the engine. The test rows are never sampled.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from riskstrat.common.settings import settings_model


@settings_model
class RowSampling:
    """The share of negative snapshots training keeps (``[train.rows]``); 1 keeps all.

    Measured on the built-in borough (docs/figures.md): a quarter of the negatives gives the
    same out-of-time AUROC and calibration as all of them, in a third of the memory.
    """

    negative_fraction: float = Field(0.25, gt=0, le=1)


@dataclass(frozen=True, slots=True)
class ChosenRows:
    """The training snapshots kept by ``RowSampling`` and their weights, by (patient, as-of)."""

    weights: pd.Series  # indexed like the features, 1 or 1 / negative_fraction
    labelled: int  # labelled snapshots of the training dates before sampling

    @property
    def keys(self) -> pa.Table:
        """The kept rows as an Arrow table of ``patient_id`` and ``as_of``, for the engine."""
        index = self.weights.index
        return pa.table(
            {
                "patient_id": pa.array(index.get_level_values("patient_id"), pa.string()),
                "as_of": pa.array(index.get_level_values("as_of"), pa.date32()),
            }
        )


HASHED_AT_ONCE = 1 << 16  # keys turned into Python strings at a time, to be hashed


def uniform(index: pd.MultiIndex, seed: int) -> np.ndarray:
    """A number in [0, 1) per (patient, as-of date) row from a keyed hash of the seed: the
    same row and seed, the same number, whatever else is in the data.

    The hash is pandas' keyed hash of the text ``"<patient_id>|<as_of>"``; the keys are
    made in Arrow from the index's levels and hashed a slice at a time, so that millions of
    rows never become millions of Python strings at once."""
    keys = pc.binary_join_element_wise(
        _level(index, "patient_id", pa.string()),
        pc.cast(_level(index, "as_of", pa.date32()), pa.string()),
        "|",
    )
    key = f"rows:{seed}".encode().ljust(16, b"\0")[:16].decode("latin-1")
    drawn = np.empty(len(keys))
    for start in range(0, len(keys), HASHED_AT_ONCE):
        text = keys.slice(start, HASHED_AT_ONCE).to_numpy(zero_copy_only=False)
        hashed = pd.util.hash_array(text, hash_key=key, categorize=False)
        drawn[start : start + len(text)] = hashed / 2.0**64
    return drawn


def _level(index: pd.MultiIndex, name: str, kind: pa.DataType) -> pa.Array:
    """One level of ``index`` row by row, as Arrow (from its distinct values and codes)."""
    at = index.names.index(name)
    return pa.array(index.levels[at], kind).take(pa.array(index.codes[at]))


def unweighted_share(index: pd.MultiIndex, sampling: RowSampling, seed: int) -> np.ndarray:
    """Per row of the kept ones: whether it is in the uniform share ``negative_fraction`` of
    all labelled snapshots (the rows whose draw kept them whatever their label). Profiles
    that must describe the population, not the oversampled positives (the drift reference),
    are taken on these."""
    return uniform(index, seed) < sampling.negative_fraction


def choose_rows(
    labels: pd.Series, as_of_dates: Iterable[date], sampling: RowSampling, seed: int
) -> ChosenRows:
    """The snapshots of ``as_of_dates`` with an observed label (``labels``: 1, 0 or NaN by
    (patient, as-of date)) that the fit learns from, with their weights."""
    on_dates = labels.index.get_level_values("as_of").isin(list(as_of_dates))
    known = labels[on_dates & labels.notna().to_numpy()]
    fraction = sampling.negative_fraction
    positive = (known == 1).to_numpy()
    kept = positive | (uniform(known.index, seed) < fraction)
    weights = np.where(positive[kept], 1.0, 1.0 / fraction)
    return ChosenRows(pd.Series(weights, index=known.index[kept], name="weight"), len(known))
