"""Settings: frozen pydantic models read from TOML tables, with one-line errors.

Every settings concern (training, the weekly run, referral criteria, pathway rules, what
counts as the outcome) is a model declared with :func:`settings_model`: frozen, unknown keys
refused, constraints declared with ``Field(ge=..., le=...)`` and validators. This module is
the one loader that reads a named TOML table into such a model, and the one place that turns
pydantic's errors into a line naming the file, the table and the field::

    settings.toml: [train.lightgbm] num_leavs: unknown setting (known: learning_rate, ...)
    settings.toml: [weekly] high_share: must be between 0 and 1 (got 1.5)

It lives in ``features`` because that is the bottom of the dependency graph: ``models``,
``training`` and ``serving`` all import ``features`` and it imports none of them, so every
package (including features' own sources) can read its settings here; in ``models`` it would
be out of reach of ``features``.

The models are pydantic dataclasses rather than ``BaseModel``: they keep the standard
dataclass interface (``dataclasses.replace``, ``fields``, ``asdict``) that the rest of the
code uses on configuration objects, and ``replace`` validates again.
"""

from __future__ import annotations

import json
import tomllib
import types
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Annotated, Any, TypeVar, Union, dataclass_transform, get_args, get_origin

import annotated_types
from pydantic import BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic.dataclasses import dataclass
from pydantic.fields import FieldInfo

from riskstrat.common.errors import UserError

T = TypeVar("T")
SETTINGS_CONFIG = ConfigDict(extra="forbid")


class SettingsError(UserError):
    """Settings that cannot be used; one line: ``source: [table] field: problem``."""

    def __init__(self, source: str, problem: str, table: str = "", field: str | None = None):
        where = " ".join(part for part in (f"{source}:", table, field and f"{field}:") if part)
        super().__init__(f"{where} {problem}")
        self.source, self.problem, self.table, self.field = source, problem, table, field


def _not_a_flag(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError(f"must be a whole number (got {value})")
    return value


# An int that refuses true/false (pydantic would read them as 1 and 0).
Integer = Annotated[int, BeforeValidator(_not_a_flag)]


@dataclass_transform(frozen_default=True, kw_only_default=True, field_specifiers=(Field,))
def settings_model(cls: type[T]) -> type[T]:
    """The class as a frozen, keyword-only pydantic dataclass that refuses unknown keys."""
    return dataclass(frozen=True, slots=True, kw_only=True, config=SETTINGS_CONFIG)(cls)


def read_toml(path: Path) -> dict[str, Any]:
    """The parsed file; an unreadable file or bad TOML is a SettingsError naming the file."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SettingsError(str(path), f"cannot read the file ({exc.strerror or exc})") from None
    return parse_toml(raw, path)


def parse_toml(raw: bytes, path: Path) -> dict[str, Any]:
    """``raw`` (the bytes of ``path``) parsed; errors name the file."""
    try:
        return tomllib.loads(raw.decode())
    except UnicodeDecodeError:
        raise SettingsError(str(path), "not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(str(path), f"not valid TOML ({exc})") from None


def load_table(path: Path, table: str, model: type[T]) -> T:
    """The ``[table]`` (dotted for a sub-table) of a TOML file as ``model``.

    A missing table gives the model's defaults.
    """
    return table_of(read_toml(path), table, model, str(path))


def table_of(body: Mapping[str, Any], table: str, model: type[T], source: str) -> T:
    """``body``'s ``[table]`` (``""``: the whole document) as ``model``; errors name ``source``."""
    values: Any = body
    for part in filter(None, table.split(".")):
        values = values.get(part, {})
        if not isinstance(values, Mapping):
            raise SettingsError(source, "must be a table", f"[{table}]")
    return validate(model, values, source, table)


def validate(model: type[T], values: Mapping[str, Any], source: str, table: str = "") -> T:
    """``values`` as ``model``; any error becomes one line: ``source: [table] field: problem``."""
    try:
        return _adapter(model).validate_python(values)
    except ValidationError as exc:
        raise _error(exc, model, values, source, table) from None


def validate_json(model: type[T], raw: str | bytes, source: str) -> T:
    """``raw`` JSON as ``model``, strictly (JSON's own types, no text read as a number or a
    list); errors as ``validate``'s."""
    try:
        return _adapter(model).validate_json(raw, strict=True)
    except ValidationError as exc:
        raise _error(exc, model, json.loads(raw), source, "") from None


@cache
def _adapter(model: type[T]) -> TypeAdapter[T]:
    return TypeAdapter(model)


def _error(
    exc: ValidationError, model: type, values: Mapping[str, Any], source: str, table: str
) -> SettingsError:
    errors = _root_causes(exc.errors(include_url=False))
    first = errors[0]
    loc = tuple(first["loc"])
    fields = [i for i, part in enumerate(loc) if isinstance(part, str)]
    cut = fields[-1] if fields else len(loc)
    field = loc[cut] if fields else None
    where = _where(table, loc[:cut], values)
    owner = _model_at(model, loc[:cut])
    problem = _problem(first, owner, str(field) if field is not None else None)
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return SettingsError(source, problem + more, where, str(field) if field is not None else None)


def _root_causes(errors: list) -> list:
    """Errors that are not consequences of others (a list left empty by a bad entry),
    unknown settings first: a misspelt key explains the "required" error beside it."""
    locs = [tuple(e["loc"]) for e in errors]
    causes = [
        e
        for e, loc in zip(errors, locs, strict=True)
        if not any(len(o) > len(loc) and o[: len(loc)] == loc for o in locs)
    ]
    return sorted(causes, key=lambda e: e["type"] not in _UNKNOWN)


_UNKNOWN = ("extra_forbidden", "unexpected_keyword_argument")


def _where(table: str, path: tuple, values: Any) -> str:
    """``[train.lightgbm]`` for a sub-table, ``[[rule]] 2 ('name')`` for an array entry."""
    names = [table] if table else []
    entry = ""
    for part in path:
        if isinstance(part, int):
            values = values[part] if isinstance(values, list | tuple) else {}
            name = values.get("name") if isinstance(values, Mapping) else None
            label = f" ({name!r})" if isinstance(name, str) and name.strip() else ""
            entry = f" {part + 1}{label}"
        else:
            names.append(part)
            entry = ""
            values = values.get(part, {}) if isinstance(values, Mapping) else {}
    if not names:
        return ""
    dotted = ".".join(names)
    return f"[[{dotted}]]{entry}" if entry else f"[{dotted}]"


def _problem(error: Any, owner: type | None, field: str | None) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    got = f" (got {_shown(error['input'])})"
    info = settings_fields(owner).get(field) if field else None
    if kind in _UNKNOWN:
        return f"unknown setting (known: {', '.join(settings_fields(owner))})"
    if kind in ("missing", "missing_keyword_argument"):
        return "is required"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return _bounds(info, ctx) + got
    if kind in ("too_short", "too_long", "string_too_short", "string_too_long"):
        return _length(kind, ctx)
    if kind == "literal_error":
        return f"must be one of {ctx['expected']}{got}"
    if kind.startswith("int_") or kind == "int_type":
        return "must be a whole number" + got
    if kind.startswith("float_"):
        return "must be a number" + got
    if kind.startswith("bool_"):
        return "must be true or false" + got
    if kind.startswith(("date_", "datetime_")):
        return "must be a date like 2025-01-01" + got
    if kind in ("tuple_type", "list_type"):
        return "must be a list" + got
    if kind == "string_type":
        return "must be text" + got
    if kind in ("dataclass_type", "dataclass_args_type", "model_type", "dict_type"):
        return "must be a table" + got
    if kind == "value_error":
        return str(ctx["error"])
    return error["msg"][:1].lower() + error["msg"][1:] + got


def _bounds(info: FieldInfo | None, ctx: dict) -> str:
    """``between 0 and 1`` when both bounds are declared, else the one that failed."""
    found = dict(ctx) | (bounds(info) if info is not None else {})
    if "ge" in found and "le" in found:
        return f"must be between {found['ge']} and {found['le']}"
    low = (
        f"at least {found['ge']}"
        if "ge" in found
        else f"more than {found['gt']}"
        if "gt" in found
        else ""
    )
    high = (
        f"at most {found['le']}"
        if "le" in found
        else f"less than {found['lt']}"
        if "lt" in found
        else ""
    )
    return "must be " + " and ".join(p for p in (low, high) if p)


def _length(kind: str, ctx: dict) -> str:
    if kind.endswith("too_long"):
        return f"must have at most {ctx['max_length']} item(s)"
    least = ctx["min_length"]
    return "must not be empty" if least == 1 else f"needs at least {least} items"


def _shown(value: Any) -> str:
    return repr(value) if isinstance(value, str) else str(value)


def settings_fields(model: type | None) -> dict[str, FieldInfo]:
    """A settings model's fields in order: annotation, default, declared constraints."""
    return getattr(model, "__pydantic_fields__", None) or {}


def bounds(info: FieldInfo) -> dict[str, Any]:
    """The field's declared bounds, e.g. ``{"ge": 0, "le": 1}``."""
    found = {}
    for item in info.metadata:
        for name in ("ge", "gt", "le", "lt"):
            if isinstance(item, getattr(annotated_types, name.capitalize())):
                found[name] = getattr(item, name)
    return found


def _model_at(model: type, path: tuple) -> type | None:
    """The settings class that holds the field at ``path`` (its table or array entry)."""
    kind: Any = model
    for part in path:
        kind = without_none(kind)
        if isinstance(part, int):
            args = get_args(kind)
            kind = args[0] if args else None
        else:
            info = settings_fields(kind).get(part)
            kind = info.annotation if info is not None else None
    return without_none(kind)


def without_none(kind: Any) -> Any:
    """``X`` for ``X | None``."""
    if get_origin(kind) in (Union, types.UnionType):
        rest = [a for a in get_args(kind) if a is not type(None)]
        return rest[0] if len(rest) == 1 else kind
    return kind
