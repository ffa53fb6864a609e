"""The pjsua2 side of one call: answers it, taps its streams, watches its RTP.

pjsua numbers calls by slot (0..3 per process) and gives a slot to the next call as soon as
the last one is disconnected. A ``pj.Call``'s C++ destructor acts on the slot number it was
made for: it clears that slot's user data and hangs up whatever call is active there. So a
``PjCall`` must be destroyed while the slot is still its own, which is inside its
DISCONNECTED callback: the endpoint keeps the only reference, only ever touches it on its SIP
thread, and drops it there (``SipEndpoint.forget``). The recording (``RecordedCall``) is a
separate object that outlives it.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

import pjsua2 as pj

from .message import add_labels
from .plan import CallPlan
from .recorded import RecordedCall
from .tap import TapPool, TapPort

log = logging.getLogger(__name__)

class CallOwner(Protocol):
    """What a call slot needs from the endpoint that keeps it: the tap pool and a way to be
    dropped when its dialog ends."""

    taps: TapPool

    def forget(self, call: "PjCall") -> None: ...


_MEDIA_OK = (pj.PJSUA_CALL_MEDIA_ACTIVE, pj.PJSUA_CALL_MEDIA_REMOTE_HOLD)


class PjCall(pj.Call):
    """One pjsua call slot while it belongs to one dialog (SIP thread only)."""

    def __init__(self, endpoint: CallOwner, account: pj.Account, slot: int,
                 plan: CallPlan, recorded: RecordedCall | None) -> None:
        super().__init__(account, slot)
        self.endpoint = endpoint
        self.slot = slot
        self.plan = plan
        self.recorded = recorded          # None: a call the box refuses
        self.taps: dict[int, TapPort] = {}      # lent by the endpoint's pool
        self.tap_slots: dict[int, int] = {}
        self.rx_packets: dict[int, int] = {}
        self.last_rx = time.monotonic()
        self.hangup_reason: str | None = None    # why the box itself hung up
        self.disconnected = False

    # --- pjsua2 callbacks (the endpoint's SIP thread) ---
    def onCallState(self, prm: pj.OnCallStateParam) -> None:  # noqa: N802
        try:
            ci = self.getInfo()
            if ci.state == pj.PJSIP_INV_STATE_CONFIRMED and self.recorded is not None \
                    and prm.e.type == pj.PJSIP_EVENT_RX_MSG:
                self.recorded.confirmed(prm.e.body.rxMsg.rdata.wholeMsg)      # the ACK
            if ci.state != pj.PJSIP_INV_STATE_DISCONNECTED:
                return
            reason = self.hangup_reason or f"{ci.lastStatusCode} {ci.lastReason}".strip()
        except Exception:           # noqa: BLE001 - the call must still be ended and dropped
            log.exception("call state unreadable", extra={"slot": self.slot})
            reason = self.hangup_reason or "disconnected"
        self._disconnected(reason)

    def _disconnected(self, reason: str) -> None:
        self.disconnected = True
        if self.recorded is not None:
            self.recorded.finish(reason)
        self.release_taps()
        # the last reference goes: the C++ object is destroyed when this callback returns,
        # while pjsua's slot is still this call's
        self.endpoint.forget(self)

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:  # noqa: N802
        rec = self.recorded
        if rec is None or rec.ended:
            return
        try:
            self._tap_streams(rec)
        except pj.Error as exc:
            log.error("stream not tapped", extra={"uid": rec.uid, "reason": exc.info()})

    def _tap_streams(self, rec: RecordedCall) -> None:
        info = self.getInfo()        # kept: ``info.media`` points into it
        for mi in info.media:
            party = self.plan.parties.get(mi.index)
            if party is None or mi.type != pj.PJMEDIA_TYPE_AUDIO or mi.status not in _MEDIA_OK:
                continue
            if self.tap_slots.get(mi.index) == mi.audioConfSlot:
                continue        # already tapped (a re-INVITE kept the stream)
            tap = self.taps.get(mi.index)
            if tap is None:
                tap = self.endpoint.taps.lease(rec.sink(mi.index, party))
                if tap is None:
                    log.error("no free media tap", extra={"uid": rec.uid, "media": mi.index})
                    continue
                self.taps[mi.index] = tap
            self.getAudioMedia(mi.index).startTransmit(tap)
            self.tap_slots[mi.index] = mi.audioConfSlot
            rec.media_tapped(time.monotonic())
            log.info("stream tapped", extra={"uid": rec.uid, "media": mi.index, "party": party,
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
        if self.recorded is not None:
            self.recorded.reinvite(prm.rdata.wholeMsg)

    # --- the endpoint's SIP thread ---
    def end(self, reason: str, status: int = 0) -> None:
        """Hang up (or, before the answer, reject with ``status``). The recording ends now,
        whether or not pjsua reports the disconnection."""
        if self.disconnected:
            return
        self.hangup_reason = reason
        op = pj.CallOpParam()
        if status:
            op.statusCode = status
            op.reason = self.plan.reason
        try:
            self.hangup(op)
        except pj.Error as exc:
            log.warning("hang-up failed", extra={"slot": self.slot, "reason": exc.info()})
        if self.recorded is not None:
            self.recorded.finish(reason)

    def rtp_idle_s(self, now: float) -> float:
        """Seconds since any tapped stream last received an RTP packet, or since the call's
        hold state last changed if that is later (a stream back from hold gets the whole
        timeout to resume); also keeps each stream's receive statistics for the call record."""
        rec = self.recorded
        for index in list(self.taps):
            try:
                stat = self.getStreamStat(index)
            except pj.Error:
                continue
            rx, jb = stat.rtcp.rxStat, stat.jbuf
            if rec is not None:
                rec.rtp_stats[index] = {
                    "packets": rx.pkt, "lost": rx.loss, "discarded": rx.discard,
                    "jitter_ms": round(rx.jitterUsec.mean / 1000, 1),
                    "jb_lost": jb.lost, "jb_discarded": jb.discard}
            if rx.pkt != self.rx_packets.get(index):
                self.rx_packets[index] = rx.pkt
                self.last_rx = now
        since = max(self.last_rx, rec.hold_changed_at) if rec is not None else self.last_rx
        return now - since

    def release_taps(self) -> None:
        for tap in self.taps.values():
            self.endpoint.taps.give_back(tap)
        self.taps.clear()

    def info(self) -> dict[str, Any]:
        return {"slot": self.slot, "uid": self.recorded.uid if self.recorded else None}
