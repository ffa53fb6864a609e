"""Human-readable summary of a call JSON (what `appliance analyze` prints by default)."""

from __future__ import annotations

from typing import Any


def _clock(seconds: float) -> str:
    m, s = divmod(seconds, 60)
    h, m = divmod(int(m), 60)
    return f"{h}:{m:02d}:{s:05.2f}" if h else f"{m}:{s:05.2f}"


def render_summary(result: dict[str, Any]) -> str:
    """Render the call's conversation metrics as a short report."""
    lines = [f"Call {result['call']['call_id']}  duration {_clock(result['duration_s'])}"]
    for note in result["call"].get("notes", []):
        lines.append(f"  note: {note}")
    lines.append("")
    lines.append(f"{'':<8}{'talk':>10}{'share':>8}{'turns':>7}{'longest':>10}"
                 f"{'interrupts':>12}{'reply':>8}")
    for name, p in result["parties"].items():
        reply = "-" if p["reply_latency_s"] is None else f"{p['reply_latency_s']:.2f}s"
        lines.append(f"{name:<8}{_clock(p['talk_s']):>10}{p['talk_share'] * 100:>7.0f}%"
                     f"{p['turns']:>7}{_clock(p['longest_monologue_s']):>10}"
                     f"{p['interruptions_made']:>12}{reply:>8}")
    t = result["totals"]
    lines.append("")
    lines.append(f"overlap {t['overlap_s']:.1f} s in {len(result['overlaps'])} spans; "
                 f"dead air {t['dead_air_s']:.1f} s ({t['dead_air_share'] * 100:.1f} %)")
    for i in result["interruptions"]:
        lines.append(f"  {_clock(i['at'])}  {i['by']} interrupted {i['of']}")
    for s in result["silences"]:
        lines.append(f"  {_clock(s['start'])}-{_clock(s['end'])}  silence ({s['position']})")
    asr = result.get("asr", {})
    if asr.get("status") not in (None, "ok", "disabled"):
        lines += ["", f"transcript unavailable: {asr.get('reason', asr['status'])}"]
    if result.get("transcript"):
        lines += ["", "Transcript"]
        lines += [f"  {_clock(t['start'])}  {t['party']:<6}  {t['text']}" for t in result["transcript"]]
    if result.get("tags"):
        lines += ["", "Tags"]
        lines += [f"  {_clock(t['at'])}  {t['party']:<6}  {t['tag']:<13} {t['text']}"
                  for t in result["tags"]]
    score = result.get("score")
    if score:
        total = "-" if score["total"] is None else f"{score['total']}/100"
        lines += ["", f"Score ({score['checklist']}): {total}"]
        for item in score["items"]:
            mark = {True: "ok ", False: "NO ", None: " - "}[item["passed"]]
            lines.append(f"  {mark} {item['title']}: {item['evidence']}")
    return "\n".join(lines)
