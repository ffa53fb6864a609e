"""An append-only journal: each acknowledged write is a line on disk before ``append`` returns.

Line format: ``<crc32 as 8 hex digits> <json>\\n``. A crash can only tear the last line; on
replay a torn tail is cut off (it was never acknowledged) and a corrupt line elsewhere (disk
trouble) is skipped and reported, so the rest still loads. A write that fails (a full disk,
an I/O error) is cut off at once, so the next acknowledged write starts on a clean line.
"""

from __future__ import annotations

import json
import logging
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..system.atomic import fsync_dir, sync_file, write_all

log = logging.getLogger(__name__)


def _line(record: dict[str, Any]) -> bytes:
    body = json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return b"%08x " % zlib.crc32(body) + body + b"\n"


def _parse(line: bytes) -> dict[str, Any] | None:
    if len(line) < 10 or line[8:9] != b" ":
        return None
    body = line[9:]
    try:
        if int(line[:8], 16) != zlib.crc32(body):
            return None
        return json.loads(body)
    except ValueError:
        return None


class Journal:
    """One journal file, opened for appending."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.bad_lines = 0
        self.torn_bytes = 0
        self._fd: int | None = None
        self._clean_end: int | None = None     # set while a failed write awaits its cut

    def replay(self) -> Iterator[dict[str, Any]]:
        """Records in order; cuts a torn tail off the file (it was never acknowledged)."""
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        good_end = 0
        pos = 0
        while pos < len(data):
            nl = data.find(b"\n", pos)
            if nl < 0:                      # no newline: the write of this line was cut
                break
            record = _parse(data[pos:nl])
            if record is None:
                self.bad_lines += 1
                log.error("journal line corrupt; skipped", extra={"journal": str(self.path),
                                                                 "offset": pos})
            else:
                yield record
            pos = nl + 1
            good_end = pos
        if good_end < len(data):
            self.torn_bytes = len(data) - good_end
            log.warning("journal tail torn by a crash; cut", extra={"journal": str(self.path),
                                                                   "bytes": self.torn_bytes})
            with open(self.path, "r+b") as fh:
                fh.truncate(good_end)
                os.fsync(fh.fileno())

    def append(self, records: list[dict[str, Any]]) -> None:
        """Write records and make them durable; returns only once they are on disk. On
        error nothing of them stays in the file (it is cut back) and the error is raised."""
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        if self._clean_end is not None:
            self._cut(self._clean_end)          # an earlier failed write could not be cut
        data = b"".join(_line(r) for r in records)
        end = os.fstat(self._fd).st_size
        try:
            write_all(self._fd, data)
            sync_file(self._fd, data_only=True)
        except OSError as exc:
            # A short write leaves part of a line, and a failed sync may leave all of it: either
            # way it was not acknowledged, and the next line must not be glued to it.
            try:
                self._cut(end)
            except OSError as cut_exc:
                self._clean_end = end
                log.error("journal not cut back after a failed write; retried at the next write",
                          extra={"journal": str(self.path), "reason": str(cut_exc)})
            log.error("journal write failed; nothing of it kept",
                      extra={"journal": str(self.path), "reason": str(exc)})
            raise

    def _cut(self, end: int) -> None:
        assert self._fd is not None
        os.ftruncate(self._fd, end)
        sync_file(self._fd, data_only=True)
        self._clean_end = None

    def retire(self, to: Path) -> None:
        """Move the journal to ``to`` (its records are in a new snapshot, kept as the
        previous journal); the next ``append`` starts a new one."""
        self.close()
        if self.path.exists():
            os.replace(self.path, to)
            fsync_dir(self.path.parent)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

