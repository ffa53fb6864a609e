"""Personal data out of transcripts, before tags, the store, the panel, search and MQTT see them.

Payment cards (13-19 digits passing the Luhn check, any other run of 12-20 digits that is no
phone number or named document, or 8 digits or more said after the word "card"), phone
numbers, passport numbers, SNILS and INN (with their check digits), and e-mail addresses
are replaced by a typed mask (``[card]``, ``[phone]`` ...). Numbers are
read as people dictate them (``spoken_numbers.py``): digits or number words, Russian or
English, and a number dictated across pauses (one transcript line per group of digits) is
joined back before it is judged. Each replacement is kept as ``{kind, party, start, end}``
(the line's time span) for the timeline and for muting the recording.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .spoken_numbers import NumberRun, number_runs

KINDS = ("card", "phone", "passport", "snils", "inn", "email")
JOIN_GAP_S = 3.0                 # lines of one party this close can continue a number
MAX_JOINED_LINES = 5

_CONTEXT = {
    "card": re.compile(r"карт|card|visa|виза|мастеркард|mastercard|мир\b", re.I),
    "passport": re.compile(r"паспорт|passport|сери[яюи]", re.I),
    "snils": re.compile(r"снилс|snils|страхов", re.I),
    "inn": re.compile(r"\bинн\b|\binn\b|налогов", re.I),
    "phone": re.compile(r"телефон|позвон|звонит|перезвон|phone|call me|mobile|мобильн", re.I),
    # numbers that are not a person's: orders, contracts, invoices, parcels
    "other": re.compile(r"заказ|договор|счет|счёт|накладн|трек|посылк|артикул|order|invoice|"
                        r"contract|tracking|parcel", re.I),
}
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.U)
_SPOKEN_EMAIL = re.compile(
    r"\b[\w.-]+\s+(?:собака|собачка|at)\s+[\w-]+(?:\s+(?:точка|dot)\s+[\w-]+)+", re.U | re.I)


def luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def snils_ok(digits: str) -> bool:
    if len(digits) != 11:
        return False
    total = sum(int(d) * (9 - i) for i, d in enumerate(digits[:9]))
    check = total % 101
    return (0 if check == 100 else check) == int(digits[9:])


def inn_ok(digits: str) -> bool:
    def ctl(ds: str, weights: list[int]) -> int:
        return sum(int(d) * w for d, w in zip(ds, weights)) % 11 % 10
    if len(digits) == 10:
        return ctl(digits, [2, 4, 10, 3, 5, 9, 4, 6, 8]) == int(digits[9])
    if len(digits) == 12:
        return (ctl(digits, [7, 2, 4, 10, 3, 5, 9, 4, 6, 8]) == int(digits[10])
                and ctl(digits, [3, 7, 2, 4, 10, 3, 5, 9, 4, 6, 8]) == int(digits[11]))
    return False


def classify(digits: str, context: str, plus: bool = False) -> str | None:
    """What a dictated number is (None: nothing personal). ``context``: the words said
    before it in the same stretch of speech."""
    n = len(digits)
    said = {k for k, rx in _CONTEXT.items() if rx.search(context)}
    if "other" in said and not said & {"card", "phone", "passport", "snils", "inn"}:
        return None
    # A card misheard by a digit or two fails the Luhn check: any long run of digits that is
    # not a phone number or a named document is masked as a card (orders and contracts are
    # named, and were set aside above). Privacy first: a masked order number costs less.
    phone_like = plus and 8 <= n <= 15 or n == 11 and digits[0] in "78" or n == 10 and digits[0] == "9"
    if 13 <= n <= 19 and luhn(digits) or "card" in said and n >= 8:
        return "card"
    if 12 <= n <= 20 and not phone_like and not said & {"snils", "inn", "passport", "phone"}:
        return "card"           # a card the recognizer misheard a digit or two of
    if "snils" in said and n == 11 or n == 11 and snils_ok(digits) and "phone" not in said \
            and digits[0] not in "78":
        return "snils"
    if "inn" in said and n in (10, 12) or n == 12 and inn_ok(digits):
        return "inn"
    if "passport" in said and n == 10:
        return "passport"
    if phone_like:
        return "phone"
    if "phone" in said and 7 <= n <= 12:
        return "phone"
    return None


@dataclass
class _Piece:
    line: int
    run: NumberRun


class Redactor:
    """Masks the kinds it is given in a transcript (a list of {party, start, end, text})."""

    def __init__(self, kinds: list[str] | tuple[str, ...]) -> None:
        unknown = set(kinds) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown redaction kinds {sorted(unknown)}; known: {KINDS}")
        self.kinds = set(kinds)

    def apply(self, transcript: list[dict[str, Any]]) -> tuple[list[dict[str, Any]],
                                                                list[dict[str, Any]]]:
        """The transcript with masks, and what was masked."""
        lines = [dict(t) for t in transcript]
        spans: dict[int, list[tuple[int, int, str]]] = {}     # line -> (start, end, kind)
        for chain in self._chains(lines):
            digits = "".join(p.run.digits for p in chain)
            first = chain[0]
            context = lines[first.line]["text"][:first.run.start]
            if first.line > 0 and lines[first.line - 1]["party"] == lines[first.line]["party"]:
                context = lines[first.line - 1]["text"] + " " + context
            kind = classify(digits, context, first.run.plus)
            if kind is None or kind not in self.kinds:
                continue
            for p in chain:
                spans.setdefault(p.line, []).append((p.run.start, p.run.end, kind))
        if "email" in self.kinds:
            for i, line in enumerate(lines):
                for rx in (_EMAIL, _SPOKEN_EMAIL):
                    for m in rx.finditer(line["text"]):
                        spans.setdefault(i, []).append((m.start(), m.end(), "email"))
        found = []
        for i, cuts in spans.items():
            text = lines[i]["text"]
            for start, end, kind in sorted(set(cuts), reverse=True):
                text = text[:start] + f"[{kind}]" + text[end:]
            lines[i]["text"] = text
            for kind in sorted({k for _, _, k in cuts}):
                found.append({"kind": kind, "party": lines[i]["party"],
                              "start": lines[i]["start"], "end": lines[i]["end"]})
        found.sort(key=lambda r: (r["start"], r["party"]))
        return lines, found

    @staticmethod
    def _chains(lines: list[dict[str, Any]]) -> list[list[_Piece]]:
        """Number runs, those dictated across consecutive lines of a party joined: a line
        that ends with a number continues into the next line of the same party that starts
        with one, less than JOIN_GAP_S later."""
        runs = {i: number_runs(t["text"]) for i, t in enumerate(lines)}
        chains: list[list[_Piece]] = []
        taken: set[tuple[int, int]] = set()
        last_of_party: dict[str, int] = {}
        order = sorted(range(len(lines)), key=lambda i: (lines[i]["start"], i))
        prev_line: dict[int, int | None] = {}
        for i in order:
            party = lines[i]["party"]
            prev_line[i] = last_of_party.get(party)
            last_of_party[party] = i
        next_line = {p: i for i, p in prev_line.items() if p is not None}
        for i in order:
            for k, run in enumerate(runs[i]):
                if (i, k) in taken:
                    continue
                chain = [_Piece(i, run)]
                taken.add((i, k))
                line, idx = i, k
                while len(chain) < MAX_JOINED_LINES:
                    text = lines[line]["text"]
                    if idx != len(runs[line]) - 1 or text[run.end:].strip(" .,;:!?-—"):
                        break           # the number does not end its line
                    nxt = next_line.get(line)
                    if nxt is None or not runs[nxt] or \
                            lines[nxt]["start"] - lines[line]["end"] > JOIN_GAP_S or \
                            lines[nxt]["text"][:runs[nxt][0].start].strip(" .,;:!?-—"):
                        break           # the next line does not start with a number
                    line, idx, run = nxt, 0, runs[nxt][0]
                    chain.append(_Piece(line, run))
                    taken.add((line, 0))
                chains.append(chain)
        return chains
