"""Real speech as a pcap of G.711 A-law RTP, for sipp's ``play_pcap_audio``.

sipp replays the UDP payloads of such a file into a call's first audio stream, with the
packets' own timing; the addresses in it do not matter.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

RATE = 8000
PACKET = 160                  # 20 ms at 8 kHz


def alaw_encode(x: np.ndarray) -> bytes:
    """G.711 A-law of float samples in [-1, 1]."""
    pcm = np.clip(np.rint(np.asarray(x, np.float64) * 32767), -32768, 32767).astype(np.int32)
    sign = np.where(pcm >= 0, 0x80, 0x00)
    mag = np.minimum(np.abs(pcm), 32635) >> 3          # 13-bit magnitude
    exp = np.zeros_like(mag)
    for e in range(1, 8):
        exp = np.where(mag >= (32 << (e - 1)), e, exp)
    mant = np.where(exp == 0, mag >> 1, mag >> exp) & 0x0F
    code = (sign | (exp << 4) | mant) ^ 0x55
    return code.astype(np.uint8).tobytes()


def wav_to_pcap(wav: Path, out: Path, seconds: float | None = None) -> Path:
    """Write the (mono) WAV as A-law RTP packets, 20 ms apart, into a pcap file."""
    audio, rate = sf.read(str(wav), dtype="float32", always_2d=True)
    audio = audio[:, 0]
    if rate != RATE:
        audio = soxr.resample(audio, rate, RATE)
    if seconds is not None:
        audio = audio[: int(seconds * RATE)]
    payload = alaw_encode(audio)
    frames = [b"\xd4\xc3\xb2\xa1" + struct.pack("<HHiIII", 2, 4, 0, 0, 65535, 1)]
    ssrc = 0x5EED1234
    for n in range(0, len(payload) // PACKET):
        rtp = struct.pack(">BBHII", 0x80, 8, n & 0xFFFF, (n * PACKET) & 0xFFFFFFFF, ssrc)
        rtp += payload[n * PACKET:(n + 1) * PACKET]
        udp = struct.pack(">HHHH", 6000, 6002, 8 + len(rtp), 0) + rtp
        ip = struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), n & 0xFFFF, 0, 64, 17, 0,
                         bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1])) + udp
        eth = b"\x00" * 12 + b"\x08\x00" + ip
        t = n * 0.02
        frames.append(struct.pack("<IIII", int(t), int(round((t % 1) * 1e6)), len(eth), len(eth))
                      + eth)
    out.write_bytes(b"".join(frames))
    return out
