"""Jurisdiction, transfer findings and vendors' claims, judged against a capture."""
