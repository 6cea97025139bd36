"""Replacing a folder in one step: a failed run leaves the old folder, a killed one leaves
only a staging folder that the next run removes, and nothing is replaced that would lose
data."""

from __future__ import annotations

from pathlib import Path

import pytest

from riskstrat.common import atomic
from riskstrat.common.atomic import check_replaceable, recover, replacing


def _files(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(folder.iterdir())}


def _folder(path: Path, **files: str) -> Path:
    path.mkdir(parents=True)
    for name, text in files.items():
        (path / name).write_text(text)
    return path


def test_a_run_replaces_the_whole_folder_and_leaves_nothing_beside_it(tmp_path: Path) -> None:
    target = _folder(tmp_path / "out", old="1", stale="x")
    target.chmod(0o750)
    with replacing(target) as staging:
        (staging / "new").write_text("2")
    assert _files(target) == {"new": "2"}
    assert target.stat().st_mode & 0o777 == 0o750
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_failed_run_leaves_the_old_folder_and_no_staging(tmp_path: Path) -> None:
    target = _folder(tmp_path / "out", old="1")
    with pytest.raises(RuntimeError), replacing(target) as staging:
        (staging / "new").write_text("half")
        raise RuntimeError("killed by a bad row")
    assert _files(target) == {"old": "1"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_killed_runs_staging_is_removed_by_the_next_run(tmp_path: Path) -> None:
    target = _folder(tmp_path / "out", old="1")
    _folder(tmp_path / f"{atomic.staging_prefix(target)}dead", half="x")
    with replacing(target) as staging:
        (staging / "new").write_text("2")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_without_an_atomic_exchange_two_renames_lose_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(atomic, "_exchange", lambda first, second: False)
    target = _folder(tmp_path / "out", old="1")
    with replacing(target) as staging:
        (staging / "new").write_text("2")
    assert _files(target) == {"new": "2"}
    # Killed between the two renames: the old folder is aside, the new one not yet in place.
    target.rename(tmp_path / ".out.replaced")
    recover(target)
    assert _files(target) == {"new": "2"}
    # Killed after both renames: the new folder stays, the old one is removed.
    _folder(tmp_path / ".out.replaced", old="1")
    recover(target)
    assert _files(target) == {"new": "2"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_refuses_to_replace_an_input_a_file_or_a_folder_it_did_not_write(
    tmp_path: Path,
) -> None:
    data = _folder(tmp_path / "data", **{"events.parquet": "x"})
    with pytest.raises(ValueError, match="would replace the input"):
        check_replaceable(data, "report.json", inputs=(data,))
    with pytest.raises(ValueError, match="would replace the input"):
        check_replaceable(tmp_path, "report.json", inputs=(data,))
    with pytest.raises(ValueError, match=r"not empty and has no report\.json"):
        check_replaceable(_folder(tmp_path / "mine", notes="keep"), "report.json")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is not a folder"):
        check_replaceable(tmp_path / "file", "report.json")
    check_replaceable(_folder(tmp_path / "earlier", **{"report.json": "{}"}), "report.json")
    check_replaceable(_folder(tmp_path / "empty"), "report.json")
    check_replaceable(tmp_path / "new", "report.json")


def test_the_new_folder_and_the_swap_are_fsynced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What a power cut needs: every new file and folder on disk before the swap, and the
    parent folder (the swap itself) after it. Which paths reach fsync is recorded."""
    synced: list[Path] = []
    real_fsync = atomic.os.fsync

    def recording(handle: int) -> None:
        synced.append(Path(atomic.os.readlink(f"/proc/self/fd/{handle}")))
        real_fsync(handle)

    monkeypatch.setattr(atomic.os, "fsync", recording)
    target = _folder(tmp_path / "out", old="1")
    with replacing(target) as staging:
        (staging / "plots").mkdir()
        (staging / "plots" / "a.png").write_text("png")
        (staging / "table.csv").write_text("a,b")
        named = staging.resolve()
    assert synced[-1] == tmp_path.resolve()  # the swap, last
    before = synced[:-1]
    assert {named / "plots" / "a.png", named / "table.csv", named / "plots", named} <= set(before)
    assert before.index(named / "plots" / "a.png") < before.index(named / "plots")
