"""Silence over stretches of a stored recording (a party's channel), for redaction.

The file is copied block by block into a temporary file beside it, with the spans zeroed,
in its own format and sample type, then renamed over the original: a crash half-way leaves
the original as it was.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import soundfile as sf

from ..system import sealing
from ..system.atomic import replacing

log = logging.getLogger(__name__)

BLOCK_S = 10.0


def mute_spans(paths: list[Path], agent_channel: int, spans: list[dict[str, Any]]) -> float:
    """Zero each span ({party, start, end}, seconds) in the party's channel: one stereo file
    (agent on ``agent_channel``) or two mono files (agent first). Returns seconds muted."""
    if not spans:
        return 0.0
    muted = 0.0
    if len(paths) == 1:
        chans = {"agent": agent_channel, "client": 1 - agent_channel}
        muted += _mute_file(paths[0], [(chans[s["party"]], s["start"], s["end"]) for s in spans])
    else:
        for path, party in zip(paths, ("agent", "client")):
            muted += _mute_file(path, [(0, s["start"], s["end"]) for s in spans
                                       if s["party"] == party])
    return muted


def _mute_file(path: Path, cuts: list[tuple[int, float, float]]) -> float:
    if not cuts:
        return 0.0
    with sealing.editing(path):     # a reseal of the recording waits for the muted one
        return _mute_held(path, cuts)


def _mute_held(path: Path, cuts: list[tuple[int, float, float]]) -> float:
    sealed = sealing.is_sealed(path)
    clear = sealing.read_bytes(path) if sealed else None
    info = sf.info(io.BytesIO(clear) if sealed else str(path))
    rate = info.samplerate
    ranges = [(ch, int(a * rate), int(b * rate)) for ch, a, b in cuts]
    dtype = "int16" if info.subtype in ("PCM_16", "ALAW", "ULAW", "PCM_U8", "PCM_S8") else "float32"
    # a sealed recording is muted in memory and sealed again: nothing clear reaches the disk
    out = io.BytesIO() if sealed else None
    with replacing(path) as tmp:
        with sf.SoundFile(io.BytesIO(clear) if sealed else str(path)) as src, sf.SoundFile(
                out if sealed else str(tmp), "w", rate, src.channels, info.subtype,
                format=info.format) as dst:
            offset = 0
            for block in src.blocks(blocksize=int(BLOCK_S * rate), dtype=dtype, always_2d=True):
                n = len(block)
                for ch, a, b in ranges:
                    lo, hi = max(a, offset), min(b, offset + n)
                    if lo < hi and ch < block.shape[1]:
                        block[lo - offset:hi - offset, ch] = 0
                dst.write(block)
                offset += n
        if out is not None:
            ring = sealing.ring()
            if ring is None:
                raise sealing.SealError(f"{path} is encrypted but encryption is not set up")
            tmp.write_bytes(sealing.seal_bytes(out.getvalue(), ring.current))
    seconds = sum(b - a for _, a, b in ranges) / rate
    log.info("recording muted", extra={"file": path.name, "spans": len(ranges),
                                       "seconds": round(seconds, 1)})
    return seconds
