"""Errors that flowscan reports to a user as one line, never as a traceback."""


class FlowscanError(Exception):
    """Base of every error meant for the user; the message is the whole story."""


class CaptureError(FlowscanError):
    """The capture cannot be read (missing, not a capture, corrupt)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class UsageError(FlowscanError):
    """Options that do not fit together."""
