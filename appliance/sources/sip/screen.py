"""Who may call the box, and what an INVITE gets before any SIP stack state exists. Pure:
decided from the message text, the caller's address and settings."""

from __future__ import annotations

import ipaddress

from ...config import SipSettings
from .message import SipMessageError, parse_message
from .plan import CallPlan, plan_call

# SDP for three streams plus metadata is a few kB; far more is abuse or a broken SRC.
MAX_INVITE_BYTES = 32 * 1024

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def networks(sources: list[str]) -> list[Network]:
    """``sip.allowed_sources`` as networks."""
    return [ipaddress.ip_network(n, strict=False) for n in sources]


def source_allowed(address: str, nets: list[Network]) -> bool:
    """Whether 'host:port' (or '[v6]:port') lies in one of ``nets``."""
    if address.startswith("["):
        host = address[1:address.find("]")]
    else:
        host = address.rsplit(":", 1)[0] if address.count(":") == 1 else address
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return any(ip in net for net in nets)


def plan_incoming(raw: str, source: str, sip: SipSettings, nets: list[Network], *,
                  direct: bool, disk_ok: bool, stopping: bool = False) -> CallPlan:
    """Screen the caller, then plan the call from the INVITE text. Never raises."""
    if not source_allowed(source, nets):
        return CallPlan(status=403, reason="Forbidden (source not in sip.allowed_sources)")
    if direct and not sip.direct_calls:
        return CallPlan(status=403, reason="Forbidden (direct calls are disabled)")
    if stopping:
        return CallPlan(status=503, reason="Service Unavailable (recorder restarting)")
    if len(raw) > MAX_INVITE_BYTES:
        return CallPlan(status=513, reason="Message Too Large")
    if not disk_ok:
        # the PBX carries on without the recorder; the alert comes from retention
        return CallPlan(status=503, reason="Service Unavailable (recorder disk full)")
    try:
        msg = parse_message(raw)
    except SipMessageError as exc:
        return CallPlan(status=400, reason=f"Bad Request ({exc})")
    return plan_call(msg, sip)
