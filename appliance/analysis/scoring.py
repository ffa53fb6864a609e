"""Checklist scores: data-defined items evaluated on the call JSON, weighted to 0-100.

Rules an item can use:
- ``tag_within``: a tag of ``party`` within ``within_s`` seconds of the call start;
- ``tag_present`` / ``tag_absent``: a tag of ``party`` somewhere / nowhere;
- ``tag_max``: at most ``max`` tags of that kind from ``party``;
- ``metric_max`` / ``metric_min`` / ``metric_range``: a figure of the call JSON, named by
  its dotted path (``parties.agent.talk_share``, ``totals.dead_air_share``).
Tag rules need a transcript: without one such items are not evaluated (``passed: null``)
and the total is over the items that were.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

TAG_RULES = {"tag_within", "tag_present", "tag_absent", "tag_max"}
METRIC_RULES = {"metric_max", "metric_min", "metric_range"}


class ChecklistError(ValueError):
    """A checklist file is malformed; the message names the file and the item."""


@dataclass(frozen=True)
class Checklist:
    name: str
    title: str
    items: tuple[dict[str, Any], ...]


def _metric(result: dict[str, Any], path: str) -> Any:
    node: Any = result
    for part in path.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def parse_checklist(text: str, source: str) -> Checklist:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ChecklistError(f"{source}: not valid TOML: {exc}") from None
    items = data.get("items") or []
    if not data.get("checklist") or not items:
        raise ChecklistError(f"{source}: needs 'checklist' (a name) and at least one [[items]]")
    seen = set()
    for n, item in enumerate(items, 1):
        where = f"{source}: item {n} ({item.get('id')!r})"
        rule = item.get("rule")
        if not item.get("id") or item["id"] in seen:
            raise ChecklistError(f"{where}: needs a unique 'id'")
        seen.add(item["id"])
        if rule not in TAG_RULES | METRIC_RULES:
            raise ChecklistError(f"{where}: rule must be one of {sorted(TAG_RULES | METRIC_RULES)}")
        if not isinstance(item.get("weight"), (int, float)) or item["weight"] <= 0:
            raise ChecklistError(f"{where}: weight must be a positive number")
        need = {"tag_within": ("tag", "within_s"), "tag_present": ("tag",),
                "tag_absent": ("tag",), "tag_max": ("tag", "max"), "metric_max": ("metric", "max"),
                "metric_min": ("metric", "min"), "metric_range": ("metric", "min", "max")}[rule]
        missing = [k for k in need if k not in item]
        if missing:
            raise ChecklistError(f"{where}: rule {rule} needs {', '.join(missing)}")
    return Checklist(data["checklist"], data.get("title", data["checklist"]), tuple(items))


def load_checklist(name: str = "sales", user_dir: Path | None = None) -> Checklist:
    """A user's checklist ``<user_dir>/checklists/<name>.toml`` (or the older
    ``<user_dir>/<name>.toml``) if present, else the built-in one."""
    for path in ((user_dir / "checklists" / f"{name}.toml", user_dir / f"{name}.toml")
                 if user_dir is not None else ()):
        if path.is_file():
            return parse_checklist(path.read_text(encoding="utf-8"), str(path))
    f = resources.files("appliance").joinpath("dictionaries", "checklists", f"{name}.toml")
    if not f.is_file():
        raise ChecklistError(f"no checklist named {name!r}")
    return parse_checklist(f.read_text(encoding="utf-8"), f"built-in checklists/{name}.toml")


def _evaluate(item: dict[str, Any], result: dict[str, Any], has_text: bool
              ) -> tuple[bool | None, str, dict[str, Any]]:
    """Passed or not (None: not evaluated), the evidence in English, and the same evidence
    as data, which the panel words in its own language."""
    rule = item["rule"]
    if rule in TAG_RULES:
        if not has_text:
            return None, "no transcript", {"missing": "transcript"}
        party = item.get("party", "any")
        tags = [t for t in result.get("tags", [])
                if t["tag"] == item["tag"] and party in ("any", t["party"])]
        base = {"rule": rule, "tag": item["tag"], "party": party, "count": len(tags)}
        if tags:
            base |= {"text": tags[0].get("text"), "at": tags[0].get("at")}
        if rule == "tag_within":
            early = [t for t in tags if t["at"] <= item["within_s"]]
            if early:
                return True, f"'{early[0]['text']}' at {early[0]['at']:.1f} s", \
                    base | {"text": early[0].get("text"), "at": early[0]["at"]}
            return False, (f"first at {tags[0]['at']:.1f} s" if tags
                           else f"no {item['tag']} from {party}"), base | {"within_s": item["within_s"]}
        if rule == "tag_present":
            return (True, f"'{tags[0]['text']}' at {tags[0]['at']:.1f} s", base) if tags else \
                (False, f"no {item['tag']} from {party}", base)
        if rule == "tag_absent":
            return (False, f"'{tags[0]['text']}' at {tags[0]['at']:.1f} s", base) if tags else \
                (True, f"no {item['tag']} from {party}", base)
        return len(tags) <= item["max"], f"{len(tags)} found (max {item['max']})", \
            base | {"max": item["max"]}
    value = _metric(result, item["metric"])
    if not isinstance(value, (int, float)):
        return None, f"{item['metric']} not available", {"missing": "metric", "metric": item["metric"]}
    lo, hi = item.get("min", float("-inf")), item.get("max", float("inf"))
    limits = {k: item[k] for k in ("min", "max") if k in item}
    return lo <= value <= hi, f"{item['metric']} = {value:g}", \
        {"rule": rule, "metric": item["metric"], "value": value, **limits}


def score_call(result: dict[str, Any], checklist: Checklist) -> dict[str, Any]:
    """{total: 0-100 or None, checklist, items: [{id, title, passed, weight, evidence,
    detail}]}; ``detail`` is the evidence as data."""
    has_text = result.get("asr", {}).get("status") == "ok"
    items, got, possible = [], 0.0, 0.0
    for item in checklist.items:
        passed, evidence, detail = _evaluate(item, result, has_text)
        items.append({"id": item["id"], "title": item.get("title", item["id"]), "passed": passed,
                      "weight": item["weight"], "evidence": evidence, "detail": detail})
        if passed is not None:
            possible += item["weight"]
            got += item["weight"] if passed else 0.0
    total = round(100.0 * got / possible) if possible else None
    return {"total": total, "checklist": checklist.name, "items": items}
