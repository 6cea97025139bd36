"""The GP extract's code lists: SNOMED CT concepts to conditions, social circumstances and eFI
deficits, and consultation types to GP contact codes.

Each list is an OpenCodelists-format file (``code,term``) under ``codes/gp/``; the manifest
``codes/gp/lists.toml`` says what each list maps to and where it came from (source, version,
licence; see ``codes/gp/SOURCES.md``). A concept may sit in several lists (a "lives alone"
code is a social circumstance and an eFI social-vulnerability deficit): it maps to all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from typing import Literal

import pandas as pd

from riskstrat.common.settings import load_table, settings_model
from riskstrat.contract.schema import EventKind
from riskstrat.features.catalogue import CONDITIONS
from riskstrat.sources.ingest import codes
from riskstrat.sources.ingest.codes import CODES_DIR

GP_DIR = CODES_DIR / "gp"
MANIFEST = GP_DIR / "lists.toml"
FRAILTY_DEFICIT = "frailty_deficit"
ETHNICITY = "ethnicity"
# The NHS ethnic category (16+1: A-S, Z not stated) to the ONS 5 groups (Chinese is Asian).
ETHNIC_CATEGORY = {
    **dict.fromkeys("ABC", "White"),
    **dict.fromkeys("DEFG", "Mixed"),
    **dict.fromkeys("HJKLR", "Asian"),
    **dict.fromkeys("MNP", "Black"),
    "S": "Other",
    "Z": "Unknown",
}
# OpenSAFELY's SNOMED ethnicity list: Grouping_6 (1-5) to the ONS 5 groups; Grouping_16 15
# (Chinese) sits in group 5 there and in Asian here.
SNOMED_GROUP_6 = {"1": "White", "2": "Mixed", "3": "Asian", "4": "Black", "5": "Other"}
CHINESE_16 = "15"
CONTACT_CODES = ("face_to_face", "telephone", "home_visit", "none")


@settings_model
class CodeList:
    """One list of the manifest: its file, what its codes map to, and its provenance."""

    file: str
    kind: Literal["ltc_diagnosis", "social_circumstance", "frailty_deficit", "ethnicity"]
    target: str
    source: str
    version: str
    licence: str
    url: str = ""


@settings_model
class Manifest:
    lists: tuple[CodeList, ...]


@dataclass(frozen=True, slots=True)
class Target:
    """What a code maps to: an event kind (or ``frailty_deficit``) and its contract code."""

    kind: str
    code: str


@cache
def manifest() -> Manifest:
    """The manifest, checked: every file present in OpenCodelists format, every catalogue
    condition covered, condition targets known to the catalogue."""
    lists = load_table(MANIFEST, "", Manifest)
    for entry in lists.lists:
        path = GP_DIR / entry.file
        if not path.is_file():
            raise ValueError(f"{MANIFEST}: {entry.file} not found")
        if entry.kind == EventKind.LTC_DIAGNOSIS.value and entry.target not in CONDITIONS:
            raise ValueError(f"{MANIFEST}: {entry.file}: {entry.target} is not a condition")
    covered = {e.target for e in lists.lists if e.kind == EventKind.LTC_DIAGNOSIS.value}
    if missing := set(CONDITIONS) - covered:
        raise ValueError(f"{MANIFEST}: no list for the conditions {sorted(missing)}")
    return lists


def read_list(entry: CodeList) -> pd.DataFrame:
    """One list's ``code`` and ``term`` columns as text."""
    path = GP_DIR / entry.file
    frame = pd.read_csv(path, dtype="str", keep_default_na=False)
    if list(frame.columns[:2]) != ["code", "term"]:
        raise ValueError(f"{path}: not in OpenCodelists format (columns code,term)")
    return frame


@cache
def _targets() -> dict[str, tuple[Target, ...]]:
    found: dict[str, list[Target]] = {}
    for entry in manifest().lists:
        if entry.kind == ETHNICITY:
            continue
        for code in read_list(entry)["code"].str.strip():
            found.setdefault(code, []).append(Target(entry.kind, entry.target))
    return {code: tuple(dict.fromkeys(targets)) for code, targets in found.items()}


def targets(code: str | None) -> tuple[Target, ...]:
    """Everything a SNOMED CT concept id maps to; empty when it is in no list."""
    if not isinstance(code, str):
        return ()
    return _targets().get(code.strip(), ())


@cache
def _snomed_ethnicity() -> dict[str, str]:
    entry = next(e for e in manifest().lists if e.kind == ETHNICITY)
    rows = pd.read_csv(GP_DIR / entry.file, dtype="str", keep_default_na=False)
    group = rows["Grouping_6"].map(SNOMED_GROUP_6).mask(rows["Grouping_16"] == CHINESE_16, "Asian")
    return dict(zip(rows["code"].str.strip(), group.fillna("Unknown"), strict=True))


def ethnicity_group(value: str | None) -> str:
    """The ONS 5-group of a SNOMED CT ethnicity concept or an NHS ethnic category letter
    (``A``..``S``, ``Z``), else of words in the text (``codes.ethnicity_group``), else Unknown."""
    if not isinstance(value, str) or not value.strip():
        return "Unknown"
    flat = value.strip()
    if flat.upper() in ETHNIC_CATEGORY:
        return ETHNIC_CATEGORY[flat.upper()]
    if flat in _snomed_ethnicity():
        return _snomed_ethnicity()[flat]
    return codes.ethnicity_group(None, flat)


@cache
def efi_deficits() -> tuple[str, ...]:
    """The eFI deficits with a code list (35: polypharmacy, the 36th, comes from medicines)."""
    return tuple(sorted({e.target for e in manifest().lists if e.kind == FRAILTY_DEFICIT}))


@cache
def _consultation_patterns() -> tuple[tuple[str, str], ...]:
    rows = pd.read_csv(GP_DIR / "consultation_types.csv", dtype="str", keep_default_na=False)
    if unknown := set(rows["code"]) - set(CONTACT_CODES):
        raise ValueError(f"{GP_DIR / 'consultation_types.csv'}: unknown codes {unknown}")
    return tuple(zip(rows["pattern"].str.lower(), rows["code"], strict=True))


@cache
def contact_code(text: str | None) -> str | None:
    """The GP contact code of a consultation or appointment type (first pattern found in
    the text, in file order), ``none`` for a record that is not a contact, else None."""
    if not isinstance(text, str):
        return None
    lowered = re.sub(r"[_\s]+", " ", text.lower())
    for pattern, code in _consultation_patterns():
        if re.search(r"\b" + re.escape(pattern) + r"\b", lowered):
            return code
    return None
