"""Shared fixtures: one small synthetic borough and one MLflow database per test session."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from features.synthetic.borough import Borough, generate, write
from features.synthetic.config import SynthConfig

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
