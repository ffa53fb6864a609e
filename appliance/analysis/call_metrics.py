"""The call analysis JSON: conversation metrics in seconds, one documented schema.

See docs/call-json.md. Later stages add ``transcript``, ``tags`` and ``score`` to the same
object.
"""

from __future__ import annotations

from statistics import median
from typing import Any, Sequence

from ..config import ConversationSettings
from ..core.frames import FRAME_S, PARTIES, frames_to_s, s_to_frames
from ..native import analyse_conversation
from .events import hold_frames

SCHEMA = "call-analysis/1"


def conversation_metrics(agent: list[tuple[int, int]], client: list[tuple[int, int]],
                         total_frames: int, conv: ConversationSettings,
                         holds: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """Metrics of a two-party conversation from each party's segments (frames) and the
    call's holds (``analysis.events``: time on hold is neither dead air nor a pause)."""
    raw = analyse_conversation(
        list(agent), list(client), total_frames,
        overlap_min=s_to_frames(conv.overlap_min_s),
        backchannel_max=s_to_frames(conv.backchannel_max_s),
        silence_min=s_to_frames(conv.dead_air_min_s),
        turn_pause=s_to_frames(conv.turn_pause_s),
        holds=hold_frames(holds),
    )
    talk_total = sum(p["talk"] for p in raw["parties"])
    parties: dict[str, Any] = {}
    for name, p in zip(PARTIES, raw["parties"]):
        lat = p["reply_latencies"]
        parties[name] = {
            "talk_s": frames_to_s(p["talk"]),
            "talk_share": round(p["talk"] / talk_total, 4) if talk_total else 0.0,
            "turns": p["turns"],
            "segments": p["segments"],
            "longest_monologue_s": frames_to_s(p["longest_monologue"]),
            "interruptions_made": p["interruptions_made"],
            "backchannels": p["backchannels"],
            "reply_latency_s": round(median(lat) * FRAME_S, 2) if lat else None,
        }
    segments = sorted(
        [{"party": name, "start": frames_to_s(s), "end": frames_to_s(e)}
         for name, segs in zip(PARTIES, (agent, client)) for s, e in segs],
        key=lambda seg: (seg["start"], seg["party"]),
    )
    overlaps = [{"start": frames_to_s(s), "end": frames_to_s(e)} for s, e in raw["overlaps"]]
    interruptions = [{"by": PARTIES[by], "of": PARTIES[of], "at": frames_to_s(at)}
                     for at, by, of in raw["interruptions"]]
    silences = [{"start": frames_to_s(s), "end": frames_to_s(e), "position": pos}
                for s, e, pos in raw["silences"]]
    duration = frames_to_s(total_frames)
    dead_air = sum(e - s for s, e, pos in raw["silences"] if pos == "inner")
    hold = sum(e - s for s, e in hold_frames(holds))
    return {
        "duration_s": duration,
        "parties": parties,
        "segments": segments,
        "overlaps": overlaps,
        "interruptions": interruptions,
        "silences": silences,
        "holds": list(holds),
        "totals": {
            "talk_s": frames_to_s(talk_total),
            "overlap_s": frames_to_s(sum(e - s for s, e in raw["overlaps"])),
            "dead_air_s": frames_to_s(dead_air),
            "dead_air_share": round(dead_air / total_frames, 4) if total_frames else 0.0,
            "turns": len(raw["turns"]),
            "hold_s": frames_to_s(hold),
            "holds": len(holds),
            "longest_hold_s": max((h["duration_s"] for h in holds), default=0.0),
        },
    }
