"""Find and read the tables of one extract, whatever their spelling and storage.

An extract is a folder of CSV or Parquet files (one file per table, any letter case, extra
files ignored) or a DuckDB database file (``duckdb:///path.duckdb``, ``...?schema=cdm``).
Every table is read through an embedded DuckDB as text, with lower-case column names, so
adapters see one shape: ``read(spec)`` returns the spec's columns (optional ones empty when
absent, older spellings renamed to the canonical name) or raises ``IngestError`` naming the
file and the column.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import duckdb
import pandas as pd

from riskstrat.common.errors import UserError

SUFFIXES = {".csv": "csv", ".csv.gz": "csv", ".txt": "csv", ".parquet": "parquet", ".pq": "parquet"}


class IngestError(UserError):
    """The extract cannot be ingested as it is; the message names the file and the column."""


@dataclass(frozen=True, slots=True)
class Spec:
    """A source table: its name, required and optional columns, older column spellings."""

    name: str
    required: bool
    columns: tuple[str, ...]
    optional: tuple[str, ...] = ()
    aliases: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def _suffix(path: Path) -> str | None:
    name = path.name.lower()
    return next((s for s in sorted(SUFFIXES, key=len, reverse=True) if name.endswith(s)), None)


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


class Extract:
    """The tables of one extract, by lower-case name, behind one DuckDB connection."""

    def __init__(
        self,
        connection: duckdb.DuckDBPyConnection,
        relations: dict[str, str],
        where: dict[str, str],
    ) -> None:
        self._connection = connection
        self._relations = relations  # table name -> SQL relation
        self._where = where  # table name -> file or database table, for messages

    @classmethod
    def open(cls, location: str | Path) -> Extract:
        """A folder of CSV/Parquet files, or a DuckDB database (file path or duckdb:/// URI)."""
        text = str(location)
        if text.startswith("duckdb:") or text.lower().endswith((".duckdb", ".ddb", ".db")):
            return cls._database(text)
        folder = Path(text)
        if "://" in text:
            raise IngestError(
                f"{text}: only folders of CSV/Parquet files and DuckDB files (duckdb:///path) "
                "can be read; export other databases to Parquet first"
            )
        if not folder.is_dir():
            raise IngestError(f"{folder}: not a folder of CSV or Parquet files")
        connection = duckdb.connect()
        relations: dict[str, str] = {}
        where: dict[str, str] = {}
        for path in sorted(folder.iterdir()):
            suffix = _suffix(path)
            if suffix is None or not path.is_file():
                continue
            name = path.name[: -len(suffix)].strip().lower()
            if name in where:
                raise IngestError(
                    f"{folder}: table '{name}' is given twice ({where[name]} and {path}); keep one"
                )
            literal = "'" + str(path).replace("'", "''") + "'"
            relations[name] = (
                f"read_csv({literal}, all_varchar = true, header = true)"
                if SUFFIXES[suffix] == "csv"
                else f"read_parquet({literal})"
            )
            where[name] = str(path)
        if not relations:
            raise IngestError(f"{folder}: no CSV or Parquet files found")
        return cls(connection, relations, where)

    @classmethod
    def _database(cls, uri: str) -> Extract:
        parsed = urlparse(uri) if uri.startswith("duckdb:") else None
        path = (parsed.netloc + parsed.path) if parsed else uri
        if parsed and path.startswith("/") and uri.startswith("duckdb:///"):
            path = parsed.path
        schema = (parse_qs(parsed.query).get("schema") or [None])[0] if parsed else None
        if not Path(path).is_file():
            raise IngestError(f"{uri}: DuckDB database file {path} not found")
        connection = duckdb.connect()
        literal = "'" + path.replace("'", "''") + "'"
        connection.execute(f"ATTACH {literal} AS src (READ_ONLY)")
        rows = connection.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = 'src' "
            "UNION ALL SELECT schema_name, view_name FROM duckdb_views() "
            "WHERE database_name = 'src'"
        ).fetchall()
        relations: dict[str, str] = {}
        where: dict[str, str] = {}
        for table_schema, table in sorted(rows):
            if schema is not None and table_schema.lower() != schema.lower():
                continue
            name = table.lower()
            if name in where:
                raise IngestError(
                    f"{uri}: table '{name}' is in more than one schema; add ?schema=NAME"
                )
            relations[name] = f"src.{_quote(table_schema)}.{_quote(table)}"
            where[name] = f"{path}: table {table_schema}.{table}"
        if not relations:
            raise IngestError(
                f"{uri}: no tables found" + (f" in schema {schema}" if schema else "")
            )
        return cls(connection, relations, where)

    def with_person_column(self, column: str, names: Iterable[str]) -> Extract:
        """This extract with ``column`` read in place of each of ``names`` (the person-id
        spellings adapters read) in every table that has it: a manifest's already
        pseudonymised id stands in for the NHS number or local id."""
        relations = dict(self._relations)
        for table in self.tables:
            found = self._columns(table)
            if column not in found:
                continue
            others = [n for n in names if n != column]
            present = [_quote(found[n]) for n in others if n in found]
            exclude = f" EXCLUDE ({', '.join(present)})" if present else ""
            read_as = ", ".join(f"{_quote(found[column])} AS {_quote(n)}" for n in others)
            relations[table] = f"(SELECT *{exclude}, {read_as} FROM {self._relations[table]})"
        return Extract(self._connection, relations, self._where)

    @property
    def tables(self) -> tuple[str, ...]:
        return tuple(sorted(self._relations))

    def has(self, name: str) -> bool:
        return name in self._relations

    def dates(self, spec: Spec, frame: pd.DataFrame, column: str) -> pd.Series:
        """A date column of a table read with ``spec`` (``parse_dates``); an error names the
        file and the column as the file spells it (the canonical name or an alias)."""
        spelt = self.spelling(spec.name, column, spec.aliases.get(column, ()))
        return parse_dates(frame[column], self.where(spec.name), spelt)

    def spelling(self, name: str, column: str, aliases: Iterable[str]) -> str:
        """The column's name as table ``name`` spells it (lower case): ``column`` or the first
        of its ``aliases`` present, as ``read`` chooses; ``column`` when none is."""
        aliases = tuple(aliases)
        if not aliases:
            return column
        found = self.columns(name)
        return next((c for c in (column, *aliases) if c in found), column)

    def where(self, name: str) -> str:
        return self._where.get(name, name)

    def columns(self, name: str) -> tuple[str, ...]:
        """The table's column names, lower-case."""
        return tuple(self._columns(name)) if self.has(name) else ()

    def _columns(self, name: str) -> dict[str, str]:
        """Lower-case, trimmed column name -> the name as spelt in the source."""
        try:
            described = self._connection.sql(
                f"DESCRIBE SELECT * FROM {self._relations[name]}"
            ).fetchall()
        except duckdb.Error as exc:
            raise IngestError(f"{self.where(name)}: cannot be read ({exc})") from exc
        found: dict[str, str] = {}
        for row in described:
            key = str(row[0]).strip().strip("\ufeff").strip().lower()
            found.setdefault(key, str(row[0]))
        return found

    def read(self, spec: Spec) -> pd.DataFrame | None:
        """The spec's columns as text (index = source row), or None for an absent optional table."""
        if not self.has(spec.name):
            if spec.required:
                raise IngestError(
                    f"required table '{spec.name}' not found; tables present: "
                    f"{', '.join(self.tables)}"
                )
            return None
        found = self._columns(spec.name)
        selected: list[str] = []
        for column in (*spec.columns, *spec.optional):
            spelling = next(
                (found[c] for c in (column, *spec.aliases.get(column, ())) if c in found), None
            )
            if spelling is None:
                if column in spec.columns:
                    raise IngestError(
                        f"{self.where(spec.name)}: missing column '{column}' (table "
                        f"{spec.name}); columns present: {', '.join(sorted(found))}"
                    )
                selected.append(f"CAST(NULL AS VARCHAR) AS {_quote(column)}")
            else:
                selected.append(f"CAST({_quote(spelling)} AS VARCHAR) AS {_quote(column)}")
        sql = f"SELECT {', '.join(selected)} FROM {self._relations[spec.name]}"
        try:
            frame = self._connection.sql(sql).df()
        except duckdb.Error as exc:
            raise IngestError(f"{self.where(spec.name)}: cannot be read ({exc})") from exc
        return _tidy(frame)

    def concepts(self, ids: Iterable[str]) -> pd.DataFrame:
        """CONCEPT rows (id, vocabulary, code, name) for the given ids; empty if no CONCEPT."""
        wanted = sorted({i for i in ids if isinstance(i, str) and i and i != "0"})
        columns = ["concept_id", "vocabulary_id", "concept_code", "concept_name"]
        if not self.has("concept") or not wanted:
            return pd.DataFrame(columns=columns, dtype="str")
        spec = Spec("concept", False, tuple(columns))
        found = self._columns("concept")
        missing = [c for c in columns if c not in found]
        if missing:
            raise IngestError(f"{self.where('concept')}: missing column '{missing[0]}'")
        self._connection.register("_wanted", pd.DataFrame({"id": wanted}))
        try:
            selected = ", ".join(
                f"CAST(c.{_quote(found[c])} AS VARCHAR) AS {c}" for c in spec.columns
            )
            frame = self._connection.sql(
                f"SELECT {selected} FROM {self._relations['concept']} AS c "
                f"WHERE CAST(c.{_quote(found['concept_id'])} AS VARCHAR) IN "
                "(SELECT id FROM _wanted)"
            ).df()
        finally:
            self._connection.unregister("_wanted")
        return _tidy(frame).drop_duplicates("concept_id")


_INTEGRAL_FLOAT = re.compile(r"^(-?\d+)\.0+$")


def _tidy(frame: pd.DataFrame) -> pd.DataFrame:
    """Text columns with empty strings as missing and ``8507.0`` (a float id) as ``8507``."""
    out = {}
    for column in frame.columns:
        values = frame[column].astype("str").str.strip()
        values = values.mask(values == "")
        out[column] = values.str.replace(_INTEGRAL_FLOAT, r"\1", regex=True)
    return pd.DataFrame(out, index=pd.RangeIndex(len(frame), name="source_row"))


# The one date rule of every adapter (docs/data.md). NHS extracts write dates day-first, so
# ``03/05/2021`` is 3 May, never US month-first 5 March.
_YEAR_FIRST = re.compile(
    r"^(?P<year>\d{4})([-/.])(?P<month>\d{1,2})\2(?P<day>\d{1,2})(?:[T\s].*)?$"
)
_COMPACT = re.compile(r"^(?P<year>\d{4})(?P<month>\d{2})(?P<day>\d{2})$")
_DAY_FIRST = re.compile(
    r"^(?P<day>\d{1,2})[/.-](?P<month>\d{1,2})[/.-](?P<year>\d{4})(?:[T\s].*)?$"
)
_EMPTY = ("", "NULL")  # after trimming, any case: SQL Server exports write NULL
MOSTLY_UNREADABLE = 0.5  # share of a column's given dates beyond which its format is wrong
DATE_FORMATS = "YYYY-MM-DD or an ISO date-time, YYYYMMDD, day-first DD/MM/YYYY"


def _given(values: pd.Series) -> pd.Series:
    """True where a value is given: not missing, blank or the text NULL."""
    if pd.api.types.is_datetime64_any_dtype(values):
        return values.notna()
    text = values.astype("str").str.strip().str.upper()
    return text.notna() & ~text.isin(_EMPTY)


def read_dates(values: pd.Series) -> pd.Series:
    """Each value as a date at midnight (``datetime64[s]``), NaT where empty or unreadable.

    Text dates may be ISO (``2021-05-03``, also ``2021/05/03``, with or without a time),
    compact ``20210503`` or UK day-first ``03/05/2021`` (also ``3/5/2021``, ``03-05-2021``,
    ``03.05.2021``, with or without a time): NHS extracts are day-first, so a month-first
    (US) date is never guessed. A typed date or timestamp (a Parquet column) is kept as it
    is, its time of day dropped; an impossible date (``31/02/2022``) is NaT.
    """
    if pd.api.types.is_datetime64_any_dtype(values):
        stamps = values.dt.tz_localize(None) if values.dt.tz is not None else values
        return stamps.dt.floor("D").astype("datetime64[s]")
    text = values.astype("str").str.strip().where(_given(values))
    parts = text.str.extract(_YEAR_FIRST)[["year", "month", "day"]]
    for pattern in (_COMPACT, _DAY_FIRST):
        parts = parts.fillna(text.str.extract(pattern)[["year", "month", "day"]])
    iso = parts["year"] + "-" + parts["month"].str.zfill(2) + "-" + parts["day"].str.zfill(2)
    return pd.to_datetime(iso, format="%Y-%m-%d", errors="coerce").astype("datetime64[s]")


def _looks_month_first(value: object) -> bool:
    found = _DAY_FIRST.match(str(value).strip())
    return bool(found) and int(found["day"]) <= 12 < int(found["month"]) <= 31


def parse_dates(values: pd.Series, where: str, column: str) -> pd.Series:
    """``read_dates`` of one column of a source file, checked: a few unreadable values are NaT
    (the adapter sets their rows aside with a reason), but when more than half of the given
    values are unreadable the format is wrong and this raises ``IngestError`` naming the file
    (``where``), the column and an example."""
    stamps = read_dates(values)
    given = _given(values)
    unreadable = values[given & stamps.isna()]
    if len(unreadable) > MOSTLY_UNREADABLE * int(given.sum()):
        month_first = [v for v in unreadable if _looks_month_first(v)]
        example = (month_first or list(unreadable))[0]
        hint = " (dates are read day-first, as NHS extracts write them)" if month_first else ""
        raise IngestError(
            f"{where}: column '{column}': {len(unreadable)} of {int(given.sum())} values are "
            f"not dates in a known format ({DATE_FORMATS}), e.g. {example!r}{hint}"
        )
    return stamps


def parse_numbers(values: pd.Series) -> pd.Series:
    return pd.to_numeric(values, errors="coerce").astype("float64")
