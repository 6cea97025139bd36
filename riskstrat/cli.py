"""The ``riskstrat`` command: thin subcommands that parse options and call plain functions.

Heavy libraries are imported inside each command, so ``riskstrat --help`` stays fast.
Logging, the MLflow tracking URI and folders are set up here, never on import.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

from riskstrat.common.months import add_months
from riskstrat.reporter import reporting, say

TRACKING_ENV = "MLFLOW_TRACKING_URI"
BENTOML_HOME_ENV = "BENTOML_HOME"
DATE = "YYYY-MM-DD"

if TYPE_CHECKING:
    from riskstrat.contract.engines import Engine
    from riskstrat.serving.weekly.run import WeeklyResult
    from riskstrat.training.pipeline import TrainResult


def tracking_uri(workdir: Path) -> str:
    """``MLFLOW_TRACKING_URI`` if set, else a SQLite database in the work folder.

    BentoML's model store (where promotion copies the champion) likewise defaults to
    ``WORKDIR/bentoml`` unless ``BENTOML_HOME`` is set.
    """
    os.environ.setdefault(BENTOML_HOME_ENV, str((workdir / "bentoml").resolve()))
    return os.environ.get(TRACKING_ENV) or f"sqlite:///{(workdir / 'mlflow.db').resolve()}"


def _date(text: str | date) -> date:
    if isinstance(text, date):
        return text
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(f"not a date ({DATE}): {text!r}") from exc


def _examples(*lines: str) -> str:
    """A command's epilog: example command lines, kept as written (``\\b`` stops rewrapping)."""
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


app = typer.Typer(
    name="riskstrat",
    help="Risk stratification for admission prevention in integrated health and social care.",
    epilog=_examples(
        "riskstrat demo --workdir work --patients 50000 --seed 42",
        "riskstrat COMMAND --help",
    ),
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    add_completion=False,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)


def _option(metavar: str, help_text: str) -> typer.models.OptionInfo:
    """An option whose default (none, or one the command works out) is not worth showing."""
    return typer.Option(metavar=metavar, help=help_text, show_default=False)


# Options that several commands share: one definition, one help text.
Workdir = Annotated[
    Path,
    typer.Option(
        metavar="DIR", help="work folder: MLflow database and artifacts, BentoML store, reports"
    ),
]
Seed = Annotated[
    int, typer.Option(metavar="N", help="random seed; the same seed gives the same result")
]
Patients = Annotated[
    int,
    typer.Option(metavar="N", help="people registered at the start (people who join come on top)"),
]
ContractData = Annotated[
    Path,
    _option("DIR", "folder of validated contract tables (Parquet)"),
]


EngineChoice = Annotated[
    Literal["duckdb", "spark"] | None,
    typer.Option(
        "--engine",
        envvar="RISKSTRAT_ENGINE",
        help="engine that builds features and labels (default: the [engine] table's name in "
        "--config, else duckdb; Spark settings in [engine.spark])",
        show_default=False,
    ),
]


def _engine(name: str | None, config: Path | None) -> Engine:
    """The engine ``--engine`` names, with the ``[engine]`` settings of ``config``."""
    from dataclasses import replace

    from riskstrat.contract.engines import EngineSettings, make_engine

    settings = EngineSettings.from_toml(config) if config else EngineSettings()
    return make_engine(replace(settings, name=name) if name else settings)


def _as_of(help_text: str, *, show_default: bool = True) -> typer.models.OptionInfo:
    """A date option (``YYYY-MM-DD``); a bad date is a usage error naming the option."""
    return typer.Option(parser=_date, metavar=DATE, help=help_text, show_default=show_default)


# ---- data ---------------------------------------------------------------------------------


@app.command(
    "synth",
    short_help="generate a synthetic borough with ground truth",
    epilog=_examples(
        "riskstrat synth --patients 5000 --seed 1 --out work/borough",
        "riskstrat synth --out work/borough --truth-as-of 2024-01-01 --truth-as-of 2025-01-01",
        "riskstrat synth --patients 5000 --out work/borough-untreated --interventions off",
    ),
)
def cmd_synth(
    out: Annotated[
        Path,
        _option("DIR", "folder for the contract tables and truth/"),
    ],
    patients: Patients = 265_000,
    seed: Seed = 42,
    start: Annotated[date, _as_of("first day simulated (the first of a month)")] = date(2021, 1, 1),
    end: Annotated[date, _as_of("last day of recorded events")] = date(2026, 10, 31),
    truth_as_of: Annotated[
        list[date],
        _as_of("a date (first of a month) to write everyone's exact risk for; repeat for more"),
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
    from riskstrat.sources.synthetic.borough import generate, write
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
        borough = generate(config, progress=progress)
        write(borough, out)
    s = borough.summary
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


@app.command(
    "validate",
    short_help="validate contract tables; quarantine bad rows",
    epilog=_examples(
        "riskstrat validate --data work/borough --out work/validated --extract-date 2026-10-31"
    ),
)
def cmd_validate(
    data: Annotated[
        Path,
        _option("DIR", "folder of contract tables to validate"),
    ],
    out: Annotated[
        Path,
        _option("DIR", "folder for the accepted tables, quarantine/ and validation_report.json"),
    ],
    extract_date: Annotated[
        date | None,
        _as_of("dates after this are in the future (default: today)", show_default=False),
    ] = None,
) -> None:
    """Validate contract tables: accept good rows, quarantine bad ones with their reason."""
    from riskstrat.contract.validation import validate_dir

    report = validate_dir(data, out, extract_date or date.today())
    for t in report.tables:
        say(
            f"{t.table}: read {t.read:,} = accepted {t.accepted:,} + quarantined "
            f"{t.quarantined:,} {t.by_reason or ''}"
        )
    say(f"validated tables, quarantine and report in {out}")


@app.command(
    "ingest",
    short_help="map an OMOP, Synthea or contract extract; quality report",
    epilog=_examples(
        "riskstrat ingest --source omop --path EXTRACT --out work/ingested "
        "--key-file ~/keys/riskstrat.key",
        "riskstrat ingest --source synthea --path duckdb:///extract.duckdb --out work/ingested "
        "--practices practices.csv",
    ),
)
def cmd_ingest(
    source: Annotated[
        Literal["omop", "synthea", "contract"],
        typer.Option(help="what the extract is laid out as", show_default=False),
    ],
    path: Annotated[
        str,
        typer.Option(metavar="PATH", help="folder of CSV/Parquet files, or duckdb:///file.duckdb"),
    ],
    out: Annotated[
        Path,
        _option("DIR", "folder for the contract tables and the reports"),
    ],
    key_file: Annotated[
        Path | None,
        _option(
            "FILE", "pseudonymisation key file outside the data (else RISKSTRAT_PSEUDONYM_KEY)"
        ),
    ] = None,
    practices: Annotated[
        Path | None,
        _option("FILE", "CSV: practice_id, gp_cluster, locality"),
    ] = None,
    extract_date: Annotated[
        date | None,
        _as_of("dates after this are in the future (default: today)", show_default=False),
    ] = None,
) -> None:
    """Map an OMOP, Synthea or contract extract into validated, pseudonymised contract tables.

    Writes quality_report.md with a verdict: whether the extract can train a model or only
    be scored.
    """
    from riskstrat.sources.ingest.pipeline import ingest

    with reporting() as progress:
        result = ingest(
            source,
            path,
            out,
            key_file=key_file,
            practices=practices,
            extract_date=extract_date,
            progress=progress,
        )
    report = result.report
    for table, counts in report["source_tables"].items():
        say(
            f"{table}: {counts['rows_in']:,} rows = {counts['rows_mapped']:,} mapped + "
            f"{counts['rows_ignored']:,} ignored {counts['ignored_by_reason'] or ''}"
        )
    say(f"events by kind: {report['events_by_kind']}")
    say(f"verdict: {result.verdict.text}")
    say(f"contract tables, quarantine, unmapped rows and quality_report.md in {out}")
    if not result.verdict.can_train:
        say(f"next: riskstrat weekly --data {out} --as-of DATE --out LISTS (champion)")


# ---- features -----------------------------------------------------------------------------


@app.command(
    "features",
    short_help="compute features as of one or more dates",
    epilog=_examples(
        "riskstrat features --data work/validated --as-of 2025-01-01 --out work/features.parquet",
        "riskstrat features --data work/validated --as-of 2024-10-01 --as-of 2025-01-01 "
        "--out work/features.parquet",
    ),
)
def cmd_features(
    data: ContractData,
    as_of: Annotated[
        list[date],
        typer.Option(
            parser=_date,
            metavar=DATE,
            help="as-of date: features use events before it (repeat for rolling snapshots)",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path,
        _option(
            "FILE", "Parquet file to write (the feature metadata goes beside it as .features.json)"
        ),
    ],
    engine: EngineChoice = None,
    config: Annotated[
        Path | None,
        _option("FILE", "TOML file with an [engine] table"),
    ] = None,
) -> None:
    """Compute every feature for everyone registered and alive on each as-of date."""
    import json

    from riskstrat.contract.tables import ContractTables
    from riskstrat.features.engine import build_features, feature_specs

    began = time.perf_counter()
    with reporting() as progress:
        sources = ContractTables.from_dir(data, _engine(engine, config))
        frame = build_features(sources, as_of, progress=progress)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.reset_index().to_parquet(out, index=False)
    specs = out.with_suffix(".features.json")
    specs.write_text(json.dumps([s.to_dict() for s in feature_specs()], indent=2))
    say(
        f"{len(frame):,} rows x {frame.shape[1]} features for {len(set(as_of))} as-of "
        f"date(s) in {time.perf_counter() - began:.1f} s -> {out} (metadata: {specs})"
    )


@app.command(
    "bench-features",
    short_help="benchmark the feature engine; figures to JSON",
    epilog=_examples("riskstrat bench-features --data work/bench --out work/bench-features"),
)
def cmd_bench_features(
    data: Annotated[
        Path,
        _option("DIR", "a borough's validated contract tables"),
    ],
    out: Annotated[
        Path,
        _option("DIR", "folder for the region's copies and bench_features.json"),
    ],
    as_of: Annotated[
        date, _as_of("the as-of date; the 4-date case adds the three quarters before it")
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
    import json

    from riskstrat.bench.features import make_region, measure_in_child

    if scale is not None:
        from riskstrat.bench.scale import Limits, run_scale

        sizes = tuple(int(n) for n in scale.split(","))
        engines = tuple(engine or ("duckdb", "spark"))
        run_scale(data, out, sizes, engines, as_of, Limits(memory_limit, out / "spill"), say)  # type: ignore[arg-type]
        say(f"figures in {out / 'scale.json'}")
        return

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
    (out / "bench_features.json").write_text(json.dumps(figures, indent=2))
    say(f"figures in {out / 'bench_features.json'}")


# ---- training -----------------------------------------------------------------------------


@app.command(
    "train",
    short_help="train, evaluate out of time, register a challenger",
    epilog=_examples(
        "riskstrat train --data work/validated --truth work/borough/truth/truth.parquet",
        "riskstrat train --features table.parquet --label admitted --group person --time as_of",
    ),
)
def cmd_train(
    data: Annotated[
        Path | None,
        _option("DIR", "folder of validated contract tables (or give --features)"),
    ] = None,
    features: Annotated[
        Path | None,
        _option("FILE", "your own feature table (Parquet) instead of --data"),
    ] = None,
    label: Annotated[
        str | None, typer.Option(metavar="COLUMN", help="with --features: the 0/1 outcome column")
    ] = None,
    group: Annotated[
        str | None,
        typer.Option(
            metavar="COLUMN", help="with --features: the person column (splits keep it whole)"
        ),
    ] = None,
    time_column: Annotated[
        str | None,
        typer.Option(
            "--time",
            metavar="COLUMN",
            help="with --features: the as-of date column (out-of-time test)",
        ),
    ] = None,
    report: Annotated[
        Path | None,
        _option("DIR", "report folder (default: WORKDIR/report)"),
    ] = None,
    workdir: Workdir = Path("work"),
    config: Annotated[
        Path | None,
        _option(
            "FILE",
            "TOML file with a [train] table (optional: [exposure], [engine])",
        ),
    ] = None,
    truth: Annotated[
        Path | None,
        _option("FILE", "synthetic ground truth, to report the oracle"),
    ] = None,
    engine: EngineChoice = None,
) -> None:
    """Train on contract tables or your own feature table, test out of time, write the report
    and register the model as challenger."""
    from riskstrat.features.exposure import ExposureRule
    from riskstrat.training.config import TrainConfig
    from riskstrat.training.pipeline import train_from_contract, train_from_table

    if (data is None) == (features is None):
        raise typer.BadParameter("give exactly one of --data and --features")
    settings = TrainConfig.from_toml(config) if config else TrainConfig()
    with reporting() as progress:
        common = {
            "tracking_uri": tracking_uri(workdir),
            "artifact_root": workdir / "mlartifacts",
            "report_dir": report or workdir / "report",
            "progress": progress,
        }
        if features:
            if not label:
                raise ValueError("--features needs --label COLUMN")
            result = train_from_table(
                features, label, settings, group=group, time=time_column, **common
            )
        else:
            result = train_from_contract(
                data,
                settings,
                truth_path=truth,
                engine=_engine(engine, config),
                exposure_rule=ExposureRule.from_toml(config) if config else ExposureRule(),
                **common,
            )
    _print_training(result)
    say(f"registered admission-risk version {result.run.model_version} as challenger")
    say(f"report and model card: {result.report_dir}")
    source = f"--data {data}" if data else f"--features {features}"
    say(f"to compare with the champion: riskstrat promote {source}")


def _print_training(result: TrainResult) -> None:
    """The headline figures, saying how the model was tested (out of time, or on held-out
    groups) as its description does."""
    metrics = result.metrics
    line = (
        f"AUROC {metrics['auroc']:.3f} "
        f"(95% CI {metrics['auroc_ci_low']:.3f}-{metrics['auroc_ci_high']:.3f}), tested "
        f"{result.bundle.described.test.phrase()}"
    )
    if "oracle_auroc" in metrics:
        line += f"; oracle AUROC {metrics['oracle_auroc']:.3f} (the best any model can do)"
    say(line)
    prior = metrics.get("baseline_prior_admissions_auroc")
    say(
        f"baselines: logistic regression {metrics['baseline_logistic_auroc']:.3f}"
        + (f", prior admissions {prior:.3f}" if prior is not None else "")
        + f"; calibration slope {metrics['calibration_slope']:.2f}, in the large "
        f"{metrics['calibration_intercept']:+.3f}"
    )


@app.command(
    "promote",
    short_help="make the challenger champion if it passes the gate",
    epilog=_examples(
        "riskstrat promote --data work/validated --workdir work",
        "riskstrat promote --features table.parquet",
    ),
)
def cmd_promote(
    data: Annotated[
        Path | None,
        _option(
            "DIR",
            "contract tables the challenger's test set is built from (a model trained with --data)",
        ),
    ] = None,
    features: Annotated[
        Path | None,
        _option("FILE", "the feature table a model trained with --features is tested on"),
    ] = None,
    workdir: Workdir = Path("work"),
    seed: Annotated[
        int, typer.Option(metavar="N", help="seed of the gate's bootstrap resamples")
    ] = 42,
) -> None:
    """Compare the challenger with the champion on the challenger's own test set (out of time,
    less the rows list-triggered help touched; or its table's held-out groups); promote it if
    it passes the gate. Exits 1 when the challenger is refused."""
    from riskstrat.training.promote import promote

    if (data is None) == (features is None):
        raise typer.BadParameter("give exactly one of --data and --features")
    decision = promote(data, tracking_uri(workdir), seed=seed, table=features)
    say(decision.explain())
    if not decision.promoted:
        raise SystemExit(1)


# ---- the weekly job -----------------------------------------------------------------------


@app.command(
    "weekly",
    short_help="score everyone and write the weekly lists",
    epilog=_examples(
        "riskstrat weekly --data work/validated --as-of 2026-10-26 --out work/lists",
        "riskstrat weekly --check-rules --rules my_pathways.toml",
    ),
)
def cmd_weekly(
    data: Annotated[
        Path | None,
        _option("DIR", "folder of validated contract tables"),
    ] = None,
    as_of: Annotated[
        date | None, _as_of("the week's date (features use events before it)", show_default=False)
    ] = None,
    out: Annotated[
        Path | None,
        _option("DIR", "folder of weekly runs (one folder per week)"),
    ] = None,
    workdir: Workdir = Path("work"),
    config: Annotated[
        Path | None,
        _option(
            "FILE",
            "TOML file with a [weekly] table of settings (and optional [engine] and [exposure] "
            "tables)",
        ),
    ] = None,
    rules: Annotated[
        Path | None,
        _option("FILE", "pathway rules file (default: the built-in one)"),
    ] = None,
    check_rules: Annotated[
        bool, typer.Option("--check-rules", help="only check the rules file, then stop")
    ] = False,
    engine: EngineChoice = None,
) -> None:
    """The main job for locality teams: score everyone with the champion, compare with last
    week, explain, suggest pathways and write each locality's and cluster's lists.

    --data, --as-of and --out are needed unless --check-rules is given."""
    from riskstrat.serving.weekly.config import WeeklyConfig
    from riskstrat.serving.weekly.pathways import DEFAULT_RULES, load_rules

    loaded = load_rules(rules or DEFAULT_RULES)
    if check_rules:
        say(f"{rules or DEFAULT_RULES}: {len(loaded.rules)} rules, all valid")
        return
    if data is None or as_of is None or out is None:
        raise ValueError("weekly needs --data, --as-of and --out (or --check-rules)")
    from riskstrat.features.exposure import ExposureRule
    from riskstrat.models.store import load_champion
    from riskstrat.serving.weekly.run import weekly_run

    settings = WeeklyConfig.from_toml(config) if config else WeeklyConfig()
    exposure_rule = ExposureRule.from_toml(config) if config else ExposureRule()
    model = load_champion(tracking_uri(workdir))
    with reporting() as progress:
        result = weekly_run(
            data,
            as_of,
            model,
            out,
            settings,
            loaded,
            progress,
            _engine(engine, config),
            exposure_rule=exposure_rule,
        )
    _say_week(result)


def _say_week(result: WeeklyResult) -> None:
    counts = result.manifest["counts"]
    say(
        f"scored {counts['scored']:,} people with model version "
        f"{result.manifest['model']['version']}; listed {counts['listed']:,} "
        f"(new {counts['new']:,}, stayed {counts['stayed']:,}, left {counts['left']:,}) "
        f"in {sum(result.seconds.values()):.1f} s"
    )
    say(f"model check: {result.manifest['drift']['verdict']}")
    say(f"monitoring: {result.monitoring.message}")
    say(f"lists in {result.folder}")


@app.command(
    "bench-weekly",
    short_help="time the weekly run for two weeks; JSON figures",
    epilog=_examples(
        "riskstrat bench-weekly --data work/bench --workdir work/bench-model "
        "--out work/bench-weekly"
    ),
)
def cmd_bench_weekly(
    data: ContractData,
    out: Annotated[
        Path,
        typer.Option(metavar="DIR", help="folder for the two weeks' lists and bench_weekly.json"),
    ],
    as_of: Annotated[
        date, _as_of("the second week's date; the first week is 7 days before")
    ] = date(2026, 10, 26),
    workdir: Workdir = Path("work"),
) -> None:
    """Time two consecutive weekly runs (the second compares with the first); JSON figures."""
    import json
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
    (out / "bench_weekly.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))


@app.command(
    "referrals",
    short_help="social prescribing filter over a week's list",
    epilog=_examples(
        "riskstrat referrals --lists work/lists --out work/referrals.csv",
        "riskstrat referrals --lists work/lists --week 2026-10-26 --set min_tier=rising "
        "--set drivers=isolation,low_mood --locality North --out north.csv",
    ),
)
def cmd_referrals(
    lists: Annotated[
        Path,
        _option("DIR", "the weekly runs' folder (weekly --out)"),
    ],
    out: Annotated[Path, _option("FILE", "CSV file for the matches")],
    week: Annotated[
        date | None, _as_of("which week (default: the latest)", show_default=False)
    ] = None,
    criteria: Annotated[
        Path | None,
        _option("FILE", "TOML file with a [referrals] table"),
    ] = None,
    set_: Annotated[
        list[str],
        typer.Option(
            "--set",
            metavar="FIELD=VALUE",
            help="change one criterion, e.g. --set min_tier=rising "
            "--set drivers=isolation,low_mood (repeatable)",
            show_default=False,
        ),
    ] = [],  # noqa: B006 (typer copies defaults)
    locality: Annotated[
        list[str] | None,
        _option("LOCALITY", "only this locality (repeat for more)"),
    ] = None,
) -> None:
    """The social prescribing filter over a week's list; the matches go to a CSV with their
    reasons."""
    from riskstrat.serving.weekly.referrals import (
        ReferralCriteria,
        criteria_with,
        load_criteria,
        select_referrals,
    )
    from riskstrat.serving.weekly.store import WeekStore

    store = WeekStore(lists)
    chosen_week = store.choose(week)
    base = load_criteria(criteria) if criteria else ReferralCriteria()
    chosen_criteria = criteria_with(base, set_, locality)
    people = store.people(chosen_week)
    chosen = select_referrals(people, chosen_criteria)
    columns = [
        "rank",
        "patient_id",
        "practice_id",
        "gp_cluster",
        "locality",
        "age_band",
        "sex",
        "risk",
        "tier",
        "matched",
        "pathway",
    ]
    out.parent.mkdir(parents=True, exist_ok=True)
    chosen[columns].to_csv(out, index=False, lineterminator="\n")
    say(f"{len(chosen):,} people match in the week of {chosen_week}: {out}")


@app.command(
    "reidentify",
    short_help="key holder: a practice's list back to NHS numbers",
    epilog=_examples(
        "riskstrat reidentify --lists work/lists --practice N81001 --register n81001_register.csv "
        "--key-file ~/keys/riskstrat.key --out ~/direct-care/n81001.csv",
        "riskstrat reidentify --lists work/lists --week 2026-10-26 --practice N81001 "
        "--register register.csv --id-column person_id --who 'J Smith, N81001' "
        "--audit ~/direct-care/audit.jsonl --out ~/direct-care/n81001.csv --force",
    ),
)
def cmd_reidentify(
    lists: Annotated[Path, _option("DIR", "the weekly runs' folder (weekly --out), or a copy")],
    practice: Annotated[str, _option("PRACTICE", "the practice id whose listed people to give")],
    register: Annotated[
        Path,
        _option("FILE", "the practice's register: CSV with an NHS number column (any others)"),
    ],
    out: Annotated[
        Path,
        _option("FILE", "CSV for direct care; refused inside the lists or any service folder"),
    ],
    week: Annotated[
        date | None, _as_of("which week (default: the latest)", show_default=False)
    ] = None,
    key_file: Annotated[
        Path | None,
        _option("FILE", "the pseudonymisation key file ingest used (else RISKSTRAT_PSEUDONYM_KEY)"),
    ] = None,
    id_column: Annotated[
        str | None,
        _option(
            "COLUMN",
            "register column holding the identifier the extract carried, when not the NHS "
            "number (e.g. an OMOP person_id)",
        ),
    ] = None,
    audit: Annotated[
        Path | None,
        _option(
            "FILE", "audit file, one JSON line a run (default: reidentify_audit.jsonl beside --out)"
        ),
    ] = None,
    who: Annotated[
        str | None, _option("NAME", "who runs it, for the audit (default: the OS user)")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="replace --out if it exists")] = False,
) -> None:
    """For the holder of the pseudonymisation key only, outside the service: the week's
    listed people of one practice with their NHS numbers, from the practice's own register.

    Every run is audited (no NHS number in the audit). Listed people not in the register are
    counted; register rows that are not used are reported by row number.
    """
    from riskstrat.serving.weekly.reidentify import reidentify

    done = reidentify(
        lists,
        practice,
        register,
        out,
        key_file=key_file,
        week=week,
        id_column=id_column,
        audit=audit,
        who=who,
        force=force,
    )
    for problem, rows in done.register.not_used().items():
        say(f"{register}: not used, {problem}: row(s) {rows}")
    say(
        f"practice {practice}, week of {done.week}: {done.listed:,} listed, {done.matched:,} "
        f"found in the register, {done.unmatched:,} not found (moved away or registered "
        f"since the extract?); register: {done.register.rows:,} rows, "
        f"{len(done.register.bad):,} not used"
    )
    say(f"NHS numbers for direct care in {out}; audited in {done.audit}")


# ---- the service --------------------------------------------------------------------------

Role = Literal["system", "data_scientist", "social_prescriber", "locality_team"]


@app.command(
    "token",
    short_help="create a bearer token for the service (hash stored)",
    epilog=_examples(
        "riskstrat token --name me --role system --access work/access.toml",
        "riskstrat token --name north-team --role locality_team --locality North "
        "--access work/access.toml",
    ),
)
def cmd_token(
    name: Annotated[
        str,
        _option("NAME", "who holds it (shown in the audit log)"),
    ],
    role: Annotated[Role, typer.Option(help="what it may do", show_default=False)],
    locality: Annotated[
        list[str] | None,
        typer.Option(
            metavar="LOCALITY", help="locality_team: a locality it may see (repeat for more)"
        ),
    ] = None,
    access: Annotated[
        Path, typer.Option(metavar="FILE", help="access file the token's hash is added to")
    ] = Path("work/access.toml"),
) -> None:
    """Create a bearer token, store only its hash in the access file, and print it once.

    The entry is checked as the service checks the file (with what the file already holds)
    before anything is written: a locality team needs --locality.
    """
    import json
    import secrets

    from riskstrat.serving.access import AccessConfigError, parse_principals, token_digest

    token = secrets.token_urlsafe(32)
    entry = {
        "name": name,
        "role": role,
        "sha256": token_digest(token),
    }
    if locality:
        entry["localities"] = list(locality)
    try:
        existing = access.read_text(encoding="utf-8") if access.exists() else ""
    except (OSError, UnicodeDecodeError) as exc:
        raise AccessConfigError(f"{access}: cannot read the access file ({exc})") from None
    lines = ["", "[[token]]", *(f"{k} = {json.dumps(v)}" for k, v in entry.items())]
    added = "\n".join(lines) + "\n"
    try:
        parse_principals(existing + added, access)
    except AccessConfigError as exc:
        raise AccessConfigError(f"{exc}; nothing was added") from None
    access.parent.mkdir(parents=True, exist_ok=True)
    with access.open("a", encoding="utf-8") as handle:
        handle.write(added)
    say(f"{role} token for {name} added to {access}; it is shown only now:")
    print(token)


@app.command(
    "serve",
    short_help="start the BentoML scoring service",
    epilog=_examples(
        "riskstrat serve --workdir work",
        "riskstrat serve --workdir work --port 8080 --host 0.0.0.0",
    ),
)
def cmd_serve(
    access: Annotated[
        Path | None,
        _option("FILE", "access file (default: WORKDIR/access.toml)"),
    ] = None,
    port: Annotated[int, typer.Option(metavar="PORT", help="TCP port to listen on")] = 3000,
    host: Annotated[str, typer.Option(metavar="HOST", help="address to listen on")] = "127.0.0.1",
    workdir: Workdir = Path("work"),
) -> None:
    """Start the scoring service and web pages on the champion (Ctrl-C stops)."""
    access = access or workdir / "access.toml"
    if not access.exists():
        raise FileNotFoundError(
            f"{access}: no access file; create a token first: riskstrat token --name NAME "
            f"--role system --access {access}"
        )
    from riskstrat.serving.settings import ServiceSettings

    settings = ServiceSettings.load(
        tracking_uri=tracking_uri(workdir),
        access_file=access.resolve(),
        audit_log=(workdir / "audit.jsonl").resolve(),
    )
    # The web pages and list endpoints read what `riskstrat demo` or `weekly` wrote there,
    # and the evaluation ones the evaluations written under <workdir>/evaluations.
    settings = settings.or_else(
        weekly_dir=(workdir / "lists").resolve(),
        data_dir=(workdir / "validated").resolve(),
        evaluations_dir=(workdir / "evaluations").resolve(),
    )
    env = settings.environment(os.environ) | {"BENTOML_DO_NOT_TRACK": "True"}
    command = [
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        "riskstrat.serving.service:RiskService",
        "--port",
        str(port),
        "--host",
        host,
    ]
    say(f"serving on http://{host}:{port} (OpenAPI at /docs.json); Ctrl-C stops")
    raise SystemExit(subprocess.call(command, env=env))


@app.command(
    "bench-serve",
    short_help="load-test the scoring service on loopback",
    epilog=_examples(
        "riskstrat bench-serve --data work/bench --workdir work/bench-model",
        "riskstrat bench-serve --data work/validated --clients 8 --seconds 5",
    ),
)
def cmd_bench_serve(
    data: Annotated[
        Path,
        _option("DIR", "contract tables to take people from"),
    ],
    as_of: Annotated[date, _as_of("as-of date of the people's features")] = date(2026, 10, 26),
    workdir: Workdir = Path("work"),
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
    import json

    from riskstrat.bench.serve import run
    from riskstrat.contract.tables import ContractTables
    from riskstrat.features.engine import build_features
    from riskstrat.models.store import load_champion

    uri = tracking_uri(workdir)
    champion = load_champion(uri)
    features = build_features(ContractTables.from_dir(data), [as_of]).droplevel("as_of")
    say(f"{clients} clients for {seconds:.0f} s against version {champion.version}")
    figures = run(features, champion.bundle, uri, clients=clients, seconds=seconds, pause=pause)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))


# ---- the whole job ------------------------------------------------------------------------


@app.command(
    "demo",
    short_help="the whole job on a synthetic borough (what `make run` does)",
    epilog=_examples(
        "riskstrat demo",
        "riskstrat demo --workdir work --patients 20000 --seed 7",
    ),
)
def cmd_demo(
    workdir: Workdir = Path("work"),
    patients: Patients = 50_000,
    seed: Seed = 42,
) -> None:
    """The main job on a synthetic borough: generate, validate, train, promote, list two
    weeks."""
    from riskstrat.contract.validation import validate_dir
    from riskstrat.impact.plan import BUILT_IN_PLANS, PLANS
    from riskstrat.impact.run import evaluate
    from riskstrat.models.store import load_champion
    from riskstrat.serving.weekly.run import weekly_run
    from riskstrat.serving.weekly.store import latest_monday
    from riskstrat.sources.synthetic.borough import TRUTH_DIR, generate, write
    from riskstrat.sources.synthetic.config import SynthConfig
    from riskstrat.training.config import TrainConfig
    from riskstrat.training.pipeline import train_from_contract
    from riskstrat.training.promote import promote

    began = time.perf_counter()
    work = workdir
    train = TrainConfig(seed=seed)
    synth = SynthConfig(patients=patients, seed=seed, truth_as_of=(train.test_as_of,))
    say(f"1/5 generating a synthetic borough of {patients:,} people (seed {seed})")
    with reporting() as progress:
        borough = generate(synth, progress=progress)
        write(borough, work / "borough")
    say(f"    {borough.summary['events']:,} events in {borough.summary['seconds']} s")
    say("2/5 validating the contract tables")
    report = validate_dir(work / "borough", work / "validated", synth.end)
    say(
        f"    {sum(t.accepted for t in report.tables):,} rows accepted, "
        f"{sum(t.quarantined for t in report.tables):,} quarantined; counts reconcile: "
        f"{report.reconciles}"
    )
    say("3/5 training, testing out of time, registering in MLflow, promotion gate")
    with reporting() as progress:
        result = train_from_contract(
            work / "validated",
            train,
            tracking_uri=tracking_uri(work),
            artifact_root=work / "mlartifacts",
            report_dir=work / "report",
            truth_path=work / "borough" / TRUTH_DIR / "truth.parquet",
            progress=progress,
        )
    decision = promote(work / "validated", tracking_uri(work), seed=seed)
    say(f"    promotion gate: {decision.explain()}")
    if not decision.promoted and decision.champion_version is None:
        raise ValueError(f"no champion to score with: {decision.explain()} (try more --patients)")
    as_of = latest_monday(synth.end)
    model = load_champion(tracking_uri(work))
    for week in (as_of - timedelta(days=7), as_of):
        say(f"4/5 weekly risk lists as of {week} (champion)")
        with reporting() as progress:
            weekly = weekly_run(work / "validated", week, model, work / "lists", progress=progress)
    evaluations = []
    for plan in BUILT_IN_PLANS:
        say(f"5/5 did it work? evaluating {plan} by its analysis plan")
        with reporting() as progress:
            evaluations.append(
                evaluate(
                    work / "validated",
                    PLANS / plan,
                    work / "evaluations" / Path(plan).stem,
                    progress=progress,
                    model=model.bundle,
                )
            )
    say(f"done in {time.perf_counter() - began:.0f} s")
    _print_training(result)
    say(f"admission-risk {decision.explain()}")
    say(f"evaluation report and model card: {result.report_dir}")
    _say_week(weekly)
    for evaluation in evaluations:
        say(f"{evaluation.plan.title}: {work / 'evaluations' / evaluation.name / 'report.html'}")
        for design in evaluation.designs:
            say(f"  {design.title}: {design.outcomes[0].summary}")
    say(f"MLflow runs: .venv/bin/mlflow ui --backend-store-uri {tracking_uri(work)}")
    say(
        f"start the scoring service: .venv/bin/riskstrat token --name me --role system "
        f"--access {work / 'access.toml'} && .venv/bin/riskstrat serve --workdir {work}"
    )


@app.command(
    "evaluate",
    short_help="did it work? evaluate an intervention by its analysis plan",
    epilog=_examples(
        "riskstrat evaluate --data work/validated "
        "--plan impact/plans/integrated_locality_model.toml --out work/evaluation/ilm",
    ),
)
def cmd_evaluate(
    data: Annotated[Path, _option("DIR", "folder of contract tables (validated)")],
    plan: Annotated[Path, _option("FILE", "the statistical analysis plan (TOML)")],
    out: Annotated[
        Path, _option("DIR", "folder for results.json, report.html and plots/ (replaced whole)")
    ],
    champion: Annotated[
        bool,
        typer.Option(
            "--champion",
            help="also match on the champion model's risk score (from the MLflow registry)",
        ),
    ] = False,
    workdir: Workdir = Path("work"),
) -> None:
    """Evaluate the care an intervention brought, by a plan written before looking at
    outcomes: staggered difference-in-differences, a matched comparison and a regression
    discontinuity at the list's cut-off, as the plan names them."""
    from riskstrat.impact.run import evaluate
    from riskstrat.models.store import load_champion

    model = load_champion(tracking_uri(workdir)).bundle if champion else None
    with reporting() as progress:
        results = evaluate(data, plan, out, progress=progress, model=model)
    say(f"plan {results.plan.file} (SHA-256 {results.plan.sha256[:12]}), {results.seconds} s")
    for design in results.designs:
        say(f"{design.title}: {design.verdict}")
        for outcome in design.outcomes:
            say(f"  {outcome.summary}")
    say(f"report: {out / 'report.html'}")


@app.command(
    "bench-evaluate",
    short_help="bias, coverage and false positives of each design; JSON",
    epilog=_examples("riskstrat bench-evaluate --out work/bench --patients 50000 --seeds 20"),
)
def cmd_bench_evaluate(
    out: Annotated[Path, _option("DIR", "folder for bench_evaluate.json and the runs' CSV")],
    patients: Patients = 50_000,
    seeds: Annotated[int, typer.Option(metavar="N", help="boroughs, seeds 1..N")] = 20,
    jobs: Annotated[
        int, typer.Option(metavar="N", help="seeds run at once, each in its own process")
    ] = 1,
) -> None:
    """Evaluate the built-in plans on synthetic boroughs whose true effects are known, with
    the effects on and with every effect set to none."""
    import tempfile

    from riskstrat.bench.evaluate import bench_evaluate

    with (
        tempfile.TemporaryDirectory(prefix="riskstrat-bench-evaluate-") as work,
        reporting() as progress,
    ):
        summary = bench_evaluate(
            out, tuple(range(1, seeds + 1)), patients, Path(work), jobs=jobs, progress=progress
        )
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    say(f"figures: {out / 'bench_evaluate.json'}")


@app.command(
    "bench-retrain",
    short_help="retraining strategies under repeated deployment; JSON",
    epilog=_examples(
        "riskstrat bench-retrain --out work/bench-retrain --patients 30000 --jobs 2",
        "riskstrat bench-retrain --out work/bench-retrain --strategy naive --strategy unexposed",
    ),
)
def cmd_bench_retrain(
    out: Annotated[Path, _option("DIR", "folder for bench_retrain.json and the rounds' CSV")],
    patients: Patients = 30_000,
    seed: Annotated[int, typer.Option(metavar="N", help="the borough's random seed")] = 42,
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
        typer.Option(metavar="HR", help="admission hazard ratio under a reablement plan [0.5]"),
    ] = None,
    social_prescribing_hr: Annotated[
        float | None,
        typer.Option(metavar="HR", help="admission hazard ratio under social prescribing [0.7]"),
    ] = None,
    jobs: Annotated[
        int, typer.Option(metavar="N", help="strategies run at once, each in its own process")
    ] = 1,
) -> None:
    """Deploy, list, let the list's help act, retrain with each strategy and promote, year
    after year, on a synthetic borough whose untreated risk is known."""
    import tempfile

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
    with (
        tempfile.TemporaryDirectory(prefix="riskstrat-bench-retrain-") as work,
        reporting() as progress,
    ):
        summary = bench_retrain(out, bench, Path(work), jobs=jobs, progress=progress)
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    say(f"figures: {out / RESULTS_FILE}")


@app.command(
    "bench-fit",
    short_help="compare fitting and calibration choices; figures to JSON",
    epilog=_examples("riskstrat bench-fit --out work/bench/bench_fit.json --patients 50000"),
)
def cmd_bench_fit(
    out: Annotated[Path, _option("FILE", "JSON file for the figures")],
    patients: Patients = 50_000,
    seeds: Annotated[
        list[int] | None,
        _option("N", "a borough's seed; repeat for more (default: 1, 2 and 3)"),
    ] = None,
) -> None:
    """Out-of-time AUROC and calibration of each refit and calibration choice, and the gap to
    a plain LightGBM on an undated feature table, on one synthetic borough per seed."""
    from riskstrat.bench.fit import benchmark_fit

    benchmark_fit(out, tuple(seeds or (1, 2, 3)), patients)


@app.command(
    "bench-synth",
    short_help="benchmark the generator; figures to JSON",
    epilog=_examples("riskstrat bench-synth --patients 265000 --seed 42 --out work/bench"),
)
def cmd_bench_synth(
    out: Annotated[
        Path,
        _option("DIR", "folder for the borough's tables and bench_synth.json"),
    ],
    patients: Patients = 265_000,
    seed: Seed = 42,
) -> None:
    """Time the generator at full size; print and save the figures as JSON."""
    import json
    import resource

    from riskstrat.sources.synthetic.borough import generate, write
    from riskstrat.sources.synthetic.config import SynthConfig

    began = time.perf_counter()
    with reporting() as progress:
        borough = generate(SynthConfig(patients=patients, seed=seed), progress=progress)
    generated = time.perf_counter() - began
    write(borough, out)
    figures = {
        "patients": patients,
        "events": borough.summary["events"],
        "generate_seconds": round(generated, 1),
        "generate_and_write_seconds": round(time.perf_counter() - began, 1),
        "peak_memory_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "truth": borough.summary["truth"],
        "yearly_rate_per_person": borough.summary["yearly_rate_per_person"],
        "yearly_death_rate": borough.summary["yearly_death_rate"],
    }
    (out / "bench_synth.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))


# ---- the entry point ----------------------------------------------------------------------


def _set_up() -> None:
    """Environment and logging for every command (done here, never on import)."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")
    # MLflow reports creating its database and, in a venv without pip, that it cannot name
    # pip's version for the model's conda file: neither is news to the user.
    for name in ("mlflow.store.db.utils", "mlflow.utils.environment", "alembic"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _show_help(ctx: typer.Context, wanted: bool) -> None:
    if wanted:
        print(ctx.get_help())
        raise typer.Exit()


@app.callback(add_help_option=False)
def _root(
    ctx: typer.Context,
    show_help: Annotated[
        bool,
        typer.Option(
            "--help",
            "-h",
            is_eager=True,
            expose_value=False,
            callback=_show_help,
            help="Show this message and exit.",
        ),
    ] = False,
) -> None:
    # typer's own help option is absent (None) on every subcommand run and converting None
    # loads pydantic, which made `riskstrat COMMAND --help` slow; this one defaults to False.
    _set_up()


def main(argv: list[str] | None = None) -> None:
    """Run ``riskstrat`` on ``argv`` (default: the process's arguments).

    A mistake the user can fix (a bad option value, a missing file, a ValueError from the
    code) prints one ``[riskstrat] error: ...`` line and exits 2, without a traceback.
    """
    from typer._click.exceptions import NoArgsIsHelpError
    from typer.main import get_command

    try:
        code = get_command(app).main(args=argv, prog_name="riskstrat", standalone_mode=False)
    except NoArgsIsHelpError as exc:
        exc.show()
        raise SystemExit(2) from exc
    except typer.TyperException as exc:  # typer's usage errors: a bad or missing option
        say(f"error: {exc.format_message()}")
        raise SystemExit(2) from exc
    except (ValueError, FileNotFoundError) as exc:
        say(f"error: {exc}")
        raise SystemExit(2) from exc
    if code:
        raise SystemExit(code)


if __name__ == "__main__":
    main()
