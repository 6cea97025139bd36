"""The whole path on both public samples: ingest, features, the verdict, and (too few
admissions to train) the weekly list scored with the existing champion."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from ingest_support import OMOP, SYNTHEA, key_file, run

from riskstrat.contract.tables import ContractTables
from riskstrat.features.engine import build_features
from riskstrat.models.registry import RegisteredBundle
from riskstrat.models.store import load_champion
from riskstrat.serving.weekly.run import weekly_run
from riskstrat.serving.weekly.store import latest_monday


@pytest.mark.slow
@pytest.mark.parametrize(("source", "path"), [("omop", OMOP), ("synthea", SYNTHEA)])
def test_whole_path_ingest_features_verdict_and_weekly_list(
    source: str,
    path: Path,
    tmp_path: Path,
    champion: RegisteredBundle,
    tracking_uri: str,
) -> None:
    result = run(source, path, tmp_path / "ingested", key_file(tmp_path / "keys"))
    assert not result.verdict.can_train
    assert result.verdict.text.endswith("scoring with the existing champion only")
    patients = pd.read_parquet(result.out / "patients.parquet")
    ends = pd.to_datetime(patients["registration_end"]).dropna()
    # Synthea-derived OMOP ends each observation period at the person's last visit, so few
    # are still registered at the end of the data: list the week most people were registered.
    as_of = latest_monday(ends.median().date() if len(ends) else date(2023, 10, 16))
    features = build_features(ContractTables.from_dir(result.out), [as_of])
    assert len(features) >= 5
    model = load_champion(tracking_uri)  # the fixture made one; later tests may promote others
    weekly = weekly_run(result.out, as_of, model, tmp_path / "lists")
    assert weekly.scored == len(features)
    assert (weekly.folder / "manifest.json").exists()
