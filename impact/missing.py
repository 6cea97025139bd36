"""A design's result when it cannot estimate: what was observed kept, every estimate missing."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

Result = TypeVar("Result")


def unestimated(cls: type[Result], missing: float | None, **known: Any) -> Result:
    """An instance of the dataclass ``cls`` with the ``known`` fields as given and every other
    field ``missing`` (NaN, or None where the result says "not estimated" with None)."""
    absent = {f.name: missing for f in fields(cls) if f.name not in known}
    return cls(**absent, **known)
