"""The scoring service: ``token`` to let someone in, ``serve`` to start it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Literal

import typer

from riskstrat.cli.options import command, option, tracking_uri
from riskstrat.cli.reporter import say
from riskstrat.common.defaults import WORKDIR, WorkFolder
from riskstrat.common.errors import MissingInputError
from riskstrat.serving.roles import ROLES

Role = Literal[ROLES]  # type: ignore[valid-type]

DEFAULT_ACCESS = WorkFolder(WORKDIR).access

app = typer.Typer()


@command(
    app,
    "token",
    "create a bearer token for the service (hash stored)",
    "riskstrat token --name me --role system --access work/access.toml",
    "riskstrat token --name north-team --role locality_team --locality North "
    "--access work/access.toml",
)
def cmd_token(
    name: Annotated[str, option("NAME", "who holds it (shown in the audit log)")],
    role: Annotated[Role, typer.Option(help="what it may do", show_default=False)],
    locality: Annotated[
        list[str] | None,
        typer.Option(
            metavar="LOCALITY", help="locality_team: a locality it may see (repeat for more)"
        ),
    ] = None,
    access: Annotated[
        Path, typer.Option(metavar="FILE", help="access file the token's hash is added to")
    ] = DEFAULT_ACCESS,
) -> None:
    """Create a bearer token, store only its hash in the access file, and print it once.

    The entry is checked as the service checks the file (with what the file already holds)
    before anything is written: a locality team needs --locality.
    """
    import json
    import secrets

    from riskstrat.serving.access import AccessConfigError, parse_principals, token_digest

    token = secrets.token_urlsafe(32)
    entry = {"name": name, "role": role, "sha256": token_digest(token)}
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


def service_environment(workdir: Path, access: Path | None = None) -> dict[str, str]:
    """The environment ``riskstrat serve`` starts the service with: this process's, where
    every ``RISKSTRAT_*`` variable that is set wins, and the work folder fills in the rest
    (tracking URI, access file, audit log, weekly lists, validated tables, evaluations).

    ``access`` (``--access``) is the one value given on the command line, so it wins over
    ``RISKSTRAT_ACCESS_FILE``. A missing access file is a ``MissingInputError``. The
    pseudonymisation key (or its file's name) is left out: the service never needs it."""
    from riskstrat.contract.pseudonym import KEY_ENV, KEY_FILE_ENV
    from riskstrat.serving.settings import ServiceSettings

    folder = WorkFolder(workdir)
    given = {"access_file": access.resolve()} if access else {}
    settings = ServiceSettings.load(**given).or_else(
        tracking_uri=tracking_uri(workdir),
        access_file=folder.access.resolve(),
        audit_log=folder.audit_log.resolve(),
        # The pages and list endpoints read what `riskstrat demo` or `weekly` wrote there,
        # and the evaluation ones the evaluations written under <workdir>/evaluations.
        weekly_dir=folder.lists.resolve(),
        data_dir=folder.validated.resolve(),
        evaluations_dir=folder.evaluations.resolve(),
    )
    if not settings.access_file.exists():
        raise MissingInputError(
            f"{settings.access_file}: no access file; create a token first: riskstrat token "
            f"--name NAME --role system --access {settings.access_file}"
        )
    base = {k: v for k, v in os.environ.items() if k not in {KEY_ENV, KEY_FILE_ENV}}
    return settings.environment(base) | {"BENTOML_DO_NOT_TRACK": "True"}


def check_audit_log(env: dict[str, str]) -> None:
    """What each worker checks when it starts, once before any starts: a torn last line is
    set aside and the audit chain must verify (a ``ChainBrokenError`` naming the line stops
    ``serve``, where the service would refuse every request)."""
    from riskstrat.serving.audit_stores import audit_store
    from riskstrat.serving.settings import FIELDS, ServiceSettings, variable

    given = {name: env[variable(name)] for name in FIELDS if variable(name) in env}
    verified = audit_store(ServiceSettings.load(**given)).start()
    if verified:
        say(f"audit log: {verified.summary()}")


def serve_command(port: int, host: str) -> list[str]:
    """The BentoML command line that runs the service."""
    return [
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


@command(
    app,
    "serve",
    "start the BentoML scoring service",
    "riskstrat serve --workdir work",
    "riskstrat serve --workdir work --port 8080 --host 0.0.0.0",
)
def cmd_serve(
    access: Annotated[
        Path | None,
        option("FILE", "access file (default: RISKSTRAT_ACCESS_FILE, else WORKDIR/access.toml)"),
    ] = None,
    port: Annotated[int, typer.Option(metavar="PORT", help="TCP port to listen on")] = 3000,
    host: Annotated[str, typer.Option(metavar="HOST", help="address to listen on")] = "127.0.0.1",
    workdir: Annotated[
        Path,
        typer.Option(
            metavar="DIR",
            help="work folder: the default for every RISKSTRAT_* setting that is not set "
            "(tracking URI, access file, audit log, lists, tables, evaluations)",
        ),
    ] = WORKDIR,
) -> None:
    """Start the scoring service and web pages on the champion (Ctrl-C stops).

    Every RISKSTRAT_* variable that is set (RISKSTRAT_TRACKING_URI, RISKSTRAT_AUDIT_LOG,
    RISKSTRAT_ACCESS_FILE and the rest) wins over the work folder."""
    env = service_environment(workdir, access)
    check_audit_log(env)
    say(f"serving on http://{host}:{port} (OpenAPI at /docs.json); Ctrl-C stops")
    raise SystemExit(subprocess.call(serve_command(port, host), env=env))
