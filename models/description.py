"""What a model is, typed: saved in the bundle and read by training, promotion, serving, the
weekly run and the model card, so that none of them rebuilds it from strings.

It says what the model predicts (the outcome), what it learnt from (the training as-of dates
and the data's fingerprint), how it was tested (out of time, or on held-out groups), how well
(the metrics), how it treated help the risk list itself triggered, the tier cut-offs that the
API and the lists both apply, where a risk falls in the test population, and the drift
reference the weekly run compares against.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from riskstrat.features.labels import Admissions
from riskstrat.models.drift import DriftReference
from riskstrat.models.tiers import Tiers

_FROZEN = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="constants")


class OutcomeDescription(BaseModel):
    """What the model predicts.

    From contract tables: an emergency admission (or death, with ``include_death``) starting
    within ``horizon_days`` of the as-of date, any or only a potentially avoidable one
    (``admissions``; bundles saved before it was recorded predict any). From a feature table:
    its ``label_column``.
    """

    model_config = _FROZEN

    name: str = Field(min_length=1)
    horizon_days: int = Field(ge=1, le=1095)
    include_death: bool = False
    admissions: Admissions = "any"
    label_column: str | None = None

    def sentence(self) -> str:
        """The outcome in words, for the model card and the reports."""
        if self.label_column is not None:
            return f"the feature table's label column '{self.label_column}' (1 = the outcome)"
        what = "an emergency admission or death" if self.include_death else "an emergency admission"
        if self.admissions == "avoidable":
            what = (
                "a potentially avoidable emergency admission (a primary diagnosis usually "
                "managed in the community, such as COPD, heart failure or a urinary infection)"
            )
        return f"{what} within {self.horizon_days} days of the as-of date (that day included)"


class TableColumns(BaseModel):
    """For a model trained on a feature table: the columns that were not features."""

    model_config = _FROZEN

    label: str
    group: str | None = None
    time: str | None = None


class TestDesign(BaseModel):
    """How the model was tested: out of time (a later as-of date than any training label),
    or on a share of groups (people) held out when the data have no time column."""

    model_config = _FROZEN
    __test__ = False  # not a pytest test class, whatever its name

    kind: Literal["out_of_time", "held_out_groups"]
    as_of: date | None = None  # out of time: the test as-of date
    held_out_share: float | None = Field(None, gt=0.0, lt=1.0)
    seed: int | None = None  # held-out groups: the split's seed, so promotion can rebuild it

    def phrase(self) -> str:
        """ "out of time (as of 2025-01-01)" or "on 20% of groups held out (not out of time)"."""
        if self.kind == "out_of_time":
            return f"out of time (as of {self.as_of})" if self.as_of else "out of time"
        return f"on {self.held_out_share:.0%} of groups held out (not out of time)"


class FitDescription(BaseModel):
    """How the final booster and its calibration were fit (``training.fit``): what the final
    booster learnt after early stopping chose the rounds, and which rows Platt scaling saw."""

    model_config = _FROZEN

    refit: Literal["none", "validation", "crossfit"] = "none"
    crossfit_folds: int | None = None
    calibration_snapshots: Literal["latest", "all"] = "all"

    def sentence(self) -> str:
        """The fitting design in words, for the model card."""
        stop = "Early stopping on a validation part of the people chose the number of rounds; "
        snapshots = (
            "all training as-of dates"
            if self.calibration_snapshots == "all"
            else "the latest training as-of date only"
        )
        if self.refit == "crossfit":
            return (
                stop + "the final model then learnt every training row, and Platt calibration "
                f"was fit on out-of-fold scores from {self.crossfit_folds} folds (each person "
                "scored by a model that had not seen them; validation people left out), on "
                f"{snapshots}."
            )
        if self.refit == "validation":
            return (
                stop + "the final model then learnt the training and validation parts, and "
                f"Platt calibration was fit on a third part of other people, on {snapshots}."
            )
        return (
            stop + "the final model learnt the training part only, and Platt calibration was "
            f"fit on a third part of other people, on {snapshots}."
        )


Strategy = Literal["naive", "as_feature", "unexposed", "censor"]  # [train.intervention]
STRATEGY_WORDS: dict[str, str] = {
    "naive": "learnt from every snapshot as observed, help the list triggered included, so "
    "it learns the risk that remained after that help",
    "as_feature": "learnt with the help the list triggered as a known adjustment beside the "
    "features (a partially linear logistic model) and predicts the risk with no such help",
    "unexposed": "learnt only from snapshots whose following horizon no list-triggered help "
    "touched, so it predicts the risk without such help",
    "censor": "learnt with follow-up stopped where list-triggered help began (snapshots "
    "censored there, the rest weighted by the inverse chance of not being censored), so it "
    "predicts the risk without such help",
}


class RecordedExposureRule(BaseModel):
    """The ``[exposure]`` rule a model was trained with (``features.exposure.ExposureRule``'s
    values, kept here so that loading a model never needs the query engine)."""

    model_config = _FROZEN

    kinds: tuple[str, ...] = Field(min_length=1)
    codes: tuple[str, ...] = ()
    open_days: int = Field(ge=1)
    text: str  # the rule in words, as ExposureRule.describe() gave it


class InterventionDescription(BaseModel):
    """How training treated help that the risk list itself triggered (``[train.intervention]``).

    Bundles saved before this was recorded load as ``naive`` with no rule (``exposure`` None):
    they learnt from every snapshot as observed.
    """

    model_config = _FROZEN

    strategy: Strategy = "naive"
    exposure: RecordedExposureRule | None = None  # None: a feature table, or not recorded
    rows_exposed: int = Field(0, ge=0)  # training rows that help touched in their horizon
    rows_removed: int = Field(0, ge=0)  # left out because help touched them (unexposed, censor)
    rows_censored: int = Field(0, ge=0)  # censor: of those, censored where help began
    odds_ratios: dict[str, float] = Field(default_factory=dict)  # as_feature: exp(beta) per kind
    overlap_exposed_share: tuple[float, ...] = ()  # as_feature: exposed share per score decile

    def sentence(self) -> str:
        """The strategy in plain words, for the model card."""
        what = STRATEGY_WORDS[self.strategy]
        if self.exposure is None:
            return f"The model {what}; which rows help touched was not known."
        if self.rows_exposed == 0 and self.strategy != "naive":
            return (
                f"The model {what}. Help counted as list-triggered: {self.exposure.text}; it "
                "touched no training row, so the model learnt exactly as a naive refit would."
            )
        return (
            f"The model {what}. Help counted as list-triggered: {self.exposure.text}; it "
            f"touched {self.rows_exposed:,} training rows, of which {self.rows_removed:,} were "
            "left out."
        )


class ModelDescription(BaseModel):
    """Everything about a trained model that is not its trees, calibration or feature specs."""

    model_config = _FROZEN

    outcome: OutcomeDescription
    train_as_of: tuple[date, ...]
    test: TestDesign
    data_fingerprint: str
    table: TableColumns | None = None  # set when trained on a feature table
    metrics: dict[str, float]
    fit: FitDescription = FitDescription()
    intervention: InterventionDescription = InterventionDescription()
    tiers: Tiers
    test_risk_quantiles: tuple[float, ...] = Field(min_length=2)  # percentiles 0..100
    drift_reference: DriftReference | None = None

    def percentile(self, risk: np.ndarray) -> np.ndarray:
        """Where each risk falls among the model's test population (0-100)."""
        quantiles = np.asarray(self.test_risk_quantiles)
        return np.interp(risk, quantiles, np.linspace(0, 100, len(quantiles)))
