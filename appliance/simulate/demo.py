"""``appliance demo``: a simulated PBX fills the running appliance with real results.

It sends the PBX's call records of two missed calls (one never called back) to the CDR
API, places three scripted calls as SIPREC sessions (a polite call, a pushy one full of
interruptions, an angry client's complaint with profanity), then waits until the appliance
has recorded and analysed them, reads back what it found, and listens to the MQTT alerts.
Nothing is faked on the appliance's side: the calls travel over SIP and RTP like a PBX's.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import urllib.error
import urllib.request
from importlib import resources
from pathlib import Path
from typing import Any

from ..config import Settings
from ..system.health import daemon_state
from .dialogue import Rendered, Script, assemble, load_scripts
from .pbx import KEPT_AGO_S, LOST_AGO_S, answered_call, missed_calls, place_calls
from .report import Report, summarize
from .voice import render

log = logging.getLogger(__name__)
ALERTS_EXPECTED = ("profanity", "complaint", "problem_call", "missed_not_called_back")


class DemoError(RuntimeError):
    """The demo cannot run; the message says what to do."""


def default_cache_dir() -> Path:
    from ..asr.model import default_model_dir

    return default_model_dir().parent / "demo"


class _Api:
    def __init__(self, base: str, token: str) -> None:
        self.base, self.token = base.rstrip("/"), token

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(f"{self.base}/api/v1{path}", data=data, method=method,
                                     headers={"Authorization": f"Bearer {self.token}",
                                              "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            raise DemoError(f"{method} {path}: HTTP {exc.code}: {exc.read()[:300]!r}") from exc
        except OSError as exc:
            raise DemoError(f"the appliance's API at {self.base} does not answer: {exc}") from exc


class _AlertListener:
    """Collects the box's MQTT alerts while the demo runs (when MQTT is on)."""

    def __init__(self, settings: Settings, mqtt: dict[str, Any]) -> None:
        import paho.mqtt.client as paho

        self.alerts: list[dict[str, Any]] = []
        self.ready = threading.Event()
        cfg = settings.mqtt
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2,
                                  client_id=f"appliance-demo-{int(time.time())}")
        central = mqtt.get("host") == cfg.host      # not the embedded broker: its credentials
        if central and cfg.username:
            self.client.username_pw_set(cfg.username, cfg.password or None)
        if central and cfg.tls:
            self.client.tls_set(ca_certs=str(cfg.ca_file) if cfg.ca_file else None,
                                certfile=str(cfg.cert_file) if cfg.cert_file else None,
                                keyfile=str(cfg.key_file) if cfg.key_file else None)
        topic = f"{cfg.topic_prefix}/+/alerts"
        self.client.on_connect = lambda c, *_: (c.subscribe(topic, qos=1), self.ready.set())
        self.client.on_message = self._on_message
        self.client.connect_async(mqtt["host"], int(mqtt["port"]))
        self.client.loop_start()

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        try:
            self.alerts.append(json.loads(msg.payload))
        except ValueError:
            pass

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _target(settings: Settings) -> str:
    sip = settings.sip
    if not sip.enabled or not sip.direct_calls:
        raise DemoError("the demo calls the box directly: set sip.enabled and sip.direct_calls "
                        "to true (the defaults) and restart the appliance")
    host = "127.0.0.1" if sip.bind_address in ("0.0.0.0", "::") else sip.bind_address
    return f"sip:recorder@{host}:{sip.port}"


def _wait_for_capture(settings: Settings, timeout_s: float = 60.0) -> None:
    """Until every capture process runs (a daemon just started may still be starting them)."""
    from ..sources.sip.workers import state_files, workers_needed

    want = workers_needed(settings)
    deadline = time.monotonic() + timeout_s
    while len(state_files(settings.paths.data_dir)) < want and time.monotonic() < deadline:
        time.sleep(1.0)


def _place_with_retries(target: str, calls: list[tuple[Script, Rendered]], sip_port: int,
                        rtp_port: int, attempts: int = 3) -> list[dict[str, Any]]:
    """Place the calls; those the box turned away as busy (486, 503: it is still starting
    its capture processes, or full) are placed again a few seconds later."""
    placed: dict[int, dict[str, Any]] = {}
    for attempt in range(attempts):
        todo = [i for i in range(len(calls)) if i not in placed]
        for i, result in zip(todo, place_calls(target, [calls[i] for i in todo], sip_port, rtp_port)):
            if result["answered"] or result["status"] not in (486, 503) or attempt == attempts - 1:
                placed[i] = result
        if len(placed) == len(calls):
            break
        log.warning("demo calls turned away as busy; trying again",
                    extra={"calls": len(calls) - len(placed)})
        time.sleep(6.0)
    for i, (s, _) in enumerate(calls):
        if not placed[i]["answered"]:
            raise DemoError(f"the appliance did not answer the {s.id} call (SIP "
                            f"{placed[i]['status']}): see its log")
    return [placed[i] for i in range(len(calls))]


def _day(ts: float) -> str:
    return time.strftime("%Y-%m-%d", time.localtime(ts))


def _wait_for_calls(api: _Api, scripts: list[Script], since: float,
                    timeout_s: float) -> dict[str, dict[str, Any]]:
    """The stored call of each script (matched by client number), once all are analysed
    (transcribed, tagged and scored)."""
    deadline = time.monotonic() + timeout_s
    found: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        rows = api.call("GET", f"/calls?from={_day(since - 60)}&to={_day(time.time())}"
                               "&limit=200")["calls"]
        for s in scripts:
            for r in rows:
                if (r.get("started_at") or 0) >= since - 5 and r.get("asr") != "pending" and \
                        (r.get("client") or "").endswith(s.client[-10:]):
                    found[s.id] = r
        if len(found) == len(scripts):
            return found
        time.sleep(2.0)
    missing = [s.id for s in scripts if s.id not in found]
    raise DemoError(f"calls {missing} were not stored within {timeout_s:.0f} s: see the "
                    "appliance's log (appliance status, or the panel's system page)")


def run_demo(settings: Settings, scripts_file: Path | None = None, timeout_s: float = 600.0,
             cache_dir: Path | None = None, sip_port: int = 5095, rtp_port: int = 31000) -> Report:
    """Run the demo against the appliance running with ``settings``."""
    from ..web.tokens import TokenFile

    data_dir = settings.paths.data_dir
    state = daemon_state(data_dir)
    if state is None:
        raise DemoError(f"the appliance is not running (no fresh {data_dir}/run/daemon.json): "
                        "start it with `make run` or `appliance run`, then run the demo "
                        "in a second terminal with the same configuration")
    if not state.get("web"):
        raise DemoError("the appliance's panel and API are off: set web.enabled = true")
    target = _target(settings)
    path = scripts_file or Path(str(resources.files("appliance.simulate") / "demo_calls.toml"))
    scripts = load_scripts(path)
    calls: list[tuple[Script, Rendered]] = []
    for s in scripts:
        lines = render([(t.say, s.pitch[t.who]) for t in s.turns], cache_dir or default_cache_dir())
        calls.append((s, assemble(s.turns, lines)))
    report = Report(state["web"])
    run_id = time.strftime("%Y%m%d%H%M%S")
    tokens = TokenFile(data_dir)
    token_name = f"demo-{run_id}"
    api = _Api(state["web"], tokens.create(token_name, "integration"))
    listener = _AlertListener(settings, state["mqtt"]) if state["mqtt"].get("enabled") else None
    try:
        if listener is not None:
            listener.ready.wait(10)
        now = time.time()
        api.call("POST", "/cdr", {"records": missed_calls(run_id, now)})
        _wait_for_capture(settings)
        placed = _place_with_retries(target, calls, sip_port, rtp_port)
        api.call("POST", "/cdr", {"records": [answered_call(run_id, s, p["started_at"], p["ended_at"])
                                              for (s, _), p in zip(calls, placed)]})
        stored = _wait_for_calls(api, scripts, now, timeout_s)
        for s in scripts:
            call = api.call("GET", f"/calls/{stored[s.id]['uid']}/detail")
            report.calls.append(summarize(s, stored[s.id], call))
            report.problems += [f"{s.id}: {m}" for m in report.calls[-1]["misses"]]
        for day in sorted({_day(now - LOST_AGO_S), _day(now - KEPT_AGO_S)}):   # the records' days
            report.missed += api.call("GET", f"/missed?period={day}")["missed"]
        report.kpis = api.call("GET", f"/kpis?period={time.strftime('%Y-%m')}")
        if listener is not None:
            _wait_for_alerts(listener)
            report.alerts = [a for a in listener.alerts if (a.get("ts") or 0) >= now - 30 * 3600]
            kinds = {a.get("kind") for a in report.alerts}
            for kind in ALERTS_EXPECTED:
                if kind not in kinds:
                    report.problems.append(f"no {kind!r} alert over MQTT")
    finally:
        if listener is not None:
            listener.close()
        tokens.revoke(token_name)
    return report


def _wait_for_alerts(listener: _AlertListener, wait_s: float = 30.0) -> None:
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        kinds = {a.get("kind") for a in listener.alerts}
        if set(ALERTS_EXPECTED) <= kinds:
            return
        time.sleep(0.5)
