"""Ingest extracts: read, map, pseudonymise and link, write the contract, validate, report.

One extract (``--source NAME --path P``) or several linked in one run (``--source
hes=DIR --source gp=DIR``, or a manifest): each is mapped by its adapter (``SOURCES``), and
``linkage`` gives every person one pseudonym and one patients row and sets aside the people
outside the registered population.

``OUT`` then holds the validated contract tables (ready for ``riskstrat features`` and
``riskstrat weekly``), ``quarantine/`` and ``validation_report.json`` from validation,
``unmapped/<source table>.parquet`` (``unmapped/<source>/<table>.parquet`` when several
are linked: source rows not mapped, with their reason, under
pseudonyms) and ``quality_report.json`` / ``.md``. All of it is written to a staging folder
beside ``OUT`` that replaces ``OUT`` in one step when complete, so a failed or killed run
leaves the last good ``OUT`` as it was (and no ``.mapped-*`` folder inside it).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from riskstrat.common.atomic import check_replaceable, replacing
from riskstrat.common.progress import QUIET, Progress
from riskstrat.contract.pseudonym import Pseudonymiser, load_key
from riskstrat.contract.schema import EVENTS, PATIENTS, PRACTICES, Table
from riskstrat.contract.validation import REPORT_FILE, validate_into
from riskstrat.sources.ingest import linkage, quality
from riskstrat.sources.ingest.asc_cld import map_asc_cld
from riskstrat.sources.ingest.contract_source import map_contract
from riskstrat.sources.ingest.gp import map_gp
from riskstrat.sources.ingest.hes import map_hes
from riskstrat.sources.ingest.linkage import PERSON_ID_COLUMNS, Source
from riskstrat.sources.ingest.mapping import Mapped
from riskstrat.sources.ingest.omop import map_omop
from riskstrat.sources.ingest.synthea import map_synthea
from riskstrat.sources.ingest.tables import Extract, IngestError

SOURCES: dict[str, Callable[[Extract, pd.DataFrame | None], Mapped]] = {
    "omop": map_omop,
    "synthea": map_synthea,
    "contract": map_contract,
    "asc-cld": map_asc_cld,
    "hes": map_hes,
    "gp": map_gp,
}
UNMAPPED_DIR = "unmapped"
INGEST = "ingest"
STEPS = 8


@dataclass(frozen=True, slots=True)
class IngestResult:
    out: Path
    report: dict[str, object]
    verdict: quality.Verdict


def read_practices_file(path: Path) -> pd.DataFrame:
    """``practice_id, gp_cluster, locality[, practice_name]`` (any letter case)."""
    if not path.is_file():
        raise IngestError(f"{path}: practices file not found")
    frame = pd.read_csv(path, dtype="str")
    frame.columns = [c.strip().lower() for c in frame.columns]
    for column in ("practice_id", "gp_cluster", "locality"):
        if column not in frame:
            raise IngestError(
                f"{path}: missing column '{column}' (practice -> cluster -> locality)"
            )
    return frame


def _data_folder(location: str) -> Path:
    text = location.removeprefix("duckdb://").split("?")[0]
    path = Path(text)
    return path if path.is_dir() else path.parent


def _arrow(frame: pd.DataFrame, table: Table) -> pa.Table:
    """The frame in the contract's column types, every column nullable (validation checks)."""
    arrays = []
    for column in table.columns:
        values = frame[column.name]
        if pa.types.is_date(column.type):
            array = pa.array(values.to_numpy(dtype="datetime64[s]")).cast(pa.date32())
        elif pa.types.is_string(column.type):
            array = pa.array(values.astype(object).where(values.notna(), None), pa.string())
        else:
            array = pa.array(
                values.astype("Float64").to_numpy(dtype="float64", na_value=float("nan")),
                from_pandas=True,
            ).cast(column.type)
        arrays.append(array)
    schema = pa.schema([pa.field(c.name, c.type, nullable=True) for c in table.columns])
    return pa.Table.from_arrays(arrays, schema=schema)


def ingest(
    source: str,
    location: str | Path,
    out: Path,
    *,
    key_file: Path | None = None,
    practices: Path | None = None,
    extract_date: date | None = None,
    thresholds: quality.Thresholds | None = None,
    progress: Progress | None = None,
) -> IngestResult:
    """Ingest the one extract at ``location``, laid out as ``source`` (see ``ingest_sources``)."""
    return ingest_sources(
        [Source.of(source, source, str(location))],
        out,
        key_file=key_file,
        practices=practices,
        extract_date=extract_date,
        thresholds=thresholds,
        progress=progress,
    )


def _open(source: Source) -> Extract:
    extract = Extract.open(source.path)
    if source.id_column is None:
        return extract
    return extract.with_person_column(source.id_column, PERSON_ID_COLUMNS)


def _check(sources: Sequence[Source]) -> None:
    if not sources:
        raise IngestError("no source given; name one with --source or --manifest")
    for source in sources:
        if source.kind not in SOURCES:
            raise IngestError(
                f"source {source.name!r}: unknown kind {source.kind!r}; choose one of "
                f"{', '.join(SOURCES)}"
            )
    names = [s.name for s in sources]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise IngestError(f"source {twice[0]!r} is given twice; name each source once")


def unmapped_file(sources: Sequence[Source], name: str, table: str) -> Path:
    """Where a source table's rows not mapped go: ``unmapped/<table>.parquet`` for one
    source, ``unmapped/<source>/<table>.parquet`` when several are linked."""
    folder = Path(UNMAPPED_DIR) if len(sources) == 1 else Path(UNMAPPED_DIR) / name
    return folder / f"{table}.parquet"


def _write_unmapped(
    linked: linkage.Linked, key: Pseudonymiser, staging: Path, sources: Sequence[Source]
) -> None:
    (staging / UNMAPPED_DIR).mkdir()
    for item in linked.links:
        ignored = linkage.ignored(item, key)
        for table, rows in ignored.groupby("source_table", sort=True):
            path = staging / unmapped_file(sources, item.source.name, str(table))
            path.parent.mkdir(exist_ok=True)
            rows.drop(columns="source_table").to_parquet(path, index=False)


def ingest_sources(
    sources: Sequence[Source],
    out: Path,
    *,
    key_file: Path | None = None,
    practices: Path | None = None,
    extract_date: date | None = None,
    thresholds: quality.Thresholds | None = None,
    progress: Progress | None = None,
) -> IngestResult:
    """Ingest and link the extracts of ``sources`` into ``out`` (see the module docstring)."""
    say = progress or QUIET
    _check(sources)
    folders = tuple(_data_folder(s.path) for s in sources)
    key = load_key(key_file, protected=(*folders, out))
    check_replaceable(out, REPORT_FILE, inputs=folders)
    practices_file = read_practices_file(practices) if practices else None
    steps = STEPS + len(sources) - 1
    mapped: list[tuple[Source, Mapped]] = []
    for done, source in enumerate(sources):
        say.advance(INGEST, done, steps, f"reading and mapping {source.name}")
        mapped.append((source, SOURCES[source.kind](_open(source), practices_file)))
    step = len(sources)
    say.advance(INGEST, step, steps, "pseudonymising and linking")
    linked = linkage.link(mapped, key)
    on = extract_date or date.today()
    origin = (
        sources[0].path if len(sources) == 1 else "; ".join(f"{s.name}={s.path}" for s in sources)
    )
    with replacing(out) as staging:
        with tempfile.TemporaryDirectory(dir=staging, prefix=".mapped-") as mapped_dir:
            tables = (
                (PRACTICES, linked.practices),
                (PATIENTS, linked.patients),
                (EVENTS, linked.events),
            )
            for done, (table, frame) in enumerate(tables, start=step + 1):
                say.advance(INGEST, done, steps, f"writing {table.name}")
                pq.write_table(_arrow(frame, table), Path(mapped_dir) / table.file_name)
            say.advance(INGEST, step + 4, steps, "validating")
            validation = validate_into(Path(mapped_dir), staging, on, out, origin=origin)
        say.advance(INGEST, step + 5, steps, "writing unmapped rows")
        _write_unmapped(linked, key, staging, sources)
        about = {"path": origin, "extract_date": on.isoformat(), "key_fingerprint": key.fingerprint}
        say.advance(INGEST, step + 6, steps, "quality report")
        report, verdict = quality.build(
            linked, validation, staging, about, thresholds or quality.Thresholds()
        )
        quality.write(report, staging)
    say.advance(INGEST, steps, steps, "done")
    return IngestResult(out, report, verdict)
