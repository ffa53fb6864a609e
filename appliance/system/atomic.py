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


def write_json_atomic(path: Path, data: object) -> None:
    """Write JSON to a temporary file, fsync it, rename it over ``path``, fsync the folder."""
    # unique per writer thread: two threads saving the same file must not share a temp file
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, ensure_ascii=False, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)
