"""The built-in synthetic borough: ``synth`` and ``demo``. The only command module that
imports the synthetic generator (tests/test_boundaries.py)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Literal

import typer

from riskstrat.cli.options import (
    Patients,
    Seed,
    Workdir,
    command,
    date_option,
    option,
    tracking_uri,
)
from riskstrat.cli.reporter import reporting, say
from riskstrat.cli.summaries import say_training, say_week
from riskstrat.common.defaults import SEED, WORKDIR, WorkFolder
from riskstrat.demo import DEMO_PATIENTS

app = typer.Typer()


@command(
    app,
    "synth",
    "generate a synthetic borough with ground truth",
    "riskstrat synth --patients 5000 --seed 1 --out work/borough",
    "riskstrat synth --out work/borough --truth-as-of 2024-01-01 --truth-as-of 2025-01-01",
    "riskstrat synth --patients 5000 --out work/borough-untreated --interventions off",
)
def cmd_synth(
    out: Annotated[Path, option("DIR", "folder for the contract tables and truth/")],
    patients: Patients = 265_000,
    seed: Seed = SEED,
    start: Annotated[date, date_option("first day simulated (the first of a month)")] = date(
        2021, 1, 1
    ),
    end: Annotated[date, date_option("last day of recorded events")] = date(2026, 10, 31),
    truth_as_of: Annotated[
        list[date],
        date_option(
            "a date (first of a month) to write everyone's exact risk for; repeat for more"
        ),
    ] = [date(2024, 1, 1), date(2025, 1, 1)],  # noqa: B006 (typer copies defaults)
    interventions: Annotated[
        Literal["on", "off", "null"],
        typer.Option(
            help="the services with known effects: on, off (none), or null (every event, no effect)"
        ),
    ] = "on",
    verbose: Annotated[
        bool, typer.Option("--verbose", help="also print progress month by month")
    ] = False,
) -> None:
    """Generate a synthetic borough: contract tables, plus the ground truth no model sees."""
    from riskstrat.sources.synthetic.borough import generate_to
    from riskstrat.sources.synthetic.config import Interventions, SynthConfig

    services = {
        "on": Interventions(),
        "off": Interventions.off(),
        "null": Interventions().null_effects(),
    }[interventions]
    config = SynthConfig(
        patients=patients,
        seed=seed,
        start=start,
        end=end,
        truth_as_of=tuple(truth_as_of),
        interventions=services,
    )
    with reporting(steps=verbose) as progress:
        s = generate_to(config, out, progress=progress)
    say(
        f"synthetic borough: {s['people_ever_registered']:,} people, {s['events']:,} events "
        f"in {s['seconds']} s -> {out}"
    )
    for t in s["truth"]:
        say(
            f"  as of {t['as_of']}: 12-month emergency admission rate "
            f"{t['observed_prevalence']:.1%}, "
            f"oracle AUROC {t['oracle_auroc']:.3f}"
        )


@command(
    app,
    "demo",
    "the whole job on a synthetic borough (what `make run` does)",
    "riskstrat demo",
    "riskstrat demo --workdir work --patients 20000 --seed 7",
)
def cmd_demo(
    workdir: Workdir = WORKDIR,
    patients: Patients = DEMO_PATIENTS,
    seed: Seed = SEED,
    second_model: Annotated[
        bool,
        typer.Option(
            "--second-model/--no-second-model",
            help="also train, promote and list with the model of potentially avoidable admissions",
        ),
    ] = True,
) -> None:
    """The main job on a synthetic borough: generate, validate, train, promote (both outcome
    models), list two weeks, evaluate the built-in plans."""
    from riskstrat.demo import run_demo

    uri = tracking_uri(workdir)
    with reporting() as progress:
        done = run_demo(
            workdir,
            patients,
            seed,
            tracking_uri=uri,
            progress=progress,
            second_model=second_model,
        )
    say(f"done in {done.seconds:.0f} s")
    say_training(done.training)
    say(done.decision.explain())
    say(f"evaluation report and model card: {done.training.report_dir}")
    if done.avoidable_training is not None and done.avoidable_decision is not None:
        say("potentially avoidable admissions:")
        say_training(done.avoidable_training)
        say(done.avoidable_decision.explain())
        say(f"its report and model card: {done.avoidable_training.report_dir}")
    say_week(done.weekly)
    for evaluation in done.evaluations:
        say(f"{evaluation.plan.title}: {done.evaluation_report(evaluation)}")
        for design in evaluation.designs:
            # A design the data cannot answer has no outcomes, only its verdict.
            headline = design.outcomes[0].summary if design.outcomes else design.verdict
            say(f"  {design.title}: {headline}")
    say(f"MLflow runs: .venv/bin/mlflow ui --backend-store-uri {uri}")
    say(
        f"start the scoring service: .venv/bin/riskstrat token --name me --role system "
        f"--access {WorkFolder(workdir).access} && .venv/bin/riskstrat serve --workdir {workdir}"
    )
