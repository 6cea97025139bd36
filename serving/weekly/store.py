"""Read finished weekly runs back: the API and the pages show what the weekly job wrote."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from functools import lru_cache
from pathlib import Path

import pandas as pd

from serving.weekly.run import MANIFEST_FILE, PEOPLE_FILE, REASONS_FILE, week_folders

WEEKLY_DIR_ENV = "RISKSTRAT_WEEKLY_DIR"


@dataclass(frozen=True, slots=True)
class Week:
    """One finished run: its manifest, everyone scored, and the explained people's reasons."""

    as_of: date
    manifest: dict
    people: pd.DataFrame  # people.parquet, in rank order as written
    reasons: pd.DataFrame  # reasons.parquet
    explained: frozenset[str]  # the ids in reasons: read once, asked on every page

    @property
    def model_version(self) -> str | None:
        model = self.manifest.get("model")
        return str(model.get("version")) if isinstance(model, dict) else None

    @property
    def drift_verdict(self) -> str | None:
        drift = self.manifest.get("drift")
        verdict = drift.get("verdict") if isinstance(drift, dict) else None
        return str(verdict) if verdict else None


def load_week(root: Path, week: date | None = None) -> Week:
    """The given week, or the latest; FileNotFoundError naming what is missing."""
    weeks = week_folders(root)
    if not weeks:
        raise FileNotFoundError(f"{root}: no finished weekly run yet")
    chosen = week or weeks[-1]
    if chosen not in weeks:
        raise FileNotFoundError(f"{root}: no finished run for the week of {chosen}")
    folder = root / chosen.isoformat()
    stamp = (folder / MANIFEST_FILE).stat().st_mtime_ns
    return _read(folder, stamp)


@lru_cache(maxsize=4)
def _read(folder: Path, stamp: int) -> Week:
    """Cached per folder and manifest time: a re-run of a week is read afresh."""
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    people = pd.read_parquet(folder / PEOPLE_FILE)
    reasons = pd.read_parquet(folder / REASONS_FILE)
    explained = frozenset(reasons["patient_id"])
    return Week(date.fromisoformat(manifest["as_of"]), manifest, people, reasons, explained)
