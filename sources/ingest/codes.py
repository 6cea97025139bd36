"""Code mappings kept as data (``codes/*.csv``, provenance in ``codes/README.md``).

Conditions: SNOMED CT (exact) and ICD-10 (prefix) to the catalogue's condition codes.
Drugs: ATC and BNF prefixes, else ingredient names in the drug's name, to drug classes.
Care settings: OMOP visit concepts and Synthea encounter classes. Ethnicity groups.
"""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pandas as pd

from riskstrat.contract.schema import ETHNICITY_GROUPS, EventKind
from riskstrat.features.catalogue import CONDITIONS, HIGH_RISK_DRUGS

CODES_DIR = Path(__file__).parent / "codes"
SNOMED, ICD10, ATC, BNF, RXNORM = "SNOMED", "ICD10", "ATC", "BNF", "RxNorm"
SETTINGS = (
    "inpatient",
    "emergency",
    "er_inpatient",
    "urgentcare",
    "outpatient",
    "gp",
    "virtual",
    "home",
    "hospice",
    "snf",
    "long_term_care",
    "none",
)


def _read(name: str) -> pd.DataFrame:
    return pd.read_csv(CODES_DIR / name, dtype="str", keep_default_na=False)


def normalise_system(text: str | None) -> str | None:
    """``SNOMED-CT``, ``http://snomed.info/sct``, ``ICD-10-CM``, ``RxNorm``... to one spelling."""
    if text is None or pd.isna(text):
        return None
    flat = re.sub(r"[^a-z0-9]", "", str(text).lower())
    if "snomed" in flat or flat.endswith("sct"):
        return SNOMED
    if flat.startswith("icd10"):
        return ICD10
    if flat.startswith("rxnorm"):
        return RXNORM
    if flat.startswith("atc"):
        return ATC
    if flat.startswith("bnf"):
        return BNF
    return str(text)


def guess_system(code: str | None) -> str | None:
    """The vocabulary a bare condition code most likely comes from (for source values)."""
    if code is None or pd.isna(code):
        return None
    flat = str(code).replace(".", "").strip().upper()
    if re.fullmatch(r"[A-Z]\d{2}[0-9A-Z]{0,4}", flat):
        return ICD10
    if re.fullmatch(r"\d{6,18}", flat):
        return SNOMED
    return None


@cache
def _condition_rows() -> tuple[dict[str, tuple[tuple[str, str], ...]], dict[str, tuple]]:
    rows = _read("conditions.csv")
    unknown = set(rows.loc[rows["kind"] == EventKind.LTC_DIAGNOSIS.value, "target"]) - set(
        CONDITIONS
    )
    if unknown:
        raise ValueError(f"{CODES_DIR / 'conditions.csv'}: not catalogue conditions: {unknown}")
    exact: dict[str, list[tuple[str, str]]] = {}
    prefix: dict[str, list[tuple[str, str]]] = {}
    for r in rows.itertuples(index=False):
        table = exact if r.match == "exact" else prefix
        key = f"{r.code_system}:{r.code.replace('.', '').upper()}"
        table.setdefault(key, []).append((r.kind, r.target))
    return (
        {k: tuple(v) for k, v in exact.items()},
        {k: tuple(v) for k, v in prefix.items()},
    )


@cache
def condition_targets(system: str | None, code: str | None) -> tuple[tuple[str, str], ...]:
    """(event kind, contract code) pairs a condition code maps to; empty when unmapped.

    Cached: OMOP rows offer up to three candidate codes each, asked row by row."""
    if system is None or code is None or pd.isna(system) or pd.isna(code):
        return ()
    exact, prefix = _condition_rows()
    flat = str(code).replace(".", "").strip().upper()
    found = list(exact.get(f"{system}:{flat}", ()))
    for end in range(1, len(flat) + 1):
        found.extend(prefix.get(f"{system}:{flat[:end]}", ()))
    return tuple(dict.fromkeys(found))


@cache
def _drug_rows() -> tuple[re.Pattern[str], dict[str, tuple[str, ...]], dict[str, dict[str, str]]]:
    rows = _read("drug_classes.csv")
    missing = set(HIGH_RISK_DRUGS) - set(rows["drug_class"])
    if missing:
        raise ValueError(f"{CODES_DIR / 'drug_classes.csv'}: no rows for {missing}")
    names: dict[str, list[str]] = {}
    prefixes: dict[str, dict[str, str]] = {ATC: {}, BNF: {}}
    for r in rows.itertuples(index=False):
        if r.match == "ingredient":
            names.setdefault(r.pattern.lower(), []).append(r.drug_class)
        else:
            prefixes[r.match.upper()][r.pattern.upper()] = r.drug_class
    alternatives = sorted(names, key=len, reverse=True)
    pattern = re.compile(r"\b(" + "|".join(re.escape(n) for n in alternatives) + r")\b")
    return pattern, {k: tuple(v) for k, v in names.items()}, prefixes


def drug_classes(system: str | None, code: str | None, name: str | None) -> tuple[str, ...]:
    """Drug classes of one drug: by ATC/BNF code prefix (longest wins), else by ingredients."""
    pattern, by_name, prefixes = _drug_rows()
    if system in (ATC, BNF) and isinstance(code, str):
        flat = code.replace(" ", "").upper()
        for end in range(len(flat), 0, -1):
            found = prefixes[system].get(flat[:end])
            if found:
                return (found,)
    if not isinstance(name, str):
        return ()
    classes = [c for m in pattern.findall(name.lower()) for c in by_name[m]]
    return tuple(dict.fromkeys(classes))


def omop_visit_settings() -> dict[str, str]:
    return _settings("omop_visits.csv", "visit_concept_id")


def synthea_settings() -> dict[str, str]:
    return _settings("synthea_encounters.csv", "encounterclass")


@cache
def _settings(name: str, key: str) -> dict[str, str]:
    """A code file's ``key`` -> ``setting``, each setting checked."""
    rows = _read(name)
    _check_settings(rows["setting"], name)
    return dict(zip(rows[key], rows["setting"], strict=True))


def _check_settings(values: pd.Series, name: str) -> None:
    unknown = set(values) - set(SETTINGS)
    if unknown:
        raise ValueError(f"{CODES_DIR / name}: unknown settings {unknown}; use {SETTINGS}")


@cache
def _ethnicity_rows() -> tuple[dict[str, str], tuple[tuple[str, str], ...]]:
    rows = _read("ethnicity.csv")
    unknown = set(rows["group"]) - set(ETHNICITY_GROUPS)
    if unknown:
        raise ValueError(f"{CODES_DIR / 'ethnicity.csv'}: unknown groups {unknown}")
    concepts = rows[rows["match"] == "omop_race"]
    words = rows[rows["match"] == "text"]
    return (
        dict(zip(concepts["value"], concepts["group"], strict=True)),
        tuple(zip(words["value"], words["group"], strict=True)),
    )


def ethnicity_group(concept: str | None, *texts: str | None) -> str:
    """The contract's ethnicity group from an OMOP race concept or free text, else Unknown."""
    by_concept, by_word = _ethnicity_rows()
    if isinstance(concept, str) and by_concept.get(concept, "Unknown") != "Unknown":
        return by_concept[concept]
    for text in texts:
        if isinstance(text, str):
            lowered = text.lower()
            for word, group in by_word:
                if re.search(r"\b" + re.escape(word) + r"\b", lowered):
                    return group
    return "Unknown"
