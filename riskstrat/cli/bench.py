"""Benchmarks, under ``riskstrat bench``: each measures speed, memory or quality and saves
its figures as JSON (the benchmark modules are in ``riskstrat.bench``).

The old names (``riskstrat bench-features`` and the rest) still run, hidden from help, each
after one deprecation line on standard error; they go in the next release.
"""

from __future__ import annotations

import functools
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from riskstrat.cli.options import (
    ContractData,
    HelpFlag,
    Patients,
    Seed,
    Workdir,
    command,
    date_option,
    examples,
    no_command,
    option,
    tracking_uri,
)
from riskstrat.cli.reporter import reporting, say
from riskstrat.common.defaults import SEED, WORKDIR
from riskstrat.common.months import add_months

if TYPE_CHECKING:
    import pandas as pd

    from riskstrat.common.progress import Progress

app = typer.Typer(
    name="bench",
    help="Benchmarks: speed, memory and quality, with their figures saved as JSON.",
    epilog=examples("riskstrat bench synth --patients 265000 --out work/bench"),
    short_help="benchmarks: speed, memory and quality; figures to JSON",
    invoke_without_command=True,
    add_help_option=False,
)


@app.callback()
def _bench(ctx: typer.Context, show_help: HelpFlag = False) -> None:
    no_command(ctx)


def save_figures(figures: dict, path: Path) -> None:
    """Write a benchmark's figures to ``path`` as indented JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figures, indent=2))


def print_figures(figures: dict) -> None:
    """Print a benchmark's figures, as indented JSON, on standard output."""
    print(json.dumps(figures, indent=2))


@contextmanager
def scratch(name: str) -> Iterator[tuple[Path, Progress]]:
    """A temporary folder for benchmark ``name``'s boroughs (removed after), and its progress."""
    with (
        tempfile.TemporaryDirectory(prefix=f"riskstrat-bench-{name}-") as work,
        reporting() as progress,
    ):
        yield Path(work), progress


def print_summary(summary: pd.DataFrame, figures: Path) -> None:
    """Print a benchmark's summary table (three decimals), then where its figures are."""
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    say(f"figures: {figures}")


@command(
    app,
    "features",
    "benchmark the feature engine; figures to JSON",
    "riskstrat bench features --data work/bench --out work/bench-features",
)
def cmd_bench_features(
    data: Annotated[Path, option("DIR", "a borough's validated contract tables")],
    out: Annotated[Path, option("DIR", "folder for the region's copies and bench_features.json")],
    as_of: Annotated[
        date, date_option("the as-of date; the 4-date case adds the three quarters before it")
    ] = date(2025, 1, 1),
    region_copies: Annotated[
        int, typer.Option(metavar="N", help="copies of the borough that make up the region")
    ] = 4,
    scale: Annotated[
        str | None,
        typer.Option(
            metavar="N,N,...",
            help="instead: the scale benchmark at these sizes in borough copies "
            "(1,4,19: 265,000, 1.06 and 5.03 million people); figures to OUT/scale.json",
        ),
    ] = None,
    engine: Annotated[
        list[str] | None,
        typer.Option(help="with --scale: engines to measure (repeat; default duckdb and spark)"),
    ] = None,
    memory_limit: Annotated[
        str,
        typer.Option(metavar="SIZE", help="with --scale: each engine's memory, e.g. 8GB or 512MB"),
    ] = "6GB",
) -> None:
    """Time the feature engine on a borough and on a region of copies; figures to JSON.
    With --scale, each engine at each size with bounded memory (spilling under OUT)."""
    from riskstrat.bench.features import make_region, measure_in_child

    if scale is not None:
        from riskstrat.bench.scale import Limits, run_scale

        sizes = tuple(int(n) for n in scale.split(","))
        engines = tuple(engine or ("duckdb", "spark"))
        run_scale(data, out, sizes, engines, as_of, Limits(memory_limit, out / "spill"), say)  # type: ignore[arg-type]
        say(f"figures in {out / 'scale.json'}")
        return

    from riskstrat.contract.tables import check_folder

    check_folder(data)
    four = [add_months(as_of, -3 * q) for q in range(4)]
    out.mkdir(parents=True, exist_ok=True)
    say(f"building a region of {region_copies} copies of {data}")
    region = make_region(data, out / "region", region_copies)
    figures = {}
    for label, folder in (("borough", data), ("region", region)):
        for dates in ([as_of], four):
            key = f"{label}_{len(dates)}_as_of"
            say(f"measuring {key}")
            figures[key] = measure_in_child(folder, dates)
            say(f"  {figures[key]}")
    save_figures(figures, out / "bench_features.json")
    say(f"figures in {out / 'bench_features.json'}")


@command(
    app,
    "scale",
    "validate, features, train and weekly at scale; figures to JSON",
    "riskstrat bench scale --data work/borough --out work/scale --sizes 1,4,19",
    "riskstrat bench scale --data work/borough --out work/scale --sizes 19 --step validate "
    "--step features-duckdb --step features-spark",
    "riskstrat bench scale --data work/borough --data work/borough-43 --data work/borough-44 "
    "--data work/borough-45 --out work/scale-train --sizes 4 --step train",
)
def cmd_bench_scale(
    data: Annotated[
        list[Path],
        option(
            "DIR",
            "a raw borough's contract tables (riskstrat synth); repeat with boroughs of other "
            "seeds: copy k is of the k-th (modulo their number), and train needs different "
            "people in each copy",
        ),
    ],
    out: Annotated[
        Path, option("DIR", "folder for the copies, each step's output and logs, scale.json")
    ],
    sizes: Annotated[
        str,
        typer.Option(
            metavar="N,N,...",
            help="sizes in borough copies (1,4,19: 265,000, 1.06 and 5.03 million people)",
        ),
    ] = "1,4,19",
    step: Annotated[
        list[str] | None,
        typer.Option(
            metavar="STEP",
            help="a step to measure (repeat; default all: validate, features-duckdb, "
            "features-spark, train, weekly)",
        ),
    ] = None,
    extract_date: Annotated[date, date_option("validate's extract date")] = date(2026, 10, 31),
    as_of: Annotated[date, date_option("the features' as-of date")] = date(2025, 1, 1),
    week: Annotated[date, date_option("the weekly run's date")] = date(2026, 10, 26),
    train_engine: Annotated[
        str, typer.Option(metavar="ENGINE", help="engine train builds its features on")
    ] = "duckdb",
    memory_limit: Annotated[
        str,
        typer.Option(metavar="SIZE", help="the engines' memory in copying and features, e.g. 6GB"),
    ] = "6GB",
) -> None:
    """Each step at each size in its own process: time and peak memory of its process tree;
    England projected from the per-core rates. Figures to OUT/scale.json as they come."""
    from riskstrat.bench.scale import Limits
    from riskstrat.bench.scale_steps import STEPS, ScaleBench, ScaleRun

    run = ScaleRun(
        sizes=tuple(int(n) for n in sizes.split(",")),
        steps=tuple(step or STEPS),
        extract_date=extract_date,
        as_of=as_of,
        week=week,
        train_engine=train_engine,
    )
    figures = ScaleBench(data, out, run, Limits(memory_limit, out / "spill"), say).measure_all()
    print_figures(figures)
    say(f"figures in {out / 'scale.json'}")


@command(
    app,
    "weekly",
    "time the weekly run for two weeks; JSON figures",
    "riskstrat bench weekly --data work/bench --workdir work/bench-model --out work/bench-weekly",
)
def cmd_bench_weekly(
    data: ContractData,
    out: Annotated[
        Path,
        typer.Option(metavar="DIR", help="folder for the two weeks' lists and bench_weekly.json"),
    ],
    as_of: Annotated[
        date, date_option("the second week's date; the first week is 7 days before")
    ] = date(2026, 10, 26),
    workdir: Workdir = WORKDIR,
) -> None:
    """Time two consecutive weekly runs (the second compares with the first); JSON figures."""
    import resource

    from riskstrat.models.store import load_champion
    from riskstrat.serving.weekly.run import weekly_run

    model = load_champion(tracking_uri(workdir))
    figures: dict = {"model_version": model.version}
    for week in (as_of - timedelta(days=7), as_of):
        began = time.perf_counter()
        with reporting() as progress:
            result = weekly_run(data, week, model, out / "lists", progress=progress)
        figures[week.isoformat()] = {
            "seconds": round(time.perf_counter() - began, 1),
            "stages": result.seconds,
            "scored": result.scored,
            "listed": result.listed,
            "explained": result.manifest["counts"]["explained"],
        }
        say(f"  {figures[week.isoformat()]}")
    figures["peak_memory_gib"] = round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2
    )
    save_figures(figures, out / "bench_weekly.json")
    print_figures(figures)


@command(
    app,
    "serve",
    "load-test the scoring service on loopback",
    "riskstrat bench serve --data work/bench --workdir work/bench-model",
    "riskstrat bench serve --data work/validated --clients 8 --seconds 5",
)
def cmd_bench_serve(
    data: Annotated[Path, option("DIR", "contract tables to take people from")],
    as_of: Annotated[date, date_option("as-of date of the people's features")] = date(2026, 10, 26),
    workdir: Workdir = WORKDIR,
    clients: Annotated[int, typer.Option(metavar="N", help="concurrent clients")] = 32,
    seconds: Annotated[
        float, typer.Option(metavar="SECONDS", help="seconds each load phase lasts")
    ] = 20.0,
    pause: Annotated[
        float, typer.Option(metavar="SECONDS", help="seconds each client waits in the paced phase")
    ] = 0.05,
    out: Annotated[Path, typer.Option(metavar="FILE", help="JSON file for the figures")] = Path(
        "work/bench/bench_serve.json"
    ),
) -> None:
    """Load-test the service on loopback (saturation, then paced); print and save the
    figures."""
    from riskstrat.bench.serve import run
    from riskstrat.contract.tables import ContractTables
    from riskstrat.features.engine import build_features
    from riskstrat.models.store import load_champion

    uri = tracking_uri(workdir)
    champion = load_champion(uri)
    features = build_features(ContractTables.from_dir(data), [as_of]).droplevel("as_of")
    say(f"{clients} clients for {seconds:.0f} s against version {champion.version}")
    figures = run(features, champion.bundle, uri, clients=clients, seconds=seconds, pause=pause)
    save_figures(figures, out)
    print_figures(figures)


@command(
    app,
    "evaluate",
    "bias, coverage and false positives of each design; JSON",
    "riskstrat bench evaluate --out work/bench --patients 50000 --seeds 20",
)
def cmd_bench_evaluate(
    out: Annotated[Path, option("DIR", "folder for bench_evaluate.json and the runs' CSV")],
    patients: Patients = 50_000,
    seeds: Annotated[int, typer.Option(metavar="N", help="boroughs, seeds 1..N")] = 20,
    jobs: Annotated[
        int, typer.Option(metavar="N", help="seeds run at once, each in its own process")
    ] = 1,
) -> None:
    """Evaluate the built-in plans on synthetic boroughs whose true effects are known, with
    the effects on and with every effect set to none."""
    from riskstrat.bench.evaluate import bench_evaluate

    with scratch("evaluate") as (work, progress):
        summary = bench_evaluate(
            out, tuple(range(1, seeds + 1)), patients, work, jobs=jobs, progress=progress
        )
    print_summary(summary, out / "bench_evaluate.json")


@command(
    app,
    "check",
    "does evaluate --check agree with bench evaluate? JSON",
    "riskstrat bench check --against work/bench --seeds 6 --out work/bench-check",
)
def cmd_bench_check(
    out: Annotated[Path, option("DIR", "folder for bench_check.json and the check's rows")],
    against: Annotated[Path, option("DIR", "a finished `riskstrat bench evaluate` folder")],
    seeds: Annotated[int, typer.Option(metavar="N", help="boroughs, seeds 1..N")] = 6,
    runs: Annotated[int, typer.Option(metavar="K", help="the check's runs per borough")] = 40,
) -> None:
    """Run `evaluate --check` on boroughs as large as the benchmark's, at their true effect,
    and compare its power and false positives with what the benchmark found."""
    from riskstrat.bench.check import bench_check

    with scratch("check") as (work, progress):
        comparison = bench_check(out, against, tuple(range(1, seeds + 1)), runs, work, progress)
    print_summary(comparison, out / "bench_check.json")


@command(
    app,
    "retrain",
    "retraining strategies under repeated deployment; JSON",
    "riskstrat bench retrain --out work/bench-retrain --patients 30000 --jobs 2",
    "riskstrat bench retrain --out work/bench-retrain --strategy naive --strategy unexposed",
)
def cmd_bench_retrain(
    out: Annotated[Path, option("DIR", "folder for bench_retrain.json and the rounds' CSV")],
    patients: Patients = 30_000,
    seed: Seed = SEED,
    rounds: Annotated[
        int, typer.Option(metavar="N", help="yearly rounds after round 0", min=1)
    ] = 4,
    strategy: Annotated[
        list[str] | None,
        typer.Option(metavar="NAME", help="a strategy to run; repeat for more (default: all)"),
    ] = None,
    list_share: Annotated[
        float | None,
        typer.Option(metavar="SHARE", help="share of everyone scored that is listed [0.05]"),
    ] = None,
    capacity_share: Annotated[
        float | None, typer.Option(metavar="SHARE", help="share of the listed who get help [0.8]")
    ] = None,
    reablement_hr: Annotated[
        float | None,
        typer.Option(metavar="HR", help="avoidable-admission hazard ratio, reablement [0.5]"),
    ] = None,
    social_prescribing_hr: Annotated[
        float | None,
        typer.Option(
            metavar="HR", help="avoidable-admission hazard ratio, social prescribing [0.7]"
        ),
    ] = None,
    jobs: Annotated[
        int, typer.Option(metavar="N", help="strategies run at once, each in its own process")
    ] = 1,
) -> None:
    """Deploy, list, let the list's help act, retrain with each strategy and promote, year
    after year, on a synthetic borough whose untreated risk is known."""
    from riskstrat.bench.retrain import RESULTS_FILE, STRATEGIES, RetrainBench, bench_retrain

    bench = RetrainBench(
        patients=patients,
        seed=seed,
        rounds=rounds,
        strategies=tuple(strategy or STRATEGIES),
        **{
            name: value
            for name, value in (
                ("list_share", list_share),
                ("capacity_share", capacity_share),
                ("reablement_hr", reablement_hr),
                ("social_prescribing_hr", social_prescribing_hr),
            )
            if value is not None
        },
    )
    with scratch("retrain") as (work, progress):
        summary = bench_retrain(out, bench, work, jobs=jobs, progress=progress)
    print_summary(summary, out / RESULTS_FILE)


@command(
    app,
    "target",
    "whom to offer scarce help: risk, benefit, oracle, random; JSON and Markdown",
    "riskstrat bench target --out work/bench-target",
    "riskstrat bench target --out work/bench-target --seeds 1 --seeds 2 --patients 10000",
)
def cmd_bench_target(
    out: Annotated[Path, option("DIR", "folder for bench_target.json and bench_target.md")],
    patients: Patients = 30_000,
    seeds: Annotated[
        list[int] | None,
        option("N", "a borough's seed; repeat for more (default: 1 to 5)"),
    ] = None,
    capacity: Annotated[
        int, typer.Option(metavar="N", help="offers per list run per action", min=1)
    ] = 40,
    world: Annotated[
        list[str] | None,
        option("NAME", "varying or uniform effects; repeat for both (default: both)"),
    ] = None,
) -> None:
    """Repeated list runs on synthetic boroughs with fixed capacity: admissions prevented per
    100 offers by rule (any-admission risk, avoidable-admission risk, estimated benefit, the
    oracle, random), with effects that vary and that do not, and who receives offers."""
    from riskstrat.bench.target import RESULTS_FILE, TABLE_FILE, WORLDS, TargetBench, bench_target
    from riskstrat.common.errors import UserError

    worlds = tuple(world or WORLDS)
    unknown = sorted(set(worlds) - set(WORLDS))
    if unknown:
        raise UserError(f"--world: unknown {', '.join(unknown)} (known: {', '.join(WORLDS)})")
    bench = TargetBench(
        seeds=tuple(seeds or (1, 2, 3, 4, 5)), patients=patients, capacity=capacity, worlds=worlds
    )
    with scratch("target") as (work, progress):
        bench_target(out, bench, work, progress)
    print((out / TABLE_FILE).read_text())
    say(f"figures: {out / RESULTS_FILE}")


@command(
    app,
    "fit",
    "compare fitting and calibration choices; figures to JSON",
    "riskstrat bench fit --out work/bench/bench_fit.json --patients 50000",
)
def cmd_bench_fit(
    out: Annotated[Path, option("FILE", "JSON file for the figures")],
    patients: Patients = 50_000,
    seeds: Annotated[
        list[int] | None,
        option("N", "a borough's seed; repeat for more (default: 1, 2 and 3)"),
    ] = None,
) -> None:
    """Out-of-time AUROC and calibration of each refit and calibration choice, and the gap to
    a plain LightGBM on an undated feature table, on one synthetic borough per seed."""
    from riskstrat.bench.fit import benchmark_fit

    benchmark_fit(out, tuple(seeds or (1, 2, 3)), patients)


@command(
    app,
    "synth",
    "benchmark the generator; figures to JSON",
    "riskstrat bench synth --patients 265000 --seed 42 --out work/bench",
)
def cmd_bench_synth(
    out: Annotated[Path, option("DIR", "folder for the borough's tables and bench_synth.json")],
    patients: Patients = 265_000,
    seed: Seed = SEED,
) -> None:
    """Time the generator at full size; print and save the figures as JSON."""
    from riskstrat.bench.synth import bench_synth

    with reporting() as progress:
        figures = bench_synth(out, patients, seed, progress)
    print_figures(figures)


# The old top-level names, `riskstrat bench-features` and the rest: hidden, merged into the
# root command, each running its benchmark (registered above) after one deprecation line. Only
# the benchmarks that had a top-level name get one; a new benchmark has none.
OLD_NAMES = ("features", "weekly", "serve", "evaluate", "retrain", "fit", "synth")
deprecated = typer.Typer()


def deprecation(name: str) -> str:
    """The line the old name of benchmark ``name`` prints before it runs."""
    return f"deprecated: use `riskstrat bench {name}`; the old name goes in the next release"


def _old_name(name: str, command: Callable[..., None]) -> Callable[..., None]:
    """``command`` (same options) saying first, on standard error, that its name is old."""

    @functools.wraps(command)
    def run(*args: object, **kwargs: object) -> None:
        say(deprecation(name), file=sys.stderr)
        command(*args, **kwargs)

    return run


_benchmarks = {info.name: info.callback for info in app.registered_commands}
for _name in OLD_NAMES:
    deprecated.command(f"bench-{_name}", hidden=True, epilog=deprecation(_name))(
        _old_name(_name, _benchmarks[_name])
    )
