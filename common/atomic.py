"""Replace a folder in one step: build the new one beside it, then swap it in.

A reader of the target sees the old folder or the new one, never a mix of the two. A run
that fails removes its staging folder; a run that is killed leaves a hidden
``.<name>.partial-*`` folder beside the target, which the next run removes before it starts.
On Linux the swap is one ``renameat2(RENAME_EXCHANGE)``; elsewhere it is two renames, and a
run killed between them leaves the old folder at ``.<name>.replaced``, which the next run
puts back before anything else. The new folder's files and folders are fsynced before the
swap and the parent folder after it, so the swap also survives a power cut.
"""

from __future__ import annotations

import ctypes
import errno
import glob
import os
import secrets
import shutil
import stat
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from riskstrat.common.errors import UserError

_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_UNSUPPORTED = {errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP}


def staging_prefix(target: Path) -> str:
    """The name prefix of the staging folders of ``target`` (hidden, beside it)."""
    return f".{target.name}.partial-"


def _replaced(target: Path) -> Path:
    return target.parent / f".{target.name}.replaced"


def containing(path: Path, folders: Iterable[Path]) -> Path | None:
    """The first of ``folders`` that is ``path`` or holds it (after resolving links)."""
    resolved = path.resolve()
    return next((f for f in folders if resolved.is_relative_to(f.resolve())), None)


def check_replaceable(target: Path, marker: str, inputs: Iterable[Path] = ()) -> None:
    """Refuse (UserError) to replace ``target`` when that would lose something: a file in
    its place, a non-empty folder that is not an earlier output (no ``marker`` file in it),
    or a folder that holds one of the ``inputs``."""
    if target.exists() and not target.is_dir():
        raise UserError(f"{target}: exists and is not a folder")
    for given in inputs:
        if containing(given, [target]):
            raise UserError(
                f"{target}: the output would replace the input {given}: choose another folder"
            )
    if target.is_dir() and any(target.iterdir()) and not (target / marker).exists():
        raise UserError(
            f"{target}: not empty and has no {marker}, so it was not written by riskstrat; "
            "it would be replaced as a whole: choose a new or empty folder"
        )


@contextmanager
def replacing(target: Path) -> Iterator[Path]:
    """A staging folder to write the new ``target`` into; on success it replaces ``target``
    in one step, on failure it is removed and ``target`` stays as it was."""
    target.parent.mkdir(parents=True, exist_ok=True)
    recover(target)
    staging = _new_staging(target)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _swap_in(staging, target)


def _new_staging(target: Path) -> Path:
    """A new, empty staging folder beside ``target``, with ``target``'s permissions if it
    exists (else the usual ones for a new folder, which ``mkdtemp`` would make private)."""
    while True:
        staging = target.parent / f"{staging_prefix(target)}{secrets.token_hex(4)}"
        try:
            staging.mkdir()
        except FileExistsError:
            continue
        if target.is_dir():
            staging.chmod(stat.S_IMODE(target.stat().st_mode))
        return staging


def recover(target: Path) -> None:
    """Put back a folder that a killed two-rename swap left aside, and remove the staging
    folders of killed runs."""
    replaced = _replaced(target)
    if replaced.exists():
        if target.exists():
            shutil.rmtree(replaced)
        else:
            replaced.rename(target)
    pattern = glob.escape(str(target.parent / staging_prefix(target))) + "*"
    for stale in glob.glob(pattern):
        shutil.rmtree(stale, ignore_errors=True)


def _swap_in(staging: Path, target: Path) -> None:
    """Make ``staging`` durable, swap it in, then make the swap durable: a power cut leaves
    the old folder or the whole new one, never a new folder of empty files."""
    sync_tree(staging)
    _rename_in(staging, target)
    sync_folder(target.parent)


def sync_tree(root: Path) -> None:
    """fsync every file and folder under ``root`` (and ``root``), deepest first."""
    for folder, _, files in os.walk(root, topdown=False):
        for name in files:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                _fsync(path, os.O_RDONLY)
        sync_folder(Path(folder))


def sync_folder(folder: Path) -> None:
    """fsync a folder, so that the names made or renamed in it survive a power cut."""
    _fsync(folder, os.O_RDONLY | os.O_DIRECTORY)


def _fsync(path: str | Path, flags: int) -> None:
    handle = os.open(path, flags)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _rename_in(staging: Path, target: Path) -> None:
    if not target.exists():
        staging.rename(target)
    elif _exchange(staging, target):
        shutil.rmtree(staging)  # it now holds the old folder
    else:
        replaced = _replaced(target)
        target.rename(replaced)
        staging.rename(target)
        shutil.rmtree(replaced)


def _exchange(first: Path, second: Path) -> bool:
    """Swap two paths atomically; False where the system cannot (then nothing changed)."""
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    c_int, c_path = ctypes.c_int, ctypes.c_char_p
    renameat2.argtypes = [c_int, c_path, c_int, c_path, ctypes.c_uint]
    done = renameat2(
        _AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE
    )
    if done == 0:
        return True
    code = ctypes.get_errno()
    if code in _UNSUPPORTED:
        return False
    raise OSError(code, os.strerror(code), str(second))
