"""Did it work? ``evaluate`` an intervention by its statistical analysis plan."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from riskstrat.cli.options import (
    EngineChoice,
    Workdir,
    command,
    config_option,
    make_engine,
    option,
    tracking_uri,
)
from riskstrat.cli.reporter import reporting, say
from riskstrat.common.defaults import WORKDIR

app = typer.Typer()


@command(
    app,
    "evaluate",
    "did it work? evaluate an intervention by its analysis plan",
    "riskstrat evaluate --data work/validated "
    "--plan impact/plans/integrated_locality_model.toml --out work/evaluation/ilm",
)
def cmd_evaluate(
    data: Annotated[Path, option("DIR", "folder of contract tables (validated)")],
    plan: Annotated[Path, option("FILE", "the statistical analysis plan (TOML)")],
    out: Annotated[
        Path, option("DIR", "folder for results.json, report.html and plots/ (replaced whole)")
    ],
    champion: Annotated[
        bool,
        typer.Option(
            "--champion",
            help="also match on the champion model's risk score (from the MLflow registry)",
        ),
    ] = False,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="also run the plasmode check: would each design find the plan's minimum "
            "effect on this data, and stay quiet when there is none?",
        ),
    ] = False,
    check_runs: Annotated[
        int | None,
        typer.Option(
            "--check-runs",
            metavar="K",
            help="with --check: runs of each design at the minimum effect, and as many under "
            "the null (default: sized to take a few minutes on a 265,000-person borough)",
        ),
    ] = None,
    engine: EngineChoice = None,
    config: Annotated[Path | None, config_option("an [engine] table")] = None,
    workdir: Workdir = WORKDIR,
) -> None:
    """Evaluate the care an intervention brought, by a plan written before looking at
    outcomes: staggered difference-in-differences, a matched comparison, a regression
    discontinuity at the list's cut-off and the list's recorded lotteries, as the plan names
    them."""
    from riskstrat.impact.plasmode import DEFAULT_RUNS
    from riskstrat.impact.run import evaluate
    from riskstrat.models.store import load_champion

    model = load_champion(tracking_uri(workdir)).bundle if champion else None
    with reporting() as progress:
        results = evaluate(
            data,
            plan,
            out,
            progress=progress,
            model=model,
            engine=make_engine(engine, config),
            check_runs=(check_runs or DEFAULT_RUNS) if check else None,
        )
    say(f"plan {results.plan.file} (SHA-256 {results.plan.sha256[:12]}), {results.seconds} s")
    for design in results.designs:
        say(f"{design.title}: {design.verdict}")
        for outcome in design.outcomes:
            say(f"  {outcome.summary}")
    if results.check:
        check = results.check
        say(f"plasmode check: {check.runs} runs a design and effect, {check.seconds} s")
    for checked in results.check.designs if results.check else ():
        say(f"Plasmode check, {checked.title}: {checked.verdict}")
        for outcome in checked.outcomes:
            say(f"  {outcome.verdict}")
    say(f"report: {out / 'report.html'}")
