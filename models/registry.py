"""Find and load registered model bundles in MLflow, by alias or pinned version only.

Serving loads a named alias (``champion``) resolved to a version, never "latest".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from riskstrat.models.bundle import ModelBundle

MODEL_NAME = "admission-risk"
CHAMPION = "champion"
CHALLENGER = "challenger"
BUNDLE_ARTIFACT = "bundle"


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
