"""The defined lists of the Adult Social Care Client Level Data return, read from
``codes/asc_cld.csv`` (provenance in ``codes/README.md`` and ``docs/sources/asc-cld.md``).

Local authorities spell the list values with varying case, spacing and punctuation
("NFA - 100% NHS-funded care", "nfa 100% NHS funded care"), so values are compared by
their letters and digits only (``key``).
"""

from __future__ import annotations

import re
from functools import cache

import pandas as pd

from riskstrat.contract.schema import ETHNICITY_GROUPS
from riskstrat.sources.ingest.codes import CODES_DIR

FILE = CODES_DIR / "asc_cld.csv"
FIELDS = (
    "event_type",
    "client_type",
    "gender",
    "service_type",
    "delivery_mechanism",
    "cost_frequency",
    "event_outcome",
    "ethnicity",
)
_NOT_ALNUM = re.compile(r"[^0-9a-z]+")
_LETTER_CODE = re.compile(r"^\s*([A-Za-z]|99)\s*(?:[-:]|$)")


def key(text: object) -> str | None:
    """A list value reduced to lower-case letters and digits; None when empty."""
    if text is None or pd.isna(text):
        return None
    flat = _NOT_ALNUM.sub("", str(text).lower())
    return flat or None


@cache
def _lists() -> dict[str, dict[str, str]]:
    rows = pd.read_csv(FILE, dtype="str", keep_default_na=False)
    unknown = set(rows["field"]) - set(FIELDS)
    if unknown:
        raise ValueError(f"{FILE}: unknown fields {sorted(unknown)}; use {FIELDS}")
    groups = set(rows.loc[rows["field"] == "ethnicity", "target"]) - set(ETHNICITY_GROUPS)
    if groups:
        raise ValueError(f"{FILE}: unknown ethnicity groups {sorted(groups)}")
    out: dict[str, dict[str, str]] = {f: {} for f in FIELDS}
    for r in rows.itertuples(index=False):
        out[r.field][key(r.value) or ""] = r.target
    return out


def lookup(field: str, values: pd.Series) -> pd.Series:
    """Each value's target in the field's list: NA where empty or not in the list."""
    table = _lists()[field]
    found = [table.get(key(v) or "") if key(v) else None for v in values]
    return pd.Series(found, index=values.index, dtype="str")


def ethnicity_groups(values: pd.Series) -> pd.Series:
    """The ONS group of each value: an NHS Data Dictionary letter code (``A``, ``A - White
    British``) or the start of the category's name (``Asian or Asian British - Indian``);
    else ``Unknown``."""
    table = _lists()["ethnicity"]
    words = sorted((k for k in table if not _LETTER_CODE.match(k)), key=len, reverse=True)

    def group(text: object) -> str:
        flat = key(text)
        if flat is None:
            return "Unknown"
        letter = _LETTER_CODE.match(str(text))
        if letter and key(letter.group(1)) in table:
            return table[key(letter.group(1)) or ""]
        return next((table[w] for w in words if flat.startswith(w)), "Unknown")

    return pd.Series([group(v) for v in values], index=values.index, dtype="str")
