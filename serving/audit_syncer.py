"""The audit log's flush, and the flushing process of each serving worker
(``serving.audit_flush``) that runs it.

As a script (``python -I -S audit_syncer.py LOG``) it imports nothing but ``os`` and
``sys``. Each line read from stdin asks for one flush of the file at LOG now; each is
answered with one line: ``0 INODE SIZE`` (every byte of that file below SIZE, written before
the flush began, is on disk) or ``ERRNO MESSAGE``. It ends when stdin closes (its worker
ended or closed the log).
"""

import os
import sys


def flush(path: str) -> tuple[int, int]:
    """``fdatasync`` the file at ``path`` now (its data and size: what a reader needs);
    the inode and size it covered. A log that is not there (between a rotation's rename and
    the next line) gives (0, 0): the file rotated away was flushed by the rotation."""
    try:
        handle = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return 0, 0
    try:
        stat = os.fstat(handle)
        os.fdatasync(handle)
    finally:
        os.close(handle)
    return stat.st_ino, stat.st_size


def answer(path: str) -> bytes:
    """One flush of ``path``, as its answer line."""
    try:
        inode, size = flush(path)
    except OSError as exc:
        return f"{exc.errno or 5} {exc.strerror or exc}\n".encode()
    return f"0 {inode} {size}\n".encode()


def main() -> None:
    path = sys.argv[1]
    for _ in sys.stdin.buffer:
        sys.stdout.buffer.write(answer(path))
        sys.stdout.buffer.flush()


if __name__ == "__main__":
    main()
