"""Report model and its renderers (JSON, text)."""
