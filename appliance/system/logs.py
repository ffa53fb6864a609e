"""Structured, greppable log lines: `ts level logger event key=value ...`."""

from __future__ import annotations

import logging
import os
import sys
from collections import deque
from typing import Any

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


def setup_logging(level: str = "INFO") -> None:
    """Route all appliance logs to stderr in key=value form (and keep the recent ones)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(KeyValueFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler, RECENT]
    root.setLevel(level.upper())
