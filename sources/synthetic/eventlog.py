"""A columnar buffer of generated events, turned into the contract's events table at the end.

In memory by default. With a ``spill`` folder (``EventLog.spilling``), ``settle`` moves the
events made so far to one binary file per block of people, so memory holds a month of events
at most; ``write_parquet`` then sorts one block at a time. Sorting is stable and by person
first, so the blocks in order give exactly the rows and order of the in-memory table. The
kinds the simulation reads back (``RECALLED``) stay in memory as well.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from riskstrat.contract.schema import EVENTS, EventKind
from riskstrat.features.avoidable import ICD10

_KINDS = list(EventKind)
_KIND_INDEX = {k: i for i, k in enumerate(_KINDS)}
NO_DAY = np.iinfo(np.int32).min
RISKSTRAT = "riskstrat"
_SYSTEMS = (RISKSTRAT, ICD10)
# What the simulation asks of its own past (``persons``, ``episodes``): kept in memory.
RECALLED = frozenset(
    {EventKind.LTC_DIAGNOSIS, EventKind.EMERGENCY_ADMISSION, EventKind.SOCIAL_CARE_PACKAGE}
)
BLOCK_PEOPLE = 65_536  # people per spill file: a block's events sort in a few hundred MB
ROW_GROUP = 1_000_000
_ROW = np.dtype(
    [
        ("person", "<i4"),
        ("kind", "i1"),
        ("day", "<i4"),
        ("end", "<i4"),
        ("code", "<i2"),
        ("value", "<f8"),
        ("cost", "<f8"),
        ("system", "i1"),
    ]
)
_Chunk = tuple[np.ndarray, ...]  # the columns of _ROW, in its order


@dataclass
class EventLog:
    """Events as integer-coded column chunks; codes share one vocabulary."""

    spill: Path | None = None
    block_people: int = BLOCK_PEOPLE
    codes: list[str] = field(default_factory=list)
    _code_index: dict[str, int] = field(default_factory=dict)
    _chunks: list[_Chunk] = field(default_factory=list)
    _recalled: list[_Chunk] = field(default_factory=list)
    _settled: int = 0
    _blocks: set[int] = field(default_factory=set)

    @classmethod
    def spilling(cls, folder: Path, block_people: int = BLOCK_PEOPLE) -> EventLog:
        """A log that ``settle`` empties into ``folder`` (made empty, the caller's to delete)."""
        folder.mkdir(parents=True, exist_ok=True)
        return cls(spill=folder, block_people=block_people)

    def code(self, name: str) -> int:
        if name not in self._code_index:
            self._code_index[name] = len(self.codes)
            self.codes.append(name)
        return self._code_index[name]

    def add(
        self,
        kind: EventKind,
        person: np.ndarray,
        day: np.ndarray,
        *,
        end: np.ndarray | None = None,
        code: np.ndarray | int | str | None = None,
        value: np.ndarray | float | None = None,
        cost: np.ndarray | float | None = None,
        code_system: str = RISKSTRAT,
    ) -> None:
        """Append events of one kind; ``day`` and ``end`` count days since 1970-01-01;
        ``code_system`` is the vocabulary of ``code`` (riskstrat or ICD10)."""
        n = len(person)
        if n == 0:
            return
        if isinstance(code, str):
            code = self.code(code)

        def column(values: object, dtype: type, missing: object) -> np.ndarray:
            if values is None:
                return np.full(n, missing, dtype)
            return np.broadcast_to(np.asarray(values, dtype), (n,)).copy()

        chunk = (
            np.asarray(person, np.int32),
            np.full(n, _KIND_INDEX[kind], np.int8),
            np.asarray(day, np.int32),
            column(end, np.int32, NO_DAY),
            column(code, np.int16, -1),
            column(value, np.float64, np.nan),
            column(cost, np.float64, np.nan),
            np.full(n, _SYSTEMS.index(code_system), np.int8),
        )
        self._chunks.append(chunk)
        if self.spill is not None and kind in RECALLED:
            self._recalled.append(chunk)

    def _kind_chunks(self, kind: EventKind) -> list[_Chunk]:
        if kind not in RECALLED:
            raise ValueError(f"{kind} is not kept for recall (eventlog.RECALLED)")
        held = self._chunks if self.spill is None else self._recalled
        return [chunk for chunk in held if chunk[1][0] == _KIND_INDEX[kind]]

    def persons(
        self, kind: EventKind, first_day: int, last_day: int, code: str | None = None
    ) -> np.ndarray:
        """The person of each event of ``kind`` (one of ``RECALLED``, and ``code``) starting
        in ``[first_day, last_day)``, one entry per event."""
        c = self._code_index.get(code, -2) if code else None
        found = [
            chunk[0][(chunk[2] >= first_day) & (chunk[2] < last_day) & (c is None or chunk[4] == c)]
            for chunk in self._kind_chunks(kind)
        ]
        return np.concatenate(found) if found else np.zeros(0, np.int32)

    def episodes(self, kind: EventKind, code: str) -> tuple[np.ndarray, ...]:
        """Person, start, end (``NO_DAY`` while open) and cost of every event of ``kind``
        (one of ``RECALLED``) and ``code``."""
        c = self._code_index.get(code, -2)
        chosen = self._kind_chunks(kind)
        if not chosen:
            return tuple(np.zeros(0) for _ in range(4))
        person, day, end, code_, cost = (
            np.concatenate([chunk[i] for chunk in chosen]) for i in (0, 2, 3, 4, 6)
        )
        keep = code_ == c
        return person[keep], day[keep], end[keep], cost[keep]

    def __len__(self) -> int:
        return self._settled + sum(len(chunk[0]) for chunk in self._chunks)

    def settle(self) -> None:
        """With a spill folder: append the events made so far to their blocks' files, in the
        order they were made. Without one: nothing (the events stay in memory)."""
        if self.spill is None or not self._chunks:
            return
        rows = _rows(self._chunks)
        self._settled += len(rows)
        self._chunks = []
        block = rows["person"] // self.block_people
        order = np.argsort(block, kind="stable")
        bounds = np.searchsorted(block[order], np.arange(block.max() + 2))
        for b in np.flatnonzero(np.diff(bounds)):
            with self._block_file(int(b)).open("ab") as f:
                f.write(rows[order[bounds[b] : bounds[b + 1]]].tobytes())
            self._blocks.add(int(b))

    def _block_file(self, block: int) -> Path:
        assert self.spill is not None
        return self.spill / f"block-{block:05d}.bin"

    def _blocks_in_order(self) -> Iterator[np.ndarray]:
        """Every event as ``_ROW`` records, a block of people at a time (all in memory: one)."""
        if self.spill is None:
            if self._chunks:
                yield _rows(self._chunks)
            return
        self.settle()
        for block in sorted(self._blocks):
            yield np.fromfile(self._block_file(block), _ROW)

    def to_arrow(
        self, patient_ids: np.ndarray, keep: np.ndarray, last_day: int, first_day: int
    ) -> tuple[pa.Table, KindCounts]:
        """The events of people with ``keep`` set, sorted by patient then start (see
        ``_chosen``), as one table in memory; their counts as ``write_parquet`` gives them."""
        ids = pa.array(patient_ids, pa.string())
        counts = KindCounts(0, np.zeros(len(_KINDS), np.int64))
        tables = [_table_of(_empty(), ids, self.codes)]
        for block in self._blocks_in_order():
            rows = _chosen(block, keep, last_day)
            counts = counts.plus(rows, first_day)
            tables.append(_table_of(rows, ids, self.codes))
        return pa.concat_tables(tables), counts

    def write_parquet(
        self, path: Path, patient_ids: np.ndarray, keep: np.ndarray, last_day: int, first_day: int
    ) -> KindCounts:
        """Write what ``to_arrow`` returns to ``path`` a block at a time, in row groups of
        ``ROW_GROUP`` rows; count the events, and those per kind starting from ``first_day``."""
        ids = pa.array(patient_ids, pa.string())
        counts = KindCounts(0, np.zeros(len(_KINDS), np.int64))
        pending: list[pa.Table] = []
        with pq.ParquetWriter(path, EVENTS.schema) as writer:
            for block in self._blocks_in_order():
                rows = _chosen(block, keep, last_day)
                counts = counts.plus(rows, first_day)
                pending = _write_whole_groups(
                    writer, [*pending, _table_of(rows, ids, self.codes)], final=False
                )
            _write_whole_groups(writer, pending, final=True)
        return counts


@dataclass(frozen=True, slots=True)
class KindCounts:
    """Events written, and per kind (in ``EventKind`` order) those from a first day on."""

    events: int
    from_first_day: np.ndarray

    def plus(self, rows: np.ndarray, first_day: int) -> KindCounts:
        kinds = rows["kind"][rows["day"] >= first_day]
        return KindCounts(
            self.events + len(rows),
            self.from_first_day + np.bincount(kinds, minlength=len(_KINDS)),
        )

    def by_kind(self) -> dict[str, int]:
        """Kinds with at least one event, by name, in name order."""
        found = {k.value: int(n) for k, n in zip(_KINDS, self.from_first_day, strict=True) if n}
        return dict(sorted(found.items()))


def _chosen(rows: np.ndarray, keep: np.ndarray, last_day: int) -> np.ndarray:
    """The events in ``rows`` of people with ``keep`` set, sorted by person then start.

    ``keep`` is indexed by the person numbers events were added with. Nothing starting after
    ``last_day`` (the extract date) has happened yet, so it is not in the table; an episode
    still running then has no end yet, as in a real extract; a prescription's end is the
    period it covers and stays.
    """
    rows = rows[keep[rows["person"]] & (rows["day"] <= last_day)]
    rows = rows[np.lexsort((rows["kind"], rows["day"], rows["person"]))]
    running = (rows["end"] > last_day) & (rows["kind"] != _KIND_INDEX[EventKind.PRESCRIPTION])
    rows["end"] = np.where(running, NO_DAY, rows["end"])
    return rows


def _rows(chunks: list[_Chunk]) -> np.ndarray:
    rows = np.empty(sum(len(c[0]) for c in chunks), _ROW)
    for i, name in enumerate(_ROW.names):
        rows[name] = np.concatenate([c[i] for c in chunks])
    return rows


def _empty() -> np.ndarray:
    return np.empty(0, _ROW)


def _table_of(rows: np.ndarray, patient_ids: pa.Array, codes: list[str]) -> pa.Table:
    """The contract's events table of ``rows`` (already chosen and sorted)."""

    def col(name: str) -> np.ndarray:
        return np.ascontiguousarray(rows[name])

    person, kind, day, end, code, value, cost, system = (col(n) for n in _ROW.names)
    ids = pa.DictionaryArray.from_arrays(pa.array(person), patient_ids)
    kinds = pa.DictionaryArray.from_arrays(
        pa.array(kind.astype(np.int32)), pa.array([k.value for k in _KINDS])
    )
    names = pa.DictionaryArray.from_arrays(
        pa.array(code.astype(np.int32), mask=code < 0), pa.array(codes, pa.string())
    )
    columns = {
        "patient_id": ids.cast(pa.string()),
        "kind": kinds.cast(pa.string()),
        "start": pa.array(day, pa.int32()).cast(pa.date32()),
        "end": pa.array(end, pa.int32(), mask=end == NO_DAY).cast(pa.date32()),
        "code_system": pa.DictionaryArray.from_arrays(
            pa.array(system.astype(np.int32), mask=code < 0), pa.array(_SYSTEMS)
        ).cast(pa.string()),
        "code": names.cast(pa.string()),
        "value": pa.array(value, pa.float64(), mask=np.isnan(value)),
        "cost": pa.array(cost, pa.float64(), mask=np.isnan(cost)),
    }
    return pa.table(columns, schema=EVENTS.schema)


def _write_whole_groups(
    writer: pq.ParquetWriter, pending: list[pa.Table], *, final: bool
) -> list[pa.Table]:
    """Write the whole ``ROW_GROUP``-row groups of ``pending`` (and the rest when ``final``),
    so that the file's row groups do not depend on the blocks; return what is left."""
    table = pa.concat_tables(pending) if pending else None
    if table is None or table.num_rows == 0:
        return []
    whole = table.num_rows if final else table.num_rows // ROW_GROUP * ROW_GROUP
    if whole:
        writer.write_table(table.slice(0, whole), row_group_size=ROW_GROUP)
    return [table.slice(whole)] if whole < table.num_rows else []
