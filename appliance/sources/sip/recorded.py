"""One answered call's recording, tied to the SIP dialog it answered. No SIP stack here.

The pjsua2 side (``call.py``) lives only as long as pjsua's call slot belongs to this dialog;
this object lives until the recording and its analysis are final. Whatever ends the call
(BYE, CANCEL, a failed set-up, RTP timeout, session timer, shutdown), ``finish`` runs the
end of the recording exactly once.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from ...config import Settings
from ...core.frames import FRAME_S, PARTIES, Party
from ...media.live import LiveCall, new_uid
from ...media.session import CallMeta, Stages
from .message import SipMessage, SipMessageError, header_tag, parse_message
from .plan import CallPlan, hold_from_metadata, hold_from_reinvite, update_from_reinvite

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Dialog:
    """A SIP dialog as the box answered it: Call-ID and the caller's tag (the box's own tag is
    added when the caller's ACK confirms it), and what it takes to end the dialog from the
    box's side if the process recording it dies (``orphans.py``)."""

    call_id: str
    remote_tag: str
    local_tag: str = ""
    remote_uri: str = ""            # the caller's From (without its tag)
    local_uri: str = ""             # the To of the INVITE
    remote_target: str = ""         # the caller's Contact URI
    routes: tuple[str, ...] = ()    # Record-Route of the INVITE, in order

    @classmethod
    def of_invite(cls, raw: str) -> "Dialog":
        try:
            msg: SipMessage | None = parse_message(raw)
        except SipMessageError:
            msg = None
        if msg is None:
            return cls("", "")
        routes = tuple(r.strip() for k, v in msg.headers if k == "record-route"
                       for r in v.split(",") if r.strip())
        return cls((msg.header("call-id") or "")[:200], header_tag(msg.header("from"))[:100],
                   remote_uri=_without_tag(msg.header("from"))[:300],
                   local_uri=_without_tag(msg.header("to"))[:300],
                   remote_target=_uri_of(msg.header("contact"))[:300], routes=routes[:8])

    @property
    def key(self) -> tuple[str, str]:
        """What identifies the dialog before the answer (the caller's side)."""
        return (self.call_id, self.remote_tag)

    def as_dict(self) -> dict[str, Any]:
        return {"call_id": self.call_id, "remote_tag": self.remote_tag,
                "local_tag": self.local_tag, "remote_uri": self.remote_uri,
                "local_uri": self.local_uri, "remote_target": self.remote_target,
                "routes": list(self.routes)}


def _without_tag(value: str | None) -> str:
    return re.sub(r";\s*tag=[^;>\s,]+", "", value or "").strip()


def _uri_of(value: str | None) -> str:
    value = (value or "").strip()
    if "<" in value and ">" in value:
        return value[value.index("<") + 1:value.index(">")]
    return value.split(";")[0]


class RecordedCall:
    """The recording of one answered call; ``finish`` ends it once, from any thread."""

    def __init__(self, settings: Settings, plan: CallPlan, dialog: Dialog,
                 stages: Stages | None, on_done: Callable[[dict[str, Any]], None] | None = None
                 ) -> None:
        self.settings = settings
        self.plan = plan
        self.dialog = dialog
        self.uid = new_uid()
        self.frames: dict[int, int] = {}             # media index -> frames tapped
        self.rtp_stats: dict[int, dict[str, Any]] = {}
        self.media_started: float | None = None
        self.ended_at: float | None = None
        self.end_reason: str | None = None
        self.hold_changed_at = 0.0                   # monotonic time of the last hold change
        self._held: dict[str, bool] = {}             # party -> on hold, by the latest signal
        self._lock = threading.Lock()
        meta = CallMeta(source=plan.source, call_id=self.uid, direction=plan.direction,
                        agent=plan.agent, client=plan.client, notes=list(plan.notes),
                        extra={**plan.extra, "dialog": dialog.as_dict()})
        parties = tuple(p for p in PARTIES if p in plan.parties.values())
        self.live = LiveCall(settings, meta, stages, self.uid, parties=parties, on_done=on_done)
        log.info("call recording", extra={"uid": self.uid, "source": plan.source,
                                          "sip_call_id": dialog.call_id, "agent": plan.agent,
                                          "client": plan.client, "streams": plan.audio_count,
                                          "roles": plan.extra.get("roles")})

    @property
    def ended(self) -> bool:
        return self.ended_at is not None

    @property
    def on_hold(self) -> bool:
        """A party of the call is on hold now, by the latest SIP signal about it (SDP or
        metadata, whichever came last): its RTP may stop."""
        return any(self._held.values())

    def sink(self, index: int, party: Party) -> Callable[[bytes], None]:
        """What a media tap calls with each frame of stream ``index`` (media-clock thread:
        a counter and a queue append, nothing else)."""
        frames, push = self.frames, self.live.push
        frames.setdefault(index, 0)

        def take(pcm: bytes) -> None:
            frames[index] += 1
            push(party, pcm)
        return take

    def media_tapped(self, now: float) -> None:
        if self.media_started is None:
            self.media_started = now

    def confirmed(self, ack: str) -> None:
        """The caller's ACK (text) confirmed the dialog: its To carries the box's tag."""
        try:
            local_tag = header_tag(parse_message(ack).header("to"))
        except SipMessageError:
            return
        if local_tag and not self.dialog.local_tag and not self.ended:
            self.dialog = replace(self.dialog, local_tag=local_tag[:100])
            self.live.meta.extra["dialog"] = self.dialog.as_dict()
            self.live.meta_changed()

    def reinvite(self, raw: str) -> None:
        """A re-INVITE: new SIPREC metadata is merged into the call's record, and a stream put
        on hold or taken off it is noted with the call's media time."""
        try:
            msg = parse_message(raw)
        except SipMessageError:
            return
        # what the SDP says, and what the metadata says (read before the update merges it);
        # each opens and closes its own holds
        self._hold_state(hold_from_reinvite(self.plan, msg), "sdp")
        self._hold_state(hold_from_metadata(self.plan, msg), "metadata")
        changes = update_from_reinvite(self.plan, msg)
        if changes and not self.ended:
            self.live.meta.extra.update({k: v for k, v in self.plan.extra.items()
                                         if k in ("siprec", "metadata_updates")})
            self.live.meta_changed()
            log.info("metadata updated", extra={"uid": self.uid, "change": "; ".join(changes)})

    def _hold_state(self, held: dict[str, bool], by: str) -> None:
        """Open or close each party's SIP hold that ``by`` (``sdp``, ``metadata``) signals
        (``meta.extra["sip_holds"]``: [party, start s, end s or None, by], in the call's
        media time: frames tapped so far)."""
        if not held or self.ended:
            return
        if any(self._held.get(p, False) != on for p, on in held.items()):
            self.hold_changed_at = time.monotonic()
        self._held.update(held)
        now = round(max(self.frames.values(), default=0) * FRAME_S, 2)
        holds = self.live.meta.extra.setdefault("sip_holds", [])
        changed = False
        for party, on in held.items():
            open_ = next((h for h in holds if h[0] == party and h[2] is None and h[3] == by),
                         None)
            if on and open_ is None:
                holds.append([party, now, None, by])
                changed = True
            elif not on and open_ is not None:
                open_[2] = now
                changed = True
        if changed:
            self.live.meta_changed()
            log.info("hold state", extra={"uid": self.uid, "at_s": now,
                                          "held": sorted(p for p, on in held.items() if on)})

    def finish(self, reason: str) -> bool:
        """End the recording (the analysis finalizes on the call's own thread). Only the first
        call does anything; returns whether this one did."""
        with self._lock:
            if self.ended_at is not None:
                return False
            self.ended_at = time.monotonic()
            self.end_reason = reason
        media_s = self.ended_at - self.media_started if self.media_started else 0.0
        self.live.meta.extra["media"] = {
            "seconds": round(media_s, 2),
            "streams": {self.plan.parties[i]: dict(st, label=self.plan.labels.get(i))
                        for i, st in self.rtp_stats.items() if i in self.plan.parties}}
        self.live.end(reason)
        log.info("call ended", extra={"uid": self.uid, "reason": reason,
                                      "sip_call_id": self.dialog.call_id})
        return True

    def capture_info(self) -> dict[str, Any]:
        return {"uid": self.uid, "source": self.plan.source, "agent": self.plan.agent,
                "client": self.plan.client, "sip_call_id": self.dialog.call_id,
                "frames": dict(self.frames)}
