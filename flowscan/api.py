"""The public Python API: flowscan.scan(path, options) -> Report. The CLI is a thin layer
on it, and both hand the work to the pipeline (flowscan/pipeline.py)."""

from __future__ import annotations

import dataclasses
from typing import Any

from flowscan.capture import displayable
from flowscan.options import Engine, ScanOptions
from flowscan.pipeline import ProgressCallback, run
from flowscan.report.model import Report

__all__ = ["ProgressCallback", "Report", "ScanOptions", "decrypt", "scan"]


def scan(path: str, options: ScanOptions | None = None, *,
         progress: ProgressCallback | None = None, **fields: Any) -> Report:
    """Analyse one capture file (or "-" for stdin) and return its report.

    `options` is a ScanOptions; its fields may also be given as keywords
    (`scan(path, home="EU")`), which make one. Raises flowscan.errors.UsageError for options
    that cannot be honoured and flowscan.errors.CaptureError for input that cannot be read
    at all; a capture that is merely cut short yields a report whose capture.warnings say
    where it stopped.
    """
    if options is None:
        options = ScanOptions(**fields)
    elif fields:
        raise TypeError("give ScanOptions or keyword fields, not both")
    if options.engine == Engine.TSHARK:
        from flowscan.tshark import scan_with_tshark

        report = scan_with_tshark(path, options)
        report.capture.path = displayable(report.capture.path)
        return report
    return run(path, options, progress)


def decrypt(path: str, output: str, options: ScanOptions | None = None, **fields: Any
            ) -> Report:
    """Write OUTPUT, a pcapng of the capture with SRTP and SRTCP of every flow with keys
    replaced by RTP and RTCP in the clear (each tag verified first), and return the report.
    The options' key fields (keylog, srtp_key, sdp) say where the keys are."""
    if options is None:
        options = ScanOptions(**fields, decrypted_output=output)
    elif fields:
        raise TypeError("give ScanOptions or keyword fields, not both")
    else:
        options = dataclasses.replace(options, decrypted_output=output)
    return scan(path, options)
