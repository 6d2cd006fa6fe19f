"""Temporary files that keep a large capture's rendered report out of memory.

A report of a million flows would otherwise be one string of a gigabyte or more until it
is written. Here, rendered reports go to a spool file: memory while small, an unnamed
temporary file beyond. (Closed flows' records and facts are still held in memory until
the report is built; the README's Benchmark section says what would spill them.)
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from typing import IO

# A rendered report stays in memory up to this size; beyond, it is on disk.
SPOOL_BYTES = 8 << 20
# Copies from a spool file go in pieces of this size.
COPY_BYTES = 1 << 20


def spool() -> IO[bytes]:
    """A file to render a report into: in memory while small, an unnamed temporary file
    (gone with the process, whatever happens) once larger than SPOOL_BYTES."""
    return tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES, prefix="flowscan-report-")


def chunks_of(data: bytes | IO[bytes]) -> Iterator[bytes]:
    """The bytes of data, or of a spool file read from where it stands (the file closed
    at the end, read or not)."""
    if isinstance(data, bytes):
        yield data
        return
    with data:
        while chunk := data.read(COPY_BYTES):
            yield chunk
