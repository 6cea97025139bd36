"""MLflow "model from code": a pyfunc wrapper around the model bundle, without pickle.

MLflow executes this file when it loads the registered model; the bundle folder travels as
the artifact ``bundle``. ``predict`` returns the calibrated risk per row.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd

from riskstrat.models.bundle import ModelBundle


class BundleModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        self.bundle = ModelBundle.load(Path(context.artifacts["bundle"]))

    def predict(
        self, context: object, model_input: pd.DataFrame, params: dict | None = None
    ) -> pd.Series:
        return pd.Series(self.bundle.predict(model_input), index=model_input.index, name="risk")


mlflow.models.set_model(BundleModel())
