"""The scale benchmark: the feature engine at borough, region and national size, per engine.

A national-size population is made from copies of boroughs under new identifiers
(``write_copies``): each copy is one Parquet file per table, written one at a time by a
memory-capped DuckDB, into ``<work>/parts/<table>/part-<k>.parquet``. A size of ``n``
copies is a folder ``<work>/copies-<n>/<table>/`` of links to the first ``n`` parts, which
either engine reads as a partitioned table. Copy ``k`` is of borough ``k`` modulo their
number: copies of one borough are the same people again, which is as good as new people to
the feature engine but not to training (a person's copies fall in different parts of its
patient split, so early stopping would see its own training people and not stop); several
boroughs (``riskstrat synth`` with other seeds) make independent people.

Each measurement (``measure``) runs in a fresh process (``python -m riskstrat.bench.scale``,
under ``scale_process.run_measured``, so that its memory is its own): it builds every
feature for everyone at one as-of date with the same Ibis expression on the engine and
writes them to Parquet where the engine runs (a national population's features are not
collected into one pandas frame). DuckDB runs with a memory limit and spills to a folder;
Spark runs ``local[2]`` with its spill folder (``spark.local.dir``). Peak memory is that of
the step's processes (Python, the JVM and Spark's Python workers) at once, sampled, and of
the largest one, exact (``scale_process``).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from riskstrat.bench.scale_process import run_measured
from riskstrat.common.errors import UserError
from riskstrat.contract.engines import (
    ENGINES,
    DuckDBEngine,
    EngineName,
    EngineSettings,
    SparkSettings,
    make_engine,
)
from riskstrat.contract.schema import TABLES
from riskstrat.contract.tables import AS_OF_TABLE, ContractTables, unbound
from riskstrat.features.engine import feature_expression

PARTS = "parts"
SOURCES = "sources.json"  # in the parts folder: the borough each part copies
CORES = 2  # DuckDB's threads and Spark's local[N]: the machine's cores, named in the figures
_ID_COLUMNS = {
    "practices": ("practice_id",),
    "patients": ("patient_id", "practice_id"),
    "events": ("patient_id",),
}


@dataclass(frozen=True, slots=True)
class Limits:
    """How much memory an engine may use and where it spills."""

    memory: str  # DuckDB's memory_limit and Spark's driver memory, e.g. "8GB"
    spill_dir: Path

    def __post_init__(self) -> None:
        if not self.memory[:-2].isdigit() or self.memory[-2:] not in ("MB", "GB"):
            raise ValueError(f"memory limit {self.memory!r} must look like 8GB or 512MB")

    @property
    def spark_memory(self) -> str:
        return self.memory[:-2] + self.memory[-2].lower()


def write_copies(boroughs: Path | Sequence[Path], work: Path, copies: int, limits: Limits) -> Path:
    """Parts 0..copies-1: copy ``k`` is borough ``k`` modulo their number (identifiers
    prefixed ``<k>-``, each copy's GP clusters and localities its own), each written once;
    returns the parts folder. Parts written earlier from other boroughs are refused."""
    boroughs = [boroughs] if isinstance(boroughs, Path) else list(boroughs)
    parts = work / PARTS
    _same_sources(parts, [boroughs[k % len(boroughs)] for k in range(copies)])
    con = duckdb.connect()
    con.execute(f"SET memory_limit = '{limits.memory}'")
    con.execute(f"SET temp_directory = '{limits.spill_dir}'")
    con.execute("SET preserve_insertion_order = false")
    for table in TABLES:
        folder = parts / table.name
        folder.mkdir(parents=True, exist_ok=True)
        for k in range(copies):
            source = boroughs[k % len(boroughs)] / table.file_name
            target = folder / f"part-{k:04d}.parquet"
            if target.exists():
                continue
            renamed = [f"'{k}-' || {c} AS {c}" for c in _ID_COLUMNS[table.name]]
            if table.name == "practices":
                renamed += [f"'Borough {k} ' || {c} AS {c}" for c in ("gp_cluster", "locality")]
            select = f"SELECT * REPLACE ({', '.join(renamed)}) FROM read_parquet('{source}')"
            partial = target.with_suffix(".partial")
            con.execute(f"COPY ({select}) TO '{partial}' (FORMAT parquet)")
            partial.rename(target)  # a part exists only once it is whole
    con.close()
    return parts


def _same_sources(parts: Path, sources: list[Path]) -> None:
    """Record which borough each part copies (``parts/sources.json``), refusing a folder
    whose parts copy other boroughs: a part is written once and kept."""
    record = parts / SOURCES
    wanted = [str(s.resolve()) for s in sources]
    kept = json.loads(record.read_text()) if record.exists() else []
    if any(old != new for old, new in zip(kept, wanted, strict=False)):
        raise UserError(
            f"{parts}: its copies are of other boroughs ({', '.join(sorted(set(kept)))}): "
            "measure into another folder"
        )
    parts.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps(wanted if len(wanted) > len(kept) else kept, indent=1) + "\n")


def population(work: Path, copies: int) -> Path:
    """The folder of a ``copies``-borough population: per table, links to its parts."""
    folder = work.resolve() / f"copies-{copies}"
    for table in TABLES:
        linked = folder / table.name
        linked.mkdir(parents=True, exist_ok=True)
        for k in range(copies):
            part = work / PARTS / table.name / f"part-{k:04d}.parquet"
            if not part.exists():
                raise FileNotFoundError(f"{part}: write the copies first")
            link = linked / part.name
            if not link.exists():
                link.symlink_to(part.resolve())
    return folder


@dataclass(frozen=True, slots=True)
class Built:
    """What one engine built, as its own process counts and times it."""

    engine: str
    people: int
    events: int
    startup_seconds: float  # connecting and attaching the tables
    seconds: float  # compiling, running and writing the feature query


@dataclass(frozen=True, slots=True)
class Figures:
    """One engine on one population: the rows of the scale table in docs/figures.md."""

    engine: str
    people: int
    events: int
    cores: int
    startup_seconds: float
    seconds: float
    events_per_second_per_core: int
    process_seconds: float  # the whole process, from its start to its end
    peak_tree_gib: float  # the step's processes at once (Python, the JVM, Spark's workers)
    peak_process_gib: float  # the largest single one, exact
    memory_limit: str


def _engine_settings(name: EngineName, limits: Limits) -> EngineSettings:
    spark = SparkSettings(
        master=f"local[{CORES}]",
        app_name="riskstrat-scale",
        driver_memory=limits.spark_memory,
        shuffle_partitions=64,
        local_dir=str(limits.spill_dir),
        conf={
            "spark.sql.adaptive.enabled": "true",
            "spark.sql.files.maxPartitionBytes": "64m",
            "spark.driver.maxResultSize": "1g",
        },
    )
    return EngineSettings(name=name, spark=spark)


def _limit_duckdb(backend: object, limits: Limits) -> None:
    con = backend.con  # type: ignore[attr-defined]
    con.execute(f"SET memory_limit = '{limits.memory}'")
    con.execute(f"SET temp_directory = '{limits.spill_dir}'")
    con.execute(f"SET threads = {CORES}")
    con.execute("SET preserve_insertion_order = false")


def _write(engine_name: str, backend: object, sql: str, out: Path) -> None:
    """Run the feature SQL and write the result to Parquet where the engine runs."""
    if engine_name == "duckdb":
        backend.con.execute(f"COPY ({sql}) TO '{out}' (FORMAT parquet)")  # type: ignore[attr-defined]
    else:
        backend._session.sql(sql).write.mode("overwrite").parquet(str(out))  # type: ignore[attr-defined]


def measure(engine_name: EngineName, folder: Path, as_of: date, limits: Limits, out: Path) -> Built:
    """Features for everyone in ``folder`` (a ``population``) at ``as_of`` on one engine;
    its memory is measured from outside (``measure_in_child``)."""
    limits.spill_dir.mkdir(parents=True, exist_ok=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    engine = make_engine(_engine_settings(engine_name, limits))
    backend = engine.connect()
    if isinstance(engine, DuckDBEngine):
        _limit_duckdb(backend, limits)
    for table in TABLES:
        engine.attach_parquet(backend, table.name, str(folder / table.name / "*.parquet"))
    sources = ContractTables(engine, backend)
    counted = {}
    for name in ("events", "patients"):
        table = unbound(name)
        counted[name] = int(sources.run(table.aggregate(n=table.count()))["n"].iloc[0])
    started = time.perf_counter()
    sql = engine.compile(backend, feature_expression())
    engine.attach_arrow(backend, AS_OF_TABLE, pa.table({"as_of": pa.array([as_of], pa.date32())}))
    _write(engine_name, backend, sql, out)
    seconds = time.perf_counter() - started
    engine.detach(backend, AS_OF_TABLE)
    engine.close(backend)
    return Built(
        engine=engine_name,
        people=_count_parquet(out),
        events=counted["events"],
        startup_seconds=round(started - began, 1),
        seconds=round(seconds, 1),
    )


def _count_parquet(out: Path) -> int:
    """Rows written (a file from DuckDB, a folder of parts from Spark)."""
    files = sorted(out.glob("*.parquet")) if out.is_dir() else [out]
    return sum(pq.ParquetFile(f).metadata.num_rows for f in files)


def features_command(
    engine_name: EngineName, folder: Path, as_of: date, limits: Limits, out: Path
) -> list[str]:
    """The command that runs ``measure`` in a fresh process, its ``Built`` to ``built(out)``."""
    return [
        sys.executable,
        "-m",
        "riskstrat.bench.scale",
        *(engine_name, str(folder), as_of.isoformat()),
        *(limits.memory, str(limits.spill_dir), str(out)),
    ]


def built(out: Path) -> Path:
    """Where the process that wrote ``out`` leaves its ``Built`` as JSON."""
    return out.parent / f"{out.name}.json"


def measure_in_child(
    engine_name: EngineName, folder: Path, as_of: date, limits: Limits, out: Path
) -> Figures:
    """``measure`` in a fresh process, measured by ``run_measured`` (the memory is the
    step's own); a failure names the engine and population and keeps its last words."""
    command = features_command(engine_name, folder, as_of, limits, out)
    done = run_measured(command, out.parent / f"{out.name}.log")
    if done.returncode != 0:
        raise RuntimeError(f"{engine_name} on {folder} failed:\n{done.stderr}")
    got = Built(**json.loads(built(out).read_text()))
    return Figures(
        **asdict(got),
        cores=CORES,
        events_per_second_per_core=round(got.events / got.seconds / CORES),
        process_seconds=round(done.seconds, 1),
        peak_tree_gib=round(done.peak_tree / 2**30, 2),
        peak_process_gib=round(done.peak_process / 2**30, 2),
        memory_limit=limits.memory,
    )


def run_scale(
    borough_dir: Path,
    work: Path,
    sizes: tuple[int, ...],
    engines: tuple[EngineName, ...],
    as_of: date,
    limits: Limits,
    say: Callable[[str], None] = print,
) -> list[Figures]:
    """Every engine at every size (in copies of the borough), smallest first; the figures
    are also appended to ``<work>/scale.json`` as each run ends."""
    unknown = [e for e in engines if e not in ENGINES]
    if unknown:
        raise ValueError(f"unknown engine(s): {', '.join(unknown)} (choose from {ENGINES})")
    write_copies(borough_dir, work, max(sizes), limits)
    figures: list[Figures] = []
    for copies in sorted(sizes):
        folder = population(work, copies)
        for engine_name in engines:
            say(f"{engine_name}: {copies} copies of the borough")
            out = work / "features" / f"{engine_name}-{copies}.parquet"
            result = measure_in_child(engine_name, folder, as_of, limits, out)
            figures.append(result)
            say(f"  {asdict(result)}")
            (work / "scale.json").write_text(
                json.dumps([asdict(f) for f in figures], indent=2) + "\n"
            )
    return figures


if __name__ == "__main__":
    engine_arg, folder_arg, day, memory, spill, out_arg = sys.argv[1:]
    result = measure(
        engine_arg,  # type: ignore[arg-type]
        Path(folder_arg),
        date.fromisoformat(day),
        Limits(memory, Path(spill)),
        Path(out_arg),
    )
    built(Path(out_arg)).write_text(json.dumps(asdict(result)) + "\n")
