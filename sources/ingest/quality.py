"""The data-quality report of one ingest (JSON for machines, Markdown for people).

It says, per source table, rows in = rows mapped + rows ignored (by reason); per contract
table, rows written = accepted + quarantined (by reason); per source, the event kinds it
supplied, their date span and what linkage did to its people; the unmapped codes by
frequency; date ranges; outcomes per year; and a verdict: what the extract can support
(train, evaluate, score), each with its reason, and what to do when the dates do not fit
the extract date (a date-shifted research extract, or data that ended long before).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pandas as pd

from riskstrat.contract.schema import EventKind
from riskstrat.contract.validation import ValidationReport
from riskstrat.sources.ingest import linkage
from riskstrat.sources.ingest.mapping import Mapped

TOP_CODES = 10
FUTURE = "future_date"
USES = ("train", "evaluate", "score")


@dataclass(frozen=True, slots=True, kw_only=True)
class Thresholds:
    """What an extract needs to train, evaluate and score, and when its dates do not fit.

    ``min_admissions_*``: emergency admissions (accepted, all years); ``max_share_after``:
    the share of events starting after the extract date above which the extract is taken
    for a date-shifted one; ``max_days_stale``: how long before the extract date the last
    event may lie before the scores are said to miss recent activity.
    """

    min_admissions_to_train: int = 100
    min_admissions_to_evaluate: int = 30
    max_share_after: float = 0.5
    max_days_stale: int = 92

    def __post_init__(self) -> None:
        if not 0 < self.min_admissions_to_evaluate <= self.min_admissions_to_train:
            raise ValueError("need 0 < min_admissions_to_evaluate <= min_admissions_to_train")
        if not 0 < self.max_share_after <= 1 or self.max_days_stale < 1:
            raise ValueError("need 0 < max_share_after <= 1 and max_days_stale >= 1")


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the extract can support, each use with its reason; ``text`` says it in one go and
    ``notes`` say what to do about the dates or the population before using it."""

    emergency_admissions: int
    people: int
    can_train: bool
    can_evaluate: bool
    text: str
    can_score: bool = True
    reasons: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


def verdict(admissions: int, people: int, thresholds: Thresholds) -> Verdict:
    """The verdict from the emergency admissions alone (dates that fit, admissions supplied)."""
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
    can_train = admissions >= t.min_admissions_to_train
    can_evaluate = admissions >= t.min_admissions_to_evaluate
    reasons = {
        "train": f"{admissions:,} emergency admissions; training needs {t.min_admissions_to_train}",
        "evaluate": f"{admissions:,} emergency admissions; evaluation needs "
        f"{t.min_admissions_to_evaluate}",
        "score": f"{people:,} people registered: the champion can score them",
    }
    return Verdict(admissions, people, can_train, can_evaluate, text, True, reasons)


@dataclass(frozen=True, slots=True)
class Dates:
    """How the extract's dates sit against the extract date."""

    extract_date: date
    events: int  # written to the contract
    after: int  # quarantined for starting after the extract date
    first: date | None  # first and last start of all events written
    last: date | None
    last_accepted: date | None


def _dating(dates: Dates, t: Thresholds) -> tuple[str | None, str | None]:
    """A note when the dates do not fit (shifted, or stale), and which of the two."""
    if dates.events and dates.after / dates.events >= t.max_share_after:
        share = dates.after / dates.events
        return (
            f"{dates.after:,} of {dates.events:,} events ({share:.0%}) start after the "
            f"extract date {dates.extract_date} (the events run from {dates.first} to "
            f"{dates.last}): a date-shifted research extract? Run again with --extract-date "
            f"{dates.last}",
            "shifted",
        )
    last = dates.last_accepted
    if last is not None and dates.extract_date - last > timedelta(days=t.max_days_stale):
        days = (dates.extract_date - last).days
        return (
            f"the events end on {last}, {days:,} days before the extract date "
            f"{dates.extract_date}: scores as of then would miss everything since; run again "
            f"with --extract-date {last}, or ingest a newer extract",
            "stale",
        )
    return None, None


def judge(
    admissions: int,
    people: int,
    supplied: set[str],
    dates: Dates,
    thresholds: Thresholds,
    notes: tuple[str, ...] = (),
) -> Verdict:
    """The verdict: train, evaluate and score, each with its reason, and what to do."""
    base = verdict(admissions, people, thresholds)
    reasons = dict(base.reasons)
    can = {"train": base.can_train, "evaluate": base.can_evaluate, "score": people > 0}
    lead = base.text
    if EventKind.EMERGENCY_ADMISSION.value not in supplied:
        missing = "no source supplies emergency admissions (add a hospital source: hes)"
        reasons["train"] = reasons["evaluate"] = missing
        lead = f"{missing}: scoring with the existing champion only"
    if people == 0:
        reasons["score"] = "nobody registered was accepted: nothing to score"
    dating, how = _dating(dates, thresholds)
    if how == "shifted":
        reasons = {use: dating for use in USES} if dates.last_accepted is None else reasons
        if dates.last_accepted is None:
            can = dict.fromkeys(USES, False)
        lead = dating
    elif how == "stale":
        reasons["score"] = f"{reasons['score']}, but {dating}"
        notes = (dating, *notes)
    return Verdict(
        admissions,
        people,
        can["train"],
        can["evaluate"],
        lead,
        can["score"],
        reasons,
        notes,
    )


def _source_tables(mapped: Mapped) -> dict[str, dict[str, object]]:
    ignored = mapped.ledger.ignored_frame()
    produced = mapped.events.groupby("source_table")["source_row"].nunique()
    merged = dict.fromkeys(linkage.PERSON_TABLES, len(mapped.patients))
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


def _dates(linked: linkage.Linked, validation: ValidationReport, last_accepted: str) -> Dates:
    events = next(t for t in validation.tables if t.table == "events")
    starts = pd.to_datetime(linked.events["start"]).dropna()
    return Dates(
        extract_date=date.fromisoformat(validation.extract_date),
        events=events.read,
        after=events.by_reason.get(FUTURE, 0),
        first=None if starts.empty else starts.min().date(),
        last=None if starts.empty else starts.max().date(),
        last_accepted=None
        if last_accepted in ("None", "NaT")
        else date.fromisoformat(last_accepted),
    )


def _per_source(
    linked: linkage.Linked, extract_date: date, several: bool
) -> dict[str, dict[str, object]]:
    """Per source: its kind, ids, the kinds it supplied, their span, and its people."""
    people = linkage.person_counts(linked.links)
    out: dict[str, dict[str, object]] = {}
    for item in linked.links:
        kinds, span = linkage.supplies(item.mapped.events)
        starts = pd.to_datetime(item.mapped.events["start"])
        out[item.source.name] = {
            "kind": item.source.kind,
            "path": item.source.path,
            "id": item.source.id,
            "supplies_registrations": item.source.registrations,
            "event_kinds": kinds,
            "date_span": span,
            "events_after_extract_date": int((starts > pd.Timestamp(extract_date)).sum()),
            **people[item.source.name],
            **({"about": item.mapped.about} if several else {}),
        }
    return out


def _keyed(name: str, table: str, several: bool) -> str:
    return f"{name}/{table}" if several else table


def build(
    linked: linkage.Linked,
    validation: ValidationReport,
    out_dir: Path,
    about: dict[str, object],
    thresholds: Thresholds,
) -> tuple[dict[str, object], Verdict]:
    """The report as a JSON-ready dict, and the verdict."""
    by_kind, ranges, per_year, people = _accepted(out_dir)
    several = len(linked.links) > 1
    source_tables: dict[str, dict[str, object]] = {}
    unmapped: dict[str, list[dict[str, object]]] = {}
    facts: dict[str, dict[str, object]] = {}
    for item in linked.links:
        name = item.source.name
        for table, counts in _source_tables(item.mapped).items():
            source_tables[_keyed(name, table, several)] = counts
        for table, codes in _unmapped_codes(item.mapped).items():
            unmapped[_keyed(name, table, several)] = codes
        facts[name] = dict(item.mapped.ledger.facts)
    sources = _per_source(linked, date.fromisoformat(validation.extract_date), several)
    supplied = {k for s in sources.values() for k in s["event_kinds"]}  # type: ignore[attr-defined]
    notes = ()
    if several and not linked.registered_from:
        notes = (
            "no source supplies GP registrations: the registered population is everyone in "
            "any source",
        )
    last_accepted = max((r["last"] for k, r in ranges.items() if k in by_kind), default="None")
    judged = judge(
        by_kind.get(EventKind.EMERGENCY_ADMISSION.value, 0),
        people,
        supplied,
        _dates(linked, validation, last_accepted),
        thresholds,
        notes,
    )
    first = linked.links[0]
    described = (
        first.mapped.about
        if not several
        else {
            "source": " + ".join(i.source.name for i in linked.links),
            "tables_not_used": [],
        }
    )
    only = facts[first.source.name] if not several else {}
    report: dict[str, object] = {
        **about,
        **described,
        "sources": sources,
        "linkage": linked.summary(),
        "source_tables": source_tables,
        "contract_tables": {t.table: asdict(t) for t in validation.tables},
        "events_by_kind": by_kind,
        "admissions": only.pop("admissions", {}) if not several else _fact(facts, "admissions"),
        "people": only.pop("people", {}) if not several else _fact(facts, "people"),
        "unmapped_codes": unmapped,
        "date_ranges": ranges,
        "outcomes_per_year": per_year,
        "other_counts": only if not several else facts,
        "thresholds": asdict(thresholds),
        "verdict": asdict(judged),
        "reconciles": validation.reconciles
        and all(t["reconciles"] for t in source_tables.values()),
    }
    return report, judged


def _fact(facts: dict[str, dict[str, object]], name: str) -> dict[str, object]:
    """One ledger fact per source that has it (taken out of the source's other counts)."""
    return {source: mine.pop(name) for source, mine in facts.items() if name in mine}


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
        *(f"- **Note.** {note}." for note in v["notes"]),
        *([""] if v["notes"] else []),
        f"Source: `{report.get('path')}`; extract date {report.get('extract_date')}; "
        f"pseudonymisation key fingerprint `{report.get('key_fingerprint')}`; counts reconcile: "
        f"{report['reconciles']}.",
        "",
    ]
    lines += ["## What the extract can support", ""]
    lines += _table(
        ["use", "possible", "why"],
        [[use, v[f"can_{use}"], v["reasons"].get(use, "")] for use in USES],
    )
    lines += [
        "## Sources",
        "",
        f"Registered population: {report['linkage']['registered_population']}.",
        "",
    ]
    lines += _table(
        [
            "source",
            "kind",
            "event kinds supplied",
            "first",
            "last",
            "people",
            "matched",
            "not registered (set aside)",
            "invalid NHS numbers",
        ],
        [
            [
                name,
                s["kind"],
                ", ".join(s["event_kinds"]) or "none",
                s["date_span"]["first"],
                s["date_span"]["last"],
                s["people"],
                s["matched_to_registered"],
                s["not_registered"],
                s["invalid_nhs_numbers"],
            ]
            for name, s in report["sources"].items()
        ],
    )
    lines += [
        f"People in several sources: {report['linkage']['people_in_several_sources']}; "
        f"patients fields the sources disagree on (people): "
        f"{report['linkage']['patients_disagreements'] or 'none'}.",
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
