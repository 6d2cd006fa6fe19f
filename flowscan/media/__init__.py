"""What media payloads and RTP streams show on the wire: facts that identification,
decryption and the verdicts all read, so they sit below all three."""
