"""Shared fixtures, one of each per test session: a small synthetic borough, its validated
tables, an MLflow database, a model trained and promoted on them, and the service in-process
on that model."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from postgres import postgres_server, postgres_url  # noqa: F401 (fixtures for every test)
from servers import IN_PROCESS_TOKENS, InProcessService, write_access
from starlette.testclient import TestClient

from riskstrat.contract.engines import SparkEngine, SparkSettings
from riskstrat.contract.tables import ContractTables
from riskstrat.contract.validation import validate_dir
from riskstrat.features.exposure import ExposureRule
from riskstrat.features.labels import Outcome
from riskstrat.models.registry import RegisteredBundle, load_registered, registered_name
from riskstrat.serving.settings import ServiceSettings
from riskstrat.sources.synthetic.borough import TRUTH_DIR, Borough, generate, write
from riskstrat.sources.synthetic.config import SynthConfig
from riskstrat.training.benefit import BenefitSettings, train_benefit
from riskstrat.training.config import TrainConfig
from riskstrat.training.pipeline import TrainResult, train_from_contract
from riskstrat.training.promote import promote


def pytest_configure(config: pytest.Config) -> None:
    """Keep BentoML's model store in a temporary folder, never the user's home."""
    os.environ["BENTOML_HOME"] = tempfile.mkdtemp(prefix="riskstrat-bentoml-")
    os.environ["RISKSTRAT_RELOAD_SECONDS"] = "0"
    os.environ["RISKSTRAT_WORKERS"] = "1"  # test servers start faster with one worker
    # What riskstrat serve hands BentoML, for the tests that call bentoml.serve themselves.
    os.environ["BENTOML_CONFIG_OVERRIDES"] = ServiceSettings.load(workers=1).bentoml_overrides()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that uses the Spark session is marked ``spark``: `make test-fast` leaves
    them out (the session alone costs seconds), `make test` runs them."""
    for item in items:
        if "spark_engine" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.spark)


settings.register_profile(
    "riskstrat",
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
settings.load_profile("riskstrat")

SMALL = SynthConfig(patients=10_000, seed=7, truth_as_of=(date(2025, 1, 1),))


@pytest.fixture(scope="session")
def small_borough() -> Borough:
    return generate(SMALL)


@pytest.fixture(scope="session")
def small_borough_dir(small_borough: Borough, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("borough")
    write(small_borough, out)
    return out


@pytest.fixture(scope="session")
def tracking_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"


@pytest.fixture(scope="session")
def validated(small_borough_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("validated")
    report = validate_dir(small_borough_dir, out, date(2026, 10, 31))
    assert report.reconciles
    return out


@pytest.fixture(scope="session")
def trained(
    validated: Path,
    small_borough_dir: Path,
    tracking_uri: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> TrainResult:
    return _train(validated, small_borough_dir, tracking_uri, tmp_path_factory.mktemp("train"))


@pytest.fixture(scope="session")
def champion(trained: TrainResult, validated: Path, tracking_uri: str) -> RegisteredBundle:
    decision = promote(validated, tracking_uri, resamples=20)
    assert decision.promoted and decision.champion_version is None
    return load_registered(tracking_uri)


@pytest.fixture(scope="session")
def avoidable_trained(
    validated: Path,
    small_borough_dir: Path,
    tracking_uri: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> TrainResult:
    """The second model, of potentially avoidable admissions, in the same registry."""
    work = tmp_path_factory.mktemp("train-avoidable")
    return _train(validated, small_borough_dir, tracking_uri, work, Outcome(admissions="avoidable"))


def _train(
    validated: Path, borough: Path, tracking_uri: str, work: Path, outcome: Outcome | None = None
) -> TrainResult:
    """A model of the test borough in the session's registry, its files under ``work``."""
    return train_from_contract(
        validated,
        TrainConfig(bootstrap=20, outcome=outcome or Outcome()),
        tracking_uri=tracking_uri,
        artifact_root=work / "artifacts",
        report_dir=work / "report",
        truth_path=borough / TRUTH_DIR / "truth.parquet",
    )


@pytest.fixture(scope="session")
def avoidable_champion(
    avoidable_trained: TrainResult, validated: Path, tracking_uri: str
) -> RegisteredBundle:
    name = registered_name("avoidable")
    decision = promote(validated, tracking_uri, resamples=20, name=name)
    assert decision.promoted and decision.champion_version is None
    return load_registered(tracking_uri, name=name)


@pytest.fixture(scope="session")
def in_process_service(
    champion: RegisteredBundle,
    avoidable_champion: RegisteredBundle,
    tracking_uri: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[InProcessService]:
    """One in-process service for every test that needs one: BentoML sets up its Prometheus
    metrics once per process, so a second app in the same process fails on its first request.
    It serves both champions (any emergency admission, and potentially avoidable ones)."""
    from riskstrat.serving.service import RiskService

    folder = tmp_path_factory.mktemp("in-process")
    environment = {
        "RISKSTRAT_TRACKING_URI": tracking_uri,
        "RISKSTRAT_ACCESS_FILE": str(write_access(folder / "access.toml", IN_PROCESS_TOKENS)),
        "RISKSTRAT_AUDIT_LOG": str(folder / "audit.jsonl"),
    }
    patch = pytest.MonkeyPatch()
    for key, value in environment.items():
        patch.setenv(key, value)
    try:
        with TestClient(RiskService.to_asgi()) as started:
            patch.undo()  # read at start; the modules set what their requests read
            yield InProcessService(started.app, folder / "audit.jsonl", environment)
    finally:
        patch.undo()


# One local Spark session for the whole run (it takes seconds to start): two cores, no web
# UI, few shuffle partitions for small test data.
SPARK_TESTS = SparkSettings(master="local[2]", driver_memory="1g", shuffle_partitions=2)


@pytest.fixture(scope="session")
def spark_engine() -> SparkEngine:
    return SparkEngine(SPARK_TESTS)


@pytest.fixture(scope="session")
def benefit_file(validated: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A benefit model learnt from the small borough's list runs, saved as the weekly run
    reads it."""
    path = tmp_path_factory.mktemp("benefit") / "benefit.json"
    with ContractTables.from_dir(validated) as sources:
        model = train_benefit(sources, BenefitSettings(), ExposureRule(), until=date(2026, 10, 26))
    model.save(path)
    return path
