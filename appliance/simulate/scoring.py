"""Scores of a call analysis against ground truth: frame VAD F1, talk share, events."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

import numpy as np

from ..core.frames import FRAME_S, PARTIES
from .calls import CallTruth

EVENT_TOLERANCE_S = 0.6


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def __iadd__(self, other: "Counts") -> "Counts":
        self.tp += other.tp
        self.fp += other.fp
        self.fn += other.fn
        return self

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def interval_frames(intervals: Iterable[tuple[float, float]], n: int) -> np.ndarray:
    """Boolean frame mask: a 20 ms frame is set when at least half of it is covered."""
    cover = np.zeros(n, np.float64)
    for s, e in intervals:
        a, b = s / FRAME_S, e / FRAME_S
        i0, i1 = int(np.floor(a)), min(n, int(np.ceil(b)))
        for i in range(max(0, i0), i1):
            cover[i] += max(0.0, min(b, i + 1) - max(a, i))
    return cover >= 0.5


def frame_counts(pred: np.ndarray, true: np.ndarray) -> Counts:
    n = min(len(pred), len(true))
    p, t = pred[:n], true[:n]
    return Counts(int(np.sum(p & t)), int(np.sum(p & ~t)), int(np.sum(~p & t)))


def match_events(pred: Sequence[tuple[str, float]], true: Sequence[tuple[str, float]],
                 tol: float = EVENT_TOLERANCE_S) -> Counts:
    """Greedy one-to-one matching of (party, time) events within ``tol`` seconds."""
    used = [False] * len(pred)
    tp = 0
    for party, t in sorted(true, key=lambda x: x[1]):
        best, best_d = -1, tol
        for i, (pp, pt) in enumerate(pred):
            if not used[i] and pp == party and abs(pt - t) <= best_d:
                best, best_d = i, abs(pt - t)
        if best >= 0:
            used[best] = True
            tp += 1
    return Counts(tp, len(pred) - tp, len(true) - tp)


def silence_counts(pred: Sequence[tuple[float, float]], true: Sequence[tuple[float, float]]) -> Counts:
    """A true dead-air gap is found when predicted silences cover at least half of it."""
    found = 0
    for s, e in true:
        covered = sum(max(0.0, min(e, pe) - max(s, ps)) for ps, pe in pred)
        found += covered >= 0.5 * (e - s)
    hits = sum(1 for ps, pe in pred
               if any(min(e, pe) - max(s, ps) >= 0.5 * (pe - ps) for s, e in true))
    return Counts(found, len(pred) - hits, len(true) - found)


def true_shares(truth: CallTruth) -> dict[str, float]:
    talk = {p: sum(e - s for s, e in truth.speech[p]) for p in PARTIES}
    total = sum(talk.values()) or 1.0
    return {p: talk[p] / total for p in PARTIES}


def score_result(result: dict[str, Any], truth: CallTruth) -> dict[str, Any]:
    """Compare one call JSON with its truth."""
    n = int(round(truth.duration / FRAME_S)) + 1
    vad = {}
    for party in PARTIES:
        pred = interval_frames([(s["start"], s["end"]) for s in result["segments"]
                                if s["party"] == party], n)
        vad[party] = frame_counts(pred, interval_frames(truth.speech[party], n))
    shares = true_shares(truth)
    return {
        "vad": vad,
        "share_error": abs(result["parties"]["agent"]["talk_share"] - shares["agent"]),
        "interruptions": match_events([(i["by"], i["at"]) for i in result["interruptions"]],
                                      truth.interruptions),
        "silences": silence_counts([(s["start"], s["end"]) for s in result["silences"]
                                    if s["position"] == "inner"], truth.dead_air),
    }


def words(text: str) -> list[str]:
    """Words for WER: lower case, ё as е, punctuation dropped."""
    return re.findall(r"\w+", text.lower().replace("ё", "е"))


def word_errors(ref: list[str], hyp: list[str]) -> int:
    """Word-level edit distance (substitutions + deletions + insertions)."""
    d = list(range(len(hyp) + 1))
    for i in range(1, len(ref) + 1):
        prev, d[0] = d[0], i
        for j in range(1, len(hyp) + 1):
            cur = d[j]
            d[j] = min(d[j] + 1, d[j - 1] + 1, prev + (ref[i - 1] != hyp[j - 1]))
            prev = cur
    return d[-1]
