"""The whole job on a synthetic borough, as a library function: generate, validate, train,
promote, list two weeks and evaluate the built-in plans (what ``riskstrat demo`` and
``make run`` do). Both outcome models are trained and promoted (any emergency admission, and
potentially avoidable ones), and the weeks show both risks; ``second_model=False`` leaves
the second out. The benefit learner learns from the borough's past list runs, and each
week proposes offers within ``DEMO_PLACES`` a locality per kind of help, ranked by it, with
the lottery at the capacity boundary.

The command line parses options and prints the :class:`DemoResult`; everything else is
here, so the demo can also be run from a notebook or a test.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from riskstrat.common.defaults import SEED, WORKDIR, WorkFolder
from riskstrat.common.errors import UserError
from riskstrat.common.progress import QUIET, Progress

if TYPE_CHECKING:
    from riskstrat.impact.results import EvaluationResults
    from riskstrat.serving.weekly.config import OfferSettings
    from riskstrat.serving.weekly.run import WeeklyResult
    from riskstrat.training.pipeline import TrainResult
    from riskstrat.training.promote import Decision

# People in the demo's borough: enough for a model worth promoting, small enough for minutes.
DEMO_PATIENTS = 50_000
STEPS = 5
DEMO_PLACES = 10  # offers a week per locality and kind of help: a team's reablement slots


@dataclass(frozen=True)
class DemoResult:
    """What the demo made, and where: the folders below are all under ``workdir``."""

    workdir: Path
    tracking_uri: str
    training: TrainResult
    decision: Decision
    weekly: WeeklyResult  # the second of the two weeks
    # The model of potentially avoidable admissions (None when left out).
    avoidable_training: TrainResult | None
    avoidable_decision: Decision | None
    evaluations: tuple[EvaluationResults, ...]
    seconds: float

    def evaluation_report(self, evaluation: EvaluationResults) -> Path:
        """The HTML report of one of the demo's evaluations."""
        return WorkFolder(self.workdir).evaluations / evaluation.name / "report.html"


def run_demo(
    workdir: Path = WORKDIR,
    patients: int = DEMO_PATIENTS,
    seed: int = SEED,
    *,
    tracking_uri: str,
    progress: Progress = QUIET,
    second_model: bool = True,
) -> DemoResult:
    """Run the main job on a synthetic borough of ``patients`` people under ``workdir``,
    registering models at ``tracking_uri``; ``progress`` hears each of the five steps.
    ``second_model``: also train, promote and list with the model of potentially avoidable
    admissions.

    A ``UserError`` when no model can be promoted (a borough too small to train on)."""
    from riskstrat.contract.tables import ContractTables
    from riskstrat.contract.validation import validate_dir
    from riskstrat.features.exposure import ExposureRule
    from riskstrat.features.labels import Outcome
    from riskstrat.impact.plan import BUILT_IN_PLANS, PLANS
    from riskstrat.impact.run import evaluate
    from riskstrat.models.registry import registered_name
    from riskstrat.models.store import champion_if_any, load_champion
    from riskstrat.serving.weekly.config import WeeklyConfig
    from riskstrat.serving.weekly.run import SavedBenefit, weekly_run
    from riskstrat.serving.weekly.store import latest_monday
    from riskstrat.sources.synthetic.borough import TRUTH_DIR, generate, write
    from riskstrat.sources.synthetic.config import SynthConfig
    from riskstrat.training.benefit import BenefitSettings, train_benefit
    from riskstrat.training.benefit_card import save_benefit
    from riskstrat.training.config import TrainConfig
    from riskstrat.training.pipeline import train_from_contract
    from riskstrat.training.promote import promote

    began = time.perf_counter()
    train = TrainConfig(seed=seed)
    synth = SynthConfig(patients=patients, seed=seed, truth_as_of=(train.test_as_of,))
    folder = WorkFolder(workdir)
    borough, validated = folder.borough, folder.validated

    progress(f"1/{STEPS} generating a synthetic borough of {patients:,} people (seed {seed})")
    generated = generate(synth, progress=progress)
    write(generated, borough)
    progress(f"    {generated.summary['events']:,} events in {generated.summary['seconds']} s")

    progress(f"2/{STEPS} validating the contract tables")
    report = validate_dir(borough, validated, synth.end)
    progress(
        f"    {sum(t.accepted for t in report.tables):,} rows accepted, "
        f"{sum(t.quarantined for t in report.tables):,} quarantined; counts reconcile: "
        f"{report.reconciles}"
    )

    progress(f"3/{STEPS} training, testing out of time, registering in MLflow, promotion gate")
    training = train_from_contract(
        validated,
        train,
        tracking_uri=tracking_uri,
        artifact_root=folder.artifacts,
        report_dir=folder.report,
        truth_path=borough / TRUTH_DIR / "truth.parquet",
        progress=progress,
    )
    decision = promote(validated, tracking_uri, seed=seed)
    progress(f"    promotion gate: {decision.explain()}")
    if not decision.promoted and decision.champion_version is None:
        raise UserError(f"no champion to score with: {decision.explain()} (try more --patients)")
    avoidable_training = avoidable_decision = None
    if second_model:
        progress(f"3/{STEPS} the second model: potentially avoidable admissions")
        avoidable_training = train_from_contract(
            validated,
            TrainConfig(seed=seed, outcome=Outcome(admissions="avoidable")),
            tracking_uri=tracking_uri,
            artifact_root=folder.artifacts,
            report_dir=folder.avoidable_report,
            truth_path=borough / TRUTH_DIR / "truth.parquet",
            progress=progress,
        )
        name = registered_name("avoidable")
        avoidable_decision = promote(validated, tracking_uri, seed=seed, name=name)
        progress(f"    promotion gate: {avoidable_decision.explain()}")

    progress(f"3/{STEPS} the benefit of each kind of help, learnt from past list runs")
    learning = BenefitSettings(seed=seed)
    with ContractTables.from_dir(validated) as sources:
        benefit = train_benefit(sources, learning, ExposureRule(), until=synth.end)
    save_benefit(benefit, learning, folder.benefit, folder.benefit_card)
    for action in benefit.actions:
        progress(f"    {action.describe()}")

    as_of = latest_monday(synth.end)
    model = load_champion(tracking_uri)
    avoidable = champion_if_any(tracking_uri, registered_name("avoidable"))
    settings = WeeklyConfig(offers=_offers(validated, seed))
    for week in (as_of - timedelta(days=7), as_of):
        progress(f"4/{STEPS} weekly risk lists and offers as of {week} (champion)")
        weekly = weekly_run(
            validated,
            week,
            model,
            folder.lists,
            settings,
            progress=progress,
            avoidable=avoidable,
            benefit=SavedBenefit.load(folder.benefit),
        )

    evaluations = []
    for plan in BUILT_IN_PLANS:
        progress(f"5/{STEPS} did it work? evaluating {plan} by its analysis plan")
        out = folder.evaluations / Path(plan).stem
        evaluations.append(
            evaluate(validated, PLANS / plan, out, progress=progress, model=model.bundle)
        )
    return DemoResult(
        workdir=workdir,
        tracking_uri=tracking_uri,
        training=training,
        decision=decision,
        weekly=weekly,
        avoidable_training=avoidable_training,
        avoidable_decision=avoidable_decision,
        evaluations=tuple(evaluations),
        seconds=time.perf_counter() - began,
    )


def _offers(validated: Path, seed: int) -> OfferSettings:
    """``DEMO_PLACES`` a week for each kind of help in every locality, the lottery on."""
    import pandas as pd

    from riskstrat.contract.schema import PRACTICES
    from riskstrat.features.exposure import ExposureRule
    from riskstrat.serving.weekly.config import OfferSettings

    localities = sorted(pd.read_parquet(validated / PRACTICES.file_name)["locality"].unique())
    places = {str(locality): DEMO_PLACES for locality in localities}
    return OfferSettings(
        capacity={action: places for action in ExposureRule().kinds},
        lottery=True,
        lottery_seed=seed,
    )
