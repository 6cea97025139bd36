"""The one Jinja2 set-up for the HTML riskstrat writes: the model card, the weekly reports
and the web pages. Autoescaped (names and reasons come from data), strict about undefined
names (a typo in a template fails instead of printing nothing), whitespace trimmed.

Here, at the bottom of the dependency graph, so that training and serving share it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape


def html_environment(
    folder: Path,
    filters: dict[str, Callable[..., object]] | None = None,
    globals_: dict[str, object] | None = None,
) -> Environment:
    """An environment over the templates in ``folder`` with these filters and globals."""
    env = Environment(
        loader=FileSystemLoader(folder),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(filters or {})
    env.globals.update(globals_ or {})
    return env
