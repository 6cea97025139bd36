"""Split by patient, never by row: all of a person's snapshots fall in one part."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

TRAIN, VALIDATION, CALIBRATION = "train", "validation", "calibration"


def patient_parts(
    patient_ids: pd.Index | pd.Series, validation_share: float, calibration_share: float, seed: int
) -> pd.Series:
    """The part of each patient id, stable for a given seed whatever else is in the data."""
    unique = pd.Index(pd.unique(np.asarray(patient_ids)))
    u = _uniform(unique, str(seed))
    part = np.where(
        u < validation_share,
        VALIDATION,
        np.where(u < validation_share + calibration_share, CALIBRATION, TRAIN),
    )
    return pd.Series(part, index=unique, name="part")


def held_out(patient_ids: pd.Index | pd.Series, share: float, seed: int) -> np.ndarray:
    """Per row: whether its patient is among the ``share`` held out (stable by seed)."""
    ids = np.asarray(patient_ids)
    unique = pd.Index(pd.unique(ids))
    chosen = pd.Series(_uniform(unique, str(seed)) < share, index=unique)
    return chosen.reindex(ids).to_numpy()


def patient_folds(patient_ids: pd.Index | pd.Series, folds: int, seed: int) -> np.ndarray:
    """Per row: its patient's fold in ``0 .. folds - 1`` (stable by seed, near-equal sizes).

    Drawn with its own salt, so folds are independent of the parts of ``patient_parts``.
    """
    ids = np.asarray(patient_ids)
    unique = pd.Index(pd.unique(ids))
    fold = pd.Series((_uniform(unique, f"folds:{seed}") * folds).astype(int), index=unique)
    return fold.reindex(ids).to_numpy()


def _uniform(ids: pd.Index, salt: str) -> np.ndarray:
    """A number in [0, 1) per id from a keyed hash: the same id and salt, the same number."""
    key = salt.encode()
    return (
        np.array(
            [int.from_bytes(hashlib.blake2b(key + p.encode(), digest_size=8).digest()) for p in ids]
        )
        / 2.0**64
    )
