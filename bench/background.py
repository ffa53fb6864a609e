"""Speech over background music (a radio in the shop a client calls from): how much of it
each detector still hears.

    python bench/background.py [--turns 10] [--seed 5]

One party's speech of a generated call, with each kind of music of the simulator under it
at 25, 18 and 12 dB below the speech, through the telephone band. Reports, per level and
method, the share of the speech's frames heard as speech (mean and worst over the kinds)
and, for the appliance, the share taken for music or tones; the appliance runs as shipped
(its second opinion on music, analysis/speech_check.py) and without that second opinion.
Then the other side: hold music heard as speech on bench/accuracy.py's artefact calls, with
and without it. Prints Markdown; saves bench/out/background.md.
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
from peers import RATE, frame_vads  # noqa: E402

from appliance.analysis.dsp import CallStream  # noqa: E402
from appliance.config import Settings  # noqa: E402
from appliance.native import CLS_MUSIC, CLS_TONE  # noqa: E402
from appliance.simulate import signals  # noqa: E402
from appliance.simulate.calls import build_call, telephone_band  # noqa: E402
from appliance.simulate.corpus import load_corpus  # noqa: E402
from appliance.simulate.scoring import interval_frames  # noqa: E402

LEVELS_DB = (-25.0, -18.0, -12.0)


def on_phone(x: np.ndarray) -> np.ndarray:
    """Through the 300-3400 Hz channel at 8 kHz, back at 16 kHz, as int16."""
    y = soxr.resample(telephone_band(x), 8000, RATE)
    return np.clip(np.rint(y * 32767), -32768, 32767).astype(np.int16)


def appliance(agent: np.ndarray, client: np.ndarray, settings: Settings
              ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The appliance's call analysis (CallStream): per party, speech flags and frame classes."""
    stream = CallStream(settings.vad)
    stream.feed("agent", agent)
    stream.feed("client", client)
    stream.finish()
    flags, classes = {}, {}
    for party in ("agent", "client"):
        classes[party] = np.frombuffer(bytes(stream.classes[party]), np.uint8)
        flags[party] = np.zeros(len(classes[party]), bool)
        for s, e in stream.segments[party]:
            flags[party][s:e] = True
    return flags, classes


def variants(settings: Settings) -> dict[str, Settings]:
    """The appliance as shipped, and without the second opinion on music."""
    alone = settings.model_copy(deep=True)
    alone.vad.music_second_opinion = False
    return {"appliance": settings, "appliance, no second opinion": alone}


def hold_cost(settings: Settings, seed: int, n: int) -> list[str]:
    """The other side: hold music (no speech) heard as speech on the artefact calls, with
    and without the second opinion."""
    runs = variants(settings)
    lines = ["", f"Hold music heard as speech on the {n} artefact calls of seed {seed} "
             "(bench/accuracy.py's):", "", "| variant | " + " | ".join(runs) + " |",
             "|---|" + "---|" * len(runs)]
    for variant in ARTEFACT_VARIANTS:
        heard = dict.fromkeys(runs, 0)
        total = 0
        for name, paths, truth in make_artefact_calls(n, seed):
            if not name.startswith("call"):
                continue
            agent, client = decode(paths[variant], settings)
            for run, s in runs.items():
                flags, _ = appliance(agent, client, s)
                for party in ("agent", "client"):
                    held = interval_frames([(a, b) for p, a, b in truth.holds if p == party],
                                           len(flags[party]))
                    heard[run] += int(np.sum(flags[party][held]))
                    total += int(held.sum()) if run == "appliance" else 0
        lines.append(f"| {variant} | " + " | ".join(f"{heard[r] / total * 100:.1f} %"
                                                     for r in runs) + " |")
    return lines


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--turns", type=int, default=10)
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args()
    settings = Settings()
    utts = load_corpus()
    vads = frame_vads(settings)
    runs = variants(settings)
    heard: dict[tuple[float, str], list[float]] = defaultdict(list)
    lost: dict[tuple[float, str], list[float]] = defaultdict(list)
    kinds = signals.music_kinds()
    for level in LEVELS_DB:
        for kind in kinds:
            rng = np.random.default_rng(args.seed)
            stereo, truth = build_call(utts, rng, turns=args.turns)
            x = stereo[:, 0].astype(np.float32)
            pcm = on_phone(signals.music_under(x, kind, -level, rng))
            quiet = on_phone(signals.make_background(len(x), rng, -60.0))
            for run, s in runs.items():
                flags, classes = appliance(pcm, quiet, s)
                speech = interval_frames(truth.speech["agent"], len(flags["agent"]))
                heard[(level, run)].append(float(np.mean(flags["agent"][speech])))
                lost[(level, run)].append(float(np.mean(np.isin(classes["agent"][speech],
                                                                (CLS_MUSIC, CLS_TONE)))))
            for name, vad in vads.items():
                flags = np.zeros(len(speech), bool)
                for a, b in vad(pcm):
                    flags[a:b] = True
                heard[(level, name)].append(float(np.mean(flags[speech])))
    lines = [f"Speech of one party ({args.turns} turns, seed {args.seed}) with each of "
             f"{len(kinds)} kinds of music under it, through the telephone band (the other "
             "party silent).", "",
             "| music under the speech | method | speech heard, mean | worst kind "
             "| taken for music or tones |", "|---|---|---|---|---|"]
    for (level, name), v in sorted(heard.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        extra = f"{np.mean(lost[(level, name)]) * 100:.0f} %" if name in runs else ""
        lines.append(f"| {-level:.0f} dB below | {name} | {np.mean(v) * 100:.0f} % "
                     f"| {np.min(v) * 100:.0f} % | {extra} |")
    lines += hold_cost(settings, 7, 8)
    publish("background", "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
