"""A long-running pjsua2 caller for traffic tests: places the calls it is told, one JSON line
per call on stdin, and reports each call's outcome as a JSON line on stdout.

    {"id": "c1", "target": "sip:recorder@127.0.0.1:5080", "streams": ["a.wav", "b.wav"],
     "siprec": true, "duration_s": 3.5, "hold": [1.0, 2.0]}
    -> {"id": "c1", "sip_call_id": "...", "answered": true, "status": 200,
        "remote_bye": false, "held": true, "started_at": ..., "ended_at": ...}

``hold`` puts the call on hold and takes it off again at those seconds after the answer: a
plain call with a re-INVITE ``sendonly``, a SIPREC session (whose streams are sendonly
already) with ``inactive``, as an SRC pauses the recording of a held call. One process
holds at most 4 calls (the wheel's PJSUA_MAX_CALLS).
One thread does everything pjsua2 (it polls events), so call objects are dropped in their own
DISCONNECTED callback, as the appliance does.

    python -m appliance.simulate.caller --port 5091 --rtp-port 34000
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import select
import sys
import time
from dataclasses import dataclass, field
from typing import TextIO

import pjsua2 as pj

from .src import CallSpec, RecordingClient, _Call

log = logging.getLogger("appliance.simulate.caller")

MAX_CALLS = 4
ANSWER_WAIT_S = 15.0
SLOT_WAIT_S = 10.0         # a call waits this long for one of this process's pjsua slots
PJ_ETOOMANY = 70010


def _directions(streams: int, direction: int) -> "pj.CallOpParam":
    """A re-INVITE that sets every audio stream's direction (pjsua2's SET_MEDIA_DIR)."""
    op = pj.CallOpParam(True)
    op.opt.flag = pj.PJSUA_CALL_SET_MEDIA_DIR
    op.opt.audioCount = streams
    op.opt.mediaDir = pj.IntVector([direction] * streams)
    return op


@dataclass
class _Placed:
    cmd: dict
    call: _Call
    placed_at: float
    answered_at: float | None = None
    actions: list[tuple[float, str]] = field(default_factory=list)
    held: bool = False


class Caller:
    def __init__(self, port: int, rtp_port: int, out: TextIO) -> None:
        self.out = out
        self.client = RecordingClient(port, rtp_port, poll=True)
        self.placed: dict[str, _Placed] = {}
        self.waiting: list[tuple[float, dict]] = []     # (give up at, command)
        self.n = 0

    def place(self, cmd: dict, give_up_at: float | None = None) -> None:
        spec = CallSpec(cmd["target"], list(cmd["streams"]), siprec=bool(cmd.get("siprec", True)),
                        caller=cmd.get("caller", "79161234567"), callee=cmd.get("callee", "101"))
        if len(self.placed) >= MAX_CALLS:
            self.report(cmd, None, error="caller full")
            return
        self.n += 1
        try:
            call = self.client.place(spec, self.n)
        except pj.Error as exc:
            # a call that ended is reported before pjsua frees its slot: on a busy machine
            # the next one can come first; it waits for the slot (never a call to the box)
            give_up_at = time.time() + SLOT_WAIT_S if give_up_at is None else give_up_at
            if exc.status == PJ_ETOOMANY and time.time() < give_up_at:
                self.waiting.append((give_up_at, cmd))
            else:
                self.report(cmd, None, error=exc.info())
            return
        self.client.calls.remove(call)        # this process keeps calls only while they live
        p = _Placed(cmd, call, time.time())
        call.on_disconnected = lambda c, cid=cmd["id"]: self._ended(cid)
        self.placed[cmd["id"]] = p

    def _ended(self, cid: str) -> None:
        p = self.placed.pop(cid, None)
        if p is not None:
            self.report(p.cmd, p)

    def report(self, cmd: dict, p: _Placed | None, error: str | None = None) -> None:
        out = {"id": cmd["id"], "error": error}
        if p is not None:
            c = p.call
            out.update(sip_call_id=c.sip_call_id, answered=p.answered_at is not None,
                       status=c.status, remote_bye=c.remote_bye, held=p.held,
                       started_at=p.answered_at, ended_at=time.time())
        print(json.dumps(out), file=self.out, flush=True)

    def tick(self, now: float) -> None:
        waiting, self.waiting = self.waiting, []
        for give_up_at, cmd in waiting:
            self.place(cmd, give_up_at)
        for p in list(self.placed.values()):
            c = p.call
            if c.disconnected.is_set():
                continue
            if p.answered_at is None:
                if c.confirmed.is_set():
                    p.answered_at = now
                    d = float(p.cmd.get("duration_s", 3.0))
                    hold = p.cmd.get("hold")
                    if hold:
                        p.actions += [(now + hold[0], "hold"), (now + hold[1], "resume")]
                    p.actions.append((now + d, "bye"))
                elif now - p.placed_at > ANSWER_WAIT_S:
                    p.actions = [(now, "bye")]
            due = [a for a in p.actions if a[0] <= now]
            p.actions = [a for a in p.actions if a[0] > now]
            for _, what in due:
                self._act(p, what)

    def _act(self, p: _Placed, what: str) -> None:
        c = p.call
        try:
            if what == "bye":
                c.hung_up_here = True
                c.hangup(pj.CallOpParam(True))
            elif what == "hold" and p.cmd.get("siprec"):
                # An SRC's streams are sendonly already: it pauses them with a=inactive
                # (RFC 7866), which is what a recorded call's hold looks like to the SRS.
                c.reinvite(_directions(len(p.cmd["streams"]), pj.PJMEDIA_DIR_NONE))
                p.held = True
            elif what == "hold":
                c.setHold(pj.CallOpParam(True))
                p.held = True
            elif what == "resume" and p.cmd.get("siprec"):
                c.reinvite(_directions(len(p.cmd["streams"]), pj.PJMEDIA_DIR_ENCODING))
            elif what == "resume":
                op = pj.CallOpParam(True)
                op.opt.flag = pj.PJSUA_CALL_UNHOLD
                op.opt.audioCount = len(p.cmd["streams"])
                c.reinvite(op)
        except pj.Error as exc:
            log.warning("call action %s failed: %s", what, exc.info())

    def run(self) -> int:
        buf = b""
        stdin = sys.stdin.fileno()
        open_input = True
        while open_input or self.placed:
            self.client.ep.libHandleEvents(10)
            self.tick(time.time())
            if not open_input:
                continue
            ready, _, _ = select.select([stdin], [], [], 0)
            if not ready:
                continue
            chunk = os.read(stdin, 65536)
            if not chunk:
                open_input = False
                continue
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if line.strip():
                    self.place(json.loads(line))
        self.client.exit(0)
        return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m appliance.simulate.caller", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, required=True, help="local SIP port")
    p.add_argument("--rtp-port", type=int, required=True, help="first local RTP port")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    # reports go to the real stdout; pjlib's own chatter to stderr
    reports = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    return Caller(args.port, args.rtp_port, reports).run()


if __name__ == "__main__":
    sys.exit(main())
