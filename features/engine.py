"""Run the feature definitions: contract tables in, one model-ready row per (person, as-of date).

The cohort at an as-of date is everyone registered and alive on that day. Every family cuts
events with ``features.window.cut`` once, aggregates all its definitions in one pass, and is
left-joined to the cohort; people without events get each column's declared default.
Executed on an embedded DuckDB through Ibis; the same expression can be printed as SQL.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import ibis
import ibis.expr.types as ir
import pandas as pd
import pyarrow as pa

from features.catalogue import FAMILIES
from features.contract import ETHNICITY_GROUPS, EVENTS, PATIENTS, PRACTICES, SEXES
from features.definitions import Family
from features.spec import FeatureSpec
from features.window import cut

KEY = ["patient_id", "as_of"]

PERSON_SPECS: tuple[FeatureSpec, ...] = (
    FeatureSpec(
        name="age",
        description="age in years on the as-of date",
        template="aged {value:.0f}",
        concept="age",
        default=None,
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


@dataclass(frozen=True, slots=True)
class Sources:
    """The three contract tables as Ibis tables on one backend."""

    patients: ir.Table
    events: ir.Table
    practices: ir.Table

    @classmethod
    def from_dir(cls, data_dir: Path) -> Sources:
        """Parquet files in ``data_dir``, read by an embedded DuckDB."""
        con = ibis.duckdb.connect()
        return cls(
            *(
                con.read_parquet(data_dir / t.file_name, table_name=t.name)
                for t in (PATIENTS, EVENTS, PRACTICES)
            )
        )

    @classmethod
    def from_frames(
        cls, patients: pd.DataFrame, events: pd.DataFrame, practices: pd.DataFrame
    ) -> Sources:
        """In-memory frames (a request's history, a test's five rows) with contract schemas."""
        con = ibis.duckdb.connect()
        tables = []
        for table, frame in ((PATIENTS, patients), (EVENTS, events), (PRACTICES, practices)):
            arrow = (
                pa.Table.from_pandas(
                    frame[list(table.schema.names)], schema=table.schema, preserve_index=False
                )
                if len(frame)
                else table.schema.empty_table()
            )
            tables.append(con.create_table(table.name, ibis.memtable(arrow)))
        return cls(*tables)


def feature_specs(families: Sequence[Family] = FAMILIES) -> tuple[FeatureSpec, ...]:
    """Every output column's spec, in output order."""
    return PERSON_SPECS + tuple(d.spec() for f in families for d in f.definitions)


def as_of_table(as_of_dates: Iterable[date]) -> ir.Table:
    dates = sorted(set(as_of_dates))
    if not dates:
        raise ValueError("at least one as-of date is needed")
    return ibis.memtable(pd.DataFrame({"as_of": dates}), schema={"as_of": "date"})


def cohort(sources: Sources, as_of: ir.Table) -> ir.Table:
    """Everyone registered and alive on each as-of date, with their practice's place."""
    p = sources.patients
    joined = p.cross_join(as_of)
    alive = joined.death_date.isnull() | (joined.death_date >= joined.as_of)
    registered = (joined.registration_start <= joined.as_of) & (
        joined.registration_end.isnull() | (joined.registration_end >= joined.as_of)
    )
    members = joined.filter(alive & registered & (joined.birth_month <= joined.as_of))
    return members.left_join(sources.practices, "practice_id").drop("practice_id_right")


def feature_expression(
    sources: Sources, as_of_dates: Iterable[date], families: Sequence[Family] = FAMILIES
) -> ir.Table:
    """The whole feature computation as one Ibis expression (print it with ``ibis.to_sql``)."""
    as_of = as_of_table(as_of_dates)
    members = cohort(sources, as_of)
    result = members.select(
        "patient_id",
        "as_of",
        age=members.as_of.delta(members.birth_month, unit="day") / 365.25,
        sex=members.sex,
        deprivation_decile=members.deprivation_decile.cast("float64"),
        ethnicity_group=members.ethnicity_group,
    )
    events = sources.events.select("patient_id", "kind", "start", "end", "code", "value")
    for family in families:
        window = cut(events.semi_join(members, "patient_id"), as_of, family.lookback_days)
        aggregated = window.group_by(KEY).aggregate(
            **{d.name: d.aggregate(window) for d in family.definitions}
        )
        result = result.left_join(aggregated, KEY).drop("patient_id_right", "as_of_right")
        result = result.mutate(
            **{d.name: result[d.name].fill_null(d.default) for d in family.definitions}
        )
    return result


def build_features(
    sources: Sources, as_of_dates: Iterable[date], families: Sequence[Family] = FAMILIES
) -> pd.DataFrame:
    """One row per (patient, as-of date) in the cohort, columns in spec order, model-safe.

    Numbers are float64; categoricals are integer codes into their spec's vocabulary (-1
    for a value outside it). Sorted by as-of date then patient, so row order is stable.
    """
    specs = feature_specs(families)
    frame = feature_expression(sources, as_of_dates, families).to_pandas()
    frame["as_of"] = pd.to_datetime(frame["as_of"]).dt.date
    for spec in specs:
        if spec.categorical:
            codes = {v: i for i, v in enumerate(spec.vocabulary)}
            frame[spec.name] = frame[spec.name].map(codes).fillna(-1).astype("int64")
        else:
            frame[spec.name] = frame[spec.name].astype("float64")
    frame = frame.sort_values(["as_of", "patient_id"]).set_index(KEY)
    return frame[[s.name for s in specs]]


def cohort_context(sources: Sources, as_of_dates: Iterable[date]) -> pd.DataFrame:
    """Practice, GP cluster and locality of everyone in the cohort (not model inputs)."""
    members = cohort(sources, as_of_table(as_of_dates))
    frame = members.select(
        *KEY, "practice_id", "gp_cluster", "locality", "birth_month", "sex"
    ).to_pandas()
    frame["as_of"] = pd.to_datetime(frame["as_of"]).dt.date
    return frame.sort_values(["as_of", "patient_id"]).set_index(KEY)
