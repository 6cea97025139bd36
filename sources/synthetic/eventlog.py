"""A columnar buffer of generated events, turned into the contract's events table at the end."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from riskstrat.contract.schema import EVENTS, EventKind
from riskstrat.features.avoidable import ICD10

_KINDS = list(EventKind)
_KIND_INDEX = {k: i for i, k in enumerate(_KINDS)}
NO_DAY = np.iinfo(np.int32).min
RISKSTRAT = "riskstrat"
_SYSTEMS = (RISKSTRAT, ICD10)


@dataclass
class EventLog:
    """Events as integer-coded column chunks; codes share one vocabulary."""

    codes: list[str] = field(default_factory=list)
    _code_index: dict[str, int] = field(default_factory=dict)
    _chunks: list[tuple[np.ndarray, ...]] = field(default_factory=list)

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

        self._chunks.append(
            (
                np.asarray(person, np.int32),
                np.full(n, _KIND_INDEX[kind], np.int8),
                np.asarray(day, np.int32),
                column(end, np.int32, NO_DAY),
                column(code, np.int16, -1),
                column(value, np.float64, np.nan),
                column(cost, np.float64, np.nan),
                np.full(n, _SYSTEMS.index(code_system), np.int8),
            )
        )

    def persons(
        self, kind: EventKind, first_day: int, last_day: int, code: str | None = None
    ) -> np.ndarray:
        """The person of each event of ``kind`` (and ``code``) starting in
        ``[first_day, last_day)``, one entry per event."""
        k, c = _KIND_INDEX[kind], self._code_index.get(code, -2) if code else None
        found = [
            chunk[0][(chunk[2] >= first_day) & (chunk[2] < last_day) & (c is None or chunk[4] == c)]
            for chunk in self._chunks
            if chunk[1][0] == k
        ]
        return np.concatenate(found) if found else np.zeros(0, np.int32)

    def episodes(self, kind: EventKind, code: str) -> tuple[np.ndarray, ...]:
        """Person, start, end (``NO_DAY`` while open) and cost of every event of ``kind`` and
        ``code``."""
        c = self._code_index.get(code, -2)
        chosen = [chunk for chunk in self._chunks if chunk[1][0] == _KIND_INDEX[kind]]
        if not chosen:
            return tuple(np.zeros(0) for _ in range(4))
        person, day, end, code_, cost = (
            np.concatenate([chunk[i] for chunk in chosen]) for i in (0, 2, 3, 4, 6)
        )
        keep = code_ == c
        return person[keep], day[keep], end[keep], cost[keep]

    def __len__(self) -> int:
        return sum(len(chunk[0]) for chunk in self._chunks)

    def to_arrow(self, patient_ids: np.ndarray, keep: np.ndarray, last_day: int) -> pa.Table:
        """The events of people with ``keep`` set, sorted by patient then start.

        ``patient_ids`` and ``keep`` are indexed by the person numbers events were added with.
        Nothing starting after ``last_day`` (the extract date) has happened yet, so it is
        not in the table; an episode still running then has no end yet, as in a real
        extract; a prescription's end is the period it covers and stays.
        """
        person, kind, day, end, code, value, cost, system = (
            np.concatenate([c[i] for c in self._chunks]) for i in range(8)
        )
        rows = np.flatnonzero(keep[person] & (day <= last_day))
        rows = rows[np.lexsort((kind[rows], day[rows], person[rows]))]
        person, kind, day, end, code, value, cost, system = (
            a[rows] for a in (person, kind, day, end, code, value, cost, system)
        )
        running = (end > last_day) & (kind != _KIND_INDEX[EventKind.PRESCRIPTION])
        end = np.where(running, NO_DAY, end)
        ids = pa.DictionaryArray.from_arrays(pa.array(person), pa.array(patient_ids))
        kinds = pa.DictionaryArray.from_arrays(
            pa.array(kind.astype(np.int32)), pa.array([k.value for k in _KINDS])
        )
        codes = pa.DictionaryArray.from_arrays(
            pa.array(code.astype(np.int32), mask=code < 0), pa.array(self.codes, pa.string())
        )
        columns = {
            "patient_id": ids.cast(pa.string()),
            "kind": kinds.cast(pa.string()),
            "start": pa.array(day, pa.int32()).cast(pa.date32()),
            "end": pa.array(end, pa.int32(), mask=end == NO_DAY).cast(pa.date32()),
            "code_system": pa.DictionaryArray.from_arrays(
                pa.array(system.astype(np.int32), mask=code < 0), pa.array(_SYSTEMS)
            ).cast(pa.string()),
            "code": codes.cast(pa.string()),
            "value": pa.array(value, pa.float64(), mask=np.isnan(value)),
            "cost": pa.array(cost, pa.float64(), mask=np.isnan(cost)),
        }
        return pa.table(columns, schema=EVENTS.schema)
