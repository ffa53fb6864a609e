"""The capture soak: a compressed office day of calls against the appliance on its shipped
layout (capture workers behind the SIP front, recognition on), in one run.

    python bench/soak.py [--calls 5000] [--capacity 32] [--load 0.8] [--min-s 1]
                         [--max-s 300] [--mean-s 25] [--no-asr]

Arrivals are Poisson at ``load`` x capacity; lengths exponential above ``--min-s``, capped at
``--max-s``; every kind of call of appliance/simulate/soak.py, with bursts above capacity.
Reports calls offered, answered, recorded with a complete call JSON and refused with
486/503, recordings left open, and the box's process tree (processes, threads, open files,
RSS and PSS) after warm-up, at the end and at its peak, plus the idle footprint before the
first call. Prints Markdown; saves bench/out/soak.md and bench/out/soak.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "tests"))

from accuracy import OUT, publish  # noqa: E402
from siprig import Box, free_port  # noqa: E402

from appliance.simulate.calls import build_call  # noqa: E402
from appliance.simulate.corpus import load_corpus  # noqa: E402
from appliance.simulate.pcap import wav_to_pcap  # noqa: E402
from appliance.simulate.procstats import tree_usage  # noqa: E402
from appliance.simulate.soak import Soak, SoakPlan  # noqa: E402
from appliance.web.tokens import TokenFile  # noqa: E402


def make_calls(work: Path, seconds: float, n: int = 6, music: bool = False
               ) -> list[tuple[Path, Path]]:
    """The callers' audio: real-speech calls; with ``music``, each with 8 s of hold music on
    the agent's side after its first turns (every capture process meets music early)."""
    import soundfile as sf
    from appliance.simulate.signals import music as hold_music
    utts, out = load_corpus(), []
    for k in range(n):
        rng = np.random.default_rng(900 + k)
        audio, _ = build_call(utts, rng, turns=max(2, int(seconds / 5)))
        if music:
            at = min(len(audio) // 3, 16000 * 6)
            held = np.zeros((16000 * 8, 2), np.float32)
            held[:, 0] = hold_music("chords", 8.0, rng, -24.0)
            audio = np.concatenate([audio[:at], held, audio[at:]])
        pcm = np.clip(np.rint(audio * 32767), -32768, 32767).astype(np.int16)
        a, c = work / f"agent{k}.wav", work / f"client{k}.wav"
        sf.write(str(a), pcm[:, 0], 16000, subtype="PCM_16")
        sf.write(str(c), pcm[:, 1], 16000, subtype="PCM_16")
        out.append((a, c))
    return out


def role_table(d: dict) -> list[str]:
    """PSS by part of the box at idle, warm and end, and each part's slope over the second
    half of the run (MB per hour, least squares): a plateau reads near 0, a leak does not."""
    samples = [(t, u.get("pss_by_role") or {}) for t, u in d.get("samples") or []]
    half = samples[len(samples) // 2:]
    roles = sorted({r for name in ("idle", "warm", "end")
                    for r in (d.get(name) or {}).get("pss_by_role", {})})
    out = ["| PSS MB by part | " + " | ".join(roles) + " |", "|---|" + "---|" * len(roles)]
    for name in ("idle", "warm", "end"):
        by = (d.get(name) or {}).get("pss_by_role", {})
        out.append(f"| {name} | " + " | ".join(f"{by.get(r, 0):.0f}" for r in roles) + " |")
    slopes = []
    for r in roles:
        pts = [(t, by[r]) for t, by in half if r in by]
        if len(pts) >= 3:
            t, v = np.array(pts).T
            slopes.append(f"{np.polyfit(t / 3600, v, 1)[0]:+.0f}")
        else:
            slopes.append("")
    out.append("| slope, second half (MB/h) | " + " | ".join(slopes) + " |")
    return out


def backlog_table(d: dict, rows: int = 12) -> list[str]:
    """The recognizer's backlog beside the daemon's PSS and the tree's RSS, at even steps of
    the run: whether the daemon's memory follows the backlog."""
    backlog, samples = d.get("backlog") or [], d.get("samples") or []
    if not backlog or not samples:
        return []
    out = ["| minute | calls waiting for ASR | speech waiting (min) | oldest (min) | "
           "daemon PSS MB | tree RSS MB |", "|---|---|---|---|---|---|"]
    step = max(1, len(backlog) // rows)
    for t, b in backlog[::step] + ([backlog[-1]] if (len(backlog) - 1) % step else []):
        _, u = min(samples, key=lambda s: abs(s[0] - t))
        out.append(f"| {t / 60:.0f} | {b.get('calls', 0)} | {b.get('audio_s', 0) / 60:.0f} | "
                   f"{b.get('oldest_s', 0) / 60:.0f} | "
                   f"{(u.get('pss_by_role') or {}).get('daemon', 0):.0f} | {u.get('rss_mb', 0)} |")
    peak = max(backlog, key=lambda x: x[1].get("calls", 0))
    out += ["", f"Longest backlog: {peak[1].get('calls', 0)} calls at minute {peak[0] / 60:.0f}."]
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=5000)
    p.add_argument("--capacity", type=int, default=32)
    p.add_argument("--load", type=float, default=0.8)
    p.add_argument("--min-s", type=float, default=1.0)
    p.add_argument("--max-s", type=float, default=300.0)
    p.add_argument("--mean-s", type=float, default=25.0)
    p.add_argument("--burst-every", type=int, default=500)
    p.add_argument("--no-asr", action="store_true")
    p.add_argument("--music", action="store_true",
                   help="8 s of hold music in every call (the second opinion on music loads)")
    p.add_argument("--drain-s", type=float, default=3600.0,
                   help="how long to wait after the last call for the box to finish them all")
    args = p.parse_args()
    work = OUT / "soak"
    work.mkdir(parents=True, exist_ok=True)
    calls = make_calls(work, min(args.max_s, 120.0), music=args.music)
    pcap = wav_to_pcap(calls[0][1], work / "speech.pcap")
    box = Box(work / f"box-{int(time.time())}", free_port(), 20000, asr=not args.no_asr,
              max_calls=args.capacity, rtp_range=4 * args.capacity * 3 + 64,
              extra="rtp_timeout_s = 10")
    box.data.mkdir(parents=True, exist_ok=True)
    token = TokenFile(box.data).create("soak", "admin")

    def backlog() -> dict:
        """The recognizer's backlog and the daemon's own memory, as the box reports them."""
        req = urllib.request.Request(f"http://127.0.0.1:{box.web_port}/api/v1/system",
                                     headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())["status"].get("asr_backlog") or {}
    box.start()
    time.sleep(10)                                  # settled: the idle footprint
    idle = tree_usage(box.proc.pid)
    plan = SoakPlan(calls=args.calls, load=args.load, min_s=args.min_s, max_s=args.max_s,
                    mean_s=args.mean_s, burst_every=args.burst_every)
    try:
        soak = Soak(box.addr, box.data, box.proc.pid, args.capacity, work / "callers", calls,
                    pcap, box.results)
        report = soak.run(plan, sample_s=10.0, drain_s=args.drain_s,
                          progress=lambda m: print(m, file=sys.stderr, flush=True),
                          probe=None if args.no_asr else backlog)
    finally:
        rc = box.stop(timeout=300)
    d = report.as_dict()
    d.update(idle=idle.as_dict(), exit_code=rc, plan=vars(plan))
    (OUT / "soak.json").write_text(json.dumps(d, indent=1))
    c = d["counts"]
    lines = [f"# Capture soak: {c['offered']} calls on a {args.capacity}-call box "
             f"({'ASR on' if not args.no_asr else 'ASR off'})", "",
             f"`python bench/soak.py --calls {args.calls} --capacity {args.capacity} "
             f"--load {args.load} --min-s {args.min_s} --max-s {args.max_s} --mean-s {args.mean_s}"
             f"{' --music' if args.music else ''}`",
             "", "| offered | answered | recorded (complete JSON) | refused 486/503 | left open | problems |",
             "|---|---|---|---|---|---|",
             f"| {c['offered']} | {c['answered']} | {c['recorded']} | {c['refused_clean']} | "
             f"{c['open_recordings']} | {len(d['problems'])} |", "",
             "| process tree | processes | threads | open files | RSS MB | PSS MB |",
             "|---|---|---|---|---|---|"]
    for name in ("idle", "warm", "end", "peak"):
        u = d.get(name) or {}
        lines.append(f"| {name} | {u.get('processes', '')} | {u.get('threads', '')} | "
                     f"{u.get('open_files', '')} | {u.get('rss_mb', '')} | {u.get('pss_mb', '')} |")
    lines += ["", *role_table(d), "", *backlog_table(d), "",
              f"Calls put on hold by the caller and recorded: {c['held']}, "
              f"with the SIP hold in their call JSON: {c['held_with_sip_hold']}.",
              "", f"Calls by kind: {c['by_kind']}; statuses: {c['statuses']}; "
              f"{d['elapsed_s'] / 60:.0f} min."]
    if d["problems"]:
        lines += ["", "Problems:", *[f"- {x}" for x in d["problems"][:30]]]
    publish("soak", "\n".join(lines))
    return 0 if not d["problems"] else 1


if __name__ == "__main__":
    sys.exit(main())
