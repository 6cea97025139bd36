"""Train from contract tables: snapshots, fit, out-of-time test, MLflow run, registration."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from riskstrat.common.progress import QUIET, Progress
from riskstrat.contract.engines import Engine
from riskstrat.contract.needs import absent_kinds, present_kinds, require_for
from riskstrat.contract.tables import ContractTables, fingerprint
from riskstrat.features.absent import absent_features
from riskstrat.features.engine import build_features, cohort_context, feature_specs
from riskstrat.features.exposure import ExposureRule, exposure
from riskstrat.features.labels import build_labels, labelled_by
from riskstrat.models.bundle import ModelBundle
from riskstrat.models.description import (
    FitDescription,
    ModelDescription,
    OutcomeDescription,
    TableColumns,
    TestDesign,
)
from riskstrat.models.drift import DriftReference, Profile
from riskstrat.training.assess import Assessment, assess, matched_truth, write_report
from riskstrat.training.config import TrainConfig
from riskstrat.training.fit import Snapshots, fit_bundle
from riskstrat.training.intervention import (
    InterventionFacts,
    table_facts,
    training_snapshots,
    unaffected,
)
from riskstrat.training.rows import ChosenRows, choose_rows, unweighted_share
from riskstrat.training.table import load_table
from riskstrat.training.tracking import LoggedRun, log_training

TRAINING = "training"
DEFAULT_RULE = ExposureRule()
STEPS = 4


@dataclass(frozen=True, slots=True)
class TrainResult:
    bundle: ModelBundle
    metrics: dict[str, float]
    run: LoggedRun
    report_dir: Path
    # Feature columns whose event kinds the data hold none of, with those kinds.
    absent_features: dict[str, tuple[str, ...]] = field(default_factory=dict)


def _rows(features: pd.DataFrame, labels: pd.DataFrame) -> Snapshots:
    """The rows of ``features`` whose label (from ``labels``, on any dates) is known."""
    label = labels["label"].reindex(features.index)
    keep = label.notna().to_numpy()
    return Snapshots(features[keep], label[keep].astype(float))


def snapshots_at(sources: ContractTables, labels: pd.DataFrame, as_of: date) -> Snapshots:
    """Every labelled snapshot of one as-of date, unsampled (a test or later date), with
    compact features: one date's rows in memory at a time."""
    return _rows(build_features(sources, [as_of], compact=True), labels)


class LaterDates(Mapping[date, Snapshots]):
    """The snapshots of later as-of dates, each built when asked for and not kept, so that
    the drift table holds one date's rows at a time."""

    def __init__(self, sources: ContractTables, labels: pd.DataFrame, dates: tuple[date, ...]):
        self._sources, self._labels, self._dates = sources, labels, dates

    def __getitem__(self, as_of: date) -> Snapshots:
        if as_of not in self._dates:
            raise KeyError(as_of)
        return snapshots_at(self._sources, self._labels, as_of)

    def __iter__(self) -> Iterator[date]:
        return iter(self._dates)

    def __len__(self) -> int:
        return len(self._dates)


def later_as_of(sources: ContractTables, test_as_of: date, horizon_days: int) -> tuple[date, ...]:
    """Quarterly as-of dates after the test date whose whole horizon the data covers."""
    last = sources.last_event_date()
    dates = []
    for months in (3, 6, 9, 12, 15, 18):
        index = test_as_of.year * 12 + test_as_of.month - 1 + months
        as_of = date(index // 12, index % 12 + 1, test_as_of.day)
        if last is not None and labelled_by(as_of, horizon_days, last):
            dates.append(as_of)
    return tuple(dates)


@dataclass(frozen=True, slots=True)
class TrainingData:
    """Labels (with the outcome's date) and help on every date asked, the training rows as
    ``[train.rows]`` keeps them (``training.rows``) and the configured strategy learns
    them."""

    labels: pd.DataFrame
    helped: pd.DataFrame
    chosen: ChosenRows
    train: Snapshots
    facts: InterventionFacts


def training_data(
    sources: ContractTables,
    config: TrainConfig,
    rule: ExposureRule,
    dates: tuple[date, ...],
    progress: Progress | None = None,
) -> TrainingData:
    """Everything a training run learns from, with labels and help on ``dates`` (the
    training and test dates and any others to score) and help as ``rule`` says; one path for
    ``train_from_contract`` and the retraining benchmark. Only the sampled training rows'
    features leave the engine (``snapshots_at`` gives another date's)."""
    horizon = config.outcome.horizon_days
    labels = build_labels(sources, dates, config.outcome, with_date=True)
    helped = exposure(sources, dates, horizon, rule)
    chosen = choose_rows(labels["label"], config.train_as_of, config.rows, config.seed)
    features = _chosen_features(sources, chosen, config.train_as_of, progress)
    train, facts = training_snapshots(
        config.intervention,
        features,
        labels,
        helped,
        as_of_dates=config.train_as_of,
        horizon_days=horizon,
        rule=rule,
        specs=feature_specs(),
        sampled=chosen.weights,
    )
    return TrainingData(labels, helped, chosen, train, facts)


def _chosen_features(
    sources: ContractTables,
    chosen: ChosenRows,
    dates: tuple[date, ...],
    progress: Progress | None,
) -> pd.DataFrame:
    """The chosen rows' compact features, one as-of date per query: the engine's own memory
    (its joins and aggregates) then holds one date's cohort at a time, not all of them."""
    keys = chosen.keys
    frames = [
        build_features(
            sources,
            [as_of],
            progress=progress,
            rows=keys.filter(pc.equal(keys["as_of"], pa.scalar(as_of, pa.date32()))),
            compact=True,
        )
        for as_of in sorted(set(dates))
    ]
    return pd.concat(frames) if len(frames) > 1 else frames[0]


def train_from_contract(
    data_dir: Path,
    config: TrainConfig,
    *,
    tracking_uri: str,
    artifact_root: Path | None,
    report_dir: Path,
    truth_path: Path | None = None,
    progress: Progress | None = None,
    engine: Engine | None = None,
    exposure_rule: ExposureRule = DEFAULT_RULE,
) -> TrainResult:
    """The whole training run on validated contract tables in ``data_dir``; features and
    labels are built on ``engine`` (DuckDB by default). ``exposure_rule`` (``[exposure]``)
    says which help the list triggered, for ``config.intervention`` and the report."""
    say = progress or QUIET
    # Refused now, not after the fitting, if it is for another outcome than the labels.
    truth = (
        matched_truth(pd.read_parquet(truth_path), config.outcome)
        if truth_path is not None
        else None
    )
    sources = ContractTables.from_dir(data_dir, engine)
    present = present_kinds(sources)
    require_for("train", present, str(data_dir))
    absent = absent_features(absent_kinds(present), [s.name for s in feature_specs()])
    later = later_as_of(sources, config.test_as_of, config.outcome.horizon_days)
    dates = (*config.train_as_of, config.test_as_of, *later)
    say(f"building features and labels for {len(dates)} as-of dates")
    say.advance(TRAINING, 0, STEPS, "features and labels")
    data = training_data(sources, config, exposure_rule, dates, progress=say)
    labels, train, intervention = data.labels, data.train, data.facts
    test = snapshots_at(sources, labels, config.test_as_of)
    say(
        f"training on {len(train.labels):,} of {data.chosen.labelled:,} snapshots "
        f"(every positive, {config.rows.negative_fraction:g} of the negatives; "
        f"{config.intervention.strategy}: "
        f"{intervention.rows_exposed:,} touched by list-triggered help, "
        f"{intervention.rows_removed:,} left out), testing on {len(test.labels):,} people"
    )
    say.advance(TRAINING, 1, STEPS, "fitting")
    bundle, facts = fit_bundle(train, feature_specs(), config)
    say(f"assessing out of time on {config.test_as_of} and {len(later)} later date(s)")
    say.advance(TRAINING, 2, STEPS, "assessing out of time")
    assessment = assess(
        bundle,
        train=train,
        test=test,
        test_as_of=config.test_as_of,
        later=LaterDates(sources, labels, later),
        context=cohort_context(sources, [config.test_as_of]),
        truth=truth,
        policy=config.tiers,
        bootstrap=config.bootstrap,
        seed=config.seed,
        test_unaffected=unaffected(test.features.index, data.helped),
    )
    outcome = config.outcome
    return _finish(
        bundle,
        facts,
        intervention,
        assessment,
        train,
        test,
        outcome=OutcomeDescription(
            name=outcome.name,
            horizon_days=outcome.horizon_days,
            include_death=outcome.include_death,
            admissions=outcome.admissions,
        ),
        train_as_of=config.train_as_of,
        test_design=TestDesign(kind="out_of_time", as_of=config.test_as_of),
        profiled=train.features[unweighted_share(train.features.index, config.rows, config.seed)],
        data_fingerprint=fingerprint(data_dir),
        table=None,
        source=str(data_dir),
        config=config,
        tracking_uri=tracking_uri,
        artifact_root=artifact_root,
        report_dir=report_dir,
        say=say,
        absent=absent,
    )


def train_from_table(
    path: Path,
    label: str,
    config: TrainConfig,
    *,
    group: str | None,
    time: str | None,
    tracking_uri: str,
    artifact_root: Path | None,
    report_dir: Path,
    progress: Progress | None = None,
) -> TrainResult:
    """The training run on a data scientist's own feature table (see ``training.table``)."""
    say = progress or QUIET
    say.advance(TRAINING, 0, STEPS, "reading the table")
    data = load_table(
        path,
        label,
        group,
        time,
        horizon_days=config.outcome.horizon_days,
        seed=config.seed + 1,  # not the seed of the patient parts: another draw
    )
    intervention, caveat = table_facts(config.intervention)
    if caveat:
        say(caveat)
    say.advance(TRAINING, 1, STEPS, "fitting")
    say(
        f"training on {len(data.train.labels):,} rows, testing on {len(data.test.labels):,} "
        f"{data.test_design.phrase()}; {data.unlabelled:,} rows without a label left out"
    )
    bundle, facts = fit_bundle(data.train, data.specs, config)
    say.advance(TRAINING, 2, STEPS, "assessing")
    assessment = assess(
        bundle,
        train=data.train,
        test=data.test,
        test_as_of=None,
        later={},
        context=pd.DataFrame(),
        truth=None,
        policy=config.tiers,
        bootstrap=config.bootstrap,
        seed=config.seed,
        test_unaffected=None,
    )
    return _finish(
        bundle,
        facts,
        intervention,
        assessment,
        data.train,
        data.test,
        outcome=OutcomeDescription(
            name=f"table:{label}", horizon_days=config.outcome.horizon_days, label_column=label
        ),
        train_as_of=data.train_times,
        test_design=data.test_design,
        data_fingerprint=hashlib.sha256(path.read_bytes()).hexdigest(),
        table=TableColumns(label=label, group=group, time=time),
        source=str(path),
        config=config,
        tracking_uri=tracking_uri,
        artifact_root=artifact_root,
        report_dir=report_dir,
        say=say,
    )


def drift_reference(
    bundle: ModelBundle, features: pd.DataFrame, key_features: int = 10
) -> DriftReference:
    """Profiles of the score and of the most used features on the training data.

    Saved with the model so that each weekly run can tell how far its population has moved
    (``models.drift``). Key features are those with the largest total gain in the trees.
    """
    gain = bundle.booster.feature_importance(importance_type="gain")
    names = [bundle.feature_names[i] for i in np.argsort(-gain, kind="stable")[:key_features]]
    return DriftReference(
        score=Profile.of(bundle.predict(features)),
        features={n: Profile.of(features[n].to_numpy()) for n in names},
    )


def _finish(
    bundle: ModelBundle,
    facts: dict,
    intervention: InterventionFacts,
    assessment: Assessment,
    train: Snapshots,
    test: Snapshots,
    *,
    outcome: OutcomeDescription,
    train_as_of: tuple[date, ...],
    test_design: TestDesign,
    profiled: pd.DataFrame | None = None,
    data_fingerprint: str,
    table: TableColumns | None,
    source: str,
    config: TrainConfig,
    tracking_uri: str,
    artifact_root: Path | None,
    report_dir: Path,
    say: Progress,
    absent: dict[str, tuple[str, ...]] | None = None,
) -> TrainResult:
    """The description into the bundle, the report folder, and the MLflow run with the
    challenger; ``absent`` names the features whose event kinds the data lack. The drift
    reference profiles ``profiled`` (training rows as the population has them; default:
    every training row)."""
    absent = absent or {}
    metrics = assessment.metrics | {k: float(v) for k, v in facts.items()} | intervention.metrics()
    bundle = bundle.describe(
        ModelDescription(
            outcome=outcome,
            train_as_of=train_as_of,
            test=test_design,
            data_fingerprint=data_fingerprint,
            table=table,
            metrics=metrics,
            fit=FitDescription(
                refit=config.refit,
                crossfit_folds=config.crossfit_folds if config.refit == "crossfit" else None,
                calibration_snapshots=config.calibration_snapshots,
            ),
            intervention=intervention.description(facts),
            tiers=assessment.tiers,
            test_risk_quantiles=tuple(np.quantile(assessment.test_risk, np.linspace(0, 1, 101))),
            drift_reference=drift_reference(
                bundle, train.features if profiled is None else profiled
            ),
        )
    )
    write_report(report_dir, replace(assessment, metrics=metrics), bundle, absent)
    say("logging the run and registering the model in MLflow")
    say.advance(TRAINING, 3, STEPS, "registering in MLflow")
    params = {
        "seed": config.seed,
        "outcome": outcome.name,
        "train_as_of": ",".join(d.isoformat() for d in train_as_of)[:500],
        "test_design": test_design.phrase(),
        "data_fingerprint": data_fingerprint,
        **{f"tiers_{k}": v for k, v in asdict(config.tiers).items()},
        "refit": config.refit,
        "calibration_snapshots": config.calibration_snapshots,
        # A feature table's rows are all learnt: [train.rows] samples contract snapshots.
        "rows_negative_fraction": config.rows.negative_fraction if table is None else 1.0,
        "intervention_strategy": intervention.strategy,
        "exposure_rule": intervention.rule.describe() if intervention.rule else "unknown",
        "absent_event_kinds": ",".join(sorted({k for ks in absent.values() for k in ks})),
        **{f"lgb_{k}": v for k, v in config.lightgbm.booster_params(config.seed).items()},
    }
    run = log_training(
        tracking_uri=tracking_uri,
        artifact_root=artifact_root,
        bundle=bundle,
        params=params,
        metrics=metrics,
        example=test.features.head(50),
        report_dir=report_dir,
        datasets={
            "training": (train.features.assign(label=train.labels), source),
            "test": (test.features.assign(label=test.labels), source),
        },
    )
    say.advance(TRAINING, STEPS, STEPS, "registered")
    return TrainResult(bundle, metrics, run, report_dir, absent)
