"""Potentially avoidable (ambulatory-care-sensitive) emergency admissions, by primary diagnosis.

An emergency admission is potentially avoidable when its primary diagnosis is a condition
usually managed in the community, as NHS outcome indicators count them (NHS Outcomes
Framework 2.3.i chronic and 3a acute ambulatory-care-sensitive conditions, after Bardsley et
al. 2013). The list is of ICD-10 code prefixes: a code matches when, without its dot, it
starts with one of them. The generator draws admission causes from this list and the
evaluation counts them with it: one list, both sides.
"""

from __future__ import annotations

import re

import ibis.expr.types as ir
import numpy as np
import pandas as pd

ICD10 = "ICD10"

CHRONIC: dict[str, tuple[str, ...]] = {
    "angina and coronary heart disease": ("I20", "I25"),
    "asthma": ("J45", "J46"),
    "atrial fibrillation and flutter": ("I48",),
    "chronic obstructive pulmonary disease": ("J41", "J42", "J43", "J44", "J47"),
    "congestive heart failure": ("I50", "I110", "I130", "J81"),
    "dementia": ("F00", "F01", "F02", "F03"),
    "diabetes complications": ("E10", "E11", "E12", "E13", "E14"),
    "epilepsy and convulsions": ("G40", "G41", "R56"),
    "hypertension": ("I10", "I119"),
    "iron-deficiency anaemia": ("D501", "D508", "D509"),
}
ACUTE: dict[str, tuple[str, ...]] = {
    "cellulitis": ("L03", "L04", "L080", "L88", "L980"),
    "dehydration and gastroenteritis": ("E86", "K522", "K528", "K529"),
    "ear, nose and throat infections": ("H66", "H67", "J02", "J03", "J06", "J312"),
    "influenza and pneumonia": (
        "J10",
        "J11",
        "J13",
        "J14",
        "J153",
        "J154",
        "J157",
        "J159",
        "J181",
        "J188",
    ),
    "urinary tract infection and pyelonephritis": ("N10", "N11", "N12", "N136", "N390"),
}
PREFIXES: tuple[str, ...] = tuple(
    sorted({p for group in (CHRONIC, ACUTE) for prefixes in group.values() for p in prefixes})
)
_PATTERN = re.compile("^(" + "|".join(PREFIXES) + ")")


def normalise(code: str) -> str:
    """ICD-10 as written in most extracts (``J44.1``, ``j441 ``) to the bare form ``J441``."""
    return code.strip().upper().replace(".", "")


def is_potentially_avoidable(code: str | None) -> bool:
    """Whether an ICD-10 primary diagnosis is ambulatory-care-sensitive."""
    return bool(code) and _PATTERN.match(normalise(code)) is not None


def is_potentially_avoidable_expr(
    code: ir.StringColumn, system: ir.StringColumn
) -> ir.BooleanColumn:
    """The same test as an engine expression (DuckDB and Spark alike): the normalised code's
    first characters, one ``isin`` per prefix length, so no regular expression is compiled."""
    bare = code.strip().upper().replace(".", "")
    lengths = sorted({len(p) for p in PREFIXES})
    matches = [bare.substr(0, n).isin([p for p in PREFIXES if len(p) == n]) for n in lengths]
    found = matches[0]
    for match in matches[1:]:
        found |= match
    return (system == ICD10) & code.notnull() & found


def potentially_avoidable(codes: pd.Series, systems: pd.Series) -> np.ndarray:
    """The same test over columns of codes and their code systems (only ICD-10 counts)."""
    icd10 = (systems.fillna("") == ICD10).to_numpy(dtype=bool)
    return icd10 & codes.map(is_potentially_avoidable, na_action="ignore").fillna(False).to_numpy(
        dtype=bool
    )
