"""One plain G.711 call placed by sipp (Debian's ``sip-tester``) with real speech from a pcap.

The scenario logs what happened to the call (answered, or refused with 486 or 503) and, for
a caller that vanishes, ends without a BYE so that the recorder must notice the silence.
"""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from .rawsip import HOST

EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
BLOCK = 8                    # sipp's SIP port, then its RTP, RTCP and video ports (+2 to +5)

_HEAD = """From: <sip:79160000001@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
Call-ID: [call_id]
Max-Forwards: 70
"""

SCENARIO = """<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="appliance soak: plain call">
  <send retrans="500"><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
{head}To: <sip:[service]@[remote_ip]:[remote_port]>
CSeq: 1 INVITE
Contact: sip:sipp@[local_ip]:[local_port]
Content-Type: application/sdp
Content-Length: [len]

v=0
o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [media_port] RTP/AVP 8
a=rtpmap:8 PCMA/8000
]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="486" optional="true" next="busy"/>
  <recv response="503" optional="true" next="unavailable"/>
  <recv response="200" rtd="true" rrs="true"/>
  <send><![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
{head}[last_To:]
[routes]
CSeq: 1 ACK
Contact: sip:sipp@[local_ip]:[local_port]
Content-Length: 0
]]></send>
  <nop><action><log message="ANSWERED"/><exec play_pcap_audio="{pcap}"/></action></nop>
  <pause milliseconds="{ms}"/>
{bye}  <nop next="done"><action><log message="ENDED"/></action></nop>
  <label id="busy"/>
  <nop next="refused"><action><log message="REFUSED 486"/></action></nop>
  <label id="unavailable"/>
  <nop><action><log message="REFUSED 503"/></action></nop>
  <label id="refused"/>
  <send><![CDATA[
ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
[last_Via:]
{head}[last_To:]
CSeq: 1 ACK
Content-Length: 0
]]></send>
  <label id="done"/>
</scenario>
"""

BYE = """  <send retrans="500"><![CDATA[
BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
{head}[last_To:]
[routes]
CSeq: 2 BYE
Contact: sip:sipp@[local_ip]:[local_port]
Content-Length: 0
]]></send>
  <recv response="200" crlf="true"/>
"""


@dataclass
class SippOutcome:
    answered: bool
    status: int              # 200, 486, 503, or 0 when nothing came back
    completed: bool          # the scenario ran to its end (no unexpected BYE from the box)
    log: str


def _udp_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


class PortBlocks:
    """Ports for sipp calls, a block each, free when handed out. Above the system's
    ephemeral range when there is room: inside it, any socket bound to port 0 (the box's,
    the callers') can hold a port of the block, and sipp, unable to bind its RTP socket,
    never places the call."""

    def __init__(self, fallback_first: int, count: int = 250) -> None:
        first = fallback_first
        try:
            high = int(EPHEMERAL_RANGE.read_text().split()[1])
            if high + 1 + count * BLOCK <= 65536:
                first = high + 1
        except (OSError, ValueError, IndexError):
            pass
        self.count = count
        blocks = list(range(first, first + count * BLOCK, BLOCK))
        start = os.getpid() % count         # two processes do not start on the same block
        self._cycle = itertools.cycle(blocks[start:] + blocks[:start])
        self._lock = threading.Lock()

    def take(self) -> int:
        """The first port of a free block (the SIP port; media from the next but one)."""
        with self._lock:
            for _ in range(self.count):
                port = next(self._cycle)
                if all(_udp_free(p) for p in (port, port + 2, port + 3, port + 4, port + 5)):
                    return port
        raise RuntimeError(f"no free block of {BLOCK} ports for sipp")


def scenario(pcap: Path, seconds: float, bye: bool) -> str:
    """The scenario text: play ``pcap``, stay ``seconds``, then BYE (or just go)."""
    return SCENARIO.format(head=_HEAD, pcap=pcap, ms=int(seconds * 1000),
                           bye=BYE.format(head=_HEAD) if bye else "")


def start(workdir: Path, name: str, target: tuple[str, int], service: str, pcap: Path,
          seconds: float, bye: bool, sip_port: int, media_port: int,
          call_id: str) -> subprocess.Popen[bytes]:
    """Start sipp for one call (``call_id`` is the SIP Call-ID it will use)."""
    workdir.mkdir(parents=True, exist_ok=True)
    scen = workdir / f"{name}.xml"
    scen.write_text(scenario(pcap, seconds, bye))
    return subprocess.Popen(
        ["sipp", f"{target[0]}:{target[1]}", "-sf", str(scen), "-m", "1", "-s", service,
         "-i", "127.0.0.1", "-p", str(sip_port), "-mp", str(media_port), "-cid_str", call_id,
         "-timeout", str(int(seconds + 60)), "-nostdin", "-trace_logs",
         "-log_file", str(workdir / f"{name}.log"), "-trace_err",
         "-error_file", str(workdir / f"{name}.err")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def outcome(workdir: Path, name: str, returncode: int) -> SippOutcome:
    try:
        log = (workdir / f"{name}.log").read_text(errors="replace")
    except FileNotFoundError:
        log = ""
    status = 200 if "ANSWERED" in log else 486 if "REFUSED 486" in log else \
        503 if "REFUSED 503" in log else 0
    return SippOutcome("ANSWERED" in log, status, returncode == 0, log[-500:])
