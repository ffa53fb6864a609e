"""``appliance key``: the data key of encryption at rest (see docs/privacy.md)."""

from __future__ import annotations

import getpass
import secrets
import sys
from typing import Any, TextIO

from .atomic import write_text_atomic
from .sealing import DataKey, SealError, key_path, seal_bytes, unseal_bytes, KeyRing

CHECK = b"appliance data key check"


def rotate(settings: Any) -> tuple[str, str]:
    """A new current key; the old one stays as ``<key_file>.<id>.old`` until the daemon has
    sealed every file again. Returns (old id, new id)."""
    key_file = key_path(settings)
    old = DataKey.load(key_file)
    if settings.privacy.key_from_passphrase:
        raise SealError("the key comes from a passphrase: 'appliance key unlock --new' sets a new one")
    kept = key_file.with_name(f"{key_file.name}.{old.id.hex()}.old")
    write_text_atomic(kept, old.key.hex() + "\n", mode=0o600)
    new = DataKey.new()
    key_file.unlink()
    new.save(key_file)
    return old.id.hex(), new.id.hex()


def unlock(settings: Any, passphrase: str, new: bool = False) -> str:
    """Derive the key from ``passphrase`` and write it to ``privacy.key_file``. The first
    time (or with ``new``) the passphrase is set; afterwards a wrong one is refused.
    Returns the key's id."""
    key_file = key_path(settings)
    if not settings.privacy.key_from_passphrase:
        raise SealError("this box's key is a random key in its key file, not a passphrase "
                        "(privacy.key_from_passphrase = false): nothing to unlock")
    store = settings.paths.data_dir / "keys"
    store.mkdir(parents=True, exist_ok=True, mode=0o700)
    salt_path, check_path = store / "passphrase.salt", store / "passphrase.check"
    if new or not salt_path.exists():
        if len(passphrase) < 12:
            raise SealError("a passphrase of at least 12 characters, please")
        salt = secrets.token_bytes(16)
        key = DataKey.from_passphrase(passphrase, salt)
        if check_path.exists() and not new:
            raise SealError(f"{check_path} exists without its salt: restore both")
        write_text_atomic(salt_path, salt, mode=0o600)
        write_text_atomic(check_path, seal_bytes(CHECK, key), mode=0o600)
    else:
        key = DataKey.from_passphrase(passphrase, salt_path.read_bytes())
        try:
            ok = unseal_bytes(check_path.read_bytes(), KeyRing(key), str(check_path)) == CHECK
        except (SealError, OSError):
            ok = False
        if not ok:
            raise SealError("wrong passphrase (it does not open the key check); nothing written")
    if key_file.exists():
        key_file.unlink()           # the same key, or --new replacing it on purpose
    key.save(key_file)
    return key.id.hex()


def command(settings: Any, action: str, new: bool = False, out: TextIO = sys.stdout) -> int:
    """The ``appliance key`` subcommand."""
    try:
        if action == "rotate":
            old, cur = rotate(settings)
            print(f"key {cur} is current; {old} is kept until the running appliance has sealed "
                  "every file again (restart it to start now)", file=out)
        elif action == "unlock":
            phrase = (getpass.getpass("passphrase: ") if sys.stdin.isatty()
                      else sys.stdin.readline().rstrip("\n"))
            print(f"key {unlock(settings, phrase, new)} written to {key_path(settings)}", file=out)
        else:       # show
            key = DataKey.load(key_path(settings))
            print(f"key {key.id.hex()} in {key_path(settings)}; encryption "
                  f"{'on' if settings.privacy.encrypt else 'off'}", file=out)
    except (SealError, OSError) as exc:
        print(f"appliance key: {exc}", file=sys.stderr)
        return 1
    return 0
