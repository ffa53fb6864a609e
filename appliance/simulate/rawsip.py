"""SIP by hand over UDP: INVITE texts with SDP (and SIPREC metadata), and a bare user agent
that sends what it is given and reads what comes back. For tests, soaks and floods, where a
SIP stack would hide exactly what is being checked."""

from __future__ import annotations

import socket
import time
import uuid
from dataclasses import dataclass, field

HOST = "127.0.0.1"
T1, T2 = 0.5, 4.0          # RFC 3261 retransmission timers (s)


_HANDED: set[int] = set()


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    """A port the system just had free on loopback for both UDP and TCP (SIP listens on
    both, and UDP and TCP numbers are handed out apart: a UDP port for SIP and a TCP port
    for the panel can be the same number), never handed out before by this process. It
    may still be taken by another process before use. ``kind``: kept for callers that
    name the one they need; both are checked."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind((HOST, 0))
            port = s.getsockname()[1]
            other = socket.SOCK_STREAM if kind == socket.SOCK_DGRAM else socket.SOCK_DGRAM
            try:
                with socket.socket(socket.AF_INET, other) as t:
                    t.bind((HOST, port))
            except OSError:
                continue
        if port not in _HANDED:
            _HANDED.add(port)
            return port
    raise RuntimeError("no free loopback port found in 200 tries")


def sdp(streams: int = 2, labels: list[str | None] | None = None, direction: str = "sendonly",
        port: int = 31000, codec: str = "8 PCMA/8000") -> str:
    pt, name = codec.split(" ")
    lines = ["v=0", f"o=src 1 1 IN IP4 {HOST}", "s=-", f"c=IN IP4 {HOST}", "t=0 0"]
    labels = labels if labels is not None else [str(i + 1) for i in range(streams)]
    for i in range(streams):
        lines += [f"m=audio {port + 2 * i} RTP/AVP {pt}", f"a=rtpmap:{pt} {name}"]
        if i < len(labels) and labels[i] is not None:
            lines.append(f"a=label:{labels[i]}")
        lines.append(f"a={direction}")
    return "\r\n".join(lines) + "\r\n"


def invite(target: str, body_sdp: str, metadata: str | None = None, siprec: bool = True,
           headers: dict[str, str] | None = None, boundary: str = '"OSS-unique-boundary-42"',
           local_port: int = 5099, call_id: str | None = None, from_user: str = "src",
           cseq: int = 1, to_tag: str | None = None) -> tuple[str, str]:
    """An INVITE (text, Call-ID): multipart SDP + rs-metadata when ``metadata`` is given."""
    call_id = call_id or f"{uuid.uuid4().hex}@{HOST}"
    if metadata is not None:
        b = boundary.strip('"')
        body = (f"--{b}\r\nContent-Type: application/sdp\r\n\r\n{body_sdp}\r\n"
                f"--{b}\r\nContent-Type: application/rs-metadata+xml\r\n"
                f"Content-Disposition: recording-session\r\n\r\n{metadata}\r\n--{b}--\r\n")
        ctype = f"multipart/mixed;boundary={boundary}"
    else:
        body, ctype = body_sdp, "application/sdp"
    hdrs = {"Via": f"SIP/2.0/UDP {HOST}:{local_port};branch=z9hG4bK{uuid.uuid4().hex[:12]};rport",
            "From": f"<sip:{from_user}@{HOST}:{local_port}>;tag={uuid.uuid4().hex[:8]}",
            "To": f"<{target}>" + (f";tag={to_tag}" if to_tag else ""),
            "Call-ID": call_id, "CSeq": f"{cseq} INVITE",
            "Contact": f"<sip:{from_user}@{HOST}:{local_port}>", "Max-Forwards": "70"}
    if siprec:
        hdrs["Require"] = "siprec"
    hdrs.update(headers or {})
    hdrs["Content-Type"] = ctype
    hdrs["Content-Length"] = str(len(body.encode()))
    text = f"INVITE {target} SIP/2.0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items())
    return text + "\r\n" + body, call_id


@dataclass
class Response:
    status: int
    reason: str
    headers: dict[str, str]
    text: str
    record_route: list[str] = field(default_factory=list)   # every Record-Route entry


def parse_response(data: bytes) -> Response:
    text = data.decode("utf-8", "replace")
    first, _, rest = text.partition("\r\n")
    parts = first.split(" ", 2)
    headers: dict[str, str] = {}
    routes: list[str] = []
    for line in rest.split("\r\n\r\n", 1)[0].split("\r\n"):
        k, _, v = line.partition(":")
        headers.setdefault(k.strip().lower(), v.strip())
        if k.strip().lower() == "record-route":
            routes += [r.strip() for r in v.split(",") if r.strip()]
    return Response(int(parts[1]), parts[2] if len(parts) > 2 else "", headers, text, routes)


class RawUA:
    """A bare UDP SIP user agent: sends what a test writes, returns what comes back."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.port = self.sock.getsockname()[1]
        self.routes = ""             # Route header lines of the dialog (its Record-Route)

    def send(self, text: str | bytes, dest: tuple[str, int]) -> None:
        self.sock.sendto(text.encode() if isinstance(text, str) else text, dest)

    def final(self, dest: tuple[str, int], timeout: float = 8.0,
              method: str | None = None, resend: str | None = None) -> Response | None:
        """Wait for the first final (>= 200) response (to a request of ``method``).
        ``resend``: the request, sent again until any response comes, as a UDP client does
        (RFC 3261 timer A: after 0.5 s, then doubling up to 4 s): a datagram can be lost
        when the receiver's socket buffer is full, as in a burst of calls."""
        deadline = time.monotonic() + timeout
        interval = T1
        again = time.monotonic() + interval if resend is not None else float("inf")
        while time.monotonic() < deadline:
            now = time.monotonic()
            if now >= again:
                self.send(resend, dest)
                interval = min(2 * interval, T2)
                again = now + interval
            self.sock.settimeout(max(0.05, min(deadline, again) - now))
            try:
                data, _ = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            if not data.startswith(b"SIP/2.0"):
                continue
            again = float("inf")            # answered: the server retransmits from here
            r = parse_response(data)
            if r.status >= 200 and (method is None or
                                    r.headers.get("cseq", "").split()[-1:] == [method]):
                return r
        return None

    @staticmethod
    def options_text(dest: tuple[str, int], port: int, ruri: str | None = None) -> str:
        ruri = ruri or f"sip:{dest[0]}:{dest[1]}"
        return (f"OPTIONS {ruri} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {HOST}:{port};branch=z9hG4bK{uuid.uuid4().hex[:12]};rport\r\n"
                f"From: <sip:probe@{HOST}:{port}>;tag={uuid.uuid4().hex[:8]}\r\n"
                f"To: <{ruri}>\r\nCall-ID: {uuid.uuid4().hex}\r\nCSeq: 1 OPTIONS\r\n"
                f"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n")

    def options(self, dest: tuple[str, int], ruri: str | None = None,
                timeout: float = 2.0) -> Response | None:
        self.send(self.options_text(dest, self.port, ruri), dest)
        return self.final(dest, timeout)

    def call(self, text: str, dest: tuple[str, int], timeout: float = 8.0) -> Response | None:
        """Send an INVITE (this UA's port patched in); ACK the final response."""
        text = text.replace(":5099", f":{self.port}")
        self.send(text, dest)
        resp = self.final(dest, timeout, resend=text)
        if resp is not None:
            self.ack(text, resp, dest)
        return resp

    def call_and_cancel(self, text: str, dest: tuple[str, int],
                        timeout: float = 8.0) -> Response | None:
        """Send an INVITE and at once its CANCEL; ACK and return the INVITE's final response
        (487 when the CANCEL won, 200 when the answer did)."""
        text = text.replace(":5099", f":{self.port}")
        self.send(text, dest)
        head = text.split("\r\n\r\n")[0].split("\r\n")
        hdr = {k.strip().lower(): v.strip() for k, v in (ln.split(":", 1) for ln in head[1:])}
        self.send(f"CANCEL {head[0].split(' ')[1]} SIP/2.0\r\nVia: {hdr['via']}\r\n"
                  f"From: {hdr['from']}\r\nTo: {hdr['to']}\r\nCall-ID: {hdr['call-id']}\r\n"
                  f"CSeq: {hdr['cseq'].split()[0]} CANCEL\r\nMax-Forwards: 70\r\n"
                  "Content-Length: 0\r\n\r\n", dest)
        resp = self.final(dest, timeout, method="INVITE")
        if resp is not None:
            self.ack(text, resp, dest)
        return resp

    def ack(self, invite_text: str, resp: Response, dest: tuple[str, int]) -> None:
        hdr = {k.lower(): v for k, v in (ln.split(":", 1) for ln in
               invite_text.split("\r\n\r\n")[0].split("\r\n")[1:])}
        ruri = invite_text.split(" ")[1]
        if resp.status < 300:
            contact = resp.headers.get("contact", f"<{ruri}>")
            ruri = contact[contact.find("<") + 1:contact.find(">")]
            via = f"SIP/2.0/UDP {HOST}:{self.port};branch=z9hG4bK{uuid.uuid4().hex[:12]};rport"
            # a UAC's route set is the Record-Route of the answer, in reverse order
            self.routes = "".join(f"Route: {r}\r\n" for r in reversed(resp.record_route))
        else:
            via = hdr["via"].strip()
        routes = self.routes if resp.status < 300 else ""
        text = (f"ACK {ruri} SIP/2.0\r\nVia: {via}\r\n{routes}From: {hdr['from'].strip()}\r\n"
                f"To: {resp.headers.get('to', hdr['to'].strip())}\r\nCall-ID: {hdr['call-id'].strip()}\r\n"
                f"CSeq: {hdr['cseq'].split()[0]} ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
        self.send(text, dest)
        self.last_dialog = (ruri, hdr["from"].strip(), resp.headers.get("to", ""),
                            hdr["call-id"].strip(), int(hdr["cseq"].split()[0]))

    def reinvite(self, body: str, ctype: str, dest: tuple[str, int]) -> Response | None:
        """An in-dialog re-INVITE (new SDP/metadata), ACKed."""
        ruri, frm, to, cid, cseq = self.last_dialog
        self.last_dialog = (ruri, frm, to, cid, cseq + 1)
        text = (f"INVITE {ruri} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {HOST}:{self.port};branch=z9hG4bK{uuid.uuid4().hex[:12]};rport\r\n"
                f"{self.routes}From: {frm}\r\nTo: {to}\r\nCall-ID: {cid}\r\nCSeq: {cseq + 1} INVITE\r\n"
                f"Contact: <sip:src@{HOST}:{self.port}>\r\nMax-Forwards: 70\r\n"
                f"Content-Type: {ctype}\r\nContent-Length: {len(body.encode())}\r\n\r\n{body}")
        self.send(text, dest)
        resp = self.final(dest, 5)
        if resp is not None:
            ack = (f"ACK {ruri} SIP/2.0\r\n"
                   f"Via: SIP/2.0/UDP {HOST}:{self.port};branch=z9hG4bK{uuid.uuid4().hex[:12]};rport\r\n"
                   f"{self.routes}From: {frm}\r\nTo: {to}\r\nCall-ID: {cid}\r\nCSeq: {cseq + 1} ACK\r\n"
                   f"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
            self.send(ack, dest)
        return resp

    def bye(self, dest: tuple[str, int]) -> Response | None:
        ruri, frm, to, cid, cseq = self.last_dialog
        text = (f"BYE {ruri} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {HOST}:{self.port};branch=z9hG4bK{uuid.uuid4().hex[:12]};rport\r\n"
                f"{self.routes}From: {frm}\r\nTo: {to}\r\nCall-ID: {cid}\r\nCSeq: {cseq + 1} BYE\r\n"
                f"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
        self.send(text, dest)
        return self.final(dest, 5)

    def close(self) -> None:
        self.sock.close()
