"""flowscan: what a VTC capture shows about media encryption and where data goes."""

from flowscan.api import decrypt, scan
from flowscan.errors import CaptureError, FlowscanError
from flowscan.version import __version__

__all__ = ["CaptureError", "FlowscanError", "__version__", "decrypt", "scan"]
