"""How a long step reports what it is doing, without knowing who listens or how it is shown.

A step takes a ``Progress`` and calls it with a plain message (``progress("training on ...")``)
or, for a stage whose size it knows, ``progress.advance(stage, done, total, detail)``. Defined
here, at the bottom of the dependency graph, so that features, training and serving can all
take one; the command line supplies an implementation that draws bars on a terminal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol


class Progress(Protocol):
    """What a long step reports to."""

    def __call__(self, message: str) -> None:
        """A plain message: a stage began, or what a stage found."""

    def advance(self, stage: str, done: int, total: int, detail: str = "") -> None:
        """``done`` of the ``total`` units of ``stage`` are finished (``detail``: the latest)."""


class Quiet:
    """Reports nothing: the default when nobody listens."""

    def __call__(self, message: str) -> None:
        pass

    def advance(self, stage: str, done: int, total: int, detail: str = "") -> None:
        pass


QUIET = Quiet()


class Lines:
    """Messages as lines through ``write``; stage steps only when ``steps`` is set.

    Without ``steps`` the output holds no more than the messages, so logs stay short.
    """

    def __init__(self, write: Callable[[str], None], *, steps: bool = False) -> None:
        self.write = write
        self.steps = steps

    def __call__(self, message: str) -> None:
        self.write(message)

    def advance(self, stage: str, done: int, total: int, detail: str = "") -> None:
        if self.steps:
            self.write(step_line(stage, done, total, detail))


def step_line(stage: str, done: int, total: int, detail: str = "") -> str:
    """A stage step as one line of text: ``simulating months 3/70: 2021-03, ...``."""
    return f"{stage} {done}/{total}" + (f": {detail}" if detail else "")
