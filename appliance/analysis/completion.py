"""The last step of a call's analysis, once its transcript is known: tags and score."""

from __future__ import annotations

from typing import Any

from .redaction import Redactor
from .scoring import Checklist, score_call
from .tagger import Tagger


def complete_result(result: dict[str, Any], transcript: list[dict[str, Any]], failed: int,
                    asr_info: dict[str, Any], tagger: Tagger | None,
                    checklist: Checklist | None, redactor: Redactor | None = None
                    ) -> dict[str, Any]:
    """Put the transcript into a call JSON, masked first (``redactor``), then tag and score
    it (in place; returned)."""
    result["asr"] = dict(asr_info)
    if failed:
        result["asr"]["failed_segments"] = failed
    transcript = [t for t in transcript if not on_hold(t, result.get("holds") or [])]
    if redactor is not None:
        transcript, result["redactions"] = redactor.apply(transcript)
    result["transcript"] = transcript
    result["tags"] = tagger.tag(transcript) if tagger is not None else []
    if checklist is not None:
        result["score"] = score_call(result, checklist)
    else:
        result.pop("score", None)
    return result


def on_hold(item: dict[str, Any], holds: list[dict[str, Any]]) -> bool:
    """A transcript item of the holding party that lies mostly inside its hold: music that
    read as speech in places, never words of the call."""
    length = item["end"] - item["start"]
    inside = sum(max(0.0, min(item["end"], h["end"]) - max(item["start"], h["start"]))
                 for h in holds if h["party"] in (item["party"], "both"))
    return inside > 0 and inside >= 0.5 * length


def pending(result: dict[str, Any]) -> bool:
    """Whether a call JSON still waits for its transcript."""
    return result.get("asr", {}).get("status") == "pending"
