"""Builders of real file contents, and upload streams made of them."""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import AsyncIterator

PDF = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
JPEG = (
    b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    b"\xff\xdb\x00\x43\x00" + bytes(64) + b"\xff\xd9"
)


def png_bytes(size: int = 0) -> bytes:
    """A valid 1x1 PNG; with ``size``, exactly that long, padded by a private chunk of
    random bytes (a decoder skips it)."""
    body = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0))
    body += _png_chunk(b"IDAT", zlib.compress(b"\x00\x00"))
    end = _png_chunk(b"IEND", b"")
    padding = size - (8 + len(body) + len(end) + 12)
    if padding >= 0:
        body += _png_chunk(b"juNk", os.urandom(padding))
    return b"\x89PNG\r\n\x1a\n" + body + end


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data)
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


async def chunks_of(data: bytes, size: int) -> AsyncIterator[bytes]:
    """``data`` as an upload stream of ``size``-byte chunks."""
    for start in range(0, len(data), size):
        yield data[start : start + size]
