"""One PBX call record, normalised: who called whom, when, answered or not, which agent."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import timezone
from typing import Any, Mapping

from ..config import Settings
from ..core.numbers import digits
from ..core.roles import RoleRules, is_agent, normalise_direction, role_rules
from ..core.times import month_of
from ..core.times import parse_time as core_parse_time
from ..store.migrations import CURRENT

CDR_SCHEMA = CURRENT["cdr"]
MAX_FIELD = 256
ANSWERED = {"answered", "answer", "ok", "normal_clearing", "200"}
DISPOSITIONS = ("answered", "no_answer", "busy", "failed")


class CdrError(ValueError):
    """A record that cannot be used; the message names the field and what is expected."""


@dataclass
class Context:
    """What normalisation needs from the settings."""

    rules: RoleRules
    tz: Any            # tzinfo for naive times, None for the box's local time

    @classmethod
    def from_settings(cls, settings: Settings) -> "Context":
        tz_name = settings.cdr.timezone
        if tz_name == "local":
            tz = None
        elif tz_name == "UTC":
            tz = timezone.utc
        else:
            from zoneinfo import ZoneInfo

            tz = ZoneInfo(tz_name)
        return cls(role_rules(settings.sip), tz)


def parse_time(value: Any, field: str, ctx: Context) -> float | None:
    """Epoch seconds from epoch numbers, ISO 8601 or 'YYYY-MM-DD HH:MM:SS' (PBX local time)."""
    try:
        return core_parse_time(value, field, ctx.tz)
    except ValueError as exc:
        raise CdrError(str(exc)) from None


def _text(raw: Mapping[str, Any], *names: str) -> str | None:
    for name in names:
        value = raw.get(name)
        if value not in (None, ""):
            if not isinstance(value, (str, int)) or isinstance(value, bool):
                raise CdrError(f"{name}: expected text, got {type(value).__name__}")
            text = str(value).strip()
            if len(text) > MAX_FIELD:
                raise CdrError(f"{name}: longer than {MAX_FIELD} characters")
            return text or None
    return None


def _channel_peer(channel: str | None) -> str | None:
    """'PJSIP/101-0000002a' -> '101' (the device of an Asterisk channel)."""
    m = re.match(r"^[A-Za-z0-9_]+/([^-@/;]+)", channel or "")
    return m.group(1) if m else None


def normalise(raw: Mapping[str, Any], ctx: Context, source: str = "api") -> dict[str, Any]:
    """The stored row for one record; raises CdrError saying what is wrong.

    Accepted fields: ``id``, ``call_id`` (SIP Call-ID), ``group`` (legs of one call, e.g.
    Asterisk's linkedid), ``start``, ``answer``, ``end``, ``from``, ``to``, ``direction``,
    ``agent``, ``disposition``, ``duration``, ``billsec``, and Asterisk's ``channel`` /
    ``dstchannel``.
    """
    if not isinstance(raw, Mapping):
        raise CdrError(f"a record must be a JSON object, got {type(raw).__name__}")
    start = parse_time(raw.get("start"), "start", ctx)
    if start is None:
        raise CdrError("start: missing (when the call began)")
    answer = parse_time(raw.get("answer"), "answer", ctx)
    end = parse_time(raw.get("end"), "end", ctx)
    src = _text(raw, "from", "src", "caller")
    dst = _text(raw, "to", "dst", "callee")
    if not src and not dst:
        raise CdrError("from/to: at least one number is needed")
    duration = _number(raw, "duration")
    billsec = _number(raw, "billsec")
    if answer is not None and answer < start:
        raise CdrError("answer: before start")
    if end is None:
        end = start + duration if duration is not None else (answer or start) + (billsec or 0.0)
    if end < start:
        raise CdrError("end: before start")
    if answer is not None and not start <= answer <= end + 1:
        raise CdrError("answer: not between start and end")
    disposition = (_text(raw, "disposition") or "").lower().replace(" ", "_")
    if disposition in ANSWERED or (not disposition and (answer is not None or (billsec or 0) > 0)):
        disposition = "answered"
    elif not disposition:
        disposition = "no_answer"
    elif disposition not in DISPOSITIONS:
        disposition = {"noanswer": "no_answer", "no_answer": "no_answer", "cancel": "no_answer",
                       "congestion": "failed", "chanunavail": "failed"}.get(disposition, "failed")
    answered = disposition == "answered"
    if answered and answer is None:
        answer = end - billsec if billsec is not None else start
    talk_s = round(billsec if billsec is not None else (end - answer if answered else 0.0), 3)

    channel_agent = _channel_peer(_text(raw, "channel"))
    dst_agent = _channel_peer(_text(raw, "dstchannel"))
    agent = _text(raw, "agent")
    direction = normalise_direction(_text(raw, "direction"))
    src_is_agent = is_agent(src, ctx.rules) or is_agent(channel_agent, ctx.rules)
    dst_is_agent = is_agent(dst, ctx.rules) or is_agent(dst_agent, ctx.rules)
    if direction is None:
        if src_is_agent and dst_is_agent:
            direction = "internal"
        elif src_is_agent:
            direction = "outbound"
        else:
            direction = "inbound"
    if agent is None:
        if direction == "outbound":
            agent = src if is_agent(src, ctx.rules) else channel_agent
        else:
            agent = (dst_agent if is_agent(dst_agent, ctx.rules) else None) or (
                dst if is_agent(dst, ctx.rules) else None)
    client = dst if direction == "outbound" else src if direction == "inbound" else None
    # A record's own id makes a re-post replace it; without one (Asterisk rows: several legs
    # share a uniqueid) the content is the identity, so a re-import adds nothing.
    fingerprint = hashlib.sha1(repr(sorted((k, str(v)) for k, v in raw.items())).encode()).hexdigest()[:16]
    own_id = _text(raw, "id") if source != "asterisk" else None
    return {
        "schema": CDR_SCHEMA,
        "id": f"{source}:{own_id or fingerprint}",
        "source": source,
        "call_id": _text(raw, "call_id", "sip_call_id"),
        "group": _text(raw, "group", "linkedid", "uniqueid", "id") or fingerprint,
        "start": start,
        "answer": answer if answered else None,
        "end": end,
        "month": month_of(start),
        "from": src,
        "to": dst,
        "direction": direction,
        "agent": agent,
        "client": client,
        "client_digits": digits(client),
        "disposition": disposition,
        "answered": answered,
        "ring_s": round(answer - start, 3) if answered and answer is not None else None,
        "talk_s": talk_s,
    }


def _number(raw: Mapping[str, Any], name: str) -> float | None:
    value = raw.get(name)
    if value in (None, ""):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise CdrError(f"{name}: {value!r} is not a number of seconds") from None
    if not 0 <= number <= 86400 * 2:
        raise CdrError(f"{name}: {number} s is out of range")
    return number


def from_freeswitch(doc: Mapping[str, Any]) -> dict[str, Any]:
    """FreeSWITCH ``mod_json_cdr`` document -> the fields ``normalise`` reads."""
    v = doc.get("variables") or {}
    if not isinstance(v, Mapping):
        raise CdrError("variables: expected an object (FreeSWITCH json_cdr)")

    def epoch(name: str) -> Any:
        value = v.get(name)
        return None if value in (None, "", "0") else value

    return {
        "id": v.get("uuid"), "call_id": v.get("sip_call_id"),
        "group": v.get("call_uuid") or v.get("uuid"),
        "start": epoch("start_epoch"), "answer": epoch("answer_epoch"), "end": epoch("end_epoch"),
        "from": v.get("caller_id_number") or v.get("sip_from_user"),
        "to": v.get("destination_number") or v.get("sip_to_user"),
        "billsec": v.get("billsec"),
        "disposition": "answered" if epoch("answer_epoch") else (
            "busy" if v.get("hangup_cause") == "USER_BUSY" else "no_answer"),
    }
