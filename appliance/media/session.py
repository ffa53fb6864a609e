"""One call in progress: per-party PCM in, analysis out. Every source feeds this class."""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..analysis.call_metrics import SCHEMA, conversation_metrics
from ..analysis.dsp import CallStream
from ..config import Settings
from ..media.frames import Party

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


class CallSession:
    """Streams both parties of one call through the DSP; ``finish()`` returns the call JSON.

    ``feed`` accepts any chunk length; results do not depend on how the audio was chunked.
    """

    def __init__(self, settings: Settings, meta: CallMeta) -> None:
        self.settings = settings
        self.meta = meta
        self.stream = CallStream(settings.vad)
        self._finished = False

    def feed(self, party: Party, pcm: np.ndarray) -> None:
        """Add 16 kHz int16 samples of one party."""
        if self._finished:
            raise RuntimeError(f"call {self.meta.call_id} already finished")
        for who, closed in self.stream.feed(party, pcm).items():
            for start, end in closed:
                log.debug("segment", extra={"call": self.meta.call_id, "party": who,
                                            "start_frame": start, "end_frame": end})

    def finish(self) -> dict[str, Any]:
        """Close the call: flush open segments and compute its metrics."""
        if not self._finished:
            self.stream.finish()
            self._finished = True
        total = self.stream.frames
        result: dict[str, Any] = {"schema": SCHEMA, "call": asdict(self.meta)}
        result.update(conversation_metrics(self.stream.segments["agent"],
                                           self.stream.segments["client"], total,
                                           self.settings.conversation))
        log.info("call analysed", extra={"call": self.meta.call_id,
                                         "duration_s": result["duration_s"],
                                         "segments": len(result["segments"]),
                                         "interruptions": len(result["interruptions"])})
        return result
