"""What the command line prints: ``[riskstrat] ...`` lines, and bars while long steps run.

On a terminal, a stage with a known size (``Progress.advance``) draws a rich progress bar and
messages print above the bars. Anywhere else (a log file, CI, a pipe) only the messages are
printed, as plain lines without control characters, so logs stay clean. rich is imported only
when bars are drawn.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, TextIO

from riskstrat.common.progress import Lines, Progress, step_line

if TYPE_CHECKING:
    import rich.progress

PREFIX = "[riskstrat]"


def say(message: str, file: TextIO | None = None) -> None:
    """One ``[riskstrat] ...`` line on ``file`` (standard output by default)."""
    print(f"{PREFIX} {message}", file=file or sys.stdout, flush=True)


class Bars:
    """One rich bar per running stage; a finished stage's bar goes, its messages stay."""

    def __init__(self, bars: rich.progress.Progress, *, steps: bool = False) -> None:
        self.bars = bars
        self.steps = steps
        self.running: dict[str, tuple[rich.progress.TaskID, int]] = {}

    def __call__(self, message: str) -> None:
        self.bars.console.print(f"{PREFIX} {message}", markup=False, highlight=False)

    def advance(self, stage: str, done: int, total: int, detail: str = "") -> None:
        if self.steps:
            self(step_line(stage, done, total, detail))
        description = f"{stage}: {detail}" if detail else stage
        task, before = self.running.get(stage, (None, -1))
        if task is None or done < before:
            if task is not None:
                self.bars.remove_task(task)
            task = self.bars.add_task(description, total=total)
        self.bars.update(task, completed=done, total=total, description=description)
        if done >= total:
            self.bars.remove_task(task)
            self.running.pop(stage, None)
        else:
            self.running[stage] = (task, done)


@contextmanager
def reporting(*, steps: bool = False, stream: TextIO | None = None) -> Iterator[Progress]:
    """A ``Progress`` for one command: bars on a terminal, else the messages only.

    ``steps`` also prints each stage step as a line (``synth --verbose``).
    """
    out = stream or sys.stdout
    if not out.isatty():
        yield Lines(lambda message: say(message, out), steps=steps)
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )
    from rich.progress import Progress as RichProgress

    bars = RichProgress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(file=out),
    )
    with bars:
        yield Bars(bars, steps=steps)
