"""The data-quality report of one ingest (JSON for machines, Markdown for people).

It says, per source table, rows in = rows mapped + rows ignored (by reason); per contract
table, rows written = accepted + quarantined (by reason); the unmapped codes by frequency;
date ranges; people without an observation period; outcomes per year; and a verdict on
whether there are enough emergency admissions to train or evaluate a model.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb
import pandas as pd

from riskstrat.contract.schema import EventKind
from riskstrat.contract.validation import ValidationReport
from riskstrat.sources.ingest.mapping import Mapped

TOP_CODES = 10


@dataclass(frozen=True, slots=True, kw_only=True)
class Thresholds:
    """How many emergency admissions (accepted, all years) training and evaluation need."""

    min_admissions_to_train: int = 100
    min_admissions_to_evaluate: int = 30

    def __post_init__(self) -> None:
        if not 0 < self.min_admissions_to_evaluate <= self.min_admissions_to_train:
            raise ValueError("need 0 < min_admissions_to_evaluate <= min_admissions_to_train")


@dataclass(frozen=True, slots=True)
class Verdict:
    emergency_admissions: int
    people: int
    can_train: bool
    can_evaluate: bool
    text: str


def verdict(admissions: int, people: int, thresholds: Thresholds) -> Verdict:
    t = thresholds
    if admissions >= t.min_admissions_to_train:
        text = (
            f"{admissions:,} emergency admissions among {people:,} people: enough to train "
            f"(at least {t.min_admissions_to_train}) and to evaluate"
        )
    elif admissions >= t.min_admissions_to_evaluate:
        text = (
            f"{admissions:,} emergency admissions: too few to train (needs "
            f"{t.min_admissions_to_train}); enough to evaluate the existing champion, "
            "scoring with it"
        )
    else:
        text = (
            f"{admissions:,} emergency admissions: too few to train (needs "
            f"{t.min_admissions_to_train}) or to evaluate (needs {t.min_admissions_to_evaluate}); "
            "scoring with the existing champion only"
        )
    return Verdict(
        admissions,
        people,
        admissions >= t.min_admissions_to_train,
        admissions >= t.min_admissions_to_evaluate,
        text,
    )


def _source_tables(mapped: Mapped) -> dict[str, dict[str, object]]:
    ignored = mapped.ledger.ignored_frame()
    produced = mapped.events.groupby("source_table")["source_row"].nunique()
    merged = {"person": len(mapped.patients), "patients": len(mapped.patients)}
    out: dict[str, dict[str, object]] = {}
    for table, rows_in in mapped.ledger.rows_in.items():
        mine = ignored[ignored["source_table"] == table]
        by_reason = mine["reason"].value_counts().sort_index()
        skipped = len(mine)
        if table in produced.index:
            rows_mapped = int(produced[table])
        elif table in merged:
            rows_mapped = int(merged[table])
        else:
            rows_mapped = rows_in - skipped  # merged into patients (deaths, periods)
        out[table] = {
            "rows_in": rows_in,
            "rows_mapped": rows_mapped,
            "rows_ignored": skipped,
            "ignored_by_reason": {str(k): int(v) for k, v in by_reason.items()},
            "reconciles": rows_in == rows_mapped + skipped,
        }
    return out


def _unmapped_codes(mapped: Mapped) -> dict[str, list[dict[str, object]]]:
    ignored = mapped.ledger.ignored_frame()
    unmapped = ignored[ignored["reason"].isin(["unmapped_code", "no_contract_kind"])]
    unknown = ignored[ignored["reason"].str.startswith("unknown_") & ignored["code"].notna()]
    out: dict[str, list[dict[str, object]]] = {}
    for table, rows in pd.concat([unmapped, unknown]).groupby("source_table", sort=True):
        top = (
            rows.fillna({"code_system": "", "description": ""})
            .groupby(["code_system", "code"], sort=False)
            .agg(
                rows=("reason", "size"),
                description=("description", "first"),
                reason=("reason", "first"),
            )
            .reset_index()
            .sort_values(["rows", "code"], ascending=[False, True], kind="stable")
            .head(TOP_CODES)
        )
        out[str(table)] = [
            {
                "code_system": r.code_system,
                "code": r.code,
                "description": r.description,
                "rows": int(r.rows),
                "reason": r.reason,
            }
            for r in top.itertuples(index=False)
        ]
    return out


def _accepted(out_dir: Path) -> tuple[dict, dict, dict, int]:
    """Events per kind, date ranges per kind, outcomes per year, people, from accepted rows."""
    connection = duckdb.connect()
    events = str(out_dir / "events.parquet")
    patients = str(out_dir / "patients.parquet")
    kinds = connection.execute(
        "SELECT kind, count(*), min(start), max(start) FROM read_parquet(?) GROUP BY kind "
        "ORDER BY kind",
        [events],
    ).fetchall()
    years = connection.execute(
        "SELECT year(start) AS y, count(*) FROM read_parquet(?) WHERE kind = ? GROUP BY y",
        [events, EventKind.EMERGENCY_ADMISSION.value],
    ).fetchall()
    deaths = connection.execute(
        "SELECT year(death_date) AS y, count(*) FROM read_parquet(?) "
        "WHERE death_date IS NOT NULL GROUP BY y",
        [patients],
    ).fetchall()
    people = connection.execute(
        "SELECT count(*), min(registration_start), max(registration_start), min(birth_month) "
        "FROM read_parquet(?)",
        [patients],
    ).fetchall()[0]
    by_year: dict[str, dict[str, int]] = {}
    for label, counts in (("emergency_admissions", years), ("deaths", deaths)):
        for year, n in counts:
            by_year.setdefault(str(year), {"emergency_admissions": 0, "deaths": 0})
            by_year[str(year)][label] = int(n)
    ranges = {k: {"first": str(a), "last": str(b)} for k, _, a, b in kinds}
    ranges["registration_start"] = {"first": str(people[1]), "last": str(people[2])}
    ranges["birth_month"] = {"first": str(people[3]), "last": None}
    return (
        {k: int(n) for k, n, _, _ in kinds},
        ranges,
        dict(sorted(by_year.items())),
        int(people[0]),
    )


def build(
    mapped: Mapped,
    validation: ValidationReport,
    out_dir: Path,
    about: dict[str, object],
    thresholds: Thresholds,
) -> tuple[dict[str, object], Verdict]:
    """The report as a JSON-ready dict, and the verdict."""
    by_kind, ranges, per_year, people = _accepted(out_dir)
    facts = dict(mapped.ledger.facts)
    judged = verdict(by_kind.get(EventKind.EMERGENCY_ADMISSION.value, 0), people, thresholds)
    source_tables = _source_tables(mapped)
    report: dict[str, object] = {
        **about,
        **mapped.about,
        "source_tables": source_tables,
        "contract_tables": {t.table: asdict(t) for t in validation.tables},
        "events_by_kind": by_kind,
        "admissions": facts.pop("admissions", {}),
        "people": facts.pop("people", {}),
        "unmapped_codes": _unmapped_codes(mapped),
        "date_ranges": ranges,
        "outcomes_per_year": per_year,
        "other_counts": facts,
        "thresholds": asdict(thresholds),
        "verdict": asdict(judged),
        "reconciles": validation.reconciles
        and all(t["reconciles"] for t in source_tables.values()),
    }
    return report, judged


def write(report: dict[str, object], out_dir: Path) -> tuple[Path, Path]:
    """``quality_report.json`` and ``quality_report.md`` in ``out_dir``."""
    as_json = out_dir / "quality_report.json"
    as_json.write_text(json.dumps(report, indent=2, default=str) + "\n")
    as_md = out_dir / "quality_report.md"
    as_md.write_text(markdown(report))
    return as_json, as_md


def _table(headers: list[str], rows: list[list[object]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return [*lines, ""]


def markdown(report: dict[str, object]) -> str:
    """A readable rendering of the same report."""
    v = report["verdict"]
    lines = [
        f"# Data-quality report: {report['source']} extract",
        "",
        f"**Verdict.** {v['text']}.",
        "",
        f"Source: `{report.get('path')}`; extract date {report.get('extract_date')}; "
        f"pseudonymisation key fingerprint `{report.get('key_fingerprint')}`; counts reconcile: "
        f"{report['reconciles']}.",
        "",
        "## Source tables (rows in = mapped + ignored)",
        "",
    ]
    lines += _table(
        ["table", "rows in", "mapped", "ignored", "ignored by reason"],
        [
            [t, s["rows_in"], s["rows_mapped"], s["rows_ignored"], s["ignored_by_reason"] or ""]
            for t, s in report["source_tables"].items()
        ],
    )
    lines += ["## Contract tables (written = accepted + quarantined)", ""]
    lines += _table(
        ["table", "written", "accepted", "quarantined", "by reason"],
        [
            [t, c["read"], c["accepted"], c["quarantined"], c["by_reason"] or ""]
            for t, c in report["contract_tables"].items()
        ],
    )
    lines += ["## Accepted events by kind", ""]
    lines += _table(
        ["kind", "events", "first", "last"],
        [
            [k, n, report["date_ranges"][k]["first"], report["date_ranges"][k]["last"]]
            for k, n in report["events_by_kind"].items()
        ],
    )
    lines += ["## Admissions", "", "```", json.dumps(report["admissions"], indent=2), "```", ""]
    lines += ["## People", "", "```", json.dumps(report["people"], indent=2), "```", ""]
    lines += ["## Outcomes per year", ""]
    lines += _table(
        ["year", "emergency admissions", "deaths"],
        [
            [y, o["emergency_admissions"], o["deaths"]]
            for y, o in report["outcomes_per_year"].items()
        ],
    )
    lines += ["## Unmapped codes (most frequent first)", ""]
    for table, top in report["unmapped_codes"].items():
        lines += [f"**{table}**", ""]
        lines += _table(
            ["system", "code", "description", "rows", "reason"],
            [[c["code_system"], c["code"], c["description"], c["rows"], c["reason"]] for c in top],
        )
    lines += [
        f"Tables not used: {', '.join(report.get('tables_not_used', [])) or 'none'}.",
        "",
    ]
    return "\n".join(lines)
