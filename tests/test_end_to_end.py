"""The walking skeleton on a small borough: validate, train, register, list, serve."""

from __future__ import annotations

import asyncio
import json
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from servers import free_port, serving_in_process, write_access

from riskstrat.contract.tables import ContractTables
from riskstrat.features.engine import build_features
from riskstrat.models.registry import RegisteredBundle
from riskstrat.serving.weekly.config import OfferSettings, WeeklyConfig
from riskstrat.serving.weekly.run import weekly_run
from riskstrat.training.pipeline import TrainResult
from riskstrat.training.promote import promote

pytestmark = pytest.mark.slow  # end to end: costs tens of seconds before its first test

WEEK = date(2026, 10, 26)


def test_no_training_label_reaches_into_the_test_period(trained: TrainResult) -> None:
    about = trained.bundle.described
    assert about.test.kind == "out_of_time"
    for as_of in about.train_as_of:
        assert as_of + timedelta(days=about.outcome.horizon_days) <= about.test.as_of


def test_model_is_useful_calibrated_and_below_the_oracle(trained: TrainResult) -> None:
    m = trained.metrics
    assert m["auroc"] > 0.75
    assert m["auroc"] < m["oracle_auroc"] + 0.02  # beating the oracle would mean leakage
    assert m["auroc"] > m["baseline_prior_admissions_auroc"]
    assert abs(m["mean_predicted"] - m["observed_rate"]) < 0.015


def test_report_folder_holds_plots_with_their_data_and_a_model_card(trained: TrainResult) -> None:
    names = {p.name for p in trained.report_dir.iterdir()}
    for plot, data in (
        ("calibration", "calibration_deciles"),
        ("decision_curve", "decision_curve"),
        ("drift", "drift"),
    ):
        assert {f"{plot}.png", f"{data}.csv"} <= names
    assert {"metrics.json", "comparison.csv", "subgroups.csv", "model_card.html"} <= names
    card = (trained.report_dir / "model_card.html").read_text()
    for heading in (
        "Source of data",
        "Participants",
        "Outcome",
        "Predictors",
        "Sample size",
        "Missing data",
        "Analysis",
        "Performance",
        "Fairness",
        "Limitations",
        "Intended use",
    ):
        assert f"<h2>{heading}</h2>" in card
    assert (
        trained.metrics["baseline_logistic_auroc"]
        > trained.metrics["baseline_prior_admissions_auroc"]
    )


def test_champion_alias_points_at_the_promoted_version(
    trained: TrainResult, champion: RegisteredBundle
) -> None:
    assert champion.version == trained.run.model_version
    assert champion.bundle.described == trained.bundle.described


def _features_for_service(validated: Path, n: int) -> pd.DataFrame:
    return build_features(ContractTables.from_dir(validated), [WEEK]).head(n)


def test_service_scores_match_the_bundle(
    validated: Path, champion: RegisteredBundle, tracking_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both ways /v1/score answers: on the event loop (a few people) and in a thread (more),
    each noting the ids it scored in the request's audit record."""
    from riskstrat.serving.access import audit_record
    from riskstrat.serving.service import INLINE_ROWS, FeatureRecord, RiskService

    monkeypatch.setenv("RISKSTRAT_TRACKING_URI", tracking_uri)
    service = RiskService()
    features = _features_for_service(validated, INLINE_ROWS + 2)
    records = [
        FeatureRecord(id=pid, features=row.to_dict()) for (pid, _), row in features.iterrows()
    ]

    async def score(some: list[FeatureRecord]) -> tuple:
        record: dict = {}
        audit_record.set(record)
        return await service.score(records=some), record

    for some in (records[:3], records):
        response, audited = asyncio.run(score(some))
        ids = [r.id for r in some]
        assert response.model_version == champion.version
        assert [s.id for s in response.scores] == ids == audited["patient_ids"]
        expected = champion.bundle.predict(features.head(len(some)))
        np.testing.assert_allclose([s.risk for s in response.scores], expected)


PLACES = 3  # reablement places a week in each locality
TOKENS = {
    "system": "s3cret-system",
    "locality_team": "s3cret-north",
    "social_prescriber": "s3cret-prescriber",
}


def _access_file(tmp_path: Path) -> Path:
    return write_access(
        tmp_path / "access.toml",
        {
            f"{role}-test": (role, token, ["North"] if role == "locality_team" else [])
            for role, token in TOKENS.items()
        },
    )


@pytest.mark.slow
def test_real_server_on_loopback(
    validated: Path,
    champion: RegisteredBundle,
    tracking_uri: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import bentoml
    import httpx

    audit = tmp_path / "audit.jsonl"
    monkeypatch.setenv("RISKSTRAT_TRACKING_URI", tracking_uri)
    monkeypatch.setenv("RISKSTRAT_ACCESS_FILE", str(_access_file(tmp_path)))
    monkeypatch.setenv("RISKSTRAT_AUDIT_LOG", str(audit))
    monkeypatch.setenv("BENTOML_DO_NOT_TRACK", "True")
    monkeypatch.setenv("RISKSTRAT_WEEKLY_DIR", str(tmp_path / "lists"))
    localities = pd.read_parquet(validated / "practices.parquet")["locality"].unique()
    places = OfferSettings(capacity={"reablement_plan": {str(t): PLACES for t in localities}})
    week = weekly_run(validated, WEEK, champion, tmp_path / "lists", WeeklyConfig(offers=places))
    features = _features_for_service(validated, 2)
    body = [{"id": pid, "features": row.to_dict()} for (pid, _), row in features.iterrows()]
    ids = list(features.index.get_level_values("patient_id"))
    port = free_port()
    with serving_in_process(port) as server:
        with bentoml.SyncHTTPClient(
            server.url, token=TOKENS["system"], server_ready_timeout=60
        ) as client:
            assert client.is_ready()
            result = client.score(records=body)
            np.testing.assert_allclose(
                [s["risk"] for s in result["scores"]], champion.bundle.predict(features)
            )
            assert client.model_info()["model_version"] == champion.version
            people = [p.model_dump(mode="json") for p in _histories(validated, ids)]
            from_history = client.score_history(people=people, as_of=WEEK.isoformat())
            np.testing.assert_allclose(
                [s["risk"] for s in from_history["scores"]], champion.bundle.predict(features)
            )
        url = f"{server.url}/v1/score"
        assert httpx.post(url, json={"records": body}).status_code == 401
        wrong = httpx.post(url, json={"records": body}, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        team = {"Authorization": f"Bearer {TOKENS['locality_team']}"}
        refused = httpx.post(url, json={"records": body}, headers=team)
        assert refused.status_code == 403
        assert "role locality_team may not call /v1/score" in refused.json()["error"]
        assert httpx.post(f"{server.url}/v1/model", json={}, headers=team).status_code == 200
        assert httpx.get(f"{server.url}/livez").status_code == 200
        _check_lists(server.url, week.manifest["counts"])

    entries = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [(e["who"], e["endpoint"], e["status"]) for e in entries] == [
        ("system-test", "/v1/score", 200),
        ("system-test", "/v1/score-history", 200),
        (None, "/v1/score", 401),
        (None, "/v1/score", 401),
        ("locality_team-test", "/v1/score", 403),
        ("locality_team-test", "/v1/weekly-list", 200),
        ("locality_team-test", "/v1/weekly-list", 403),
        ("system-test", "/v1/weekly-list", 200),
        ("social_prescriber-test", "/v1/referrals", 200),
        ("social_prescriber-test", "/v1/referrals", 400),
        ("locality_team-test", "/v1/referrals", 403),
    ]
    north = entries[5]
    assert north["patients"] == min(100, week.manifest["counts"]["by_locality"]["North"])
    assert entries[0]["patient_ids"] == ids and entries[0]["model_version"] == champion.version
    assert entries[1]["patients"] == len(ids)


def _check_lists(url: str, counts: dict) -> None:
    """The weekly list and referral endpoints, scoped by role and locality."""
    import httpx

    def call(role: str, path: str, body: dict) -> httpx.Response:
        headers = {"Authorization": f"Bearer {TOKENS[role]}"}
        return httpx.post(f"{url}{path}", json=body, headers=headers, timeout=30)

    north = call("locality_team", "/v1/weekly-list", {"limit": 100}).json()
    assert north["total"] == counts["by_locality"]["North"] <= 100
    offered = [row for row in north["rows"] if row["offer"]]
    assert [row["offer"] for row in offered] == ["reablement_plan"] * PLACES
    assert all(row["offer_reason"] for row in north["rows"])  # every listed person told why
    assert {row["locality"] for row in north["rows"]} == {"North"}
    assert [row["rank"] for row in north["rows"]] == sorted(row["rank"] for row in north["rows"])
    south = call("locality_team", "/v1/weekly-list", {"localities": ["South"]})
    assert south.status_code == 403
    assert "locality_team-test may not see locality South (allowed: North)" in south.text
    everyone = call("system", "/v1/weekly-list", {"limit": 1}).json()
    assert everyone["total"] == counts["listed"] and len(everyone["rows"]) == 1
    matched = call("social_prescriber", "/v1/referrals", {"criteria": {"min_tier": "rising"}})
    assert matched.status_code == 200
    assert all(row["matched"] for row in matched.json()["rows"])
    bad = call("social_prescriber", "/v1/referrals", {"criteria": {"min_tier": "medium"}})
    assert bad.status_code == 400 and "criteria: min_tier: must be one of" in bad.text
    assert call("locality_team", "/v1/referrals", {}).status_code == 403


def _histories(validated: Path, ids: list[str]) -> list:
    from riskstrat.serving.history import PersonHistory

    patients = pd.read_parquet(validated / "patients.parquet").set_index("patient_id")
    events = pd.read_parquet(validated / "events.parquet")
    events = events[events["patient_id"].isin(ids)]
    people = []
    for pid in ids:
        p = patients.loc[pid]
        mine = events[events["patient_id"] == pid].drop(columns="patient_id")
        people.append(
            PersonHistory(
                id=pid,
                birth_month=p["birth_month"],
                sex=p["sex"],
                deprivation_decile=None
                if pd.isna(p["deprivation_decile"])
                else int(p["deprivation_decile"]),
                ethnicity_group=p["ethnicity_group"],
                events=[
                    {k: (None if pd.isna(v) else v) for k, v in e.items()}
                    for e in mine.to_dict("records")
                ],
            )
        )
    return people


def test_scoring_from_histories_equals_scoring_from_features(
    validated: Path, champion: RegisteredBundle, tracking_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from riskstrat.serving.service import RiskService

    monkeypatch.setenv("RISKSTRAT_TRACKING_URI", tracking_uri)
    features = build_features(ContractTables.from_dir(validated), [WEEK])
    busiest = features.sort_values("gp_contacts_365d", ascending=False).head(4)
    ids = [*busiest.index.get_level_values("patient_id"), features.index[0][0]]
    expected, _ = champion.bundle.predict_and_explain(features.loc[[(i, WEEK) for i in ids]])
    response = RiskService().score_history(people=_histories(validated, ids), as_of=WEEK)
    assert [s.id for s in response.scores] == ids
    np.testing.assert_array_equal([s.risk for s in response.scores], expected)


def test_history_input_errors_are_named() -> None:
    from pydantic import ValidationError

    from riskstrat.serving.history import PersonHistory, history_features

    with pytest.raises(ValidationError, match="kind"):
        PersonHistory(
            id="x",
            birth_month=date(1950, 1, 1),
            sex="F",
            events=[{"kind": "teleportation", "start": date(2024, 1, 1)}],
        )
    with pytest.raises(ValidationError, match="end 2023-01-01 is before start 2024-01-01"):
        PersonHistory(
            id="x",
            birth_month=date(1950, 1, 1),
            sex="F",
            events=[{"kind": "gp_contact", "start": date(2024, 1, 1), "end": date(2023, 1, 1)}],
        )
    twice = [PersonHistory(id="x", birth_month=date(1950, 1, 1), sex="F")] * 2
    with pytest.raises(ValueError, match="each id must appear once"):
        history_features(twice, WEEK)


def test_a_running_service_switches_to_a_newly_promoted_champion(
    trained: TrainResult,
    champion: RegisteredBundle,
    validated: Path,
    tracking_uri: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Runs last in this module: it moves the champion alias."""
    from riskstrat.serving.service import RiskService
    from riskstrat.training.tracking import log_training

    monkeypatch.setenv("RISKSTRAT_TRACKING_URI", tracking_uri)
    service = RiskService()
    assert service.model.version == champion.version and not service.refresh()
    features = _features_for_service(validated, 3)
    newer = log_training(
        tracking_uri=tracking_uri,
        artifact_root=tmp_path,
        bundle=trained.bundle,
        params={},
        metrics={},
        example=features,
        report_dir=None,
        datasets={},
    )
    assert promote(validated, tracking_uri, resamples=20).promoted
    assert service.refresh()
    assert service.model.version == newer.model_version != champion.version
    np.testing.assert_allclose(
        service.model.bundle.predict(features), champion.bundle.predict(features)
    )
