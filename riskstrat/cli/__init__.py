"""The ``riskstrat`` command: thin subcommands that parse options and call plain functions.

One module per command group (``synthetic``, ``data``, ``training``, ``weekly``,
``service``, ``evaluate``, ``audit``, ``bench``); this one gathers them and runs them
(:func:`main`).
Heavy libraries are imported inside each command, so ``riskstrat --help`` stays fast.
Logging, the MLflow tracking URI and folders are set up here, never on import.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from dataclasses import dataclass
from typing import Annotated

import typer

from riskstrat.cli import audit, bench, data, evaluate, service, synthetic, training, weekly
from riskstrat.cli.options import HelpFlag, examples, no_command
from riskstrat.cli.reporter import say
from riskstrat.common.errors import UserError

DEBUG_ENV = "RISKSTRAT_DEBUG"

app = typer.Typer(
    name="riskstrat",
    help="Risk stratification for admission prevention in integrated health and social care.",
    epilog=examples(
        "riskstrat demo --workdir work --patients 50000 --seed 42",
        "riskstrat COMMAND --help",
        "riskstrat --debug COMMAND ...   (a failure's traceback too)",
    ),
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    add_completion=False,
    invoke_without_command=True,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
# In the order of the job: data in, models, the weekly lists, the service, evaluation.
for group in (synthetic, data, training, weekly, service, evaluate):
    app.add_typer(group.app)
app.add_typer(audit.app)
app.add_typer(bench.app)
app.add_typer(bench.deprecated)


@dataclass
class Run:
    """What the root options decide for the whole run, read back by :func:`main`."""

    debug: bool = False


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


@app.callback(add_help_option=False)
def _root(
    ctx: typer.Context,
    show_help: HelpFlag = False,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            envvar=DEBUG_ENV,
            help=f"show the traceback behind an error message (or set {DEBUG_ENV}=1)",
        ),
    ] = False,
) -> None:
    no_command(ctx)
    if isinstance(ctx.obj, Run):
        ctx.obj.debug = debug
    _set_up()


def main(argv: list[str] | None = None) -> None:
    """Run ``riskstrat`` on ``argv`` (default: the process's arguments); see :func:`run`."""
    run(app, argv)


def run(command: typer.Typer, argv: list[str] | None = None) -> None:
    """Run ``command`` on ``argv`` as ``riskstrat``, with its error policy.

    A mistake the user can fix (a ``UserError``, or a bad or missing option) prints one
    ``[riskstrat] error: ...`` line on standard error and exits 2; with ``--debug`` (or
    ``RISKSTRAT_DEBUG=1``) its traceback comes first. Anything else is a bug and propagates:
    its traceback, exit 1.
    """
    options = Run()
    try:
        code = typer.main.get_command(command).main(
            args=argv, prog_name="riskstrat", standalone_mode=False, obj=options
        )
    except (UserError, typer.TyperException) as exc:
        if options.debug:
            traceback.print_exc()
        message = exc.format_message() if isinstance(exc, typer.TyperException) else str(exc)
        say(f"error: {message}", file=sys.stderr)
        raise SystemExit(2) from exc
    except typer.Abort:
        say("stopped", file=sys.stderr)
        raise SystemExit(130) from None
    if code:
        raise SystemExit(code)
