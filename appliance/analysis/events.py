"""What a call carries besides speech, as the call JSON reports it: ``events`` and ``holds``.

The native detector reports, per party, single tone bursts, key presses and stretches of
music (frames). This turns them into what people ask about:
- a tone *event* is a run of bursts of one tone of one party, less than ``TONE_JOIN_S``
  apart (a ringback's cadence, a busy signal), named by its frequencies and cadence: ``dial``,
  ``ringback``, ``busy``, ``sit`` (the three rising special-information tones), ``fax``
  (CNG 1100 Hz, CED 2100 Hz), or ``tone``;
- a ``dtmf`` event is a run of key presses less than ``DTMF_JOIN_S`` apart: its count, and
  its keys only when ``conversation.dtmf_digits`` allows it (they are often card numbers
  and PINs);
- a ``music`` event joins a party's stretches of music across gaps without that party's
  speech of at most ``conversation.hold_join_s``;
- a *hold* is music of at least ``conversation.hold_min_s``, a tone on one line lasting at
  least ``conversation.hold_tone_min_s`` with speech before and after it (a beep on hold),
  or what SIP said (a re-INVITE putting a stream on hold). Tones inside a hold are part of
  it (a note of the music that reads as a pure tone).
Everything depends only on the detector's output, so a streamed call and a file agree.
"""

from __future__ import annotations

from statistics import median
from typing import Any, Iterable, Sequence

from ..config import ConversationSettings
from ..core.frames import FRAME_S, PARTIES, frames_to_s

TONE_JOIN_S = 6.0          # bursts of one tone this close are one event (ringback: 4-5 s off)
DTMF_JOIN_S = 3.0          # key presses this close are one entry
SAME_TONE = 0.08           # relative frequency tolerance between bursts of one tone (two
#                            tones closer than the analysis resolves read within ~5 % of
#                            their mean, burst to burst)
LONE_MIN_S = 0.6           # a lone burst shorter than this is a held vowel or a note, not a
#                            signal (call-progress and fax tones last longer or repeat)
GAP_SPEECH_S = 1.0         # music on both sides of less speech than this is one hold: blips
#                            of music read as speech, not a return from hold

Raw = tuple[Any, ...]      # ("tone", start, end, f1, f2, level) | ("dtmf", start, end, key)
#                            | ("music", start, end), frames


def _near(a: float, b: float, rel: float = SAME_TONE) -> bool:
    return abs(a - b) <= rel * max(a, b)


def _tone_kind(bursts: list[Raw]) -> str:
    """Name a run of bursts of one tone by its frequencies and cadence."""
    f1 = median(b[3] for b in bursts)
    f2 = median(b[4] for b in bursts)
    on = [(b[2] - b[1]) * FRAME_S for b in bursts]
    off = [(n[1] - b[2]) * FRAME_S for b, n in zip(bursts, bursts[1:])]
    if not f2 and _near(f1, 1100.0, 0.03):
        return "fax"                        # CNG: the calling fax
    if not f2 and _near(f1, 2100.0, 0.03):
        return "fax"                        # CED/ANS: the answering fax or modem
    if f1 < 330.0 or f1 > 650.0:
        return "tone"
    # call progress tones (ITU-T E.180): 350-480 Hz, alone or in pairs
    if len(bursts) == 1 and on[0] >= 2.5:
        return "dial"
    if off and median(on) <= 0.6 and max(off) <= 1.3 * median(on) + 0.1:
        return "busy"                       # even on and off; a ringback pauses longer
    return "ringback"


def _sit(bursts: list[Raw]) -> bool:
    """Three single tones of 270-400 ms in a rising row at 900-1800 Hz (ITU-T E.180 SIT)."""
    if len(bursts) != 3:
        return False
    freqs = [b[3] for b in bursts]
    return (all(not b[4] and 0.2 <= (b[2] - b[1]) * FRAME_S <= 0.45 for b in bursts)
            and 880.0 <= freqs[0] < freqs[1] < freqs[2] <= 1850.0
            and all(n[1] - b[2] <= 3 for b, n in zip(bursts, bursts[1:])))


def _new_cadence(run: list[Raw], b: Raw) -> bool:
    """Burst ``b`` is played to another cadence than the run before it: it is 1.7 times
    longer or shorter than the run's typical burst (a busy signal after a ringback of one
    pitch: half as long or less; a burst a lost packet cut short stays within that)."""
    if not 330.0 <= b[3] <= 650.0:
        return False                # only call-progress tones share a pitch across signals
    typical = median(r[2] - r[1] for r in run)
    ratio = (b[2] - b[1]) / max(1, typical)
    return not 1 / 1.7 <= ratio <= 1.7


def _tone_runs(raw: Sequence[Raw]) -> list[tuple[str, list[Raw]]]:
    """Tone bursts grouped into runs of one tone, SIT rows recognised; (kind, bursts)."""
    tones = sorted((r for r in raw if r[0] == "tone"), key=lambda r: r[1])
    runs: list[tuple[str, list[Raw]]] = []
    i = 0
    while i < len(tones):
        if _sit(tones[i:i + 3]):
            runs.append(("sit", tones[i:i + 3]))
            i += 3
            continue
        b = tones[i]
        last = runs[-1][1] if runs and runs[-1][0] == "" else None
        # one tone: close in time, at the same pitch, in the same cadence
        if (last is not None and (b[1] - last[-1][2]) * FRAME_S <= TONE_JOIN_S
                and not _new_cadence(last, b)
                and _near(b[3], last[-1][3]) and bool(b[4]) == bool(last[-1][4])
                and (not b[4] or _near(b[4], last[-1][4]))):
            last.append(b)
        else:
            runs.append(("", [b]))
        i += 1
    out: list[tuple[str, list[Raw]]] = []
    for kind, bursts in runs:
        if kind == "sit" and out and out[-1][0] == "sit" and \
                (bursts[0][1] - out[-1][1][-1][2]) * FRAME_S <= 2.0:
            out[-1][1].extend(bursts)          # SIT repeats after a second of silence
            continue
        out.append((kind or _tone_kind(bursts), bursts))
    return out


def _join(spans: Iterable[tuple[int, int]], gap: int, speech: Sequence[tuple[int, int]]
          ) -> list[tuple[int, int]]:
    """Spans joined across gaps of at most ``gap`` frames with (almost) no speech in them."""
    out: list[tuple[int, int]] = []
    for s, e in sorted(spans):
        talk = sum(max(0, min(b, s) - max(a, out[-1][1])) for a, b in speech) if out else 0
        if out and s - out[-1][1] <= gap and talk * FRAME_S < GAP_SPEECH_S:
            out[-1] = (out[-1][0], max(e, out[-1][1]))
        else:
            out.append((s, e))
    return out


def _inside(s: int, e: int, spans: Sequence[tuple[int, int]]) -> bool:
    """[s, e) lies mostly inside the spans."""
    return 2 * sum(max(0, min(e, b) - max(s, a)) for a, b in spans) >= e - s


def call_events(raw: dict[str, Sequence[Raw]], segments: dict[str, Sequence[tuple[int, int]]],
                conv: ConversationSettings, sip_holds: Sequence[tuple[str, int, int]] = ()
                ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(events, holds) of a call, in the call JSON's form (seconds), from the detector's raw
    events and speech segments per party, and the holds SIP reported (party, frames)."""
    events: list[dict[str, Any]] = []
    holds: list[tuple[str, int, int, str]] = []
    join = int(round(conv.hold_join_s / FRAME_S))
    all_speech = sorted(s for p in PARTIES for s in segments.get(p, ()))
    for party in PARTIES:
        mine = list(raw.get(party, ()))
        speech = sorted(segments.get(party, ()))
        music = _join(((r[1], r[2]) for r in mine if r[0] == "music"), join, speech)
        for s, e in music:
            if (e - s) * FRAME_S >= conv.hold_min_s:
                holds.append((party, s, e, "music"))
        for kind, bursts in _tone_runs(mine):
            s, e = bursts[0][1], bursts[-1][2]
            if _inside(s, e, music):
                continue                        # a note of the music that reads as a tone
            if len(bursts) == 1 and (e - s) * FRAME_S < LONE_MIN_S:
                continue
            ev: dict[str, Any] = {"kind": kind, "party": party, "start": frames_to_s(s),
                                  "end": frames_to_s(e), "bursts": len(bursts),
                                  "hz": [round(median(b[3] for b in bursts))]
                                  + ([round(median(b[4] for b in bursts))] if bursts[0][4] else [])}
            events.append(ev)
            # a tone held on one line between stretches of speech: a beep on hold
            if (kind not in ("fax", "sit") and (e - s) * FRAME_S >= conv.hold_tone_min_s
                    and any(b <= s for _, b in all_speech) and any(a >= e for a, _ in all_speech)):
                holds.append((party, s, e, "tone"))
        for s, e in music:
            events.append({"kind": "music", "party": party, "start": frames_to_s(s),
                           "end": frames_to_s(e)})
        keys = sorted((r for r in mine if r[0] == "dtmf"), key=lambda r: r[1])
        runs: list[list[Raw]] = []
        for k in keys:
            if runs and (k[1] - runs[-1][-1][2]) * FRAME_S <= DTMF_JOIN_S:
                runs[-1].append(k)
            else:
                runs.append([k])
        for run in runs:
            ev = {"kind": "dtmf", "party": party, "start": frames_to_s(run[0][1]),
                  "end": frames_to_s(run[-1][2]), "keys": len(run)}
            if conv.dtmf_digits:
                ev["digits"] = "".join(k[3] for k in run)
            events.append(ev)
    holds += [(party, s, e, "sip") for party, s, e in sip_holds]
    events.sort(key=lambda ev: (ev["start"], ev["party"], ev["kind"]))
    return events, merge_holds(holds)


def merge_holds(holds: Iterable[tuple[str, int, int, str]]) -> list[dict[str, Any]]:
    """Overlapping holds (from the audio of either party and from SIP) become one; each
    says which party held and what showed it."""
    out: list[dict[str, Any]] = []
    for party, s, e, how in sorted(holds, key=lambda h: (h[1], h[2])):
        if out and s <= out[-1]["_end"]:
            last = out[-1]
            last["_end"] = max(last["_end"], e)
            if how not in last["by"]:
                last["by"].append(how)
            if party != last["party"]:
                last["party"] = "both"
            continue
        out.append({"party": party, "_start": s, "_end": e, "by": [how]})
    return [{"party": h["party"], "start": frames_to_s(h["_start"]), "end": frames_to_s(h["_end"]),
             "duration_s": frames_to_s(h["_end"] - h["_start"]), "by": sorted(h["by"])}
            for h in out]


def in_hold(party: str, seg: tuple[int, int], holds: Sequence[dict[str, Any]]) -> bool:
    """Segment ``seg`` (frames) of ``party`` lies mostly inside a hold of that party."""
    s, e = seg[0] * FRAME_S, seg[1] * FRAME_S
    inside = sum(max(0.0, min(e, h["end"]) - max(s, h["start"])) for h in holds
                 if h["party"] in (party, "both"))
    return inside > 0 and inside >= 0.5 * (e - s)


def hold_frames(holds: Sequence[dict[str, Any]]) -> list[tuple[int, int]]:
    """The call JSON's holds as (start, end) frames, for the conversation analysis."""
    return [(int(round(h["start"] / FRAME_S)), int(round(h["end"] / FRAME_S))) for h in holds]
