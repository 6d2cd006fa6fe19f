"""Reading integers at many offsets of one buffer at once (numpy gathers).

Each integer type is an overlapping view of the buffer with a stride of one byte, so the
integer at any offset is a single gather. The buffers that readers fill carry PAD zero
bytes past their data, so a read a little past the end of a short last packet stays in
bounds; callers mask such packets out by their captured length.
"""

from __future__ import annotations

import numpy as np

PAD = 256


class Gather:
    """Integer views of one buffer: g.u16be[idx], g.u32le[idx], ... for index arrays."""

    def __init__(self, buf: bytes | bytearray) -> None:
        self.u8 = np.frombuffer(buf, dtype=np.uint8)
        self.u16be = self._view(buf, ">u2")
        self.u32be = self._view(buf, ">u4")
        self.u32le = self._view(buf, "<u4")
        self.u64be = self._view(buf, ">u8")

    @staticmethod
    def _view(buf: bytes | bytearray, dtype: str) -> np.ndarray:
        size = np.dtype(dtype).itemsize
        return np.ndarray(shape=(len(buf) - size + 1,), dtype=dtype, buffer=buf, strides=(1,))

    def u32(self, order: str) -> np.ndarray:
        return self.u32le if order == "<" else self.u32be
