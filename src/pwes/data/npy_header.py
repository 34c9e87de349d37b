"""Shape and dtype of ``.npy`` arrays (alone or inside an ``.npz``) from their headers only,
for every ``.npy`` format version numpy writes: 1.0 (header length in 2 bytes), 2.0 (4 bytes)
and 3.0 (as 2.0, the header text UTF-8 instead of latin-1; numpy writes it for structured dtypes
with non-latin-1 field names). numpy has public readers for 1.0 and 2.0 only; 3.0 is parsed
here the way numpy parses it. The one header reader of pwes (feature layout checks and the
dataset importers); errors are ``ValueError`` (or ``OSError`` / ``zipfile.BadZipFile``), for
the caller to name the file.
"""

from __future__ import annotations

import ast
import struct
import zipfile
from pathlib import Path
from typing import IO

import numpy as np

MAX_HEADER_SIZE = 10000  # numpy's default limit for header text it will evaluate

Header = tuple[tuple[int, ...], np.dtype]


def read_header(handle: IO[bytes]) -> Header:
    """(shape, dtype) of the array whose ``.npy`` stream starts at ``handle``, data left unread."""
    version = np.lib.format.read_magic(handle)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
    elif version == (3, 0):
        shape, dtype = _read_header_3_0(handle)
    else:
        raise ValueError(f".npy format version {version[0]}.{version[1]} is not supported (1.0, 2.0, 3.0)")
    return tuple(int(n) for n in shape), dtype


def _read_header_3_0(handle: IO[bytes]) -> Header:
    """Format 3.0: a little-endian uint32 length, then that many bytes of UTF-8 dict text."""
    raw = handle.read(4)
    if len(raw) != 4:
        raise ValueError("truncated .npy header (no header length)")
    (length,) = struct.unpack("<I", raw)
    if length > MAX_HEADER_SIZE:
        raise ValueError(f".npy header of {length} bytes exceeds {MAX_HEADER_SIZE}")
    text = handle.read(length)
    if len(text) != length:
        raise ValueError("truncated .npy header")
    try:
        header = ast.literal_eval(text.decode("utf8"))
    except (SyntaxError, ValueError) as err:  # UnicodeDecodeError is a ValueError
        raise ValueError(f"cannot parse .npy header ({type(err).__name__})") from None
    if not isinstance(header, dict) or set(header) != {"descr", "fortran_order", "shape"}:
        raise ValueError(f"not a .npy header: {header!r}")
    shape = header["shape"]
    if not isinstance(shape, tuple) or not all(isinstance(n, int) and not isinstance(n, bool) for n in shape):
        raise ValueError(f"shape is not a tuple of ints: {shape!r}")
    if not isinstance(header["fortran_order"], bool):
        raise ValueError(f"fortran_order is not a bool: {header['fortran_order']!r}")
    try:
        dtype = np.lib.format.descr_to_dtype(header["descr"])
    except (TypeError, ValueError) as err:
        raise ValueError(f"descr is not a valid dtype descriptor: {header['descr']!r} ({err})") from None
    return shape, dtype


def npy_header(path: Path) -> Header:
    """(shape, dtype) of an ``.npy`` file."""
    with open(path, "rb") as handle:
        return read_header(handle)


def npz_headers(path: Path) -> dict[str, Header]:
    """(shape, dtype) of every array of an ``.npz``, by key (the member name without ``.npy``)."""
    headers = {}
    with zipfile.ZipFile(path) as archive:
        for member in archive.namelist():
            if member.endswith(".npy"):
                with archive.open(member) as handle:
                    headers[member[:-4]] = read_header(handle)
    return headers
