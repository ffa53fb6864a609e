"""What each ``/api/v1`` route takes and answers, declared once: the query parameters are
checked from these declarations before the view runs (``check_query``), the request bodies
are described from the constants their validators use, and ``openapi.py`` builds the
published document from the same declarations, so the two cannot drift apart.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from werkzeug.exceptions import BadRequest

from ..analysis.tagger import PARTIES
from ..analysis.problems import REASONS as PROBLEM_REASONS
from ..kpi.figures import CALLBACK_STATUSES
from ..kpi.plans import KINDS as PLAN_KINDS
from ..kpi.plans import METRICS as PLAN_METRICS
from ..kpi.plans import SCOPES as PLAN_SCOPES
from ..query import SORTS
from .managers import COLUMNS
from ..sources.sidecar import FIELDS as RECORDING_FIELDS
from ..store.outcomes import RESULTS
from ..system.panel_settings import EDITABLE
from .users import ROLES

Schema = dict[str, Any]

STR: Schema = {"type": "string"}
NUM: Schema = {"type": "number"}
INT: Schema = {"type": "integer"}
BOOL: Schema = {"type": "boolean"}
ANY: Schema = {}


def obj(props: dict[str, Schema], required: tuple[str, ...] = (), extra: bool | Schema = True
        ) -> Schema:
    out: Schema = {"type": "object", "properties": props}
    if required:
        out["required"] = list(required)
    if extra is not True:
        out["additionalProperties"] = extra
    return out


def arr(items: Schema, most: int | None = None) -> Schema:
    return {"type": "array", "items": items} | ({"maxItems": most} if most else {})


def null(schema: Schema) -> Schema:
    """``schema`` or null."""
    return {"anyOf": [schema, {"type": "null"}]}


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


# --- what the API answers ---
FIGURES = {"type": "object", "additionalProperties": null({"anyOf": [NUM, STR, {"type": "object"}]})}
CHANGES = {"type": "object", "additionalProperties": null(obj({"delta": NUM, "relative": null(NUM)}))}
COMPARED = obj({"current": FIGURES, "vs_previous": CHANGES, "vs_year_ago": CHANGES},
               ("current", "vs_previous", "vs_year_ago"))
SCHEMAS: dict[str, Schema] = {
    "Error": obj({"error": STR}, ("error",), extra=False),
    "Outcome": obj({"uid": STR, "result": {"enum": list(RESULTS)}, "amount": null(NUM),
                    "currency": null(STR), "note": null(STR), "by": STR, "at": NUM,
                    "call_started_at": null(NUM), "agent": null(STR)},
                   ("uid", "result", "by", "at")),
    "PbxCall": obj({"group": STR, "start": NUM, "direction": null(STR), "client": null(STR),
                    "agent": null(STR), "rung": arr(STR), "answered": BOOL, "ring_s": null(NUM),
                    "talk_s": null(NUM), "call_uid": null(STR),
                    "legs": {"type": "object", "additionalProperties": NUM}, "waiting_s": NUM,
                    "callback": null(obj({"status": {"enum": list(CALLBACK_STATUSES)}}, ("status",)))},
                   ("group", "start", "answered")),
    "CallRecord": obj({
        "uid": STR, "source": null(STR), "started_at": null(NUM), "month": STR,
        "direction": null(STR), "agent": null(STR), "client": null(STR),
        "agent_digits": STR, "client_digits": STR, "sip_call_id": null(STR), "duration_s": NUM,
        "talk_share_agent": null(NUM), "interruptions_by_agent": INT,
        "interruptions_by_client": INT, "dead_air_share": null(NUM),
        "tags": {"type": "object", "additionalProperties": INT}, "score": null(NUM),
        "asr": null(STR), "recording": null(STR), "result_path": null(STR), "notes": INT,
        "problems": arr({"enum": list(PROBLEM_REASONS)}),
        "audio": STR, "outcome": null(ref("Outcome")), "pbx": null(ref("PbxCall"))},
        ("uid", "started_at", "month", "tags")),
    "CallPage": obj({"total": INT, "offset": INT, "limit": INT, "calls": arr(ref("CallRecord")),
                     "from": STR, "to": STR, "page": INT, "pages": INT},
                    ("total", "offset", "limit", "calls")),
    "Kpis": obj({"period": STR, "kind": {"enum": ["day", "week", "month"]}, "start": NUM,
                 "end": NUM, "managers": {"type": "object", "additionalProperties": FIGURES},
                 "teams": {"type": "object", "additionalProperties": FIGURES}, "office": FIGURES},
                ("period", "managers", "teams", "office")),
    "Compare": obj({"period": STR, "previous": STR, "year_ago": STR,
                    "managers": {"type": "object", "additionalProperties": COMPARED},
                    "teams": {"type": "object", "additionalProperties": COMPARED},
                    "office": COMPARED}, ("period", "managers", "office")),
    "Alert": obj({"kind": STR, "severity": {"enum": ["warning", "critical"]}, "uid": null(STR),
                  "agent": null(STR), "client": null(STR), "at": null(NUM),
                  "reasons": arr({"enum": list(PROBLEM_REASONS)})}, ("kind", "severity")),
    "Dictionary": obj({"language": STR, "name": STR, "tag": STR, "party": {"enum": list(PARTIES)},
                       "severity": INT, "alert": BOOL, "enabled": BOOL, "origin": STR,
                       "entries": {"anyOf": [arr(STR), INT]}}, ("language", "name", "entries")),
    "Checklist": obj({"name": STR, "title": STR, "origin": STR, "text": STR, "items": arr(ANY)},
                     ("name", "text", "items")),
    "User": obj({"name": STR, "role": {"enum": list(ROLES)}, "disabled": BOOL,
                 "created_at": null(NUM), "last_login": null(NUM)}, ("name", "role")),
    "Health": obj({"ok": BOOL, "at": NUM, "checks": {"type": "object", "additionalProperties":
                                                     obj({"ok": BOOL, "detail": STR}, ("ok", "detail"))}},
                  ("ok", "checks")),
}

# --- what it takes ---
TIME = {"anyOf": [NUM, STR], "description": "ISO 8601 or epoch seconds"}
CDR_ROW = obj({name: TIME if name in ("start", "answer", "end") else
               NUM if name in ("duration", "billsec") else STR
               for name in ("id", "call_id", "group", "start", "answer", "end", "from", "to",
                            "direction", "agent", "disposition", "duration", "billsec",
                            "channel", "dstchannel")}, ("start",))
CDR_BODY = {"anyOf": [CDR_ROW, arr(CDR_ROW, 10000), obj({"records": arr(CDR_ROW, 10000)}, ("records",)),
                      obj({"variables": {"type": "object"}}, ("variables",))],
            "description": "one record, a list, {records: [...]}, or a FreeSWITCH mod_json_cdr document"}
MASTER_CSV = {"type": "string", "description": "Asterisk's Master.csv as it is"}


def json_body(schema: Schema) -> dict[str, Schema]:
    return {"application/json": schema}


@dataclass(frozen=True)
class Param:
    """A query parameter: checked by ``check_query``, described in the OpenAPI document."""

    name: str
    kind: str = "string"           # string | integer | number
    text: str = ""
    enum: tuple[str, ...] = ()
    pattern: str = ""
    required: bool = False
    high: int = 0                  # integers: 0 to high

    def schema(self) -> Schema:
        out: Schema = {"type": self.kind}
        if self.enum:
            out["enum"] = list(self.enum)
        if self.pattern:
            out["pattern"] = f"^{self.pattern}$"
        if self.kind == "integer":
            out |= {"minimum": 0, "maximum": self.high}
        return out

    def check(self, raw: str) -> None:
        if self.kind == "integer":
            if not raw.isdigit() or int(raw) > self.high:
                raise BadRequest(f"{self.name}: a whole number from 0 to {self.high}")
        elif self.kind == "number":
            try:
                ok = math.isfinite(float(raw))
            except ValueError:
                ok = False
            if not ok:
                raise BadRequest(f"{self.name}: {raw[:20]!r} is not a number")
        if self.enum and raw not in self.enum:
            raise BadRequest(f"{self.name}: {raw[:40]!r} is not one of {', '.join(self.enum)}")
        if self.pattern and not re.fullmatch(self.pattern, raw):
            raise BadRequest(f"{self.name}: {raw[:20]!r}; {self.text}")


@dataclass(frozen=True)
class Route:
    """One operation: its query parameters, request body (by media type) and answers (status
    -> JSON Schema of the body, None for no body). Errors every route may answer are added
    by ``responses``."""

    ok: dict[int, Schema | None]
    query: tuple[Param, ...] = ()
    body: dict[str, Schema] = field(default_factory=dict)
    writes: bool = False           # stores something: a full disk answers 507
    public: bool = False           # no authentication

    def responses(self, path_params: bool) -> dict[int, Schema | None]:
        out = dict(self.ok)
        error = ref("Error")
        if not self.public:
            out |= {401: error, 403: error}
        if self.query or self.body:
            out.setdefault(400, error)
        if path_params:
            out[404] = error
        if self.body:
            out[413] = error
        if self.writes:
            out |= {500: error, 507: error}
        return dict(sorted(out.items()))


MANAGER_COLUMNS = tuple(c.key for c in COLUMNS)
PLAN_FIELDS: dict[str, Schema] = {
    "id": STR, "scope": {"enum": list(PLAN_SCOPES)}, "who": STR, "kind": {"enum": list(PLAN_KINDS)},
    "metric": {"enum": list(PLAN_METRICS)}, "target": NUM}
SCHEMAS["Plan"] = obj(PLAN_FIELDS, tuple(PLAN_FIELDS), extra=False)
SCHEMAS["PlanProgress"] = obj(PLAN_FIELDS | {
    "period": STR, "value": null(NUM), "forecast": null(NUM), "share": null(NUM),
    "elapsed": NUM, "status": {"enum": ["early", "on_track", "behind", "done", "missed"]},
    "currency": null(STR), "name": null(STR)}, (*PLAN_FIELDS, "period", "status", "elapsed"))
SCHEMAS["GroupRow"] = obj({"id": STR, "name": STR, "team": null(STR),
                           "values": FIGURES, "changes": {"type": "object"},
                           "series": {"type": "object", "additionalProperties": arr(null(NUM))},
                           "flags": {"type": "object", "additionalProperties": STR}},
                          ("id", "name", "values", "changes", "series", "flags"))

PERIOD_TEXT = "a day (2026-11-24), an ISO week (2026-W48) or a month (2026-11)"
PERIOD = Param("period", text=PERIOD_TEXT, pattern=r"\d{4}-(\d{2}|\d{2}-\d{2}|W\d{2})",
               required=True)
DATE = r"\d{4}-\d{2}-\d{2}"

ROUTES: dict[str, Route] = {
    "api.calls": Route({200: ref("CallPage")}, (
        Param("period", text=PERIOD_TEXT + " (or from/to)", pattern=PERIOD.pattern),
        Param("from", text="first day, YYYY-MM-DD (default: 30 days ago)", pattern=DATE),
        Param("to", text="last day, YYYY-MM-DD (default: today)", pattern=DATE),
        Param("agent"), Param("direction", enum=("inbound", "outbound")), Param("tag"),
        Param("min_score", "number"), Param("max_score", "number"),
        Param("q", text="words that must all appear in the transcript (prefixes)"),
        Param("party", text="search only that party's words", enum=("agent", "client")),
        Param("problem", text="1: problem calls only (the client's side: docs/kpis.md)",
              enum=("0", "1")),
        Param("sort", text="order by this figure (default: date)", enum=tuple(SORTS)),
        Param("order", text="desc (default) or asc", enum=("asc", "desc")),
        Param("offset", "integer", high=10**7), Param("limit", "integer", high=500),
        Param("page", "integer", high=10**6))),
    "api.call": Route({200: ref("CallRecord")}),
    "api.call_detail": Route({200: obj({"call": ref("CallRecord"), "parties": {"type": "object"},
                                        "totals": {"type": "object"}, "timeline": {"type": "object"},
                                        "transcript": arr(obj({"party": STR, "start": NUM, "text": STR})),
                                        "score": null({"type": "object"}), "asr": {"type": "object"},
                                        "notes": arr(STR), "audio": BOOL},
                                       ("call", "timeline", "transcript", "audio"))}),
    "api.outcome": Route({201: ref("Outcome")}, body=json_body(obj({
        "result": {"enum": list(RESULTS)}, "amount": {"type": "number", "minimum": 0, "maximum": 1e12},
        "currency": {"type": "string", "pattern": "^[A-Za-z]{3}$"},
        "note": {"type": "string", "maxLength": 1000}}, ("result",), extra=False)), writes=True),
    "api.cdr": Route({200: ref("CdrResult"), 207: ref("CdrResult"),
                      400: {"anyOf": [ref("Error"), ref("CdrRejected")]}},
                     body=json_body(CDR_BODY), writes=True),
    "api.cdr_asterisk": Route({200: ref("CsvResult"), 207: ref("CsvResult"),
                               400: {"anyOf": [ref("Error"), ref("CsvRejected")]}}, body={
        "text/csv": MASTER_CSV, "application/x-www-form-urlencoded": MASTER_CSV | {
            "description": "curl --data-binary's default type: the body is taken as it is"},
        "multipart/form-data": obj({"file": {"type": "string", "format": "binary"}}, ("file",))},
        writes=True),
    "api.recording_upload": Route({202: obj({"file": STR, "call_id": STR, "status": {"enum": ["queued"]}},
                                            ("file", "call_id", "status"))},
                                  body={"multipart/form-data": obj(
                                      {"file": {"type": "string", "format": "binary"}}
                                      | {f: {"enum": ["inbound", "outbound"]} if f == "direction" else
                                         TIME if f == "started_at" else STR for f in RECORDING_FIELDS},
                                      ("file",), extra=False)}, writes=True),
    "api.kpis": Route({200: ref("Kpis")}, (PERIOD,)),
    "api.kpis_compare": Route({200: ref("Compare")}, (PERIOD,)),
    "api.kpis_flags": Route({200: obj({"flags": arr({"type": "object"})}, ("flags",))}, (PERIOD,)),
    "api.missed": Route({200: obj({
        "from": STR, "to": STR, "total": INT, "all": INT,
        "counts": obj({s: INT for s in CALLBACK_STATUSES}), "never_share": null(NUM),
        "median_callback_s": null(NUM), "missed": arr(ref("PbxCall")),
        "to_call_back": arr(ref("PbxCall")), "names": {"type": "object", "additionalProperties": STR},
        "teams": arr(STR)}, ("missed", "to_call_back", "counts"))}, (
        Param("period", text=PERIOD_TEXT + " (or from/to)", pattern=PERIOD.pattern),
        Param("from", text="first day, YYYY-MM-DD (default: 6 days ago)", pattern=DATE),
        Param("to", text="last day, YYYY-MM-DD (default: today)", pattern=DATE),
        Param("status", text="callback status", enum=CALLBACK_STATUSES),
        Param("agent", text="a manager whose phone rang"),
        Param("alone", text="1: only calls that rang that manager alone", enum=("0", "1")),
        Param("team", text="a team of kpi.teams whose phones rang"))),
    "api.managers": Route({200: obj({
        "kind": {"enum": ["week", "month"]}, "period": STR, "periods": arr(STR), "to_date": BOOL,
        "previous": STR, "currency": STR, "sort": STR, "order": {"enum": ["asc", "desc"]},
        "columns": arr(obj({"key": STR, "title": STR, "better": STR, "fmt": STR})),
        "managers": arr(ref("GroupRow")), "teams": arr(ref("GroupRow"))},
        ("kind", "periods", "columns", "managers", "teams"))}, (
        Param("kind", text="week (the last 8) or month (the last 6)", enum=("week", "month")),
        Param("sort", text="name or a column's key", enum=("name", *MANAGER_COLUMNS)),
        Param("order", text="asc or desc", enum=("asc", "desc")))),
    "api.plans": Route({200: obj({"plans": arr(ref("PlanProgress"))}, ("plans",))}),
    "api.plan_put": Route({200: ref("Plan")}, body=json_body(obj({
        "scope": {"enum": list(PLAN_SCOPES)}, "who": {"type": "string", "maxLength": 64},
        "kind": {"enum": list(PLAN_KINDS)}, "metric": {"enum": list(PLAN_METRICS)},
        "target": {"type": "number", "minimum": 0}},
        ("scope", "who", "kind", "metric", "target"), extra=False)), writes=True),
    "api.plan_delete": Route({204: None}, writes=True),
    "api.clients": Route({200: obj({"cooling": arr({"type": "object"}),
                                    "zombie": arr({"type": "object"})}, ("cooling", "zombie"))}),
    "api.dashboard": Route({200: obj({"today": STR, "month": STR, "today_calls": ref("CallPage"),
                                      "today_figures": FIGURES, "missed_never": arr(ref("PbxCall")),
                                      "alerts": arr(ref("Alert")), "compare": ref("Compare"),
                                      "trend": arr(obj({"day": STR, "calls": INT, "recorded": INT,
                                                        "missed": INT}))},
                                     ("today", "today_calls", "alerts", "trend"))}),
    "api.alerts": Route({200: obj({"alerts": arr(ref("Alert"))}, ("alerts",))},
                        (Param("days", "integer", "days back (default 2)", high=62),)),
    "api.system": Route({200: obj({
        "status": {"type": "object"}, "machine": {"type": "object"}, "model": {"type": "object"},
        "store_problems": arr(obj({"at": NUM, "problem": STR, "lost": BOOL}, ("at", "problem", "lost"))),
        "health": ref("Health"), "version": STR, "slot": null(STR), "sip": {"type": "object"},
        "mqtt": {"type": "object"},
        "egress": obj({"destinations": arr(obj({"what": STR, "host": STR, "port": INT, "transport": STR,
                                                "setting": STR, "address": STR},
                                               ("what", "host", "port", "transport", "address"))),
                       "note": STR}, ("destinations",))},
        ("status", "machine", "store_problems", "health", "version", "egress"))}),
    "api.store_problems_acknowledge": Route({200: obj({"acknowledged": INT}, ("acknowledged",))},
                                            writes=True),
    "api.dictionaries": Route({200: obj({"dictionaries": arr(ref("Dictionary"))}, ("dictionaries",))}),
    "api.dictionary": Route({200: ref("Dictionary")}),
    "api.dictionary_put": Route({200: ref("Dictionary")}, body=json_body(obj({
        "tag": STR, "party": {"enum": list(PARTIES)}, "severity": {"anyOf": [INT, STR]},
        "alert": BOOL, "enabled": BOOL, "entries": {"anyOf": [arr(STR), STR]}}, ("entries",))),
        writes=True),
    "api.dictionary_delete": Route({204: None}, writes=True),
    "api.checklists": Route({200: obj({"checklists": arr(ref("Checklist"))}, ("checklists",))}),
    "api.checklist_put": Route({200: ref("Checklist")}, body={"text/plain": {
        "type": "string", "description": "the checklist as TOML (see docs/kpis.md)"}}, writes=True),
    "api.settings_get": Route({200: obj({"values": {"type": "object"}, "live": arr(STR),
                                         "fixed": arr(STR)}, ("values", "live", "fixed"))}),
    "api.settings_patch": Route({200: obj({"restart_needed": arr(STR)}, ("restart_needed",))},
                                body=json_body(obj({section: obj({k: ANY for k in keys}, extra=False)
                                                    for section, keys in EDITABLE.items()}, extra=False)),
                                writes=True),
    "api.users_list": Route({200: obj({"users": arr(ref("User"))}, ("users",))}),
    "api.users_create": Route({201: ref("User")}, body=json_body(obj(
        {"name": STR, "password": {"type": "string", "minLength": 10}, "role": {"enum": list(ROLES)}},
        ("name", "password", "role"), extra=False)), writes=True),
    "api.audit_list": Route({200: obj({"entries": arr(obj({"at": NUM, "actor": STR, "action": STR,
                                                             "target": STR, "detail": {"type": "object"}},
                                                            ("at", "actor", "action")))}, ("entries",))},
                            (Param("limit", "integer", high=5000),
                             Param("from", text="first day, YYYY-MM-DD (default: 30 days ago)",
                                   pattern=DATE),
                             Param("to", text="last day, YYYY-MM-DD (default: today)", pattern=DATE),
                             Param("actor", text="who (exact name)"),
                             Param("action", text="what (exact action, e.g. 'transcript view')"),
                             Param("target", text="a part of the object (a call's uid, a user)"),
                             Param("format", text="csv: the same entries as a CSV file (audited)",
                                   enum=("json", "csv")))),
    "api.health_detail": Route({200: ref("Health"), 503: ref("Health")}),
    "api.openapi": Route({200: {"type": "object", "description": "this document"}}, public=True),
}
SCHEMAS["CdrResult"] = obj({"accepted": INT, "new": INT, "errors": arr(obj({"index": INT, "error": STR}))},
                           ("accepted", "new", "errors"))
SCHEMAS["CsvResult"] = obj({"lines": INT, "accepted": INT, "new": INT,
                            "errors": arr(obj({"line": INT, "error": STR}))},
                           ("lines", "accepted", "new", "errors"))
# every record bad: the list, and an ``error`` as in every 400
SCHEMAS["CdrRejected"] = {"allOf": [ref("CdrResult"), obj({"error": STR}, ("error",))]}
SCHEMAS["CsvRejected"] = {"allOf": [ref("CsvResult"), obj({"error": STR}, ("error",))]}


def check_query(endpoint: str | None, args: Any) -> None:
    """The declared query parameters of ``endpoint``, checked; BadRequest says which and why."""
    route = ROUTES.get(endpoint or "")
    if route is None:
        return
    for param in route.query:
        raw = args.get(param.name) or ""
        if not raw:
            if param.required:
                raise BadRequest(f"{param.name}: required, {param.text}")
            continue
        param.check(raw)
