"""Find and load registered model bundles in MLflow, by alias or pinned version only.

Serving loads a named alias (``champion``) resolved to a version, never "latest".
Each outcome is its own registered model (``registered_name``): the risk of any emergency
admission is ``admission-risk`` (the name registries have always had), the risk of a
potentially avoidable one ``avoidable-admission-risk``; each has its own versions, champion,
promotion gate and monitoring, and a registry may hold either or both.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from riskstrat.features.labels import Admissions
from riskstrat.models.bundle import ModelBundle

# The registered model per counted admissions (``features.labels.Outcome.admissions``).
MODEL_NAMES: dict[Admissions, str] = {
    "any": "admission-risk",
    "avoidable": "avoidable-admission-risk",
}
MODEL_NAME = MODEL_NAMES["any"]  # the first model, the one every registry has
CHAMPION = "champion"
CHALLENGER = "challenger"
BUNDLE_ARTIFACT = "bundle"


def registered_name(admissions: Admissions) -> str:
    """The registered model that predicts ``admissions`` ("any" or "avoidable")."""
    return MODEL_NAMES[admissions]


def bundle_name(bundle: ModelBundle) -> str:
    """The registered model a bundle belongs to, from what its description says it predicts."""
    return registered_name(bundle.described.outcome.admissions)


@dataclass(frozen=True, slots=True)
class RegisteredBundle:
    name: str
    version: str
    bundle: ModelBundle


def load_registered(
    tracking_uri: str, name: str = MODEL_NAME, alias: str = CHAMPION, version: str | None = None
) -> RegisteredBundle:
    """The bundle of ``name`` at ``version``, or at the version ``alias`` points to."""
    import mlflow
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    if version is None:
        version = client.get_model_version_by_alias(name, alias).version
    mlflow.set_tracking_uri(tracking_uri)
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/{name}/{version}", tracking_uri=tracking_uri
    )
    return RegisteredBundle(
        name, str(version), ModelBundle.load(Path(local) / "artifacts" / BUNDLE_ARTIFACT)
    )
