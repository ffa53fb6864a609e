"""One call in progress: per-party PCM in, analysis out. Every source feeds this class."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..analysis.call_metrics import SCHEMA, conversation_metrics
from ..analysis.dsp import CallStream
from ..analysis.library import Library
from ..analysis.scoring import Checklist, load_checklist, score_call
from ..analysis.tagger import Tagger, load_tagger
from ..asr.stage import AsrService, CallTranscriber
from ..config import Settings
from ..media.frames import PARTIES, Party
from .window import AudioWindow

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


@dataclass
class Stages:
    """The per-process analysis services every call shares (loaded once)."""

    asr: AsrService | None = None
    tagger: Tagger | None = None
    checklist: Checklist | None = None
    library: Library | None = None          # where edited dictionaries and checklists live
    language: str = "ru"
    _signature: tuple[Any, ...] = ()

    @classmethod
    def load(cls, settings: Settings) -> "Stages":
        library = Library(settings.paths.data_dir / "dictionaries")
        stages = cls(asr=AsrService(settings.asr), library=library, language=settings.asr.language)
        stages.refresh()
        return stages

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

    def close(self) -> None:
        if self.asr is not None:
            self.asr.close()


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
        self.transcriber = (CallTranscriber(self.stages.asr, self._audio)
                            if self.stages.asr else None)
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
                if self.transcriber is not None:
                    self.transcriber.add(who, start, end)
        open_starts = {p: self.stream.open_start(p) for p in PARTIES}
        if self.transcriber is not None:
            self.transcriber.tick(self.stream.frames, open_starts)
        for p, oldest in open_starts.items():
            keep = self.stream.frames if oldest is None else oldest
            self.windows[p].drop_before(keep - KEEP_FRAMES)

    def _audio(self, party: str, start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
        """PCM and per-frame levels of frames [start, end) of a party."""
        # a copy: a view would pin the growing level array (it cannot resize while exported)
        levels = np.frombuffer(self.stream.levels_db[party], np.float32)[start:end].copy()
        return self.windows[party].slice(start, end), levels  # type: ignore[index]

    def finish(self) -> dict[str, Any]:
        """Close the call: flush open segments, wait for its transcript, tag and score it."""
        if not self._finished:
            self._segments_closed(self.stream.finish())
            self._finished = True
        self.stages.refresh()
        total = self.stream.frames
        result: dict[str, Any] = {"schema": SCHEMA, "call": asdict(self.meta)}
        result.update(conversation_metrics(self.stream.segments["agent"],
                                           self.stream.segments["client"], total,
                                           self.settings.conversation))
        asr = self.stages.asr
        result["asr"] = asr.info() if asr is not None else {"status": "disabled"}
        result["transcript"] = self.transcriber.transcript() if self.transcriber else []
        if self.transcriber is not None and self.transcriber.failed:
            result["asr"]["failed_segments"] = self.transcriber.failed
        result["tags"] = self.stages.tagger.tag(result["transcript"]) if self.stages.tagger else []
        if self.stages.checklist is not None:
            result["score"] = score_call(result, self.stages.checklist)
        log.info("call analysed", extra={"call": self.meta.call_id,
                                         "duration_s": result["duration_s"],
                                         "segments": len(result["segments"]),
                                         "interruptions": len(result["interruptions"]),
                                         "asr": result["asr"]["status"],
                                         "tags": len(result["tags"])})
        return result
