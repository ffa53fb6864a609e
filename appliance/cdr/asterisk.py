"""Asterisk's ``Master.csv`` (cdr_csv): one row per call leg, no header.

Columns: accountcode, src, dst, dcontext, clid, channel, dstchannel, lastapp, lastdata,
start, answer, end, duration, billsec, disposition, amaflags, then ``uniqueid`` and
``userfield`` when ``loguniqueid`` / ``loguserfield`` are on, and in newer versions
``peeraccount``, ``linkedid``, ``sequence``. Exports from cdr_adaptive_odbc or a database
carry a header row naming the columns (``calldate`` for start); those are read by name.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any

from .record import CdrError, Context, normalise

COLUMNS = ["accountcode", "src", "dst", "dcontext", "clid", "channel", "dstchannel", "lastapp",
           "lastdata", "start", "answer", "end", "duration", "billsec", "disposition",
           "amaflags", "uniqueid", "userfield", "peeraccount", "linkedid", "sequence"]
MAX_LINE = 8192


@dataclass
class Import:
    """Rows read from one file: the good ones and, per bad line, what was wrong."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    errors: list[tuple[int, str]] = field(default_factory=list)
    lines: int = 0


def decode_csv(raw: bytes) -> str:
    """Master.csv as text: UTF-8, else cp1251 (what older Russian-locale PBXs write)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("cp1251", errors="replace")


def _fields(values: list[str], header: list[str] | None) -> dict[str, str]:
    if header is not None:
        if len(values) != len(header):
            raise CdrError(f"{len(values)} columns, the header has {len(header)}")
        named = dict(zip(header, values))
        named.setdefault("start", named.get("calldate", ""))
        return named
    if len(values) < 16:
        raise CdrError(f"{len(values)} columns; Master.csv rows have at least 16 "
                       "(accountcode ... amaflags)")
    return dict(zip(COLUMNS, values))


def read_master_csv(text: str, ctx: Context) -> Import:
    """Parse Master.csv text; bad rows are reported with their line number, good rows kept."""
    out = Import()
    header: list[str] | None = None
    reader = csv.reader(io.StringIO(text))
    line = 0
    while True:
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            out.errors.append((reader.line_num, f"unreadable CSV: {exc}"))
            line = reader.line_num
            continue
        first, line = line + 1, reader.line_num
        if not values or all(not v.strip() for v in values):
            continue
        out.lines += 1
        if header is None and out.lines == 1 and {"src", "dst"} <= {v.strip().lower() for v in values}:
            header = [v.strip().lower() for v in values]
            continue
        try:
            if sum(len(v) for v in values) > MAX_LINE:
                raise CdrError(f"longer than {MAX_LINE} characters")
            named = _fields(values, header)
            raw: dict[str, Any] = {
                "uniqueid": named.get("uniqueid") or None,
                "group": named.get("linkedid") or named.get("uniqueid") or None,
                "call_id": named.get("userfield") if "@" in (named.get("userfield") or "") else None,
                "start": named.get("start"), "answer": named.get("answer") or None,
                "end": named.get("end") or None, "from": named.get("src"), "to": named.get("dst"),
                "channel": named.get("channel"), "dstchannel": named.get("dstchannel"),
                "duration": named.get("duration"), "billsec": named.get("billsec"),
                "disposition": named.get("disposition"),
            }
            out.rows.append(normalise({k: v for k, v in raw.items() if v not in (None, "")},
                                      ctx, source="asterisk"))
        except CdrError as exc:
            out.errors.append((first, str(exc)))
    return out
