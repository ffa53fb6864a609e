"""Encryption at rest of recordings and call JSON (``[privacy] encrypt``).

A sealed file is ``MAGIC``, the key's id (8 bytes), a random nonce prefix (8 bytes), then
chunks of at most 64 KiB of plaintext, each ``length (4 bytes) + AES-256-GCM ciphertext and
tag``. Chunk ``i`` uses the nonce ``prefix + i`` and authenticates the header, ``i`` and
whether it is the last chunk, so a file cut at a chunk boundary, chunks swapped or a file
sealed under another key are all refused, never read as something else.

The key is 32 random bytes, kept hex-encoded in a file only the service user may read
(``privacy.key_file``), or derived from a passphrase by ``appliance key unlock``. Keys that
were replaced (``appliance key rotate``, ``unlock --new``) are kept in ``<data_dir>/keys``,
each sealed under the current key, so files and backups sealed under them stay readable;
``keys/key-id`` names the current key, so a missing key file is noticed rather than replaced
by a new key. A lost key means the data is gone.

The process-wide key ring is set once at start (``configure``); with encryption off the
helpers read and write clear files, and they read clear files written before encryption
was turned on in either case.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import secrets
import stat
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from contextlib import contextmanager
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from .atomic import replacing, write_text_atomic

log = logging.getLogger(__name__)

MAGIC = b"APLSEAL1"
HEADER = len(MAGIC) + 16
CHUNK = 64 * 1024
TAG = 16
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1       # about 0.1 s and 32 MB on the box


class SealError(ValueError):
    """A sealed file or key that cannot be used; the message says which and what to do."""


@dataclass(frozen=True)
class DataKey:
    key: bytes

    @property
    def id(self) -> bytes:
        return hashlib.sha256(b"appliance data key\0" + self.key).digest()[:8]

    @classmethod
    def new(cls) -> "DataKey":
        return cls(secrets.token_bytes(32))

    @classmethod
    def from_passphrase(cls, passphrase: str, salt: bytes) -> "DataKey":
        kdf = Scrypt(salt=salt, length=32, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
        return cls(kdf.derive(passphrase.encode("utf-8")))

    @classmethod
    def load(cls, path: Path) -> "DataKey":
        """The key in ``path``; refused when others than its owner may read it."""
        try:
            st = path.stat()
            text = path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            raise SealError(f"data key {path} is missing: without it the encrypted recordings "
                            "and calls cannot be read (restore it from where it was kept, or "
                            "run 'appliance key unlock' if it comes from a passphrase)") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise SealError(f"data key {path} cannot be read: {exc}") from None
        if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise SealError(f"data key {path} may be read by others (mode "
                            f"{stat.S_IMODE(st.st_mode):o}): run 'chmod 600 {path}' and check "
                            "who copied it")
        try:
            key = bytes.fromhex(text)
        except ValueError:
            key = b""
        if len(key) != 32:
            raise SealError(f"data key {path} is not 64 hex digits: the file is damaged")
        return cls(key)

    def save(self, path: Path) -> None:
        """Write the key to ``path`` (mode 600), never over another key."""
        if path.exists() and DataKey.load(path) != self:
            raise SealError(f"{path} already holds another key; move it away first")
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_text_atomic(path, self.key.hex() + "\n", mode=0o600)


class KeyRing:
    """The key new files are sealed with, and the replaced keys files may still use."""

    def __init__(self, current: DataKey, old: list[DataKey] | None = None) -> None:
        self.current = current
        self.by_id = {k.id: k for k in [*(old or []), current]}

    @classmethod
    def load(cls, key_file: Path, keys_dir: Path | None = None) -> "KeyRing":
        """The key in ``key_file`` and the replaced keys kept in ``keys_dir`` under it."""
        current = DataKey.load(key_file)
        return cls(current, kept_keys(keys_dir or key_file.parent, current))

    def key(self, key_id: bytes, where: str) -> DataKey:
        found = self.by_id.get(key_id)
        if found is None:
            raise SealError(f"{where} is sealed with key {key_id.hex()}, which this box does not "
                            f"have (it has {', '.join(k.hex() for k in self.by_id)}): restore the "
                            "key file it was written with")
        return found

    def retire_into(self, new: DataKey, keys_dir: Path) -> None:
        """Make ``new`` the key the ring's keys are kept under: every key of this ring is
        written to ``keys_dir`` sealed under ``new`` (the files under other keys are removed
        by ``forget_stale`` once ``new`` is the key file's)."""
        keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        for key in self.by_id.values():
            if key != new:
                path = keys_dir / f"retired-{key.id.hex()}-under-{new.id.hex()}"
                write_text_atomic(path, seal_bytes(key.key.hex().encode(), new), mode=0o600)


def kept_keys(keys_dir: Path, current: DataKey) -> list[DataKey]:
    """The replaced keys kept in ``keys_dir`` sealed under ``current``."""
    out = []
    for path in sorted(keys_dir.glob(f"retired-*-under-{current.id.hex()}")):
        text = unseal_bytes(path.read_bytes(), KeyRing(current), str(path)).decode("ascii")
        out.append(DataKey(bytes.fromhex(text.strip())))
    return out


def forget_stale(keys_dir: Path, current: DataKey) -> None:
    """Remove replaced keys kept under a key that is no longer the current one (their
    copies under the current key exist: ``retire_into`` ran before the switch)."""
    for path in keys_dir.glob("retired-*-under-*"):
        if not path.name.endswith(current.id.hex()):
            path.unlink()


def note_key(keys_dir: Path, key: DataKey) -> None:
    """``keys/key-id``: which key this box uses (not secret), so that a missing key file
    is an error and never silently replaced."""
    keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_text_atomic(keys_dir / "key-id", key.id.hex() + "\n", mode=0o600)


def _nonce(prefix: bytes, index: int) -> bytes:
    return prefix + struct.pack(">I", index)


def _aad(header: bytes, index: int, last: bool) -> bytes:
    return header + struct.pack(">I?", index, last)


def seal_stream(src: BinaryIO, dst: BinaryIO, key: DataKey) -> None:
    """Write ``src`` to ``dst`` sealed with ``key``."""
    header = MAGIC + key.id + secrets.token_bytes(8)
    aes = AESGCM(key.key)
    dst.write(header)
    index, block = 0, src.read(CHUNK)
    while True:
        following = src.read(CHUNK) if block else b""
        last = not following
        sealed = aes.encrypt(_nonce(header[-8:], index), block, _aad(header, index, last))
        dst.write(struct.pack(">I", len(sealed)) + sealed)
        if last:
            return
        index, block = index + 1, following


def unseal_stream(src: BinaryIO, ring: KeyRing, where: str) -> Iterator[bytes]:
    """The plaintext chunks of a sealed stream; SealError when it is cut, altered or under
    a key the ring lacks."""
    header = src.read(HEADER)
    if len(header) < HEADER or not header.startswith(MAGIC):
        raise SealError(f"{where} is not a sealed file")
    aes = AESGCM(ring.key(header[8:16], where).key)
    index = 0
    while True:
        size_bytes = src.read(4)
        if len(size_bytes) < 4:
            raise SealError(f"{where} is truncated (chunk {index} missing): restore it from a "
                            "backup; nothing of it was changed")
        (size,) = struct.unpack(">I", size_bytes)
        sealed = src.read(size)
        if size > CHUNK + TAG or len(sealed) < size:
            raise SealError(f"{where} is truncated or damaged at chunk {index}")
        for last in (False, True):
            try:
                block = aes.decrypt(_nonce(header[-8:], index), sealed, _aad(header, index, last))
                break
            except InvalidTag:
                continue
        else:
            raise SealError(f"{where} is damaged or altered at chunk {index} (authentication "
                            "failed): restore it from a backup")
        yield block
        if last:
            if src.read(1):
                raise SealError(f"{where} has data after its last chunk")
            return
        index += 1


def seal_bytes(data: bytes, key: DataKey) -> bytes:
    out = io.BytesIO()
    seal_stream(io.BytesIO(data), out, key)
    return out.getvalue()


def unseal_bytes(data: bytes, ring: KeyRing, where: str) -> bytes:
    return b"".join(unseal_stream(io.BytesIO(data), ring, where))


def is_sealed(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            return fh.read(len(MAGIC)) == MAGIC
    except OSError:
        return False


# --- the process's key ring, and the helpers the rest of the box reads and writes with ---

_ring: KeyRing | None = None


def configure(ring: KeyRing | None) -> None:
    """Seal what is written from now on with ``ring`` (None: write clear files)."""
    global _ring
    _ring = ring


def ring() -> KeyRing | None:
    return _ring


def _ring_for(where: str) -> KeyRing:
    if _ring is None:
        raise SealError(f"{where} is encrypted but encryption is not set up on this box: set "
                        "[privacy] encrypt = true with the key it was written with")
    return _ring


def read_bytes(path: Path) -> bytes:
    """The contents of ``path``, unsealed if it is sealed."""
    data = path.read_bytes()
    if data.startswith(MAGIC):
        return unseal_bytes(data, _ring_for(str(path)), str(path))
    return data


def read_json(path: Path) -> Any:
    """A JSON file (a call's result), sealed or clear."""
    return json.loads(read_bytes(path).decode("utf-8"))


def write_json(path: Path, data: object) -> None:
    """``data`` as JSON, sealed when encryption is on; durable and atomic either way."""
    text = json.dumps(data, ensure_ascii=False, indent=1).encode("utf-8")
    write_text_atomic(path, seal_bytes(text, _ring.current) if _ring is not None else text)


def audio_source(path: Path) -> str | BinaryIO:
    """What soundfile should open: the path of a clear file, or the unsealed bytes."""
    if is_sealed(path):
        return io.BytesIO(read_bytes(path))
    return str(path)


_locks: dict[str, threading.RLock] = {}
_locks_guard = threading.Lock()


@contextmanager
def editing(path: Path) -> Iterator[None]:
    """Hold ``path`` for a read-modify-write (retention, muting, a transcript written):
    sealing it again waits, so neither undoes the other's write."""
    with _locks_guard:
        lock = _locks.setdefault(str(path), threading.RLock())
    with lock:
        yield


def _check_clear(path: Path, data: bytes) -> None:
    """A file about to be sealed must be what its name says: a damaged sealed file (its
    first bytes altered) must not be sealed inside another envelope."""
    try:
        if path.suffix == ".json":
            json.loads(data.decode("utf-8"))
        else:
            import soundfile as sf

            sf.info(io.BytesIO(data))
    except Exception as exc:   # noqa: BLE001 - any failure: not a clear file of its kind
        raise SealError(f"{path} is neither sealed nor a readable {path.suffix[1:]} file "
                        f"({exc}); left as it is") from None


def seal_file(path: Path) -> bool:
    """Seal ``path`` in place (a finished recording, a call JSON) under the current key;
    False when encryption is off or the file is already sealed under it."""
    if _ring is None:
        return False
    with editing(path):
        with open(path, "rb") as fh:
            head = fh.read(HEADER)
        if head.startswith(MAGIC) and head[8:16] == _ring.current.id:
            return False
        if head.startswith(MAGIC):          # under an older key: sealed again
            clear = read_bytes(path)
        else:
            clear = path.read_bytes()
            _check_clear(path, clear)
        with replacing(path) as tmp, open(tmp, "wb") as dst:
            seal_stream(io.BytesIO(clear), dst, _ring.current)
    return True


def key_path(settings: Any) -> Path:
    """``privacy.key_file``, or ``<data_dir>/keys/data.key``."""
    return settings.privacy.key_file or keys_dir(settings) / "data.key"


def keys_dir(settings: Any) -> Path:
    """Where the box keeps what it knows of its keys: which one it uses, the replaced ones
    (sealed), a passphrase's salt and check value."""
    return settings.paths.data_dir / "keys"


def setup(settings: Any) -> KeyRing | None:
    """Configure this process from ``[privacy]``: None when encryption is off. A key is made
    only on the box's first start with encryption on; a key from a passphrase never here
    (``appliance key unlock`` writes it)."""
    if not settings.privacy.encrypt:
        configure(None)
        return None
    key_file, kept = key_path(settings), keys_dir(settings)
    if not key_file.exists() and not settings.privacy.key_from_passphrase:
        known = kept / "key-id"
        if known.exists():
            raise SealError(f"data key {key_file} is missing (this box uses key "
                            f"{known.read_text().strip()}): restore it; a new key would not "
                            "read the recordings and calls sealed so far")
        key = DataKey.new()
        key.save(key_file)
        note_key(kept, key)
        log.warning("data key created: keep a copy off the box; without it the recordings "
                    "and calls cannot be read", extra={"key_file": str(key_file)})
    found = KeyRing.load(key_file, kept)
    configure(found)
    return found


def reseal_all(calls_dir: Path, stop: Any = None) -> tuple[int, int]:
    """Seal every recording and call JSON under the current key (after a key change, or
    when encryption was turned on over clear files); returns (sealed, failed). The keys
    replaced stay kept: backups made before may need them."""
    if _ring is None:
        return 0, 0
    done = failed = 0
    for path in sorted(calls_dir.rglob("*")):
        if stop is not None and stop.is_set():
            break
        if not path.is_file() or path.name.startswith(".") or path.name.endswith(".meta.json"):
            continue
        if path.suffix.lower() not in (".json", ".flac", ".wav", ".mp3", ".ogg"):
            continue
        if path.suffix.lower() == ".wav" and path.with_name(path.stem + ".meta.json").exists():
            meta = path.with_name(path.stem + ".meta.json")
            try:
                if json.loads(meta.read_text(encoding="utf-8")).get("state") == "recording":
                    continue                # being written by a call in progress
            except (OSError, ValueError) as exc:
                failed += 1                 # recovery decides about it; counted, not skipped
                log.error("recording not sealed: its metadata is unreadable",
                          extra={"file": str(path), "reason": str(exc)})
                continue
        try:
            done += seal_file(path)
        except (OSError, SealError) as exc:
            failed += 1
            log.error("file not sealed; tried again at the next start",
                      extra={"file": str(path), "reason": str(exc)})
    return done, failed
