"""API tokens for machine clients (the PBX posting CDRs, a CRM posting outcomes).

Kept in ``<data_dir>/secrets/api-tokens.json`` rather than in the store, so that
``appliance token create`` works while the daemon runs (the store has one writer: the
daemon); the daemon rereads the file when it changes. A token is shown once; the box keeps
only its SHA-256 (a token is 32 random bytes: there is nothing to brute-force).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import secrets
import time
from pathlib import Path
from typing import Any

from ..system.atomic import write_json_atomic

ROLES = ("admin", "supervisor", "viewer", "integration")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenFile:
    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "secrets" / "api-tokens.json"
        self._stamp: tuple[int, int] | None = None
        self._tokens: dict[str, dict[str, Any]] = {}

    def _read(self) -> dict[str, dict[str, Any]]:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return {}
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            try:
                self._tokens = json.loads(self.path.read_text(encoding="utf-8"))["tokens"]
            except (OSError, ValueError, KeyError, TypeError):
                self._tokens = {}        # unreadable: nobody gets in, rather than anybody
            self._stamp = stamp
        return self._tokens

    def _update(self, change: Any) -> Any:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.path.with_name(".api-tokens.lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._stamp = None
            tokens = dict(self._read())
            out = change(tokens)
            write_json_atomic(self.path, {"tokens": tokens}, mode=0o600)
        return out

    def create(self, name: str, role: str) -> str:
        """A new token for ``name`` with ``role``; returns the secret (not stored)."""
        if role not in ROLES:
            raise ValueError(f"role {role!r}: use one of {', '.join(ROLES)}")
        if not name or len(name) > 64:
            raise ValueError("token name: 1 to 64 characters")
        token = "apl_" + secrets.token_urlsafe(32)
        self._update(lambda t: t.__setitem__(_digest(token), {
            "name": name, "role": role, "created_at": time.time()}))
        return token

    def revoke(self, name: str) -> int:
        def drop(tokens: dict[str, Any]) -> int:
            gone = [k for k, v in tokens.items() if v.get("name") == name]
            for k in gone:
                del tokens[k]
            return len(gone)
        return self._update(drop)

    def check(self, token: str) -> dict[str, Any] | None:
        """The token's owner (``name``, ``role``), or None."""
        return self._read().get(_digest(token)) if token else None

    def list(self) -> list[dict[str, Any]]:
        return sorted(self._read().values(), key=lambda t: t["created_at"])
