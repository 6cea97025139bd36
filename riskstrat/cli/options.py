"""What the commands share: the options several of them take (one definition, one help
text), date parsing, settings read from ``--config``, the engine choice, the tracking URI,
and examples in help."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol, Self, TypeVar

import typer

from riskstrat.common.defaults import WorkFolder
from riskstrat.common.errors import UserError

if TYPE_CHECKING:
    from riskstrat.contract.engines import Engine

TRACKING_ENV = "MLFLOW_TRACKING_URI"
BENTOML_HOME_ENV = "BENTOML_HOME"
DATE = "YYYY-MM-DD"


def tracking_uri(workdir: Path) -> str:
    """``MLFLOW_TRACKING_URI`` if set, else a SQLite database in the work folder.

    BentoML's model store (where promotion copies the champion) likewise defaults to
    ``WORKDIR/bentoml`` unless ``BENTOML_HOME`` is set.
    """
    folder = WorkFolder(workdir)
    os.environ.setdefault(BENTOML_HOME_ENV, str(folder.bentoml.resolve()))
    return os.environ.get(TRACKING_ENV) or f"sqlite:///{folder.tracking_db.resolve()}"


def parse_date(text: str | date) -> date:
    """``YYYY-MM-DD`` as a date; anything else is a usage error naming the option."""
    if isinstance(text, date):
        return text
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise typer.BadParameter(f"not a date ({DATE}): {text!r}") from exc


def examples(*lines: str) -> str:
    """A command's epilog: example command lines, kept as written (``\\b`` stops rewrapping)."""
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


Command = TypeVar("Command", bound=Callable[..., Any])


def command(
    app: typer.Typer, name: str, short_help: str, *example_lines: str, **settings: Any
) -> Callable[[Command], Command]:
    """Register ``name`` on ``app`` with its one-line help and its example command lines."""
    return app.command(name, short_help=short_help, epilog=examples(*example_lines), **settings)


def option(metavar: str, help_text: str) -> typer.models.OptionInfo:
    """An option whose default (none, or one the command works out) is not worth showing."""
    return typer.Option(metavar=metavar, help=help_text, show_default=False)


def config_option(tables: str) -> typer.models.OptionInfo:
    """``--config``: the TOML file whose ``tables`` (as help names them) the command reads."""
    return option("FILE", f"TOML file with {tables}")


def date_option(help_text: str, *, show_default: bool = True) -> typer.models.OptionInfo:
    """A date option (``YYYY-MM-DD``); a bad date is a usage error naming the option."""
    return typer.Option(parser=parse_date, metavar=DATE, help=help_text, show_default=show_default)


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
ContractData = Annotated[Path, option("DIR", "folder of validated contract tables (Parquet)")]
ExtractDate = Annotated[
    date | None,
    date_option("dates after this are in the future (default: today)", show_default=False),
]
Week = Annotated[date | None, date_option("which week (default: the latest)", show_default=False)]
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


class FromToml(Protocol):
    """Settings with defaults that a table of a TOML file can override."""

    def __init__(self) -> None: ...

    @classmethod
    def from_toml(cls, path: Path) -> Self: ...


S = TypeVar("S", bound=FromToml)


def from_config(kind: type[S], config: Path | None) -> S:
    """``kind``'s settings from the ``--config`` file, or its defaults when none is given."""
    return kind.from_toml(config) if config else kind()


def make_engine(name: str | None, config: Path | None) -> Engine:
    """The engine ``--engine`` names, with the ``[engine]`` settings of ``config``."""
    from dataclasses import replace

    from riskstrat.contract.engines import EngineSettings
    from riskstrat.contract.engines import make_engine as build

    settings = from_config(EngineSettings, config)
    return build(replace(settings, name=name) if name else settings)


def help_option(ctx: typer.Context, wanted: bool) -> None:
    """``--help`` on a group: its help, then stop."""
    if wanted:
        print(ctx.get_help())
        raise typer.Exit()


def no_command(ctx: typer.Context) -> None:
    """A group run without a command: its help on standard error, exit 2 (a usage error)."""
    if ctx.invoked_subcommand is None and not ctx.resilient_parsing:
        typer.echo(ctx.get_help(), err=True)
        raise typer.Exit(2)


# A group's own --help: typer's is absent (None) on every subcommand run and converting None
# loads pydantic, which made `riskstrat COMMAND --help` slow; this one defaults to False.
HelpFlag = Annotated[
    bool,
    typer.Option(
        "--help",
        "-h",
        is_eager=True,
        expose_value=False,
        callback=help_option,
        help="Show this message and exit.",
    ),
]


def writable_folder(folder: Path) -> None:
    """Make ``folder`` if need be and stop with one line naming it when nothing can be
    written there: checked before a long step, not found out after it."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{folder}: cannot make the folder ({exc.strerror or exc})") from None
    if not os.access(folder, os.W_OK):
        raise UserError(f"{folder}: cannot write there (no permission)")
