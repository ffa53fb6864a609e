"""One call in progress: per-party PCM in, analysis out. Every source feeds this class."""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..analysis.call_metrics import SCHEMA, conversation_metrics
from ..analysis.completion import complete_result
from ..analysis.dsp import CallStream
from ..analysis.events import call_events, in_hold
from ..analysis.library import Library
from ..analysis.redaction import Redactor
from ..analysis.scoring import Checklist, load_checklist
from ..analysis.tagger import Tagger, load_tagger
from ..asr.pieces import PieceCutter, PieceSink, PieceSpec
from ..asr.service import AsrService
from ..config import Settings
from ..core.frames import FRAME_S, PARTIES, Party
from ..core.window import AudioWindow

log = logging.getLogger(__name__)


@dataclass
class CallMeta:
    """What a source knows about a call besides its audio."""

    source: str                      # "file", "sip", "siprec"
    call_id: str
    started_at: float = field(default_factory=time.time)
    direction: str | None = None     # "inbound" / "outbound" when known
    agent: str | None = None
    client: str | None = None
    notes: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


def sip_holds(meta: CallMeta, total_frames: int) -> list[tuple[str, int, int]]:
    """The holds SIP signalled during the call (``meta.extra["sip_holds"]``: [party, start
    s, end s or None while held, what signalled it]) as (party, start, end) frames; an open
    one ends with the call."""
    out = []
    for item in meta.extra.get("sip_holds") or []:
        try:
            party, start, end = item[:3]
            s = max(0, int(round(float(start) / FRAME_S)))
            e = total_frames if end is None else min(total_frames, int(round(float(end) / FRAME_S)))
        except (TypeError, ValueError):
            continue                # a record from elsewhere that does not parse: ignored
        if party in PARTIES and e > s:
            out.append((party, s, e))
    return out


class _Waiting:
    """A sink for a command-line analysis: offers wait for room (no recording to go back to)."""

    def __init__(self, service: AsrService) -> None:
        self.service = service

    def offer(self, ref: str, piece: PieceSpec, pcm: np.ndarray) -> None:
        self.service.offer(ref, piece, pcm, block=True)


@dataclass
class Stages:
    """The analysis services calls share (loaded once per process).

    In the daemon: the box's one recognizer (``asr``), which also takes the pieces
    (``pieces``), and the tagger and checklist that finish a call once it is transcribed.
    In a capture worker: only ``pieces``, the link to the daemon's recognizer; calls are
    written with their transcript pending and the daemon completes them.
    """

    asr: AsrService | None = None
    pieces: PieceSink | None = None
    tagger: Tagger | None = None
    checklist: Checklist | None = None
    library: Library | None = None          # where edited dictionaries and checklists live
    redactor: Redactor | None = None        # personal data masked before anything reads it
    language: str = "ru"
    wait: bool = False                      # finish() waits for the transcript
    remote: bool = False                    # calls are completed by the daemon (a worker)
    _signature: tuple[Any, ...] = ()

    @classmethod
    def load(cls, settings: Settings, wait: bool = False) -> "Stages":
        """The recognizer, dictionaries and checklist. ``wait``: each call's ``finish``
        returns it transcribed (a command-line analysis) instead of pending."""
        library = Library(settings.paths.data_dir / "dictionaries")
        asr = AsrService(settings.asr)
        stages = cls(asr=asr, pieces=_Waiting(asr) if wait else asr, library=library,
                     language=settings.asr.language, wait=wait,
                     redactor=Redactor(settings.privacy.redact))
        stages.refresh()
        return stages

    @classmethod
    def capture(cls, sink: PieceSink | None) -> "Stages":
        """A capture worker's: pieces go to ``sink`` (the daemon), nothing else is loaded."""
        return cls(pieces=sink, remote=True)

    def refresh(self) -> None:
        """Reload dictionaries and the checklist when the panel changed them. A broken file
        keeps the previous ones (the panel validates, so only a hand edit gets here)."""
        if self.library is None:
            return
        signature = self.library.signature()
        if signature == self._signature and self.tagger is not None:
            return
        try:
            self.tagger = load_tagger(self.language, self.library.user_dir)
            self.checklist = load_checklist("sales", self.library.user_dir)
        except ValueError as exc:
            log.error("dictionaries not reloaded", extra={"reason": str(exc)})
            if self.tagger is None:
                raise
        self._signature = signature

    def complete(self, result: dict[str, Any], transcript: list[dict[str, Any]],
                 failed: int) -> dict[str, Any]:
        """Tag and score a call whose transcript is known (in place; returned)."""
        self.refresh()
        info = self.asr.info() if self.asr is not None else {"status": "disabled"}
        return complete_result(result, transcript, failed, info, self.tagger, self.checklist,
                               self.redactor)

    def close(self) -> None:
        if self.asr is not None:
            self.asr.close_service()
        close = getattr(self.pieces, "close", None)
        if close is not None and self.pieces is not self.asr:
            close()


# Audio kept before the oldest frame a segment may still start at: covers the onset and a
# pause that joins two segments for ASR (asr.join_s <= 1 s).
KEEP_FRAMES = 50


class CallSession:
    """Streams both parties of one call through DSP and ASR; ``finish()`` returns the call
    JSON (metrics, transcript, tags, score).

    ``feed`` accepts any chunk length; results do not depend on how the audio was chunked.
    """

    def __init__(self, settings: Settings, meta: CallMeta, stages: Stages | None = None) -> None:
        self.settings = settings
        self.meta = meta
        self.stages = stages or Stages()
        self.stream = CallStream(settings.vad)
        self.windows = {p: AudioWindow() for p in PARTIES}
        self.ref = uuid.uuid4().hex          # names this call's pieces at the recognizer
        sink = self.stages.pieces
        if sink is None or not settings.asr.enabled or (
                self.stages.asr is not None and not self.stages.asr.available):
            self.cutter = None
        else:
            self.cutter = PieceCutter(settings.asr, self._audio, sink, self.ref,
                                      barrier=self.stream.nonspeech)
        self._finished = False

    def feed(self, party: Party, pcm: np.ndarray) -> None:
        """Add 16 kHz int16 samples of one party."""
        if self._finished:
            raise RuntimeError(f"call {self.meta.call_id} already finished")
        self.windows[party].append(pcm)
        self._segments_closed(self.stream.feed(party, pcm))

    def _segments_closed(self, closed: dict[Party, list[tuple[int, int]]]) -> None:
        for who, segs in closed.items():
            for start, end in segs:
                log.debug("segment", extra={"call": self.meta.call_id, "party": who,
                                            "start_frame": start, "end_frame": end})
                if self.cutter is not None:
                    self.cutter.add(who, start, end)
        open_starts = {p: self.stream.open_start(p) for p in PARTIES}
        # segments can still open at any frame the detector has not decided yet (it decides
        # a few seconds behind the audio, to tell music from speech)
        decided = self.stream.decided
        if self.cutter is not None:
            self.cutter.tick(decided, open_starts)
        for p, oldest in open_starts.items():
            keep = decided if oldest is None else oldest
            self.windows[p].drop_before(keep - KEEP_FRAMES)

    def _audio(self, party: str, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        """PCM and per-frame levels of frames [start, end) of a party."""
        # a copy: a view would pin the growing level array (it cannot resize while exported)
        levels = np.frombuffer(self.stream.levels_db[party], np.float32)[start:end].copy()
        return self.windows[party].slice(start, end), levels  # type: ignore[index]

    def finish(self) -> dict[str, Any]:
        """Close the call: flush open segments and return its call JSON. With a recognizer
        the JSON says ``asr.status = pending`` and lists its speech pieces, and whoever owns
        the recognizer completes it (``Stages.complete``), unless ``stages.wait``: then the
        transcript, tags and score are in it."""
        if not self._finished:
            self._segments_closed(self.stream.finish())
            self._finished = True
        total = self.stream.frames
        result: dict[str, Any] = {"schema": SCHEMA, "call": asdict(self.meta)}
        events, holds = call_events(self.stream.events, self.stream.segments,
                                    self.settings.conversation, sip_holds(self.meta, total))
        # what read as speech on the holding party's line inside its hold is the music
        segs = {p: [seg for seg in self.stream.segments[p] if not in_hold(p, seg, holds)]
                for p in PARTIES}
        result.update(conversation_metrics(segs["agent"], segs["client"], total,
                                           self.settings.conversation, holds))
        result["events"] = events
        pieces = self.cutter.finish() if self.cutter is not None else []
        asr = self.stages.asr
        if not self.stages.remote and (self.cutter is None or self.stages.wait):
            transcript, failed = asr.transcribe(self.ref, pieces) if pieces and asr else ([], 0)
            self.stages.complete(result, transcript, failed)
        else:       # completed by the daemon's recognizer, which took the pieces
            result["asr"] = {"status": "pending", "ref": self.ref,
                             "pieces": [p.as_list() for p in pieces]}
            result["transcript"], result["tags"] = [], []
        log.info("call analysed", extra={"call": self.meta.call_id,
                                         "duration_s": result["duration_s"],
                                         "events": len(events), "holds": len(holds),
                                         "segments": len(result["segments"]),
                                         "interruptions": len(result["interruptions"]),
                                         "asr": result["asr"]["status"],
                                         "tags": len(result["tags"])})
        return result
