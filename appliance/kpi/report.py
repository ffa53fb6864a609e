"""KPIs per manager, team and office for a period; period over period; baseline flags."""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass
from typing import Any

from ..config import KpiSettings
from .contacts import Contacts
from .figures import Tally, add, by_agent, by_team, empty, finish, subtract, tally
from .periods import Period

# metric -> (which way is worse, smallest change worth a flag)
FLAGGED = {
    "avg_score": ("down", 5.0),
    "interruptions_per_call": ("up", 0.5),
    "avg_talk_share": ("up", 0.05),
    "avg_dead_air_share": ("up", 0.02),
    "answer_rate": ("down", 0.05),
    "missed_never_share": ("up", 0.1),
    "conversion": ("down", 0.05),
    "avg_duration_s": ("either", 30.0),
}
COMPARED = ("calls", "calls_in", "calls_out", "missed", "missed_rang", "missed_never",
            "missed_never_share", "callbacks", "median_callback_s", "answer_rate",
            "avg_time_to_answer_s", "conversations", "talk_s", "avg_duration_s",
            "avg_talk_share", "interruptions_per_call", "avg_dead_air_share", "hold_s",
            "avg_hold_s", "avg_score", "conversion", "won", "revenue")


def day_tallies(view: Contacts, outcomes: dict[str, dict[str, Any]],
                cfg: KpiSettings) -> dict[str, Any]:
    """Tallies of one day's calls per manager, team and the office (they add up)."""
    records = list(view.records.values())
    return {"managers": by_agent(view.calls, records, outcomes, cfg.currency),
            "teams": by_team(view.calls, records, outcomes, cfg.teams, cfg.currency),
            "office": tally(view.calls, records, outcomes, currency=cfg.currency)}


@dataclass
class Sums:
    """The tallies of a period's days added up, per manager, team and the office. Kept with
    a period's figures so that a day recomputed is taken out and put back in, rather than
    every day summed again."""

    managers: dict[str, Tally]
    days_of: Counter[str]           # how many of the days hold each manager
    teams: dict[str, Tally]
    office: Tally


def sum_days(days: list[dict[str, Any]], cfg: KpiSettings) -> Sums:
    sums = Sums({}, Counter(), {team: empty() for team in cfg.teams}, empty())
    shift(sums, [], days)
    return sums


def shift(sums: Sums, gone: list[dict[str, Any]], came: list[dict[str, Any]]) -> None:
    """Take the day tallies ``gone`` out of ``sums`` and add ``came`` (in place)."""
    for day, sign in [(d, -1) for d in gone] + [(d, 1) for d in came]:
        op = add if sign > 0 else subtract
        for agent, t in day["managers"].items():
            op(sums.managers.setdefault(agent, empty()), t)
            sums.days_of[agent] += sign
            if sums.days_of[agent] <= 0:
                del sums.managers[agent], sums.days_of[agent]
        for team, t in day["teams"].items():
            if team in sums.teams:
                op(sums.teams[team], t)
        op(sums.office, day["office"])


def figures(period: Period, sums: Sums, cfg: KpiSettings) -> dict[str, Any]:
    """``{period, managers: {agent: figures}, teams: {team: figures}, office: figures}``."""
    return {"period": period.name, "kind": period.kind, "start": period.start, "end": period.end,
            "managers": {a: {"name": cfg.names.get(a), **finish(t)}
                         for a, t in sorted(sums.managers.items())},
            "teams": {team: {"members": sorted(cfg.teams[team]), **finish(t)}
                      for team, t in sorted(sums.teams.items())},
            "office": finish(sums.office)}


def kpis(period: Period, days: list[dict[str, Any]], cfg: KpiSettings) -> dict[str, Any]:
    """The figures of a period from the tallies of its days."""
    return figures(period, sum_days(days, cfg), cfg)


def _change(now: Any, before: Any) -> dict[str, Any] | None:
    if isinstance(now, dict) or isinstance(before, dict):      # revenue, per currency
        now, before = now or {}, before or {}
        return {cur: _change(now.get(cur, 0.0), before.get(cur, 0.0))
                for cur in sorted(set(now) | set(before))}
    if not isinstance(now, (int, float)) or not isinstance(before, (int, float)):
        return None
    return {"delta": round(now - before, 4),
            "relative": round((now - before) / abs(before), 4) if before else None}


def compare(current: dict[str, Any], previous: dict[str, Any],
            year_ago: dict[str, Any]) -> dict[str, Any]:
    """Each group's figures with their change vs the previous period and the same period a
    year before."""
    out: dict[str, Any] = {"period": current["period"], "previous": previous["period"],
                           "year_ago": year_ago["period"], "managers": {}, "teams": {}}
    for section in ("managers", "teams"):
        for name, now in current[section].items():
            prev = previous[section].get(name, {})
            ago = year_ago[section].get(name, {})
            out[section][name] = {
                "current": {k: now.get(k) for k in COMPARED},
                "vs_previous": {k: _change(now.get(k), prev.get(k)) for k in COMPARED},
                "vs_year_ago": {k: _change(now.get(k), ago.get(k)) for k in COMPARED}}
    office = {"current": {k: current["office"].get(k) for k in COMPARED},
              "vs_previous": {k: _change(current["office"].get(k), previous["office"].get(k))
                              for k in COMPARED},
              "vs_year_ago": {k: _change(current["office"].get(k), year_ago["office"].get(k))
                              for k in COMPARED}}
    out["office"] = office
    return out


def _volume(fig: dict[str, Any]) -> int:
    return fig["calls_in"] + fig["calls_out"]


def baseline_flags(current: dict[str, Any], history: list[dict[str, Any]],
                   cfg: KpiSettings) -> list[dict[str, Any]]:
    """Managers whose figure this period departs from their own recent periods.

    The baseline is the median over ``history`` (earlier periods of the same kind with at
    least ``cfg.baseline_min_calls`` calls); its spread the median absolute deviation. A flag
    needs a change beyond three robust deviations, beyond ``cfg.flag_min_change`` of the
    baseline, and beyond the metric's smallest meaningful change, so that a quiet manager's
    noise does not raise one.
    """
    flags = []
    for agent, now in current["managers"].items():
        if _volume(now) < cfg.baseline_min_calls:
            continue
        past = [h["managers"][agent] for h in history if agent in h["managers"]
                and _volume(h["managers"][agent]) >= cfg.baseline_min_calls]
        if len(past) < 3:
            continue
        for metric, (worse, floor) in FLAGGED.items():
            value = now.get(metric)
            values = [p[metric] for p in past if p.get(metric) is not None]
            if value is None or len(values) < 3:
                continue
            base = statistics.median(values)
            spread = 1.4826 * statistics.median(abs(v - base) for v in values)
            change = value - base
            if abs(change) <= max(3 * spread, cfg.flag_min_change * abs(base), floor):
                continue
            up = change > 0
            verdict = "changed" if worse == "either" else (
                "worse" if up == (worse == "up") else "better")
            flags.append({"agent": agent, "name": now.get("name"), "metric": metric,
                          "value": value, "baseline": round(base, 4),
                          "change": round(change, 4), "verdict": verdict,
                          "periods": len(values), "period": current["period"]})
    return flags
