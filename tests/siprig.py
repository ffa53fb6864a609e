"""Test rig for SIP: INVITE texts, a raw UDP user agent, kamailio, sipp and the appliance
daemon as real processes on loopback."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from appliance.sources.sip.workers import state_files

HERE = Path(__file__).parent
DATA = HERE / "data" / "sip"
HOST = "127.0.0.1"


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


def metadata(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


@dataclass
class Response:
    status: int
    reason: str
    headers: dict[str, str]
    text: str


def parse_response(data: bytes) -> Response:
    text = data.decode("utf-8", "replace")
    first, _, rest = text.partition("\r\n")
    parts = first.split(" ", 2)
    headers = {}
    for line in rest.split("\r\n\r\n", 1)[0].split("\r\n"):
        k, _, v = line.partition(":")
        headers.setdefault(k.strip().lower(), v.strip())
    return Response(int(parts[1]), parts[2] if len(parts) > 2 else "", headers, text)


class RawUA:
    """A bare UDP SIP user agent: sends what a test writes, returns what comes back."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.port = self.sock.getsockname()[1]

    def send(self, text: str | bytes, dest: tuple[str, int]) -> None:
        self.sock.sendto(text.encode() if isinstance(text, str) else text, dest)

    def final(self, dest: tuple[str, int], timeout: float = 8.0) -> Response | None:
        """Wait for the first final (>= 200) response."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.05, deadline - time.monotonic()))
            try:
                data, _ = self.sock.recvfrom(65535)
            except socket.timeout:
                return None
            if not data.startswith(b"SIP/2.0"):
                continue
            r = parse_response(data)
            if r.status >= 200:
                return r
        return None

    def options(self, dest: tuple[str, int], ruri: str | None = None,
                timeout: float = 2.0) -> Response | None:
        ruri = ruri or f"sip:{dest[0]}:{dest[1]}"
        text = (f"OPTIONS {ruri} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {HOST}:{self.port};branch=z9hG4bK{uuid.uuid4().hex[:12]};rport\r\n"
                f"From: <sip:probe@{HOST}:{self.port}>;tag={uuid.uuid4().hex[:8]}\r\n"
                f"To: <{ruri}>\r\nCall-ID: {uuid.uuid4().hex}\r\nCSeq: 1 OPTIONS\r\n"
                f"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
        self.send(text, dest)
        return self.final(dest, timeout)

    def call(self, text: str, dest: tuple[str, int], timeout: float = 8.0) -> Response | None:
        """Send an INVITE (this UA's port patched in); ACK the final response."""
        text = text.replace(":5099", f":{self.port}")
        self.send(text, dest)
        resp = self.final(dest, timeout)
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
        else:
            via = hdr["via"].strip()
        text = (f"ACK {ruri} SIP/2.0\r\nVia: {via}\r\nFrom: {hdr['from'].strip()}\r\n"
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
                f"From: {frm}\r\nTo: {to}\r\nCall-ID: {cid}\r\nCSeq: {cseq + 1} INVITE\r\n"
                f"Contact: <sip:src@{HOST}:{self.port}>\r\nMax-Forwards: 70\r\n"
                f"Content-Type: {ctype}\r\nContent-Length: {len(body.encode())}\r\n\r\n{body}")
        self.send(text, dest)
        resp = self.final(dest, 5)
        if resp is not None:
            ack = (f"ACK {ruri} SIP/2.0\r\n"
                   f"Via: SIP/2.0/UDP {HOST}:{self.port};branch=z9hG4bK{uuid.uuid4().hex[:12]};rport\r\n"
                   f"From: {frm}\r\nTo: {to}\r\nCall-ID: {cid}\r\nCSeq: {cseq + 1} ACK\r\n"
                   f"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
            self.send(ack, dest)
        return resp

    def bye(self, dest: tuple[str, int]) -> Response | None:
        ruri, frm, to, cid, cseq = self.last_dialog
        text = (f"BYE {ruri} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {HOST}:{self.port};branch=z9hG4bK{uuid.uuid4().hex[:12]};rport\r\n"
                f"From: {frm}\r\nTo: {to}\r\nCall-ID: {cid}\r\nCSeq: {cseq + 1} BYE\r\n"
                f"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
        self.send(text, dest)
        return self.final(dest, 5)

    def close(self) -> None:
        self.sock.close()


# --- processes --------------------------------------------------------------------------

def _wait(pred, timeout: float, step: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(step)
    return pred()


class Kamailio:
    """kamailio as the office PBX's registrar/proxy (no auth, in-memory location)."""

    def __init__(self, workdir: Path, port: int) -> None:
        self.workdir, self.port = workdir, port
        workdir.mkdir(parents=True, exist_ok=True)
        cfg = (DATA / "kamailio.cfg").read_text().replace("@PORT@", str(port))
        self.cfg = workdir / "kamailio.cfg"
        self.cfg.write_text(cfg)
        self.pidfile = workdir / "kamailio.pid"
        self.log = open(workdir / "kamailio.log", "ab")

    def start(self) -> None:
        subprocess.run(["kamailio", "-f", str(self.cfg), "-P", str(self.pidfile), "-Y",
                        str(self.workdir), "-E", "-w", str(self.workdir)], check=True,
                       stdout=self.log, stderr=self.log)
        ua = RawUA()
        try:
            assert _wait(lambda: ua.options((HOST, self.port), timeout=0.5) is not None, 10), \
                "kamailio did not answer OPTIONS"
        finally:
            ua.close()

    def stop(self) -> None:
        try:
            pid = int(self.pidfile.read_text())
        except (FileNotFoundError, ValueError):
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        _wait(lambda: not Path(f"/proc/{pid}").exists(), 10)
        self.pidfile.unlink(missing_ok=True)

    def registered(self, user: str) -> bool:
        """Whether the location table routes ``user`` (an OPTIONS reaches its contact)."""
        ua = RawUA()
        try:
            r = ua.options((HOST, self.port), ruri=f"sip:{user}@{HOST}:{self.port}", timeout=1.0)
        finally:
            ua.close()
        return r is not None and r.status == 200


@dataclass
class Box:
    """The appliance daemon (``appliance run``) as a child process."""

    workdir: Path
    sip_port: int
    rtp_port: int
    extra: str = ""
    asr: bool = False
    rtp_range: int = 400
    max_calls: int = 4
    proc: subprocess.Popen | None = None
    env: dict[str, str] = field(default_factory=dict)
    web_port: int = field(default_factory=lambda: free_port(socket.SOCK_STREAM))

    @property
    def data(self) -> Path:
        return self.workdir / "data"

    @property
    def addr(self) -> tuple[str, int]:
        return (HOST, self.sip_port)

    @property
    def uri(self) -> str:
        return f"sip:recorder@{HOST}:{self.sip_port}"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        cfg = self.workdir / "box.toml"
        cfg.write_text(f"""
[paths]
data_dir = "{self.data}"
[inbox]
enabled = false
[asr]
enabled = {str(self.asr).lower()}
[sip]
bind_address = "{HOST}"
port = {self.sip_port}
rtp_port = {self.rtp_port}
rtp_port_range = {self.rtp_range}
max_calls = {self.max_calls}
{self.extra}
[web]
bind_address = "{HOST}"
port = {self.web_port}
""")
        self.log_path = self.workdir / "box.log"
        self.proc = subprocess.Popen([sys.executable, "-m", "appliance.cli", "-c", str(cfg), "run"],
                                     stdout=open(self.log_path, "ab"), stderr=subprocess.STDOUT,
                                     env={**os.environ, **self.env}, start_new_session=True)
        ua = RawUA()
        workers = -(-self.max_calls // 4)
        expected = 1 if workers == 1 else workers
        try:        # up when SIP answers and every capture process has started
            ok = _wait(lambda: self.proc.poll() is None and
                       ua.options(self.addr, timeout=0.5) is not None and
                       len(state_files(self.data)) >= expected, 120)
        finally:
            ua.close()
        assert ok, f"appliance did not start:\n{self.log_path.read_text()[-3000:]}"

    def stop(self, timeout: float = 60) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return -9

    def crash(self) -> None:
        """Power cut: SIGKILL the daemon and every process it started, at once."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        time.sleep(0.5)

    def alive(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            return False
        ua = RawUA()
        try:    # a few tries: a flood may have filled the socket buffer (UDP drops, by design)
            return any(ua.options(self.addr, timeout=2.0) is not None for _ in range(3))
        finally:
            ua.close()

    def state(self) -> dict:
        """SIP state of the box: one process, or every capture worker merged."""
        merged: dict = {"registrations": [], "active_calls": [], "calls_finalized": 0}
        for path in state_files(self.data):
            try:
                part = json.loads(path.read_text())
            except (FileNotFoundError, json.JSONDecodeError):
                continue
            merged["registrations"] += part.get("registrations", [])
            merged["active_calls"] += part.get("active_calls", [])
            merged["calls_finalized"] += part.get("calls_finalized", 0)
        return merged

    def results(self) -> list[dict]:
        out = []
        for p in sorted((self.data / "calls").glob("*/*.json")):
            if not p.name.endswith(".meta.json"):
                out.append(json.loads(p.read_text()))
        return out

    def result_for(self, sip_call_id: str, timeout: float = 60) -> dict | None:
        found: list[dict] = []

        def look() -> bool:
            found[:] = [r for r in self.results()
                        if r["call"]["extra"].get("sip_call_id") == sip_call_id]
            return bool(found)
        _wait(look, timeout)
        return found[0] if found else None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_src(target: str, wavs: list[Path], port: int, rtp_port: int, *args: str) -> subprocess.Popen:
    """The simulated recording client (a second pjsua2 endpoint) as a child process."""
    return subprocess.Popen([sys.executable, "-m", "appliance.simulate.src", target,
                             *map(str, wavs), "--port", str(port), "--rtp-port", str(rtp_port),
                             *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for(pred, timeout: float, step: float = 0.2) -> bool:
    return _wait(pred, timeout, step)
