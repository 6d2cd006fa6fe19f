"""Offline geolocation: bundled and user-supplied MaxMind-format databases."""
