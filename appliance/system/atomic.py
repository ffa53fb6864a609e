"""Durable file writes: a crash leaves the old file or the new one, never half of either."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path


def fsync_dir(path: Path) -> None:
    dir_fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_text_atomic(path: Path, text: str | bytes, mode: int = 0o644) -> None:
    """Write to a temporary file (created with ``mode``: 0o600 for secrets), fsync it,
    rename it over ``path``, fsync the folder."""
    # unique per writer thread: two threads saving the same file must not share a temp file
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as fh:
        fh.write(text.encode("utf-8") if isinstance(text, str) else text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def write_json_atomic(path: Path, data: object, mode: int = 0o644) -> None:
    """``data`` as JSON, written as ``write_text_atomic`` does."""
    write_text_atomic(path, json.dumps(data, ensure_ascii=False, indent=1), mode)
