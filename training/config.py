"""Training settings: a frozen object validated when built, loadable from a TOML file.

Each sub-table of ``[train]`` is a settings model of its own held in a field of
:class:`TrainConfig` (``[train.outcome]``, ``[train.lightgbm]``, ``[train.intervention]``); a
new sub-table is a new model and one more field, and the shared loader names it in errors.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Literal, Self, get_args

from pydantic import Field, StrictBool, model_validator

from riskstrat.common.defaults import SEED
from riskstrat.common.settings import Integer, load_table, settings_model
from riskstrat.features.labels import Outcome, labelled_by
from riskstrat.models.description import Strategy
from riskstrat.models.tiers import TierPolicy
from riskstrat.training.rows import RowSampling

TABLE = "train"


@settings_model
class LightGBMParams:
    """LightGBM settings; deterministic, no class reweighting (it ruins probabilities).

    Shallow trees (depth 4, 15 leaves): every score is explained with TreeSHAP, whose cost
    grows with depth; on the synthetic borough they discriminate as well as unlimited
    31-leaf trees and explain people several times faster (docs/figures.md).
    """

    learning_rate: float = Field(0.1, gt=0)
    num_leaves: Integer = Field(15, ge=2)
    max_depth: Integer = Field(4, ge=-1)  # -1: no limit
    min_child_samples: Integer = Field(100, ge=0)
    feature_fraction: float = Field(0.8, gt=0, le=1)
    lambda_l2: float = Field(1.0, ge=0)
    max_rounds: Integer = Field(2000, ge=1)
    early_stopping_rounds: Integer = Field(100, ge=1)
    threads: Integer = Field(2, ge=1)  # fixed, so that training is deterministic

    def booster_params(self, seed: int) -> dict:
        return {
            "objective": "binary",
            "metric": "binary_logloss",
            "learning_rate": self.learning_rate,
            "num_leaves": self.num_leaves,
            "max_depth": self.max_depth,
            "min_child_samples": self.min_child_samples,
            "feature_fraction": self.feature_fraction,
            "lambda_l2": self.lambda_l2,
            "deterministic": True,
            "force_row_wise": True,
            "num_threads": self.threads,
            "seed": seed,
            "verbosity": -1,
        }


STRATEGIES: tuple[str, ...] = get_args(Strategy)


@settings_model
class InterventionSettings:
    """How training treats help that the risk list itself triggered (``[train.intervention]``).

    A list that works changes the outcomes the next model learns from: listed people get help,
    are admitted less, and a model that learns from that period learns that their features
    mean lower risk. Which rows help touched comes from ``[exposure]``
    (``features.exposure``); the strategies (``training.intervention``):

    - ``naive``: learn from every row as observed. The model predicts the risk that remains
      under today's list, which understates the risk of the people the list finds.
    - ``as_feature``: a partially linear logistic model, logit P(y) = f(X) + beta . a, with
      ``a`` the share of the horizon under each kind of help; the saved model is f(X)
      (help set to none). Assumes help acts as a constant odds ratio per kind, and needs
      unexposed rows at every level of risk where exposed ones are: training refuses when a
      decile of a first-pass score has fewer than ``min_overlap`` unexposed rows.
    - ``unexposed``: learn only from rows that no help touched in their horizon. Valid when
      who gets help among the listed depends on nothing that predicts the outcome beyond
      the features.
    - ``censor``: stop follow-up where help began: an outcome before help keeps its label;
      a row without one is censored and left out, the others weighted by the inverse
      probability of not being censored given the features (weights at most
      ``max_weight``); rows with help already running on the as-of date are left out.
      Assumes censoring depends on nothing beyond the features that predicts the outcome.
    """

    strategy: Strategy = "unexposed"  # chosen by `riskstrat bench retrain`: docs/training.md
    min_overlap: float = Field(0.05, ge=0, lt=1)
    max_weight: float = Field(20.0, ge=1)


@settings_model
class TrainConfig:
    """Which snapshots to learn from and test on, how to split patients (``[train]``), and
    the tier policy (``[train.tiers]``) whose cut-offs are fixed on the test population and
    saved with the model. ``[train.intervention]`` says how to treat help the risk list itself
    triggered (:class:`InterventionSettings`).

    Every training as-of date plus the horizon must end on or before the test as-of date,
    so the test period is never seen in training (an honest out-of-time test).

    Early stopping on the validation patients picks the number of rounds; ``refit`` says what
    the final booster then learns from (``training.fit``): ``none`` the train part only,
    ``validation`` the train and validation parts, ``crossfit`` every row, Platt scaling then
    fit on out-of-fold raw scores. ``refit_scale_rounds`` grows the rounds in proportion to
    the rows. ``calibration_snapshots`` fits Platt scaling on all training as-of dates or on
    the latest only (nearest the population scored, but fewer rows; docs/figures.md).
    ``[train.rows]`` says which training snapshots the fit learns from (``training.rows``:
    every positive, a weighted share of the negatives); the test rows are never sampled.
    """

    train_as_of: tuple[date, ...] = Field(
        (date(2023, 1, 1), date(2023, 7, 1), date(2024, 1, 1)), min_length=1
    )
    test_as_of: date = date(2025, 1, 1)
    outcome: Outcome = Field(default_factory=Outcome)
    seed: Integer = SEED
    validation_share: float = Field(0.15, gt=0, lt=1)
    calibration_share: float = Field(0.15, gt=0, lt=1)
    bootstrap: Integer = Field(200, ge=0)
    lightgbm: LightGBMParams = Field(default_factory=LightGBMParams)
    tiers: TierPolicy = Field(default_factory=TierPolicy)
    refit: Literal["none", "validation", "crossfit"] = "crossfit"
    crossfit_folds: Integer = Field(5, ge=2, le=20)
    refit_scale_rounds: StrictBool = False
    calibration_snapshots: Literal["latest", "all"] = "all"
    intervention: InterventionSettings = Field(default_factory=InterventionSettings)
    rows: RowSampling = Field(default_factory=RowSampling)

    @model_validator(mode="after")
    def _test_period_unseen(self) -> Self:
        latest = max(self.train_as_of)
        if not labelled_by(latest, self.outcome.horizon_days, self.test_as_of):
            raise ValueError(
                f"training labels of {latest} run {self.outcome.horizon_days} days, past the "
                f"test as-of date {self.test_as_of}: the test would leak"
            )
        return self

    @model_validator(mode="after")
    def _training_keeps_most(self) -> Self:
        if self.validation_share + self.calibration_share >= 0.8:
            raise ValueError("validation_share + calibration_share must stay under 0.8")
        return self

    @classmethod
    def from_toml(cls, path: Path) -> TrainConfig:
        """Read ``[train]`` and its sub-tables; errors name the file, table and field."""
        return load_table(path, TABLE, cls)
