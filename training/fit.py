"""Fit LightGBM: early stopping on its own patients, a final booster refit on more rows, and
Platt scaling on raw scores of patients that the scoring booster never saw.

Parts are drawn by patient (``training.split``). The booster trained on the train part stops
early on the validation part, which fixes the number of rounds. Then, by ``TrainConfig.refit``:

- ``none``: that booster is final; Platt scaling is fit on the calibration part.
- ``validation``: a final booster learns the train and validation parts; Platt scaling is fit
  on the calibration part, which it never saw.
- ``crossfit``: patients fall into K folds; each fold is scored by a booster trained on the
  other folds, and Platt scaling is fit on these out-of-fold scores of every patient outside
  the validation part (early stopping and calibration keep their own patients). The final
  booster learns every row.

``calibration_snapshots = "latest"`` fits Platt scaling on the latest training as-of date only
(``"all"``: on every one).

Rows may carry weights (the ``censor`` strategy's inverse probability of censoring), which
every booster and Platt scaling honour, and the shares of their horizon under list-triggered
help (the ``as_feature`` strategy, ``training.help_effect``): then each booster learns with
beta . shares as its initial score, beta alternating with the booster from 0, and Platt
scaling keeps the score's slope and intercept only, so the bundle predicts the risk with help
set to none.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from riskstrat.common.errors import UserError
from riskstrat.features.spec import FeatureSpec
from riskstrat.models.bundle import Calibration, ModelBundle
from riskstrat.training.config import TrainConfig
from riskstrat.training.help_effect import (
    ODDS_RATIO,
    OVERLAP,
    ROUNDS,
    check_overlap,
    help_coefficients,
    overlap_table,
    platt_with_help,
)
from riskstrat.training.split import CALIBRATION, TRAIN, VALIDATION, patient_folds, patient_parts


@dataclass(frozen=True, slots=True)
class Snapshots:
    """Features and labels for training: rows are (patient, as-of date), censored removed;
    optionally a weight per row and, per kind of list-triggered help, the share of the row's
    horizon under it (``training.intervention``)."""

    features: pd.DataFrame
    labels: pd.Series
    weights: pd.Series | None = None
    help_shares: pd.DataFrame | None = None

    def __post_init__(self) -> None:
        for name, other in (("labels", self.labels), ("weights", self.weights)):
            if other is not None and not self.features.index.equals(other.index):
                raise ValueError(f"features and {name} must share one index")
        if self.help_shares is not None and not self.features.index.equals(self.help_shares.index):
            raise ValueError("features and help shares must share one index")
        if self.labels.isna().any():
            raise ValueError("labels must not be missing: drop censored rows first")
        if self.weights is not None and not (self.weights > 0).all():
            raise ValueError("weights must be positive")

    @property
    def weight_array(self) -> np.ndarray | None:
        return None if self.weights is None else self.weights.to_numpy(dtype=float)

    @property
    def patient_ids(self) -> pd.Index:
        return self.features.index.get_level_values("patient_id")

    def rows(self, mask: np.ndarray) -> Snapshots:
        return Snapshots(
            self.features[mask],
            self.labels[mask],
            None if self.weights is None else self.weights[mask],
            None if self.help_shares is None else self.help_shares[mask],
        )

    def part(self, parts: pd.Series, *names: str) -> Snapshots:
        """The rows of the patients in any of the named parts, in their original order."""
        return self.rows(np.isin(parts.reindex(self.patient_ids).to_numpy(), names))

    def latest(self) -> np.ndarray:
        """Per row: whether it is a snapshot of the latest as-of date (all rows if undated)."""
        as_of = pd.to_datetime(self.features.index.get_level_values("as_of"))
        if as_of.isna().all():
            return np.ones(len(as_of), dtype=bool)
        return np.asarray(as_of == as_of.max())


def platt(raw: np.ndarray, labels: np.ndarray, weights: np.ndarray | None = None) -> Calibration:
    """Logistic regression of the label on the raw log-odds, unpenalised (scikit-learn 1.8+
    spells "no penalty" ``C=np.inf``; ``penalty=None`` is deprecated)."""
    model = LogisticRegression(C=np.inf, max_iter=1000).fit(
        raw.reshape(-1, 1), labels, sample_weight=weights
    )
    return Calibration(slope=float(model.coef_[0, 0]), intercept=float(model.intercept_[0]))


@dataclass(frozen=True, slots=True)
class _Learner:
    """One LightGBM set-up: the features to use, the booster parameters, and the help
    coefficients whose offset each booster starts from (as_feature)."""

    specs: tuple[FeatureSpec, ...]
    params: dict
    beta: np.ndarray | None = None

    def _dataset(self, data: Snapshots, reference: lgb.Dataset | None = None) -> lgb.Dataset:
        offset = None
        if self.beta is not None and data.help_shares is not None:
            offset = data.help_shares.to_numpy(dtype=float) @ self.beta
        return lgb.Dataset(
            data.features[[s.name for s in self.specs]],
            data.labels,
            reference=reference,
            weight=data.weight_array,
            init_score=offset,
            categorical_feature=[s.name for s in self.specs if s.categorical],
            free_raw_data=False,
        )

    def early_stopped(self, train: Snapshots, valid: Snapshots, config: TrainConfig) -> lgb.Booster:
        train_set = self._dataset(train)
        booster = lgb.train(
            self.params,
            train_set,
            num_boost_round=config.lightgbm.max_rounds,
            valid_sets=[self._dataset(valid, reference=train_set)],
            valid_names=[VALIDATION],
            callbacks=[lgb.early_stopping(config.lightgbm.early_stopping_rounds, verbose=False)],
        )
        booster.free_dataset()
        return booster

    def fixed(self, data: Snapshots, rounds: int) -> lgb.Booster:
        booster = lgb.train(self.params, self._dataset(data), num_boost_round=rounds)
        booster.free_dataset()
        return booster

    def raw(self, booster: lgb.Booster, data: Snapshots) -> np.ndarray:
        return ModelBundle(booster, Calibration(1.0, 0.0), self.specs).raw_score(data.features)


def _rounds(chosen: int, rows: int, stopped_on: int, config: TrainConfig) -> int:
    """The rounds for a booster learning ``rows``: as chosen, or grown with the rows."""
    if not config.refit_scale_rounds:
        return chosen
    return max(1, round(chosen * rows / stopped_on))


def _both_classes(data: Snapshots, what: str) -> None:
    if data.labels.nunique() < 2:
        raise UserError(f"{what} have only one outcome class: too few to train")


def _crossfit(
    data: Snapshots, learner: _Learner, chosen: int, stopped_on: int, config: TrainConfig
) -> np.ndarray:
    """Out-of-fold raw scores: each row scored by a booster that never saw its patient."""
    folds = patient_folds(data.patient_ids, config.crossfit_folds, config.seed)
    raw = np.empty(len(data.labels))
    for k in range(config.crossfit_folds):
        held = folds == k
        learn = data.rows(~held)
        _both_classes(learn, f"the patients outside cross-fitting fold {k}")
        booster = learner.fixed(learn, _rounds(chosen, len(learn.labels), stopped_on, config))
        raw[held] = learner.raw(booster, data.rows(held))
    return raw


def fit_bundle(
    data: Snapshots, specs: tuple[FeatureSpec, ...], config: TrainConfig
) -> tuple[ModelBundle, dict]:
    """Stop early on validation patients, refit as configured, Platt-calibrate out of sample.

    Returns the bundle (its description filled in by the caller) and facts about the fit.
    """
    parts = patient_parts(
        data.patient_ids, config.validation_share, config.calibration_share, config.seed
    )
    train, valid, calib = (data.part(parts, p) for p in (TRAIN, VALIDATION, CALIBRATION))
    for name, part in ((TRAIN, train), (VALIDATION, valid), (CALIBRATION, calib)):
        _both_classes(part, f"the {name} patients")
    learner = _Learner(specs, config.lightgbm.booster_params(config.seed))
    stopped = learner.early_stopped(train, valid, config)
    help_facts: dict[str, float] = {}
    if data.help_shares is not None:
        learner, stopped, help_facts = _alternate(data, train, valid, learner, stopped, config)
    chosen, stopped_on = stopped.best_iteration, len(train.labels)
    if config.refit == "none":
        final, learnt = stopped, train
        scored, raw = calib, learner.raw(stopped, calib)
    elif config.refit == "validation":
        learnt = data.part(parts, TRAIN, VALIDATION)
        final = learner.fixed(learnt, _rounds(chosen, len(learnt.labels), stopped_on, config))
        scored, raw = calib, learner.raw(final, calib)
    else:
        learnt = data
        final = learner.fixed(data, _rounds(chosen, len(data.labels), stopped_on, config))
        outside = parts.reindex(data.patient_ids).to_numpy() != VALIDATION
        scored, raw = (
            data.rows(outside),
            _crossfit(data, learner, chosen, stopped_on, config)[outside],
        )
    if config.calibration_snapshots == "latest":
        latest = scored.latest()
        scored, raw = scored.rows(latest), raw[latest]
        _both_classes(scored, "the calibration rows of the latest as-of date")
    if scored.help_shares is None:
        calibration = platt(raw, scored.labels.to_numpy(), scored.weight_array)
    else:
        calibration, beta = platt_with_help(
            raw,
            scored.help_shares.to_numpy(dtype=float),
            scored.labels.to_numpy(),
            scored.weight_array,
        )
        kinds = scored.help_shares.columns
        help_facts |= {
            f"{ODDS_RATIO}{k}": float(np.exp(b)) for k, b in zip(kinds, beta, strict=True)
        }
    facts = {
        "best_iteration": chosen,
        "rounds_final": final.current_iteration() if config.refit != "none" else chosen,
        "rows_train": len(train.labels),
        "rows_validation": len(valid.labels),
        "rows_calibration": len(calib.labels),
        "rows_final": len(learnt.labels),
        "rows_platt": len(scored.labels),
        "patients_train": int((parts == TRAIN).sum()),
        "patients_validation": int((parts == VALIDATION).sum()),
        "patients_calibration": int((parts == CALIBRATION).sum()),
        "prevalence_train": float(train.labels.mean()),
        **help_facts,
    }
    return ModelBundle(final, calibration, specs), facts


def _alternate(
    data: Snapshots,
    train: Snapshots,
    valid: Snapshots,
    learner: _Learner,
    first_pass: lgb.Booster,
    config: TrainConfig,
) -> tuple[_Learner, lgb.Booster, dict[str, float]]:
    """as_feature: check overlap on the first-pass score, then alternate beta (GLM with the
    booster's score as offset) and the early-stopped booster (beta . shares as initial score).
    Returns the learner with the last beta, its early-stopped booster, and the overlap."""
    shares = data.help_shares
    exposed = (shares.to_numpy(dtype=float) > 0).any(axis=1)
    overlap = overlap_table(learner.raw(first_pass, data), exposed)
    check_overlap(overlap, config.intervention.min_overlap)
    stopped = first_pass
    for _ in range(ROUNDS):
        beta = help_coefficients(
            train.labels.to_numpy(),
            train.help_shares.to_numpy(dtype=float),
            learner.raw(stopped, train),
            train.weight_array,
        )
        learner = replace(learner, beta=beta)
        stopped = learner.early_stopped(train, valid, config)
    facts = {
        f"{OVERLAP}{int(row.decile):02d}": float(row.exposed_share) for row in overlap.itertuples()
    }
    return learner, stopped, facts
