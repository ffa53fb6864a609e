"""The panel in Russian and English: English text is the key, ``RU`` its translation
(symbolic keys, such as setting names, have their English text in ``EN``).

The language is the ``lang`` cookie (set by the switch in the header), else the browser's
preference, else Russian.
"""

from __future__ import annotations

from typing import Any

from flask import g, request

from .catalog_ru import EN, RU

LANGUAGES = ("ru", "en")


def pick_language() -> str:
    chosen = request.cookies.get("lang")
    if chosen in LANGUAGES:
        return chosen
    return request.accept_languages.best_match(LANGUAGES, default="ru") or "ru"


def gettext(text: str, /, **values: Any) -> str:
    """``text`` in the request's language, with ``{name}`` fields filled in."""
    lang = g.get("lang", "ru") if g else "ru"
    out = RU.get(text, text) if lang == "ru" else EN.get(text, text)
    return out.format(**values) if values else out
