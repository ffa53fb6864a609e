"""Calls whose capture process died: the box ends their dialogs with a BYE of its own.

A capture worker killed mid-call (or the whole box, cut off and started again) leaves the
caller's side of the dialog up: an SBC keeps streaming RTP to a dead port until its own
timers give up. Each recording's metadata keeps the dialog as the box answered it (Call-ID,
both tags, both URIs, the caller's Contact, the Record-Route), which is all it takes to send
the BYE the worker would have sent (RFC 3261 s. 12.2.1.1): to the first route if the PBX or
the SIP front record-routed, else to the caller's Contact. Best effort, over UDP: a caller
that is long gone answers 481 or nothing, and the recording is recovered either way.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
import socket
import time
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

CSEQ = 1_000_000           # above any CSeq a worker sent (pjsip starts below 65536)
_HOSTPORT = re.compile(r"sips?:(?:[^@;>]*@)?(\[[^\]]+\]|[^:;>]+)(?::(\d+))?", re.I)


def destination(dialog: dict[str, Any]) -> tuple[str, int] | None:
    """Where the BYE goes: the first route (loose routing), else the remote target."""
    routes = dialog.get("routes") or []
    uri = routes[0] if routes else dialog.get("remote_target") or ""
    m = _HOSTPORT.search(uri)
    if not m:
        return None
    return m.group(1).strip("[]"), int(m.group(2) or 5060)


def bye_text(dialog: dict[str, Any], via: tuple[str, int], branch: str) -> str:
    """The BYE that ends ``dialog`` from the box's side."""
    routes = "".join(f"Route: {r}\r\n" for r in dialog.get("routes") or [])
    return (f"BYE {dialog['remote_target']} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {via[0]}:{via[1]};branch=z9hG4bK{branch};rport\r\n{routes}"
            f"From: {dialog['local_uri']};tag={dialog['local_tag']}\r\n"
            f"To: {dialog['remote_uri']};tag={dialog['remote_tag']}\r\n"
            f"Call-ID: {dialog['call_id']}\r\nCSeq: {CSEQ} BYE\r\nMax-Forwards: 70\r\n"
            f"Reason: SIP;cause=500;text=\"recorder restarted\"\r\nContent-Length: 0\r\n\r\n")


def complete(dialog: Any) -> bool:
    return isinstance(dialog, dict) and all(
        isinstance(dialog.get(k), str) and dialog.get(k)
        for k in ("call_id", "remote_tag", "local_tag", "remote_uri", "local_uri",
                  "remote_target"))


def hang_up(metas: list[Path], wait_s: float = 2.0) -> dict[str, int]:
    """Send a BYE for the dialog of each recording's metadata file; wait up to ``wait_s``
    for the answers. Returns Call-ID -> status (0: no answer)."""
    sent: dict[str, tuple[str, tuple[str, int], float]] = {}
    answers: dict[str, int] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("0.0.0.0", 0))
        port = sock.getsockname()[1]
        for meta in metas:
            try:
                dialog = json.loads(meta.read_text(encoding="utf-8"))["call"]["extra"]["dialog"]
            except (OSError, ValueError, KeyError, TypeError):
                continue
            dest = destination(dialog) if complete(dialog) else None
            if dest is None:
                continue
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                    probe.connect(dest)         # the address this box is seen from there
                    local = probe.getsockname()[0]
                text = bye_text(dialog, (local, port), secrets.token_hex(8))
                sock.sendto(text.encode(), dest)
            except OSError as exc:
                log.warning("orphaned call not hung up", extra={"sip_call_id": dialog["call_id"],
                                                                "reason": str(exc)})
                continue
            sent[dialog["call_id"]] = (text, dest, time.monotonic())
        deadline = time.monotonic() + wait_s
        resent = False
        while sent.keys() - answers.keys() and time.monotonic() < deadline:
            sock.settimeout(0.25)
            try:
                data, _ = sock.recvfrom(65535)
            except socket.timeout:
                if not resent and time.monotonic() > deadline - wait_s / 2:
                    resent = True               # one retransmission (UDP may drop one)
                    for cid, (text, dest, _) in sent.items():
                        if cid not in answers:
                            sock.sendto(text.encode(), dest)
                continue
            head = data.decode("utf-8", "replace")
            m = re.match(r"SIP/2\.0 (\d{3})", head)
            cid = re.search(r"^(?:Call-ID|i):\s*(\S+)", head, re.M | re.I)
            if m and cid and cid.group(1) in sent and int(m.group(1)) >= 200:
                answers[cid.group(1)] = int(m.group(1))
    for cid in sent:
        log.warning("orphaned call hung up", extra={"sip_call_id": cid,
                                                    "answer": answers.get(cid, 0)})
    return {cid: answers.get(cid, 0) for cid in sent}
