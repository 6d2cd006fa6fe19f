"""Protocol parsers, one module per protocol. Each takes bytes and returns a typed result or
None ("not this protocol"); none raises on malformed or truncated input."""
