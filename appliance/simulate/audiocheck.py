"""Checks that captured audio is the audio that was sent: windowed correlation under jitter,
G.711 audio out of a pcap (what sipp plays). Used by the SIP tests and the capacity bench."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import soxr


def windowed_correlation(recorded: np.ndarray, source: np.ndarray, rate_in: int = 16000,
                         win_s: float = 0.5, search_s: float = 0.15) -> float:
    """Median, over the source's voiced windows, of the best normalised correlation with the
    recording near the call's overall delay; the delay may wander (jitter buffer)."""
    if rate_in != 16000:
        source = soxr.resample(source, rate_in, 16000)
    rec = recorded.astype(np.float64)
    src = source.astype(np.float64)
    lag0 = _global_lag(rec, src)
    win, search = int(win_s * 16000), int(search_s * 16000)
    level = np.sqrt(np.mean(src ** 2)) if len(src) else 0
    scores = []
    for s in range(0, len(src) - win, win):
        y = src[s:s + win]
        if np.sqrt(np.mean(y ** 2)) < 0.3 * level:
            continue        # pauses carry no evidence
        y = (y - y.mean()) / (np.linalg.norm(y - y.mean()) + 1e-12)
        a, b = max(0, s + lag0 - search), min(len(rec) - win, s + lag0 + search)
        if b <= a:
            continue
        seg = rec[a:b + win]
        c = np.correlate(seg - seg.mean(), y, mode="valid")
        norms = np.sqrt(np.convolve((seg - seg.mean()) ** 2, np.ones(win), mode="valid"))
        scores.append(float(np.max(c / (norms + 1e-12))))
    return float(np.median(scores)) if scores else 0.0


def _global_lag(rec: np.ndarray, src: np.ndarray, max_s: float = 3.0) -> int:
    n = min(len(src), 16000 * 8)
    m = min(len(rec), n + int(max_s * 16000))
    f = np.fft.irfft(np.fft.rfft(rec[:m], 2 * m) * np.conj(np.fft.rfft(src[:n], 2 * m)))
    return int(np.argmax(f[: int(max_s * 16000)]))


def _alaw_table() -> np.ndarray:
    out = np.zeros(256, np.float32)
    for i in range(256):
        v = i ^ 0x55
        sign, exp, mant = v & 0x80, (v >> 4) & 7, v & 0x0F
        mag = (mant << 4) + 8 if exp == 0 else ((mant << 4) + 0x108) << (exp - 1)
        out[i] = (mag if sign else -mag) / 32768.0
    return out


def decode_pcap_alaw(path: Path) -> np.ndarray:
    """The A-law audio of the RTP packets in a pcap (8 kHz float32)."""
    data = path.read_bytes()
    off, payload = 24, bytearray()
    while off + 16 <= len(data):
        incl = struct.unpack_from("<I", data, off + 8)[0]
        pkt = data[off + 16: off + 16 + incl]
        off += 16 + incl
        ip = 14 if pkt[12:14] == b"\x08\x00" else None
        if ip is None:
            continue
        ihl = (pkt[ip] & 0x0F) * 4
        udp = ip + ihl
        rtp = udp + 8
        cc = pkt[rtp] & 0x0F
        payload += pkt[rtp + 12 + 4 * cc:]
    return _alaw_table()[np.frombuffer(bytes(payload), np.uint8)]
