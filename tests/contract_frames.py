"""Hand-made contract tables for unit tests."""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd


def patients_frame(ids: list[str], **columns: Any) -> pd.DataFrame:
    """A patients table of ``ids``: women born in January 1950 at practice Z1, registered since
    2000, alive and still registered; ``columns`` replace any column (a list, or one value)."""
    n = len(ids)
    base: dict[str, Any] = {
        "patient_id": ids,
        "birth_month": [date(1950, 1, 1)] * n,
        "sex": ["F"] * n,
        "practice_id": ["Z1"] * n,
        "deprivation_decile": pd.array([5] * n, dtype="Int8"),
        "ethnicity_group": ["White"] * n,
        "registration_start": [date(2000, 1, 1)] * n,
        "registration_end": [None] * n,
        "death_date": [None] * n,
    }
    return pd.DataFrame(base | columns)
