"""Redaction of personal numbers: precision and recall per kind on a labelled set.

    python bench/redaction.py [--cases 2000] [--seed 11]

The set (appliance/simulate/numbers.py) is transcript lines as a recognizer writes them:
cards, phone numbers, passport, SNILS and INN numbers dictated in digits, digit words or
pairs ("сорок два"), Russian and English, with or without a leading word, split across
pauses; and lines whose numbers must stay (amounts, dates, times, counts, order numbers).
Every kind is switched on. Then Russian cases said by Festival's Russian voice and
recognised by the box (needs Debian's festival and festvox-ru, as the demo). Prints
Markdown; saves bench/out/redaction.md.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from accuracy import publish  # noqa: E402

from appliance.analysis.redaction import KINDS, Redactor  # noqa: E402
from appliance.simulate.numbers import cases  # noqa: E402


def evaluate(n: int, seed: int) -> dict[str, dict[str, float]]:
    red = Redactor(KINDS)
    tp, fp, fn = Counter(), Counter(), Counter()
    for case in cases(n, seed):
        lines = [{"party": "client", "start": 2.0 * i, "end": 2.0 * i + 1.5, "text": t}
                 for i, t in enumerate(case.lines)]
        _, found = red.apply(lines)
        kinds = {f["kind"] for f in found}
        if case.kind is not None and case.kind in kinds:
            tp[case.kind] += 1
        elif case.kind is not None:
            fn[case.kind] += 1
        for k in kinds - {case.kind}:
            fp[k] += 1
    out = {}
    for k in KINDS[:-1]:
        p = tp[k] / max(1, tp[k] + fp[k])
        r = tp[k] / max(1, tp[k] + fn[k])
        out[k] = {"precision": p, "recall": r, "n": tp[k] + fn[k], "fp": fp[k]}
    return out


def spoken(n: int, seed: int) -> dict[str, dict[str, float]]:
    """Russian cases said by Festival's Russian voice (recordings of a real speaker, cut and
    joined), through the telephone band and the box's recognizer, then redacted."""
    from asr import telephone

    from appliance.asr.filters import clean_transcript
    from appliance.asr.model import find_model
    from appliance.asr.recognizer import load_recognizer
    from appliance.simulate.demo import default_cache_dir
    from appliance.simulate.voice import render
    chosen = [c for c in cases(n * 4, seed + 1) if c.lang == "ru"][:n]
    rec = load_recognizer(find_model(), "ru", "int8", threads=2)
    red = Redactor(KINDS)
    tp, fp, fn = Counter(), Counter(), Counter()
    for case in chosen:
        audio = render([(t, 1.0) for t in case.lines], default_cache_dir() / "redaction")
        texts = rec.transcribe_batch([telephone(a) for a in audio])
        lines = [{"party": "client", "start": 2.0 * i, "end": 2.0 * i + 1.5,
                  "text": clean_transcript(t)} for i, t in enumerate(texts)]
        kinds = {f["kind"] for f in red.apply(lines)[1]}
        if case.kind is not None:
            (tp if case.kind in kinds else fn)[case.kind] += 1
        for k in kinds - {case.kind}:
            fp[k] += 1
    return {k: {"precision": tp[k] / max(1, tp[k] + fp[k]), "recall": tp[k] / max(1, tp[k] + fn[k]),
                "n": tp[k] + fn[k], "fp": fp[k]} for k in KINDS[:-1]}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--spoken", type=int, default=80, help="cases said and recognised")
    args = ap.parse_args()
    res = evaluate(args.cases, args.seed)
    lines = [f"Redaction on {args.cases} labelled transcript cases (seed {args.seed}), every "
             "kind switched on. `python bench/redaction.py`", "",
             "| kind | cases | precision | recall | false masks |", "|---|---|---|---|---|"]
    for k, m in res.items():
        lines.append(f"| {k} | {m['n']} | {m['precision']:.3f} | {m['recall']:.3f} | {m['fp']} |")
    if args.spoken:
        said = spoken(args.spoken, args.seed)
        lines += ["", f"The same kinds of Russian cases ({args.spoken}) said by Festival's Russian "
                  "voice, through the telephone band and the box's recognizer:", "",
                  "| kind | cases | precision | recall | false masks |", "|---|---|---|---|---|"]
        for k, m in said.items():
            lines.append(f"| {k} | {m['n']} | {m['precision']:.3f} | {m['recall']:.3f} | {m['fp']} |")
    publish("redaction", "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
