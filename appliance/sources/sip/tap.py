"""The media tap: a pjsua2 port that receives one stream's audio and only queues it.

Every call's frame callback runs on pjsua2's single media-clock thread, so anything slow here
drops frames of every call. The callback copies the frame's bytes straight from the
``std::vector`` behind ``frame.buf`` (two pointer reads and a memcpy through ctypes; SWIG's
``bytes(frame.buf)`` iterates per element and costs ~0.8 ms) and hands them to ``sink``.

Ports are never destroyed while the media clock runs: deleting one whose callback is in
flight frees the Python object under the clock thread (seen to crash the process). A
``TapPool`` makes every port a worker can need at start-up and lends them to calls; at
shutdown they outlive ``libDestroy`` and are then let go without their C++ destructor.
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Callable

import pjsua2 as pj

from ...core.frames import PIPELINE_RATE

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

    def __init__(self, name: str, sink: Callable[[bytes], None] | None = None) -> None:
        super().__init__()
        self.sink = sink
        fmt = pj.MediaFormatAudio()
        fmt.init(pj.PJMEDIA_FORMAT_PCM, PIPELINE_RATE, 1, FRAME_US, 16)
        self.createPort(name, fmt)

    def onFrameReceived(self, frame: pj.MediaFrame) -> None:  # noqa: N802 (pjsua2 API)
        sink = self.sink            # one read: the SIP thread may clear it meanwhile
        if sink is not None and frame.type == pj.PJMEDIA_FRAME_TYPE_AUDIO:
            sink(_vector_bytes(frame.buf))

    def onFrameRequested(self, frame: pj.MediaFrame) -> None:  # noqa: N802
        frame.type = pj.PJMEDIA_FRAME_TYPE_NONE        # the box never sends audio


QUARANTINE_S = 0.2       # a returned port rests this long: a last frame of its old stream


class TapPool:
    """The taps of one endpoint, made once; lent to calls on the SIP thread."""

    def __init__(self, count: int) -> None:
        self.ports = [TapPort(f"tap-{i}") for i in range(count)]
        self._free: list[tuple[float, TapPort]] = [(0.0, p) for p in self.ports]

    def lease(self, sink: Callable[[bytes], None], now: float | None = None) -> TapPort | None:
        """A free port feeding ``sink`` (None if all are lent out)."""
        now = time.monotonic() if now is None else now
        for i, (since, port) in enumerate(self._free):
            if now - since >= QUARANTINE_S:
                del self._free[i]
                port.sink = sink
                return port
        return None

    def give_back(self, port: TapPort, now: float | None = None) -> None:
        port.sink = None
        self._free.append((time.monotonic() if now is None else now, port))

    @property
    def free(self) -> int:
        return len(self._free)

    def silence(self) -> None:
        for port in self.ports:
            port.sink = None

    def abandon(self) -> None:
        """After ``libDestroy``: let the ports go without running their C++ destructors (the
        library that owned their bridge slots is gone)."""
        for port in self.ports:
            port.thisown = False
        self.ports.clear()
        self._free.clear()
