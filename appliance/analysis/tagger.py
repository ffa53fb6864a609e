"""Dictionary tags on a transcript: stop words, profanity, complaints, greetings, objections...

Dictionaries are TOML data files (``appliance/dictionaries/<lang>/*.toml`` built in, plus the
user's in ``<data_dir>/dictionaries/``). An entry is a word or phrase; each word matches by
Snowball stem, so inflected forms match ("жалобу", "жалобой" -> "жалоба"); when it ends in
``*``, by prefix of the word ("пизд*"); when it starts with ``=``, only in exactly that form
("=подумаю": stemming would also match "подумать"). Each entry has a party scope (agent, client,
any), a severity (1-3) and an alert flag, defaulting to the file's.

Matching is indexed by an entry's first word (stem table plus a character trie of
prefixes), so the cost per transcript word does not grow with the number of entries.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Iterable


STEM, PREFIX, EXACT = 0, 1, 2
WORD = re.compile(r"[\w'’-]+", re.UNICODE)
STEMMERS = {"ru": "russian", "en": "english"}


def _stemmer(language: str) -> Any:
    # imported on first use: the package loads all its languages (~4 MB), and a capture
    # worker, which never tags, imports this module
    import snowballstemmer

    return snowballstemmer.stemmer(STEMMERS[language])
PARTIES = ("agent", "client", "any")


class DictionaryError(ValueError):
    """A dictionary file is malformed; the message names the file and the entry."""


@dataclass(frozen=True)
class Entry:
    dictionary: str
    tag: str
    language: str
    phrase: str
    words: tuple[tuple[int, str], ...]     # (STEM, stem) | (PREFIX, prefix) | (EXACT, form)
    party: str
    severity: int
    alert: bool


def normalize(word: str) -> str:
    return word.lower().replace("ё", "е")


class Tagger:
    """Matches a set of dictionaries against transcript segments."""

    def __init__(self, entries: Iterable[Entry]) -> None:
        self.entries = list(entries)
        self._stemmers = {lang: _stemmer(lang)
                          for lang in {e.language for e in self.entries}}
        self._by_stem: dict[tuple[str, str], list[Entry]] = {}
        self._by_form: dict[str, list[Entry]] = {}
        self._trie: dict[str, Any] = {}
        for e in self.entries:
            kind, first = e.words[0]
            if kind == PREFIX:
                node = self._trie
                for ch in first:
                    node = node.setdefault(ch, {})
                node.setdefault("", []).append(e)
            elif kind == EXACT:
                self._by_form.setdefault(first, []).append(e)
            else:
                self._by_stem.setdefault((e.language, first), []).append(e)

    def candidates(self, word: str, stems: dict[str, str]) -> list[Entry]:
        found = [e for lang, st in stems.items() for e in self._by_stem.get((lang, st), ())]
        found += self._by_form.get(word, ())
        node = self._trie
        for ch in word:
            node = node.get(ch)          # type: ignore[assignment]
            if node is None:
                break
            found.extend(node.get("", ()))
        return found

    def tag(self, transcript: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Tags found in [{party, start, end, text}] as [{tag, dictionary, party, at, phrase,
        text, severity, alert}]."""
        out = []
        for seg in transcript:
            spans = [m for m in WORD.finditer(seg["text"])]
            words = [normalize(m.group()) for m in spans]
            stems = {lang: st.stemWords(words) for lang, st in self._stemmers.items()}
            found: list[tuple[int, int, Entry]] = []
            for i in range(len(words)):
                for e in self.candidates(words[i], {lang: s[i] for lang, s in stems.items()}):
                    if e.party not in ("any", seg["party"]) or i + len(e.words) > len(words):
                        continue
                    own = stems[e.language]
                    if all(_word_matches(kind, w, words[i + k], own[i + k])
                           for k, (kind, w) in enumerate(e.words)):
                        found.append((i, i + len(e.words), e))
            for i, j, e in found:
                # inside a longer match of the same dictionary: counted once, as the longer
                if any(d.dictionary == e.dictionary and a <= i and j <= b and (a, b) != (i, j)
                       for a, b, d in found):
                    continue
                out.append({"tag": e.tag, "dictionary": e.dictionary, "party": seg["party"],
                            "at": seg["start"], "phrase": e.phrase,
                            "text": seg["text"][spans[i].start():spans[j - 1].end()],
                            "severity": e.severity, "alert": e.alert})
        return out


def _word_matches(kind: int, pattern: str, word: str, stem: str) -> bool:
    if kind == PREFIX:
        return word.startswith(pattern)
    return (word if kind == EXACT else stem) == pattern


def parse_dictionary(text: str, source: str, language: str) -> list[Entry]:
    """Entries of one dictionary file (TOML)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DictionaryError(f"{source}: not valid TOML: {exc}") from None
    name = data.get("dictionary")
    if not isinstance(name, str) or not name:
        raise DictionaryError(f"{source}: 'dictionary' (its name) is missing")
    if data.get("enabled", True) is False:        # switched off in the panel
        return []
    tag = data.get("tag", name)
    defaults = {"party": data.get("party", "any"), "severity": data.get("severity", 1),
                "alert": data.get("alert", False)}
    if language not in STEMMERS:
        raise DictionaryError(f"{source}: language {language!r} is not one of {sorted(STEMMERS)}")
    stemmer = _stemmer(language)
    entries = []
    raws = data.get("entries", [])
    if not isinstance(raws, list):
        raise DictionaryError(f"{source}: 'entries' must be a list of phrases")
    for n, raw in enumerate(raws, 1):
        if not isinstance(raw, (str, dict)):
            raise DictionaryError(f"{source}: entry {n} must be a phrase or {{phrase = ...}}")
        item = {"phrase": raw} if isinstance(raw, str) else dict(raw)
        phrase = item.get("phrase")
        opts = {**defaults, **{k: v for k, v in item.items() if k != "phrase"}}
        where = f"{source}: entry {n} ({phrase!r})"
        if not isinstance(phrase, str) or not WORD.search(phrase):
            raise DictionaryError(f"{where}: 'phrase' must be a word or phrase")
        if opts["party"] not in PARTIES:
            raise DictionaryError(f"{where}: party must be one of {', '.join(PARTIES)}")
        if opts["severity"] not in (1, 2, 3):
            raise DictionaryError(f"{where}: severity must be 1, 2 or 3")
        if not isinstance(opts["alert"], bool):
            raise DictionaryError(f"{where}: alert must be true or false")
        words = []
        for w in phrase.split():
            if w.endswith("*"):
                words.append((PREFIX, normalize(w.rstrip("*"))))
            elif w.startswith("="):
                words.append((EXACT, normalize(w[1:])))
            else:
                w = " ".join(WORD.findall(w))
                if w:
                    words.append((STEM, stemmer.stemWord(normalize(w))))
        entries.append(Entry(name, tag, language, phrase, tuple(words), opts["party"],
                             opts["severity"], opts["alert"]))
    return entries


def load_tagger(language: str, user_dir: Path | None = None) -> Tagger:
    """Built-in dictionaries for the language ('auto': Russian and English); the user's
    ``<user_dir>/<lang>/<name>.toml`` replaces the built-in of that name or adds one, and
    plain ``<user_dir>/*.toml`` files add dictionaries in the first language."""
    langs = ["ru", "en"] if language == "auto" else [language]
    files: dict[tuple[str, str], tuple[str, str]] = {}
    root = resources.files("appliance").joinpath("dictionaries")
    for lang in langs:
        for f in root.joinpath(lang).iterdir():
            if f.name.endswith(".toml"):
                files[(lang, f.name[:-5])] = (f.read_text(encoding="utf-8"), f"built-in {lang}/{f.name}")
        if user_dir is not None and (user_dir / lang).is_dir():
            for p in (user_dir / lang).glob("*.toml"):
                files[(lang, p.stem)] = (p.read_text(encoding="utf-8"), str(p))
    if user_dir is not None and user_dir.is_dir():
        for p in user_dir.glob("*.toml"):
            files[(langs[0], f"/{p.stem}")] = (p.read_text(encoding="utf-8"), str(p))
    entries: list[Entry] = []
    for (lang, _), (text, source) in sorted(files.items()):
        entries += parse_dictionary(text, source, lang)
    return Tagger(entries)
