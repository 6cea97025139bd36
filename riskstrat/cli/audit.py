"""The audit trail, under ``riskstrat audit``: ``verify`` checks the service's audit chain
(files, or the PostgreSQL table) with its key, for the log's custodian or an auditor."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from riskstrat.cli.options import HelpFlag, command, examples, no_command, option
from riskstrat.cli.reporter import say
from riskstrat.common.errors import UserError

KEY_FILE_ENV = "RISKSTRAT_AUDIT_KEY_FILE"

app = typer.Typer(
    name="audit",
    help="The service's audit trail: check that no line was deleted, edited or moved.",
    epilog=examples("riskstrat audit verify work/audit.jsonl.000000000001 work/audit.jsonl"),
    short_help="check the service's audit trail (a keyed hash chain)",
    invoke_without_command=True,
    add_help_option=False,
)


@app.callback()
def _audit(ctx: typer.Context, show_help: HelpFlag = False) -> None:
    no_command(ctx)


def _key_file(given: Path | None, files: list[Path]) -> Path:
    """The key: ``--key-file``, else ``RISKSTRAT_AUDIT_KEY_FILE``, else ``audit.key`` beside
    the first file (where the service makes it by default)."""
    if given:
        return given
    if os.environ.get(KEY_FILE_ENV):
        return Path(os.environ[KEY_FILE_ENV])
    if files:
        return files[0].with_name("audit.key")
    raise UserError(f"give the audit key: --key-file FILE (or set {KEY_FILE_ENV})")


@command(
    app,
    "verify",
    "check an audit chain: the first broken, missing, edited or moved line",
    "riskstrat audit verify work/audit.jsonl",
    "riskstrat audit verify --key-file /secure/audit.key archive/audit.jsonl.* audit.jsonl",
    "riskstrat audit verify --database postgresql://auditor@db/riskstrat --key-file audit.key",
)
def cmd_verify(
    files: Annotated[
        list[Path] | None,
        typer.Argument(
            metavar="FILE",
            help="the log and the files rotated from it, oldest first (<log>.<first record> "
            "sorts so); a later file alone is checked from its first line",
            show_default=False,
        ),
    ] = None,
    key_file: Annotated[
        Path | None,
        option("FILE", f"the audit key (default: {KEY_FILE_ENV}, else audit.key beside FILE)"),
    ] = None,
    database: Annotated[
        str | None,
        option("URL", "verify the audit table in this PostgreSQL database instead of files"),
    ] = None,
) -> None:
    """Check the audit chain line by line with its key; exit 0 with the count and the head
    (note it: lines cut from the end are found only against a head noted earlier), exit 2
    with one line naming the first line that is torn, not sealed, missing, out of order or
    edited."""
    from riskstrat.serving.audit_chain import read_key, verify_files

    if bool(files) == bool(database):
        raise UserError("give the audit log's files, or --database URL (not both)")
    key = read_key(_key_file(key_file, files or []))
    if database:
        from riskstrat.serving.audit_db import verify_table

        verified = verify_table(database, key)
    else:
        verified = verify_files(files or [], key)
    say(verified.summary())
