"""What the demo found: each call's figures against its script's expectations, and the
report printed at the end."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .dialogue import Script


@dataclass
class Report:
    """What the demo found, printed by ``render_report`` or given as JSON (``as_dict``)."""

    panel: str
    calls: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    missed: list[dict[str, Any]] = field(default_factory=list)
    kpis: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"panel": self.panel, "calls": self.calls, "alerts": self.alerts,
                "missed": self.missed, "kpis": self.kpis, "problems": self.problems,
                "ok": not self.problems}


def _tags(call: dict[str, Any]) -> set[tuple[str, str]]:
    return {(t.get("party"), t.get("tag")) for t in call.get("timeline", {}).get("tags", [])}


def check(script: Script, call: dict[str, Any]) -> list[str]:
    """What the analysis missed of the script's ``expect``; ``call``: the call's detail as
    ``/api/v1/calls/<uid>/detail`` gives it."""
    e, misses = script.expect, []
    tags = _tags(call)
    for party in ("agent", "client"):
        for tag in e.get(f"{party}_tags", []):
            if (party, tag) not in tags:
                misses.append(f"no {tag!r} tag for the {party}")
    for tag in e.get("no_tags", []):
        if any(d == tag for _, d in tags):
            misses.append(f"unexpected {tag!r} tag")
    score = (call.get("score") or {}).get("total")
    if "min_score" in e and (score is None or score < e["min_score"]):
        misses.append(f"score {score} < {e['min_score']}")
    if "max_score" in e and (score is None or score > e["max_score"]):
        misses.append(f"score {score} > {e['max_score']}")
    made = {p: v.get("interruptions_made", 0) for p, v in call.get("parties", {}).items()}
    if "max_interruptions" in e and sum(made.values()) > e["max_interruptions"]:
        misses.append(f"{sum(made.values())} interruptions > {e['max_interruptions']}")
    for party in ("agent", "client"):
        want = e.get(f"min_interruptions_by_{party}")
        if want is not None and made.get(party, 0) < want:
            misses.append(f"{party} interrupted {made.get(party, 0)} times < {want}")
    problems = (call.get("call") or {}).get("problems") or []
    for reason in e.get("problem_reasons", []):
        if reason not in problems:
            misses.append(f"not a problem call for {reason!r}")
    return misses


def summarize(script: Script, stored: dict[str, Any], call: dict[str, Any]) -> dict[str, Any]:
    parties = call.get("parties", {})
    return {"id": script.id, "title": script.title, "uid": stored["uid"],
            "agent": stored.get("agent"), "client": stored.get("client"),
            "direction": stored.get("direction"), "duration_s": stored.get("duration_s"),
            "pbx_record": bool(call.get("call", {}).get("pbx")),
            "score": (call.get("score") or {}).get("total"),
            "talk_share": {p: v.get("talk_share") for p, v in parties.items()},
            "interruptions_made": {p: v.get("interruptions_made") for p, v in parties.items()},
            "tags": sorted(f"{party}:{tag}" for party, tag in _tags(call)),
            "problems": (call.get("call") or {}).get("problems") or [],
            "transcript": [f"{t['party']}: {t['text']}" for t in call.get("transcript", [])],
            "misses": check(script, call)}


KPI_COLUMNS = (("in", "calls_in"), ("out", "calls_out"), ("recorded", "recorded"),
               ("missed", "missed"), ("never called back", "missed_never"),
               ("score", "avg_score"), ("interruptions", "interruptions_per_call"))


def _figure(v: Any) -> str:
    return "-" if v is None else f"{v:.1f}" if isinstance(v, float) else str(v)


def render_report(report: Report) -> str:
    """The report for a terminal: each call's findings, the alerts, the missed calls, KPIs."""
    out = [f"Panel: {report.panel}  (sign in; the first start logged a set-up link)", ""]
    for c in report.calls:
        share = c["talk_share"].get("agent")
        out.append(f"{c['title']}: agent {c['agent']}, client {c['client']}, "
                   f"{c['duration_s']:.0f} s, score {c['score']}, agent talk "
                   f"{share:.0%}" if share is not None else f"{c['title']}")
        made = c["interruptions_made"]
        out.append(f"  interruptions: agent {made.get('agent', 0)}, client {made.get('client', 0)}; "
                   f"tags: {', '.join(c['tags']) or 'none'}")
        if c.get("problems"):
            out.append(f"  problem call: {', '.join(c['problems'])}")
        out.append(f"  {report.panel.rstrip('/')}/calls/{c['uid']}")
        out += [f"  ! {m}" for m in c["misses"]]
    if report.alerts:
        out += ["", "MQTT alerts:"]
        out += [f"  {a.get('severity', '')}: {a.get('kind')}: {a.get('message')}" for a in report.alerts]
    never = [m for m in report.missed if (m.get("callback") or {}).get("status") == "never"]
    out += ["", f"Missed calls on the PBX records' days: {len(report.missed)}, never called back: "
            f"{len(never)}"]
    rows = [("office", report.kpis.get("office") or {})]
    rows += sorted((report.kpis.get("managers") or {}).items())
    if rows[0][1]:
        out += ["", f"KPIs {report.kpis.get('period')}:",
                " " * 10 + "".join(f"{label:>{len(label) + 2}}" for label, _ in KPI_COLUMNS)]
        for name, k in rows:
            out.append(f"  {name:<8}" + "".join(f"{_figure(k.get(key)):>{len(label) + 2}}"
                                                 for label, key in KPI_COLUMNS))
    out += ["", "All as scripted." if not report.problems else "Not as scripted:"]
    out += [f"  - {p}" for p in report.problems]
    return "\n".join(out)
