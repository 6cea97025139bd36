"""The command line: help on every option, an example per command, one-line errors, and
progress that stays out of logs."""

from __future__ import annotations

import io
import subprocess
import sys
import tomllib
from pathlib import Path

import pandas as pd
import pytest
from typer.main import get_command

from riskstrat.cli import app, main
from riskstrat.cli.bench import deprecation
from riskstrat.cli.options import TRACKING_ENV
from riskstrat.cli.reporter import reporting
from riskstrat.cli.service import service_environment
from riskstrat.common.errors import MissingInputError
from riskstrat.common.progress import Lines
from riskstrat.contract.pseudonym import KEY_ENV, KEY_FILE_ENV
from riskstrat.serving.settings import VARIABLES

COMMANDS = {
    "synth",
    "validate",
    "ingest",
    "features",
    "train",
    "promote",
    "benefit",
    "weekly",
    "referrals",
    "reidentify",
    "token",
    "serve",
    "demo",
    "evaluate",
    "audit",
    "bench",
}
BENCHMARKS = {
    *("features", "weekly", "serve", "evaluate", "check", "retrain", "fit", "synth", "scale"),
    "target",
}
OLD_NAMED = BENCHMARKS - {
    "scale",
    "check",
    "target",
}  # benchmarks newer than the old names have none
# Every command line with its own help: the commands, the bench group and its benchmarks.
COMMAND_LINES = [
    *[(name,) for name in sorted(COMMANDS - {"audit"})],
    ("audit", "verify"),
    *[("bench", name) for name in sorted(BENCHMARKS)],
]
CONTROL = ("\x1b", "\r")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Exit code and standard output of ``riskstrat argv``."""
    try:
        main(list(argv))
        code = 0
    except SystemExit as stopped:
        code = stopped.code
    return code, capsys.readouterr().out


def fail(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Exit code and standard error of ``riskstrat argv``, which printed nothing else."""
    with pytest.raises(SystemExit) as stopped:
        main(list(argv))
    printed = capsys.readouterr()
    assert printed.out == ""
    return stopped.value.code, printed.err


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, printed = run(capsys, "--help")
    assert code == 0
    section = printed.split("Commands:\n")[1].split("\n\n")[0]
    assert {line.split()[0] for line in section.splitlines()} == COMMANDS
    commands = get_command(app).commands
    assert {name for name, command in commands.items() if not command.hidden} == COMMANDS
    assert {name for name, command in commands.items() if command.hidden} == {
        f"bench-{name}" for name in OLD_NAMED
    }
    assert set(commands["bench"].commands) == BENCHMARKS


@pytest.mark.parametrize("line", COMMAND_LINES, ids=" ".join)
def test_every_option_has_help_and_the_command_an_example(
    line: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    command = get_command(app)
    for name in line:
        command = command.commands[name]
    assert command.help, line
    for param in command.params:
        assert param.help and param.help.strip(), f"{line} {param.opts}: no help"
    code, printed = run(capsys, *line, "--help")
    assert code == 0
    for param in command.params:
        assert param.opts[0] in printed, f"{line} {param.opts[0]} missing from --help"
    examples = printed.split("Examples:")[1].splitlines()
    called = "riskstrat " + " ".join(line)
    assert any(example.strip().startswith(called) for example in examples), line


@pytest.mark.parametrize(
    "line", [("features",), ("weekly",), ("bench", "serve"), ("bench-serve",)], ids=" ".join
)
def test_a_bad_as_of_date_is_one_line_naming_the_option(
    line: tuple[str, ...], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, printed = fail(
        capsys, *line, "--data", str(tmp_path), "--as-of", "2025-13-01", "--out", str(tmp_path)
    )
    assert code == 2
    assert printed.splitlines() == [
        "[riskstrat] error: Invalid value for '--as-of': not a date (YYYY-MM-DD): '2025-13-01'"
    ]


def test_mistakes_the_user_can_fix_are_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = fail(capsys, "features", "--data", str(tmp_path), "--as-of", "2025-01-01")
    assert missing == (2, "[riskstrat] error: Missing option '--out'.\n")
    code, printed = fail(
        capsys, "features", "--data", str(tmp_path), "--as-of", "2025-01-01", "--out", "f.pq"
    )
    assert code == 2
    assert (
        printed
        == f"[riskstrat] error: {tmp_path}/practices.parquet: the practices table is missing\n"
    )
    code, printed = fail(capsys, "weekly", "--data", str(tmp_path))
    assert (code, printed) == (
        2,
        "[riskstrat] error: weekly needs --data, --as-of and --out (or --check-rules)\n",
    )
    code, printed = fail(capsys, "train", "--workdir", str(tmp_path))
    assert code == 2 and "--data" in printed and "--features" in printed
    assert len(printed.splitlines()) == 1
    code, printed = fail(capsys, "token", "--name", "me", "--role", "king")
    assert code == 2 and "'--role'" in printed and len(printed.splitlines()) == 1


def test_an_old_benchmark_name_says_so_then_runs_the_same_benchmark(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The old name prints one deprecation line, then does exactly what the new one does (here:
    refuses a folder without contract tables)."""
    argv = ["--data", str(tmp_path / "empty"), "--out", str(tmp_path / "out")]
    (tmp_path / "empty").mkdir()
    refusal = f"[riskstrat] error: {tmp_path / 'empty' / 'practices.parquet'}: the practices "
    code, printed = fail(capsys, "bench", "features", *argv)
    assert code == 2 and printed.startswith(refusal) and len(printed.splitlines()) == 1
    code, old = fail(capsys, "bench-features", *argv)
    assert code == 2
    assert old.splitlines() == [f"[riskstrat] {deprecation('features')}", printed.strip()]
    assert deprecation("features") == (
        "deprecated: use `riskstrat bench features`; the old name goes in the next release"
    )
    code, printed = run(capsys, "bench-synth", "--help")
    assert code == 0 and "--patients" in printed and "riskstrat bench synth" in printed


def test_a_group_without_a_command_shows_its_help_and_exits_2(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for line in ((), ("bench",)):
        code, printed = fail(capsys, *line)
        assert code == 2 and printed.startswith(f"Usage: riskstrat {' '.join(line)}".strip())


def test_debug_shows_the_traceback_behind_a_user_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    line = "[riskstrat] error: weekly needs --data, --as-of and --out (or --check-rules)"
    code, printed = fail(capsys, "--debug", "weekly", "--data", str(tmp_path))
    assert code == 2
    assert printed.startswith("Traceback (most recent call last):")
    assert "UserError" in printed and printed.splitlines()[-1] == line
    monkeypatch.setenv("RISKSTRAT_DEBUG", "1")
    code, printed = fail(capsys, "weekly", "--data", str(tmp_path))
    assert code == 2 and printed.startswith("Traceback") and printed.splitlines()[-1] == line
    monkeypatch.setenv("RISKSTRAT_DEBUG", "0")
    assert fail(capsys, "weekly", "--data", str(tmp_path)) == (2, line + "\n")


BUGGY = """
import typer
from riskstrat.cli import run

app = typer.Typer()


@app.command()
def parse(text: str) -> None:
    int(text)  # a ValueError from deep inside: not a user error


run(app, ["not-a-number"])
"""


def test_a_bug_keeps_its_traceback_and_exits_1(tmp_path: Path) -> None:
    """Not every ValueError is the user's: one that is not a UserError is a bug."""
    script = tmp_path / "buggy.py"
    script.write_text(BUGGY)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert done.returncode == 1
    assert done.stderr.startswith("Traceback (most recent call last):")
    assert done.stderr.splitlines()[-1] == (
        "ValueError: invalid literal for int() with base 10: 'not-a-number'"
    )
    assert "[riskstrat] error" not in done.stderr + done.stdout


def test_serve_honours_every_riskstrat_variable_and_defaults_to_the_work_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "access.toml").write_text("")
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv(TRACKING_ENV, raising=False)
    defaults = service_environment(workdir)
    assert defaults["RISKSTRAT_TRACKING_URI"] == f"sqlite:///{workdir.resolve()}/mlflow.db"
    assert defaults["RISKSTRAT_ACCESS_FILE"] == str(workdir.resolve() / "access.toml")
    assert defaults["RISKSTRAT_AUDIT_LOG"] == str(workdir.resolve() / "audit.jsonl")
    assert defaults["RISKSTRAT_WEEKLY_DIR"] == str(workdir.resolve() / "lists")
    assert defaults["RISKSTRAT_DATA_DIR"] == str(workdir.resolve() / "validated")
    assert defaults["RISKSTRAT_EVALUATIONS_DIR"] == str(workdir.resolve() / "evaluations")

    access = tmp_path / "elsewhere.toml"
    access.write_text("")
    given = {
        "RISKSTRAT_TRACKING_URI": "sqlite:////srv/registry.db",
        "RISKSTRAT_ACCESS_FILE": str(access),
        "RISKSTRAT_AUDIT_LOG": "/var/log/riskstrat/audit.jsonl",
        "RISKSTRAT_SESSIONS": "/var/lib/riskstrat/sessions.sqlite",
        "RISKSTRAT_WEEKLY_DIR": "/srv/lists",
        "RISKSTRAT_DATA_DIR": "/srv/validated",
        "RISKSTRAT_EVALUATIONS_DIR": "/srv/evaluations",
        "RISKSTRAT_RELOAD_SECONDS": "5.0",
        "RISKSTRAT_TRUSTED_PROXIES": "1",
        "RISKSTRAT_AUDIT_KEY_FILE": "/etc/riskstrat/audit.key",
        "RISKSTRAT_AUDIT_ROTATE": "daily",
        "RISKSTRAT_DATABASE_URL": "postgresql://riskstrat@db.internal/riskstrat",
    }
    assert set(given) == set(VARIABLES) - {"RISKSTRAT_WORKERS"}
    for name, value in given.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("RISKSTRAT_WORKERS", "3")
    monkeypatch.setenv(TRACKING_ENV, "sqlite:////not/this/one.db")
    monkeypatch.setenv(KEY_ENV, "a secret only ingest and reidentify may hold")
    monkeypatch.setenv(KEY_FILE_ENV, str(tmp_path / "key"))
    chosen = service_environment(workdir)
    assert {name: chosen[name] for name in given} == given
    assert KEY_ENV not in chosen and KEY_FILE_ENV not in chosen
    assert '"workers": 3' in chosen["BENTOML_CONFIG_OVERRIDES"]

    flag = tmp_path / "flag.toml"
    flag.write_text("")
    assert service_environment(workdir, flag)["RISKSTRAT_ACCESS_FILE"] == str(flag.resolve())
    monkeypatch.setenv("RISKSTRAT_ACCESS_FILE", str(tmp_path / "missing.toml"))
    with pytest.raises(MissingInputError, match="no access file; create a token first"):
        service_environment(workdir)


def test_token_stores_the_hash_and_every_locality(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    access = tmp_path / "access.toml"
    code, printed = run(
        capsys,
        "token",
        "--name",
        "north",
        "--role",
        "locality_team",
        "--locality",
        "North",
        "--locality",
        "East",
        "--access",
        str(access),
    )
    assert code == 0
    token = printed.splitlines()[-1]
    (entry,) = tomllib.loads(access.read_text())["token"]
    assert entry["localities"] == ["North", "East"]
    assert entry["role"] == "locality_team"
    assert token not in access.read_text()


def test_off_a_terminal_progress_prints_the_messages_only() -> None:
    stream = io.StringIO()
    with reporting(stream=stream) as progress:
        assert isinstance(progress, Lines)
        progress("training on 10 snapshots")
        for month in range(1, 71):
            progress.advance("simulating months", month, 70, f"month {month}")
        progress.advance("features", 0, 1)
    assert stream.getvalue() == "[riskstrat] training on 10 snapshots\n"


def test_off_a_terminal_steps_are_lines_when_asked_for() -> None:
    stream = io.StringIO()
    with reporting(steps=True, stream=stream) as progress:
        progress.advance("simulating months", 3, 70, "2021-03, 8,663 events")
    assert stream.getvalue() == "[riskstrat] simulating months 3/70: 2021-03, 8,663 events\n"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_stages_draw_bars_and_messages_still_print() -> None:
    stream = Terminal()
    with reporting(stream=stream) as progress:
        progress("building features")
        progress.advance("training", 1, 4, "fitting")
        progress.advance("training", 4, 4, "registered")
        progress.advance("weekly run", 0, 3, "features")
    drawn = stream.getvalue()
    assert "[riskstrat] building features" in drawn
    assert "training: fitting" in drawn
    assert "\x1b" in drawn


def test_a_command_off_a_terminal_prints_only_its_summary(
    validated: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "features.parquet"
    code, printed = run(
        capsys,
        "features",
        "--data",
        str(validated),
        "--as-of",
        "2025-01-01",
        "--as-of",
        "2024-10-01",
        "--out",
        str(out),
    )
    assert code == 0
    (line,) = printed.splitlines()
    assert line.startswith("[riskstrat] ") and "for 2 as-of date(s)" in line
    assert not any(c in printed for c in CONTROL)
    assert pd.read_parquet(out)["as_of"].nunique() == 2


HELP_IMPORTS = """
import sys
from riskstrat.cli import main

for line in ([], ["demo"], ["serve"], ["token"], ["bench"], ["bench", "fit"]):
    try:
        main([*line, "--help"])
    except SystemExit:
        pass
heavy = ("mlflow", "shap", "lightgbm", "pandas", "pydantic_settings", "bentoml")
print(sorted(name for name in heavy if name in sys.modules))
"""


def test_help_loads_no_heavy_library() -> None:
    """``riskstrat --help`` and every command's help stay fast: nothing heavy is imported."""
    done = subprocess.run(
        [sys.executable, "-c", HELP_IMPORTS], capture_output=True, text=True, check=True
    )
    assert done.stdout.splitlines()[-1] == "[]"
