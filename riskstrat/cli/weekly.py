"""The weekly job and what follows it: ``weekly`` lists, ``referrals`` for social
prescribing, ``reidentify`` a practice's list for direct care (key holders only)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from riskstrat.cli.options import (
    EngineChoice,
    Week,
    Workdir,
    command,
    config_option,
    date_option,
    from_config,
    make_engine,
    option,
    tracking_uri,
)
from riskstrat.cli.reporter import reporting, say
from riskstrat.cli.summaries import say_week
from riskstrat.common.defaults import WORKDIR, WorkFolder
from riskstrat.common.errors import UserError
from riskstrat.common.spreadsheet import write_frame

if TYPE_CHECKING:
    from riskstrat.serving.weekly.run import SavedBenefit

app = typer.Typer()


@command(
    app,
    "weekly",
    "score everyone and write the weekly lists",
    "riskstrat weekly --data work/validated --as-of 2026-10-26 --out work/lists",
    "riskstrat weekly --data work/validated --as-of 2026-10-26 --out work/lists "
    "--config weekly.toml --overrides north_overrides.csv",
    "riskstrat weekly --check-rules --rules my_pathways.toml",
)
def cmd_weekly(
    data: Annotated[Path | None, option("DIR", "folder of validated contract tables")] = None,
    as_of: Annotated[
        date | None,
        date_option("the week's date (features use events before it)", show_default=False),
    ] = None,
    out: Annotated[
        Path | None, option("DIR", "folder of weekly runs (one folder per week)")
    ] = None,
    workdir: Workdir = WORKDIR,
    config: Annotated[
        Path | None,
        config_option(
            "a [weekly] table of settings (with [weekly.offers]; optional [engine] and "
            "[exposure] tables)"
        ),
    ] = None,
    rules: Annotated[
        Path | None, option("FILE", "pathway rules file (default: the built-in one)")
    ] = None,
    check_rules: Annotated[
        bool, typer.Option("--check-rules", help="only check the rules file, then stop")
    ] = False,
    engine: EngineChoice = None,
    overrides: Annotated[
        Path | None,
        option(
            "FILE",
            "the team's overrides of the proposed offers: CSV with patient_id, action, "
            "decision (offer or decline), who, why",
        ),
    ] = None,
    benefit: Annotated[
        Path | None,
        option(
            "FILE",
            "the benefit model that ranks the offers (default: WORKDIR/benefit.json when "
            "`riskstrat benefit` has written it)",
        ),
    ] = None,
) -> None:
    """The main job for locality teams: score everyone with the champion, compare with last
    week, explain, suggest pathways and write each locality's and cluster's lists. With a
    champion of potentially avoidable admissions too, its risk is shown beside the first.

    --data, --as-of and --out are needed unless --check-rules is given."""
    from riskstrat.serving.weekly.config import WeeklyConfig
    from riskstrat.serving.weekly.pathways import DEFAULT_RULES, load_rules

    loaded = load_rules(rules or DEFAULT_RULES)
    if check_rules:
        say(f"{rules or DEFAULT_RULES}: {len(loaded.rules)} rules, all valid")
        return
    if data is None or as_of is None or out is None:
        raise UserError("weekly needs --data, --as-of and --out (or --check-rules)")
    from riskstrat.features.exposure import ExposureRule
    from riskstrat.models.registry import registered_name
    from riskstrat.models.store import champion_if_any, load_champion
    from riskstrat.serving.weekly.offers import CapacityError
    from riskstrat.serving.weekly.overrides import NO_OVERRIDES, read_overrides
    from riskstrat.serving.weekly.run import weekly_run

    settings = from_config(WeeklyConfig, config)
    exposure_rule = from_config(ExposureRule, config)
    team_overrides = read_overrides(overrides) if overrides else NO_OVERRIDES
    saved = _benefit(benefit, WorkFolder(workdir).benefit)
    uri = tracking_uri(workdir)
    model = load_champion(uri)
    avoidable = champion_if_any(uri, registered_name("avoidable"))
    with reporting() as progress:
        try:
            result = weekly_run(
                data,
                as_of,
                model,
                out,
                settings,
                loaded,
                progress,
                make_engine(engine, config),
                exposure_rule=exposure_rule,
                overrides=team_overrides,
                avoidable=avoidable,
                benefit=saved,
            )
        except CapacityError as exc:
            raise exc.in_file(config) from None
    say_week(result)


def _benefit(given: Path | None, default: Path) -> SavedBenefit | None:
    """The benefit model given, else the work folder's when there is one."""
    from riskstrat.serving.weekly.run import SavedBenefit

    if given is not None:
        if not given.is_file():
            raise UserError(f"{given}: no benefit model there (riskstrat benefit writes one)")
        return SavedBenefit.load(given)
    return SavedBenefit.load(default) if default.is_file() else None


@command(
    app,
    "referrals",
    "social prescribing filter over a week's list",
    "riskstrat referrals --lists work/lists --out work/referrals.csv",
    "riskstrat referrals --lists work/lists --week 2026-10-26 --set min_tier=rising "
    "--set drivers=isolation,low_mood --locality North --out north.csv",
)
def cmd_referrals(
    lists: Annotated[Path, option("DIR", "the weekly runs' folder (weekly --out)")],
    out: Annotated[Path, option("FILE", "CSV file for the matches")],
    week: Week = None,
    criteria: Annotated[Path | None, config_option("a [referrals] table")] = None,
    set_: Annotated[
        list[str],
        typer.Option(
            "--set",
            metavar="FIELD=VALUE",
            help="change one criterion, e.g. --set min_tier=rising "
            "--set drivers=isolation,low_mood (repeatable)",
            show_default=False,
        ),
    ] = [],  # noqa: B006 (typer copies defaults)
    locality: Annotated[
        list[str] | None, option("LOCALITY", "only this locality (repeat for more)")
    ] = None,
) -> None:
    """The social prescribing filter over a week's list; the matches go to a CSV with their
    reasons."""
    from riskstrat.serving.weekly.referrals import (
        ReferralCriteria,
        absent_inputs,
        criteria_with,
        load_criteria,
        select_referrals,
    )
    from riskstrat.serving.weekly.store import WeekStore

    store = WeekStore(lists)
    chosen_week = store.choose(week)
    base = load_criteria(criteria) if criteria else ReferralCriteria()
    chosen_criteria = criteria_with(base, set_, locality)
    people = store.people(chosen_week)
    chosen = select_referrals(people, chosen_criteria)
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
    out.parent.mkdir(parents=True, exist_ok=True)
    write_frame(chosen[columns], out)
    say(f"{len(chosen):,} people match in the week of {chosen_week}: {out}")
    for sentence in absent_inputs(chosen_criteria, store.absent(chosen_week)):
        say(f"absent input: {sentence}")


@command(
    app,
    "reidentify",
    "key holder: a practice's list back to NHS numbers",
    "riskstrat reidentify --lists work/lists --practice N81001 --register n81001_register.csv "
    "--key-file ~/keys/riskstrat.key --out ~/direct-care/n81001.csv",
    "riskstrat reidentify --lists work/lists --week 2026-10-26 --practice N81001 "
    "--register register.csv --id-column person_id --who 'J Smith, N81001' "
    "--audit ~/direct-care/audit.jsonl --out ~/direct-care/n81001.csv --force",
)
def cmd_reidentify(
    lists: Annotated[Path, option("DIR", "the weekly runs' folder (weekly --out), or a copy")],
    practice: Annotated[str, option("PRACTICE", "the practice id whose listed people to give")],
    register: Annotated[
        Path,
        option("FILE", "the practice's register: CSV with an NHS number column (any others)"),
    ],
    out: Annotated[
        Path,
        option("FILE", "CSV for direct care; refused inside the lists or any service folder"),
    ],
    week: Week = None,
    key_file: Annotated[
        Path | None,
        option("FILE", "the pseudonymisation key file ingest used (else RISKSTRAT_PSEUDONYM_KEY)"),
    ] = None,
    id_column: Annotated[
        str | None,
        option(
            "COLUMN",
            "register column holding the identifier the extract carried, when not the NHS "
            "number (e.g. an OMOP person_id)",
        ),
    ] = None,
    audit: Annotated[
        Path | None,
        option(
            "FILE", "audit file, one JSON line a run (default: reidentify_audit.jsonl beside --out)"
        ),
    ] = None,
    who: Annotated[
        str | None, option("NAME", "who runs it, for the audit (default: the OS user)")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="replace --out if it exists")] = False,
) -> None:
    """For the holder of the pseudonymisation key only, outside the service: the week's
    listed people of one practice with their NHS numbers, from the practice's own register.

    Every run is audited (no NHS number in the audit). Listed people not in the register are
    counted; register rows that are not used are reported by row number.
    """
    from riskstrat.serving.weekly.reidentify import reidentify

    done = reidentify(
        lists,
        practice,
        register,
        out,
        key_file=key_file,
        week=week,
        id_column=id_column,
        audit=audit,
        who=who,
        force=force,
    )
    for problem, rows in done.register.not_used().items():
        say(f"{register}: not used, {problem}: row(s) {rows}")
    say(
        f"practice {practice}, week of {done.week}: {done.listed:,} listed, {done.matched:,} "
        f"found in the register, {done.unmatched:,} not found (moved away or registered "
        f"since the extract?); register: {done.register.rows:,} rows, "
        f"{len(done.register.bad):,} not used"
    )
    say(f"NHS numbers for direct care in {out}; audited in {done.audit}")
