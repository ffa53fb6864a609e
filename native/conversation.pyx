# cython: language_level=3, boundscheck=False, wraparound=False
"""Conversation structure from two parties' speech segments.

Input: each party's closed speech segments in frames (start, end exclusive), as the
per-party detectors emit them. Output: overlaps, interruptions (who over whom), mutual
silences (dead air), turns, talk time and share, longest monologue, reply latency.

Definitions (all thresholds in frames, configurable from seconds by the caller):
- overlap: both parties inside a segment for at least ``overlap_min`` frames;
- turn span: a party's segments joined across pauses shorter than ``turn_pause``; inside
  its span a party is mid-turn (a pause between phrases does not give up the floor);
- phrase: a party's segments joined across gaps shorter than ``phrase_gap`` (a comma's
  breath: "Нет, | ну вы не поняли" is one phrase, cut by the detector into two segments);
- interruption: a party starts a new turn (not resuming its own span) while the other is
  mid-turn (its span began more than ``overlap_min`` earlier), speaks a phrase of at
  least ``backchannel_max`` (shorter is a backchannel such as "ага"), and the other keeps
  talking over it for at least ``overlap_min``;
- silence: neither party speaks for at least ``silence_min`` frames; marked ``lead`` before
  the first speech, ``tail`` after the last, ``inner`` otherwise (dead air proper);
- turn: the floor passes to a party when it speaks a segment that is not a backchannel over
  the other; a turn also ends at a silence of ``silence_min``. A turn's length is from its
  first segment's start to its last segment's end; the longest is the longest monologue;
- reply latency: gap between the end of one party's turn and the start of the other's next
  turn, when positive;
- holds (music or a tone on hold, or the SIP hold state): time on hold is neither dead air
  nor a pause: a silence is measured without it, a turn goes on across it, and a reply
  latency does not count it.

The result depends only on the segments, so streaming and batch analysis agree exactly.
"""

AGENT = 0
CLIENT = 1


cdef inline long long _overlap(long long a0, long long a1, long long b0, long long b1):
    cdef long long lo = a0 if a0 > b0 else b0
    cdef long long hi = a1 if a1 < b1 else b1
    return hi - lo if hi > lo else 0


def _spans(list segs, int gap):
    cdef list out = []
    cdef Py_ssize_t last
    for s, e in segs:
        last = len(out) - 1     # no negative indexing: wraparound is off in this module
        if last >= 0 and s - out[last][1] < gap:
            if e > out[last][1]:
                out[last] = (out[last][0], e)
        else:
            out.append((s, e))
    return out


def _phrase_ends(list segs, int gap):
    """For each segment, the end of its phrase: it and the segments after it that follow
    within ``gap`` frames of each other."""
    cdef Py_ssize_t n = len(segs), i
    cdef list out = [0] * n
    cdef long long end = 0
    for i in range(n - 1, -1, -1):
        if i + 1 < n and segs[i + 1][0] - segs[i][1] < gap:
            end = out[i + 1] if out[i + 1] > segs[i][1] else segs[i][1]
        else:
            end = segs[i][1]
        out[i] = end
    return out


def _starts_mid_turn(list segs, list other_spans, int lead):
    """Indexes of segments that start inside one of the other party's turn spans, more than
    ``lead`` frames after that span began."""
    cdef list out = []
    cdef Py_ssize_t i, j = 0
    for i in range(len(segs)):
        start = segs[i][0]
        while j < len(other_spans) and other_spans[j][1] <= start:
            j += 1
        if j >= len(other_spans):
            break
        if other_spans[j][0] < start - lead and start < other_spans[j][1]:
            out.append(i)
    return out


def _held(list holds, long long a, long long b):
    """Frames of [a, b) on hold (``holds``: sorted, disjoint)."""
    cdef long long total = 0
    for s, e in holds:
        if s >= b:
            break
        total += _overlap(a, b, s, e)
    return total


def _union(list spans):
    cdef list out = []
    cdef Py_ssize_t last
    for s, e in sorted(spans):
        last = len(out) - 1
        if last >= 0 and s <= out[last][1]:
            if e > out[last][1]:
                out[last] = (out[last][0], e)
        else:
            out.append((s, e))
    return out


def analyse_conversation(list agent, list client, long long total_frames,
                         int overlap_min=10, int backchannel_max=30, int silence_min=150,
                         int turn_pause=50, list holds=None, int phrase_gap=15):
    """Return a dict of conversation events and per-party figures, all in frames.
    ``holds``: spans on hold (either party), as (start, end) frames."""
    cdef list parties = [sorted(agent), sorted(client)]
    cdef list held = _union(list(holds or []))
    cdef list overlaps = []
    cdef list interruptions = []
    cdef list silences = []
    cdef long long s0, e0, s1, e1, lo, hi, start, end, ov
    cdef Py_ssize_t i, j, n0, n1
    cdef int p, q

    # Overlaps: two-pointer sweep over both sorted lists.
    a, c = parties[0], parties[1]
    n0, n1 = len(a), len(c)
    i = j = 0
    while i < n0 and j < n1:
        s0, e0 = a[i]
        s1, e1 = c[j]
        lo = s0 if s0 > s1 else s1
        hi = e0 if e0 < e1 else e1
        if hi - lo >= overlap_min:
            overlaps.append((lo, hi))
        if e0 <= e1:
            i += 1
        else:
            j += 1

    # Turn spans: a party's segments joined across pauses shorter than turn_pause. A party
    # is "mid-turn" inside its span; a segment that starts a span starts a new turn.
    spans = [_spans(parties[0], turn_pause), _spans(parties[1], turn_pause)]

    # Backchannels: short speech while the other party is mid-turn.
    cdef list backchannel = [set(), set()]
    for p in range(2):
        phrase_end = _phrase_ends(parties[p], phrase_gap)
        for i in _starts_mid_turn(parties[p], spans[1 - p], overlap_min):
            start = parties[p][i][0]
            if phrase_end[i] - start < backchannel_max:
                backchannel[p].add(i)

    # The floor is held by real turns only: a backchannel neither keeps its speaker's turn
    # open ("ага" and then a real cut-in is still a cut-in) nor gives them a turn to defend.
    main = [[seg for i, seg in enumerate(parties[p]) if i not in backchannel[p]]
            for p in range(2)]
    spans = [_spans(main[0], turn_pause), _spans(main[1], turn_pause)]

    # Interruptions: a new turn started while the other is mid-turn, talked over.
    cdef Py_ssize_t k
    for p in range(2):
        q = 1 - p
        own, other_segs = spans[p], main[q]
        phrase_end = _phrase_ends(main[p], phrase_gap)
        k = 0
        for i in _starts_mid_turn(main[p], spans[q], overlap_min):
            start, end = main[p][i][0], phrase_end[i]
            if end - start < backchannel_max:
                continue
            while k < len(own) and own[k][1] <= start:
                k += 1
            if k < len(own) and own[k][0] < start:
                continue                    # resuming its own turn, not cutting in
            ov = 0
            for s0, e0 in other_segs:
                if s0 >= end:
                    break
                ov += _overlap(start, end, s0, e0)
            if ov >= overlap_min:
                interruptions.append((start, p, q))
    interruptions.sort()

    # Mutual silences over the union of both parties' speech and the holds: a hold is not
    # silence (the line carries music or a tone; the other party waits).
    merged = sorted(a + c + held)
    cdef long long cursor = 0
    cdef long long first_speech = merged[0][0] if merged else total_frames
    for start, end in merged:
        if start - cursor >= silence_min:
            silences.append((cursor, start, "lead" if cursor == 0 and start == first_speech
                             else "inner"))
        if end > cursor:
            cursor = end
    if total_frames - cursor >= silence_min:
        silences.append((cursor, total_frames, "whole" if not merged else "tail"))

    # Turns: walk segments of both parties in start order.
    events = sorted([(s, e, 0, k) for k, (s, e) in enumerate(a)] +
                    [(s, e, 1, k) for k, (s, e) in enumerate(c)])
    cdef list turns = []            # (party, start, end)
    cdef int holder = -1
    cdef long long t_start = 0, t_end = 0
    for start, end, p, k in events:
        if k in backchannel[p]:
            continue
        if holder == p and start - t_end - _held(held, t_end, start) < silence_min:
            if end > t_end:
                t_end = end
            continue
        if holder >= 0:
            turns.append((holder, t_start, t_end))
        holder, t_start, t_end = p, start, end
    if holder >= 0:
        turns.append((holder, t_start, t_end))

    talk = [sum(e - s for s, e in parties[p]) for p in range(2)]
    per_party = []
    for p in range(2):
        mine = [t for t in turns if t[0] == p]
        latencies = []
        for k in range(1, len(turns)):
            if turns[k][0] == p and turns[k - 1][0] != p:
                gap = turns[k][1] - turns[k - 1][2]
                if gap > 0:
                    gap -= _held(held, turns[k - 1][2], turns[k][1])
                if 0 < gap < silence_min:
                    latencies.append(gap)
        per_party.append({
            "talk": talk[p],
            "segments": len(parties[p]),
            "turns": len(mine),
            "longest_monologue": max([t[2] - t[1] for t in mine], default=0),
            "interruptions_made": sum(1 for x in interruptions if x[1] == p),
            "backchannels": len(backchannel[p]),
            "reply_latencies": latencies,
        })

    return {
        "overlaps": overlaps,
        "interruptions": interruptions,
        "silences": silences,
        "turns": turns,
        "parties": per_party,
    }
