"""Settings changed in the panel: validated as a whole, kept in ``<data_dir>/panel-settings.json``
(owner-only: it may hold passwords), applied at once where the running parts read them live,
otherwise at the next start."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from ..config import PANEL_FILE, Settings, _describe, _merge, env_keys, panel_overrides, renamed
from .atomic import write_json_atomic

# What the panel edits, by section. Sections in LIVE are read afresh by the running parts.
EDITABLE: dict[str, tuple[str, ...]] = {
    "sip": ("direct_calls", "accounts"),
    "mqtt": ("host", "port", "protocol", "tls", "username", "password", "box_id", "topic_prefix",
             "transcripts"),
    "alerts": ("low_score",),
    "retention": ("audio_days", "metadata_days", "transcript_days", "audit_days", "min_free_percent",
                  "stop_recording_free_mb"),
    "asr": ("enabled", "language"),
    "cdr": ("callback_fast_min", "callback_slow_h"),
}
LIVE = ("retention", "cdr", "alerts")
SECRET = {("mqtt", "password")}


class SettingsError(ValueError):
    """A change was refused; one line per problem."""


def current_values(settings: Settings) -> dict[str, dict[str, Any]]:
    """The editable settings as the form shows them (secrets left out)."""
    dump = settings.model_dump(mode="json")
    out: dict[str, dict[str, Any]] = {}
    for section, keys in EDITABLE.items():
        out[section] = {k: dump[section][k] for k in keys if (section, k) not in SECRET}
        if section == "sip":
            out[section]["accounts"] = [{k: v for k, v in a.items() if k != "password"}
                                        for a in dump["sip"]["accounts"]]
    return out


def change(settings: Settings, changes: dict[str, dict[str, Any]],
           saved: Settings | None = None) -> tuple[Settings, list[str]]:
    """Validate ``changes`` over the settings saved so far (``saved``, default: the running
    ones), keep them, apply the live ones to the running ``settings`` in place. Returns the
    saved settings and the keys that differ from the running ones until a restart."""
    fixed = env_keys()
    changes = renamed(changes)          # API clients may still send the old names
    problems = []
    for section, values in changes.items():
        if section not in EDITABLE or not isinstance(values, dict):
            problems.append(f"{section}: not a section the panel edits")
            continue
        for key in values:
            if key not in EDITABLE[section]:
                problems.append(f"{section}.{key}: not editable in the panel")
            elif f"{section}.{key}" in fixed:
                problems.append(f"{section}.{key}: fixed by the environment of the service")
    if problems:
        raise SettingsError("\n".join(problems))
    try:
        new = Settings.model_validate(_merge((saved or settings).model_dump(mode="json"), changes))
    except ValidationError as exc:
        raise SettingsError("\n".join(_describe(e, "the form") for e in exc.errors())) from None
    old_dump, new_dump = settings.model_dump(mode="json"), new.model_dump(mode="json")
    changed = [f"{s}.{k}" for s, keys in EDITABLE.items() for k in keys
               if old_dump[s][k] != new_dump[s][k]]
    data_dir = settings.paths.data_dir
    kept = _merge(panel_overrides(data_dir), changes)
    write_json_atomic(data_dir / PANEL_FILE, kept, mode=0o600)
    for section in LIVE:
        setattr(settings, section, getattr(new, section))
    restart = [k for k in changed if k.split(".")[0] not in LIVE]
    return new, restart
