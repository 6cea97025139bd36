"""The evaluation report: every design and outcome with its numbers, checks and summary; a
verdict in words, never a number, when the data cannot answer; the plan's fingerprint; plots
written beside their data; hostile text escaped; nothing fetched from elsewhere."""

from __future__ import annotations

import csv
import html
import json
import math
import re
from pathlib import Path

import pytest
from evaluation_fixture import (
    HOSTILE_TITLE,
    PLAN_SHA,
    UNANSWERED,
    evaluation,
    write_evaluation,
)
from markupsafe import escape

from riskstrat.impact import plasmode
from riskstrat.impact.plots import PlotTableError, write_plots
from riskstrat.impact.report import (
    NOT_CHECKED,
    NOT_RUN,
    change,
    number,
    p_value,
    views,
    write_report,
)
from riskstrat.impact.results import (
    PLOTS_DIR,
    REPORT_FILE,
    RESULTS_FILE,
    EvaluationResults,
    Interval,
    PlasmodeCheck,
    PlasmodeDesign,
    PlasmodeOutcome,
    Share,
)

M = "\u2212"  # the minus sign the report writes
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    folder = write_evaluation(tmp_path_factory.mktemp("report") / "pilot-2024")
    return folder, (folder / REPORT_FILE).read_text(encoding="utf-8")


def _text(page: str) -> str:
    """The page's visible text, one space between words."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def test_every_design_and_outcome_is_reported_with_its_numbers(written: tuple[Path, str]) -> None:
    text = _text(written[1])
    for expected in (
        "Staggered difference-in-differences",
        "Matched comparison",
        "Regression discontinuity at the list's cut-off",
        # the board-paper summaries, quoted as written
        "Emergency admissions among eligible people in the pilot cluster were 14% lower "
        "(95% CI 8% to 20%) than in comparison clusters.",
        "Bed days were 19% lower (95% CI 6% to 30%).",
        # estimate and interval, in the design's measure; the relative change
        f"{M}0.0837 (95% CI {M}0.121 to {M}0.0464) difference in admissions per person-year",
        "14.0% lower (95% CI 8.0% to 20.0% lower)",
        "3.0% higher (95% CI 11.0% lower to 18.0% higher)",
        "0.81 (95% CI 0.7 to 0.94) rate ratio",
        "< 0.001",
        # minimum detectable effect, people, units
        "0.0512 4,321 7",
        "0.12 1,988 6",
    ):
        assert expected in text, expected


def test_checks_say_passed_or_failed(written: tuple[Path, str]) -> None:
    text = _text(written[1])
    assert "pre-trend Passed 0.42 joint test of leads" in text
    assert "balance Failed 0.13 largest |SMD| after matching" in text
    assert "density Passed 0.55 rddensity p-value" in text


def test_an_unanswered_question_shows_its_reason_and_no_estimate(written: tuple[Path, str]) -> None:
    text = _text(written[1])
    assert text.count(UNANSWERED) >= 3  # the design, the findings and the outcome
    assert "Cannot answer: " + UNANSWERED in text
    # Neither the effect, its interval, p-value, relative change nor the rates behind it.
    for number_shown in ("0.432", "0.988", "0.123", "0.136", "54.3%", "0.247", "0.753"):
        assert number_shown not in text, number_shown
    # What is still true is shown: how many people, and what the data could have detected.
    assert "0.61 38" in text


def test_a_design_that_cannot_answer_hides_the_numbers_of_all_its_outcomes() -> None:
    results = evaluation()
    did = results.design("did").model_copy(update={"verdict": "only 2 clusters of roll-out"})
    shown = views(results.model_copy(update={"designs": [did]}), [])
    assert [(o.answered, o.reason) for o in shown[0].outcomes] == [
        (False, "only 2 clusters of roll-out"),
        (False, "only 2 clusters of roll-out"),
    ]


def test_the_plan_is_identified_by_file_hash_and_date(written: tuple[Path, str]) -> None:
    text = _text(written[1])
    assert f"SHA-256 {PLAN_SHA}" in text
    assert "File ilm-pilot.toml" in text  # its name: where it lay is the server's business
    assert "Written 2023-05-14" in text
    assert 'title = "ILM pilot"' in text  # the plan's text itself, for the record


def test_the_report_shows_no_server_path(tmp_path: Path) -> None:
    """Every role that may read reports sees the same page: no data folder, no plan folder."""
    results = evaluation().model_copy(
        update={
            "data": "/srv/riskstrat/work/validated",
            "plan": evaluation().plan.model_copy(update={"file": "/srv/riskstrat/plans/p.toml"}),
        }
    )
    page = (write_evaluation(tmp_path / "e", results) / REPORT_FILE).read_text(encoding="utf-8")
    assert "/srv/riskstrat" not in page
    assert "File p.toml" in _text(page)


def test_hostile_text_is_escaped(written: tuple[Path, str]) -> None:
    page = written[1]
    assert "<script" not in page and "<b>roll-out" not in page
    assert str(escape(HOSTILE_TITLE)) in page
    assert _text(page).startswith(f"Evaluation: {HOSTILE_TITLE}")


def test_the_page_is_self_contained(written: tuple[Path, str]) -> None:
    folder, page = written
    links = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert links[0] == "data:,"  # the empty icon: no request for /favicon.ico
    links = links[1:]
    assert links and all(not re.match(r"[a-z]+:|/", link) for link in links), links
    assert page.count("<link") == 1  # the icon
    for tag in ("<script", "<iframe", "@import", "url("):
        assert tag not in page
    # Styles only in the one <style> element, which the service allows by its hash.
    assert " style=" not in page and page.count("<style>") == 1
    for link in links:
        assert (folder / link).is_file(), link


def test_plots_are_pngs_with_their_data_beside_them(written: tuple[Path, str]) -> None:
    folder, page = written
    images = re.findall(r'<img src="([^"]+)"', page)
    assert sorted(images) == [
        f"{PLOTS_DIR}/did_event_study_deaths.png",
        f"{PLOTS_DIR}/did_event_study_emergency_admissions.png",
        f"{PLOTS_DIR}/matched_balance.png",
        f"{PLOTS_DIR}/rd_cutoff_emergency_admissions.png",
    ]
    for image in images:
        assert (folder / image).read_bytes()[:8] == PNG
    with (folder / PLOTS_DIR / "matched_balance.csv").open() as handle:
        balance = list(csv.DictReader(handle))
    assert [(r["feature"], r["smd_after"]) for r in balance] == [
        ("age", "0.03"),
        ("risk_score", "0.13"),
        ("has_frailty", "-0.05"),
    ]
    with (folder / PLOTS_DIR / "did_event_study_emergency_admissions.csv").open() as handle:
        periods = [int(r["relative_period"]) for r in csv.DictReader(handle)]
    assert periods == list(range(-6, 7))


@pytest.mark.parametrize(
    ("key", "rows", "message"),
    [
        (
            "balance",
            [{"feature": "age", "smd_before": 0.4, "smd_after": 0.0}, {"feature": "sex"}],
            r"design matched: tables\['balance'\] row 1: smd_before: Field required",
        ),
        ("balance", [], r"design matched: tables\['balance'\] has no rows"),
        (
            "rd_bins:bed_days",
            [{"side": "left", "score": 0.2, "mean": 1.0, "n": 3}],
            r"tables\['rd_bins:bed_days'\] row 0: side: Input should be 'below' or 'above'",
        ),
    ],
)
def test_a_table_not_as_documented_is_refused_naming_it(
    tmp_path: Path, key: str, rows: list[dict], message: str
) -> None:
    results = evaluation()
    matched = results.design("matched")
    broken = matched.model_copy(update={"tables": {**matched.tables, key: rows}})
    with pytest.raises(PlotTableError, match=message):
        write_plots(results.model_copy(update={"designs": [broken]}), tmp_path)


def test_a_design_without_tables_is_reported_without_plots(tmp_path: Path) -> None:
    results = evaluation()
    bare = [d.model_copy(update={"tables": {}}) for d in results.designs]
    page = write_report(results.model_copy(update={"designs": bare}), tmp_path).read_text()
    assert "<img" not in page and "Bed days were 19% lower" in page


@pytest.mark.parametrize(
    ("relative", "said"),
    [
        ((-0.14, -0.2, -0.08), "14.0% lower (95% CI 8.0% to 20.0% lower)"),
        ((0.25, 0.05, 0.5), "25.0% higher (95% CI 5.0% to 50.0% higher)"),
        ((0.0, -0.1, 0.1), "no change (95% CI 10.0% lower to 10.0% higher)"),
        ((-0.05, -0.2, math.inf), "5.0% lower (95% CI 20.0% lower to no upper bound)"),
        ((0.3, 0.1, math.inf), "30.0% higher (95% CI 10.0% higher to no upper bound)"),
    ],
)
def test_relative_changes_read_as_a_board_paper_says_them(
    relative: tuple[float, float, float], said: str
) -> None:
    estimate, low, high = relative
    assert change(Interval(estimate=estimate, ci_low=low, ci_high=high)) == said


def test_numbers_are_formatted_for_reading() -> None:
    assert [number(v) for v in (-1234.5, 12.345, -0.012345, None, float("nan"))] == [
        f"{M}1,234",
        "12.35",
        f"{M}0.0123",
        "",
        "",
    ]
    assert [p_value(v) for v in (0.0004, 0.0423, None)] == ["< 0.001", "0.042", ""]


def _checked() -> EvaluationResults:
    """The fixture's evaluation with a plasmode check of its difference-in-differences, and
    its deaths interval unbounded above (a randomisation test no effect size rejects)."""
    results = evaluation("checked")
    did = results.designs[0]
    unbounded = Interval(estimate=0.03, ci_low=-0.2, ci_high=math.inf, p_value=0.7)
    deaths = did.outcomes[1].model_copy(update={"relative": unbounded, "effect": unbounded})
    did = did.model_copy(update={"outcomes": [did.outcomes[0], deaths]})
    power, none = Share(value=0.85, se=0.08, runs=20), Share(value=0.05, se=0.049, runs=20)
    said = plasmode.sentence(
        "did", "emergency admissions", -0.1, power, none, Share(value=1.0, se=0.0, runs=40)
    )
    checked = PlasmodeDesign(
        design="did",
        title="difference-in-differences",
        null="the months before the first go-live",
        placebo="the real roll-out moved back",
        verdict="answered",
        outcomes=[
            PlasmodeOutcome(
                outcome="emergency_admissions",
                label="emergency admissions",
                effect=-0.1,
                power=power,
                coverage=Share(value=0.95, se=0.049, runs=20),
                bias=0.004,
                bias_se=0.01,
                false_positive=none,
                answered=Share(value=1.0, se=0.0, runs=40),
                placebo_runs=1,
                placebo_found=0,
                verdict=said,
            )
        ],
        seconds=10.0,
    )
    check = PlasmodeCheck(runs=20, minimum_effect=0.1, seed=1, designs=[checked], seconds=12.0)
    return results.model_copy(update={"designs": [did, *results.designs[1:]], "check": check})


def test_the_report_opens_with_one_summary_table_with_the_plasmode_verdicts(tmp_path: Path) -> None:
    results = _checked()
    page = (write_evaluation(tmp_path / "checked", results) / REPORT_FILE).read_text()
    first_table = page[page.index("<table") : page.index("</table>")]
    assert page.index("<table") < page.index("Key findings") < page.index("The analysis plan")
    rows = re.findall(r"<tr><th scope=\"row\">(.*?)</tr>", first_table, re.S)
    assert len(rows) == sum(len(d.outcomes) for d in results.designs)
    said = results.check.designs[0].outcomes[0].verdict
    assert said.startswith("On this extract, the difference-in-differences would detect a 10% ")
    assert "85% of the time and claims an effect that is not there 5% of the time" in said
    (admissions,) = [r for r in rows if r.startswith("Emergency admissions<")]
    assert (
        "14.0% lower (95% CI 8.0% to 20.0% lower)" in admissions and html.escape(said) in admissions
    )
    assert any(html.escape(NOT_CHECKED) in r and html.escape(UNANSWERED) in r for r in rows)
    assert "85% (\u00b1 8)" in page  # the plasmode section, with its Monte Carlo error


def test_no_infinite_percentage_on_the_page_and_no_nan_in_results(tmp_path: Path) -> None:
    folder = write_evaluation(tmp_path / "checked", _checked())
    page = (folder / REPORT_FILE).read_text()
    assert not re.search(r"inf%|\binf\b|Infinity|NaN", _text(page))
    assert "20.0% lower to no upper bound" in _text(page)

    def refuse(constant: str) -> None:
        raise ValueError(f"{constant} in results.json")

    raw = json.loads((folder / RESULTS_FILE).read_text(), parse_constant=refuse)
    assert raw["designs"][0]["outcomes"][1]["relative"]["ci_high"] is None
    back = EvaluationResults.load(folder)
    assert back.designs[0].outcomes[1].relative.ci_high == math.inf
    assert back.check == _checked().check
    unanswered = back.designs[2].outcomes[0].effect
    assert unanswered.estimate == pytest.approx(-0.4321)


def test_without_the_check_the_summary_says_how_to_run_it(written: tuple[Path, str]) -> None:
    _, page = written
    first_table = page[page.index("<table") : page.index("</table>")]
    assert first_table.count(html.escape(NOT_RUN)) == 4
