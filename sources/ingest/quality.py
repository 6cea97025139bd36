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
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd

from riskstrat.common.months import month_start
from riskstrat.contract.schema import EventKind
from riskstrat.contract.validation import ValidationReport
from riskstrat.features.catalogue import LOOKBACK_DAYS
from riskstrat.features.labels import HORIZON_DAYS, labelled_by
from riskstrat.features.window import history_start
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


def verdict(
    admissions: int,
    people: int,
    thresholds: Thresholds,
    *,
    trainable: int | None = None,
    evaluable: int | None = None,
    why_not: str | None = None,
) -> Verdict:
    """The verdict from the emergency admissions: ``trainable`` of them where training can
    learn from them, ``evaluable`` around a possible go-live (both default to all of them);
    ``why_not`` says in a few words why fewer are trainable than supplied."""
    t = thresholds
    train = admissions if trainable is None else trainable
    evaluate = admissions if evaluable is None else evaluable
    can_train = train >= t.min_admissions_to_train
    can_evaluate = evaluate >= t.min_admissions_to_evaluate
    usable = f"{train:,} of them where training can use them" if train != admissions else ""
    if can_train:
        text = (
            f"{admissions:,} emergency admissions among {people:,} people"
            + (f", {usable}" if usable else "")
            + f": enough to train (at least {t.min_admissions_to_train})"
            + (" and to evaluate" if can_evaluate else ", too few around a go-live to evaluate")
        )
    else:
        why = why_not or usable
        needs = (
            f"{why}; needs {t.min_admissions_to_train}"
            if why
            else (f"needs {t.min_admissions_to_train}")
        )
        text = f"{admissions:,} emergency admissions: too few to train ({needs})"
        if can_evaluate:
            text += "; enough to evaluate the existing champion, scoring with it"
        else:
            text += (
                f" or to evaluate (needs {t.min_admissions_to_evaluate}); "
                "scoring with the existing champion only"
            )
    reasons = {
        "train": f"{train:,} emergency admissions; training needs {t.min_admissions_to_train}",
        "evaluate": f"{evaluate:,} emergency admissions; evaluation needs "
        f"{t.min_admissions_to_evaluate}",
        "score": f"{people:,} people registered: the champion can score them",
    }
    return Verdict(admissions, people, can_train, can_evaluate, text, True, reasons)


# Problem-list diagnoses carry the date first recorded, often years before the extract
# begins: they say nothing about the period the extract covers.
UNDATED_HISTORY = frozenset({EventKind.LTC_DIAGNOSIS.value})
OUTCOME = EventKind.EMERGENCY_ADMISSION.value


def _month(day: date) -> int:
    return day.year * 12 + day.month - 1


def _label(index: int) -> str:
    return f"{index // 12:04d}-{index % 12 + 1:02d}"


@dataclass(frozen=True, slots=True)
class Span:
    """A stretch of calendar months over which a kind's events run without a long gap."""

    kind: str
    first: date
    last: date

    @property
    def months(self) -> range:
        return range(_month(self.first), _month(self.last) + 1)

    def __str__(self) -> str:
        return f"{self.kind} {_label(_month(self.first))}..{_label(_month(self.last))}"


def spans(kind: str, days: list[date], gap_days: int) -> list[Span]:
    """The stretches of ``days`` (sorted) that no gap of more than ``gap_days`` breaks: a
    file's own period, without the stray early dates of records that began before it."""
    out: list[Span] = []
    for day in days:
        if out and (day - out[-1].last).days <= gap_days:
            out[-1] = Span(kind, out[-1].first, day)
        else:
            out.append(Span(kind, day, day))
    return out


def _covers(months: set[int], start: date, end: date) -> bool:
    """Every month from ``start``'s to the one holding the day before ``end`` is covered."""
    return all(m in months for m in range(_month(start), _month(end - timedelta(days=1)) + 1))


@dataclass(frozen=True, slots=True)
class Coverage:
    """What the extract's dates can support, counted the way training and evaluation use
    them: as-of dates are month starts (as training's); an as-of date is trainable when the
    other kinds cover the features' look-back before it (``features.window.history_start``
    with ``features.catalogue.LOOKBACK_DAYS``) and its outcome window ends on or before the
    extract date (``features.labels.labelled_by``, ``HORIZON_DAYS``)."""

    spans: tuple[Span, ...]
    admissions: tuple[date, ...]  # starts of the accepted emergency admissions
    extract_date: date
    lookback_days: int = LOOKBACK_DAYS
    horizon_days: int = HORIZON_DAYS

    def _candidates(self) -> list[date]:
        if not self.admissions:
            return []
        first = month_start(min(self.admissions), -(self.horizon_days // 28 + 1))
        return [
            month_start(first, m) for m in range(_month(max(self.admissions)) - _month(first) + 1)
        ]

    def history(self) -> set[int]:
        """The months some kind other than the outcome covers."""
        return {
            m
            for s in self.spans
            if s.kind != OUTCOME and s.kind not in UNDATED_HISTORY
            for m in s.months
        }

    def trainable(self) -> int:
        """Admissions in the outcome window of some trainable as-of date."""
        history = self.history()
        valid = [
            a
            for a in self._candidates()
            if labelled_by(a, self.horizon_days, self.extract_date)
            and _covers(history, history_start(a, self.lookback_days), a)
        ]
        window = timedelta(days=self.horizon_days)
        return sum(any(a <= day < a + window for a in valid) for day in self.admissions)

    def evaluable(self) -> tuple[int, date | None]:
        """The most admissions within a horizon either side of a possible go-live whose
        both sides the emergency admissions cover, and that go-live."""
        outcome = {m for s in self.spans if s.kind == OUTCOME for m in s.months}
        best: tuple[int, date | None] = (0, None)
        for g in self._candidates():
            before = history_start(g, self.horizon_days)
            after = g + timedelta(days=self.horizon_days)
            if not labelled_by(g, self.horizon_days, self.extract_date):
                continue
            if not _covers(outcome, before, after):
                continue
            n = sum(before <= day < after for day in self.admissions)
            best = max(best, (n, g), key=lambda b: b[0])
        return best

    def listed(self, kinds: set[str] | None = None) -> str:
        """Each kind's longest stretch (of ``kinds``, default all), for a sentence."""
        longest: dict[str, Span] = {}
        for s in self.spans:
            if kinds is None or s.kind in kinds:
                held = longest.get(s.kind)
                if held is None or len(s.months) > len(held.months):
                    longest[s.kind] = s
        return ", ".join(str(longest[k]) for k in sorted(longest))


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


def _reasons(coverage: Coverage, admissions: int, t: Thresholds) -> tuple[dict[str, str], str]:
    """Why training and evaluation can or cannot use the admissions, one sentence each, and
    the few words the verdict's text gives when dates alone stop training."""
    trainable = coverage.trainable()
    evaluable, go_live = coverage.evaluable()
    days = f"{coverage.lookback_days} days of history"
    horizon = f"the {coverage.horizon_days}-day horizon"
    outcome = coverage.listed({OUTCOME})
    others = coverage.listed(set(s.kind for s in coverage.spans) - {OUTCOME} - UNDATED_HISTORY)
    if trainable == 0 and admissions:
        why = (
            f"emergency admissions cover {outcome.removeprefix(OUTCOME + ' ')}, the other "
            f"kinds {others or 'nothing'}: no period holds both {days} and "
            f"{horizon} after it ending by the extract date {coverage.extract_date}"
        )
        train = f"no emergency admission can be learnt from: {why}"
    else:
        why = ""
        train = (
            f"{trainable:,} of {admissions:,} emergency admissions fall within {horizon} after "
            f"an as-of date with {days} before it and labels known by the extract date; "
            f"training needs {t.min_admissions_to_train}"
        )
    if go_live is None:
        evaluate = (
            f"{outcome or 'no emergency admissions'}: no possible go-live has {horizon} of "
            "emergency admissions both before and after it by the extract date"
        )
    else:
        evaluate = (
            f"{evaluable:,} emergency admissions within {horizon} either side of a possible "
            f"go-live on {go_live}; evaluation needs {t.min_admissions_to_evaluate}"
        )
    return {"train": train, "evaluate": evaluate}, why


def judge(
    coverage: Coverage,
    people: int,
    supplied: set[str],
    dates: Dates,
    thresholds: Thresholds,
    notes: tuple[str, ...] = (),
) -> Verdict:
    """The verdict: train, evaluate and score, each with its reason, and what to do."""
    admissions = len(coverage.admissions)
    explained, why = _reasons(coverage, admissions, thresholds)
    base = verdict(
        admissions,
        people,
        thresholds,
        trainable=coverage.trainable(),
        evaluable=coverage.evaluable()[0],
        why_not=why or None,
    )
    reasons = {**base.reasons, **explained}
    history = coverage.listed()
    can = {
        "train": base.can_train,
        "evaluate": base.can_evaluate,
        "score": people > 0 and dates.last_accepted is not None,
    }
    if history:
        reasons["score"] = (
            f"{people:,} people registered, with history before the extract date "
            f"({history}): the champion can score them"
        )
    lead = base.text
    if EventKind.EMERGENCY_ADMISSION.value not in supplied:
        missing = "no source supplies emergency admissions (add a hospital source: hes)"
        reasons["train"] = reasons["evaluate"] = missing
        lead = f"{missing}: scoring with the existing champion only"
    if people == 0:
        reasons["score"] = "nobody registered was accepted: nothing to score"
    elif dates.last_accepted is None:
        reasons["score"] = "no event before the extract date: nothing to compute features from"
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


def _coverage(out_dir: Path, extract_date: date, gap_days: int) -> Coverage:
    """The accepted events' stretches per kind and the emergency admissions' starts."""
    connection = duckdb.connect()
    events = str(out_dir / "events.parquet")
    days = connection.execute(
        "SELECT DISTINCT kind, start FROM read_parquet(?) ORDER BY kind, start", [events]
    ).fetchall()
    starts = connection.execute(
        "SELECT start FROM read_parquet(?) WHERE kind = ? ORDER BY start", [events, OUTCOME]
    ).fetchall()
    by_kind: dict[str, list[date]] = {}
    for kind, start in days:
        by_kind.setdefault(kind, []).append(_day(start))
    return Coverage(
        spans=tuple(s for kind, found in by_kind.items() for s in spans(kind, found, gap_days)),
        admissions=tuple(_day(start) for (start,) in starts),
        extract_date=extract_date,
    )


def _day(value: date) -> date:
    return value.date() if isinstance(value, datetime) else value


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
        _coverage(out_dir, date.fromisoformat(validation.extract_date), thresholds.max_days_stale),
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
