"""``appliance key``: the data key of encryption at rest (see docs/privacy.md).

No command here ever deletes a key that files may need: a replaced key is kept in
``<data_dir>/keys``, sealed under the key that replaced it.
"""

from __future__ import annotations

import getpass
import secrets
import sys
from pathlib import Path
from typing import Any, TextIO

from .atomic import write_text_atomic
from .sealing import (DataKey, KeyRing, SealError, forget_stale, kept_keys, key_path, keys_dir,
                      note_key, seal_bytes, unseal_bytes)

CHECK = b"appliance data key check"
MIN_PASSPHRASE = 12


def _switch(settings: Any, ring: KeyRing | None, new: DataKey) -> None:
    """Make ``new`` the key: the ring's keys kept under it first, then the key file
    replaced in one rename, then the copies under the old key removed. A crash anywhere
    leaves a key file whose kept keys can be read."""
    kept = keys_dir(settings)
    if ring is not None:
        ring.retire_into(new, kept)
    key_file = key_path(settings)
    key_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_text_atomic(key_file, new.key.hex() + "\n", mode=0o600)
    note_key(kept, new)
    forget_stale(kept, new)


def _ring_if_any(settings: Any) -> KeyRing | None:
    """The key ring of the key file there is now, or None when there is none."""
    key_file = key_path(settings)
    return KeyRing.load(key_file, keys_dir(settings)) if key_file.exists() else None


def rotate(settings: Any) -> tuple[str, str]:
    """A new random key; the old ones stay readable. Returns (old id, new id)."""
    if settings.privacy.key_from_passphrase:
        raise SealError("the key comes from a passphrase: 'appliance key unlock --new' changes it")
    ring = _ring_if_any(settings)
    if ring is None:
        raise SealError(f"no data key in {key_path(settings)} to replace")
    new = DataKey.new()
    _switch(settings, ring, new)
    return ring.current.id.hex(), new.id.hex()


def _from_passphrase(kept: Path, passphrase: str) -> DataKey:
    salt, check = kept / "passphrase.salt", kept / "passphrase.check"
    if not check.exists():
        raise SealError(f"{check} is missing: restore it and {salt.name} from where {kept} "
                        "was backed up")
    key = DataKey.from_passphrase(passphrase, salt.read_bytes())
    try:
        ok = unseal_bytes(check.read_bytes(), KeyRing(key), str(check)) == CHECK
    except (SealError, OSError):
        ok = False
    if not ok:
        raise SealError("wrong passphrase (it does not open the key check); nothing written")
    return key


def _set_passphrase(kept: Path, passphrase: str) -> DataKey:
    if len(passphrase) < MIN_PASSPHRASE:
        raise SealError(f"a passphrase of at least {MIN_PASSPHRASE} characters, please")
    salt = secrets.token_bytes(16)
    key = DataKey.from_passphrase(passphrase, salt)
    kept.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_text_atomic(kept / "passphrase.salt.new", salt, mode=0o600)
    write_text_atomic(kept / "passphrase.check.new", seal_bytes(CHECK, key), mode=0o600)
    return key


def _commit_passphrase(kept: Path) -> None:
    for name in ("passphrase.salt", "passphrase.check"):
        (kept / f"{name}.new").replace(kept / name)


def unlock(settings: Any, passphrase: str, new_passphrase: str | None = None) -> str:
    """Derive the key from ``passphrase`` and write it to ``privacy.key_file``. The first
    time the passphrase is set: a random key the box used until then is kept (sealed) under
    it. With ``new_passphrase`` the key changes: the current passphrase must open it, and the
    old key is kept. A different key in the key file is never overwritten. Returns the id."""
    if not settings.privacy.key_from_passphrase:
        raise SealError("this box's key is a random key in its key file, not a passphrase "
                        "(privacy.key_from_passphrase = false): nothing to unlock")
    kept, key_file = keys_dir(settings), key_path(settings)
    first = not (kept / "passphrase.salt").exists()
    if first:
        # a box that ran on a random key until now: that key must be in the key file, and
        # stays readable under the passphrase's key
        ring = _ring_if_any(settings)
        known = kept / "key-id"
        if ring is None and known.exists():
            raise SealError(f"this box used key {known.read_text().strip()}, which is not in "
                            f"{key_file}: put it there first, so it is kept under the passphrase")
        key = _set_passphrase(kept, passphrase)
        _switch(settings, ring, key)
        _commit_passphrase(kept)
        return key.id.hex()
    key = _from_passphrase(kept, passphrase)
    if new_passphrase is not None:
        ring = KeyRing(key, kept_keys(kept, key))
        new = _set_passphrase(kept, new_passphrase)
        _switch(settings, ring, new)
        _commit_passphrase(kept)
        return new.id.hex()
    if key_file.exists() and DataKey.load(key_file) != key:
        raise SealError(f"{key_file} holds another key than this passphrase's; move it away "
                        "first (nothing written)")
    if not key_file.exists():
        key.save(key_file)
    note_key(kept, key)
    return key.id.hex()


def _read_line(prompt: str) -> str:
    return getpass.getpass(prompt) if sys.stdin.isatty() else sys.stdin.readline().rstrip("\n")


def command(settings: Any, action: str, new: bool = False, out: TextIO = sys.stdout) -> int:
    """The ``appliance key`` subcommand."""
    try:
        if action == "rotate":
            old, cur = rotate(settings)
            print(f"key {cur} is current; {old} and earlier keys stay kept (sealed) for the "
                  "files and backups sealed under them; restart the appliance to seal every "
                  "file again under the new key", file=out)
        elif action == "unlock":
            phrase = _read_line("passphrase: ")
            fresh = _read_line("new passphrase: ") if new else None
            print(f"key {unlock(settings, phrase, fresh)} written to {key_path(settings)}",
                  file=out)
        else:       # show
            key = DataKey.load(key_path(settings))
            print(f"key {key.id.hex()} in {key_path(settings)}; encryption "
                  f"{'on' if settings.privacy.encrypt else 'off'}", file=out)
    except (SealError, OSError) as exc:
        print(f"appliance key: {exc}", file=sys.stderr)
        return 1
    return 0
