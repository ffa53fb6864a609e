"""The one query API over the store: calls, KPIs, comparisons, flags, missed calls, client
lists, and the writes that feed them (PBX records, outcomes). The HTTP API, the CLI and
MQTT all call this; none of them reads the store directly."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from functools import partial
import logging
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable

from .analysis.alerts import alerts_for
from .analysis.problems import problems_of
from .cdr.asterisk import read_master_csv
from .cdr.record import CdrError, Context, from_freeswitch, normalise
from .config import Settings
from .kpi.clients import client_lists
from .kpi.contacts import Contacts, contacts, version
from .kpi.periods import Period, current, parse_period
from .kpi.plans import progress, validate_plan
from .kpi.report import baseline_flags, compare, day_tallies, figures, shift, sum_days
from .store.database import Database
from .system import sealing
from .store.outcomes import validate_outcome

log = logging.getLogger(__name__)

MAX_CDR_BATCH = 10000
# the calls list's sort keys -> the record's field
SORTS = {"date": "started_at", "score": "score", "duration": "duration_s",
         "talk_share": "talk_share_agent", "interruptions": "interruptions_by_agent",
         "dead_air": "dead_air_share"}
PLANS_KEY = "kpi.plans"
VIEWS_CACHED = 4          # joined calls of a range: the largest objects, few kept
DAYS_CACHED = 400         # per-day tallies: a month's KPIs after a new call redo one day
PERIODS_CACHED = 256


def _days(start: float, end: float) -> list[Period]:
    """The days of [start, end)."""
    first = current("day", start)
    out = []
    while first.start < end:
        out.append(first)
        first = first.shifted(1)
    return out


def _missed(call: Any) -> bool:
    return call.direction == "inbound" and not call.answered


class NotFound(KeyError):
    """No such call (or other object); the message says which."""


def plan_alert(p: dict[str, Any], now: float) -> dict[str, Any]:
    """The alert of a plan that is behind (the panel's list and MQTT say the same)."""
    return {"kind": "plan_behind", "severity": "warning", "uid": None,
            "agent": p["who"] if p["scope"] == "manager" else None,
            "team": p["who"] if p["scope"] == "team" else None, "client": None, "at": now,
            "plan": p["id"], "period": p["period"], "metric": p["metric"], "value": p["value"],
            "target": p["target"], "forecast": p["forecast"]}


class Queries:
    def __init__(self, db: Database, settings: Settings,
                 on_cdr: Callable[[int], None] | None = None) -> None:
        self.db = db
        self.settings = settings
        self.on_cdr = on_cdr        # told how many new PBX records arrived (missed-call alerts)
        self.ctx = Context.from_settings(settings)
        self._views: OrderedDict[Any, tuple[Any, Any]] = OrderedDict()
        self._days: OrderedDict[Any, tuple[Any, Any]] = OrderedDict()
        self._periods: OrderedDict[Any, tuple[Any, ...]] = OrderedDict()
        self._clients: OrderedDict[Any, tuple[Any, Any]] = OrderedDict()
        self._missed_days: OrderedDict[Any, tuple[Any, Any]] = OrderedDict()
        self._lock = threading.RLock()       # kpis() builds on days, days on views

    def settings_changed(self) -> None:
        """Settings were changed in place (the panel): derived caches start afresh."""
        with self._lock:
            self.ctx = Context.from_settings(self.settings)
            for cache in (self._views, self._days, self._periods, self._clients,
                          self._missed_days):
                cache.clear()

    # --- cached derived data ---
    def _cached(self, cache: OrderedDict[Any, tuple[Any, Any]], size: int, key: Any,
                stamp: Any, build: Any) -> Any:
        with self._lock:
            hit = cache.get(key)
            if hit is not None and hit[0] == stamp:
                cache.move_to_end(key)
                return hit[1]
            value = build()
            cache[key] = (stamp, value)
            while len(cache) > size:
                cache.popitem(last=False)
            return value

    def _stamp(self, start: float, end: float, now: float) -> tuple[Any, ...]:
        # Callback statuses depend on the clock until ``callback_slow_h`` after the range.
        open_until = end + self.settings.cdr.callback_slow_h * 3600
        clock = int(now // 60) if now < open_until else 0
        outcomes = tuple(self.db.outcomes.day_version(d.first.isoformat())
                         for d in _days(start, end))
        return (version(self.db.calls, self.db.cdr, self.settings.cdr, start, end),
                outcomes, clock)

    def view(self, start: float, end: float, now: float | None = None) -> Contacts:
        """Every call of [start, end) with callbacks and recordings joined."""
        now = time.time() if now is None else now
        return self._cached(self._views, VIEWS_CACHED, (start, end),
                            self._stamp(start, end, now),
                            lambda: contacts(self.db.calls, self.db.cdr, self.settings.cdr,
                                             start, end, now))

    def _day(self, day: Period, now: float) -> tuple[Any, dict[str, Any]]:
        stamp = self._stamp(day.start, day.end, now)
        return stamp, self._cached(
            self._days, DAYS_CACHED, day.name, stamp,
            # the day's view is not kept: the tallies are, and a month of day views would
            # push the views people ask for (a month's missed calls) out of their cache
            lambda: day_tallies(contacts(self.db.calls, self.db.cdr, self.settings.cdr,
                                         day.start, day.end, now),
                                self.db.outcomes.all(), self.settings.kpi))

    # --- KPIs ---
    def kpis(self, period: str | Period, now: float | None = None) -> dict[str, Any]:
        """Figures per manager, team and the office for a day, week or month: the sum of its
        days, each computed once until something of that day changes."""
        p = parse_period(period) if isinstance(period, str) else period
        now = time.time() if now is None else now
        all_days = _days(p.start, p.end)
        self._tally_missing(all_days, now)
        days = [self._day(d, now) for d in all_days]
        return self._figures(p.name, p, days)

    def _tally_missing(self, days: list[Period], now: float) -> None:
        """Tally the days not yet tallied from one view of their whole span."""
        self._per_day(self._days, days, now, lambda: partial(
            day_tallies, outcomes=self.db.outcomes.all(), cfg=self.settings.kpi), at_least=2)

    def _per_day(self, cache: OrderedDict[Any, tuple[Any, Any]], days: list[Period],
                 now: float, maker: Callable[[], Callable[[Contacts], Any]],
                 at_least: int = 1) -> list[Any]:
        """Each day's value (``maker()(the day's calls)``), kept in ``cache`` until something
        of that day changes. The days missing are built from one view of their span: each
        day's own view reads a day either side (callbacks, recordings across midnight), so a
        month built day by day joins three months of calls; one view joins it once, and the
        days split from it are the same as their own views. Fewer than ``at_least`` missing:
        nothing is built here (the caller builds a lone day its own way)."""
        stamps = [self._stamp(d.start, d.end, now) for d in days]
        with self._lock:
            values = [hit[1] if (hit := cache.get(d.name)) is not None and hit[0] == stamps[i]
                      else None for i, d in enumerate(days)]
        missing = [i for i, v in enumerate(values) if v is None]
        if len(missing) < at_least:
            return values
        view = contacts(self.db.calls, self.db.cdr, self.settings.cdr,
                        days[missing[0]].start, days[missing[-1]].end, now)
        make = maker()
        starts = [c.start for c in view.calls]          # oldest first
        day_starts = [d.start for d in days]
        records: dict[int, dict[str, dict[str, Any]]] = {}   # by day index + 1
        for uid, rec in view.records.items():      # all within the span
            records.setdefault(bisect_right(day_starts, rec.get("started_at") or 0), {})[uid] = rec
        for i in missing:
            d = days[i]
            values[i] = make(Contacts(view.calls[bisect_left(starts, d.start):
                                                 bisect_left(starts, d.end)],
                                      records.get(i + 1, {})))
            with self._lock:
                cache[d.name] = (stamps[i], values[i])
                cache.move_to_end(d.name)
                while len(cache) > DAYS_CACHED:
                    cache.popitem(last=False)
        return values

    def _figures(self, key: str, p: Period, days: list[tuple[Any, dict[str, Any]]]
                 ) -> dict[str, Any]:
        stamps = tuple(stamp for stamp, _ in days)
        with self._lock:
            hit = self._periods.get(key)
            if hit is not None and hit[0] == stamps:
                self._periods.move_to_end(key)
                return hit[1]
            if hit is not None and len(hit[2]) == len(days):
                # a call ended: take its day's old tally out of the sums, put the new one in
                sums = hit[3]
                changed = [i for i, (old, new) in enumerate(zip(hit[2], days)) if old[0] != new[0]]
                shift(sums, [hit[2][i][1] for i in changed], [days[i][1] for i in changed])
            else:
                sums = sum_days([t for _, t in days], self.settings.kpi)
            value = figures(p, sums, self.settings.kpi)
            self._periods[key] = (stamps, value, days, sums)
            self._periods.move_to_end(key)
            while len(self._periods) > PERIODS_CACHED:
                self._periods.popitem(last=False)
            return value

    def kpis_to_date(self, period: str | Period, elapsed: float,
                     now: float | None = None) -> dict[str, Any]:
        """The figures of the first ``elapsed`` seconds of a period (whole days, then the
        part of the next day up to the same time of day, to 10 minutes): what an earlier
        period had reached by the point the current one is at."""
        p = parse_period(period) if isinstance(period, str) else period
        now = time.time() if now is None else now
        all_days = _days(p.start, p.end)
        n = int(elapsed // 86400)
        if n >= len(all_days):
            return self.kpis(p, now)
        cut = int(elapsed % 86400) // 600 * 600
        days = [self._day(d, now) for d in all_days[:n]]
        if cut:
            days.append(self._part_day(all_days[n], cut, now))
        out = self._figures(f"{p.name}@{n}+{cut}", p, days)
        return {**out, "end": all_days[n].start + cut, "to_date": True}

    def _part_day(self, day: Period, cut: int, now: float) -> tuple[Any, dict[str, Any]]:
        stamp = self._stamp(day.start, day.end, now)
        return stamp, self._cached(
            self._days, DAYS_CACHED, (day.name, cut), stamp,
            lambda: day_tallies(contacts(self.db.calls, self.db.cdr, self.settings.cdr,
                                         day.start, day.start + cut, now),
                                self.db.outcomes.all(), self.settings.kpi))

    def warm_up(self, now: float | None = None) -> list[str]:
        """Compute what the dashboard shows first (this month against the previous one and
        a year before, today), so that no one waits for a month's first computation.
        Returns the periods computed."""
        now = time.time() if now is None else now
        month = current("month", now)
        self.compare(month.name, now)
        self.kpis(current("day", now), now)
        self.missed(month.name, now=now)        # kept per day from now on
        return [month.name, month.shifted(-1).name, month.year_ago().name]

    def warm_up_managers(self, now: float | None = None) -> list[str]:
        """Compute what the managers page and the API's flags and client lists ask first:
        this week's and this month's baselines (months of history, seconds at 100k calls)
        and the client lists. Afterwards only days that change are computed again."""
        now = time.time() if now is None else now
        done = []
        for kind in ("week", "month"):
            this = current(kind, now)
            self.compare(this.name, now)
            self.flags(this.name, now)
            done.append(f"{this.name} flags")
        self.clients(now=now)
        done.append("client lists")
        return done

    def compare(self, period: str, now: float | None = None) -> dict[str, Any]:
        """This period vs the previous one and the same period a year before. A period
        still running is compared to date: with the same stretch of the earlier periods
        (1-24 November with 1-24 October), not with their whole length."""
        p = parse_period(period)
        now = time.time() if now is None else now
        current_figures = self.kpis(p, now)
        if not p.start <= now < p.end:
            return compare(current_figures, self.kpis(p.shifted(-1), now),
                           self.kpis(p.year_ago(), now))
        elapsed = now - p.start
        out = compare(current_figures, self.kpis_to_date(p.shifted(-1), elapsed, now),
                      self.kpis_to_date(p.year_ago(), elapsed, now))
        out["to_date"] = True
        out["as_of"] = now
        return out

    def flags(self, period: str, now: float | None = None) -> list[dict[str, Any]]:
        """Managers departing from their own baseline in this period."""
        p = parse_period(period)
        history = [self.kpis(p.shifted(-i), now)
                   for i in range(1, self.settings.kpi.baseline_periods + 1)]
        return baseline_flags(self.kpis(p, now), history, self.settings.kpi)

    def missed(self, period: str | tuple[float, float], status: str | None = None,
               agent: str | None = None, now: float | None = None, team: str | None = None,
               alone: bool = False) -> list[dict[str, Any]]:
        """Missed inbound calls of a period (or a ``(start, end)`` range), oldest first, with
        their callback status. ``agent``: calls that rang that manager (``alone``: that
        manager only); ``team``: calls that rang one of its members."""
        if isinstance(period, tuple):
            start, end = period
        else:
            p = parse_period(period)
            start, end = p.start, p.end
        members = set(self.settings.kpi.teams.get(team) or ()) if team else None
        out = []
        for c in self._missed_calls(start, end, time.time() if now is None else now):
            if status and (c.callback or {}).get("status") != status:
                continue
            if agent and (agent not in c.rung or (alone and len(c.rung) > 1)):
                continue
            if members is not None and not members.intersection(c.rung):
                continue
            out.append(c.as_dict())
        return out

    def _missed_calls(self, start: float, end: float, now: float) -> list[Any]:
        """Missed inbound calls of [start, end), oldest first. Whole days are kept per day
        until something of that day changes, so a month's list after a new call joins that
        day again, not the month (0.4-0.9 s at 100k calls)."""
        days = _days(start, end)
        if not days or days[0].start != start or days[-1].end != end:
            return [c for c in self.view(start, end, now).calls if _missed(c)]
        per_day = self._per_day(self._missed_days, days, now,
                                lambda: lambda part: [c for c in part.calls if _missed(c)])
        return [c for calls in per_day for c in calls]

    def clients(self, now: float | None = None) -> dict[str, list[dict[str, Any]]]:
        """Cooling and zombie clients over the last ``kpi.client_window_days``."""
        now = time.time() if now is None else now
        today = current("day", now)
        start = today.shifted(-self.settings.kpi.client_window_days).start
        # Months of calls joined afresh take seconds at 100k calls; silences of weeks do not
        # need the minute: kept until something in the window changes, or for the hour.
        versions, outcomes, _clock = self._stamp(start, today.end, now)
        return self._cached(self._clients, 2, today.name, (versions, outcomes, int(now // 3600)),
                            lambda: client_lists(self.view(start, today.end, now),
                                                 self.db.outcomes.all(), self.settings.kpi, now))

    # --- plans ---
    def plan_list(self) -> list[dict[str, Any]]:
        """The plans set, as kept."""
        return list(((self.db.settings.get(PLANS_KEY) or {}).get("plans") or []))

    def save_plan(self, payload: Any, actor: str) -> dict[str, Any]:
        """Set a plan (one per group, kind and figure: a new target replaces the old);
        raises PlanError."""
        plan = validate_plan(payload, self.settings.kpi.teams)
        with self._lock:
            plans = [p for p in self.plan_list() if p["id"] != plan["id"]] + [plan]
            self.db.settings.put(PLANS_KEY, {"plans": plans})
        self.db.audit.record(actor, "plan saved", plan["id"], goal=plan["target"])
        return plan

    def delete_plan(self, plan_id: str, actor: str) -> None:
        """Remove a plan; NotFound if there is none."""
        with self._lock:
            plans = self.plan_list()
            kept = [p for p in plans if p["id"] != plan_id]
            if len(kept) == len(plans):
                raise NotFound(f"no plan {plan_id[:80]!r}")
            self.db.settings.put(PLANS_KEY, {"plans": kept})
        self.db.audit.record(actor, "plan deleted", plan_id)

    def plans(self, now: float | None = None) -> list[dict[str, Any]]:
        """Every plan's progress in the current week or month, behind ones first."""
        now = time.time() if now is None else now
        out = []
        for plan in self.plan_list():
            period = current(plan["kind"], now)
            k = self.kpis(period, now)
            group = k["managers" if plan["scope"] == "manager" else "teams"]
            item = progress(plan, group.get(plan["who"]), period, now, self.settings.kpi.currency)
            item["name"] = self.settings.kpi.names.get(plan["who"]) if plan["scope"] == "manager" else None
            out.append(item)
        order = {"behind": 0, "missed": 1, "early": 2, "on_track": 3, "done": 4}
        return sorted(out, key=lambda p: (order[p["status"]], p["id"]))

    # --- calls ---
    def calls(self, period: str | tuple[float, float], agent: str | None = None,
              direction: str | None = None, tag: str | None = None,
              min_score: float | None = None, max_score: float | None = None,
              text: str | None = None, party: str | None = None, offset: int = 0,
              limit: int = 50, problem: bool = False, sort: str = "date",
              order: str = "desc") -> dict[str, Any]:
        """A page of recorded calls of a period (or a ``(start, end)`` range), newest first
        or by ``sort`` (a key of ``SORTS``; calls without that figure last), with the total
        count. ``text``: every word in the transcript (of ``party``); ``problem``: problem
        calls only."""
        if isinstance(period, tuple):
            start, end = period
        else:
            p = parse_period(period)
            start, end = p.start, p.end
        found = self.db.search.search(text, party, start, end) if text else None
        hits = []
        for r in reversed(self.db.calls.between(start, end)):     # newest first
            if found is not None and r["uid"] not in found:
                continue
            if agent and r.get("agent") != agent:
                continue
            if direction and r.get("direction") != direction:
                continue
            if tag and tag not in (r.get("tags") or {}):
                continue
            score = r.get("score")
            if min_score is not None and (score is None or score < min_score):
                continue
            if max_score is not None and (score is None or score > max_score):
                continue
            if problem and not problems_of(r):
                continue
            hits.append(r)
        if sort != "date" or order != "desc":
            field = SORTS[sort]
            known = [r for r in hits if r.get(field) is not None]
            known.sort(key=lambda r: r[field], reverse=order == "desc")   # stable: ties newest first
            hits = known + [r for r in hits if r.get(field) is None]
        outcomes = self.db.outcomes.all()
        page = [{**r, "outcome": outcomes.get(r["uid"])} for r in hits[offset:offset + limit]]
        return {"total": len(hits), "offset": offset, "limit": limit, "calls": page}

    def agents(self, start: float, end: float) -> list[str]:
        """Managers with recorded calls in [start, end)."""
        return sorted({r["agent"] for r in self.db.calls.between(start, end) if r.get("agent")})

    def alerts(self, days: int = 2, now: float | None = None) -> list[dict[str, Any]]:
        """Recent alerts derived from the store, newest first: alerting dictionary hits,
        low checklist scores, problem calls, missed calls never called back, managers
        behind their plans."""
        now = time.time() if now is None else now
        today = current("day", now)
        out: list[dict[str, Any]] = []
        for r in self.db.calls.between(today.shifted(1 - days).start, today.end):
            who = {"uid": r["uid"], "agent": r.get("agent"), "client": r.get("client"),
                   "at": r.get("started_at")}
            found = alerts_for(r, self.settings.alerts.low_score)
            problem = next((a for a in found if a["kind"] == "problem_call"), None)
            # one line per call and cause: a complaint or swearing among a problem call's
            # reasons is shown as the problem call (MQTT sends both kinds)
            covered = set(problem["reasons"]) if problem else set()
            for a in found:
                if a["kind"] in covered:
                    continue
                line = {k: v for k, v in a.items() if k not in ("message", "parties")}
                out.append({**line, **who})
        for i in range(days):
            for m in self.missed(today.shifted(-i).name, status="never", now=now):
                out.append({"kind": "missed_not_called_back", "severity": "warning",
                            "uid": None, "agent": ", ".join(m.get("rung") or []),
                            "rung": m.get("rung") or [], "client": m.get("client"),
                            "at": m.get("start")})
        for p in self.plans(now):
            if p["status"] == "behind":
                out.append(plan_alert(p, now))
        return sorted(out, key=lambda a: a.get("at") or 0, reverse=True)

    def call(self, uid: str) -> dict[str, Any]:
        """One recorded call: its record, outcome and PBX record if joined."""
        rec = self.db.calls.get(uid)
        if rec is None:
            raise NotFound(f"no call {uid[:80]!r}")
        t = rec.get("started_at") or 0
        day = current("day", t)
        pbx = next((c.as_dict() for c in self.view(day.start, day.end).calls
                    if c.call_uid == uid), None)
        return {**rec, "outcome": self.db.outcomes.get(uid), "pbx": pbx}

    def _call_file(self, uid: str, recording: bool) -> Path | None:
        """The call JSON (or its recording) named by the record, if it exists inside the
        calls folder; a record pointing anywhere else gets None. NotFound: no such call."""
        rec = self.db.calls.get(uid)
        if rec is None:
            raise NotFound(f"no call {uid[:80]!r}")
        if not rec.get("result_path") or (recording and not rec.get("recording")):
            return None
        root = self.settings.paths.calls.resolve()
        path = root / rec["result_path"]
        path = (path.parent / rec["recording"] if recording else path).resolve()
        return path if path.is_relative_to(root) and path.is_file() else None

    def audio_path(self, uid: str) -> Path | None:
        """The call's recording on disk (None: none kept); never outside the calls folder."""
        return self._call_file(uid, recording=True)

    def call_json(self, uid: str) -> dict[str, Any]:
        """The full call JSON (segments, transcript, tags, score); {} when it is gone."""
        path = self._call_file(uid, recording=False)
        if path is None:
            return {}
        try:
            return sealing.read_json(path)
        except sealing.SealError as exc:      # said, not hidden: the key is the admin's to fix
            log.error("call file cannot be unsealed", extra={"uid": uid, "reason": str(exc)})
            return {"unreadable": str(exc)}
        except (OSError, ValueError):
            return {}

    # --- writes ---
    def post_outcome(self, uid: str, payload: Any, actor: str) -> dict[str, Any]:
        """Record what came of a call; raises NotFound or OutcomeError."""
        outcome = validate_outcome(payload)
        rec = self.db.calls.get(uid)
        if rec is None:
            raise NotFound(f"no call {uid[:80]!r}; post the outcome once the call is stored")
        doc = self.db.outcomes.put(uid, outcome, rec, by=actor)
        self.db.audit.record(actor, "outcome", uid, result=outcome["result"])
        return doc

    def add_cdr(self, payload: Any, actor: str) -> dict[str, Any]:
        """PBX records as JSON: one object, a list, ``{"records": [...]}`` or a FreeSWITCH
        ``mod_json_cdr`` document. Good records are kept; each bad one is reported by index."""
        source = "api"
        if isinstance(payload, dict) and "variables" in payload:
            items, source = [payload], "freeswitch"
        elif isinstance(payload, dict) and "records" in payload:
            if not isinstance(payload["records"], list):
                raise CdrError("'records' must be a list of record objects")
            items = payload["records"]
        elif isinstance(payload, dict):
            items = [payload]
        elif isinstance(payload, list):
            items = payload
        else:
            raise CdrError("the body must be a JSON object or a list of objects")
        if len(items) > MAX_CDR_BATCH:
            raise CdrError(f"{len(items)} records in one request; send at most {MAX_CDR_BATCH}")
        rows, errors = [], []
        for i, item in enumerate(items):
            try:
                raw = from_freeswitch(item) if source == "freeswitch" else item
                rows.append(normalise(raw, self.ctx, source))
            except CdrError as exc:
                errors.append({"index": i, "error": str(exc)})
        new = self.db.cdr.add(rows)
        self.db.audit.record(actor, "cdr", source, accepted=len(rows), errors=len(errors))
        log.info("cdr received", extra={"source": source, "accepted": len(rows), "new": new,
                                        "errors": len(errors)})
        self._cdr_arrived(new)
        return {"accepted": len(rows), "new": new, "errors": errors}

    def _cdr_arrived(self, new: int) -> None:
        if new and self.on_cdr is not None:
            self.on_cdr(new)

    def import_asterisk(self, text: str, actor: str, name: str = "Master.csv") -> dict[str, Any]:
        """An Asterisk Master.csv: good rows kept, bad rows reported with their line."""
        result = read_master_csv(text, self.ctx)
        new = self.db.cdr.add(result.rows)
        self.db.audit.record(actor, "cdr import", name, accepted=len(result.rows),
                             errors=len(result.errors))
        log.info("cdr imported", extra={"file": name, "lines": result.lines,
                                        "accepted": len(result.rows), "new": new,
                                        "errors": len(result.errors)})
        self._cdr_arrived(new)
        return {"lines": result.lines, "accepted": len(result.rows), "new": new,
                "errors": [{"line": n, "error": e} for n, e in result.errors]}
