"""Ibis's Spark compiler, with whole days between two dates as Spark's own day difference.

Ibis writes a date difference in days as ``DATEDIFF(DAY, start, end)``, which Spark runs as
``timestampdiff``: both dates become timestamps in the session's time zone and back, per
row. The feature window takes two such differences for every event. ``DATEDIFF(end,
start)`` is the same whole number of days, counted on the dates themselves.
"""

from __future__ import annotations

import ibis.expr.operations as ops
import sqlglot.expressions as sge
from ibis.backends.sql.compilers.pyspark import PySparkCompiler


class SparkCompiler(PySparkCompiler):
    """The PySpark backend's compiler with ``visit_DateDelta`` in days as date arithmetic."""

    def visit_DateDelta(  # noqa: N802 (Ibis finds its visitors by operation name)
        self,
        op: ops.DateDelta,
        *,
        part: sge.Expression,
        left: sge.Expression,
        right: sge.Expression,
    ) -> sge.Expression:
        if op.part.value.lower() in ("d", "day"):
            return sge.DateDiff(this=left, expression=right)
        return super().visit_DateDelta(op, part=part, left=left, right=right)


COMPILER = SparkCompiler()
