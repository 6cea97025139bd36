"""The engines that run the feature, label, cohort and timeline expressions: DuckDB or Spark.

Every computation is an Ibis expression over unbound tables named like the contract tables.
An engine compiles it once to its own SQL dialect (Ibis's compiler for that backend, cached
per process), runs it and hands back Arrow. DuckDB is the embedded default: one in-process
connection per set of tables. Spark is the distributed one: one ``SparkSession`` per process
(made here from ``SparkSettings``, or the session already running, as in a Databricks job),
and a child session (``newSession``: the same executors, its own temporary views) per set
of tables, so two folders read in one process never see each other's tables.

Settings live in one place, the ``[engine]`` table::

    [engine]
    name = "spark"            # or "duckdb" (the default)
    [engine.spark]
    master = "local[*]"       # or spark://host:7077, yarn, ...
    driver_memory = "4g"
    shuffle_partitions = 8
    local_dir = "/scratch/spark"   # where Spark spills
    conf = { "spark.executor.memory" = "8g" }
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import ibis
import ibis.expr.types as ir
import pyarrow as pa
from pydantic import Field

from riskstrat.common.parquet import folder_batches
from riskstrat.common.settings import Integer, load_table, settings_model

if TYPE_CHECKING:
    from ibis.backends import BaseBackend
    from pyspark.sql import SparkSession

EngineName = Literal["duckdb", "spark"]
ENGINES: tuple[EngineName, ...] = ("duckdb", "spark")
DEFAULT_ENGINE: EngineName = "duckdb"
JAVA_PACKAGE = "openjdk-17-jre-headless"


@settings_model
class SparkSettings:
    """How this process's Spark session is made (``[engine.spark]``); ignored when a session
    is already running (a Databricks job or notebook, ``spark-submit`` code that made one)."""

    master: str = "local[*]"
    app_name: str = "riskstrat"
    driver_memory: str = "4g"
    shuffle_partitions: Integer = Field(8, ge=1, le=100_000)
    local_dir: str | None = None
    ui: bool = False
    conf: dict[str, str] = Field(default_factory=dict)

    def options(self) -> dict[str, str]:
        """Every Spark configuration key this makes, ``conf`` last (it wins)."""
        options = {
            "spark.app.name": self.app_name,
            "spark.driver.memory": self.driver_memory,
            "spark.sql.shuffle.partitions": str(self.shuffle_partitions),
            "spark.ui.enabled": str(self.ui).lower(),
            # riskstrat reports its own progress; Spark's bars would overwrite it.
            "spark.ui.showConsoleProgress": "false",
            # Dates and timestamps are read and returned as written, whatever the host's zone.
            "spark.sql.session.timeZone": "UTC",
            "spark.sql.execution.arrow.pyspark.enabled": "true",
        }
        if self.local_dir:
            options["spark.local.dir"] = self.local_dir
        return options | self.conf


@settings_model
class EngineSettings:
    """Which engine runs the computations (``[engine]``), and Spark's settings."""

    name: EngineName = DEFAULT_ENGINE
    spark: SparkSettings = Field(default_factory=SparkSettings)

    @classmethod
    def from_toml(cls, path: Path) -> EngineSettings:
        """The ``[engine]`` table of ``path`` (defaults when the file has none)."""
        return load_table(path, "engine", cls)


class Engine(ABC):
    """What differs between backends: making one, attaching tables and running SQL."""

    name: EngineName

    @abstractmethod
    def connect(self) -> BaseBackend:
        """A fresh backend with no tables, private to one set of contract tables."""

    @abstractmethod
    def attach_parquet(self, backend: BaseBackend, name: str, location: str) -> None:
        """Make the Parquet file or folder at ``location`` readable as table ``name``."""

    @abstractmethod
    def attach_arrow(self, backend: BaseBackend, name: str, table: pa.Table) -> None:
        """Make an in-memory Arrow table readable as table ``name``."""

    @abstractmethod
    def detach(self, backend: BaseBackend, name: str) -> None:
        """Forget table ``name`` (the as-of dates after a query)."""

    @abstractmethod
    def to_arrow(self, backend: BaseBackend, sql: str) -> pa.Table:
        """Run SQL in the backend's dialect; the whole result as Arrow."""

    @abstractmethod
    def to_batches(self, backend: BaseBackend, sql: str) -> Iterator[pa.RecordBatch]:
        """Run SQL; the result in batches of at most ``BATCH_ROWS`` rows, never held whole
        in this process (training reads millions of feature rows this way)."""

    @abstractmethod
    def close(self, backend: BaseBackend) -> None:
        """Release what ``connect`` made (never the shared Spark session itself)."""

    def compile(self, backend: BaseBackend, expression: ir.Table, *, keep: bool = True) -> str:
        """The expression as this backend's SQL. Kept (``keep``) ones are compiled once per
        process: compiling the feature expression takes longer than running it on a
        borough. One-off expressions (one person's timeline) are not kept, so they never
        push the long ones out."""
        if not keep:
            return backend.compile(expression)
        key = (self.name, expression.op())
        with _COMPILING:
            sql = _COMPILED.get(key)
            if sql is None:
                if len(_COMPILED) >= _COMPILED_KEPT:
                    _COMPILED.pop(next(iter(_COMPILED)))
                sql = _COMPILED[key] = backend.compile(expression)
        return sql


BATCH_ROWS = 65_536  # rows per batch of ``Engine.to_batches``
_COMPILED_KEPT = 64
_COMPILED: dict[tuple[str, object], str] = {}
_COMPILING = threading.Lock()


class DuckDBEngine(Engine):
    """An embedded, in-process DuckDB connection (the default)."""

    name: EngineName = "duckdb"

    def connect(self) -> BaseBackend:
        return ibis.duckdb.connect()

    def attach_parquet(self, backend: BaseBackend, name: str, location: str) -> None:
        backend.con.read_parquet(location).create_view(name)

    def attach_arrow(self, backend: BaseBackend, name: str, table: pa.Table) -> None:
        backend.con.register(name, table)

    def detach(self, backend: BaseBackend, name: str) -> None:
        backend.con.unregister(name)

    def to_arrow(self, backend: BaseBackend, sql: str) -> pa.Table:
        return backend.con.sql(sql).to_arrow_table()

    def to_batches(self, backend: BaseBackend, sql: str) -> Iterator[pa.RecordBatch]:
        yield from backend.con.sql(sql).fetch_record_batch(BATCH_ROWS)

    def close(self, backend: BaseBackend) -> None:
        backend.disconnect()


class SparkEngine(Engine):
    """Spark through Ibis's PySpark backend, one child session per set of tables."""

    name: EngineName = "spark"

    def __init__(self, settings: SparkSettings) -> None:
        self.settings = settings

    def connect(self) -> BaseBackend:
        from riskstrat.contract.spark_sql import COMPILER

        backend = ibis.pyspark.connect(spark_session(self.settings).newSession())
        backend.compiler = COMPILER
        return backend

    def attach_parquet(self, backend: BaseBackend, name: str, location: str) -> None:
        backend._session.read.parquet(location).createOrReplaceTempView(name)

    def attach_arrow(self, backend: BaseBackend, name: str, table: pa.Table) -> None:
        session = backend._session
        frame = session.createDataFrame(table.to_pandas(), schema=_spark_schema(table.schema))
        frame.createOrReplaceTempView(name)

    def detach(self, backend: BaseBackend, name: str) -> None:
        backend._session.catalog.dropTempView(name)

    def to_arrow(self, backend: BaseBackend, sql: str) -> pa.Table:
        return backend._session.sql(sql).toArrow()

    def to_batches(self, backend: BaseBackend, sql: str) -> Iterator[pa.RecordBatch]:
        """The executors write the result as Parquet to a temporary folder, read back here
        batch by batch: nothing is collected on the driver."""
        with tempfile.TemporaryDirectory(prefix="riskstrat-result-") as folder:
            backend._session.sql(sql).write.mode("overwrite").parquet(folder)
            yield from folder_batches(Path(folder), BATCH_ROWS)

    def close(self, backend: BaseBackend) -> None:
        for table in backend._session.catalog.listTables():
            if table.isTemporary:
                backend._session.catalog.dropTempView(table.name)


def _spark_schema(schema: pa.Schema) -> object:
    """The Spark schema of an Arrow schema (so an empty table keeps its column types)."""
    from ibis.backends.pyspark.datatypes import PySparkSchema

    return PySparkSchema.from_ibis(ibis.Schema.from_pyarrow(schema))


_SESSION: list[SparkSession] = []


def spark_session(settings: SparkSettings) -> SparkSession:
    """This process's Spark session: the one already running, else one made from
    ``settings`` (once; later settings do not change it)."""
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    if _SESSION:
        return _SESSION[0]
    if shutil.which("java") is None:
        raise RuntimeError(
            f"the Spark engine needs Java 17 and no 'java' is on the PATH: install "
            f"{JAVA_PACKAGE} (apt-get install -y {JAVA_PACKAGE}) or set JAVA_HOME"
        )
    builder = SparkSession.builder.master(settings.master)
    for key, value in settings.options().items():
        builder = builder.config(key, value)
    _SESSION.append(builder.getOrCreate())
    return _SESSION[0]


def make_engine(settings: EngineSettings | None = None) -> Engine:
    """The engine ``settings`` names (DuckDB when none is given)."""
    settings = settings or EngineSettings()
    if settings.name == "spark":
        return SparkEngine(settings.spark)
    return DuckDBEngine()
