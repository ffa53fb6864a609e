"""One answered SIP call or SIPREC session: taps its streams into a ``LiveCall``."""

from __future__ import annotations

import functools
import logging
import re
import secrets
import time
from typing import TYPE_CHECKING, Any

import pjsua2 as pj

from ...media.frames import PARTIES
from ...media.live import LiveCall
from ...media.session import CallMeta
from .message import SipMessageError, parse_message
from .plan import CallPlan, update_from_reinvite
from .tap import TapPort

if TYPE_CHECKING:
    from .endpoint import SipEndpoint

log = logging.getLogger(__name__)

_MEDIA_OK = (pj.PJSUA_CALL_MEDIA_ACTIVE, pj.PJSUA_CALL_MEDIA_REMOTE_HOLD)


def new_uid() -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"


class RecordedCall(pj.Call):
    """A call the box answered; its streams go to one ``LiveCall``."""

    def __init__(self, endpoint: "SipEndpoint", account: pj.Account, call_id: int,
                 plan: CallPlan) -> None:
        super().__init__(account, call_id)
        self.endpoint = endpoint
        self.plan = plan
        self.uid = new_uid()
        self.taps: dict[int, TapPort] = {}
        self.tap_slots: dict[int, int] = {}
        self.rx_packets: dict[int, int] = {}
        self.rtp_stats: dict[int, dict[str, Any]] = {}
        self.media_started: float | None = None
        self.last_rx = time.monotonic()
        self.live: LiveCall | None = None
        self.ended_at: float | None = None
        self.end_reason = "hangup"

    # --- lifecycle ---
    def start_recording(self) -> None:
        plan = self.plan
        meta = CallMeta(source=plan.source, call_id=self.uid, direction=plan.direction,
                        agent=plan.agent, client=plan.client, notes=list(plan.notes),
                        extra=dict(plan.extra))
        parties = tuple(p for p in PARTIES if p in plan.parties.values())
        self.live = LiveCall(self.endpoint.settings, meta, self.endpoint.stages, self.uid,
                             parties=parties, on_done=self.endpoint.call_done)
        log.info("call recording", extra={"uid": self.uid, "source": plan.source,
                                          "sip_call_id": plan.extra.get("sip_call_id"),
                                          "agent": plan.agent, "client": plan.client,
                                          "streams": plan.audio_count,
                                          "roles": plan.extra.get("roles")})

    def finish(self, reason: str) -> None:
        """End the recording (idempotent): the live call finalizes on its own thread."""
        if self.ended_at is not None:
            return
        self.ended_at = time.monotonic()
        if self.live is not None:
            media_s = self.ended_at - self.media_started if self.media_started else 0.0
            self.live.meta.extra["media"] = {
                "seconds": round(media_s, 2),
                "streams": {self.plan.parties[i]: dict(st, label=self.plan.labels.get(i))
                            for i, st in self.rtp_stats.items() if i in self.plan.parties}}
            self.live.end(reason)
        self.endpoint.call_ended(self)

    # --- pjsua2 callbacks (pjsua worker thread) ---
    def onCallState(self, prm: pj.OnCallStateParam) -> None:  # noqa: N802
        ci = self.getInfo()
        if ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            reason = self.end_reason if self.end_reason != "hangup" else (
                f"{ci.lastStatusCode} {ci.lastReason}".strip())
            self.finish(reason)

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:  # noqa: N802
        if self.live is None:
            return
        ci = self.getInfo()
        for mi in ci.media:
            party = self.plan.parties.get(mi.index)
            if party is None or mi.type != pj.PJMEDIA_TYPE_AUDIO or mi.status not in _MEDIA_OK:
                continue
            if self.tap_slots.get(mi.index) == mi.audioConfSlot:
                continue        # already tapped (a re-INVITE kept the stream)
            aud = self.getAudioMedia(mi.index)
            tap = self.taps.get(mi.index)
            if tap is None:
                tap = TapPort(f"tap-{self.uid}-{mi.index}",
                              functools.partial(self.live.push, party))
                self.taps[mi.index] = tap
            aud.startTransmit(tap)
            self.tap_slots[mi.index] = mi.audioConfSlot
            if self.media_started is None:
                self.media_started = time.monotonic()
            log.info("stream tapped", extra={"uid": self.uid, "media": mi.index, "party": party,
                                             "label": self.plan.labels.get(mi.index)})

    def onCallSdpCreated(self, prm: pj.OnCallSdpCreatedParam) -> None:  # noqa: N802
        # SIPREC (RFC 7866 s. 8.1.1): the answer repeats each stream's a=label
        if not self.plan.labels:
            return
        if not prm.sdp.wholeSdp:
            # pjsua2 prints the SDP into a ~1 kB buffer; an offer with many m= lines leaves it
            # empty, and writing back an empty SDP would abort. Answer without labels.
            self.plan.notes.append("answer SDP too large to add a=label lines")
            return
        prm.sdp.wholeSdp = add_labels(prm.sdp.wholeSdp, self.plan.labels)

    def onCallRxReinvite(self, prm: pj.OnCallRxReinviteParam) -> None:  # noqa: N802
        try:
            msg = parse_message(prm.rdata.wholeMsg)
        except SipMessageError:
            return
        changes = update_from_reinvite(self.plan, msg)
        if changes and self.live is not None:
            self.live.meta.extra.update({k: v for k, v in self.plan.extra.items()
                                         if k in ("siprec", "metadata_updates")})
            self.live.write_meta("recording")
            log.info("metadata updated", extra={"uid": self.uid, "change": "; ".join(changes)})

    # --- maintenance thread ---
    def rtp_idle_s(self, now: float) -> float:
        """Seconds since any tapped stream last received an RTP packet (also keeps each
        stream's receive statistics for the call record)."""
        for index in list(self.taps):
            try:
                stat = self.getStreamStat(index)
            except pj.Error:
                continue
            rx, jb = stat.rtcp.rxStat, stat.jbuf
            self.rtp_stats[index] = {"packets": rx.pkt, "lost": rx.loss, "discarded": rx.discard,
                                     "jitter_ms": round(rx.jitterUsec.mean / 1000, 1),
                                     "jb_lost": jb.lost, "jb_discarded": jb.discard}
            if rx.pkt != self.rx_packets.get(index):
                self.rx_packets[index] = rx.pkt
                self.last_rx = now
        return now - self.last_rx

    def capture_info(self) -> dict[str, Any]:
        return {"uid": self.uid, "source": self.plan.source, "agent": self.plan.agent,
                "client": self.plan.client,
                "frames": {i: t.frames for i, t in self.taps.items()}}

    def release(self) -> None:
        """Drop the pjsua2 objects this call holds (before the endpoint is destroyed)."""
        self.taps.clear()
        self.live = None


_LINE_END = re.compile(r"\r?\n")


def add_labels(sdp: str, labels: dict[int, str]) -> str:
    """Append ``a=label:X`` to each m= section of an SDP (by media index) that lacks one."""
    lines = [ln for ln in _LINE_END.split(sdp) if ln]
    out: list[str] = []
    index = -1

    def close_section() -> None:
        if index in labels and not any(ln.startswith("a=label:") for ln in section):
            out.append(f"a=label:{labels[index]}")

    section: list[str] = []
    for line in lines:
        if line.startswith("m="):
            close_section()
            index += 1
            section = []
        out.append(line)
        section.append(line)
    close_section()
    return "\r\n".join(out) + "\r\n"
