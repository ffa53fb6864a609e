"""Waveform outlines for the call page: per party, the peak level of each of N slices."""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from ..system import sealing

BUCKETS = 1000
BLOCK = 1 << 16
_cache: OrderedDict[tuple[str, float], dict[str, Any]] = OrderedDict()
_lock = threading.Lock()


def peaks(path: Path, buckets: int = BUCKETS) -> dict[str, Any]:
    """``{duration_s, agent: [0-255 ...], client: [...]}`` (left channel: agent), cached by
    file and modification time. Raises RuntimeError for an unreadable file."""
    key = (str(path), path.stat().st_mtime)
    with _lock:
        if key in _cache:
            _cache.move_to_end(key)
            return _cache[key]
    try:
        with sf.SoundFile(sealing.audio_source(path)) as f:
            frames, channels, rate = f.frames, f.channels, f.samplerate
            edges = np.linspace(0, max(frames, 1), buckets + 1).astype(np.int64)
            out = np.zeros((buckets, channels), np.float32)
            pos = 0
            for block in f.blocks(blocksize=BLOCK, dtype="float32", always_2d=True):
                n = len(block)
                first = min(int(np.searchsorted(edges, pos, "right")) - 1, buckets - 1)
                last = min(int(np.searchsorted(edges, pos + n - 1, "right")) - 1, buckets - 1)
                starts = np.concatenate([[0], edges[first + 1:last + 1] - pos]).astype(np.intp)
                red = np.maximum.reduceat(np.abs(block), starts, axis=0)
                out[first:last + 1] = np.maximum(out[first:last + 1], red)
                pos += n
    except (sf.LibsndfileError, RuntimeError, OSError, sealing.SealError) as exc:
        raise RuntimeError(f"recording unreadable: {exc}") from None
    # a square-root scale shows quiet speech without flattening loud speech
    scaled = np.round(np.sqrt(np.clip(out, 0.0, 1.0)) * 255).astype(np.uint8)
    result = {"duration_s": round(frames / rate, 3) if rate else 0.0,
              "agent": scaled[:, 0].tolist(),
              "client": scaled[:, 1 if channels > 1 else 0].tolist()}
    with _lock:
        _cache[key] = result
        while len(_cache) > 64:
            _cache.popitem(last=False)
    return result
