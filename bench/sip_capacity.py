"""Capacity of SIP capture: simultaneous two-stream SIPREC calls with real speech.

    python bench/sip_capacity.py [--dsp 8,16,24,32] [--asr 2,4,6] [--seconds 40]

For each N the appliance daemon (a child process) takes N simultaneous calls from a second
pjsua2 endpoint (another child process, streaming a different real-speech recording per party
and call over loopback RTP, PCMA). Measured per run, over every call:
- frames: what each party's tap delivered vs the call's media time x 50 frames/s, silence the
  worker had to pad, and RTP packets lost or dropped by the jitter buffer;
- memory: the peak resident (RSS) and proportional (PSS) size of the whole process tree;
- fidelity: windowed correlation of each recorded channel with the audio sent on it;
- CPU of the appliance process per call (user + system time / media time / N);
- with ASR on: how long after the hang-up each call's transcript and result were final.
Prints Markdown; saves bench/out/sip_capacity.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT / "tests"))

from accuracy import OUT, publish  # noqa: E402
from siprig import Box, free_port, wait_for  # noqa: E402

from appliance.simulate.audiocheck import windowed_correlation  # noqa: E402
from appliance.simulate.calls import build_call  # noqa: E402
from appliance.simulate.corpus import load_corpus  # noqa: E402
from appliance.simulate.procstats import tree_usage  # noqa: E402
from appliance.system import sealing  # noqa: E402

DISTINCT = 8          # different calls; more simultaneous calls reuse them


def make_calls(seconds: float) -> list[tuple[Path, Path, np.ndarray]]:
    """(client.wav, agent.wav, stereo pcm) per distinct call, about ``seconds`` long."""
    utts = load_corpus()
    out = []
    for k in range(DISTINCT):
        d = OUT / "sip" / f"call{k}"
        d.mkdir(parents=True, exist_ok=True)
        audio, _ = build_call(utts, np.random.default_rng(500 + k), turns=max(2, int(seconds / 5)))
        pcm = np.clip(np.rint(audio * 32767), -32768, 32767).astype(np.int16)
        sf.write(str(d / "agent.wav"), pcm[:, 0], 16000, subtype="PCM_16")
        sf.write(str(d / "client.wav"), pcm[:, 1], 16000, subtype="PCM_16")
        out.append((d / "client.wav", d / "agent.wav", pcm))
    return out


def cpu_seconds(session: int) -> float:
    """CPU time of every process of the appliance (daemon, SIP front, capture workers)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == session:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def run(n: int, calls, asr: bool, work: Path, encrypt: bool = False) -> dict:
    # 4 calls per process (the wheel's PJSUA_MAX_CALLS): 32 calls = 8 capture workers + front
    box = Box(work / f"{'asr' if asr else 'dsp'}{n}", free_port(), 46000, asr=asr,
              rtp_range=4000, max_calls=max(4, -(-n // 4) * 4),
              extra="[privacy]\nencrypt = true" if encrypt else "")
    box.start()
    if encrypt:     # this process reads the sealed results with the box's key
        sealing.configure(sealing.KeyRing.load(box.data / "keys" / "data.key"))
    try:
        if asr:     # the model is loaded when the first call needs it: not part of a call's cost
            time.sleep(2)
        cpu0 = cpu_seconds(box.proc.pid)
        t0 = time.time()
        peak = {"rss_mb": 0.0, "pss_mb": 0.0}
        sampling = threading.Event()

        def sample() -> None:      # the whole process tree, while the calls stream
            while not sampling.wait(2.0):
                u = tree_usage(box.proc.pid)
                peak["rss_mb"] = max(peak["rss_mb"], u.rss_mb)
                peak["pss_mb"] = max(peak["pss_mb"], u.pss_mb)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        args = [f"--call={calls[i % DISTINCT][0]},{calls[i % DISTINCT][1]}" for i in range(n)]
        # the calling side has the same limit: one caller process per 4 calls
        srcs = [subprocess.Popen([sys.executable, "-m", "appliance.simulate.src", box.uri,
                                  "--port", str(free_port()), "--rtp-port", str(30000 + 400 * k),
                                  *args[k * 4:(k + 1) * 4]], stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True)
                for k in range(-(-n // 4))]
        outs = [p.communicate(timeout=600)[0] for p in srcs]
        hung_up = max(float(line.split()[3]) for out in outs for line in out.splitlines()
                      if line.startswith("hung up at"))
        connected = sum(int(line.split()[1].split("/")[0]) for out in outs
                        for line in out.splitlines() if line.startswith("connected"))
        done = wait_for(lambda: len(box.results()) >= n, 900, step=0.5)
        sampling.set()
        sampler.join()
        cpu1 = cpu_seconds(box.proc.pid)
        results = box.results()
        finals = sorted(p.stat().st_mtime for p in (box.data / "calls").glob("*/*[0-9a-f].json"))
    finally:
        box.stop()
    media = [r["call"]["extra"]["media"]["seconds"] for r in results]
    lost = padded = rtp_lost = jb_drops = 0
    corr = []
    for k, r in enumerate(results):
        cap = r["call"]["extra"]["capture"]
        expected = r["call"]["extra"]["media"]["seconds"] * 50
        for party in ("agent", "client"):
            lost += max(0, int(expected - cap["frames"][party]) - 2)
            padded += cap["padded_frames"].get(party, 0)
        for st in r["call"]["extra"]["media"]["streams"].values():
            rtp_lost += st["lost"]
            jb_drops += st["jb_lost"] + st["jb_discarded"] + st["discarded"]
        if k < 4:   # fidelity on a sample: correlation is the slow part of the bench
            rec, _ = sf.read(sealing.audio_source(box.data / "calls" / time.strftime(
                "%Y-%m-%d", time.localtime(r["call"]["started_at"])) / r["call"]["extra"]["recording"]),
                dtype="float32")
            # which of the distinct calls this was: the one its agent channel matches
            sent = max((c[2] for c in calls), key=lambda pcm: windowed_correlation(
                rec[: 16000 * 10, 0], pcm[: 16000 * 10, 0].astype(np.float32) / 32768))
            sent = sent.astype(np.float32) / 32768
            corr.append(min(windowed_correlation(rec[:, ch], sent[:, ch]) for ch in (0, 1)))
    wall = max(media) if media else 0.0
    return {"n": n, "asr": asr, "connected": f"{connected}/{n}", "finalized": len(results), "done": done,
            "media_s": round(float(np.mean(media)), 1) if media else 0,
            "lost_frames": lost, "padded_frames": padded, "rtp_lost": rtp_lost, "jb_drops": jb_drops,
            "min_corr": round(min(corr), 3) if corr else None,
            "cpu_per_call_pct": round(100 * (cpu1 - cpu0) / max(wall, 1e-9) / n, 2),
            "box_cpu_pct": round(100 * (cpu1 - cpu0) / max(wall, 1e-9), 1),
            "lag_s": round(max(finals) - hung_up, 1) if finals else None,
            "peak_rss_mb": round(peak["rss_mb"]), "peak_pss_mb": round(peak["pss_mb"]),
            "elapsed_s": round(time.time() - t0, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dsp", default="8,16,24,32", help="simultaneous calls, capture + DSP")
    ap.add_argument("--asr", default="2,4,6", help="simultaneous calls with live ASR")
    ap.add_argument("--seconds", type=float, default=40.0, help="approximate call length")
    ap.add_argument("--encrypt", action="store_true", help="[privacy] encrypt on (sealed at hang-up)")
    args = ap.parse_args()
    calls = make_calls(args.seconds)
    work = OUT / "sip" / "runs"
    rows = []
    for spec, asr in ((args.dsp, False), (args.asr, True)):
        for n in [int(x) for x in spec.split(",") if x]:
            row = run(n, calls, asr, work / str(int(time.time())), args.encrypt)
            row["encrypt"] = args.encrypt
            print(json.dumps(row), flush=True)
            rows.append(row)
    lines = ["## SIP capture capacity (two-stream SIPREC calls, real speech, PCMA, loopback)", "",
             f"Calls of about {args.seconds:.0f} s; the appliance and the calling endpoint share "
             f"the machine's {os.cpu_count()} cores. `python bench/sip_capacity.py"
             f"{' --encrypt' if args.encrypt else ''}`", "",
             "| calls | ASR | finalized | frames lost | padded | RTP lost | jitter-buffer drops | "
             "min corr | CPU/call | appliance CPU | result after hang-up | peak RSS / PSS (MB) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['n']} | {'on' if r['asr'] else 'off'} | {r['finalized']}/{r['n']} | "
                     f"{r['lost_frames']} | {r['padded_frames']} | {r['rtp_lost']} | {r['jb_drops']} | "
                     f"{r['min_corr']} | "
                     f"{r['cpu_per_call_pct']} % | {r['box_cpu_pct']} % | {r['lag_s']} s | "
                     f"{r['peak_rss_mb']} / {r['peak_pss_mb']} |")
    publish("sip_capacity", "\n".join(lines))


if __name__ == "__main__":
    main()
