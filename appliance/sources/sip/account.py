"""A SIP account: a registration on the PBX (or the direct-call identity) that takes calls."""

from __future__ import annotations

import logging
from typing import Any, Protocol

import pjsua2 as pj

from .registration import Registration

log = logging.getLogger(__name__)


class CallDesk(Protocol):
    """What an account hands its events to (the endpoint)."""

    def registration_changed(self, account: "SipAccount", changed: bool) -> None: ...

    def incoming(self, account: "SipAccount", slot: int, message: str, source: Any) -> None: ...


class SipAccount(pj.Account):
    """Hands incoming calls to the endpoint; keeps its registration's last answer."""

    def __init__(self, endpoint: CallDesk, uri: str, direct: bool) -> None:
        super().__init__()
        self.endpoint = endpoint
        self.direct = direct
        self.registration = Registration(uri)

    def onRegState(self, prm: pj.OnRegStateParam) -> None:  # noqa: N802
        info = self.getInfo()
        reg = self.registration
        changed = reg.record(int(prm.code), str(prm.reason), bool(info.regIsActive),
                             int(info.regExpiresSec))
        level = logging.INFO if reg.registered else logging.WARNING
        log.log(level, "registration", extra={"account": reg.uri, "registered": reg.registered,
                                              "status": reg.status, "reason": reg.reason,
                                              "expires_s": reg.expires_s})
        self.endpoint.registration_changed(self, changed)

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:  # noqa: N802
        try:
            self.endpoint.incoming(self, prm.callId, prm.rdata.wholeMsg, prm.rdata.srcAddress)
        except Exception:   # noqa: BLE001 - a traceback here would keep call objects alive
            log.exception("incoming call not handled", extra={"slot": prm.callId})
