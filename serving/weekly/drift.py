"""This week's population against the model's training data: PSI per key feature and score."""

from __future__ import annotations

import numpy as np
import pandas as pd

from riskstrat.models.drift import MAJOR_PSI, DriftReference, shift


def drift_check(reference: DriftReference | None, features: pd.DataFrame, risk: np.ndarray) -> dict:
    """PSI of the score and of each profiled feature, and a verdict people can read.

    Retraining is suggested when the score or any key feature shows a major shift.
    """
    if reference is None:
        return {
            "verdict": "no training profile was saved with this model version, so drift "
            "cannot be checked; retrain to enable the check",
            "retrain_suggested": False,
            "score_psi": None,
            "feature_psi": {},
        }
    score_psi = round(reference.score.psi(risk), 4)
    feature_psi = {
        name: round(profile.psi(features[name].to_numpy()), 4)
        for name, profile in reference.features.items()
    }
    worst = max(feature_psi, key=feature_psi.get) if feature_psi else None
    shifted = sorted(n for n, v in feature_psi.items() if v >= MAJOR_PSI)
    retrain = score_psi >= MAJOR_PSI or bool(shifted)
    verdict = f"score: {shift(score_psi)} (PSI {score_psi:.3f})"
    if worst is not None:
        verdict += f"; largest feature shift: {worst} (PSI {feature_psi[worst]:.3f})"
    if retrain:
        moved = ", ".join(["the score"] * (score_psi >= MAJOR_PSI) + shifted)
        verdict += f". Major shift in {moved} since training: the model may need retraining."
    else:
        verdict += ". The population is close enough to the training data."
    return {
        "verdict": verdict,
        "retrain_suggested": retrain,
        "score_psi": score_psi,
        "feature_psi": feature_psi,
    }
