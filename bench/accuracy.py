"""Accuracy of the conversation DSP on real-speech calls, against peers, in one run.

    python bench/accuracy.py [--calls 12] [--seed 7]

Builds two-party calls from festvox-ru recordings (appliance.simulate) in four variants
(clean 16 kHz; 8 kHz G.711 A-law telephone; telephone + line noise at 10 and 5 dB SNR),
writes them as WAV files the way a PBX would, decodes each through the appliance's file
source, and scores every method on the same 16 kHz audio:
frame-level VAD F1 per party (pooled), talk-share error, interruption precision/recall,
dead-air recall. Prints a Markdown table (also saved to bench/out/accuracy.md).
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers import appliance_call, call_ai_metrics_call, frame_vads  # noqa: E402

from appliance.analysis.call_metrics import conversation_metrics  # noqa: E402
from appliance.config import Settings  # noqa: E402
from appliance.simulate.calls import (VARIANTS, CallTruth, build_call, degrade,  # noqa: E402
                                      write_call)
from appliance.simulate.corpus import load_corpus  # noqa: E402
from appliance.simulate.scoring import Counts, score_result  # noqa: E402
from appliance.sources.files import iter_call_blocks, open_call_files  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"


def make_calls(n: int, seed: int) -> list[tuple[dict[str, Path], CallTruth]]:
    """Write (or reuse) the benchmark calls; return paths per variant and truth."""
    utts = load_corpus()
    calls = []
    for k in range(n):
        d = OUT / "calls" / f"seed{seed}"
        d.mkdir(parents=True, exist_ok=True)
        truth_path = d / f"call{k:02d}.truth.json"
        paths = {v: d / f"call{k:02d}_{v}.wav" for v in VARIANTS}
        if not truth_path.exists() or not all(p.exists() for p in paths.values()):
            stereo, truth = build_call(utts, np.random.default_rng([seed, k]))
            for v, p in paths.items():
                audio, rate, subtype, _ = degrade(stereo, truth, v, np.random.default_rng([seed, k, 1]))
                write_call(p, audio, rate, subtype)
            truth_path.write_text(truth.to_json())
        calls.append((paths, CallTruth.from_json(truth_path.read_text())))
    return calls


def decode(path: Path, settings: Settings) -> tuple[np.ndarray, np.ndarray]:
    call = open_call_files([path], settings)
    blocks = list(iter_call_blocks(call, settings))
    return (np.concatenate([b[0] for b in blocks]), np.concatenate([b[1] for b in blocks]))


def result_from_segments(segs: dict[str, list[tuple[int, int]]], n_frames: int,
                         settings: Settings) -> dict:
    """The conversation metrics the appliance computes, from any method's segments."""
    return conversation_metrics(segs["agent"], segs["client"], n_frames, settings.conversation)


def publish(name: str, text: str) -> None:
    """Print a report and keep it as bench/out/<name>.md."""
    print(text)
    OUT.mkdir(exist_ok=True)
    (OUT / f"{name}.md").write_text(text + "\n")


class Tally:
    def __init__(self) -> None:
        self.vad = Counts()
        self.intr = Counts()
        self.sil = Counts()
        self.share: list[float] = []

    def add(self, sc: dict) -> None:
        for c in sc["vad"].values():
            self.vad += c
        self.intr += sc["interruptions"]
        self.sil += sc["silences"]
        self.share.append(sc["share_error"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=12)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--methods", default="", help="comma-separated subset of methods")
    args = ap.parse_args()
    wanted = set(filter(None, args.methods.split(",")))
    settings = Settings()
    calls = make_calls(args.calls, args.seed)
    vads = {k: v for k, v in frame_vads(settings).items() if not wanted or k in wanted}
    tallies: dict[tuple[str, str], Tally] = defaultdict(Tally)
    audio_s = 0.0
    for paths, truth in calls:
        audio_s += truth.duration
        for variant, path in paths.items():
            agent, client = decode(path, settings)
            n = len(agent) // 320
            if not wanted or "appliance" in wanted:
                segs = appliance_call(agent, client, settings)
                tallies[(variant, "appliance")].add(
                    score_result(result_from_segments(segs, n, settings), truth))
            for name, vad in vads.items():
                segs = {"agent": vad(agent), "client": vad(client)}
                tallies[(variant, name)].add(score_result(result_from_segments(segs, n, settings), truth))
            if wanted and "call-ai-metrics" not in wanted:
                continue
            cam = call_ai_metrics_call(agent, client)
            res = result_from_segments(cam["segments"], n, settings)
            # its own interruption detector and talk share, not ours
            res["interruptions"] = [{"by": by, "at": at} for by, at in cam["interruptions"]]
            res["parties"]["agent"]["talk_share"] = cam["talk_share"].get("agent", 0.0)
            tallies[(variant, "call-ai-metrics")].add(score_result(res, truth))
    lines = [
        f"{len(calls)} calls, {audio_s / 60:.1f} min of two-party audio per variant, "
        f"seed {args.seed}; {sum(len(t.interruptions) for _, t in calls)} interruptions, "
        f"{sum(len(t.backchannels) for _, t in calls)} backchannels, "
        f"{sum(len(t.dead_air) for _, t in calls)} dead-air gaps in the truth.",
        "",
        "| variant | method | VAD F1 | VAD P | VAD R | talk-share err mean / max (pts) "
        "| interruption P / R / F1 | dead-air recall |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (variant, name), t in sorted(tallies.items(), key=lambda kv: (VARIANTS.index(kv[0][0]), kv[0][1])):
        lines.append(
            f"| {variant} | {name} | {t.vad.f1:.3f} | {t.vad.precision:.3f} | {t.vad.recall:.3f} "
            f"| {np.mean(t.share) * 100:.1f} / {np.max(t.share) * 100:.1f} "
            f"| {t.intr.precision:.2f} / {t.intr.recall:.2f} / {t.intr.f1:.2f} "
            f"| {t.sil.recall:.2f} |")
    publish("accuracy", "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
