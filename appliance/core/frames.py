"""Audio conventions shared by every source and stage of the pipeline."""

from __future__ import annotations

from typing import Literal

PIPELINE_RATE = 16000
"""Every source delivers 16-bit mono PCM per party at this rate (ASR wants 16 kHz)."""

FRAME_S = 0.02
"""DSP frame: 20 ms (what pjsua2 delivers per callback)."""

FRAMES_PER_S = 50
SAMPLES_PER_FRAME = PIPELINE_RATE // FRAMES_PER_S

Party = Literal["agent", "client"]
PARTIES: tuple[Party, Party] = ("agent", "client")


def frames_to_s(frames: int) -> float:
    """Frame index or count to seconds, rounded to the frame grid."""
    return round(frames * FRAME_S, 2)


def s_to_frames(seconds: float) -> int:
    """Seconds to a whole number of frames (at least 1)."""
    return max(1, int(round(seconds * FRAMES_PER_S)))
