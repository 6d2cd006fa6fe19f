"""Where each record of a buffer begins: the readers' one per-record loop.

A record's start depends on the length of the record before it, so numpy cannot find the
starts; everything after this walk is columnar. The compiled walker (_walk.c) and the
Python loops here give the same answers (tests/test_walk.py); the Python loops are the
reference, and the fallback where the extension was not built.
"""

from __future__ import annotations

import os
import struct

import numpy as np

from flowscan.capture.records import MAX_RECORD

try:
    from flowscan.capture import _walk
except ImportError:  # built optionally (setup.py); the Python loops below do the same
    _walk = None  # type: ignore[assignment]

EPB = 0x00000006


def native() -> bool:
    """Whether the compiled walker is in use (FLOWSCAN_PURE_PYTHON=1 turns it off)."""
    return _walk is not None and not os.environ.get("FLOWSCAN_PURE_PYTHON")


def pcap_starts(buf: bytearray, off: int, n: int, header: int, order: str
                ) -> tuple[np.ndarray, int]:
    """Starts of the classic pcap records (draft-ietf-opsawg-pcap section 5) lying wholly
    in buf[off:n], and where the first record that does not begins. The captured length
    is at bytes 8..11 of each record header."""
    if native():
        out = np.empty((n - off) // header + 1, dtype=np.int64)
        count, off = _walk.walk_pcap(buf, off, n, order == ">", out, header)
        return out[:count], off
    incl_at = struct.Struct(order + "I").unpack_from
    starts: list[int] = []
    append = starts.append
    while off + header <= n:
        end = off + header + incl_at(buf, off + 8)[0]
        if end > n:
            break
        append(off)
        off = end
    return np.array(starts, dtype=np.int64), off


def epb_starts(buf: bytearray, off: int, n: int, order: str
               ) -> tuple[np.ndarray, int, int | None]:
    """Starts of a run of pcapng Enhanced Packet Blocks (draft-ietf-opsawg-pcapng section
    3.1) lying wholly in buf[off:n], where the walk stopped, and the bad total length of the
    block there, if that is why it stopped (under 12, not a multiple of 4, or absurd)."""
    if native():
        out = np.empty((n - off) // 12 + 1, dtype=np.int64)
        count, off, bad = _walk.walk_epb(buf, off, n, order == ">", out)
        return out[:count], off, (None if bad < 0 else bad)
    head = struct.Struct(order + "II").unpack_from
    starts: list[int] = []
    append = starts.append
    while off + 12 <= n:
        btype, blen = head(buf, off)
        if btype != EPB:
            break
        if blen < 12 or blen % 4 or blen > MAX_RECORD:
            return np.array(starts, dtype=np.int64), off, blen
        if off + blen > n:
            break
        append(off)
        off += blen
    return np.array(starts, dtype=np.int64), off, None
