"""Pseudonymisation at the door: source identifiers become keyed hashes during ingest.

HMAC-SHA256 of the source identifier (whitespace removed, so ``943 476 5919`` and
``9434765919`` agree) under a secret key, truncated to 128 bits and written as ``p`` plus 32
hex digits. The same key gives the same pseudonym every week, so lists line up; without the
key nobody can recompute or reverse them (only the key holder can re-identify, by hashing a
known identifier). The key comes from ``RISKSTRAT_PSEUDONYM_KEY`` (the secret itself) or a
key file (``--key-file`` or ``RISKSTRAT_PSEUDONYM_KEY_FILE``) kept outside the data and
output folders; ingest refuses to run without one. The key is never written anywhere; the
report names only its fingerprint (an HMAC of a fixed text) so a run can show it used the
same key as last week.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from riskstrat.common.atomic import containing
from riskstrat.common.errors import UserError

KEY_ENV = "RISKSTRAT_PSEUDONYM_KEY"
KEY_FILE_ENV = "RISKSTRAT_PSEUDONYM_KEY_FILE"
MIN_KEY_BYTES = 16


class PseudonymKeyError(UserError):
    """No usable key, or a key kept where it must not be."""


@dataclass(frozen=True, slots=True)
class Pseudonymiser:
    """Maps source identifiers to pseudonyms under one key (the key is never shown)."""

    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.key) < MIN_KEY_BYTES:
            raise PseudonymKeyError(
                f"the pseudonymisation key has {len(self.key)} bytes; use at least "
                f"{MIN_KEY_BYTES} (for example: python -c 'import secrets; "
                "print(secrets.token_hex(32))')"
            )

    def one(self, identifier: str) -> str:
        text = "".join(str(identifier).split())
        return "p" + hmac.new(self.key, text.encode(), hashlib.sha256).hexdigest()[:32]

    def series(self, identifiers: pd.Series) -> pd.Series:
        """Pseudonyms for a column of identifiers (missing stays missing)."""
        unique = identifiers.dropna().unique()
        lookup = {value: self.one(value) for value in unique}
        return identifiers.map(lookup).astype("str")

    @property
    def fingerprint(self) -> str:
        """Names the key without revealing it: equal fingerprints, equal pseudonyms."""
        return hmac.new(self.key, b"riskstrat key fingerprint", hashlib.sha256).hexdigest()[:12]


class KeySettings(BaseSettings):
    """Where the key comes from, read from the environment when built (never on import)."""

    model_config = SettingsConfigDict(frozen=True, extra="ignore", env_ignore_empty=True)
    key: SecretStr | None = Field(None, validation_alias=KEY_ENV)
    key_file: Path | None = Field(None, validation_alias=KEY_FILE_ENV)


def load_key(key_file: Path | None, protected: Iterable[Path]) -> Pseudonymiser:
    """The key from ``key_file``, else ``RISKSTRAT_PSEUDONYM_KEY_FILE``, else the variable.

    A key file inside any ``protected`` folder (the data being ingested, the output) is
    refused: a key stored next to the data would let anyone holding the data re-identify it.
    """
    settings = KeySettings()
    path = key_file or settings.key_file
    if path is not None:
        resolved = path.resolve()
        folder = containing(path, protected)
        if folder is not None:
            raise PseudonymKeyError(
                f"{path}: the pseudonymisation key file is inside {folder}; keep it "
                "outside the data and output folders"
            )
        if not resolved.is_file():
            raise PseudonymKeyError(f"{path}: pseudonymisation key file not found")
        return Pseudonymiser(resolved.read_bytes().strip())
    if settings.key is not None:
        return Pseudonymiser(settings.key.get_secret_value().encode())
    raise PseudonymKeyError(
        f"no pseudonymisation key: set {KEY_ENV} to a secret (at least {MIN_KEY_BYTES} "
        f"characters) or give a key file with --key-file or {KEY_FILE_ENV}, outside the data "
        "and output folders; use the same key every week so pseudonyms line up"
    )
