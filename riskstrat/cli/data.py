"""Data in: ``validate`` contract tables, ``ingest`` an extract, compute ``features``."""

from __future__ import annotations

import time
from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from riskstrat.cli.options import (
    DATE,
    ContractData,
    EngineChoice,
    ExtractDate,
    command,
    config_option,
    make_engine,
    option,
    parse_date,
)
from riskstrat.cli.reporter import reporting, say

app = typer.Typer()


@command(
    app,
    "validate",
    "validate contract tables; quarantine bad rows",
    "riskstrat validate --data work/borough --out work/validated --extract-date 2026-10-31",
)
def cmd_validate(
    data: Annotated[Path, option("DIR", "folder of contract tables to validate")],
    out: Annotated[
        Path,
        option("DIR", "folder for the accepted tables, quarantine/ and validation_report.json"),
    ],
    extract_date: ExtractDate = None,
) -> None:
    """Validate contract tables: accept good rows, quarantine bad ones with their reason."""
    from riskstrat.contract.validation import validate_dir

    report = validate_dir(data, out, extract_date or date.today())
    for t in report.tables:
        say(
            f"{t.table}: read {t.read:,} = accepted {t.accepted:,} + quarantined "
            f"{t.quarantined:,} {t.by_reason or ''}"
        )
    say(f"validated tables, quarantine and report in {out}")


@command(
    app,
    "ingest",
    "map and link extracts into the contract; quality report",
    "riskstrat ingest --source omop --path EXTRACT --out work/ingested "
    "--key-file ~/keys/riskstrat.key",
    "riskstrat ingest --source hes=extracts/hes --source gp=extracts/gp --out work/ingested "
    "--extract-date 2026-10-31",
    "riskstrat ingest --manifest sources.toml --out work/ingested",
)
def cmd_ingest(
    out: Annotated[Path, option("DIR", "folder for the contract tables and the reports")],
    source: Annotated[
        list[str] | None,
        typer.Option(
            metavar="NAME[=PATH]",
            help="the extract's layout with --path, or NAME=PATH (repeat to link sources)",
            show_default=False,
        ),
    ] = None,
    path: Annotated[
        str | None,
        typer.Option(
            metavar="PATH", help="with one --source NAME: folder of CSV/Parquet, or duckdb:///file"
        ),
    ] = None,
    manifest: Annotated[
        Path | None,
        option("FILE", "TOML manifest: [sources.NAME] kind, path, id (instead of --source)"),
    ] = None,
    key_file: Annotated[
        Path | None,
        option("FILE", "pseudonymisation key file outside the data (else RISKSTRAT_PSEUDONYM_KEY)"),
    ] = None,
    practices: Annotated[
        Path | None, option("FILE", "CSV: practice_id, gp_cluster, locality")
    ] = None,
    extract_date: ExtractDate = None,
) -> None:
    """Map one extract, or link several, into validated, pseudonymised contract tables.

    Writes quality_report.md with a verdict: what the extract can support (train, evaluate,
    score) and why, per source the kinds it supplied and the people linked or set aside.
    """
    from riskstrat.sources.ingest.linkage import sources_given
    from riskstrat.sources.ingest.pipeline import ingest_sources

    sources = sources_given(source or [], path, manifest)
    with reporting() as progress:
        result = ingest_sources(
            sources,
            out,
            key_file=key_file,
            practices=practices,
            extract_date=extract_date,
            progress=progress,
        )
    report = result.report
    for table, counts in report["source_tables"].items():
        say(
            f"{table}: {counts['rows_in']:,} rows = {counts['rows_mapped']:,} mapped + "
            f"{counts['rows_ignored']:,} ignored {counts['ignored_by_reason'] or ''}"
        )
    if len(sources) > 1:
        for name, linked in report["sources"].items():
            say(
                f"{name}: {linked['people']:,} people, {linked['matched_to_registered']:,} "
                f"registered, {linked['not_registered']:,} not registered (set aside), "
                f"{linked['invalid_nhs_numbers']:,} invalid NHS numbers"
            )
    say(f"events by kind: {report['events_by_kind']}")
    say(f"verdict: {result.verdict.text}")
    for note in result.verdict.notes:
        say(f"note: {note}")
    say(f"contract tables, quarantine, unmapped rows and quality_report.md in {out}")
    if result.verdict.can_score and not result.verdict.can_train:
        say(f"next: riskstrat weekly --data {out} --as-of DATE --out LISTS (champion)")


@command(
    app,
    "features",
    "compute features as of one or more dates",
    "riskstrat features --data work/validated --as-of 2025-01-01 --out work/features.parquet",
    "riskstrat features --data work/validated --as-of 2024-10-01 --as-of 2025-01-01 "
    "--out work/features.parquet",
)
def cmd_features(
    data: ContractData,
    as_of: Annotated[
        list[date],
        typer.Option(
            parser=parse_date,
            metavar=DATE,
            help="as-of date: features use events before it (repeat for rolling snapshots)",
            show_default=False,
        ),
    ],
    out: Annotated[
        Path,
        option(
            "FILE", "Parquet file to write (the feature metadata goes beside it as .features.json)"
        ),
    ],
    engine: EngineChoice = None,
    config: Annotated[Path | None, config_option("an [engine] table")] = None,
) -> None:
    """Compute every feature for everyone registered and alive on each as-of date."""
    import json

    from riskstrat.contract.tables import ContractTables
    from riskstrat.features.engine import build_features, feature_specs

    began = time.perf_counter()
    with reporting() as progress:
        sources = ContractTables.from_dir(data, make_engine(engine, config))
        frame = build_features(sources, as_of, progress=progress)
    out.parent.mkdir(parents=True, exist_ok=True)
    frame.reset_index().to_parquet(out, index=False)
    specs = out.with_suffix(".features.json")
    specs.write_text(json.dumps([s.to_dict() for s in feature_specs()], indent=2))
    say(
        f"{len(frame):,} rows x {frame.shape[1]} features for {len(set(as_of))} as-of "
        f"date(s) in {time.perf_counter() - began:.1f} s -> {out} (metadata: {specs})"
    )
