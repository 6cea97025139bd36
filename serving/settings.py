"""The service's settings: one frozen object read from ``RISKSTRAT_*`` environment variables.

Read when the service starts (``ServiceSettings.load``) or when a request needs a folder
(``ServiceSettings.current``), never on import. Every value is validated when the object is
built; a bad one is a ``SettingsError`` naming the variable and the problem.

The worker count is not read by the service: BentoML decides it before any worker imports
the service. ``riskstrat serve`` reads ``RISKSTRAT_WORKERS`` and hands it to BentoML through
BentoML's own configuration (``BENTOML_CONFIG_OVERRIDES``, see ``bentoml_overrides``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import AliasGenerator, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from riskstrat.common.errors import UserError
from riskstrat.serving.rotation import DEFAULT as ROTATION_DEFAULT
from riskstrat.serving.rotation import Rotation

PREFIX = "RISKSTRAT_"
# The BentoML service's name (``@bentoml.service(name=...)``), which keys its configuration.
SERVICE_NAME = "riskstrat"
BENTOML_OVERRIDES = "BENTOML_CONFIG_OVERRIDES"  # JSON, merged into BentoML's configuration
# The web server BentoML runs (uvicorn) rewrites the client's address and scheme from
# X-Forwarded-For and X-Forwarded-Proto sent from the addresses in this variable, by default
# loopback, where ``riskstrat serve`` listens. Empty: from none. The service believes those
# headers itself, only from ``RISKSTRAT_TRUSTED_PROXIES`` proxies (``serving.access``).
SERVER_PROXY_HEADERS = {"FORWARDED_ALLOW_IPS": ""}


def variable(name: str) -> str:
    """The environment variable of setting ``name``."""
    return PREFIX + name.upper()


class SettingsError(UserError):
    """A setting is missing or wrong; names the environment variable."""


class ServiceSettings(BaseSettings):
    """Where the service finds its model, tokens, audit log, sessions, weekly runs and
    evaluations."""

    model_config = SettingsConfigDict(
        # Each setting reads exactly PREFIX + its name in capitals (RISKSTRAT_WEEKLY_DIR).
        alias_generator=AliasGenerator(validation_alias=variable),
        validate_by_name=True,
        case_sensitive=True,
        env_ignore_empty=True,
        extra="forbid",
        frozen=True,
    )

    tracking_uri: str | None = Field(
        None, min_length=1, description="the MLflow tracking URI the champion is loaded from"
    )
    access_file: Path | None = Field(None, description="the TOML file of token hashes and roles")
    audit_log: Path | None = Field(None, description="the append-only audit log (JSON lines)")
    sessions: Path | None = Field(
        None, description="the pages' session database (default: beside the audit log)"
    )
    weekly_dir: Path | None = Field(None, description="the weekly run's output folder")
    data_dir: Path | None = Field(
        None, description="the validated contract tables, for the pages' timelines"
    )
    evaluations_dir: Path | None = Field(
        None, description="the folder of finished evaluations (one folder each)"
    )
    reload_seconds: float = Field(
        30.0, ge=0, allow_inf_nan=False, description="how often to look for a new champion"
    )
    workers: int = Field(2, ge=1, le=64, description="worker processes (one per core)")
    database_url: str | None = Field(
        None,
        pattern=r"^postgres(ql)?://",
        description="the PostgreSQL database shared by every server (postgresql://...): "
        "sessions, the sign-in throttle and the audit log; unset, they are files on this machine",
    )
    trusted_proxies: int = Field(
        0,
        ge=0,
        le=8,
        description="reverse proxies in front that append the client's address to "
        "X-Forwarded-For (0: the header is ignored, the connection's address is the client's)",
    )

    audit_key_file: Path | None = Field(
        None,
        description="the file holding the audit chain's key (default: audit.key beside the "
        "audit log, made when missing)",
    )
    audit_rotate: str = Field(
        ROTATION_DEFAULT,
        description="when the audit log starts a new file: a size such as 64MiB, daily or monthly",
    )

    @field_validator("audit_rotate")
    @classmethod
    def _rotation(cls, value: str) -> str:
        Rotation.parse(value)
        return value

    @classmethod
    def load(cls, **values: Any) -> ServiceSettings:
        """The settings from the environment, ``values`` given here taking precedence."""
        try:
            return cls(**values)
        except ValidationError as exc:
            raise SettingsError("; ".join(_problem(e) for e in exc.errors())) from None

    @classmethod
    def current(cls) -> ServiceSettings:
        """The settings for the environment as it is now, validated once per distinct set of
        values (cheap enough to call on every request, unlike building the object)."""
        return _for_values(tuple(map(os.environ.get, VARIABLES)))

    def or_else(self, **defaults: Any) -> ServiceSettings:
        """These settings with ``defaults`` for the ones not set, validated."""
        unset = {name: value for name, value in defaults.items() if getattr(self, name) is None}
        return self.load(**self.model_dump(exclude_none=True), **unset)

    def require(self, name: str) -> Any:
        """The value of setting ``name``; a ``SettingsError`` saying what to set if unset."""
        value = getattr(self, name)
        if value is None:
            meaning = type(self).model_fields[name].description
            raise SettingsError(f"set {variable(name)} to {meaning}")
        return value

    def sessions_file(self) -> Path:
        """Where the pages' sessions live: ``RISKSTRAT_SESSIONS``, or beside the audit log."""
        return self.sessions or self.require("audit_log").with_name("sessions.sqlite")

    def audit_key_path(self) -> Path:
        """Where the audit chain's key is: ``RISKSTRAT_AUDIT_KEY_FILE``, or beside the log."""
        return self.audit_key_file or self.require("audit_log").with_name("audit.key")

    def environment(self, base: Mapping[str, str]) -> dict[str, str]:
        """``base`` with these settings as the variables a child server reads: the
        ``RISKSTRAT_*`` ones that are set, the worker count in BentoML's configuration, and
        the web server's own handling of forwarded headers turned off."""
        ours = {variable(name): str(v) for name in FIELDS if (v := getattr(self, name)) is not None}
        overrides = self.bentoml_overrides(base.get(BENTOML_OVERRIDES))
        return {**base, **ours, BENTOML_OVERRIDES: overrides, **SERVER_PROXY_HEADERS}

    def bentoml_overrides(self, existing: str | None = None) -> str:
        """``BENTOML_CONFIG_OVERRIDES`` (JSON): ``existing`` with this worker count set for
        the service (``services.riskstrat.workers``), which BentoML reads when it starts."""
        try:
            config = json.loads(existing) if existing else {}
        except ValueError as exc:
            raise SettingsError(f"{BENTOML_OVERRIDES}: not JSON ({exc})") from None
        services = config.get("services", {}) if isinstance(config, dict) else None
        ours = services.get(SERVICE_NAME, {}) if isinstance(services, dict) else None
        if not isinstance(ours, dict):
            raise SettingsError(f"{BENTOML_OVERRIDES}: services.{SERVICE_NAME} must be an object")
        services = {**services, SERVICE_NAME: {**ours, "workers": self.workers}}
        return json.dumps({**config, "services": services})


FIELDS = tuple(ServiceSettings.model_fields)
VARIABLES = tuple(variable(name) for name in FIELDS)


def _problem(error: Any) -> str:
    name = str(error["loc"][0]) if error["loc"] else "settings"
    where = variable(name) if name in FIELDS else name
    if error["type"] == "extra_forbidden":
        return f"unknown setting {name!r}"
    return f"{where}: {error['msg']} (got {error['input']!r})"


@lru_cache(maxsize=16)
def _for_values(values: tuple[str | None, ...]) -> ServiceSettings:
    """The settings of these ``VARIABLES`` values."""
    return ServiceSettings.load(**{name: v for name, v in zip(FIELDS, values, strict=True) if v})
