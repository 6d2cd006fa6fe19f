"""The report's vocabularies (report/vocab.py): one list of words, held to the JSON schema,
and every verdict handled wherever verdicts are turned into words or findings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import pytest

from flowscan.policy import transfers
from flowscan.report import answers
from flowscan.report.model import Encryption
from flowscan.report.vocab import ENCRYPTION_WORDS, Confidence, Verdict

SCHEMA = json.loads((Path(__file__).resolve().parent.parent / "flowscan" / "report"
                     / "schema.json").read_text())


def _encryption_schema() -> dict[str, dict[str, list[str]]]:
    found: list[dict[str, dict[str, list[str]]]] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "termination" in node and "key_exchange" in node:
                found.append(node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(SCHEMA)
    (properties,) = found
    return properties


def test_the_vocabularies_are_the_schemas_words() -> None:
    defs = SCHEMA["$defs"]
    assert sorted(map(str, Verdict)) == sorted(defs["verdict"]["enum"])
    assert sorted(map(str, Confidence)) == sorted(defs["confidence"]["enum"])
    properties = _encryption_schema()
    for name in ("termination", "key_exchange", "basis"):
        assert sorted(map(str, ENCRYPTION_WORDS[name])) == sorted(properties[name]["enum"])


def test_every_verdict_has_a_severity_words_and_a_legend() -> None:
    """A verdict added to the vocabulary and forgotten in a table fails here, never skipped
    silently by transfers' findings or the answers' legend."""
    for verdict in Verdict:
        assert verdict in transfers.SEVERITY and verdict in transfers.READABLE
        assert verdict in transfers.FINDING_ORDER
    assert {word for word, _ in answers.LEGEND} == set(map(str, Verdict))
    assert set(answers.VERDICTS) == set(Verdict)


@pytest.mark.parametrize("field", sorted(ENCRYPTION_WORDS))
def test_an_encryption_takes_only_words_of_its_vocabulary(field: str) -> None:
    good = Encryption("hop-by-hop", "server", "dtls-srtp", "observed", "medium")
    assert good.verdict is Verdict.HOP_BY_HOP
    with pytest.raises(ValueError, match="not a valid"):
        setattr(good, field, "end-to-endish")
    with pytest.raises(ValueError, match="not a valid"):
        # Keyword arguments by name, one field given a word outside its vocabulary.
        Encryption(**cast("dict[str, Any]", {
            "verdict": "plaintext", "termination": "peer", "key_exchange": "none",
            "basis": "observed", "confidence": "high", field: "typo"}))

