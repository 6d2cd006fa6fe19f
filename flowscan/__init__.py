"""flowscan: what a VTC capture shows about media encryption and where data goes."""

__version__ = "0.1.0"

from flowscan.api import decrypt, scan
from flowscan.errors import CaptureError, FlowscanError

__all__ = ["CaptureError", "FlowscanError", "__version__", "decrypt", "scan"]
