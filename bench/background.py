"""Speech over background music (a radio in the shop a client calls from): how much of it
each detector still hears.

    python bench/background.py [--turns 10] [--seed 5]

One party's speech of a generated call, with each kind of music of the simulator under it
at 25, 18 and 12 dB below the speech, through the telephone band. Reports, per level and
method, the share of the speech's frames heard as speech (mean and worst over the kinds)
and, for the appliance, the share taken for music or tones; ``appliance+silero-music`` is
the appliance with Silero asked about the frames it took for music (speech where Silero
hears it): what a neural second opinion on music could give back. Prints Markdown; saves
bench/out/background.md.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import soxr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

from accuracy import ARTEFACT_VARIANTS, decode, make_artefact_calls, publish  # noqa: E402
from peers import RATE, SileroVad, frame_vads, segment_decisions  # noqa: E402

from appliance.analysis.dsp import make_detector  # noqa: E402
from appliance.config import Settings  # noqa: E402
from appliance.native import CLS_MUSIC, CLS_SPEECH, CLS_TONE  # noqa: E402
from appliance.simulate import signals  # noqa: E402
from appliance.simulate.calls import build_call, telephone_band  # noqa: E402
from appliance.simulate.corpus import load_corpus  # noqa: E402
from appliance.simulate.scoring import interval_frames  # noqa: E402

LEVELS_DB = (-25.0, -18.0, -12.0)


def on_phone(x: np.ndarray) -> np.ndarray:
    """Through the 300-3400 Hz channel at 8 kHz, back at 16 kHz, as int16."""
    y = soxr.resample(telephone_band(x), 8000, RATE)
    return np.clip(np.rint(y * 32767), -32768, 32767).astype(np.int16)


def appliance_classes(pcm: np.ndarray, settings: Settings) -> np.ndarray:
    d = make_detector(settings.vad)
    d.process(pcm)
    d.flush()
    return np.frombuffer(d.take_classes(), np.uint8)


def rescue(cls: np.ndarray, said: np.ndarray, settings: Settings) -> np.ndarray:
    """Speech frames: the appliance's, and those it took for music where Silero hears speech,
    through the appliance's segmenter."""
    flags = (cls == CLS_SPEECH).copy()
    n = min(len(cls), len(said))
    flags[:n] |= (cls[:n] == CLS_MUSIC) & (said[:n] > 0)
    out = np.zeros(len(cls), bool)
    for s, e in segment_decisions(flags, settings):
        out[s:e] = True
    return out


def hold_cost(settings: Settings, silero: SileroVad, seed: int, n: int) -> list[str]:
    """The other side: hold music (no speech) read as speech on the artefact calls, with and
    without the rescue."""
    lines = ["", f"Hold music heard as speech on the {n} artefact calls of seed {seed} "
             "(bench/accuracy.py's), agent side:", "",
             "| variant | appliance | appliance+silero-music |", "|---|---|---|"]
    for variant in ARTEFACT_VARIANTS:
        plain = checked = total = 0
        for name, paths, truth in make_artefact_calls(n, seed):
            if not name.startswith("call"):
                continue
            agent, _ = decode(paths[variant], settings)
            cls = appliance_classes(agent, settings)
            held = interval_frames([(s, e) for p, s, e in truth.holds if p == "agent"], len(cls))
            plain += int(np.sum(cls[held] == CLS_SPEECH))
            checked += int(np.sum(rescue(cls, silero.flags(agent), settings)[held]))
            total += int(held.sum())
        lines.append(f"| {variant} | {plain / total * 100:.1f} % | {checked / total * 100:.1f} % |")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--turns", type=int, default=10)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--rescue-threshold", type=float, default=0.5,
                    help="Silero's probability for a frame taken for music to be speech")
    args = ap.parse_args()
    settings = Settings()
    utts = load_corpus()
    vads = frame_vads(settings)
    silero = SileroVad(args.rescue_threshold)
    heard: dict[tuple[float, str], list[float]] = defaultdict(list)
    lost: dict[float, list[float]] = defaultdict(list)
    kinds = signals.music_kinds()
    for level in LEVELS_DB:
        for kind in kinds:
            rng = np.random.default_rng(args.seed)
            stereo, truth = build_call(utts, rng, turns=args.turns)
            x = stereo[:, 0].astype(np.float32)
            rms = float(np.sqrt(np.mean(x[np.abs(x) > 1e-3] ** 2)))
            m = signals.music(kind, len(x) / RATE + 1.0, rng, -20.0)[:len(x)]
            m = m / np.sqrt(np.mean(m ** 2)) * rms * 10 ** (level / 20)
            pcm = on_phone(x + m)
            cls = appliance_classes(pcm, settings)
            speech = interval_frames(truth.speech["agent"], len(cls))
            heard[(level, "appliance")].append(float(np.mean(cls[speech] == CLS_SPEECH)))
            lost[level].append(float(np.mean(np.isin(cls[speech], (CLS_MUSIC, CLS_TONE)))))
            rescued = rescue(cls, silero.flags(pcm), settings)
            heard[(level, "appliance+silero-music")].append(float(np.mean(rescued[speech])))
            for name, vad in vads.items():
                flags = np.zeros(len(cls), bool)
                for s, e in vad(pcm):
                    flags[s:e] = True
                heard[(level, name)].append(float(np.mean(flags[speech])))
    lines = [f"Speech of one party ({args.turns} turns, seed {args.seed}) with each of "
             f"{len(kinds)} kinds of music under it, through the telephone band; the rescue "
             f"at Silero's probability {args.rescue_threshold}.", "",
             "| music under the speech | method | speech heard, mean | worst kind "
             "| taken for music or tones |", "|---|---|---|---|---|"]
    for (level, name), v in sorted(heard.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        extra = f"{np.mean(lost[level]) * 100:.0f} %" if name == "appliance" else ""
        lines.append(f"| {-level:.0f} dB below | {name} | {np.mean(v) * 100:.0f} % "
                     f"| {np.min(v) * 100:.0f} % | {extra} |")
    lines += hold_cost(settings, silero, 7, 8)
    publish("background", "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
