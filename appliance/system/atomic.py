"""Durable file writes: a crash leaves the old file or the new one, never half of either,
and a write that fails (a full disk, an I/O error) leaves no temporary file behind.

Standard library only: the slot check installs a copy of this module outside the slots.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path

# The system calls that reach the disk, looked up at each call: tests replace them to
# inject the errors a real disk gives (ENOSPC part-way through a write, EIO at a sync).
_os_write = os.write
_os_fsync = os.fsync
_os_fdatasync = os.fdatasync


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` (``os.write`` may write less than asked)."""
    view = memoryview(data)
    while view:
        view = view[_os_write(fd, view):]


def sync_file(fd: int, data_only: bool = False) -> None:
    """``fsync`` (or ``fdatasync``) a file descriptor."""
    (_os_fdatasync if data_only else _os_fsync)(fd)


def fsync_dir(path: Path) -> None:
    dir_fd = os.open(path, os.O_RDONLY)
    try:
        _os_fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_temp(path: Path, data: bytes, mode: int = 0o644, durable: bool = True) -> Path:
    """``data`` in a new temporary file beside ``path``, synced (if ``durable``); the caller
    renames it. On error the temporary file is removed and the error raised."""
    # unique per writer thread: two threads saving the same file must not share a temp file
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        write_all(fd, data)
        if durable:
            sync_file(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    return tmp


def write_text_atomic(path: Path, text: str | bytes, mode: int = 0o644,
                      durable: bool = True) -> None:
    """Write to a temporary file (created with ``mode``: 0o600 for secrets), fsync it,
    rename it over ``path``, fsync the folder. On error ``path`` is as it was.
    ``durable=False`` skips the syncs: running readers still see the old file or the new
    one, but after a power cut it may be either, or empty (for state snapshots rewritten
    every few seconds, whose readers take an unreadable one as absent, and whose syncs
    would only make their writers wait on a busy disk)."""
    tmp = write_temp(path, text.encode("utf-8") if isinstance(text, str) else text, mode,
                     durable)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_dir(path.parent)


def write_json_atomic(path: Path, data: object, mode: int = 0o644, durable: bool = True) -> None:
    """``data`` as JSON, written as ``write_text_atomic`` does."""
    write_text_atomic(path, json.dumps(data, ensure_ascii=False, indent=1), mode, durable)


@contextlib.contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` for a writer that streams (an encoder, a copy):
    synced and renamed over ``path`` when the block ends, removed if it raises."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        yield tmp
        fd = os.open(tmp, os.O_RDONLY)
        try:
            sync_file(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)
