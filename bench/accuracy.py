"""Accuracy of the conversation DSP on real-speech calls, against peers, in one run.

    python bench/accuracy.py [--calls 12] [--seed 7] [--artefact-calls 8]

Builds two-party calls from festvox-ru recordings (appliance.simulate) in five variants
(clean 16 kHz; 8 kHz G.711 A-law telephone; telephone + line noise at 10 and 5 dB SNR;
telephone with echo), writes them as WAV files the way a PBX would, decodes each through
the appliance's file source, and scores every method on the same 16 kHz audio:
frame-level VAD F1 per party (pooled), talk-share error, interruption precision/recall,
dead-air recall. Prints a Markdown table (also saved to bench/out/accuracy.md).

Then calls that carry what real calls carry besides speech (simulate/artefacts.py:
ringback, a 15-35 s hold with music on the agent's line, the client keying digits,
comfort noise, packet-loss dropouts), in the telephone variants, and calls that are only
that (an abandoned hold, busy, SIT, fax, silence): speech reported during tones and
music, speech F1, holds found, hold time reported as dead air, DTMF keys decoded
(bench/out/artefacts.md).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from peers import (SileroVad, appliance_call, call_ai_metrics_call, frame_vads,  # noqa: E402
                   silero_checked)

from appliance.analysis.call_metrics import conversation_metrics  # noqa: E402
from appliance.config import Settings  # noqa: E402
from appliance.core.frames import FRAME_S  # noqa: E402
from appliance.media.session import CallMeta, CallSession  # noqa: E402
from appliance.simulate.artefacts import SPECIAL, build_artefact_call, build_special_call  # noqa: E402
from appliance.simulate.calls import (VARIANTS, CallTruth, build_call, degrade,  # noqa: E402
                                      write_call)
from appliance.simulate.corpus import load_corpus  # noqa: E402
from appliance.simulate.scoring import (Counts, interval_frames, score_result,  # noqa: E402
                                        word_errors)
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


ARTEFACT_VARIANTS = ("tel8", "tel8_snr10")
# The appliance's own segments, each kept only if Silero also hears speech in it: measured
# to decide whether a neural second opinion earns its cost on the box.
CHECKED = "appliance+silero"


def make_artefact_calls(n: int, seed: int) -> list[tuple[str, dict[str, Path], CallTruth]]:
    """Write (or reuse) calls with artefacts and the special calls: (name, paths, truth)."""
    utts = load_corpus()
    out = []
    d = OUT / "calls" / f"artefacts{seed}"
    d.mkdir(parents=True, exist_ok=True)
    names = [f"call{k:02d}" for k in range(n)] + [f"{kind}{k}" for kind in SPECIAL for k in range(2)]
    for i, name in enumerate(names):
        truth_path = d / f"{name}.truth.json"
        variants = ARTEFACT_VARIANTS if name.startswith("call") else ("tel8",)
        paths = {v: d / f"{name}_{v}.wav" for v in variants}
        if not truth_path.exists() or not all(p.exists() for p in paths.values()):
            rng = np.random.default_rng([seed, i])
            if name.startswith("call"):
                stereo, truth = build_artefact_call(utts, rng)
            else:
                stereo, truth = build_special_call(name.rstrip("0123456789"), rng)
            for v, p in paths.items():
                audio, rate, subtype, _ = degrade(stereo, truth, v, np.random.default_rng([seed, i, 1]))
                write_call(p, audio, rate, subtype)
            truth_path.write_text(truth.to_json())
        out.append((name, paths, CallTruth.from_json(truth_path.read_text())))
    return out


def appliance_result(agent: np.ndarray, client: np.ndarray, settings: Settings) -> dict:
    """The call JSON the appliance writes (no recognizer): segments, silences, holds, events."""
    session = CallSession(settings, CallMeta(source="file", call_id="bench"))
    session.feed("agent", agent)
    session.feed("client", client)
    return session.finish()


def overlap_s(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> float:
    return sum(max(0.0, min(e1, e2) - max(s1, s2)) for s1, e1 in a for s2, e2 in b)


class ArtefactTally:
    def __init__(self) -> None:
        self.vad = Counts()
        self.sound_s = 0.0          # truth: tones, keys and music
        self.sound_speech_s = 0.0   # ... reported as speech
        self.holds = 0
        self.holds_found = 0
        self.hold_s = 0.0
        self.hold_dead_s = 0.0      # hold time inside reported inner silences
        self.keys = 0
        self.key_errors = 0
        self.lost_keys = 0          # keys a packet-loss dropout took off the line
        self.special_speech_s = 0.0  # speech reported on calls without any
        self.share: list[float] = []
        self.intr = Counts()

    def add(self, res: dict, truth: CallTruth, special: bool) -> None:
        n = int(round(truth.duration / 0.02)) + 1
        sc = score_result(res, truth)
        for party in ("agent", "client"):
            segs = [(s["start"], s["end"]) for s in res["segments"] if s["party"] == party]
            pred = interval_frames(segs, n)
            if not special:
                self.vad += sc["vad"][party]
            sounds = interval_frames([(s, e) for _, p, s, e in truth.sounds if p == party], n)
            self.sound_s += float(sounds.sum()) * 0.02
            self.sound_speech_s += float((pred & sounds).sum()) * 0.02
        if special:
            self.special_speech_s += sum(s["end"] - s["start"] for s in res["segments"])
        else:
            self.share.append(sc["share_error"])
            self.intr += sc["interruptions"]
        found = [(h["start"], h["end"]) for h in res.get("holds", [])]
        inner = [(s["start"], s["end"]) for s in res["silences"] if s["position"] == "inner"]
        for _, hs, he in truth.holds:
            self.holds += 1
            self.holds_found += overlap_s([(hs, he)], found) >= 0.5 * (he - hs)
            self.hold_s += he - hs
            self.hold_dead_s += overlap_s([(hs, he)], inner)
        if "events" in res:
            got = "".join(e.get("digits", "") for e in res["events"] if e["kind"] == "dtmf")
            want = audible_keys(truth)
            pressed = "".join(e[4] for e in truth.events if e[0] == "dtmf")
            self.keys += len(want)
            self.lost_keys += len(pressed) - len(want)
            # a key a dropout all but took may still be heard: decoding it is no error
            self.key_errors += min(word_errors(list(want), list(got)),
                                   word_errors(list(pressed), list(got)))


def audible_keys(truth: CallTruth) -> str:
    """The keys pressed that reached the line: at least 40 ms (ITU-T Q.24) of each outside
    the digital silence of packet loss."""
    keys = "".join(e[4] for e in truth.events if e[0] == "dtmf")
    sounds = [(p, s, e) for kind, p, s, e in truth.sounds if kind == "dtmf"]
    out = ""
    for key, (party, s, e) in zip(keys, sounds):
        lost = overlap_s([(s, e)], [(a, b) for p, a, b in truth.silent if p == party])
        if e - s - lost >= 0.04:
            out += key
    return out


def pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.1f} %" if whole else "-"


def artefact_report(n: int, seed: int, settings: Settings, vads: dict, wanted: set[str]) -> str:
    keep = settings.model_copy(deep=True)
    keep.conversation.dtmf_digits = True            # to score the keys
    calls = make_artefact_calls(n, seed)
    tallies: dict[tuple[str, str], ArtefactTally] = defaultdict(ArtefactTally)
    audio_s = {v: 0.0 for v in ARTEFACT_VARIANTS}
    # the appliance's segments checked by Silero (needs the appliance's result)
    silero = SileroVad() if not wanted or {"appliance", CHECKED} <= wanted else None
    cpu: dict[str, float] = defaultdict(float)
    for name, paths, truth in calls:
        special = not name.startswith("call")
        for variant, path in paths.items():
            agent, client = decode(path, settings)
            frames = len(agent) // 320
            key = "special" if special else variant
            audio_s[variant] += 0.0 if special else truth.duration
            if not wanted or "appliance" in wanted:
                t0 = time.process_time()
                res = appliance_result(agent, client, keep)
                cpu["appliance"] += time.process_time() - t0
                tallies[(key, "appliance")].add(res, truth, special)
            if silero is not None:
                t0 = time.process_time()
                checked = silero_checked(
                    {p: [(int(round(s["start"] / FRAME_S)), int(round(s["end"] / FRAME_S)))
                         for s in res["segments"] if s["party"] == p] for p in ("agent", "client")},
                    {"agent": agent, "client": client}, silero)
                cpu[CHECKED] += time.process_time() - t0
                both = conversation_metrics(checked["agent"], checked["client"], frames,
                                            keep.conversation, holds=res["holds"])
                tallies[(key, CHECKED)].add({**both, "holds": res["holds"], "events": res["events"]},
                                            truth, special)
            for mname, vad in vads.items():
                segs = {"agent": vad(agent), "client": vad(client)}
                tallies[(key, mname)].add(result_from_segments(segs, frames, settings), truth, special)
            if wanted and "call-ai-metrics" not in wanted:
                continue
            cam = call_ai_metrics_call(agent, client)
            tallies[(key, "call-ai-metrics")].add(
                result_from_segments(cam["segments"], frames, settings), truth, special)
    conv = [c for c in calls if c[0].startswith("call")]
    lines = [
        f"{len(conv)} calls with artefacts ({audio_s['tel8'] / 60:.1f} min per variant), seed {seed}: "
        f"{sum(len(t.holds) for _, _, t in conv)} holds "
        f"({sum(h[2] - h[1] for _, _, t in conv for h in t.holds) / 60:.1f} min of music), "
        f"{sum(1 for _, _, t in conv for e in t.events if e[0] == 'ringback')} ringbacks, "
        f"{sum(len(e[4]) for _, _, t in conv for e in t.events if e[0] == 'dtmf')} DTMF keys; "
        f"and {len(calls) - len(conv)} calls without speech ({', '.join(SPECIAL)}, two each).",
        "",
        "| variant | method | speech during tones and music | speech F1 | P / R "
        "| talk-share err mean / max (pts) | interruption F1 "
        "| holds found | hold time as dead air | DTMF keys decoded |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    order = {v: i for i, v in enumerate((*ARTEFACT_VARIANTS, "special"))}
    for (variant, mname), t in sorted(tallies.items(), key=lambda kv: (order[kv[0][0]], kv[0][1])):
        if variant == "special":
            continue
        keys = (f"{pct(t.keys - t.key_errors, t.keys)} of {t.keys}"
                + (f" ({t.lost_keys} lost to dropouts)" if t.lost_keys else "")
                if mname == "appliance" else "-")
        lines.append(
            f"| {variant} | {mname} | {pct(t.sound_speech_s, t.sound_s)} | {t.vad.f1:.3f} "
            f"| {t.vad.precision:.3f} / {t.vad.recall:.3f} "
            f"| {np.mean(t.share) * 100:.1f} / {np.max(t.share) * 100:.1f} | {t.intr.f1:.2f} "
            f"| {pct(t.holds_found, t.holds)} "
            f"| {pct(t.hold_dead_s, t.hold_s)} | {keys} |")
    if cpu.get(CHECKED):
        lines += ["", f"The Silero check costs {cpu[CHECKED] / cpu['appliance']:.1f}x the CPU time of "
                  "the appliance's whole call analysis on the same calls (both variants and the "
                  "calls without speech, one thread)."]
    lines += ["", "Calls without speech (telephone variant): speech reported, tones and music "
              "reported as speech, holds found.", "",
              "| method | speech reported (s) | during tones and music | holds found |",
              "|---|---|---|---|"]
    for (variant, mname), t in sorted(tallies.items(), key=lambda kv: kv[0][1]):
        if variant == "special":
            lines.append(f"| {mname} | {t.special_speech_s:.1f} | {pct(t.sound_speech_s, t.sound_s)} "
                         f"| {pct(t.holds_found, t.holds)} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=12)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--artefact-calls", type=int, default=8,
                    help="calls with holds, tones and keys (0: skip that part)")
    ap.add_argument("--methods", default="", help="comma-separated subset of methods")
    args = ap.parse_args()
    wanted = set(filter(None, args.methods.split(",")))
    settings = Settings()
    calls = make_calls(args.calls, args.seed)
    vads = {k: v for k, v in frame_vads(settings).items() if not wanted or k in wanted}
    check = SileroVad() if not wanted or {"appliance", CHECKED} <= wanted else None
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
            if check is not None:
                segs = silero_checked(segs, {"agent": agent, "client": client}, check)
                tallies[(variant, CHECKED)].add(score_result(result_from_segments(segs, n, settings), truth))
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
    if args.artefact_calls:
        publish("artefacts", artefact_report(args.artefact_calls, args.seed, settings, vads, wanted))
    return 0


if __name__ == "__main__":
    sys.exit(main())
