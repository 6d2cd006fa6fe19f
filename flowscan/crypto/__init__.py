"""Cryptography: SFrame (the inner end-to-end layer), and, with keys, SRTP and DTLS-SRTP."""
