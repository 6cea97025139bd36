"""Pseudonymisation at the door: deterministic keyed hashes, key handling, nothing leaks."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from ingest_support import SYNTHEA, TEST_KEY, copy_extract, key_file, read, run

from riskstrat.contract.pseudonym import (
    KEY_ENV,
    KEY_FILE_ENV,
    KeySettings,
    Pseudonymiser,
    PseudonymKeyError,
    load_key,
)


def test_same_key_same_pseudonym_other_key_other_pseudonym() -> None:
    ids = pd.Series(["943 476 5919", "9434765919", "982192b6-6843-4011-ef46-32caaf87d8a9", None])
    first = _key(TEST_KEY).series(ids)
    again = _key(TEST_KEY).series(ids)
    other = _key(TEST_KEY + "-other").series(ids)
    assert first.tolist()[:3] == again.tolist()[:3]
    assert first[0] == first[1]  # spaces in an NHS number do not matter
    assert first[0] != first[2]
    assert first.str.fullmatch(r"p[0-9a-f]{32}").iloc[:3].all()
    assert pd.isna(first[3])
    assert not set(first.dropna()) & set(other.dropna())
    assert _key(TEST_KEY).fingerprint != _key(TEST_KEY + "-other").fingerprint


def _key(secret: str) -> Pseudonymiser:
    return Pseudonymiser(secret.encode())


def test_key_from_environment_or_file_and_refusals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(KEY_ENV, raising=False)
    monkeypatch.delenv(KEY_FILE_ENV, raising=False)
    with pytest.raises(PseudonymKeyError, match="no pseudonymisation key"):
        load_key(None, ())
    monkeypatch.setenv(KEY_ENV, "short")
    with pytest.raises(PseudonymKeyError, match="at least 16"):
        load_key(None, ())
    monkeypatch.setenv(KEY_ENV, TEST_KEY)
    assert load_key(None, ()).one("x") == _key(TEST_KEY).one("x")
    data, out = tmp_path / "data", tmp_path / "out"
    for folder in (data, out / "sub"):
        inside = key_file(folder)
        with pytest.raises(PseudonymKeyError, match="inside"):
            load_key(inside, (data, out))
    monkeypatch.setenv(KEY_FILE_ENV, str(key_file(data)))
    with pytest.raises(PseudonymKeyError, match="inside"):
        load_key(None, (data, out))
    outside = key_file(tmp_path / "keys", TEST_KEY)
    assert load_key(outside, (data, out)).one("x") == _key(TEST_KEY).one("x")


def test_no_source_identifier_reaches_the_output_and_weeks_line_up(tmp_path: Path) -> None:
    folder = copy_extract(SYNTHEA, tmp_path / "data")
    keys = key_file(tmp_path / "keys")
    week1 = run("synthea", folder, tmp_path / "week1", keys)
    week2 = run("synthea", folder, tmp_path / "week2", keys)
    other = run("synthea", folder, tmp_path / "other", key_file(tmp_path / "k2", TEST_KEY + "2"))

    ids = [pd.read_parquet(r.out / "patients.parquet")["patient_id"] for r in (week1, week2, other)]
    assert ids[0].tolist() == ids[1].tolist()
    assert not set(ids[0]) & set(ids[2])
    source = read(SYNTHEA, "patients.csv")
    needles = [*source["Id"].head(5), *source["SSN"].head(5), source["FIRST"].iloc[0]]
    written = [p for p in (tmp_path / "week1").rglob("*") if p.is_file()]
    assert {p.name for p in written} >= {"events.parquet", "quality_report.json"}
    for path in written:
        content = path.read_bytes()
        for needle in needles:
            assert needle.encode() not in content, f"{needle} found in {path}"
    assert TEST_KEY.encode() not in b"".join(p.read_bytes() for p in written)
    assert week1.report["key_fingerprint"] == week2.report["key_fingerprint"]


def test_the_key_file_variable_wins_over_the_key_and_empty_variables_count_as_unset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, TEST_KEY + "-from-variable")
    monkeypatch.setenv(KEY_FILE_ENV, str(key_file(tmp_path / "keys", TEST_KEY)))
    assert load_key(None, ()).one("x") == _key(TEST_KEY).one("x")
    given = key_file(tmp_path / "given", TEST_KEY + "-given")
    assert load_key(given, ()).one("x") == _key(TEST_KEY + "-given").one("x")
    monkeypatch.setenv(KEY_FILE_ENV, "")
    assert load_key(None, ()).one("x") == _key(TEST_KEY + "-from-variable").one("x")
    monkeypatch.setenv(KEY_ENV, "")
    with pytest.raises(PseudonymKeyError, match="no pseudonymisation key"):
        load_key(None, ())
    monkeypatch.setenv(KEY_ENV, TEST_KEY)
    assert TEST_KEY not in repr(KeySettings())
