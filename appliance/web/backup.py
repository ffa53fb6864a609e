"""Configuration backup: settings changed in the panel, edited dictionaries and checklists,
users (password hashes only). Call data and recordings are backed up as the data directory
(docs/backup.md): they are far larger and have their own retention."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Callable

from ..analysis.library import Library, write_atomic
from ..config import panel_overrides
from ..system import panel_settings
from .users import NAME, ROLES, Users

FORMAT = "appliance-backup/1"


class BackupError(ValueError):
    """The file is not a backup this appliance can restore; nothing was changed."""


def export(data_dir: Path, library: Library, users: Users) -> dict[str, Any]:
    files = {str(p.relative_to(library.user_dir)): p.read_text(encoding="utf-8")
             for p in sorted(library.user_dir.rglob("*.toml"))} if library.user_dir.is_dir() else {}
    return {"format": FORMAT, "created_at": time.time(), "settings": panel_overrides(data_dir),
            "files": files, "users": [dict(d) for d in users.table.docs.values()]}


def restore(raw: bytes, apply_settings: Callable[[dict[str, Any]], Any], library: Library,
            users: Users) -> dict[str, int]:
    """Check everything first, then apply: a bad backup changes nothing."""
    try:
        doc = json.loads(raw)
    except ValueError:
        raise BackupError("not a backup file: it is not JSON") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise BackupError(f"not a backup file of this appliance (format {FORMAT} expected)")
    files = doc.get("files") or {}
    checked: dict[Path, str] = {}
    for rel, text in files.items():
        parts = Path(rel).parts
        if not isinstance(text, str) or len(parts) != 2 or not rel.endswith(".toml"):
            raise BackupError(f"files: {rel[:80]!r} is not a dictionary or checklist")
        folder, name = parts[0], parts[1][:-5]
        try:
            if folder == "checklists":
                from ..analysis.scoring import parse_checklist
                parse_checklist(text, rel)
            else:
                library.check_name(folder, name)
                from ..analysis.tagger import parse_dictionary
                parse_dictionary(text, rel, folder)
        except ValueError as exc:
            raise BackupError(f"files: {exc}") from None
        checked[library.user_dir / folder / f"{name}.toml"] = text
    people = doc.get("users") or []
    for u in people:
        if not isinstance(u, dict) or not NAME.fullmatch(str(u.get("name", ""))) \
                or u.get("role") not in ROLES or not str(u.get("hash", "")).count("$") >= 2:
            raise BackupError("users: each needs a name, a role and a password hash")
    if not any(u["role"] == "admin" and not u.get("disabled") for u in people) and people:
        raise BackupError("users: the backup has no enabled admin; restoring it would lock you out")
    overrides = doc.get("settings") or {}
    if not isinstance(overrides, dict):
        raise BackupError("settings: a JSON object")
    try:
        apply_settings(overrides)
    except panel_settings.SettingsError as exc:
        raise BackupError(f"settings: {exc}") from None
    for path, text in checked.items():
        write_atomic(path, text)
    for u in people:
        users.table.put(u["name"], {**u, "epoch": int(u.get("epoch", 0)) + 1})
    return {"files": len(checked), "users": len(people)}
