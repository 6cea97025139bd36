"""MLflow: log a training run, register the bundle, and point the champion alias at it.

The tracking URI comes from the caller (the command's entry point reads
``MLFLOW_TRACKING_URI`` or defaults to a local SQLite file); nothing is set on import.
"""

from __future__ import annotations

import tempfile
import warnings
from dataclasses import dataclass
from importlib.metadata import version
from importlib.util import find_spec
from pathlib import Path

import pandas as pd

from riskstrat.models.bundle import ModelBundle
from riskstrat.models.registry import BUNDLE_ARTIFACT, CHALLENGER, bundle_name

EXPERIMENT = "admission-risk"
# The model-from-code file, located without importing it (importing it registers a model).
PYFUNC_CODE = find_spec("riskstrat.models.pyfunc_model").origin
RUNTIME = ("lightgbm", "pandas", "numpy", "mlflow", "pyarrow")


@dataclass(frozen=True, slots=True)
class LoggedRun:
    run_id: str
    model_version: str
    model_name: str  # the registered model: one per outcome (``models.registry``)


def log_training(
    *,
    tracking_uri: str,
    artifact_root: Path | None,
    bundle: ModelBundle,
    params: dict,
    metrics: dict[str, float],
    example: pd.DataFrame,
    report_dir: Path | None,
    datasets: dict[str, tuple[pd.DataFrame, str]],
) -> LoggedRun:
    """One MLflow run: params, metrics, datasets, report files, and the registered bundle.

    The bundle is registered under its outcome's name (``models.registry.bundle_name``); the
    new version gets that model's ``challenger`` alias, and ``champion`` moves only through
    the promotion gate (``training.promote``). Both outcomes' runs share one experiment.
    ``datasets`` maps a context ("training", "test") to a frame and the source it came from.
    """
    import mlflow
    from mlflow import MlflowClient
    from mlflow.models import infer_signature

    from riskstrat.training.datasets import snapshot_dataset

    name = bundle_name(bundle)
    mlflow.set_tracking_uri(tracking_uri)
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    experiment_id = (
        experiment.experiment_id
        if experiment
        else client.create_experiment(
            EXPERIMENT,
            artifact_location=artifact_root.resolve().as_uri() if artifact_root else None,
        )
    )
    with mlflow.start_run(experiment_id=experiment_id) as run, tempfile.TemporaryDirectory() as tmp:
        mlflow.log_params(params | {"registered_model": name})
        mlflow.log_metrics(metrics)
        with warnings.catch_warnings():
            # A local path is both a file and an artifact source to MLflow, and categorical
            # codes are integers: MLflow says so for every dataset; neither needs action.
            warnings.filterwarnings("ignore", message=".*can be interpreted in multiple ways")
            warnings.filterwarnings("ignore", message=".*Inferred schema contains integer")
            for context, (frame, source) in datasets.items():
                dataset = snapshot_dataset(frame, source, f"{context} snapshots")
                mlflow.log_input(dataset, context=context)
        if report_dir is not None:
            mlflow.log_artifacts(str(report_dir), "report")
        bundle_dir = bundle.save(Path(tmp) / BUNDLE_ARTIFACT)
        sample = bundle.matrix(example)
        # The signature is given; MLflow still warns that no input example was (one would
        # make it load and run the model again just to check it).
        warnings.filterwarnings("ignore", message=".*An input example was not provided")
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(PYFUNC_CODE),
            artifacts={BUNDLE_ARTIFACT: str(bundle_dir)},
            signature=infer_signature(sample, bundle.predict(sample)),
            pip_requirements=[f"{p}=={version(p)}" for p in RUNTIME],
            registered_model_name=name,
        )
        model_version = str(info.registered_model_version)
    client.set_registered_model_alias(name, CHALLENGER, model_version)
    return LoggedRun(run.info.run_id, model_version, name)
