# Types of the optional compiled record walker (_walk.c); walk.py holds the reference loops.
import numpy as np
from typing_extensions import Buffer

def walk_pcap(buf: Buffer, off: int, n: int, big_endian: bool, out: np.ndarray,
              header: int = ..., /) -> tuple[int, int]: ...
def walk_epb(buf: Buffer, off: int, n: int, big_endian: bool, out: np.ndarray,
             /) -> tuple[int, int, int]: ...
