"""Checklist evidence in plain words, in the panel's language: "the agent interrupted 0
times (limit 2)" rather than ``parties.agent.interruptions_made = 0``."""

from __future__ import annotations

from typing import Any, Mapping

from .filters import dur, pct, tagname
from .i18n import gettext as _

# what a figure of the call JSON is, in words; {value} is filled in
METRICS = {
    "parties.agent.interruptions_made": "the agent interrupted {value} times",
    "parties.client.interruptions_made": "the client interrupted {value} times",
    "parties.agent.talk_share": "the agent talked {value} of the time",
    "parties.client.talk_share": "the client talked {value} of the time",
    "totals.dead_air_share": "silence took {value} of the call",
    "parties.agent.longest_monologue_s": "the agent's longest monologue: {value}",
    "parties.agent.reply_latency_s": "the agent answered after {value} on average",
    "duration_s": "the call lasted {value}",
    "totals.longest_hold_s": "the longest hold lasted {value}",
    "totals.holds": "the client was put on hold {value} times",
}


def _value(metric: str, value: Any) -> str:
    if metric.endswith("share"):
        return pct(value)
    if metric.endswith("_s"):
        return dur(value)
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


def evidence(item: Mapping[str, Any]) -> str:
    """A checklist item's evidence in words; the stored text for items scored before the
    evidence was kept as data."""
    d = item.get("detail")
    if not isinstance(d, Mapping):
        return str(item.get("evidence") or "")
    if d.get("missing") == "transcript":
        return _("no transcript")
    if d.get("missing") == "metric":
        return _("not measured in this call")
    if "metric" in d:
        metric = d["metric"]
        words = METRICS.get(metric)
        value = _value(metric, d.get("value"))
        text = _(words, value=value) if words else f"{metric} = {value}"
        if "min" in d and "max" in d:
            return text + " " + _("(expected {low}–{high})", low=_value(metric, d["min"]),
                                  high=_value(metric, d["max"]))
        if "max" in d:
            return text + " " + _("(limit {limit})", limit=_value(metric, d["max"]))
        if "min" in d:
            return text + " " + _("(at least {limit})", limit=_value(metric, d["min"]))
        return text
    tag, party = tagname(d.get("tag")), _(d.get("party") or "any")
    if d.get("rule") == "tag_max":
        return _("{tag} said {count} times (limit {limit})", tag=tag, count=d.get("count", 0),
                 limit=d.get("max"))
    if d.get("count"):
        said = _("“{text}” at {at}", text=d.get("text") or tag, at=dur(d.get("at")))
        if d.get("rule") == "tag_within" and "within_s" in d:
            return said + " " + _("(later than {limit})", limit=dur(d["within_s"]))
        return said
    return _("no {tag} heard from the {party}", tag=tag, party=party)
