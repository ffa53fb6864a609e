"""The simulated PBX's side of a demo: its call records (CDR) and a recording client that
places the scripted calls to the appliance over SIP (``python -m appliance.simulate.src``)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import soundfile as sf

from .dialogue import Rendered, Script

log = logging.getLogger(__name__)


LOST_AGO_S = 26 * 3600      # older than the callback window (cdr.callback_slow_h, 24 h)
KEPT_AGO_S = 3 * 3600


def iso(ts: float) -> str:
    """Local time with its offset, as a PBX writes it."""
    return datetime.fromtimestamp(ts).astimezone().isoformat(timespec="seconds")


def missed_calls(run_id: str, now: float) -> list[dict[str, Any]]:
    """Records of two missed calls: one from yesterday that nobody called back (a queue rang
    two phones), one from this morning that a colleague called back within 12 minutes."""
    lost, kept = now - LOST_AGO_S, now - KEPT_AGO_S
    return [
        {"id": f"demo-{run_id}-m1a", "group": f"demo-{run_id}-m1", "start": iso(lost),
         "end": iso(lost + 31), "from": "+7 985 222-33-44", "to": "101",
         "disposition": "NO ANSWER", "duration": 31, "billsec": 0},
        {"id": f"demo-{run_id}-m1b", "group": f"demo-{run_id}-m1", "start": iso(lost),
         "end": iso(lost + 31), "from": "+7 985 222-33-44", "to": "102",
         "disposition": "NO ANSWER", "duration": 31, "billsec": 0},
        {"id": f"demo-{run_id}-m2", "start": iso(kept), "end": iso(kept + 24),
         "from": "+7 915 444-55-66", "to": "101", "disposition": "NO ANSWER", "duration": 24,
         "billsec": 0},
        {"id": f"demo-{run_id}-m2cb", "start": iso(kept + 720), "answer": iso(kept + 731),
         "end": iso(kept + 826), "from": "102", "to": "+7 915 444-55-66",
         "disposition": "ANSWERED", "billsec": 95},
    ]


def answered_call(run_id: str, script: Script, started: float, ended: float) -> dict[str, Any]:
    """The PBX's record of a call it also sent to the recorder (rang 6 s before the answer)."""
    return {"id": f"demo-{run_id}-{script.id}", "start": iso(started - 6), "answer": iso(started),
            "end": iso(ended), "from": script.caller, "to": script.callee,
            "disposition": "ANSWERED", "billsec": round(ended - started), "agent": script.agent,
            "direction": script.direction}


def place_calls(target: str, calls: list[tuple[Script, Rendered]], sip_port: int,
                rtp_port: int) -> list[dict[str, Any]]:
    """Play the calls at once as SIPREC sessions (one stream per party, caller first) from a
    second pjsua2 endpoint in a child process; returns per call ``answered``, ``status``,
    ``started_at`` and ``ended_at``."""
    with tempfile.TemporaryDirectory(prefix="appliance-demo-") as tmp:
        plan = []
        for script, rendered in calls:
            wavs = {}
            for ch, party in enumerate(("agent", "client")):
                wavs[party] = str(Path(tmp) / f"{script.id}-{party}.wav")
                sf.write(wavs[party], rendered.stereo[:, ch], 16000, subtype="PCM_16")
            first, second = (("client", "agent") if script.direction == "inbound"
                             else ("agent", "client"))
            names = {"agent": script.agent_name or script.agent,
                     "client": script.client_name or script.client}
            plan.append({"streams": [wavs[first], wavs[second]], "caller": script.caller,
                         "callee": script.callee, "caller_name": names[first],
                         "callee_name": names[second], "duration_s": rendered.duration + 0.5,
                         "headers": {"X-Direction": script.direction}})
        plan_file = Path(tmp) / "plan.json"
        plan_file.write_text(json.dumps(plan, ensure_ascii=False), encoding="utf-8")
        longest = max(r.duration for _, r in calls)
        cmd = [sys.executable, "-m", "appliance.simulate.src", target, "--plan", str(plan_file),
               "--port", str(sip_port), "--rtp-port", str(rtp_port)]
        log.info("placing demo calls", extra={"calls": len(plan), "target": target})
        started = time.time()
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=longest + 60)
    results = []
    for line in done.stdout.splitlines():
        try:
            results.append(json.loads(line))
        except ValueError:
            continue
    if len(results) != len(calls):
        raise RuntimeError(f"the recording client failed (exit {done.returncode}, "
                           f"{time.time() - started:.0f} s): {done.stderr.strip()[-600:]}")
    return results
