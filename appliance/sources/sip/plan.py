"""What to do with an incoming INVITE: which streams to answer, whose voice each carries, and
the call's metadata. Pure: decided from the message text and settings alone."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ...config import SipSettings
from ...core.frames import Party
from .message import (SipMessage, SipMessageError, body_parts, display_name, find_part,
                      sdp_media, uri_user)
from .metadata import MetadataError, RecordingMetadata, parse_metadata
from ...core.roles import RoleRules, Side, assign_roles, is_agent, normalise_direction, role_rules

RS_METADATA = "application/rs-metadata+xml"


@dataclass
class CallPlan:
    """The answer to an INVITE: accept (with how many streams) or reject (with a code)."""

    status: int = 200
    reason: str = "OK"
    audio_count: int = 0                          # m=audio lines to answer
    parties: dict[int, Party] = field(default_factory=dict)   # media index -> party
    labels: dict[int, str] = field(default_factory=dict)      # media index -> a=label
    source: str = "sip"                           # "sip" or "siprec"
    direction: str | None = None
    agent: str | None = None
    client: str | None = None
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)
    metadata: RecordingMetadata | None = None

    @property
    def accepted(self) -> bool:
        return self.status < 300


def _reject(status: int, reason: str) -> CallPlan:
    return CallPlan(status=status, reason=reason)


def plan_call(msg: SipMessage, sip: SipSettings) -> CallPlan:
    """Decide how to answer ``msg`` (an INVITE). Never raises on malformed input."""
    plan = _plan(msg, sip)
    plan.extra.setdefault("sip_call_id", msg.header("call-id"))
    return plan


def _plan(msg: SipMessage, sip: SipSettings) -> CallPlan:
    declared = msg.header("content-length")
    if declared and declared.strip().isdigit() and int(declared) > len(msg.body.encode()):
        # pjsip in the pjsua2 wheel receives at most 4000 bytes (PJSIP_MAX_PKT_LEN); the
        # rest of a larger INVITE is lost before it reaches us
        return _reject(513, "Message Too Large (over 4000 bytes; trim the SIPREC metadata)")
    try:
        parts = body_parts(msg)
    except SipMessageError as exc:
        return _reject(400, f"Bad Request ({exc})"[:120])
    sdp = find_part(parts, "application/sdp")
    if sdp is None:
        # Delayed offer (RFC 3261 s. 13.2.1, e.g. Cisco CUCM): the 200 OK carries the box's
        # offer of one stream, the ACK the answer. Recorded as a plain call.
        sdp_text = "m=audio 9 RTP/AVP 8\r\n"
        delayed = True
    else:
        sdp_text, delayed = sdp.text, False
    try:
        media = sdp_media(sdp_text)
    except SipMessageError as exc:
        return _reject(488, f"Not Acceptable Here ({exc})"[:120])
    audio = [m for m in media if m.kind == "audio" and m.port != 0]
    if not audio:
        return _reject(488, "Not Acceptable Here (no audio stream)")
    plan = CallPlan(audio_count=min(len([m for m in media if m.kind == "audio"]), sip.max_streams))
    if delayed:
        plan.notes.append("INVITE without SDP (delayed offer): the box offered one stream")
    if len(audio) > sip.max_streams:
        plan.notes.append(f"{len(audio)} audio streams offered; the first {sip.max_streams} answered")
    answered = [m for m in audio if m.index < _answered_limit(media, plan.audio_count)]
    plan.labels = {m.index: m.label for m in answered if m.label}   # echoed in the answer

    agent_hint = msg.header(sip.agent_header.lower())
    client_hint = msg.header(sip.client_header.lower())
    direction = normalise_direction(msg.header(sip.direction_header.lower()))
    rules = role_rules(sip)

    require = (msg.header("require") or "").lower()
    meta_part = find_part(parts, RS_METADATA)
    if ("siprec" in require or meta_part is not None) and not delayed:
        plan.source = "siprec"
        _plan_siprec(plan, answered, meta_part.text if meta_part else None, rules,
                     agent_hint, direction)
    else:
        _plan_plain(plan, answered, msg, rules, agent_hint, direction)
    if client_hint:
        plan.client = client_hint.strip()[:64]
    return plan


def _answered_limit(media: list, audio_count: int) -> int:
    """Media index one past the last audio line pjsua will answer (it answers the first
    ``audio_count`` audio lines in order)."""
    seen = 0
    for m in media:
        if m.kind == "audio":
            seen += 1
            if seen == audio_count:
                return m.index + 1
    return len(media)


def _plan_plain(plan: CallPlan, audio: list, msg: SipMessage, rules: RoleRules,
                agent_hint: str | None, direction: str | None) -> None:
    caller = Side(uri_user(msg.header("from")), display_name(msg.header("from")), caller=True)
    callee = Side(uri_user(msg.header("to")), display_name(msg.header("to")), caller=False)
    if len(audio) == 1:
        # One stream: the remote party's voice (a phone or the PBX calling the recorder).
        party: Party = "agent" if is_agent(caller.number, rules, agent_hint) else "client"
        plan.parties = {audio[0].index: party}
        if party == "agent":
            plan.agent, plan.client = caller.number, None
        else:
            plan.agent, plan.client = agent_hint, caller.number
        plan.direction = direction
        plan.extra["roles"] = f"single stream from the caller ({party})"
        return
    # Several streams without metadata: the first is the caller, the second the callee.
    roles = assign_roles([caller, callee], rules, agent_hint, direction)
    sides = [caller, callee]
    plan.parties = {audio[roles.agent].index: "agent", audio[roles.client].index: "client"}
    plan.agent, plan.client = sides[roles.agent].number, sides[roles.client].number
    plan.direction = roles.direction
    plan.extra["roles"] = roles.reason
    if len(audio) > 2:
        plan.notes.append(f"{len(audio) - 2} extra stream(s) not recorded")


def _plan_siprec(plan: CallPlan, audio: list, xml: str | None, rules: RoleRules,
                 agent_hint: str | None, direction: str | None) -> None:
    meta: RecordingMetadata | None = None
    if xml is None:
        plan.notes.append("SIPREC session without metadata; streams taken in order")
    else:
        try:
            meta = parse_metadata(xml)
        except MetadataError as exc:
            plan.notes.append(f"metadata ignored: {exc}; streams taken in order")
    plan.metadata = meta
    # streams whose label maps to exactly one participant carry that participant's voice
    voices: list[tuple[Any, Any]] = []     # (media line, participant or None)
    if meta is not None:
        plan.extra["siprec"] = {"session_id": meta.session_id, "layout": meta.layout,
                                "sip_session_id": meta.sip_session_id,
                                "participants": [{"id": p.participant_id, "aor": p.aor,
                                                  "name": p.name} for p in meta.participants]}
        for m in audio:
            p = meta.participant_for_label(m.label) if m.label else None
            if p is not None:
                voices.append((m, p))
            elif m.label is None:
                plan.notes.append(f"stream {m.index} has no label")
        mixed = [m.index for m in audio if m.label and meta.participant_for_label(m.label) is None]
        if mixed:
            plan.extra["ignored_streams"] = mixed     # mixed or unassociated: not a single voice
    if len(voices) < 2:         # no usable metadata: the first two streams, in order
        if meta is not None and meta.participants:
            plan.notes.append("metadata does not map two streams to two participants; "
                              "streams taken in order")
        voices = [(m, None) for m in audio[:2]]
    if len(voices) == 1:
        plan.parties = {voices[0][0].index: "client"}
        plan.notes.append("only one stream: recorded as the client")
        return
    voices = voices[:2]
    sides = [Side(uri_user(p.aor) if p else None, p.name if p else None,
                  caller=(i == 0) if p else None) for i, (_, p) in enumerate(voices)]
    roles = assign_roles(sides, rules, agent_hint, direction)
    plan.parties = {voices[roles.agent][0].index: "agent", voices[roles.client][0].index: "client"}
    plan.agent, plan.client = sides[roles.agent].number, sides[roles.client].number
    plan.extra["agent_name"] = sides[roles.agent].name
    plan.extra["client_name"] = sides[roles.client].name
    plan.direction = roles.direction
    plan.extra["roles"] = roles.reason


def update_from_reinvite(plan: CallPlan, msg: SipMessage) -> list[str]:
    """Merge new metadata from a re-INVITE into the plan; return what changed (for the log).

    The stream-to-party mapping stays as answered: a transfer changes who is on a stream,
    which is recorded as a participant change, not a re-mapping of the recording's channels.
    """
    try:
        part = find_part(body_parts(msg), RS_METADATA)
    except SipMessageError as exc:
        return [f"re-INVITE body ignored: {exc}"]
    if part is None:
        return []
    try:
        update = parse_metadata(part.text)
    except MetadataError as exc:
        return [f"re-INVITE metadata ignored: {exc}"]
    if plan.metadata is None:
        plan.metadata = update
    else:
        plan.metadata.merge(update)
    names = [p.aor or p.participant_id for p in plan.metadata.participants]
    plan.extra.setdefault("metadata_updates", 0)
    plan.extra["metadata_updates"] += 1
    plan.extra.setdefault("siprec", {})["participants"] = [
        {"id": p.participant_id, "aor": p.aor, "name": p.name} for p in plan.metadata.participants]
    return [f"participants now {', '.join(n for n in names if n)}"]


def hold_from_metadata(plan: CallPlan, msg: SipMessage) -> dict[str, bool]:
    """Which recorded parties new SIPREC metadata in a re-INVITE puts on hold (True) or takes
    off it (False): a participant whose stream association (RFC 7865
    ``participantstreamassoc``) lists no stream it sends has stopped sending (a hold), one
    that lists streams again is back. Read against the metadata known before the update,
    which says which stream was theirs."""
    if plan.metadata is None:
        return {}
    try:
        part = find_part(body_parts(msg), RS_METADATA)
        update = parse_metadata(part.text) if part is not None else None
    except (SipMessageError, MetadataError):
        return {}
    if update is None:
        return {}
    index_of = {label: index for index, label in plan.labels.items()}
    out: dict[str, bool] = {}
    for p in plan.metadata.participants:
        if p.participant_id not in update.sending:
            continue
        for sid in p.sends:
            party = plan.parties.get(index_of.get(plan.metadata.labels.get(sid, ""), -1))
            if party is not None:
                out[party] = not update.sending[p.participant_id]
    return out


def hold_from_reinvite(plan: CallPlan, msg: SipMessage) -> dict[str, bool]:
    """Which recorded parties a re-INVITE puts on hold (True) or takes off it
    (False), from its SDP's direction attributes; parties it does not mention are left out.

    A plain call's stream carries the party who offered it: ``sendonly`` or ``inactive``
    from them is their hold (RFC 3264 s. 8.4). A SIPREC stream is always ``sendonly``; the
    recording client pauses it with ``inactive`` (RFC 7866 s. 9.3), which is how recording
    clients report a participant's hold.
    """
    try:
        part = find_part(body_parts(msg), "application/sdp")
        media = sdp_media(part.text) if part is not None else []
    except SipMessageError:
        return {}
    held = ("inactive",) if plan.source == "siprec" else ("sendonly", "inactive")
    out: dict[str, bool] = {}
    for m in media:
        party = plan.parties.get(m.index)
        if party is not None and m.kind == "audio":
            out[party] = m.direction in held
    return out
