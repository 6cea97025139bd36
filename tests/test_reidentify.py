"""Re-identification for direct care: the key holder gets back the NHS numbers of one
practice's listed people, and nobody else's; every run is audited without NHS numbers; the
output never lands where the service reads."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pandas as pd
import pytest
from ingest_support import TEST_KEY, key_file, run
from weekly_fixture import WEEK, write_contract, write_week

from riskstrat.cli import main
from riskstrat.contract.pseudonym import KEY_ENV, KEY_FILE_ENV, Pseudonymiser
from riskstrat.serving.weekly.reidentify import (
    AUDIT_FILE,
    NHS_HEADING,
    BadRow,
    ReidentifyError,
    nhs_number_valid,
    read_register,
    reidentify,
)

PRACTICE = "N81001"
OTHER = "S82001"
# Published examples: valid NHS numbers, and the same with a wrong check digit.
VALID = ("9434765919", "4010232137")
INVALID = ("9434765918", "4010232138", "1234567890")  # 1234567890's check digit would be 10


def nhs_numbers(count: int) -> list[str]:
    """``count`` distinct valid NHS numbers (each base takes the check digit that fits)."""
    numbers = []
    base = 600_000_000
    while len(numbers) < count:
        base += 7_919
        fits = [f"{base}{d}" for d in range(10) if nhs_number_valid(f"{base}{d}")]
        numbers.extend(fits[:1])
    return numbers


@pytest.fixture(autouse=True)
def _no_service_folders(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("RISKSTRAT_WEEKLY_DIR", "RISKSTRAT_DATA_DIR", KEY_ENV, KEY_FILE_ENV):
        monkeypatch.delenv(name, raising=False)


class Borough:
    """A finished week whose ids are pseudonyms of known NHS numbers, and a register file."""

    def __init__(self, root: Path) -> None:
        self.key_file = key_file(root / "keys")
        self.key = Pseudonymiser(TEST_KEY.encode())
        self.lists = root / "lists"
        folder = write_week(self.lists, WEEK, None)
        people = pd.read_parquet(folder / "people.parquet")
        self.nhs = dict(zip(people["patient_id"], nhs_numbers(len(people)), strict=True))
        pseudonym = {pid: self.key.one(n) for pid, n in self.nhs.items()}
        for name in ("people.parquet", "reasons.parquet"):
            table = pd.read_parquet(folder / name)
            table["patient_id"] = table["patient_id"].map(pseudonym)
            table.to_parquet(folder / name, index=False)
        self.people = people.assign(nhs=people["patient_id"].map(self.nhs))
        ours = self.people[self.people["practice_id"] == PRACTICE]
        self.listed = ours[ours["tier"] != ""]
        self.moved = self.listed["nhs"].iloc[1]  # listed but no longer on the register
        self.other = self.people[
            (self.people["practice_id"] == OTHER) & (self.people["tier"] != "")
        ]
        register = [n for n in ours["nhs"] if n != self.moved]
        # Also registered here, yet on another practice's list in the extract: never output.
        register.append(self.other["nhs"].iloc[0])
        rows = [f"{n[:3]} {n[3:6]} {n[6:]}" if i % 2 else n for i, n in enumerate(register)]
        self.register = root / "register" / "n81001.csv"
        self.register.parent.mkdir()
        lines = ["NHS Number,Surname,Postcode"]
        lines += [f"{n},Person{i},E1 1AA" for i, n in enumerate(rows)]
        lines += [f"{INVALID[0]},Wrong,E1", "94347659,Short,E1", ",Blank,E1", f"{rows[0]},Again,E1"]
        lines += ["", ",,", f"{VALID[1]},Extra,E1,cell", VALID[0]]  # empty rows are skipped
        self.register.write_text("\n".join(lines) + "\n")
        self.bad_rows = [
            BadRow(len(rows) + 2, "the NHS number fails the modulus-11 check digit"),
            BadRow(len(rows) + 3, "the NHS number is not ten digits"),
            BadRow(len(rows) + 4, "no NHS number"),
            BadRow(len(rows) + 5, "repeats row 2 (the same nhs_number)"),
            BadRow(len(rows) + 8, "cells: 4 (the header has 3)"),
            BadRow(len(rows) + 9, "cells: 1 (the header has 3)"),
        ]
        self.out = root / "direct-care" / "n81001.csv"

    def run(self, **options: object) -> object:
        settings = {"key_file": self.key_file, "out": self.out} | options
        out = settings.pop("out")
        return reidentify(self.lists, PRACTICE, self.register, out, **settings)

    def audit_lines(self) -> list[dict]:
        path = self.out.parent / AUDIT_FILE
        return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture
def borough(tmp_path: Path) -> Borough:
    return Borough(tmp_path)


def test_the_check_digit_accepts_nhs_numbers_and_refuses_the_rest() -> None:
    assert [nhs_number_valid(n) for n in VALID] == [True, True]
    assert [nhs_number_valid(n) for n in INVALID] == [False, False, False]
    assert not nhs_number_valid("943476591")
    assert not nhs_number_valid("94347659190")
    assert not nhs_number_valid("943476591x")


def test_listed_people_of_the_practice_come_back_with_their_nhs_numbers(
    borough: Borough,
) -> None:
    done = borough.run()

    written = pd.read_csv(borough.out, dtype="str")
    expected = borough.listed[borough.listed["nhs"] != borough.moved]
    assert written[NHS_HEADING].str.replace(" ", "").tolist() == expected["nhs"].tolist()
    assert written[NHS_HEADING].str.fullmatch(r"\d{3} \d{3} \d{4}").all()
    assert written["Practice"].unique().tolist() == [PRACTICE]
    assert written["Tier"].tolist() == expected["tier"].tolist()
    assert written["Rank"].astype(int).tolist() == expected["rank"].tolist()
    assert written["Suggested pathway"].tolist() == expected["pathway"].tolist()
    assert written["Pseudonymised ID"].tolist() == [borough.key.one(n) for n in expected["nhs"]]
    # Neither the unlisted people on the register nor the other practice's listed person.
    assert borough.other["nhs"].iloc[0] not in set(written[NHS_HEADING].str.replace(" ", ""))
    assert (done.listed, done.matched, done.unmatched) == (len(borough.listed), len(expected), 1)
    assert stat.S_IMODE(borough.out.stat().st_mode) == 0o600
    assert [p.name for p in borough.out.parent.iterdir()] == sorted([borough.out.name, AUDIT_FILE])


def test_the_register_pseudonyms_are_the_ones_ingest_made(tmp_path: Path) -> None:
    key = Pseudonymiser(TEST_KEY.encode())
    numbers = nhs_numbers(4)
    spaced = [n if i % 2 else f"{n[:3]} {n[3:6]} {n[6:]}" for i, n in enumerate(numbers)]
    people = pd.DataFrame(
        {
            "patient_id": spaced,
            "practice_id": PRACTICE,
            "practice_name": "Hillside Surgery",
            "gp_cluster": "North A",
            "locality": "North",
            "age": [70, 80, 75, 90],
            "sex": ["F", "M", "F", "M"],
        }
    )
    extract = write_contract(tmp_path / "extract", people)
    ingested = run("contract", extract, tmp_path / "ingested", key_file(tmp_path / "keys"))
    register = tmp_path / "register.csv"
    register.write_text("nhs_number\n" + "\n".join(numbers) + "\n")

    made = set(key.series(read_register(register).people["identifier"]))
    assert made == set(pd.read_parquet(ingested.out / "patients.parquet")["patient_id"])


def test_a_wrong_key_matches_nobody_says_so_and_writes_nothing(borough: Borough) -> None:
    wrong = key_file(borough.out.parent.parent / "other-keys", TEST_KEY + "-not-this-one")

    with pytest.raises(ReidentifyError, match=r"none of the \d+ listed people.*fingerprint") as no:
        borough.run(key_file=wrong)

    assert f"no NHS number: row(s) {borough.bad_rows[2].row}" in str(no.value)

    assert not borough.out.exists()
    [line] = borough.audit_lines()
    assert (line["matched"], line["out"]) == (0, None)
    assert line["outcome"] == "nobody matched: nothing written"


def test_bad_register_rows_are_reported_by_row_number(
    borough: Borough, capsys: pytest.CaptureFixture[str]
) -> None:
    assert list(read_register(borough.register).bad) == borough.bad_rows

    code = _cli(borough)

    printed = capsys.readouterr().out
    assert code == 0
    first, *_ = borough.bad_rows
    assert f"the NHS number fails the modulus-11 check digit: row(s) {first.row}\n" in printed
    assert f"no NHS number: row(s) {first.row + 2}\n" in printed
    assert f"{len(borough.bad_rows)} not used" in printed


def test_rows_sharing_an_identifier_with_other_nhs_numbers_are_all_refused(
    tmp_path: Path,
) -> None:
    first, second, third = nhs_numbers(3)
    register = tmp_path / "register.csv"
    register.write_text(
        f"person_id,nhs_number\n17,{first}\n17,{second}\n18,{third}\n18,{third}\n,{first}\n"
    )

    read = read_register(register, id_column="PERSON_ID")

    assert read.people["identifier"].tolist() == ["18"]
    assert list(read.bad) == [
        BadRow(2, "rows 2, 3 have the same person_id but other NHS numbers"),
        BadRow(3, "rows 2, 3 have the same person_id but other NHS numbers"),
        BadRow(5, "repeats row 4 (the same person_id)"),
        BadRow(6, "no person_id"),
    ]


def test_an_extract_keyed_by_another_identifier_matches_through_id_column(
    borough: Borough,
) -> None:
    """An OMOP extract is pseudonymised from person_id: the register maps it to NHS numbers."""
    folder = borough.lists / WEEK.isoformat()
    people = pd.read_parquet(folder / "people.parquet")
    person_id = {borough.key.one(n): str(1000 + i) for i, n in enumerate(borough.nhs.values())}
    people["patient_id"] = people["patient_id"].map(lambda p: borough.key.one(person_id[p]))
    people.to_parquet(folder / "people.parquet", index=False)
    register = borough.register.with_name("by_person.csv")
    rows = [f"{person_id[borough.key.one(n)]},{n}" for n in borough.listed["nhs"]]
    register.write_text("person_id,nhs_number\n" + "\n".join(rows) + "\n")

    with pytest.raises(ReidentifyError, match="--id-column"):
        reidentify(borough.lists, PRACTICE, register, borough.out, key_file=borough.key_file)
    done = reidentify(
        borough.lists,
        PRACTICE,
        register,
        borough.out,
        key_file=borough.key_file,
        id_column="person_id",
    )

    assert done.matched == len(borough.listed)
    written = pd.read_csv(borough.out, dtype="str")[NHS_HEADING].str.replace(" ", "")
    assert written.tolist() == borough.listed["nhs"].tolist()


def test_the_audit_line_says_who_what_and_how_many_but_no_nhs_number(borough: Borough) -> None:
    done = borough.run(who="J Smith, Hillside")
    borough.run(force=True)

    first, second = borough.audit_lines()
    assert first["who"] == "J Smith, Hillside"
    assert second["who"] == second["os_user"] != ""
    assert (first["week"], first["practice"], first["outcome"]) == (
        WEEK.isoformat(),
        PRACTICE,
        "written",
    )
    assert first["register_sha256"] == hashlib.sha256(borough.register.read_bytes()).hexdigest()
    assert (first["listed"], first["matched"], first["unmatched"]) == (
        done.listed,
        done.matched,
        1,
    )
    assert first["register_rows_not_used"] == len(borough.bad_rows)
    assert first["key_fingerprint"] == borough.key.fingerprint
    text = (borough.out.parent / AUDIT_FILE).read_text()
    for number in borough.nhs.values():
        for form in (number, f"{number[:3]} {number[3:6]} {number[6:]}"):
            assert form not in text
        assert borough.key.one(number) not in text


def test_the_output_never_goes_where_the_service_reads(
    borough: Borough, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    served = tmp_path / "served"
    monkeypatch.setenv("RISKSTRAT_WEEKLY_DIR", str(served / "lists"))
    monkeypatch.setenv("RISKSTRAT_DATA_DIR", str(served / "validated"))
    places = (
        borough.lists / "n81001.csv",
        borough.lists / WEEK.isoformat() / "n81001.csv",
        served / "lists" / "n81001.csv",
        served / "validated" / "sub" / "n81001.csv",
    )
    for place in places:
        with pytest.raises(ReidentifyError, match="which the service reads"):
            borough.run(out=place)
        assert not place.exists()
    with pytest.raises(ReidentifyError, match="an input of this run"):
        borough.run(out=borough.register, force=True)
    with pytest.raises(ValueError, match="inside"):
        borough.run(key_file=key_file(borough.lists / "keys"))
    assert not (borough.out.parent / AUDIT_FILE).exists()


def test_an_existing_output_is_kept_unless_forced(borough: Borough) -> None:
    borough.out.parent.mkdir(parents=True)
    borough.out.write_text("yesterday's file\n")

    with pytest.raises(ReidentifyError, match=r"already exists.*--force"):
        borough.run()
    assert borough.out.read_text() == "yesterday's file\n"
    borough.run(force=True)
    assert pd.read_csv(borough.out).columns[0] == NHS_HEADING


def test_no_audit_no_nhs_numbers(borough: Borough) -> None:
    blocked = borough.out.parent / "audit-is-a-folder"
    blocked.mkdir(parents=True)

    with pytest.raises(ReidentifyError, match="cannot append to the audit file"):
        borough.run(audit=blocked)
    assert not borough.out.exists()


def test_only_a_practice_of_the_week_and_a_register_with_nhs_numbers(
    borough: Borough, tmp_path: Path
) -> None:
    with pytest.raises(ReidentifyError, match="nobody of practice 'Z99999'"):
        reidentify(
            borough.lists, "Z99999", borough.register, borough.out, key_file=borough.key_file
        )
    other = tmp_path / "no_nhs.csv"
    other.write_text("surname,postcode\nSmith,E1\n")
    with pytest.raises(ReidentifyError, match=r"no_nhs.csv: no column 'nhs_number'"):
        reidentify(borough.lists, PRACTICE, other, borough.out, key_file=borough.key_file)


def _cli(borough: Borough, *extra: str) -> int:
    try:
        main(
            [
                "reidentify",
                "--lists",
                str(borough.lists),
                "--practice",
                PRACTICE,
                "--register",
                str(borough.register),
                "--key-file",
                str(borough.key_file),
                "--out",
                str(borough.out),
                *extra,
            ]
        )
    except SystemExit as stopped:
        return int(stopped.code or 0)
    return 0


def test_the_command_reports_counts_and_refuses_in_one_line(
    borough: Borough, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _cli(borough, "--week", WEEK.isoformat()) == 0
    printed = capsys.readouterr().out
    assert f"week of {WEEK}: {len(borough.listed)} listed" in printed
    assert "1 not found" in printed
    for number in borough.nhs.values():
        assert number not in printed

    assert _cli(borough) == 2
    assert capsys.readouterr().err == (
        f"[riskstrat] error: {borough.out}: already exists; remove it or give --force to "
        "replace it\n"
    )
    help_code = _cli_help(capsys)
    assert help_code[0] == 0
    assert "riskstrat reidentify --lists" in help_code[1].split("Examples:")[1]


def _cli_help(capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        main(["reidentify", "--help"])
        code = 0
    except SystemExit as stopped:
        code = int(stopped.code or 0)
    return code, capsys.readouterr().out
