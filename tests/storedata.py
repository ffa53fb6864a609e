"""Hand-made calls for store and KPI tests."""

from __future__ import annotations

import time


def at(month: int, day: int, hour: int, minute: int = 0, second: int = 0, year: int = 2026) -> float:
    return time.mktime((year, month, day, hour, minute, second, 0, 0, -1))


def result(uid: str, started: float, agent: str = "101", client: str = "79161234567",
           direction: str = "inbound", score: int | None = 80, talk_share: float = 0.6,
           interruptions: int = 2, dead_air: float = 0.05, duration: float = 61.0,
           tags: tuple[str, ...] = ("greeting",), sip_call_id: str | None = None,
           holds: tuple[float, ...] | None = None) -> dict:
    """A ``call-analysis/1`` result as a source writes it (``holds``: their lengths; None:
    written before holds were detected)."""
    extra = {"uid": uid}
    if sip_call_id:
        extra["sip_call_id"] = sip_call_id
    out = {"schema": "call-analysis/1",
           "call": {"source": "sip", "call_id": uid, "started_at": started,
                    "direction": direction, "agent": agent, "client": client, "notes": [],
                    "extra": extra},
           "duration_s": duration,
           "parties": {"agent": {"talk_share": talk_share, "interruptions_made": interruptions},
                       "client": {"interruptions_made": 1}},
           "totals": {"dead_air_share": dead_air},
           "tags": [{"tag": t} for t in tags],
           "score": {"total": score}, "asr": {"status": "ok"}}
    if holds is not None:
        out["holds"] = [{"party": "agent", "start": 10.0 * i, "end": 10.0 * i + h,
                         "duration_s": h, "by": ["music"]} for i, h in enumerate(holds)]
        out["totals"]["hold_s"] = round(sum(holds), 2)
    return out


def corrupt_line(journal, n: int = 0) -> None:
    """Flip a byte inside line ``n`` of a journal: its CRC no longer matches (disk trouble)."""
    lines = journal.read_bytes().split(b"\n")
    line = bytearray(lines[n])
    line[20] ^= 0x01
    lines[n] = bytes(line)
    journal.write_bytes(b"\n".join(lines))
