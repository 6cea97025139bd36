"""A hand-made weekly output (two weeks, two localities, a few dozen people) and the contract
tables behind it, so the web tests do not depend on the weekly run or a trained model."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from riskstrat.contract.record import write_record
from riskstrat.contract.schema import EVENTS, PATIENTS, PRACTICES
from riskstrat.models.registry import RegisteredBundle
from riskstrat.serving.weekly.config import WeeklyConfig
from riskstrat.serving.weekly.referrals import frequent_gp
from riskstrat.serving.weekly.run import weekly_run

WEEK = date(2026, 10, 26)
PREVIOUS = WEEK - timedelta(days=7)
PRACTICES_BY_LOCALITY = {
    "North": [("N81001", "Hillside Surgery", "North A"), ("N81002", "Ridge Medical", "North B")],
    "South": [("S82001", "Riverside Practice", "South A"), ("S82002", None, "South A")],
}
FLAG_NAMES = (
    "care_home",
    "frailty",
    "lives_alone",
    "mental_health",
    "social_care_package",
    "recent_discharge",
)
FLAG_LABELS = {
    "care_home": "care-home resident",
    "frailty": "frailty",
    "lives_alone": "lives alone",
    "mental_health": "mental-health needs",
    "social_care_package": "social-care package",
    "recent_discharge": "recent hospital discharge",
}
PATHWAYS = ("integrated reablement plan", "social prescribing", "care coordination", "none")
SENTENCES = (
    ("admissions", "emergency_admissions_365d", "{v:.0f} emergency admissions in 12 months"),
    ("frailty", "frailty_index", "frailty index {v:.2f}"),
    ("gp", "gp_contacts_365d", "{v:.0f} GP contacts in the last 12 months"),
    ("age", "age", "aged {v:.0f}"),
    ("isolation", "lives_alone_coded", "recorded as living alone"),
    ("ae", "ae_attendances_365d", "{v:.0f} A&E attendances in the last 12 months"),
)


def _people(as_of: date, n: int, seed: int) -> pd.DataFrame:
    """``n`` people split between North and South; two thirds are on the list."""
    rng = np.random.default_rng(seed)
    rows = []
    practices = [(loc, *p) for loc, ps in PRACTICES_BY_LOCALITY.items() for p in ps]
    for i in range(n):
        locality, practice_id, practice_name, cluster = practices[i % len(practices)]
        age = int(rng.integers(19, 96)) if i != 3 else 16
        rows.append(
            {
                "patient_id": f"pt{i:04d}",
                "practice_id": practice_id,
                "practice_name": practice_name,
                "gp_cluster": cluster,
                "locality": locality,
                "age": age,
                "age_band": f"{age // 10 * 10}-{age // 10 * 10 + 9}",
                "sex": "F" if i % 2 else "M",
                "risk": float(rng.uniform(0.02, 0.9)),
                "gp_contacts_365d": float(rng.integers(0, 30)),
                "flags_bits": rng.random(len(FLAG_NAMES)) < 0.3,
            }
        )
    people = pd.DataFrame(rows).sort_values("risk", ascending=False, ignore_index=True)
    people["rank"] = np.arange(1, n + 1, dtype="int64")
    people["percentile"] = 100.0 * (1 - (people["rank"] - 1) / n)
    listed = int(n * 2 / 3)
    tiers = ["very high"] * 4 + ["high"] * 12 + ["rising"] * (listed - 16)
    people["tier"] = tiers + [""] * (n - listed)
    people["previous_risk"] = people["risk"] - rng.uniform(-0.1, 0.1, n)
    people.loc[people.index % 5 == 0, "previous_risk"] = np.nan
    people["change"] = people["risk"] - people["previous_risk"]
    people["week_status"] = np.where(
        people["tier"] == "", "", np.where(people["previous_risk"].isna(), "new", "stayed")
    )
    for position in (1, 2, 3):
        people[f"reason_{position}"] = [
            "" if tier == "" and position > 1 else _sentence((i + position) % len(SENTENCES), i)
            for i, tier in enumerate(people["tier"])
        ]
    bits = np.stack(people.pop("flags_bits").to_numpy())
    for j, name in enumerate(FLAG_NAMES):
        people[f"flag_{name}"] = bits[:, j]
    people["flags"] = [
        "; ".join(FLAG_LABELS[f] for j, f in enumerate(FLAG_NAMES) if row[j]) for row in bits
    ]
    people["pathway"] = [PATHWAYS[i % 4] if t else "none" for i, t in enumerate(people["tier"])]
    people["pathway_rule"] = [f"rule_{p.split()[0]}" for p in people["pathway"]]
    # The social prescribing filter's inputs.
    people["care_home_resident"] = bits[:, 0].astype("float64")
    people["lives_alone_coded"] = bits[:, 2].astype("float64")
    people["has_depression"] = (people.index % 3 == 0).astype("float64")
    people["has_anxiety"] = (people.index % 7 == 0).astype("float64")
    people["bereavements_365d"] = (people.index % 11 == 0).astype("float64")
    people["days_since_social_prescribing_referral"] = np.where(people.index % 9 == 0, 40.0, 730.0)
    people["mental_health_crisis_contacts_90d"] = (people.index % 13 == 5).astype("float64")
    people["mental_health_contacts_90d"] = (people.index % 13 == 5).astype("float64")
    people = people.join(frequent_gp(people, WeeklyConfig()))  # as the weekly run writes it
    for column in ("patient_id", "practice_id", "gp_cluster", "locality", "age_band", "sex"):
        people[column] = people[column].astype("str")
    people["practice_name"] = people["practice_name"].astype("str")
    people.loc[people["practice_id"] == "S82002", "practice_name"] = None
    return people


def _sentence(k: int, i: int) -> str:
    return SENTENCES[k][2].format(v=float(1 + (i * 7 + k) % 5))


def _reasons(people: pd.DataFrame) -> pd.DataFrame:
    """Five reasons (four raising risk, one lowering it) for listed people and every third
    unlisted one (a referral candidate)."""
    explained = people[(people["tier"] != "") | (people.index % 3 == 0)]
    rows = []
    for i, pid in zip(explained.index, explained["patient_id"], strict=True):
        for position in range(1, 6):
            concept, feature, template = SENTENCES[(i + position) % len(SENTENCES)]
            value = float(1 + (i * 7 + position) % 5)
            sign = -1.0 if position == 5 else 1.0
            rows.append(
                {
                    "patient_id": pid,
                    "position": position,
                    "concept": concept,
                    "feature": feature,
                    "value": value,
                    "contribution": sign * round(0.9 / position, 3),
                    "sentence": template.format(v=value),
                }
            )
    reasons = pd.DataFrame(rows)
    reasons["position"] = reasons["position"].astype("int64")
    return reasons


OFFERED_PER_LOCALITY = 2  # the current week's reablement places per locality


def _offers(people: pd.DataFrame) -> pd.DataFrame:
    """The offer columns as the weekly run writes them: the first listed people of each
    locality offered a reablement plan, every other listed person told why not."""
    listed = people["tier"] != ""
    order = people[listed].groupby("locality").cumcount() + 1
    offered = order <= OFFERED_PER_LOCALITY
    people["offer"] = ""
    people.loc[offered[offered].index, "offer"] = "reablement_plan"
    people["offer_reason"] = ""
    people.loc[offered[offered].index, "offer_reason"] = [
        f"offered reablement: {ordinal} of {OFFERED_PER_LOCALITY} in {locality} by risk"
        for ordinal, locality in zip(
            order[offered], people.loc[offered[offered].index, "locality"], strict=True
        )
    ]
    people.loc[offered[~offered].index, "offer_reason"] = "not offered: the places were taken"
    return people


def write_week(
    root: Path,
    as_of: date,
    previous: date | None,
    n: int = 36,
    seed: int = 1,
    offers: bool = False,
) -> Path:
    """One week folder as the weekly run writes it (``offers``: with proposed offers, else
    as a week before offers existed); returns the folder."""
    folder = root / as_of.isoformat()
    folder.mkdir(parents=True, exist_ok=True)
    people = _people(as_of, n, seed)
    if offers:
        people = _offers(people)
    people.to_parquet(folder / "people.parquet", index=False)
    _reasons(people).to_parquet(folder / "reasons.parquet", index=False)
    manifest = {
        "as_of": as_of.isoformat(),
        "model": {"name": "admission-risk", "version": "3" if previous else "2"},
        "previous_week": previous.isoformat() if previous else None,
        "counts": {"scored": n, "listed": int((people["tier"] != "").sum())},
        "drift": {"verdict": "no drift", "psi": 0.01},
        "something_new": [1, 2],
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def write_weeks(root: Path) -> Path:
    """Two weeks, a staging folder and a folder without a manifest (both to be ignored)."""
    write_week(root, PREVIOUS, None, seed=2)
    write_week(root, WEEK, PREVIOUS, seed=1, offers=True)
    (root / ".2026-11-02").mkdir(parents=True)
    (root / "2026-11-09").mkdir()
    return root


def write_contract(out: Path, people: pd.DataFrame, as_of: date = WEEK) -> Path:
    """Contract tables for ``people``: a few events each over the last three years."""
    out.mkdir(parents=True, exist_ok=True)
    practices = people[["practice_id", "practice_name", "gp_cluster", "locality"]].drop_duplicates(
        "practice_id"
    )
    patients = pd.DataFrame(
        {
            "patient_id": people["patient_id"],
            "birth_month": [date(as_of.year - int(a), 1, 1) for a in people["age"]],
            "sex": people["sex"],
            "practice_id": people["practice_id"],
            "deprivation_decile": 5,
            "ethnicity_group": "Unknown",
            "registration_start": date(2000, 1, 1),
            "registration_end": None,
            "death_date": None,
        }
    )
    events = []
    for i, pid in enumerate(people["patient_id"]):
        for k, days in enumerate((10, 45, 200, 500, 900)):
            start = as_of - timedelta(days=days + i)
            kind, code, end = [
                ("gp_contact", "telephone", None),
                ("emergency_admission", None, start + timedelta(days=6)),
                ("outpatient", "dna", None),
                ("social_circumstance", "lives_alone", None),
                ("ae_attendance", "discharged", None),
            ][k]
            events.append(
                {
                    "patient_id": pid,
                    "kind": kind,
                    "start": start,
                    "end": end,
                    "code_system": "riskstrat",
                    "code": code,
                    "value": None,
                    "cost": None,
                }
            )
        # On the as-of date itself: never shown.
        events.append({**events[-1], "start": as_of, "kind": "gp_contact", "code": "home_visit"})
    for table, frame in ((PRACTICES, practices), (PATIENTS, patients), (EVENTS, events)):
        frame = pd.DataFrame(frame)
        arrow = pa.Table.from_pandas(
            frame[list(table.schema.names)], schema=table.schema, preserve_index=False
        )
        pq.write_table(arrow, out / table.file_name)
    write_record(out)
    return out


def scored_weeks(validated: Path, champion: RegisteredBundle, out: Path, *weeks: date) -> Path:
    """``weeks`` scored in order by the real weekly run into ``out``."""
    for week in weeks:
        weekly_run(validated, week, champion, out)
    return out
