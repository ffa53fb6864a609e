"""Encryption at rest: what sealing a finished recording costs at hang-up, against the
step it follows (FLAC encoding of the same call) and a plain copy of the file; and what
unsealing costs a playback, against reading the clear file.

    python bench/sealing.py [--minutes 5] [--repeat 5]

A stereo 16 kHz call of real speech (festvox-ru, generated as the tests do). Prints
Markdown; saves bench/out/sealing.md.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

sys.path.insert(0, str(Path(__file__).resolve().parent))

from accuracy import publish  # noqa: E402

from appliance.media.recorder import wav_to_flac  # noqa: E402
from appliance.simulate.calls import build_call  # noqa: E402
from appliance.simulate.corpus import load_corpus  # noqa: E402
from appliance.system import sealing  # noqa: E402
from appliance.system.sealing import DataKey, KeyRing  # noqa: E402


def best(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=5.0)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    corpus = load_corpus()
    rng = np.random.default_rng(5)
    audio = np.zeros((0, 2), np.float32)
    while len(audio) < args.minutes * 60 * 16000:
        audio = np.concatenate([audio, build_call(corpus, rng, turns=10)[0]])
    audio = audio[: int(args.minutes * 60 * 16000)]
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "call.wav"
        sf.write(str(wav), audio, 16000, subtype="PCM_16")
        raw = wav.read_bytes()

        def encode() -> Path:
            wav.write_bytes(raw)
            return wav_to_flac(wav)
        t_flac = best(encode, args.repeat)
        flac = encode()
        clear = flac.read_bytes()
        sealing.configure(KeyRing(DataKey.new()))
        try:
            def seal() -> None:
                flac.write_bytes(clear)
                sealing.seal_file(flac)
            t_seal = best(seal, args.repeat)
            t_copy = best(lambda: shutil.copyfile(flac, Path(tmp) / "copy"), args.repeat)
            seal()
            t_unseal = best(lambda: sealing.read_bytes(flac), args.repeat)
            assert sealing.read_bytes(flac) == clear
            plain = Path(tmp) / "plain.flac"
            plain.write_bytes(clear)
            t_read = best(plain.read_bytes, args.repeat)
        finally:
            sealing.configure(None)
    mb = len(clear) / 2**20
    lines = [f"# Encryption at rest: a {args.minutes:g}-minute call ({mb:.1f} MB of FLAC)", "",
             "`python bench/sealing.py --minutes "
             f"{args.minutes:g} --repeat {args.repeat}` (best of {args.repeat})", "",
             "| step | time | MB/s | against |", "|---|---|---|---|",
             f"| FLAC encoding at hang-up (today's step) | {t_flac * 1000:.0f} ms | "
             f"{len(raw) / 2**20 / t_flac:.0f} (WAV in) | 1x |",
             f"| sealing the FLAC (AES-256-GCM, written and synced) | {t_seal * 1000:.1f} ms | "
             f"{mb / t_seal:.0f} | {t_seal / t_flac:.3f}x the FLAC step, "
             f"{t_seal / t_copy:.1f}x a plain copy |",
             f"| plain copy of the FLAC | {t_copy * 1000:.1f} ms | {mb / t_copy:.0f} | |",
             f"| unsealing for playback (in memory) | {t_unseal * 1000:.1f} ms | {mb / t_unseal:.0f} "
             f"| {t_unseal / t_read:.1f}x reading the clear file |",
             f"| reading the clear file | {t_read * 1000:.1f} ms | {mb / t_read:.0f} | |"]
    publish("sealing", "\n".join(lines))


if __name__ == "__main__":
    main()
