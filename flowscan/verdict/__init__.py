"""Encryption verdicts: signals read from payloads, and the rules that turn them into a
verdict with the evidence it rests on."""
