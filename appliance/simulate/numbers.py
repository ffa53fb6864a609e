"""Spoken personal numbers with exact labels: the redaction benchmark's and tests' test set.

Transcript lines as a recognizer writes them: digits in groups, digit words, pairs said as
numbers ("сорок два"), Russian and English, with or without a leading word ("номер карты"),
split across lines at pauses; and numbers that must stay: amounts, dates, times, order
numbers, counts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from ..analysis.redaction import luhn, snils_ok, inn_ok

RU_UNITS = ["ноль", "один", "два", "три", "четыре", "пять", "шесть", "семь", "восемь", "девять"]
EN_UNITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
RU_TEENS = ["десять", "одиннадцать", "двенадцать", "тринадцать", "четырнадцать", "пятнадцать",
            "шестнадцать", "семнадцать", "восемнадцать", "девятнадцать"]
EN_TEENS = ["ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen",
            "seventeen", "eighteen", "nineteen"]
RU_TENS = ["", "", "двадцать", "тридцать", "сорок", "пятьдесят", "шестьдесят", "семьдесят",
           "восемьдесят", "девяносто"]
EN_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


@dataclass
class Case:
    lines: list[str]           # one party's consecutive transcript lines
    kind: str | None           # what must be masked (None: nothing)
    lang: str


def _pair(n: int, lang: str) -> str:
    units, teens, tens = ((RU_UNITS, RU_TEENS, RU_TENS) if lang == "ru"
                          else (EN_UNITS, EN_TEENS, EN_TENS))
    if n < 10:
        return f"{units[0]} {units[n]}" if lang == "ru" else f"oh {units[n]}"
    if n < 20:
        return teens[n - 10]
    return tens[n // 10] + ("" if n % 10 == 0 else " " + units[n % 10])


def say_group(group: str, lang: str, rng: random.Random) -> str:
    """A group of digits as someone dictates it."""
    style = rng.choice(["digits", "words", "pairs"])
    units = RU_UNITS if lang == "ru" else EN_UNITS
    if style == "digits":
        return group
    if style == "words" or len(group) % 2:
        return " ".join(units[int(d)] for d in group)
    return " ".join(_pair(int(group[i:i + 2]), lang) for i in range(0, len(group), 2))


def _split(digits: str, sizes: list[int]) -> list[str]:
    out, i = [], 0
    for s in sizes:
        out.append(digits[i:i + s])
        i += s
    if i < len(digits):
        out.append(digits[i:])
    return [g for g in out if g]


def _lines(groups: list[str], lang: str, rng: random.Random, lead: str) -> list[str]:
    said = [say_group(g, lang, rng) for g in groups]
    cuts = sorted(rng.sample(range(1, len(said)), k=min(len(said) - 1, rng.randint(0, 3)))) \
        if len(said) > 1 else []
    lines, last = [], 0
    for c in cuts + [len(said)]:
        lines.append(", ".join(said[last:c]))
        last = c
    lines[0] = (lead + " " + lines[0]).strip()
    return lines


def card(rng: random.Random) -> str:
    n = rng.choice([16, 16, 16, 16, 15, 18, 19, 13])
    body = "".join(str(rng.randint(0, 9)) for _ in range(n - 1))
    return body + next(d for d in "0123456789" if luhn(body + d))


def snils(rng: random.Random) -> str:
    while True:
        body = "".join(str(rng.randint(0, 9)) for _ in range(9))
        total = sum(int(d) * (9 - i) for i, d in enumerate(body)) % 101
        s = body + f"{0 if total == 100 else total:02d}"
        if snils_ok(s) and s[0] not in "78":
            return s


def inn(rng: random.Random) -> str:
    while True:
        s = "".join(str(rng.randint(0, 9)) for _ in range(12))
        if inn_ok(s):
            return s


def cases(n: int, seed: int = 11) -> list[Case]:
    """``n`` labelled cases: about 40 % cards, the other kinds, and numbers to keep."""
    rng = random.Random(seed)
    out: list[Case] = []
    for _ in range(n):
        lang = rng.choice(["ru", "ru", "en"])
        roll = rng.random()
        if roll < 0.4:
            digits = card(rng)
            if rng.random() < 0.05:     # the recognizer got one digit wrong
                i = rng.randrange(len(digits))
                digits = digits[:i] + str((int(digits[i]) + rng.randint(1, 9)) % 10) + digits[i + 1:]
            lead = rng.choice(["", "номер карты", "моя карта", "карта", "вот"] if lang == "ru"
                              else ["", "card number", "my card is", "it's"])
            sizes = rng.choice([[4, 4, 4, 4, 4], [2] * 10, [4, 6, 5, 4], [1] * 19])
            out.append(Case(_lines(_split(digits, sizes), lang, rng, lead), "card", lang))
        elif roll < 0.55:
            digits = "9" + "".join(str(rng.randint(0, 9)) for _ in range(9))
            prefix = rng.choice(["+7", "8", ""])
            lead = rng.choice(["", "мой телефон", "номер", "перезвоните на"] if lang == "ru"
                              else ["", "my phone is", "call me on"])
            groups = [prefix.lstrip("+")] if prefix else []
            groups += _split(digits, [3, 3, 2, 2])
            lines = _lines(groups, lang, rng, lead)
            if prefix == "+7":
                lines[0] = lines[0].replace(lead + " 7", lead + " +7", 1) if lead else \
                    ("+" + lines[0] if lines[0].startswith("7") else "плюс " + lines[0])
            out.append(Case(lines, "phone", lang))
        elif roll < 0.62:
            digits = "".join(str(rng.randint(0, 9)) for _ in range(10))
            out.append(Case(_lines(_split(digits, [2, 2, 6]), "ru", rng, "паспорт серия"),
                            "passport", "ru"))
        elif roll < 0.68:
            out.append(Case(_lines(_split(snils(rng), [3, 3, 3, 2]), "ru", rng, "снилс"),
                            "snils", "ru"))
        elif roll < 0.72:
            out.append(Case(_lines(_split(inn(rng), [4, 4, 4]), "ru", rng, "мой инн"),
                            "inn", "ru"))
        elif roll < 0.8:
            long = "".join(str(rng.randint(0, 9)) for _ in range(rng.randint(12, 20)))
            lead = rng.choice(["номер заказа", "договор номер", "трек номер", "счёт"]
                              if lang == "ru" else ["order number", "tracking number", "invoice"])
            out.append(Case(_lines(_split(long, [4, 4, 4, 4, 4]), lang, rng, lead), None, lang))
        else:
            out.append(Case([_keep(rng, lang)], None, lang))
    return out


def _keep(rng: random.Random, lang: str) -> str:
    """A line with numbers that are not personal."""
    n = rng.randint(1, 999)
    k = rng.choice(["amount", "date", "time", "count", "order", "year"])
    if lang == "en":
        return {"amount": f"that will be {n * 100} dollars", "date": f"on the {rng.randint(1, 28)}th",
                "time": f"at {rng.randint(1, 12)} {rng.randint(10, 59)}",
                "count": f"we have {n} units", "order": f"order {rng.randint(10**5, 10**7)}",
                "year": f"since {rng.randint(1990, 2026)}"}[k]
    return {"amount": f"сумма {n * 100} рублей", "date": f"до {rng.randint(1, 28)} числа",
            "time": f"в {rng.randint(8, 20)} {rng.randint(10, 59)}",
            "count": f"нужно {_pair(n % 100, 'ru')} штук",
            "order": f"заказ номер {rng.randint(10**5, 10**7)}",
            "year": f"с {rng.randint(1990, 2026)} года"}[k]
