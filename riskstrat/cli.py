"""The ``riskstrat`` command: thin subcommands that parse arguments and call plain functions.

Heavy libraries are imported inside each command, so ``riskstrat --help`` stays fast.
Logging, the MLflow tracking URI and folders are set up here, never on import.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

TRACKING_ENV = "MLFLOW_TRACKING_URI"
BENTOML_HOME_ENV = "BENTOML_HOME"


if TYPE_CHECKING:
    from serving.weekly.run import WeeklyResult


def say(message: str) -> None:
    print(f"[riskstrat] {message}", flush=True)


def tracking_uri(workdir: Path) -> str:
    """``MLFLOW_TRACKING_URI`` if set, else a SQLite database in the work folder.

    BentoML's model store (where promotion copies the champion) likewise defaults to
    ``WORKDIR/bentoml`` unless ``BENTOML_HOME`` is set.
    """
    os.environ.setdefault(BENTOML_HOME_ENV, str((workdir / "bentoml").resolve()))
    return os.environ.get(TRACKING_ENV) or f"sqlite:///{(workdir / 'mlflow.db').resolve()}"


def _date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a date (YYYY-MM-DD): {text!r}") from exc


def cmd_synth(args: argparse.Namespace) -> None:
    from features.sources.synthetic.borough import generate, write
    from features.sources.synthetic.config import SynthConfig

    config = SynthConfig(
        patients=args.patients,
        seed=args.seed,
        start=args.start,
        end=args.end,
        truth_as_of=tuple(args.truth_as_of),
    )
    borough = generate(config, progress=say if args.verbose else None)
    write(borough, args.out)
    s = borough.summary
    say(
        f"synthetic borough: {s['people_ever_registered']:,} people, {s['events']:,} events "
        f"in {s['seconds']} s -> {args.out}"
    )
    for t in s["truth"]:
        say(
            f"  as of {t['as_of']}: 12-month emergency admission rate "
            f"{t['observed_prevalence']:.1%}, "
            f"oracle AUROC {t['oracle_auroc']:.3f}"
        )


def cmd_validate(args: argparse.Namespace) -> None:
    from features.validation import validate_dir

    report = validate_dir(args.data, args.out, args.extract_date)
    for t in report.tables:
        say(
            f"{t.table}: read {t.read:,} = accepted {t.accepted:,} + quarantined "
            f"{t.quarantined:,} {t.by_reason or ''}"
        )
    say(f"validated tables, quarantine and report in {args.out}")


def cmd_ingest(args: argparse.Namespace) -> None:
    """Map an OMOP, Synthea or contract extract into validated, pseudonymised contract tables."""
    from features.sources.ingest.pipeline import ingest

    result = ingest(
        args.source,
        args.path,
        args.out,
        key_file=args.key_file,
        practices=args.practices,
        extract_date=args.extract_date,
    )
    report = result.report
    for table, counts in report["source_tables"].items():
        say(
            f"{table}: {counts['rows_in']:,} rows = {counts['rows_mapped']:,} mapped + "
            f"{counts['rows_ignored']:,} ignored {counts['ignored_by_reason'] or ''}"
        )
    say(f"events by kind: {report['events_by_kind']}")
    say(f"verdict: {result.verdict.text}")
    say(f"contract tables, quarantine, unmapped rows and quality_report.md in {args.out}")
    if not result.verdict.can_train:
        say(f"next: riskstrat weekly --data {args.out} --as-of DATE --out LISTS (champion)")


def _ingest_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ingest", help="map an OMOP, Synthea or contract extract; quality report")
    p.add_argument("--source", required=True, choices=["omop", "synthea", "contract"])
    p.add_argument(
        "--path", required=True, help="folder of CSV/Parquet files, or duckdb:///file.duckdb"
    )
    p.add_argument("--out", type=Path, required=True, help="folder for the contract tables")
    p.add_argument(
        "--key-file",
        type=Path,
        help="pseudonymisation key file outside the data (else RISKSTRAT_PSEUDONYM_KEY)",
    )
    p.add_argument("--practices", type=Path, help="CSV: practice_id, gp_cluster, locality")
    p.add_argument("--extract-date", type=_date, help="dates after this are in the future")
    p.set_defaults(func=cmd_ingest)


def cmd_features(args: argparse.Namespace) -> None:
    import json

    from features.engine import build_features, feature_specs
    from features.tables import ContractTables

    began = time.perf_counter()
    frame = build_features(ContractTables.from_dir(args.data), args.as_of)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    frame.reset_index().to_parquet(args.out, index=False)
    specs = args.out.with_suffix(".features.json")
    specs.write_text(json.dumps([s.to_dict() for s in feature_specs()], indent=2))
    say(
        f"{len(frame):,} rows x {frame.shape[1]} features for {len(set(args.as_of))} as-of "
        f"date(s) in {time.perf_counter() - began:.1f} s -> {args.out} (metadata: {specs})"
    )


def cmd_bench_features(args: argparse.Namespace) -> None:
    """Time the feature engine on a borough and on a region of copies; figures to JSON."""
    import json

    from features.benchmark import make_region, measure_in_child

    four = [_months_before(args.as_of, 3 * q) for q in range(4)]
    args.out.mkdir(parents=True, exist_ok=True)
    say(f"building a region of {args.region_copies} copies of {args.data}")
    region = make_region(args.data, args.out / "region", args.region_copies)
    figures = {}
    for label, folder in (("borough", args.data), ("region", region)):
        for dates in ([args.as_of], four):
            key = f"{label}_{len(dates)}_as_of"
            say(f"measuring {key}")
            figures[key] = measure_in_child(folder, dates)
            say(f"  {figures[key]}")
    (args.out / "bench_features.json").write_text(json.dumps(figures, indent=2))
    say(f"figures in {args.out / 'bench_features.json'}")


def _months_before(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 - months
    return date(index // 12, index % 12 + 1, day.day)


def cmd_train(args: argparse.Namespace) -> None:
    from training.config import TrainConfig
    from training.pipeline import train_from_contract, train_from_table

    config = TrainConfig.from_toml(args.config) if args.config else TrainConfig()
    report = args.report or args.workdir / "report"
    common = {
        "tracking_uri": tracking_uri(args.workdir),
        "artifact_root": args.workdir / "mlartifacts",
        "report_dir": report,
        "progress": say,
    }
    if args.features:
        if not args.label:
            raise ValueError("--features needs --label COLUMN")
        result = train_from_table(
            args.features, args.label, config, group=args.group, time=args.time, **common
        )
    else:
        result = train_from_contract(args.data, config, truth_path=args.truth, **common)
    _print_training(result.metrics)
    say(f"registered admission-risk version {result.run.model_version} as challenger")
    say(f"report and model card: {result.report_dir}")
    if args.data:
        say(f"to compare with the champion: riskstrat promote --data {args.data}")


def _print_training(metrics: dict) -> None:
    line = (
        f"out-of-time AUROC {metrics['auroc']:.3f} "
        f"(95% CI {metrics['auroc_ci_low']:.3f}-{metrics['auroc_ci_high']:.3f})"
    )
    if "oracle_auroc" in metrics:
        line += f"; oracle AUROC {metrics['oracle_auroc']:.3f} (the best any model can do)"
    say(line)
    prior = metrics.get("baseline_prior_admissions_auroc")
    say(
        f"baselines: logistic regression {metrics['baseline_logistic_auroc']:.3f}"
        + (f", prior admissions {prior:.3f}" if prior is not None else "")
        + f"; calibration slope {metrics['calibration_slope']:.2f}, in the large "
        f"{metrics['calibration_intercept']:+.3f}"
    )


def cmd_promote(args: argparse.Namespace) -> None:
    from training.promote import promote

    decision = promote(args.data, tracking_uri(args.workdir), seed=args.seed)
    say(decision.explain())
    if not decision.promoted:
        raise SystemExit(1)


def cmd_weekly(args: argparse.Namespace) -> None:
    """The main job for locality teams: score, compare with last week, explain, write."""
    from serving.weekly.config import WeeklyConfig
    from serving.weekly.pathways import DEFAULT_RULES, load_rules

    rules = load_rules(args.rules or DEFAULT_RULES)
    if args.check_rules:
        say(f"{args.rules or DEFAULT_RULES}: {len(rules.rules)} rules, all valid")
        return
    if args.data is None or args.as_of is None or args.out is None:
        raise ValueError("weekly needs --data, --as-of and --out (or --check-rules)")
    from models.store import load_champion
    from serving.weekly.run import weekly_run

    config = WeeklyConfig.from_toml(args.config) if args.config else WeeklyConfig()
    model = load_champion(tracking_uri(args.workdir))
    result = weekly_run(args.data, args.as_of, model, args.out, config, rules, say)
    _say_week(result)


def _say_week(result: WeeklyResult) -> None:
    counts = result.manifest["counts"]
    say(
        f"scored {counts['scored']:,} people with model version "
        f"{result.manifest['model']['version']}; listed {counts['listed']:,} "
        f"(new {counts['new']:,}, stayed {counts['stayed']:,}, left {counts['left']:,}) "
        f"in {sum(result.seconds.values()):.1f} s"
    )
    say(f"model check: {result.manifest['drift']['verdict']}")
    say(f"lists in {result.folder}")


def cmd_bench_weekly(args: argparse.Namespace) -> None:
    """Time two consecutive weekly runs (the second compares with the first); JSON figures."""
    import json
    import resource

    from models.store import load_champion
    from serving.weekly.run import weekly_run

    model = load_champion(tracking_uri(args.workdir))
    figures: dict = {"model_version": model.version}
    for week in (args.as_of - timedelta(days=7), args.as_of):
        began = time.perf_counter()
        result = weekly_run(args.data, week, model, args.out / "lists", progress=say)
        figures[week.isoformat()] = {
            "seconds": round(time.perf_counter() - began, 1),
            "stages": result.seconds,
            "scored": result.scored,
            "listed": result.listed,
            "explained": result.manifest["counts"]["explained"],
        }
        say(f"  {figures[week.isoformat()]}")
    figures["peak_memory_gib"] = round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2
    )
    (args.out / "bench_weekly.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))


def cmd_referrals(args: argparse.Namespace) -> None:
    """The social prescribing filter over a week's list; matches to CSV with their reasons."""
    from serving.weekly.referrals import ReferralCriteria, load_criteria, select_referrals
    from serving.weekly.store import WeekStore

    store = WeekStore(args.lists)
    week = store.choose(args.week)
    base = load_criteria(args.criteria) if args.criteria else ReferralCriteria()
    changes = dict(item.split("=", 1) for item in args.set)
    if args.locality:
        changes["localities"] = ",".join(args.locality)
    values = {f: getattr(base, f) for f in base.__dataclass_fields__} | changes
    criteria = ReferralCriteria.from_mapping(values, "command line")
    people = store.people(week)
    chosen = select_referrals(people, criteria)
    columns = [
        "rank",
        "patient_id",
        "practice_id",
        "gp_cluster",
        "locality",
        "age_band",
        "sex",
        "risk",
        "tier",
        "matched",
        "pathway",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    chosen[columns].to_csv(args.out, index=False, lineterminator="\n")
    say(f"{len(chosen):,} people match in the week of {week}: {args.out}")


def cmd_token(args: argparse.Namespace) -> None:
    """Create a bearer token, store only its hash, and print it once."""
    import json
    import secrets

    from serving.access import token_digest

    token = secrets.token_urlsafe(32)
    entry = {
        "name": args.name,
        "role": args.role,
        "sha256": token_digest(token),
    }
    if args.locality:
        entry["localities"] = args.locality
    args.access.parent.mkdir(parents=True, exist_ok=True)
    lines = ["", "[[token]]", *(f"{k} = {json.dumps(v)}" for k, v in entry.items())]
    with args.access.open("a", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    say(f"{args.role} token for {args.name} added to {args.access}; it is shown only now:")
    print(token)


def cmd_serve(args: argparse.Namespace) -> None:
    access = args.access or args.workdir / "access.toml"
    if not access.exists():
        raise FileNotFoundError(
            f"{access}: no access file; create a token first: riskstrat token --name NAME "
            f"--role system --access {access}"
        )
    from serving.settings import ServiceSettings

    settings = ServiceSettings.load(
        tracking_uri=tracking_uri(args.workdir),
        access_file=access.resolve(),
        audit_log=(args.workdir / "audit.jsonl").resolve(),
    )
    # The web pages and list endpoints read what `riskstrat demo` or `weekly` wrote there.
    settings = settings.or_else(
        weekly_dir=(args.workdir / "lists").resolve(),
        data_dir=(args.workdir / "validated").resolve(),
    )
    env = settings.environment(os.environ) | {"BENTOML_DO_NOT_TRACK": "True"}
    command = [
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        "serving.service:RiskService",
        "--port",
        str(args.port),
        "--host",
        args.host,
    ]
    say(f"serving on http://{args.host}:{args.port} (OpenAPI at /docs.json); Ctrl-C stops")
    raise SystemExit(subprocess.call(command, env=env))


def cmd_demo(args: argparse.Namespace) -> None:
    """The main job on the synthetic borough: generate, validate, train, list."""
    from features.sources.synthetic.borough import TRUTH_DIR, generate, write
    from features.sources.synthetic.config import SynthConfig
    from features.validation import validate_dir
    from models.store import load_champion
    from serving.weekly.run import weekly_run
    from serving.weekly.store import latest_monday
    from training.config import TrainConfig
    from training.pipeline import train_from_contract
    from training.promote import promote

    began = time.perf_counter()
    work = args.workdir
    train = TrainConfig(seed=args.seed)
    synth = SynthConfig(patients=args.patients, seed=args.seed, truth_as_of=(train.test_as_of,))
    say(f"1/4 generating a synthetic borough of {args.patients:,} people (seed {args.seed})")
    borough = generate(synth)
    write(borough, work / "borough")
    say(f"    {borough.summary['events']:,} events in {borough.summary['seconds']} s")
    say("2/4 validating the contract tables")
    report = validate_dir(work / "borough", work / "validated", synth.end)
    say(
        f"    {sum(t.accepted for t in report.tables):,} rows accepted, "
        f"{sum(t.quarantined for t in report.tables):,} quarantined; counts reconcile: "
        f"{report.reconciles}"
    )
    say("3/4 training, testing out of time, registering in MLflow, promotion gate")
    result = train_from_contract(
        work / "validated",
        train,
        tracking_uri=tracking_uri(work),
        artifact_root=work / "mlartifacts",
        report_dir=work / "report",
        truth_path=work / "borough" / TRUTH_DIR / "truth.parquet",
        progress=lambda m: say("    " + m),
    )
    decision = promote(work / "validated", tracking_uri(work), seed=args.seed)
    say(f"    promotion gate: {decision.explain()}")
    if not decision.promoted and decision.champion_version is None:
        raise ValueError(f"no champion to score with: {decision.explain()} (try more --patients)")
    as_of = latest_monday(synth.end)
    model = load_champion(tracking_uri(work))
    for week in (as_of - timedelta(days=7), as_of):
        say(f"4/4 weekly risk lists as of {week} (champion)")
        weekly = weekly_run(work / "validated", week, model, work / "lists", progress=say)
    say(f"done in {time.perf_counter() - began:.0f} s")
    _print_training(result.metrics)
    say(f"admission-risk {decision.explain()}")
    say(f"evaluation report and model card: {result.report_dir}")
    _say_week(weekly)
    say(f"MLflow runs: .venv/bin/mlflow ui --backend-store-uri {tracking_uri(work)}")
    say(
        f"start the scoring service: .venv/bin/riskstrat token --name me --role system "
        f"--access {work / 'access.toml'} && .venv/bin/riskstrat serve --workdir {work}"
    )


def cmd_bench_synth(args: argparse.Namespace) -> None:
    """Time the generator at full size; print and save the figures as JSON."""
    import json
    import resource

    from features.sources.synthetic.borough import generate, write
    from features.sources.synthetic.config import SynthConfig

    began = time.perf_counter()
    borough = generate(SynthConfig(patients=args.patients, seed=args.seed))
    generated = time.perf_counter() - began
    write(borough, args.out)
    figures = {
        "patients": args.patients,
        "events": borough.summary["events"],
        "generate_seconds": round(generated, 1),
        "generate_and_write_seconds": round(time.perf_counter() - began, 1),
        "peak_memory_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "truth": borough.summary["truth"],
        "yearly_rate_per_person": borough.summary["yearly_rate_per_person"],
        "yearly_death_rate": borough.summary["yearly_death_rate"],
    }
    (args.out / "bench_synth.json").write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))


def cmd_bench_serve(args: argparse.Namespace) -> None:
    """Load-test the service on loopback; print and save the figures."""
    import json

    from features.engine import build_features
    from features.tables import ContractTables
    from models.store import load_champion
    from serving.benchmark import run

    uri = tracking_uri(args.workdir)
    champion = load_champion(uri)
    features = build_features(ContractTables.from_dir(args.data), [args.as_of]).droplevel("as_of")
    say(f"{args.clients} clients for {args.seconds:.0f} s against version {champion.version}")
    figures = run(
        features,
        champion.bundle,
        uri,
        clients=args.clients,
        seconds=args.seconds,
        pause=args.pause,
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2))
    print(json.dumps(figures, indent=2))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="riskstrat", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="generate a synthetic borough with ground truth")
    p.add_argument("--patients", type=int, default=265_000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--start", type=_date, default=date(2021, 1, 1))
    p.add_argument("--end", type=_date, default=date(2026, 10, 31))
    p.add_argument(
        "--truth-as-of", type=_date, nargs="*", default=[date(2024, 1, 1), date(2025, 1, 1)]
    )
    p.add_argument("--verbose", action="store_true", help="print progress month by month")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("validate", help="validate contract tables; quarantine bad rows")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument(
        "--extract-date",
        type=_date,
        default=date.today(),
        help="dates after this are in the future (default: today)",
    )
    p.set_defaults(func=cmd_validate)

    _ingest_parser(sub)

    p = sub.add_parser("features", help="compute features as of one or more dates")
    p.add_argument("--data", type=Path, required=True, help="folder of validated contract tables")
    p.add_argument(
        "--as-of",
        type=_date,
        action="append",
        required=True,
        help="as-of date (repeat for rolling snapshots)",
    )
    p.add_argument("--out", type=Path, required=True, help="Parquet file to write")
    p.set_defaults(func=cmd_features)

    p = sub.add_parser("bench-features", help="benchmark the feature engine; figures to JSON")
    p.add_argument("--data", type=Path, required=True, help="a borough's contract tables")
    p.add_argument("--as-of", type=_date, default=date(2025, 1, 1))
    p.add_argument("--region-copies", type=int, default=4)
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=cmd_bench_features)

    p = sub.add_parser("train", help="train, evaluate out of time, register a challenger")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--data", type=Path, help="folder of validated contract tables")
    source.add_argument("--features", type=Path, help="your own feature table (Parquet)")
    p.add_argument("--label", help="with --features: the 0/1 outcome column")
    p.add_argument("--group", help="with --features: the person column (splits keep it whole)")
    p.add_argument("--time", help="with --features: the as-of date column (out-of-time test)")
    p.add_argument("--report", type=Path, help="report folder (default: WORKDIR/report)")
    p.add_argument("--workdir", type=Path, default=Path("work"))
    p.add_argument("--config", type=Path, help="TOML file with a [train] table")
    p.add_argument("--truth", type=Path, help="synthetic ground truth, to report the oracle")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("promote", help="make the challenger champion if it passes the gate")
    p.add_argument("--data", type=Path, required=True, help="contract tables for the test set")
    p.add_argument("--workdir", type=Path, default=Path("work"))
    p.add_argument("--seed", type=int, default=42)
    p.set_defaults(func=cmd_promote)

    p = sub.add_parser("weekly", help="score everyone and write the weekly lists")
    p.add_argument("--data", type=Path, help="validated contract tables")
    p.add_argument("--as-of", type=_date, help="the week's date (features use events before it)")
    p.add_argument("--out", type=Path, help="folder of weekly runs (one folder per week)")
    p.add_argument("--workdir", type=Path, default=Path("work"))
    p.add_argument("--config", type=Path, help="TOML file with a [weekly] table of settings")
    p.add_argument("--rules", type=Path, help="pathway rules file (default: the built-in one)")
    p.add_argument("--check-rules", action="store_true", help="only check the rules file")
    p.set_defaults(func=cmd_weekly)

    p = sub.add_parser("bench-weekly", help="time the weekly run for two weeks; JSON figures")
    p.add_argument("--data", type=Path, required=True, help="validated contract tables")
    p.add_argument("--as-of", type=_date, default=date(2026, 10, 26))
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--workdir", type=Path, default=Path("work"))
    p.set_defaults(func=cmd_bench_weekly)

    p = sub.add_parser("referrals", help="social prescribing filter over a week's list")
    p.add_argument("--lists", type=Path, required=True, help="the weekly runs' folder")
    p.add_argument("--week", type=_date, help="which week (default: the latest)")
    p.add_argument("--criteria", type=Path, help="TOML file with a [referrals] table")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="change one criterion, e.g. --set min_tier=rising --set drivers=isolation,low_mood",
    )
    p.add_argument("--locality", action="append", help="only these localities")
    p.add_argument("--out", type=Path, required=True, help="CSV file for the matches")
    p.set_defaults(func=cmd_referrals)

    p = sub.add_parser("token", help="create a bearer token for the service (hash stored)")
    p.add_argument("--name", required=True, help="who holds it (shown in the audit log)")
    p.add_argument(
        "--role",
        required=True,
        choices=["system", "data_scientist", "social_prescriber", "locality_team"],
    )
    p.add_argument("--locality", action="append", help="locality_team: a locality it may see")
    p.add_argument("--access", type=Path, default=Path("work/access.toml"))
    p.set_defaults(func=cmd_token)

    p = sub.add_parser("serve", help="start the BentoML scoring service")
    p.add_argument("--access", type=Path, help="access file (default WORKDIR/access.toml)")
    p.add_argument("--port", type=int, default=3000)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--workdir", type=Path, default=Path("work"))
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("bench-serve", help="load-test the scoring service on loopback")
    p.add_argument("--data", type=Path, required=True, help="contract tables to take people from")
    p.add_argument("--as-of", type=_date, default=date(2026, 10, 26))
    p.add_argument("--workdir", type=Path, default=Path("work"))
    p.add_argument("--clients", type=int, default=32)
    p.add_argument("--seconds", type=float, default=20.0, help="length of each load phase")
    p.add_argument(
        "--pause", type=float, default=0.05, help="seconds each client waits in the paced phase"
    )
    p.add_argument("--out", type=Path, default=Path("work/bench/bench_serve.json"))
    p.set_defaults(func=cmd_bench_serve)

    p = sub.add_parser("demo", help="the whole job on a synthetic borough (what `make run` does)")
    p.add_argument("--workdir", type=Path, default=Path("work"))
    p.add_argument("--patients", type=int, default=50_000)
    p.add_argument("--seed", type=int, default=42)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("bench-synth", help="benchmark the generator; figures to JSON")
    p.add_argument("--patients", type=int, default=265_000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=cmd_bench_synth)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")
    # MLflow reports creating its database and, in a venv without pip, that it cannot name
    # pip's version for the model's conda file: neither is news to the user.
    for name in ("mlflow.store.db.utils", "mlflow.utils.environment", "alembic"):
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        args.func(args)
    except (ValueError, FileNotFoundError) as exc:
        say(f"error: {exc}")
        raise SystemExit(2) from exc


if __name__ == "__main__":
    main()
