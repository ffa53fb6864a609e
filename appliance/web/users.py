"""Panel users: names, roles and scrypt password hashes, kept in the store.

There is no default account: the first admin is created through the one-time set-up link
(``setup_token``), whose token is kept in ``<data_dir>/secrets/setup-token`` until used.
"""

from __future__ import annotations

import hmac
import re
import secrets
import time
from pathlib import Path
from typing import Any

from werkzeug.security import check_password_hash, generate_password_hash

from ..store.migrations import CURRENT
from ..system.atomic import write_text_atomic
from ..store.table import DurableMap

ROLES = ("admin", "supervisor", "viewer")
NAME = re.compile(r"[A-Za-z0-9_.@-]{1,64}")
MIN_PASSWORD = 10
# Checked against when the name is unknown, so a wrong name costs as long as a wrong password.
_DUMMY_HASH = generate_password_hash("not a password of anyone")


class UserError(ValueError):
    """A user could not be created or changed; the message says why."""


def check_new_password(password: str, name: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"the password needs at least {MIN_PASSWORD} characters")
    if password.lower() == name.lower() or len(set(password)) < 4:
        raise UserError("the password is too easy to guess: use a phrase or a generated one")


class Users:
    def __init__(self, table: DurableMap) -> None:
        self.table = table

    def get(self, name: str) -> dict[str, Any] | None:
        return self.table.get(name)

    def all(self) -> list[dict[str, Any]]:
        return sorted((self._public(d) for d in self.table.docs.values()), key=lambda u: u["name"])

    def __len__(self) -> int:
        return len(self.table)

    @staticmethod
    def _public(doc: dict[str, Any]) -> dict[str, Any]:
        return {k: doc.get(k) for k in ("name", "role", "disabled", "created_at", "last_login",
                                        "language")}

    def create(self, name: str, password: str, role: str) -> dict[str, Any]:
        if not NAME.fullmatch(name or ""):
            raise UserError("user name: 1-64 letters, digits, '.', '_', '-' or '@'")
        if self.table.get(name) is not None:
            raise UserError(f"user {name!r} already exists")
        if role not in ROLES:
            raise UserError(f"role must be one of {', '.join(ROLES)}")
        check_new_password(password, name)
        doc = {"schema": CURRENT["user"], "name": name, "role": role,
               "hash": generate_password_hash(password), "disabled": False,
               "created_at": time.time(), "last_login": None, "epoch": 0}
        self.table.put(name, doc)
        return self._public(doc)

    def update(self, name: str, role: str | None = None, disabled: bool | None = None,
               password: str | None = None, last_login: float | None = None) -> dict[str, Any]:
        doc = self.table.get(name)
        if doc is None:
            raise UserError(f"no user {name[:64]!r}")
        doc = dict(doc)
        if role is not None:
            if role not in ROLES:
                raise UserError(f"role must be one of {', '.join(ROLES)}")
            if doc["role"] == "admin" and role != "admin" and self._last_admin(name):
                raise UserError("the last admin cannot lose the admin role")
            doc["role"] = role
        if disabled is not None:
            if disabled and doc["role"] == "admin" and self._last_admin(name):
                raise UserError("the last admin cannot be disabled")
            doc["disabled"] = disabled
        if password is not None:
            check_new_password(password, name)
            doc["hash"] = generate_password_hash(password)
        if role is not None or disabled or password is not None:
            doc["epoch"] = doc.get("epoch", 0) + 1       # signs out the user's sessions
        if last_login is not None:
            doc["last_login"] = last_login
        self.table.put(name, doc)
        return self._public(doc)

    def delete(self, name: str) -> None:
        doc = self.table.get(name)
        if doc is None:
            raise UserError(f"no user {name[:64]!r}")
        if doc["role"] == "admin" and self._last_admin(name):
            raise UserError("the last admin cannot be deleted")
        self.table.delete(name)

    def _last_admin(self, name: str) -> bool:
        return not any(d["role"] == "admin" and not d.get("disabled") and d["name"] != name
                       for d in self.table.docs.values())

    def authenticate(self, name: str, password: str) -> dict[str, Any] | None:
        """The user when the password is right and the account enabled, else None."""
        doc = self.table.get(name)
        ok = check_password_hash(doc["hash"] if doc else _DUMMY_HASH, password)
        if doc is None or not ok or doc.get("disabled"):
            return None
        return doc


class SetupToken:
    """The one-time token of the first-run admin set-up link."""

    def __init__(self, data_dir: Path) -> None:
        self.path = data_dir / "secrets" / "setup-token"

    def ensure(self) -> str:
        """The token, created (owner-only file) when there is none."""
        try:
            return self.path.read_text().strip()
        except FileNotFoundError:
            pass
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        token = secrets.token_urlsafe(24)
        write_text_atomic(self.path, token + "\n", mode=0o600)
        return token

    def matches(self, given: str) -> bool:
        try:
            token = self.path.read_text().strip()
        except FileNotFoundError:
            return False
        return bool(token) and hmac.compare_digest(token.encode(), (given or "").encode())

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


def secret_key(data_dir: Path) -> bytes:
    """The key signing session cookies: random, made once, owner-only."""
    path = data_dir / "secrets" / "web-secret-key"
    try:
        key = path.read_bytes()
        if len(key) >= 32:
            return key
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = secrets.token_bytes(32)
    write_text_atomic(path, key, mode=0o600)
    return key
