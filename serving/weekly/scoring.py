"""The week's one scoring code path: what each person's own features give (risk, flags, the
list's feature columns) and the reasons of the people explained.

Both are functions of any slice of people, so the weekly run applies them to the whole
borough in pandas (``LocalScorer``) or to each Spark partition on the executors
(``serving.weekly.spark_scoring``) and gets the same rows. What needs everyone at once (tiers,
who is explained, ranks) stays in ``serving.weekly.run``.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import pandas as pd

from riskstrat.models.benefit import BenefitModel, expected_prevented
from riskstrat.models.bundle import ModelBundle
from riskstrat.serving.weekly.config import WeeklyConfig
from riskstrat.serving.weekly.flags import flag_columns
from riskstrat.serving.weekly.referrals import COLUMNS as REFERRAL_COLUMNS

KEY = "patient_id"
RISK = "risk"
AVOIDABLE_RISK = "avoidable_risk"  # the second model's risk, when the week has one
REASON_COLUMNS = (
    "patient_id",
    "position",
    "concept",
    "feature",
    "value",
    "contribution",
    "sentence",
)
REASON_DTYPES = {"position": "int64", "value": "float64", "contribution": "float64"}
WIDE_REASONS = ("reason_1", "reason_2", "reason_3")


def kept_features(bundle: ModelBundle, columns: pd.Index | list[str]) -> list[str]:
    """The feature columns the week keeps for everyone: age, the referral filter's inputs and
    the drift check's key features (the rest of the model's inputs stay where they were built)."""
    drift = bundle.described.drift_reference
    wanted = ["age", *REFERRAL_COLUMNS, *(drift.features if drift else ())]
    return [c for c in dict.fromkeys(wanted) if c in columns]


def person_rows(features: pd.DataFrame, bundle: ModelBundle, config: WeeklyConfig) -> pd.DataFrame:
    """Per person (the index): the kept feature columns, ``risk`` and the flag columns."""
    kept = features[kept_features(bundle, features.columns)]
    return kept.assign(**{RISK: bundle.predict(features)}).join(flag_columns(features, config))


def reason_table(bundle: ModelBundle, features: pd.DataFrame, kept: int) -> pd.DataFrame:
    """Up to ``kept`` reasons per person either way, in the rows' order, one row each."""
    reasons = bundle.explain(features, kept, signed=True)
    long = [
        (person, position, r.concept, r.feature, r.value, r.contribution, r.sentence)
        for person, why in zip(features.index, reasons, strict=True)
        for position, r in enumerate(why, start=1)
    ]
    return pd.DataFrame(long, columns=list(REASON_COLUMNS)).astype(REASON_DTYPES)


def reason_columns(reasons: pd.DataFrame, explained: pd.Index) -> pd.DataFrame:
    """The top three reasons that raise risk as ``reason_1..3`` (sentences) and
    ``reason_concepts`` (their concepts), for each ``explained`` person ("" and [] if none)."""
    raising = reasons[reasons["contribution"] > 0].groupby(KEY, sort=False).head(3)
    sentences: dict[str, list[str]] = {}
    concepts: dict[str, list[str]] = {}
    for person, sentence, concept in zip(
        raising[KEY], raising["sentence"], raising["concept"], strict=True
    ):
        sentences.setdefault(person, []).append(sentence)
        concepts.setdefault(person, []).append(concept)
    columns = {
        name: [said[k] if len(said := sentences.get(p, [])) > k else "" for p in explained]
        for k, name in enumerate(WIDE_REASONS)
    }
    return pd.DataFrame(columns, index=explained, dtype="str").assign(
        reason_concepts=pd.Series(
            [concepts.get(p, []) for p in explained], index=explained, dtype=object
        )
    )


def in_order(reasons: pd.DataFrame, explained: pd.Index) -> pd.DataFrame:
    """``reasons`` sorted as ``explained`` lists the people, then by position (a distributed
    computation returns them in any order)."""
    where = explained.get_indexer(reasons[KEY])
    if (where < 0).any():
        stray = reasons[KEY][where < 0].iloc[0]
        raise ValueError(f"reasons came back for {stray}, who was not to be explained")
    order = np.lexsort((reasons["position"].to_numpy(), where))
    return reasons.iloc[order].reset_index(drop=True)


class Scorer(Protocol):
    """Scores a week's people wherever their features are."""

    def rows(self) -> pd.DataFrame:
        """``person_rows`` for everyone, indexed by patient (any order)."""
        ...

    def risk(self, bundle: ModelBundle) -> pd.Series:
        """Another model's risk for everyone, from the same features, indexed by patient
        (any order); asked before ``reasons``."""
        ...

    def benefit(self, model: BenefitModel) -> pd.DataFrame:
        """``expected_prevented`` for everyone, indexed by patient (any order); asked before
        ``reasons``."""
        ...

    def reasons(self, explained: pd.Index) -> pd.DataFrame:
        """``reason_table`` for the ``explained`` patients, in their order."""
        ...


class LocalScorer:
    """Scores features held in pandas, indexed by patient."""

    def __init__(self, features: pd.DataFrame, bundle: ModelBundle, config: WeeklyConfig) -> None:
        self.features, self.bundle, self.config = features, bundle, config

    def rows(self) -> pd.DataFrame:
        return person_rows(self.features, self.bundle, self.config)

    def risk(self, bundle: ModelBundle) -> pd.Series:
        return pd.Series(bundle.predict(self.features), index=self.features.index, name=RISK)

    def benefit(self, model: BenefitModel) -> pd.DataFrame:
        return expected_prevented(model, self.features)

    def reasons(self, explained: pd.Index) -> pd.DataFrame:
        chosen = self.features.index.isin(explained)
        return in_order(
            reason_table(self.bundle, self.features[chosen], self.config.reasons_kept), explained
        )
