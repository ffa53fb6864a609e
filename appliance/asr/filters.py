"""Whisper's hallucinations: what it writes on noise, music or silence instead of speech."""

from __future__ import annotations

import re

_BRACKETED = re.compile(r"[\[\(（【*♪][^\]\)）】*♪]*[\]\)）】*♪]")
# Stock lines learnt from subtitle files; never said on a sales call.
_STOCK = (
    "продолжение следует", "субтитры", "редактор субтитров", "корректор", "спасибо за просмотр",
    "подписывайтесь на канал", "ставьте лайк", "до новых встреч", "amara.org",
    "thank you for watching", "thanks for watching", "please subscribe", "subtitles by",
    "like and subscribe",
)
_WORD = re.compile(r"\w+", re.UNICODE)


def _norm(text: str) -> str:
    return " ".join(_WORD.findall(text.lower().replace("ё", "е")))


def _collapse_loops(text: str) -> str:
    """A phrase of 1-12 words repeated three or more times in a row keeps two copies:
    'да да да да да' -> 'да да' (Whisper's decoding loops). Words compare without case and
    punctuation: a loop's copies differ by a comma."""
    words = text.split()
    for n in range(1, 13):
        keys = [_norm(w) for w in words]
        out, i = [], 0
        while i < len(words):
            chunk = keys[i:i + n]
            reps = 1
            while len(chunk) == n and keys[i + reps * n: i + (reps + 1) * n] == chunk:
                reps += 1
            if reps >= 3:
                out.extend(words[i:i + 2 * n])
                i += reps * n
            else:
                out.append(words[i])
                i += 1
        words = out
    return " ".join(words)


def clean_transcript(text: str) -> str:
    """Text with Whisper's sound-event tags, stock subtitle lines and loops removed ('' if
    nothing is left that was said)."""
    text = _BRACKETED.sub(" ", text).strip()
    norm = _norm(text)
    if not norm or any(s in norm for s in _STOCK):
        return ""
    return _collapse_loops(text)
