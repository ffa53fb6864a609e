"""The media tap: a pjsua2 port that receives one stream's audio and only queues it.

Every call's frame callback runs on pjsua2's single media-clock thread, so anything slow here
drops frames of every call. The callback copies the frame's bytes straight from the
``std::vector`` behind ``frame.buf`` (two pointer reads and a memcpy through ctypes; SWIG's
``bytes(frame.buf)`` iterates per element and costs ~0.8 ms) and hands them to ``sink``.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable

import pjsua2 as pj

from ...media.frames import PIPELINE_RATE

FRAME_US = 20000


def _vector_bytes(vec: object) -> bytes:
    """Contents of a SWIG-wrapped std::vector<unsigned char> (libstdc++: begin, end, cap)."""
    addr = int(vec.this)                       # type: ignore[attr-defined]
    begin, end = ctypes.cast(addr, ctypes.POINTER(ctypes.c_void_p * 2)).contents
    if not begin or not end or end <= begin:
        return b""
    return ctypes.string_at(begin, end - begin)


class TapPort(pj.AudioMediaPort):
    """Receives 20 ms frames of 16 kHz s16le mono; ``sink(bytes)`` must not block."""

    def __init__(self, name: str, sink: Callable[[bytes], None]) -> None:
        super().__init__()
        self.sink = sink
        self.frames = 0
        fmt = pj.MediaFormatAudio()
        fmt.init(pj.PJMEDIA_FORMAT_PCM, PIPELINE_RATE, 1, FRAME_US, 16)
        self.createPort(name, fmt)

    def onFrameReceived(self, frame: pj.MediaFrame) -> None:  # noqa: N802 (pjsua2 API)
        if frame.type == pj.PJMEDIA_FRAME_TYPE_AUDIO:
            self.frames += 1
            self.sink(_vector_bytes(frame.buf))

    def onFrameRequested(self, frame: pj.MediaFrame) -> None:  # noqa: N802
        frame.type = pj.PJMEDIA_FRAME_TYPE_NONE        # the box never sends audio
