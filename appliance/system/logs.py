"""Structured, greppable log lines: `ts level logger event key=value ...`."""

from __future__ import annotations

import faulthandler
import logging
import os
import sys
import threading
from collections import deque
from typing import Any, TextIO

# capture workers log into the same stream as the daemon: tag their lines
_WORKER = os.environ.get("APPLIANCE_WORKER", "")
_RESERVED = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


def _fmt_value(value: Any) -> str:
    text = str(value)
    if not text or any(ch in text for ch in ' "=\n'):
        text = '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


class KeyValueFormatter(logging.Formatter):
    """Formats a record as one line; extra fields become key=value pairs."""

    def format(self, record: logging.LogRecord) -> str:
        ts = self.formatTime(record, "%Y-%m-%dT%H:%M:%S")
        parts = [f"{ts}.{int(record.msecs):03d}", record.levelname.lower(), record.name,
                 record.getMessage()]
        if _WORKER:
            parts.append(f"worker={_WORKER}")
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                parts.append(f"{key}={_fmt_value(value)}")
        line = " ".join(parts)
        if record.exc_info:
            line += " exc=" + _fmt_value(self.formatException(record.exc_info))
        return line


class RecentLines(logging.Handler):
    """The last lines logged, for the panel's system page (the journal keeps them all)."""

    def __init__(self, size: int = 500) -> None:
        super().__init__()
        self.lines: deque[tuple[str, str]] = deque(maxlen=size)
        self.setFormatter(KeyValueFormatter())

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append((record.levelname.lower(), self.format(record)))
        except Exception:       # noqa: BLE001 - logging must never raise
            self.handleError(record)


RECENT = RecentLines()


PIPE_BUF = 4096


def _chunks(lines: list[str]) -> list[str]:
    """Whole lines in writes of at most PIPE_BUF bytes (a longer line alone): the daemon, its
    workers and the SIP front share one pipe to the journal, where a larger write can be
    interleaved with another process's lines."""
    out: list[str] = []
    chunk: list[str] = []
    size = 0
    for line in lines:
        n = len(line.encode("utf-8", "replace")) + 1
        if chunk and size + n > PIPE_BUF:
            out.append("\n".join(chunk) + "\n")
            chunk, size = [], 0
        chunk.append(line)
        size += n
    if chunk:
        out.append("\n".join(chunk) + "\n")
    return out


class BackgroundStream(logging.Handler):
    """Lines formatted on the thread that logs, written to ``stream`` on a thread of their
    own: a stalled stream (the journal's pipe full, a disk stalled in a journal commit) never
    stops the SIP thread or a media thread of a running box. At most ``limit`` lines wait;
    beyond that lines are dropped, and how many is logged once the stream moves again."""

    def __init__(self, stream: TextIO, limit: int = 20000) -> None:
        super().__init__()
        self.stream = stream
        self.limit = limit
        self._lines: deque[str] = deque()
        self._dropped = 0
        self._busy = False
        self._closed = False
        self._cv = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)
        self._thread.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:       # noqa: BLE001 - logging must never raise
            self.handleError(record)
            return
        with self._cv:
            if len(self._lines) >= self.limit:
                self._dropped += 1
                return
            self._lines.append(line)
            self._cv.notify_all()
        if record.levelno >= logging.ERROR:
            self.flush(0.2)     # what explains a crash should not die queued: a short wait

    def flush(self, timeout: float = 5.0) -> None:
        """Wait (at most ``timeout``) until every line so far is written."""
        with self._cv:
            self._cv.wait_for(lambda: not self._lines and not self._busy, timeout)

    def close(self) -> None:
        self.flush()
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        super().close()

    def _run(self) -> None:
        while True:
            with self._cv:
                self._cv.wait_for(lambda: self._lines or self._closed)
                if not self._lines:
                    return
                lines, dropped = list(self._lines), self._dropped
                self._lines.clear()
                self._dropped = 0
                self._busy = True
            if dropped:
                lines.append(self.format(logging.makeLogRecord({
                    "name": __name__, "levelno": logging.WARNING, "levelname": "WARNING",
                    "msg": "log lines dropped", "count": dropped,
                    "reason": "the log stream was stalled"})))
            try:
                for chunk in _chunks(lines):
                    self.stream.write(chunk)
                    self.stream.flush()
            except Exception:   # noqa: BLE001 - nowhere left to report it
                pass
            with self._cv:
                self._busy = False
                self._cv.notify_all()


def setup_logging(level: str = "INFO", background: bool = False) -> None:
    """Route all appliance logs to stderr in key=value form (and keep the recent ones).
    ``background``: written by a thread of their own (a running box; see BackgroundStream)."""
    handler: logging.Handler = (BackgroundStream(sys.stderr) if background
                                else logging.StreamHandler(sys.stderr))
    handler.setFormatter(KeyValueFormatter())
    root = logging.getLogger()
    previous = list(root.handlers)
    root.handlers[:] = [handler, RECENT]
    root.setLevel(level.upper())
    for old in previous:
        if isinstance(old, BackgroundStream):
            old.close()
    if background:
        faulthandler.enable()       # a crash's traceback straight to stderr, not queued
