"""Opening a capture: a path or stdin, gzip detected by magic, hashed while read.

The SHA-256 is taken over the bytes as stored (compressed or not), so a report names the
exact file a regulator holds. Reads go straight into the caller's buffer: the hot path
copies each byte of the file once.

Standard input, a FIFO or a device is copied to a private temporary file while it is read:
decryption is a second pass over the capture, and a pipe cannot be read twice.

A live stream (flowscan watch) is read as it arrives: each read hands over what is there
instead of waiting to fill a buffer, and a stop event ends the capture where it is, as if
the stream had ended there.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import select
import stat
import sys
import tempfile
import zlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from threading import Event
from typing import BinaryIO

from flowscan.errors import CaptureError

GZIP_MAGIC = b"\x1f\x8b"
RAW_CHUNK = 1 << 20
HASH_IN_BACKGROUND = 1 << 20
LIVE_POLL = 0.1  # seconds a live read waits for data before it looks at the stop event


class GunzipStream:
    """Streaming gunzip (RFC 1952) that keeps what it decompressed when the file is cut.

    gzip.GzipFile drops the data of a read that runs into a truncated member; here a cut
    stream simply ends, and `truncated` says so. Concatenated members are read in turn.
    """

    def __init__(self, read_raw: Callable[[int], bytes]) -> None:
        self._read_raw = read_raw
        self._inflate = zlib.decompressobj(wbits=31)
        self._pending = b""
        self.truncated = False
        self._done = False

    def read(self, n: int) -> bytes:
        """Up to n bytes. Never inflates more than asked for: a small file of a highly
        compressible stream (a "gzip bomb") must not expand in memory all at once."""
        out = [self._pending]
        have = len(self._pending)
        while have < n and not self._done:
            inflate = self._inflate
            if inflate.eof:  # a member ended: the next one starts in its unused data
                chunk = inflate.unused_data or self._read_raw(RAW_CHUNK)
                if not chunk:
                    self._done = True
                    break
                self._inflate = inflate = zlib.decompressobj(wbits=31)
            elif inflate.unconsumed_tail:  # input held back by the last call's limit
                chunk = inflate.unconsumed_tail
            else:
                chunk = self._read_raw(RAW_CHUNK)
                if not chunk:
                    self._done = self.truncated = True
                    break
            data = inflate.decompress(chunk, n - have)
            out.append(data)
            have += len(data)
        joined = b"".join(out)
        self._pending = joined[n:]
        return joined[:n]


def displayable(path: str) -> str:
    """A file name as reports show it: bytes that are not UTF-8 (kept by Python as lone
    surrogates, which no JSON or terminal encoder takes) written as \\xNN escapes."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


class ReplayCopy:
    """A copy of an input that cannot be read twice, for the second pass decryption makes.

    The file is made by mkstemp (mode 0600, a name nobody else can claim) and removed when
    the source closes. When it cannot be written (a full disk), the copy is given up and
    `error` says why: the first pass goes on, only decryption is lost.
    """

    def __init__(self) -> None:
        self.error: str | None = None
        self.path: str | None = None
        self._file: BinaryIO | None = None
        try:
            fd, self.path = tempfile.mkstemp(prefix="flowscan-input-", suffix=".cap")
            self._file = os.fdopen(fd, "wb")
        except OSError as exc:
            self._give_up(exc)

    def _give_up(self, exc: OSError) -> None:
        self.error = f"cannot keep a copy in {tempfile.gettempdir()}: {exc.strerror or exc}"
        self.discard()

    def write(self, data: bytes | memoryview) -> None:
        if self._file is None:
            return
        try:
            self._file.write(data)
        except OSError as exc:
            self._give_up(exc)

    def finish(self) -> str | None:
        """The copy's path once every byte is written, or None if it was given up."""
        if self._file is not None:
            try:
                self._file.flush()
            except OSError as exc:
                self._give_up(exc)
        return self.path

    def discard(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):  # a failed flush of a copy being removed
                self._file.close()
            self._file = None
        if self.path is not None:
            with contextlib.suppress(OSError):  # already gone: nothing is left either way
                os.unlink(self.path)
            self.path = None


def _stdin(live: bool) -> BinaryIO:
    """Standard input as bytes, refused when nothing can be piped through it. Live, it is
    read unbuffered: bytes held in a buffer would wait there unseen by select()."""
    stream = sys.stdin
    if stream is None or stream.closed:
        raise CaptureError("<stdin>", "standard input is closed; pipe a capture into it")
    if stream.isatty():
        raise CaptureError("<stdin>", "standard input is a terminal; pipe a capture into it "
                                      "(flowscan scan - < capture.pcapng)")
    if live:
        return open(stream.fileno(), "rb", buffering=0, closefd=False)
    return stream.buffer


class CaptureSource:
    """A capture's byte stream plus what the report needs to know about the file.

    `stream`: an open unbuffered stream to read instead of the path (a capture tool's
    output), the path being then only its name. `live`: read the input as it arrives, and
    end it when the event is set.
    """

    def __init__(self, path: str, *, stream: BinaryIO | None = None,
                 live: Event | None = None) -> None:
        self.path = path
        self.display = "<stdin>" if path == "-" and stream is None else displayable(path)
        self.size: int | None = None
        self._spool: ReplayCopy | None = None
        self._live = live
        self._stopped = False
        raw: BinaryIO
        if stream is not None or path == "-":
            raw = stream if stream is not None else _stdin(live is not None)
            self._spool = ReplayCopy()
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
            if self.size is None:  # a FIFO, /dev/stdin, <(...): gone once read
                self._spool = ReplayCopy()
        self._raw = raw
        self._digest = hashlib.sha256()
        # Large reads are hashed on a worker thread (hashlib releases the GIL), in order.
        self._hasher: ThreadPoolExecutor | None = None
        self._hashing: Future[None] | None = None
        self.consumed = 0  # bytes of the stored file read so far (for progress)
        # The first bytes are read to tell gzip from a capture; they are served again first.
        try:
            self._prefix = self._read_raw(2)
        except BaseException:
            self.close()
            raise
        self.compressed = self._prefix == GZIP_MAGIC
        self._gunzip = GunzipStream(self._read_stored) if self.compressed else None

    def _read_stored(self, n: int) -> bytes:
        """The stored (possibly compressed) bytes, peeked prefix first."""
        head, self._prefix = self._prefix, b""
        return head + self._read_raw(n - len(head))

    def _arrived(self) -> bool:
        """Live: wait until data (or the end) arrives; False once the stop event is set,
        and from then on, so that the capture ends there for every reader of it."""
        if self._live is None:
            return True
        while not self._stopped:
            if self._live.is_set():
                self._stopped = True
            else:
                try:
                    ready, _, _ = select.select([self._raw], [], [], LIVE_POLL)
                except (OSError, ValueError, TypeError):  # not selectable: read, and block
                    return True
                if ready:
                    return True
        return False

    def _waiting(self) -> bool:
        """Live: whether more data is there to read at once (a fast stream is still read
        in large batches)."""
        try:
            return bool(select.select([self._raw], [], [], 0)[0])
        except (OSError, ValueError, TypeError):
            return False

    def _read_raw(self, n: int) -> bytes:
        if not self._arrived():
            return b""
        try:
            data = self._raw.read(n) or b""
        except OSError as exc:
            raise CaptureError(self.display, f"read failed: {exc.strerror or exc}") from None
        self.wait_hashed()
        self._digest.update(data)
        if self._spool is not None:
            self._spool.write(data)
        self.consumed += len(data)
        return data

    @property
    def stopped(self) -> bool:
        """Whether a live stream was ended by its stop event rather than by its writer."""
        return self._stopped

    @property
    def gzip_truncated(self) -> bool:
        return self._gunzip is not None and self._gunzip.truncated

    def readinto(self, view: memoryview) -> int:
        """Fill view as far as the stream allows; 0 means the end of the capture."""
        total = 0
        want = len(view)
        if self._prefix and self._gunzip is None:
            k = min(len(self._prefix), want)
            view[:k] = self._prefix[:k]
            self._prefix = self._prefix[k:]
            total = k
        while total < want:
            if self._gunzip is not None:
                try:
                    data = self._gunzip.read(want - total)
                except zlib.error as exc:
                    raise CaptureError(self.display, f"gzip data is corrupt: {exc}") from None
                k = len(data)
                view[total:total + k] = data
            else:
                if not self._arrived():
                    break
                try:
                    k = self._raw.readinto(view[total:]) or 0  # type: ignore[attr-defined]
                except OSError as exc:
                    raise CaptureError(self.display,
                                       f"read failed: {exc.strerror or exc}") from None
                self._hash_later(view[total:total + k])
                if self._spool is not None:
                    self._spool.write(view[total:total + k])
                self.consumed += k
            if not k:
                break
            total += k
            if self._live is not None and not self._waiting():
                break  # hand over what has arrived
        return total

    def _hash_later(self, view: memoryview) -> None:
        if len(view) < HASH_IN_BACKGROUND:
            self.wait_hashed()
            self._digest.update(view)
            return
        if self._hasher is None:
            self._hasher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sha256")
        self._hashing = self._hasher.submit(self._digest.update, view)

    def wait_hashed(self) -> None:
        """Block until every byte read so far is hashed; needed before a buffer is reused."""
        if self._hashing is not None:
            self._hashing.result()
            self._hashing = None

    def read_hint(self, limit: int) -> int:
        """How much to ask for next: what is left of a plain file, at most limit."""
        if self.size is None or self._gunzip is not None:
            return limit
        return max(1, min(limit, self.size - self.consumed + len(self._prefix)))

    def read(self, n: int) -> bytes:
        buf = bytearray(n)
        k = self.readinto(memoryview(buf))
        return bytes(buf[:k])

    def sha256(self) -> str:
        """Digest of the whole stored file, including any tail the parser did not read."""
        while self._read_raw(RAW_CHUNK):
            pass
        return self._digest.hexdigest()

    def replay_path(self) -> str | None:
        """A file holding the whole stored capture, for a second pass: the path itself, or
        for standard input (a FIFO...) its copy, read to the end first. None when the input
        could not be copied; `replay_error` says why."""
        if self._spool is None:
            return self.path
        self.sha256()  # reads, and so copies, whatever the first pass left
        return self._spool.finish()

    @property
    def replay_error(self) -> str | None:
        return self._spool.error if self._spool is not None else None

    def close(self) -> None:
        if self._hasher is not None:
            self._hasher.shutdown(wait=True)
            self._hasher = None
        if self._spool is not None:
            self._spool.discard()
        if self.path != "-" or self._live is not None:
            self._raw.close()

    def __enter__(self) -> CaptureSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
