"""Reader for CTranslate2 model.bin files (the faster-whisper packaging of Whisper).

Layout (little endian): u32 binary version (>= 5); string spec name; u32 spec revision;
u32 variable count; per variable: string name, u8 rank, rank x u32 dims, u8 dtype, u32 byte
count, data; then u32 alias count and (alias, target) string pairs. A string is a u16
length (counting a trailing NUL) and its bytes.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np

DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
BF16 = 5


class ModelFormatError(ValueError):
    """The file is not a CTranslate2 model this reader understands."""


def _read(fh: BinaryIO, fmt: str) -> tuple:
    size = struct.calcsize(fmt)
    data = fh.read(size)
    if len(data) != size:
        raise ModelFormatError("unexpected end of file")
    return struct.unpack(fmt, data)


def _string(fh: BinaryIO) -> str:
    (n,) = _read(fh, "<H")
    raw = fh.read(n)
    if len(raw) != n:
        raise ModelFormatError("unexpected end of file in a string")
    return raw.rstrip(b"\0").decode("utf-8")


def read_ct2(path: Path) -> tuple[str, dict[str, np.ndarray]]:
    """Return (spec name, {variable name: array}), aliases resolved."""
    with open(path, "rb") as fh:
        (version,) = _read(fh, "<I")
        if not 5 <= version <= 10:
            raise ModelFormatError(f"{path}: binary version {version} is not supported (5-10)")
        spec = _string(fh)
        _read(fh, "<I")                      # spec revision
        (count,) = _read(fh, "<I")
        out: dict[str, np.ndarray] = {}
        for _ in range(count):
            name = _string(fh)
            (rank,) = _read(fh, "<B")
            dims = _read(fh, f"<{rank}I") if rank else ()
            (dtype,) = _read(fh, "<B")
            (nbytes,) = _read(fh, "<I")
            raw = fh.read(nbytes)
            if len(raw) != nbytes:
                raise ModelFormatError(f"{path}: truncated in variable {name}")
            if dtype == BF16:
                arr = (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32)
            elif dtype in DTYPES:
                arr = np.frombuffer(raw, DTYPES[dtype])
            else:
                raise ModelFormatError(f"{path}: unknown dtype {dtype} for {name}")
            out[name] = arr.reshape(dims) if dims else arr.reshape(())
        (aliases,) = _read(fh, "<I")
        for _ in range(aliases):
            alias, target = _string(fh), _string(fh)
            out[alias] = out[target]
    return spec, out
