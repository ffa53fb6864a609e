"""A SIP account: a registration on the PBX (or the direct-call identity) that takes calls."""

from __future__ import annotations

import ipaddress
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pjsua2 as pj

from .message import SipMessageError, parse_message
from .plan import CallPlan, plan_call

if TYPE_CHECKING:
    from .endpoint import SipEndpoint

log = logging.getLogger(__name__)

# SDP for three streams plus metadata is a few kB; far more is abuse or a broken SRC.
MAX_INVITE_BYTES = 32 * 1024


@dataclass
class Registration:
    """What the rest of the appliance sees of one account."""

    uri: str
    registered: bool = False
    status: int = 0
    reason: str = "not registered yet"
    expires_s: int = 0
    changed_at: float = 0.0

    def as_dict(self) -> dict[str, object]:
        return {"uri": self.uri, "registered": self.registered, "status": self.status,
                "reason": self.reason, "expires_s": self.expires_s, "changed_at": self.changed_at}


def source_allowed(address: str, networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    """Whether 'host:port' (or '[v6]:port') lies in one of ``networks``."""
    if address.startswith("["):
        host = address[1:address.find("]")]
    else:
        host = address.rsplit(":", 1)[0] if address.count(":") == 1 else address
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(ip in net for net in networks)


class SipAccount(pj.Account):
    """Answers calls according to ``plan_call``; tracks its registration."""

    def __init__(self, endpoint: "SipEndpoint", uri: str, direct: bool) -> None:
        super().__init__()
        self.endpoint = endpoint
        self.direct = direct
        self.registration = Registration(uri)

    def onRegState(self, prm: pj.OnRegStateParam) -> None:  # noqa: N802
        info = self.getInfo()
        reg = self.registration
        was = reg.registered
        reg.registered = bool(info.regIsActive)
        reg.status, reg.reason = int(prm.code), str(prm.reason)
        reg.expires_s = int(info.regExpiresSec) if info.regIsActive else 0
        reg.changed_at = time.time()
        log.info("registration", extra={"account": reg.uri, "registered": reg.registered,
                                        "status": reg.status, "reason": reg.reason,
                                        "expires_s": reg.expires_s})
        if was != reg.registered:
            self.endpoint.registration_changed(self)

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:  # noqa: N802
        self.endpoint.incoming(self, prm.callId, prm.rdata.wholeMsg, prm.rdata.srcAddress)


def plan_for(raw: str, source: str, endpoint: "SipEndpoint", direct: bool) -> CallPlan:
    """Screen the caller, then plan the call from the INVITE text."""
    sip = endpoint.settings.sip
    if not source_allowed(source, endpoint.allowed_networks):
        return CallPlan(status=403, reason="Forbidden (source not in sip.allowed_sources)")
    if direct and not sip.direct_calls:
        return CallPlan(status=403, reason="Forbidden (direct calls are disabled)")
    if len(raw) > MAX_INVITE_BYTES:
        return CallPlan(status=513, reason="Message Too Large")
    if not endpoint.guard.allowed():
        # the PBX carries on without the recorder; the alert comes from retention
        return CallPlan(status=503, reason="Service Unavailable (recorder disk full)")
    try:
        msg = parse_message(raw)
    except SipMessageError as exc:
        return CallPlan(status=400, reason=f"Bad Request ({exc})")
    return plan_call(msg, sip)
