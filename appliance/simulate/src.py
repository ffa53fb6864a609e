"""A simulated recording client (a PBX/SBC): places calls to the appliance over real SIP and
streams real recordings into them, one stream per party.

Used by the end-to-end tests, the capacity benchmark and the demo. Modes: ``siprec`` (RFC 7866:
``Require: siprec``, two ``sendonly`` streams with ``a=label`` and rs-metadata) and ``plain``
(one stream, an ordinary call). Run as ``python -m appliance.simulate.src --help``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

import pjsua2 as pj

log = logging.getLogger("appliance.simulate.src")

METADATA = """<?xml version="1.0" encoding="UTF-8"?>
<recording xmlns="urn:ietf:params:xml:ns:recording:1">
 <datamode>complete</datamode>
 <session session_id="{sid}"><sipSessionID>{sip_session}</sipSessionID></session>
 <participant participant_id="p1-{sid}"><nameID aor="sip:{caller}@pbx.test">
  <name>{caller_name}</name></nameID></participant>
 <participant participant_id="p2-{sid}"><nameID aor="sip:{callee}@pbx.test">
  <name>{callee_name}</name></nameID></participant>
 <stream stream_id="s1-{sid}" session_id="{sid}"><label>1</label></stream>
 <stream stream_id="s2-{sid}" session_id="{sid}"><label>2</label></stream>
 <participantstreamassoc participant_id="p1-{sid}"><send>s1-{sid}</send></participantstreamassoc>
 <participantstreamassoc participant_id="p2-{sid}"><send>s2-{sid}</send></participantstreamassoc>
</recording>
"""


@dataclass
class CallSpec:
    """One call to place: the recordings each stream plays (16-bit PCM mono WAV)."""

    target: str                       # sip:recorder@127.0.0.1:5080
    streams: list[str]                # WAV per stream, in m= line order (caller first)
    siprec: bool = True
    caller: str = "79161234567"
    callee: str = "101"
    duration_s: float | None = None   # hang up after this long (default: longest file + 1 s)
    headers: dict[str, str] = field(default_factory=dict)
    metadata: str | None = None       # rs-metadata body (default: METADATA filled in)
    caller_name: str = "Client"
    callee_name: str = "Agent"


class _Call(pj.Call):
    def __init__(self, acc: pj.Account, spec: CallSpec) -> None:
        super().__init__(acc)
        self.spec = spec
        self.players: list[pj.AudioMediaPlayer] = []
        self.confirmed = threading.Event()
        self.disconnected = threading.Event()
        self.status = 0
        self.sip_call_id = ""
        self.hung_up_here = False           # set before this side hangs up
        self.remote_bye = False             # the far end ended an answered call
        self.on_disconnected: Callable[[_Call], None] | None = None

    def onCallState(self, prm: pj.OnCallStateParam) -> None:  # noqa: N802
        ci = self.getInfo()
        self.sip_call_id = self.sip_call_id or ci.callIdString
        if ci.state == pj.PJSIP_INV_STATE_CONFIRMED:
            self.confirmed.set()
        elif ci.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.status = ci.lastStatusCode
            self.remote_bye = self.confirmed.is_set() and not self.hung_up_here
            self.players.clear()
            self.disconnected.set()
            if self.on_disconnected is not None:
                self.on_disconnected(self)

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:  # noqa: N802
        if self.players:
            return
        for i, wav in enumerate(self.spec.streams):
            player = pj.AudioMediaPlayer()
            player.createPlayer(wav, pj.PJMEDIA_FILE_NO_LOOP)
            player.startTransmit(self.getAudioMedia(i))
            self.players.append(player)

    def onCallSdpCreated(self, prm: pj.OnCallSdpCreatedParam) -> None:  # noqa: N802
        if not self.spec.siprec:
            return
        out, index = [], 0
        for line in re.split(r"\r?\n", prm.sdp.wholeSdp):
            if not line:
                continue
            if line.startswith("a=sendrecv"):
                line = "a=sendonly"
            if line.startswith("m=") and out and index:
                out.append(f"a=label:{index}")
            if line.startswith("m="):
                index += 1
            out.append(line)
        out.append(f"a=label:{index}")
        prm.sdp.wholeSdp = "\r\n".join(out) + "\r\n"


class RecordingClient:
    """A pjsua2 endpoint in this process that places ``CallSpec`` calls."""

    def __init__(self, port: int, rtp_port: int = 30000, address: str = "127.0.0.1",
                 poll: bool = False) -> None:
        """``poll``: no pjsua worker thread; the caller polls (``ep.libHandleEvents``)."""
        self.ep = pj.Endpoint()
        self.ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.maxCalls = 32
        cfg.uaConfig.threadCnt = 0 if poll else 1
        cfg.uaConfig.mainThreadOnly = False
        cfg.logConfig.level = 1
        cfg.logConfig.consoleLevel = 1
        cfg.medConfig.noVad = True
        cfg.medConfig.ecTailLen = 0
        cfg.medConfig.maxMediaPorts = 254
        self.ep.libInit(cfg)
        tc = pj.TransportConfig()
        tc.port = port
        tc.boundAddress = address
        self.ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tc)
        self.ep.audDevManager().setNullDev()
        self.ep.libStart()
        for codec in self.ep.codecEnum2():
            prio = {"PCMA": 255, "PCMU": 254}.get(codec.codecId.split("/")[0], 0)
            self.ep.codecSetPriority(codec.codecId, prio)
        acfg = pj.AccountConfig()
        acfg.idUri = f"sip:src@{address}:{port}"
        acfg.mediaConfig.transportConfig.port = rtp_port
        acfg.mediaConfig.transportConfig.portRange = 2000
        acfg.mediaConfig.transportConfig.boundAddress = address
        self.acc = pj.Account()
        self.acc.create(acfg, True)
        self.calls: list[_Call] = []

    def place(self, spec: CallSpec, n: int = 0) -> _Call:
        call = _Call(self.acc, spec)
        op = pj.CallOpParam(True)
        op.opt.audioCount = len(spec.streams)
        op.opt.videoCount = 0
        tx = op.txOption
        if not spec.siprec:
            tx.localUri = f"sip:{spec.caller}@pbx.test"
        for name, value in spec.headers.items():
            h = pj.SipHeader()
            h.hName, h.hValue = name, value
            tx.headers.append(h)
        if spec.siprec:
            h = pj.SipHeader()
            h.hName, h.hValue = "Require", "siprec"
            tx.headers.append(h)
            tx.multipartContentType.type = "multipart"
            tx.multipartContentType.subType = "mixed"
            part = pj.SipMultipartPart()
            part.contentType.type = "application"
            part.contentType.subType = "rs-metadata+xml"
            disp = pj.SipHeader()
            disp.hName, disp.hValue = "Content-Disposition", "recording-session"
            part.headers.append(disp)
            sid = f"sess{n}x{int(time.time() * 1000) % 10**9}"
            part.body = spec.metadata or METADATA.format(
                sid=sid, sip_session=f"{sid}-orig", caller=spec.caller, callee=spec.callee,
                caller_name=escape(spec.caller_name), callee_name=escape(spec.callee_name))
            tx.multipartParts.append(part)
        call.makeCall(spec.target, op)
        self.calls.append(call)
        return call

    def hangup_all(self) -> None:
        self.ep.hangupAllCalls()

    def exit(self, code: int) -> None:
        """End this process without tearing pjsua2 down: deleting a disconnected outgoing
        ``Call`` of 2.15.1 trips an assertion, and a simulator need not clean up."""
        time.sleep(0.3)     # let the last BYE transactions complete
        logging.shutdown()
        sys.stdout.flush()
        os._exit(code)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m appliance.simulate.src", description=__doc__)
    p.add_argument("target", help="SIP URI of the appliance, e.g. sip:recorder@127.0.0.1:5080")
    p.add_argument("wavs", nargs="*", help="16-bit mono WAV per stream (caller first)")
    p.add_argument("--call", action="append", default=[], metavar="A.wav,B.wav",
                   help="one more call with its own recordings (repeatable)")
    p.add_argument("--plain", action="store_true", help="an ordinary call (no SIPREC)")
    p.add_argument("--calls", type=int, default=1,
                   help="simultaneous calls (at most 4 per process: the wheel's PJSUA_MAX_CALLS)")
    p.add_argument("--port", type=int, default=5090, help="local SIP port")
    p.add_argument("--rtp-port", type=int, default=30000)
    p.add_argument("--duration", type=float, help="hang up after this many seconds")
    p.add_argument("--header", action="append", default=[], help="Name: value (repeatable)")
    p.add_argument("--caller", default="79161234567")
    p.add_argument("--callee", default="101")
    p.add_argument("--no-bye", action="store_true",
                   help="never hang up: wait until the far end does (or be killed)")
    p.add_argument("--plan", help="JSON list of calls, each with the fields of CallSpec "
                   "(target may be left out); each hangs up after its own duration_s")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    import soundfile as sf

    if args.plan:
        return _play_plan(args.target, args.plan, args.port, args.rtp_port)
    stream_sets = [args.wavs] * args.calls if args.wavs else []
    stream_sets += [c.split(",") for c in args.call]
    if not stream_sets:
        p.error("give the WAVs of a call, or --call, or --plan")
    longest = max(sf.info(w).duration for ws in stream_sets for w in ws)
    headers = dict(h.split(":", 1) for h in args.header)
    headers = {k.strip(): v.strip() for k, v in headers.items()}
    client = RecordingClient(args.port, args.rtp_port)
    calls = [client.place(CallSpec(args.target, ws, siprec=not args.plain, caller=args.caller,
                                   callee=args.callee, headers=headers), n)
             for n, ws in enumerate(stream_sets)]
    for c in calls:
        if not c.confirmed.wait(10):
            log.error("call not answered (status %s)", c.status)
    print(f"connected {sum(c.confirmed.is_set() for c in calls)}/{len(calls)}", flush=True)
    started = time.time()
    if args.no_bye:         # until the far end hangs up (or this process is killed)
        for c in calls:
            c.disconnected.wait()
        print(f"hung up by the far end: {[c.status for c in calls]}", flush=True)
        client.exit(0)
    time.sleep(args.duration if args.duration is not None else longest + 1.0)
    client.hangup_all()
    print(f"hung up at {time.time():.3f} after {time.time() - started:.1f} s", flush=True)
    for c in calls:
        c.disconnected.wait(5)
    failed = [c.status for c in calls if not c.confirmed.is_set()]
    client.exit(1 if failed else 0)
    return 0


def _play_plan(target: str, plan_file: str, port: int, rtp_port: int) -> int:
    """Place every call of a plan at once; each ends after its own ``duration_s``. Prints one
    JSON line per call (index, answered, SIP status, start and end times)."""
    import soundfile as sf

    with open(plan_file, encoding="utf-8") as f:
        specs = [CallSpec(**{"target": target, **raw}) for raw in json.load(f)]
    if not 1 <= len(specs) <= 4:
        raise SystemExit("a plan holds 1 to 4 calls (the wheel's PJSUA_MAX_CALLS)")
    client = RecordingClient(port, rtp_port)
    calls = [client.place(spec, n) for n, spec in enumerate(specs)]
    started = time.time()
    ends = [started + (s.duration_s if s.duration_s is not None
                       else max(sf.info(w).duration for w in s.streams) + 1.0) for s in specs]
    answered = [c.confirmed.wait(10) for c in calls]
    hung_up: dict[int, float] = {}
    for n in sorted(range(len(calls)), key=lambda i: ends[i]):
        if answered[n]:
            time.sleep(max(0.0, ends[n] - time.time()))
            calls[n].hangup(pj.CallOpParam(True))
            hung_up[n] = time.time()
    for n, c in enumerate(calls):
        c.disconnected.wait(5)
        print(json.dumps({"index": n, "answered": answered[n], "status": c.status,
                          "started_at": round(started, 3), "ended_at": hung_up.get(n)}),
              flush=True)
    client.exit(0 if all(answered) else 1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
