"""flowscan: what a VTC capture shows about media encryption and where data goes."""

from flowscan.api import decrypt, scan
from flowscan.errors import CaptureError, FlowscanError, UsageError
from flowscan.options import ScanOptions
from flowscan.report.model import Report
from flowscan.version import __version__

__all__ = ["CaptureError", "FlowscanError", "Report", "ScanOptions", "UsageError",
           "__version__", "decrypt", "scan"]
