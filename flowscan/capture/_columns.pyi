# Types of the optional compiled columnar decoder (_columns.c); columns.py holds the reference.
import numpy as np
from typing_extensions import Buffer

def decode(buf: Buffer, data_off: np.ndarray, caplen: np.ndarray, link: np.ndarray,
           idx: np.ndarray, proto: np.ndarray, l3: np.ndarray, l4: np.ndarray,
           ps: np.ndarray, pe: np.ndarray, sport: np.ndarray, dport: np.ndarray,
           is6: np.ndarray, /) -> int: ...
def group(buf: Buffer, l3: np.ndarray, is6: np.ndarray, proto: np.ndarray,
          sport: np.ndarray, dport: np.ndarray, group: np.ndarray, first: np.ndarray,
          hashes: np.ndarray, lower_sends: np.ndarray, /) -> int: ...
def rank(keys: np.ndarray, out: np.ndarray, /) -> int: ...
