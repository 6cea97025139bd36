"""The weekly run: everyone registered is scored; each locality gets a ranked CSV list.

Outputs go to ``<out>/<as-of>/``: one ``locality_<name>.csv`` per locality holding the very
high and high tiers, and ``manifest.json`` (model version, data fingerprint, counts). They
are written to a temporary folder and renamed into place, so a failed run leaves the last
good week untouched.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

from features.bands import age_band
from features.engine import build_features, cohort_context
from features.sources import Sources
from models.registry import RegisteredBundle
from serving.scoring import OTHER, score_frame, tier_by_rank


@dataclass(frozen=True, slots=True)
class WeeklyResult:
    folder: Path
    scored: int
    listed: int
    by_locality: dict[str, int]


def _file_name(locality: str) -> str:
    return "locality_" + "".join(c if c.isalnum() else "_" for c in locality.lower()) + ".csv"


def weekly_lists(
    data_dir: Path,
    as_of: date,
    model: RegisteredBundle,
    out_dir: Path,
    very_high_share: float = 0.005,
    high_share: float = 0.025,
) -> WeeklyResult:
    """Score the cohort on ``as_of`` and write the lists; see the module docstring."""
    began = time.perf_counter()
    sources = Sources.from_dir(data_dir)
    features = build_features(sources, [as_of])
    if features.empty:
        raise ValueError(f"{data_dir}: nobody is registered and alive on {as_of}")
    context = cohort_context(sources, [as_of])
    scored = score_frame(model.bundle, features).join(context)
    scored["tier"] = tier_by_rank(scored["risk"].to_numpy(), very_high_share, high_share)
    age = (pd.Timestamp(as_of) - pd.to_datetime(scored["birth_month"])).dt.days / 365.25
    scored["age_band"] = age_band(age)
    listed = scored[scored["tier"] != OTHER].sort_values("risk", ascending=False, kind="stable")
    listed = listed.reset_index()[
        [
            "patient_id",
            "practice_id",
            "gp_cluster",
            "locality",
            "age_band",
            "sex",
            "risk",
            "percentile",
            "tier",
            "reason_1",
            "reason_2",
            "reason_3",
        ]
    ]
    listed["risk"] = listed["risk"].round(4)
    listed["percentile"] = listed["percentile"].round(1)

    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / as_of.isoformat()
    staging = Path(tempfile.mkdtemp(prefix=f".{as_of.isoformat()}-", dir=out_dir))
    by_locality = {}
    for locality in sorted(context["locality"].dropna().unique()):
        rows = listed[listed["locality"] == locality]
        rows.to_csv(staging / _file_name(locality), index=False)
        by_locality[locality] = len(rows)
    manifest = {
        "as_of": as_of.isoformat(),
        "model": {"name": model.name, "version": model.version},
        "data_fingerprint_of_training": model.bundle.metadata.get("data_fingerprint"),
        "scored": len(scored),
        "listed": len(listed),
        "listed_by_locality": by_locality,
        "listed_by_tier": listed["tier"].value_counts().to_dict(),
        "mean_risk": float(np.mean(scored["risk"])),
        "seconds": round(time.perf_counter() - began, 1),
    }
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=2))
    previous = out_dir / f".{as_of.isoformat()}-replaced"
    if final.exists():
        final.rename(previous)
    staging.rename(final)
    shutil.rmtree(previous, ignore_errors=True)
    return WeeklyResult(final, len(scored), len(listed), by_locality)
