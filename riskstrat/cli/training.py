"""Models: ``train`` a challenger, ``promote`` it to champion if it passes the gate, and
``benefit``: learn from past list-triggered help whom each kind of help helps."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import typer

from riskstrat.cli.options import (
    EngineChoice,
    Workdir,
    command,
    config_option,
    from_config,
    make_engine,
    option,
    tracking_uri,
    writable_folder,
)
from riskstrat.cli.reporter import reporting, say
from riskstrat.cli.summaries import say_training
from riskstrat.common.defaults import SEED, WORKDIR, WorkFolder

app = typer.Typer()


def one_source(data: Path | None, features: Path | None) -> None:
    """``train`` and ``promote`` read either contract tables or a feature table, never both."""
    if (data is None) == (features is None):
        raise typer.BadParameter("give exactly one of --data and --features")


@command(
    app,
    "train",
    "train, evaluate out of time, register a challenger",
    "riskstrat train --data work/validated --truth work/borough/truth/truth.parquet",
    "riskstrat train --features table.parquet --label admitted --group person --time as_of",
)
def cmd_train(
    data: Annotated[
        Path | None, option("DIR", "folder of validated contract tables (or give --features)")
    ] = None,
    features: Annotated[
        Path | None, option("FILE", "your own feature table (Parquet) instead of --data")
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
    report: Annotated[Path | None, option("DIR", "report folder (default: WORKDIR/report)")] = None,
    workdir: Workdir = WORKDIR,
    config: Annotated[
        Path | None, config_option("a [train] table (optional: [exposure], [engine])")
    ] = None,
    truth: Annotated[
        Path | None, option("FILE", "synthetic ground truth, to report the oracle")
    ] = None,
    engine: EngineChoice = None,
) -> None:
    """Train on contract tables or your own feature table, test out of time, write the report
    and register the model as challenger."""
    from riskstrat.features.exposure import ExposureRule
    from riskstrat.models.registry import registered_name
    from riskstrat.training.config import TrainConfig
    from riskstrat.training.pipeline import train_from_contract, train_from_table

    one_source(data, features)
    settings = from_config(TrainConfig, config)
    folder = WorkFolder(workdir)
    with reporting() as progress:
        common = {
            "tracking_uri": tracking_uri(workdir),
            "artifact_root": folder.artifacts,
            "report_dir": report or folder.report,
            "progress": progress,
        }
        if features:
            if not label:
                raise typer.BadParameter("--features needs --label COLUMN")
            result = train_from_table(
                features, label, settings, group=group, time=time_column, **common
            )
        else:
            result = train_from_contract(
                data,
                settings,
                truth_path=truth,
                engine=make_engine(engine, config),
                exposure_rule=from_config(ExposureRule, config),
                **common,
            )
    say_training(result)
    say(f"registered {result.run.model_name} version {result.run.model_version} as challenger")
    say(f"report and model card: {result.report_dir}")
    source = f"--data {data}" if data else f"--features {features}"
    which = "avoidable" if result.run.model_name == registered_name("avoidable") else "any"
    say(f"to compare with the champion: riskstrat promote {source} --admissions {which}")


@command(
    app,
    "promote",
    "make the challenger champion if it passes the gate",
    "riskstrat promote --data work/validated --workdir work",
    "riskstrat promote --data work/validated --admissions avoidable",
    "riskstrat promote --features table.parquet",
)
def cmd_promote(
    data: Annotated[
        Path | None,
        option(
            "DIR",
            "contract tables the challenger's test set is built from (a model trained with --data)",
        ),
    ] = None,
    features: Annotated[
        Path | None,
        option("FILE", "the feature table a model trained with --features is tested on"),
    ] = None,
    workdir: Workdir = WORKDIR,
    seed: Annotated[
        int, typer.Option(metavar="N", help="seed of the gate's bootstrap resamples")
    ] = SEED,
    admissions: Annotated[
        Literal["any", "avoidable"] | None,
        typer.Option(
            help="which model: any emergency admission (admission-risk) or potentially "
            "avoidable ones (avoidable-admission-risk); default: the one trained last",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Compare a model's challenger with the champion of the same model (outcome) on the
    challenger's own test set (out of time, less the rows list-triggered help touched; or its
    table's held-out groups); promote it if it passes the gate. Exits 1 when the challenger
    is refused."""
    from riskstrat.models.registry import registered_name
    from riskstrat.training.promote import latest_challenger, promote

    one_source(data, features)
    uri = tracking_uri(workdir)
    name = registered_name(admissions) if admissions else latest_challenger(uri)
    decision = promote(data, uri, seed=seed, table=features, name=name)
    say(decision.explain())
    if not decision.promoted:
        raise SystemExit(1)


@command(
    app,
    "benefit",
    "learn from past list-triggered help whom each kind helps",
    "riskstrat benefit --data work/validated --workdir work",
    "riskstrat benefit --data work/validated --config benefit.toml --out benefit.json",
)
def cmd_benefit(
    data: Annotated[Path, option("DIR", "folder of validated contract tables")],
    out: Annotated[
        Path | None, option("FILE", "where to save the model (default: WORKDIR/benefit.json)")
    ] = None,
    workdir: Workdir = WORKDIR,
    config: Annotated[
        Path | None, config_option("a [benefit] table (optional: [exposure], [engine])")
    ] = None,
    engine: EngineChoice = None,
) -> None:
    """Fit the benefit learner on every list run whose outcome window the data cover and save
    it where the weekly run ranks offers by it (docs/targeting.md says what it rests on)."""
    from riskstrat.contract.tables import ContractTables
    from riskstrat.features.exposure import ExposureRule
    from riskstrat.training.benefit import BenefitSettings, train_benefit
    from riskstrat.training.benefit_card import save_benefit

    settings = from_config(BenefitSettings, config)
    rule = from_config(ExposureRule, config)
    folder = WorkFolder(workdir)
    path = out or folder.benefit
    writable_folder(path.parent)  # before the fit, not after it
    with reporting(), ContractTables.from_dir(data, make_engine(engine, config)) as sources:
        model = train_benefit(sources, settings, rule, until=sources.event_span()[1])
    card = path.with_name(folder.benefit_card.name)
    save_benefit(model, settings, path, card)
    say(f"benefit model from {len(model.runs)} list runs, horizon {model.horizon_days} days")
    for action in model.actions:
        say(f"  {action.describe()}")
    say(f"saved: {path}; its card: {card}")
