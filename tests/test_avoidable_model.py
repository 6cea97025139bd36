"""The second outcome model, potentially avoidable admissions: its own registered model and
champion, its own oracle, and its risk beside the first in the weekly files and the API."""

from __future__ import annotations

import asyncio
import json
import shutil
from datetime import date
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
from mlflow import MlflowClient
from servers import InProcessService
from starlette.testclient import TestClient

from riskstrat.common.errors import UserError
from riskstrat.contract.tables import ContractTables
from riskstrat.features.engine import build_features
from riskstrat.models.registry import (
    CHALLENGER,
    CHAMPION,
    MODEL_NAME,
    RegisteredBundle,
    load_registered,
    registered_name,
)
from riskstrat.serving.weekly.outputs import AVOIDABLE_HEADING
from riskstrat.serving.weekly.run import WeeklyResult, weekly_run
from riskstrat.training.pipeline import TrainResult
from riskstrat.training.promote import latest_challenger, promote

AVOIDABLE = registered_name("avoidable")
WEEK = date(2026, 10, 26)
TOKEN = "edges-token"  # a system token of the in-process service


def test_each_outcome_is_its_own_registered_model_with_its_own_champion(
    champion: RegisteredBundle, avoidable_champion: RegisteredBundle, tracking_uri: str
) -> None:
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    names = {m.name for m in client.search_registered_models()}
    assert {MODEL_NAME, AVOIDABLE} <= names and MODEL_NAME == "admission-risk"
    assert (champion.name, avoidable_champion.name) == (MODEL_NAME, AVOIDABLE)
    for model in (champion, avoidable_champion):
        assert str(client.get_model_version_by_alias(model.name, CHAMPION).version) == model.version
    outcomes = {
        m.name: m.bundle.described.outcome.admissions for m in (champion, avoidable_champion)
    }
    assert outcomes == {MODEL_NAME: "any", AVOIDABLE: "avoidable"}


def test_the_avoidable_models_report_is_against_its_own_oracle(
    avoidable_trained: TrainResult, trained: TrainResult
) -> None:
    """The oracle is the truth's risk of an avoidable admission, not of any admission: the
    model comes close to it but does not beat it, and the card names the outcome."""
    mine, first = avoidable_trained.bundle.described, trained.bundle.described
    assert mine.outcome.name == "avoidable_emergency_admission_365d"
    assert mine.metrics["observed_rate"] < first.metrics["observed_rate"] / 2
    assert mine.metrics["auroc"] - 0.05 < mine.metrics["oracle_auroc"]
    assert mine.metrics["auroc"] < mine.metrics["oracle_auroc"] + 0.01
    card = (avoidable_trained.report_dir / "model_card.html").read_text()
    assert "potentially avoidable emergency admission" in card
    assert f"<h1>Model card: {AVOIDABLE} (avoidable_emergency_admission_365d)</h1>" in card


@pytest.fixture
def registry_copy(
    champion: RegisteredBundle, avoidable_champion: RegisteredBundle, tracking_uri: str, tmp_path
) -> str:
    """A copy of the session's registry (its artifacts stay where they are)."""
    copy = tmp_path / "mlflow.db"
    shutil.copy(tracking_uri.removeprefix("sqlite:///"), copy)
    return f"sqlite:///{copy}"


def test_promoting_one_outcome_leaves_the_other_alone(
    registry_copy: str,
    champion: RegisteredBundle,
    avoidable_champion: RegisteredBundle,
    validated: Path,
) -> None:
    client = MlflowClient(tracking_uri=registry_copy, registry_uri=registry_copy)
    first = client.get_model_version(AVOIDABLE, avoidable_champion.version)
    again = client.create_model_version(AVOIDABLE, first.source, run_id=first.run_id)
    client.set_registered_model_alias(AVOIDABLE, CHALLENGER, again.version)
    before = client.get_model_version_by_alias(MODEL_NAME, CHAMPION)
    assert latest_challenger(registry_copy) == AVOIDABLE  # registered last: promoted by default

    decision = promote(validated, registry_copy, resamples=20, name=AVOIDABLE)
    assert decision.promoted and decision.model_name == AVOIDABLE
    # Compared with the avoidable champion (the same trees: no worse), not the other model.
    assert decision.champion_version == avoidable_champion.version
    assert decision.figures["auroc_difference"] == pytest.approx(0.0)
    assert decision.explain().startswith(f"{AVOIDABLE} version {again.version} promoted")
    moved = client.get_model_version_by_alias(AVOIDABLE, CHAMPION)
    assert moved.version == again.version
    after = client.get_model_version_by_alias(MODEL_NAME, CHAMPION)
    assert (after.version, after.tags) == (before.version, before.tags)
    assert load_registered(registry_copy).version == champion.version


def test_a_second_model_of_the_wrong_outcome_is_refused(
    validated: Path, champion: RegisteredBundle, tmp_path: Path
) -> None:
    with pytest.raises(UserError, match="predicts emergency_admission_365d, not potentially"):
        weekly_run(validated, WEEK, champion, tmp_path, avoidable=champion)


@pytest.fixture(scope="module")
def weeks(
    validated: Path,
    champion: RegisteredBundle,
    avoidable_champion: RegisteredBundle,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, WeeklyResult]:
    """The same week with both champions, and with the first alone."""
    return {
        name: weekly_run(validated, WEEK, champion, tmp_path_factory.mktemp(name), avoidable=second)
        for name, second in (("both", avoidable_champion), ("first", None))
    }


def _people(result: WeeklyResult) -> pd.DataFrame:
    return pd.read_parquet(result.folder / "people.parquet").set_index("patient_id")


def test_a_week_with_both_champions_carries_both_risks_and_versions(
    weeks: dict[str, WeeklyResult],
    validated: Path,
    champion: RegisteredBundle,
    avoidable_champion: RegisteredBundle,
) -> None:
    both, first = _people(weeks["both"]), _people(weeks["first"])
    features = build_features(ContractTables.from_dir(validated), [WEEK]).droplevel("as_of")
    expected = avoidable_champion.bundle.predict(features.loc[both.index])
    np.testing.assert_allclose(both["avoidable_risk"].to_numpy(), expected)
    assert both["avoidable_risk"].mean() < both["risk"].mean()
    # The first model still ranks and tiers: adding the second changes nothing else.
    pd.testing.assert_frame_equal(both.drop(columns="avoidable_risk"), first)
    manifest = weeks["both"].manifest
    assert manifest["model"]["version"] == champion.version
    second = manifest["avoidable_model"]
    assert (second["name"], second["version"]) == (AVOIDABLE, avoidable_champion.version)
    assert second["outcome"] == "avoidable_emergency_admission_365d"


def test_the_files_people_open_show_the_avoidable_risk_in_words(
    weeks: dict[str, WeeklyResult],
) -> None:
    result = weeks["both"]
    listed = _people(result)
    stem = next(s for s, where in result.manifest["lists"].items() if where["scope"] == "cluster")
    table = pd.read_csv(result.folder / f"{stem}.csv", dtype={"Pseudonymised ID": str})
    headings = list(table.columns)
    assert (
        headings.index(AVOIDABLE_HEADING)
        == headings.index("Risk of emergency admission in 12 months (%)") + 1
    )
    shown = table.set_index("Pseudonymised ID")[AVOIDABLE_HEADING]
    truth = (100 * listed.loc[shown.index, "avoidable_risk"]).round(1)
    np.testing.assert_allclose(shown.to_numpy(), truth.to_numpy())
    sheet = openpyxl.load_workbook(result.folder / f"{stem}.xlsx").active
    assert AVOIDABLE_HEADING in [c.value for c in sheet[1]]
    report = (result.folder / f"{stem}.html").read_text()
    assert AVOIDABLE_HEADING in report
    assert f"{AVOIDABLE} version {result.manifest['avoidable_model']['version']}" in report


def test_without_the_second_champion_the_week_says_it_is_absent(
    weeks: dict[str, WeeklyResult],
) -> None:
    result = weeks["first"]
    assert "avoidable_risk" not in _people(result).columns
    second = result.manifest["avoidable_model"]
    assert second["version"] is None and "no avoidable_risk" in second["absent"]
    written = json.loads((result.folder / "manifest.json").read_text())
    assert written["avoidable_model"] == second
    stem = next(iter(result.manifest["lists"]))
    assert AVOIDABLE_HEADING not in (result.folder / f"{stem}.csv").read_text()
    assert "none: no champion of" in (result.folder / f"{stem}.html").read_text()


def _record(bundle: RegisteredBundle, features: pd.Series, pid: str) -> dict:
    values = features[bundle.bundle.feature_names]
    return {"id": pid, "features": {k: None if pd.isna(v) else v for k, v in values.items()}}


@pytest.fixture(scope="module")
def some_people(validated: Path) -> pd.DataFrame:
    features = build_features(ContractTables.from_dir(validated), [WEEK]).droplevel("as_of")
    return features.iloc[::997]


def test_the_api_returns_both_risks(
    in_process_service: InProcessService,
    champion: RegisteredBundle,
    avoidable_champion: RegisteredBundle,
    some_people: pd.DataFrame,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key, value in in_process_service.environment.items():
        monkeypatch.setenv(key, value)
    client: TestClient = in_process_service.client(headers={"Authorization": f"Bearer {TOKEN}"})
    records = [_record(champion, row, str(pid)) for pid, row in some_people.iterrows()]
    answer = client.post("/v1/score", json={"records": records, "top_k": 1})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["model_version"], body["avoidable_model_version"]) == (
        champion.version,
        avoidable_champion.version,
    )
    assert body["avoidable_outcome"] == "avoidable_emergency_admission_365d"
    got = np.array([s["avoidable_risk"] for s in body["scores"]])
    np.testing.assert_allclose(got, avoidable_champion.bundle.predict(some_people), rtol=1e-9)
    info = client.post("/v1/model", json={}).json()
    assert info["avoidable_model_version"] == avoidable_champion.version
    assert "potentially avoidable" in info["avoidable_outcome_description"]


def test_without_the_second_champion_the_api_says_null(
    registry_copy: str,
    champion: RegisteredBundle,
    some_people: pd.DataFrame,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    from riskstrat.serving.service import FeatureRecord, RiskService

    MlflowClient(
        tracking_uri=registry_copy, registry_uri=registry_copy
    ).delete_registered_model_alias(AVOIDABLE, CHAMPION)
    monkeypatch.setenv("RISKSTRAT_TRACKING_URI", registry_copy)
    monkeypatch.setenv("RISKSTRAT_RELOAD_SECONDS", "3600")  # this test refreshes by hand
    monkeypatch.setenv("RISKSTRAT_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    service = RiskService()
    assert service.model is not None and service.avoidable is None
    records = [FeatureRecord(**_record(champion, some_people.iloc[0], "p1"))]
    answer = asyncio.run(service.score(records=records, top_k=0))
    assert answer.avoidable_model is None and answer.scores[0].avoidable_risk is None
    assert answer.scores[0].risk == pytest.approx(champion.bundle.predict(some_people.iloc[:1])[0])
    assert service.model_info().avoidable_model is None


def test_the_pages_show_the_avoidable_risk_when_the_week_has_it(
    in_process_service: InProcessService,
    weeks: dict[str, WeeklyResult],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key, value in in_process_service.environment.items():
        monkeypatch.setenv(key, value)
    heading = "Risk of a potentially avoidable"
    for name, shown in (("both", True), ("first", False)):
        monkeypatch.setenv("RISKSTRAT_WEEKLY_DIR", str(weeks[name].folder.parent))
        client = in_process_service.client(follow_redirects=False)
        assert client.post("/ui/login", data={"token": "token-ds"}).status_code == 303
        page = client.get("/ui/")
        assert page.status_code == 200 and (heading in page.text) == shown
        top = _people(weeks[name]).index[0]
        person = client.get("/ui/patient", params={"id": top})
        assert person.status_code == 200 and (heading in person.text) == shown
