"""Stereo call recording written while the call streams (agent left, client right).

The WAV header is rewritten with the true length every ``sync_s`` and the data synced to disk,
so a crash or power cut loses at most that much audio and leaves a valid WAV. FLAC cannot be
made crash-safe this way (its length lives in a header libsndfile writes at close), so a FLAC
recording is encoded from the finished WAV at call end.
"""

from __future__ import annotations

import logging
import os
import struct
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from ..system.atomic import replacing
from .frames import PIPELINE_RATE

log = logging.getLogger(__name__)

CHANNELS = 2
SAMPLE_BYTES = 2
HEADER_BYTES = 44


def _wav_header(data_bytes: int, rate: int = PIPELINE_RATE) -> bytes:
    block = CHANNELS * SAMPLE_BYTES
    return (b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE"
            + b"fmt " + struct.pack("<IHHIIHH", 16, 1, CHANNELS, rate, rate * block, block, 16)
            + b"data" + struct.pack("<I", data_bytes))


class StereoRecorder:
    """Appends aligned agent/client int16 blocks to ``path`` (a .wav file)."""

    def __init__(self, path: Path, sync_s: float = 1.0) -> None:
        self.path = path
        self.sync_s = sync_s
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fh = open(path, "xb")         # never overwrite an existing recording
        self._fh.write(_wav_header(0))
        self.data_bytes = 0
        self.synced_bytes = 0
        self._last_sync = time.monotonic()

    @property
    def duration_s(self) -> float:
        return self.data_bytes / (CHANNELS * SAMPLE_BYTES * PIPELINE_RATE)

    def write(self, agent: np.ndarray, client: np.ndarray) -> None:
        """Append equal-length int16 blocks of both parties."""
        if len(agent) != len(client):
            raise ValueError("recorder needs equal-length blocks of both parties")
        frame = np.empty((len(agent), 2), np.int16)
        frame[:, 0] = agent
        frame[:, 1] = client
        data = frame.tobytes()
        self._fh.write(data)
        self.data_bytes += len(data)
        if time.monotonic() - self._last_sync >= self.sync_s:
            self.sync()

    @property
    def synced_s(self) -> float:
        return self.synced_bytes / (CHANNELS * SAMPLE_BYTES * PIPELINE_RATE)

    def sync(self) -> None:
        """Make everything written so far durable and the header truthful."""
        self._fh.flush()
        os.pwrite(self._fh.fileno(), _wav_header(self.data_bytes), 0)
        os.fdatasync(self._fh.fileno())
        self.synced_bytes = self.data_bytes
        self._last_sync = time.monotonic()

    def abandon(self) -> None:
        """After a failed write (full disk): keep the file as of the last sync, valid, and
        write nothing more."""
        fd = self._fh.fileno()
        try:
            os.ftruncate(fd, HEADER_BYTES + self.synced_bytes)
            os.pwrite(fd, _wav_header(self.synced_bytes), 0)
            os.fdatasync(fd)
        except OSError as exc:
            log.error("recording not trimmed", extra={"file": str(self.path), "reason": str(exc)})
        self.data_bytes = self.synced_bytes
        try:
            self._fh.close()            # may fail again flushing its buffer: nothing to keep
        except OSError:
            pass

    def close(self) -> None:
        if not self._fh.closed:
            self.sync()
            self._fh.close()


def repair_wav(path: Path) -> float:
    """Fix the header of a recording cut by a crash; return its duration in seconds."""
    size = path.stat().st_size
    data = max(0, size - HEADER_BYTES)
    data -= data % (CHANNELS * SAMPLE_BYTES)
    with open(path, "r+b") as fh:
        fh.write(_wav_header(data))
        fh.truncate(HEADER_BYTES + data)
        fh.flush()
        os.fsync(fh.fileno())
    return data / (CHANNELS * SAMPLE_BYTES * PIPELINE_RATE)


def wav_to_flac(wav: Path) -> Path:
    """Encode a finished WAV recording as FLAC beside it, then remove the WAV."""
    flac = wav.with_suffix(".flac")
    with replacing(flac) as tmp, sf.SoundFile(str(wav)) as src, sf.SoundFile(
            str(tmp), "w", src.samplerate, src.channels, "PCM_16", format="FLAC") as dst:
        for block in src.blocks(blocksize=PIPELINE_RATE * 10, dtype="int16"):
            dst.write(block)
    wav.unlink()
    return flac
