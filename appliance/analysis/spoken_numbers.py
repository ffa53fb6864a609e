"""Numbers as people dictate them, in transcripts: digits and number words, Russian and English.

"четыре два семь шесть", "сорок два семьдесят шесть", "4276 38 00", "forty two, oh, seven",
"double five" all become digit strings, each with the words it came from, so a redaction can
replace exactly those words. Dictation is read group by group: a word that cannot continue
the number being built ("два" after "сорок" continues it, "сорок" after "два" does not)
starts the next group, and the groups' digits are joined.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_UNITS = {
    # Russian (every gender and case a dictated digit is said in)
    "ноль": 0, "нуль": 0, "один": 1, "одна": 1, "одно": 1, "раз": 1, "два": 2, "две": 2,
    "три": 3, "четыре": 4, "пять": 5, "шесть": 6, "семь": 7, "восемь": 8, "девять": 9,
    # English
    "zero": 0, "oh": 0, "o": 0, "nil": 0, "one": 1, "two": 2, "three": 3, "four": 4,
    "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9,
}
_TEENS = {
    "десять": 10, "одиннадцать": 11, "двенадцать": 12, "тринадцать": 13, "четырнадцать": 14,
    "пятнадцать": 15, "шестнадцать": 16, "семнадцать": 17, "восемнадцать": 18,
    "девятнадцать": 19,
    "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
}
_TENS = {
    "двадцать": 20, "тридцать": 30, "сорок": 40, "пятьдесят": 50, "шестьдесят": 60,
    "семьдесят": 70, "восемьдесят": 80, "девяносто": 90,
    "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70,
    "eighty": 80, "ninety": 90,
}
_HUNDREDS = {
    "сто": 100, "двести": 200, "триста": 300, "четыреста": 400, "пятьсот": 500,
    "шестьсот": 600, "семьсот": 700, "восемьсот": 800, "девятьсот": 900,
    "hundred": 100,
}
_THOUSAND = {"тысяча", "тысячи", "тысяч", "thousand"}
# which orders may follow which inside one group: "сто двадцать три", "сорок два", but not
# "одиннадцать два" (11, 2) nor "два два" (2, 2)
_CONTINUES = {4: (0, 1, 2, 3), 3: (0, 1, 2), 2: (0,)}
_REPEAT = {"double": 2, "triple": 3}
# words that may sit inside a dictated number without ending it
_FILLERS = {"и", "and", "э", "ээ", "эм", "мм", "так", "значит", "дальше", "далее", "then",
            "um", "uh", "plus", "плюс", "номер", "серия", "number"}

_TOKEN = re.compile(r"\+?\d+|[^\W\d_]+|[^\s\w]", re.UNICODE)


@dataclass
class Token:
    text: str
    start: int            # character offsets in the line
    end: int


@dataclass
class NumberRun:
    """A dictated number: its digits and the character span of the words it came from."""

    digits: str
    start: int
    end: int
    plus: bool = False    # it began with '+' ("+7 ...", "плюс семь ...")


def tokens(text: str) -> list[Token]:
    return [Token(m.group(0), m.start(), m.end()) for m in _TOKEN.finditer(text)]


def _order(word: str) -> int:
    """0 units, 1 teens, 2 tens, 3 hundreds, 4 thousand; -1 not a number word."""
    if word in _UNITS:
        return 0
    if word in _TEENS:
        return 1
    if word in _TENS:
        return 2
    if word in _HUNDREDS:
        return 3
    if word in _THOUSAND:
        return 4
    return -1


def number_runs(text: str) -> list[NumberRun]:
    """Every run of dictated digits and number words in ``text``, in order."""
    toks = tokens(text)
    runs: list[NumberRun] = []
    i = 0
    while i < len(toks):
        run = _read_run(toks, i)
        if run is None:
            i += 1
            continue
        number, i = run
        runs.append(number)
    return runs


def _is_number(tok: Token) -> bool:
    w = tok.text.lower().replace("ё", "е")
    return tok.text.lstrip("+").isdigit() or _order(w) >= 0 or w in _REPEAT


def _read_run(toks: list[Token], i: int) -> tuple[NumberRun, int] | None:
    """A run starting at token ``i`` (separators and fillers allowed between its parts)."""
    if not _is_number(toks[i]) and not (toks[i].text.lower() in ("плюс", "plus")
                                         and i + 1 < len(toks) and _is_number(toks[i + 1])):
        return None
    plus = toks[i].text.startswith("+") or toks[i].text.lower() in ("плюс", "plus")
    digits: list[str] = []
    group: list[int] = []         # values of the group being built
    last_order = 99
    repeat = 1
    start, end = toks[i].start, toks[i].end
    j = i

    def close_group() -> None:
        nonlocal last_order
        if group:
            digits.append(str(sum(group)))
            group.clear()
        last_order = 99

    while j < len(toks):
        tok = toks[j]
        raw = tok.text
        word = raw.lower().replace("ё", "е")
        if raw.lstrip("+").isdigit():
            close_group()
            digits.append(raw.lstrip("+"))
            end = tok.end
        elif word in _REPEAT:
            close_group()
            repeat = _REPEAT[word]
            end = tok.end
        elif (order := _order(word)) >= 0:
            value = (_UNITS.get(word) if order == 0 else _TEENS.get(word) if order == 1 else
                     _TENS.get(word) if order == 2 else _HUNDREDS.get(word) if order == 3 else 1000)
            assert value is not None
            if order == 4:                      # "две тысячи": the group so far, times 1000
                base = sum(group) or 1
                group[:] = [base * 1000]
                last_order = 4
            elif word == "hundred" and group:   # "two hundred"
                group[:] = [sum(group) * 100]
                last_order = 3
            elif group and value and order in _CONTINUES.get(last_order, ()):
                group.append(value)             # "сорок два", "сто двадцать"
                last_order = order
            else:
                close_group()
                group.append(value)
                last_order = order
            if order == 0 and repeat > 1:       # "double five": 55
                close_group()
                digits.append(str(value) * (repeat - 1))
                repeat = 1
            end = tok.end
        elif word in _FILLERS or raw in "-–—,.:()/" or raw == "+":
            # a pause in dictation; the run goes on only if a number follows
            if j + 1 < len(toks) and _is_number(toks[j + 1]):
                close_group()
                j += 1
                continue
            break
        else:
            break
        j += 1
    close_group()
    text = "".join(digits)
    if not text:
        return None
    return NumberRun(text, start, end, plus), j
