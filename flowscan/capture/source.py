"""Opening a capture: a path or stdin, gzip detected by magic, hashed while read.

The SHA-256 is taken over the bytes as stored (compressed or not), so a report names the
exact file a regulator holds.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import stat
import sys
import zlib
from typing import BinaryIO

from flowscan.errors import CaptureError

GZIP_MAGIC = b"\x1f\x8b"
READ_CHUNK = 1 << 20


class HashingReader(io.RawIOBase):
    """Raw stream wrapper that hashes and counts every byte read from the file itself."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self.sha256 = hashlib.sha256()
        self.consumed = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        data = self._raw.read(len(buffer))
        if not data:
            return 0
        n = len(data)
        buffer[:n] = data
        self.sha256.update(data)
        self.consumed += n
        return n

    def drain(self) -> None:
        """Hash what the parser did not read (a cut or corrupt tail) so the digest is whole."""
        while True:
            data = self._raw.read(READ_CHUNK)
            if not data:
                return
            self.sha256.update(data)
            self.consumed += len(data)


class CaptureSource:
    """A readable capture byte stream plus what the report needs to know about the file."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.display = "<stdin>" if path == "-" else path
        self.size: int | None = None
        raw: BinaryIO
        if path == "-":
            raw = sys.stdin.buffer
        else:
            try:
                st = os.stat(path)
            except FileNotFoundError:
                raise CaptureError(path, "no such file") from None
            except OSError as exc:
                raise CaptureError(path, f"cannot open: {exc.strerror}") from None
            if stat.S_ISDIR(st.st_mode):
                raise CaptureError(path, "is a directory, not a capture file")
            self.size = st.st_size if stat.S_ISREG(st.st_mode) else None
            try:
                raw = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by close()
            except OSError as exc:
                raise CaptureError(path, f"cannot open: {exc.strerror}") from None
        self._raw = raw
        self._hasher = HashingReader(raw)
        buffered = io.BufferedReader(self._hasher, buffer_size=READ_CHUNK)
        head = buffered.peek(2)[:2]
        self.compressed = head == GZIP_MAGIC
        self.gzip_truncated = False
        self.stream: BinaryIO = (
            gzip.GzipFile(fileobj=buffered, mode="rb") if self.compressed else buffered
        )

    @property
    def consumed(self) -> int:
        """Bytes of the stored file read so far (for progress)."""
        return self._hasher.consumed

    def read(self, n: int) -> bytes:
        """Read up to n bytes; a gzip stream cut short reads as the end of the capture."""
        try:
            return self.stream.read(n)
        except EOFError:
            self.gzip_truncated = True
            return b""
        except (OSError, zlib.error) as exc:
            raise CaptureError(self.display, f"gzip data is corrupt: {exc}") from None

    def sha256(self) -> str:
        self._hasher.drain()
        return self._hasher.sha256.hexdigest()

    def close(self) -> None:
        if self.path != "-":
            self._raw.close()

    def __enter__(self) -> CaptureSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
