"""The command line: help on every option, an example per command, one-line errors, and
progress that stays out of logs."""

from __future__ import annotations

import io
import tomllib
from pathlib import Path

import pandas as pd
import pytest
from typer.main import get_command

from riskstrat.cli import app, main
from riskstrat.common.progress import Lines
from riskstrat.reporter import reporting

COMMANDS = {
    "synth",
    "validate",
    "ingest",
    "features",
    "bench-features",
    "train",
    "promote",
    "weekly",
    "bench-weekly",
    "referrals",
    "reidentify",
    "token",
    "serve",
    "bench-serve",
    "demo",
    "bench-synth",
    "bench-fit",
    "evaluate",
    "bench-evaluate",
    "bench-retrain",
}
CONTROL = ("\x1b", "\r")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Exit code and standard output of ``riskstrat argv``."""
    try:
        main(list(argv))
        code = 0
    except SystemExit as stopped:
        code = stopped.code
    return code, capsys.readouterr().out


def test_help_lists_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    code, printed = run(capsys, "--help")
    assert code == 0
    section = printed.split("Commands:\n")[1].split("\n\n")[0]
    assert {line.split()[0] for line in section.splitlines()} == COMMANDS
    assert set(get_command(app).commands) == COMMANDS


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_option_has_help_and_the_command_an_example(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    command = get_command(app).commands[name]
    assert command.help, name
    for param in command.params:
        assert param.help and param.help.strip(), f"{name} {param.opts}: no help"
    code, printed = run(capsys, name, "--help")
    assert code == 0
    for param in command.params:
        assert param.opts[0] in printed, f"{name} {param.opts[0]} missing from --help"
    examples = printed.split("Examples:")[1].splitlines()
    assert any(line.strip().startswith(f"riskstrat {name}") for line in examples), name


@pytest.mark.parametrize("name", ["features", "weekly", "bench-serve"])
def test_a_bad_as_of_date_is_one_line_naming_the_option(
    name: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, printed = run(
        capsys, name, "--data", str(tmp_path), "--as-of", "2025-13-01", "--out", str(tmp_path)
    )
    assert code == 2
    assert printed.splitlines() == [
        "[riskstrat] error: Invalid value for '--as-of': not a date (YYYY-MM-DD): '2025-13-01'"
    ]


def test_mistakes_the_user_can_fix_are_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = run(capsys, "features", "--data", str(tmp_path), "--as-of", "2025-01-01")
    assert missing == (2, "[riskstrat] error: Missing option '--out'.\n")
    code, printed = run(
        capsys, "features", "--data", str(tmp_path), "--as-of", "2025-01-01", "--out", "f.pq"
    )
    assert code == 2
    assert (
        printed
        == f"[riskstrat] error: {tmp_path}/practices.parquet: the practices table is missing\n"
    )
    code, printed = run(capsys, "weekly", "--data", str(tmp_path))
    assert (code, printed) == (
        2,
        "[riskstrat] error: weekly needs --data, --as-of and --out (or --check-rules)\n",
    )
    code, printed = run(capsys, "train", "--workdir", str(tmp_path))
    assert code == 2 and "--data" in printed and "--features" in printed
    assert len(printed.splitlines()) == 1
    code, printed = run(capsys, "token", "--name", "me", "--role", "king")
    assert code == 2 and "'--role'" in printed and len(printed.splitlines()) == 1


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
