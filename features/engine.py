"""Run the feature definitions: contract tables in, one model-ready row per (person, as-of date).

The cohort at an as-of date is everyone registered and alive on that day. The events of all
families are cut with ``features.window.cut`` once, each kind as far back as some family
reads it, and aggregated in one pass (each definition's filter inside its aggregates), then
left-joined to the cohort once; people without events get each column's declared default.

The definitions are one Ibis expression over unbound tables, compiled once per feature set
and engine and run by ``ContractTables`` on its engine (an embedded DuckDB by default, or
Spark). ``feature_sql(dialect=...)`` prints the same computation for another engine. The
pandas steps after the query (integer codes, float64, the sort) see the same Arrow types
from either engine, so both give the same frame.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Sequence
from datetime import date
from functools import cache
from pathlib import Path

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from riskstrat.common.months import DAYS_PER_YEAR
from riskstrat.common.progress import QUIET, Progress
from riskstrat.contract.schema import ETHNICITY_GROUPS, SEXES
from riskstrat.contract.tables import AS_OF_TABLE, ContractTables, unbound
from riskstrat.features.catalogue import DERIVED, FAMILIES
from riskstrat.features.definitions import LIFETIME_YEARS, Derived, DistinctCodes, Family
from riskstrat.features.spec import FeatureSpec
from riskstrat.features.window import cut

KEY = ["patient_id", "as_of"]
ROWS_TABLE = "chosen_rows"  # the (patient, as-of date) rows a caller asks for

PERSON_SPECS: tuple[FeatureSpec, ...] = (
    FeatureSpec(
        name="age",
        description="age in years on the as-of date",
        template="aged {whole}",
        concept="age",
        default=None,
        minimum=0.0,
        maximum=LIFETIME_YEARS,
    ),
    FeatureSpec(
        name="sex",
        description="sex",
        template="sex {label}",
        concept="sex",
        default=-1,
        vocabulary=SEXES,
    ),
    FeatureSpec(
        name="deprivation_decile",
        description="IMD decile, 1 = most deprived",
        template="lives in deprivation decile {value:.0f} (1 = most deprived)",
        concept="deprivation",
        default=None,
        minimum=1.0,
        maximum=10.0,
    ),
    FeatureSpec(
        name="ethnicity_group",
        description="ethnicity group",
        template="ethnicity group {label}",
        concept="ethnicity",
        default=-1,
        vocabulary=ETHNICITY_GROUPS,
    ),
)


def feature_specs(
    families: Sequence[Family] = FAMILIES, derived: Sequence[Derived] = DERIVED
) -> tuple[FeatureSpec, ...]:
    """Every output column's spec, in output order."""
    from_events = tuple(d.spec() for f in families for d in f.definitions)
    return PERSON_SPECS + from_events + tuple(d.spec() for d in derived)


def cohort() -> ir.Table:
    """Everyone registered and alive on each as-of date, with their practice's place."""
    as_of = unbound(AS_OF_TABLE)
    joined = unbound("patients").cross_join(as_of)
    alive = joined.death_date.isnull() | (joined.death_date >= joined.as_of)
    registered = (joined.registration_start <= joined.as_of) & (
        joined.registration_end.isnull() | (joined.registration_end >= joined.as_of)
    )
    members = joined.filter(alive & registered & (joined.birth_month <= joined.as_of))
    return members.left_join(unbound("practices"), "practice_id").drop("practice_id_right")


def kind_reach(families: Sequence[Family]) -> dict[str, int | None]:
    """How far back each kind of event is read: the longest look-back of the families
    reading it (None when one of them reads the whole history)."""
    reach: dict[str, int | None] = {}
    for family in families:
        for kind in family.kinds:
            known = reach.get(kind, family.lookback_days)
            unbounded = known is None or family.lookback_days is None
            reach[kind] = None if unbounded else max(known, family.lookback_days)
    return reach


def history(families: Sequence[Family], kinds: Iterable[str] | None = None) -> ir.Table:
    """The events every family reads, cut once at the as-of dates.

    One window for all families (or only their ``kinds``), each kind kept as far back as
    its ``kind_reach``. A family's look-back bounds each of its definitions (``Family``
    refuses a definition looking further back), and each definition selects its own kinds,
    codes and days, so every column aggregates exactly the events its family's own window
    held, and no aggregate sees the old GP contacts and prescriptions that only a look-back
    of conditions would have let in.
    """
    reach = kind_reach(families)
    if kinds is not None:
        wanted = set(kinds)
        reach = {k: v for k, v in reach.items() if k in wanted}
    events = unbound("events").select("patient_id", "kind", "start", "end", "code", "value", "cost")
    return cut(events, unbound(AS_OF_TABLE), reach)


def event_features(families: Sequence[Family]) -> ir.Table:
    """Every family's columns per (person, as-of date) with events, in definition order.

    One aggregate over the window of all families (``history``), each definition's filter
    inside its aggregates: no join per family. Distinct codes come from a window of their
    kinds only, by way of each code's latest event (``DistinctCodes``), and are joined
    once: every person and date there is also in the main aggregate.
    """
    window = history(families)
    definitions = [d for f in families for d in f.definitions]
    direct = [d for d in definitions if not isinstance(d, DistinctCodes)]
    coded = [d for d in definitions if isinstance(d, DistinctCodes)]
    table = window.group_by(KEY).aggregate(**{d.name: d.aggregate(window) for d in direct})
    if coded:
        # A window of its own, not the main one again: DuckDB would keep a shared window
        # in memory for both branches (twice the memory of the whole query).
        coded_window = history(families, {k for d in coded for k in d.kinds})
        codes = coded_window.filter(coded_window.code.notnull())
        latest = codes.group_by([*KEY, "code"]).aggregate(
            **{d.name: d.latest(codes) for d in coded}
        )
        counted = latest.group_by(KEY).aggregate(
            **{d.name: d.count_codes(latest[d.name]) for d in coded}
        )
        table = table.left_join(counted, KEY).drop("patient_id_right", "as_of_right")
    return table.select(*KEY, *(d.name for d in definitions))


@cache
def feature_expression(
    families: tuple[Family, ...] = FAMILIES, derived: tuple[Derived, ...] = DERIVED
) -> ir.Table:
    """The whole feature computation as one Ibis expression over unbound tables (built once
    per feature set: expressions are immutable)."""
    members = cohort()
    result = members.select(
        "patient_id",
        "as_of",
        age=members.as_of.delta(members.birth_month, unit="day").cast("float64") / DAYS_PER_YEAR,
        sex=members.sex,
        deprivation_decile=members.deprivation_decile.cast("float64"),
        ethnicity_group=members.ethnicity_group,
    )
    definitions = [d for f in families for d in f.definitions]
    if definitions:
        result = result.left_join(event_features(families), KEY).drop(
            "patient_id_right", "as_of_right"
        )
        result = result.mutate(**{d.name: result[d.name].fill_null(d.default) for d in definitions})
    for column in derived:
        missing = [c for c in column.inputs if c not in result.columns]
        if missing:
            raise ValueError(f"derived feature {column.name} needs missing columns {missing}")
        result = result.mutate(**{column.name: column.expression(result)})
    return result


@cache
def feature_sql(
    families: tuple[Family, ...] = FAMILIES,
    derived: tuple[Derived, ...] = DERIVED,
    dialect: str = "duckdb",
) -> str:
    """The feature computation as SQL for ``dialect`` (compiled once, then reused)."""
    return ibis.to_sql(feature_expression(families, derived), dialect=dialect)


def build_features(
    sources: ContractTables,
    as_of_dates: Iterable[date],
    families: Sequence[Family] = FAMILIES,
    derived: Sequence[Derived] = DERIVED,
    progress: Progress | None = None,
    *,
    rows: pa.Table | None = None,
    compact: bool = False,
) -> pd.DataFrame:
    """One row per (patient, as-of date) in the cohort, columns in spec order, model-safe.

    Numbers are float64; categoricals are integer codes into their spec's vocabulary (-1
    for a value outside it). Sorted by as-of date then patient, so row order is stable.
    All dates run as one query (faster than one query per date), so ``progress`` hears
    one step. The rows leave the engine in Arrow batches, each converted column by column
    as it comes: the whole table never exists in the engine's types.

    ``rows`` (``patient_id``, ``as_of``) keeps only those rows, in the engine: training asks
    for its sampled snapshots, so the rest never leave it. ``compact`` gives float32 numbers
    and int8 codes, which LightGBM takes as one float32 matrix (half the memory; float32
    holds counts and days exactly and ages to within a minute).
    """
    say = progress or QUIET
    dates = sorted(set(as_of_dates))
    say.advance("features", 0, 1, f"{len(dates)} as-of date(s)")
    specs = feature_specs(families, derived)
    expression = feature_expression(tuple(families), tuple(derived))
    if rows is None:
        frame = _model_frame(sources.batches(expression, dates), specs, compact)
    else:
        with tempfile.TemporaryDirectory(prefix="riskstrat-rows-") as folder:
            keys = Path(folder) / "rows.parquet"
            pq.write_table(rows.select(KEY), keys)
            sources.engine.attach_parquet(sources.backend, ROWS_TABLE, str(keys))
            try:
                batches = sources.batches(_only_chosen(expression), dates)
                frame = _model_frame(batches, specs, compact)
            finally:
                sources.engine.detach(sources.backend, ROWS_TABLE)
    say.advance("features", 1, 1, f"{len(frame):,} rows")
    return frame


@cache
def _only_chosen(expression: ir.Table) -> ir.Table:
    chosen = ibis.table({"patient_id": "string", "as_of": "date"}, name=ROWS_TABLE)
    return expression.semi_join(chosen, KEY)


def _values(column: pa.Array, spec: FeatureSpec, number: type, code: type) -> np.ndarray:
    """One column of one batch as the model takes it: a number, or a vocabulary code."""
    if spec.categorical:
        vocabulary = pa.array(spec.vocabulary, column.type)
        return pc.fill_null(pc.index_in(column, value_set=vocabulary), -1).to_numpy().astype(code)
    return pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False).astype(number)


def _model_frame(
    batches: Iterable[pa.RecordBatch], specs: Sequence[FeatureSpec], compact: bool
) -> pd.DataFrame:
    """The engine's batches as the model's frame, sorted by as-of date then patient."""
    number, code = (np.float32, np.int8) if compact else (np.float64, np.int64)
    chunks: dict[str, list[np.ndarray]] = {s.name: [] for s in specs}
    ids: list[pa.Array] = []
    days: list[np.ndarray] = []
    for batch in batches:
        for spec in specs:
            chunks[spec.name].append(_values(batch.column(spec.name), spec, number, code))
        ids.append(pc.cast(batch.column("patient_id"), pa.string()))
        days.append(pd.to_datetime(batch.column("as_of").to_pandas()).to_numpy("datetime64[D]"))
    day = np.concatenate(days) if days else np.array([], "datetime64[D]")
    patient = pa.chunked_array(ids, pa.string())
    order = pc.sort_indices(
        pa.table({"as_of": day, "patient_id": patient}),
        sort_keys=[("as_of", "ascending"), ("patient_id", "ascending")],
    ).to_numpy()
    columns = {
        s.name: np.concatenate(chunks[s.name])[order]
        if chunks[s.name]
        else np.array([], number if not s.categorical else code)
        for s in specs
    }
    index = pd.MultiIndex.from_arrays(
        [patient.take(order).to_pandas(), pd.Series(day[order]).dt.date],
        names=KEY,
    )
    return pd.DataFrame(columns, index=index, copy=False)


@cache
def _context_expression() -> ir.Table:
    return cohort().select(
        *KEY, "practice_id", "practice_name", "gp_cluster", "locality", "birth_month", "sex"
    )


def cohort_context(sources: ContractTables, as_of_dates: Iterable[date]) -> pd.DataFrame:
    """Practice, GP cluster and locality of everyone in the cohort (not model inputs)."""
    frame = sources.run(_context_expression(), as_of_dates)
    frame["as_of"] = frame["as_of"].dt.date
    return frame.sort_values(["as_of", "patient_id"]).set_index(KEY)
