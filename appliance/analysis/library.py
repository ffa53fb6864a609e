"""Dictionaries and checklists as people edit them: the built-in files, each replaceable by
the user's copy under ``<data_dir>/dictionaries/`` (``<lang>/<name>.toml`` for dictionaries,
``checklists/<name>.toml`` for checklists). Removing a copy brings the built-in back. Every
save is validated by the same parsers the analysis uses, then written atomically; running
analysis picks changes up at its next call (``Stages.refresh``).
"""

from __future__ import annotations

import json
import re
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

from ..system.atomic import write_text_atomic
from .scoring import parse_checklist
from .tagger import PARTIES, STEMMERS, parse_dictionary

NAME = re.compile(r"[a-z0-9_]{1,40}")
OPTION = re.compile(r"(party|severity|alert)=(\S+)")


class LibraryError(ValueError):
    """An edit was refused; the message names the field or line."""


def _toml_str(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)     # a JSON string is a TOML basic string


def write_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, text)


def _builtin(*parts: str) -> Any:
    return resources.files("appliance").joinpath("dictionaries", *parts)


def _read(user: Path, builtin: Any, missing: str) -> tuple[str, str]:
    """The user's copy if any (``edited``, or ``custom`` with no built-in), else the
    built-in; raises LibraryError(``missing``) when neither exists."""
    if user.is_file():
        return user.read_text(encoding="utf-8"), "edited" if builtin.is_file() else "custom"
    if builtin.is_file():
        return builtin.read_text(encoding="utf-8"), "built-in"
    raise LibraryError(missing)


def parse_entry_lines(text: str, defaults: dict[str, Any]) -> list[Any]:
    """Editor lines to TOML entries: ``phrase`` or ``phrase | party=client severity=3
    alert=yes``; options equal to the dictionary's defaults are dropped."""
    entries: list[Any] = []
    for n, line in enumerate(text.splitlines(), 1):
        phrase, _, opts = line.partition("|")
        phrase = " ".join(phrase.split())
        if not phrase:
            continue
        if len(phrase) > 200:
            raise LibraryError(f"line {n}: a phrase of at most 200 characters")
        item: dict[str, Any] = {}
        rest = OPTION.sub("", opts).strip()
        if rest:
            raise LibraryError(f"line {n}: {rest[:40]!r} not understood; options are "
                               "party=agent|client|any severity=1|2|3 alert=yes|no")
        for key, value in OPTION.findall(opts):
            if key == "party":
                item[key] = value
            elif key == "severity":
                item[key] = int(value) if value.isdigit() else value
            else:
                item[key] = value.lower() in ("yes", "true", "1")
        item = {k: v for k, v in item.items() if v != defaults.get(k)}
        entries.append({"phrase": phrase, **item} if item else phrase)
    if len(entries) > 5000:
        raise LibraryError("at most 5000 entries per dictionary")
    return entries


def entry_lines(entries: list[Any]) -> str:
    out = []
    for e in entries:
        if isinstance(e, str):
            out.append(e)
            continue
        opts = " ".join(f"{k}={('yes' if v else 'no') if isinstance(v, bool) else v}"
                        for k, v in e.items() if k != "phrase")
        out.append(f"{e['phrase']} | {opts}" if opts else e["phrase"])
    return "\n".join(out)


class Library:
    def __init__(self, user_dir: Path) -> None:
        self.user_dir = user_dir
        self._listing: tuple[Any, list[dict[str, Any]]] = (None, [])

    # --- dictionaries ---
    def check_name(self, lang: str, name: str) -> None:
        """Raise LibraryError unless a dictionary may be called ``lang/name``."""
        self._dict_path(lang, name)

    def _dict_path(self, lang: str, name: str) -> Path:
        if lang not in STEMMERS or not NAME.fullmatch(name or ""):
            raise LibraryError(f"no dictionary {lang[:5]!r}/{name[:40]!r}")
        return self.user_dir / lang / f"{name}.toml"

    def dictionaries(self) -> list[dict[str, Any]]:
        """Every dictionary of every language: name, origin (built-in, edited, custom),
        defaults and number of entries (re-read only when a user file changed)."""
        signature = self.signature()
        if self._listing[0] == signature:
            return self._listing[1]
        out = []
        for lang in STEMMERS:
            names = {f.name[:-5] for f in _builtin(lang).iterdir() if f.name.endswith(".toml")}
            if (self.user_dir / lang).is_dir():
                names |= {p.stem for p in (self.user_dir / lang).glob("*.toml")}
            for name in sorted(names):
                d = self.dictionary(lang, name)
                out.append({k: d[k] for k in ("language", "name", "tag", "party", "severity",
                                              "alert", "enabled", "origin")}
                           | {"entries": len(d["entries"])})
        self._listing = (signature, out)
        return out

    def dictionary(self, lang: str, name: str) -> dict[str, Any]:
        text, origin = _read(self._dict_path(lang, name), _builtin(lang, f"{name}.toml"),
                             f"no dictionary {lang}/{name}")
        data = tomllib.loads(text)
        return {"language": lang, "name": name, "tag": data.get("tag", name),
                "party": data.get("party", "any"), "severity": data.get("severity", 1),
                "alert": data.get("alert", False), "enabled": data.get("enabled", True),
                "origin": origin, "entries": data.get("entries", [])}

    def save_dictionary(self, lang: str, name: str, fields: dict[str, Any]) -> dict[str, Any]:
        """Validate and keep the user's copy; ``fields``: tag, party, severity, alert,
        enabled and ``entries`` (a list, or editor lines as one string)."""
        path = self._dict_path(lang, name)
        party = fields.get("party", "any")
        if party not in PARTIES:
            raise LibraryError(f"party must be one of {', '.join(PARTIES)}")
        try:
            severity = int(fields.get("severity", 1))
        except (TypeError, ValueError):
            severity = 0
        if severity not in (1, 2, 3):
            raise LibraryError("severity must be 1, 2 or 3")
        tag = str(fields.get("tag") or name)
        if not NAME.fullmatch(tag):
            raise LibraryError("tag: 1-40 lowercase letters, digits or '_'")
        defaults = {"party": party, "severity": severity, "alert": bool(fields.get("alert"))}
        entries = fields.get("entries", [])
        if isinstance(entries, str):
            entries = parse_entry_lines(entries, defaults)
        if not isinstance(entries, list):
            raise LibraryError("entries: a list of phrases")
        text = "\n".join([
            f"dictionary = {_toml_str(name)}", f"tag = {_toml_str(tag)}",
            f"party = {_toml_str(party)}", f"severity = {severity}",
            f"alert = {'true' if defaults['alert'] else 'false'}",
            f"enabled = {'false' if fields.get('enabled') is False else 'true'}",
            "entries = [", *(f"  {self._entry(e)}," for e in entries), "]", ""])
        try:
            parse_dictionary(text, f"{lang}/{name}", lang)
        except ValueError as exc:
            raise LibraryError(str(exc).split(": ", 1)[-1]) from None
        write_atomic(path, text)
        return self.dictionary(lang, name)

    @staticmethod
    def _entry(e: Any) -> str:
        if isinstance(e, str):
            return _toml_str(e)
        if not isinstance(e, dict) or not isinstance(e.get("phrase"), str):
            raise LibraryError("each entry: a phrase, or {phrase, party, severity, alert}")
        parts = []
        for k, v in e.items():
            if k not in ("phrase", "party", "severity", "alert"):
                raise LibraryError(f"entry {e.get('phrase')!r}: unknown option {k!r}")
            parts.append(f"{k} = {_toml_str(v) if isinstance(v, str) else json.dumps(v)}")
        return "{ " + ", ".join(parts) + " }"

    def reset_dictionary(self, lang: str, name: str) -> None:
        """Drop the user's copy (a custom dictionary is deleted, a built-in comes back)."""
        self._dict_path(lang, name).unlink(missing_ok=True)

    # --- checklists ---
    def _checklist_path(self, name: str) -> Path:
        if not NAME.fullmatch(name or ""):
            raise LibraryError(f"no checklist {name[:40]!r}")
        return self.user_dir / "checklists" / f"{name}.toml"

    def checklists(self) -> list[dict[str, Any]]:
        names = {f.name[:-5] for f in _builtin("checklists").iterdir() if f.name.endswith(".toml")}
        if (self.user_dir / "checklists").is_dir():
            names |= {p.stem for p in (self.user_dir / "checklists").glob("*.toml")}
        return [self.checklist(n) for n in sorted(names)]

    def checklist(self, name: str) -> dict[str, Any]:
        text, origin = _read(self._checklist_path(name), _builtin("checklists", f"{name}.toml"),
                             f"no checklist {name}")
        parsed = parse_checklist(text, name)
        return {"name": name, "title": parsed.title, "origin": origin, "text": text,
                "items": [dict(i) for i in parsed.items]}

    def save_checklist(self, name: str, text: str) -> dict[str, Any]:
        """Validate the checklist's TOML and keep it as the user's copy."""
        path = self._checklist_path(name)
        if len(text) > 200_000:
            raise LibraryError("a checklist of at most 200 kB")
        try:
            parsed = parse_checklist(text, name)
        except ValueError as exc:
            raise LibraryError(str(exc).split(": ", 1)[-1]) from None
        if parsed.name != name:
            raise LibraryError(f"checklist = {parsed.name!r} must be {name!r} (the name edited)")
        write_atomic(path, text if text.endswith("\n") else text + "\n")
        return self.checklist(name)

    def reset_checklist(self, name: str) -> None:
        self._checklist_path(name).unlink(missing_ok=True)

    def signature(self) -> tuple[tuple[str, int], ...]:
        """Changes whenever a user file is written or removed (cheap: a few stats)."""
        if not self.user_dir.is_dir():
            return ()
        return tuple(sorted((str(p), p.stat().st_mtime_ns) for p in self.user_dir.rglob("*.toml")))
