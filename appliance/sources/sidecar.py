"""What the PBX knows about a recording it wrote, kept beside the file in the inbox as
``<name>.meta.json``: the agent, the client, the direction, when the call started and its
SIP Call-ID. The upload API writes it; a script that copies files into the inbox may too.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Mapping

from ..cdr.record import CdrError, Context, parse_time

FIELDS = ("agent", "client", "direction", "started_at", "call_id")
_TEXT = re.compile(r"[\w+@.:*#() /-]{1,64}")


class SidecarError(ValueError):
    """Call information that cannot be used; the message names the field."""


def sidecar_path(audio: Path) -> Path:
    return audio.with_name(f"{audio.stem}.meta.json")


def normalise_info(raw: Mapping[str, Any], ctx: Context) -> dict[str, Any]:
    """The known fields of ``raw``, checked: numbers and ids as text, ``direction``
    inbound/outbound, ``started_at`` as epoch seconds (ISO 8601 or epoch in)."""
    unknown = sorted(set(raw) - set(FIELDS) - {"file"})
    if unknown:
        raise SidecarError(f"unknown fields {unknown}; known: {', '.join(FIELDS)}")
    info: dict[str, Any] = {}
    for name in ("agent", "client"):
        value = str(raw.get(name) or "").strip()
        if value:
            if not _TEXT.fullmatch(value):
                raise SidecarError(f"{name}: {value[:40]!r} is not a phone number or extension")
            info[name] = value
    direction = str(raw.get("direction") or "").strip().lower()
    if direction:
        if direction not in ("inbound", "outbound"):
            raise SidecarError(f"direction: {direction[:20]!r}; use inbound or outbound")
        info["direction"] = direction
    call_id = str(raw.get("call_id") or "").strip()
    if call_id:
        if len(call_id) > 200 or not call_id.isprintable():
            raise SidecarError("call_id: at most 200 printable characters")
        info["call_id"] = call_id
    try:
        started = parse_time(raw.get("started_at"), "started_at", ctx)
    except CdrError as exc:
        raise SidecarError(str(exc)) from None
    if started is not None:
        info["started_at"] = started
    return info


def read_sidecar(audio: Path, ctx: Context) -> dict[str, Any]:
    """The checked information beside ``audio``; ``{}`` when there is none."""
    path = sidecar_path(audio)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise SidecarError(f"{path.name}: not readable JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise SidecarError(f"{path.name}: must hold a JSON object")
    return normalise_info(raw, ctx)
