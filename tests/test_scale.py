"""The scale benchmark's populations: copies under new identifiers, read as partitioned
tables, and the figures of one engine on them (no timing is asserted)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import duckdb
import pytest

from riskstrat.bench.scale import Limits, measure, population, write_copies
from riskstrat.common.errors import UserError

AS_OF = date(2025, 1, 1)


@pytest.fixture(scope="module")
def work(validated: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("scale")
    write_copies(validated, work, 3, Limits("1GB", work / "spill"))
    return work


def _count(sql: str) -> int:
    return duckdb.sql(sql).fetchall()[0][0]


def test_copies_are_new_people_with_their_own_places(validated: Path, work: Path) -> None:
    folder = population(work, 2)
    people = f"read_parquet('{folder}/patients/*.parquet')"
    one = _count(f"SELECT count(*) FROM read_parquet('{validated}/patients.parquet')")
    assert _count(f"SELECT count(DISTINCT patient_id) FROM {people}") == 2 * one
    practices = f"read_parquet('{folder}/practices/*.parquet')"
    assert _count(f"SELECT count(DISTINCT locality) FROM {practices}") == 2 * _count(
        f"SELECT count(DISTINCT locality) FROM read_parquet('{validated}/practices.parquet')"
    )
    orphans = (
        f"SELECT count(*) FROM read_parquet('{folder}/events/*.parquet') e "
        f"ANTI JOIN {people} p USING (patient_id)"
    )
    assert _count(orphans) == 0


def _half(validated: Path, folder: Path) -> Path:
    """Another borough: the first half of ``validated``'s people, their events, every practice."""
    folder.mkdir()
    people = f"(SELECT patient_id FROM read_parquet('{validated}/patients.parquet') "
    people += "ORDER BY patient_id LIMIT (SELECT count(*) // 2 FROM "
    people += f"read_parquet('{validated}/patients.parquet')))"
    for table in ("practices", "patients", "events"):
        where = "" if table == "practices" else f" WHERE patient_id IN {people}"
        duckdb.sql(
            f"COPY (SELECT * FROM read_parquet('{validated}/{table}.parquet'){where}) "
            f"TO '{folder / table}.parquet' (FORMAT parquet)"
        )
    return folder


def test_copies_take_turns_over_several_boroughs(validated: Path, tmp_path: Path) -> None:
    other = _half(validated, tmp_path / "other")
    work = tmp_path / "work"
    parts = write_copies([validated, other], work, 3, Limits("1GB", work / "spill"))
    counted = [
        _count(f"SELECT count(*) FROM read_parquet('{parts}/patients/part-000{k}.parquet')")
        for k in range(3)
    ]
    whole = _count(f"SELECT count(*) FROM read_parquet('{validated}/patients.parquet')")
    assert counted == [whole, whole // 2, whole]
    with pytest.raises(UserError, match="its copies are of other boroughs"):
        write_copies([other], work, 1, Limits("1GB", work / "spill"))


def test_a_population_needs_its_copies_written(work: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"part-0003\.parquet: write the copies first"):
        population(work, 4)


def test_a_memory_limit_must_name_its_unit(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="memory limit '8G' must look like 8GB"):
        Limits("8G", tmp_path)


def test_duckdb_builds_everyone_in_the_population(work: Path, tmp_path: Path) -> None:
    folder = population(work, 2)
    people = _count(
        f"SELECT count(*) FROM read_parquet('{folder}/patients/*.parquet') "
        f"WHERE registration_start <= DATE '{AS_OF}' "
        f"AND (registration_end IS NULL OR registration_end >= DATE '{AS_OF}') "
        f"AND (death_date IS NULL OR death_date >= DATE '{AS_OF}') "
        f"AND birth_month <= DATE '{AS_OF}'"
    )
    figures = measure(
        "duckdb", folder, AS_OF, Limits("1GB", tmp_path / "spill"), tmp_path / "f.parquet"
    )
    assert figures.people == people
    assert figures.events == _count(
        f"SELECT count(*) FROM read_parquet('{folder}/events/*.parquet')"
    )
    assert figures.seconds > 0
