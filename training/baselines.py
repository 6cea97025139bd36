"""Baselines shown beside every model: what a simpler tool would have achieved."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from riskstrat.features.spec import FeatureSpec

PRIOR_ADMISSIONS = "emergency_admissions_365d"


def logistic_regression(
    train: pd.DataFrame,
    labels: pd.Series,
    test: pd.DataFrame,
    specs: tuple[FeatureSpec, ...],
    max_rows: int,
    seed: int,
) -> np.ndarray:
    """Risk from a logistic regression on the same features (one-hot categoricals, scaled numbers).

    Fitted on at most ``max_rows`` training rows, drawn at random by ``seed``, to bound time.
    """
    if len(train) > max_rows:
        keep = np.random.default_rng(seed).choice(len(train), max_rows, replace=False)
        train, labels = train.iloc[keep], labels.iloc[keep]
    model = logistic_model(specs).fit(train, labels.to_numpy())
    return model.predict_proba(test)[:, 1]


def logistic_model(specs: tuple[FeatureSpec, ...]) -> Pipeline:
    """An unfitted logistic regression on ``specs``' columns: numbers median-imputed and
    scaled, categorical codes one-hot."""
    categorical = [s.name for s in specs if s.categorical]
    numeric = [s.name for s in specs if not s.categorical]
    return make_pipeline(
        ColumnTransformer(
            [
                (
                    "numbers",
                    make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
                    numeric,
                ),
                ("categories", OneHotEncoder(handle_unknown="ignore"), categorical),
            ]
        ),
        LogisticRegression(max_iter=2000),
    )


def prior_admissions(test: pd.DataFrame) -> np.ndarray:
    """The one-line score of PARR-era tools: emergency admissions in the last 12 months."""
    return test[PRIOR_ADMISSIONS].to_numpy(dtype=float)
